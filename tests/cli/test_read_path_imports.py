"""What the read path loads: `devmig list` and `devmig types` never import pydantic, and the command lines run
without click (devmig.cli.quick) load neither click nor the vdpa netlink client (pyroute2) on a host without the vdpa
family. Not timed: the modules a fresh process holds once the command has run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devmig.testing.sysfs_tree import SysfsTree
from tests.labs import build_lab
from tests.paths import ROOT

#: runs devmig.cli.main with the given arguments, then prints the modules it loaded, on stderr
PROBE = """
import json, sys
from devmig.cli import main
code = main(sys.argv[1:])
sys.stderr.write(json.dumps(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""


def loaded(*args: str) -> set[str]:
    """The top-level packages and the modules of devmig a fresh `devmig ARGS` has loaded once it is done."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEVMIG_SYSFS_ROOT", "DEVMIG_HOST")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    names = json.loads(proc.stderr.splitlines()[-1])
    return {name.partition(".")[0] for name in names} | {name for name in names if name.startswith("devmig.")}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_lab(SysfsTree(tmp_path_factory.mktemp("imports") / "root")).root)


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["list", "-j"],
        ["list", "--format", "mdevctl"],
        ["types"],
        ["types", "-j"],
        ["types", "--format", "mdevctl"],
        ["list", "-j", "-j"],  # a repeated flag: click runs it
        ["types", "-p", "--json"],  # ... and this one
    ],
    ids=" ".join,
)
def test_list_and_types_never_import_pydantic(root: str, args: list[str]) -> None:
    """Nor the other heavy libraries of commands that change or store things."""
    assert not loaded(*args, "--sysfs-root", root) & {"pydantic", "sqlalchemy", "cryptography", "yaml", "rich"}


@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "-j"], ["-p", "list"], ["list", "--format", "mdevctl"], ["types", "-j"], ["types"]],
    ids=" ".join,
)
def test_the_quick_command_lines_load_neither_click_nor_pyroute2(root: str, args: list[str]) -> None:
    modules = loaded(*args, "--sysfs-root", root)
    assert not modules & {"click", "pydantic", "pyroute2", "yaml", "rich", "cryptography"}


def test_help_loads_no_command_and_not_click() -> None:
    modules = loaded("--help")
    assert "click" not in modules
    assert not any(name.startswith("devmig.host") for name in modules)


def test_the_probe_sees_click_when_click_runs(root: str) -> None:
    """The check above can fail: a command line the quick path leaves to click loads it."""
    assert "click" in loaded("list", "-j", "-j", "--sysfs-root", root)


def test_list_on_this_machine_without_vdpa_skips_pyroute2() -> None:
    """On the real root, the vdpa family is asked about with one netlink message; pyroute2 is loaded only when the
    kernel has the family (then devmig lists its devices)."""
    from devmig.vdpa.genl import family_registered

    if family_registered("vdpa") is not False:
        pytest.skip("this kernel has the vdpa family, or netlink cannot be asked")
    assert "pyroute2" not in loaded("list", "-j")
