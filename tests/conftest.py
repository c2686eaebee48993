from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devmig.host.sysfs import Sysfs, SysfsRoot
from devmig.machine.lab import forget_labs
from devmig.testing.ci import missing_prerequisite
from devmig.testing.sysfs_tree import SysfsTree
from tests import golden
from tests.labs import build_lab, build_sim_lab


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help=f"rewrite the golden files under tests/golden from what the tests produce (also {golden.ENV}=1; "
        "refused under CI=true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        golden.configure(bool(config.getoption("--regen-golden")))
    except golden.GoldenRefusedError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.prerequisite(missing)`: before any fixture, skip the test for `missing` (fail it in CI)."""
    for mark in item.iter_markers("prerequisite"):
        missing = mark.args[0] if mark.args else mark.kwargs.get("missing")
        if missing is not None:
            missing_prerequisite(str(missing))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if golden.written:
        terminalreporter.section("golden files regenerated (review: git diff tests/golden)")
        for name in golden.written:
            terminalreporter.write_line(f"tests/golden/{name}")


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test its own state directory (journals, records, simulated hosts' changes) and fresh labs."""
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("DEVMIG_STATE_DIR", str(path))
    forget_labs()
    yield path
    forget_labs()


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return SysfsTree(tmp_path / "root")


@pytest.fixture
def lab(tree: SysfsTree) -> SysfsTree:
    return build_lab(tree)


@pytest.fixture(params=["tree", "sim"])
def lab_host(request: pytest.FixtureRequest, tree: SysfsTree) -> Sysfs:
    """The lab host on both seams: a kernel-layout tree read by SysfsRoot, and the simulated kernel."""
    if request.param == "tree":
        return SysfsRoot(build_lab(tree).root)
    return build_sim_lab()
