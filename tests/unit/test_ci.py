"""CI strictness (devmig.testing.ci): one helper says whether this is CI; there a missing prerequisite fails the
test with its reason, elsewhere it skips it; and `.ci/run` turns CI on itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devmig.testing import ci
from tests.paths import ROOT


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), (" TRUE ", True), ("", False), ("false", False), ("0", False)],
)
def test_ci_is_told_by_the_ci_variable(value: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", value)
    assert ci.in_ci() is expected


def test_no_ci_variable_is_not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert ci.in_ci() is False


def test_a_missing_prerequisite_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no frobnicator$"):
        ci.missing_prerequisite("no frobnicator")


def test_a_missing_prerequisite_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and a prerequisite is missing: no frobnicator"):
        ci.missing_prerequisite("no frobnicator")


SAMPLE = """
import pytest

from devmig.testing.ci import missing_prerequisite


@pytest.mark.prerequisite("the frobnicator is not installed")
def test_marked_missing() -> None:
    raise AssertionError("never runs: the marker stops it before the body")


@pytest.mark.prerequisite(None)
def test_marked_present() -> None:
    pass


def test_called() -> None:
    missing_prerequisite("no widget here")
"""


def run_sample(tmp_path: Path, ci_value: str | None) -> subprocess.CompletedProcess[str]:
    """The sample tests in a pytest of their own, with the suite's hooks (tests/conftest.py) and markers."""
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci_value is not None:
        env["CI"] = ci_value
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "tests.conftest"),
            *("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(tmp_path / "test_sample.py")),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_prerequisite_marker_and_call_skip_without_ci(tmp_path: Path) -> None:
    proc = run_sample(tmp_path, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 2 skipped" in proc.stdout
    assert "the frobnicator is not installed" in proc.stdout and "no widget here" in proc.stdout


def test_the_prerequisite_marker_and_call_fail_in_ci(tmp_path: Path) -> None:
    proc = run_sample(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the marker fails the test in its setup (an error), the call in its body (a failure): either fails the run
    assert "1 failed, 1 passed, 1 error" in proc.stdout
    assert "CI=true and a prerequisite is missing: the frobnicator is not installed" in proc.stdout
    assert "CI=true and a prerequisite is missing: no widget here" in proc.stdout
    assert "never runs" not in proc.stdout


def test_ci_run_turns_ci_on_before_the_tests() -> None:
    """CI's runner may set CI or not: .ci/run makes the run strict itself."""
    script = (ROOT / ".ci" / "run").read_text()
    export = re.search(r"^export CI=true$", script, re.MULTILINE)
    run = re.search(r"^exec scripts/test\b", script, re.MULTILINE)
    assert export and run and export.start() < run.start(), script
