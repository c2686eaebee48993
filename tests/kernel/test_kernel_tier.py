"""The kernel tier: boot a real Linux 6.12 in QEMU once, run tests/kernel/guest inside it, one host test each.

Where QEMU or Debian's packages cannot be had, the tier is skipped with the reason on a developer's machine and
fails in CI (CI=true): it is never silently skipped there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from devmig.testing.ci import missing_prerequisite
from tests.paths import ROOT

pytestmark = pytest.mark.kernel

GUEST_DIR = "tests/kernel/guest"
#: The whole guest run (boot + every guest test) is killed after this and reported with its console.
GUEST_TIMEOUT = float(os.environ.get("DEVMIG_KERNEL_TIMEOUT", "600"))


def _guest_test_ids() -> list[str]:
    """The guest's tests, listed on the host (no kernel needed to collect them)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", GUEST_DIR],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DEVMIG_KERNEL_GUEST": "collect"},
        timeout=120,
    )
    ids = [line.strip() for line in proc.stdout.splitlines() if line.startswith(GUEST_DIR) and "::" in line]
    if not ids:
        raise RuntimeError(f"no guest tests collected from {GUEST_DIR}:\n{proc.stdout}\n{proc.stderr}")
    return ids


@dataclass
class GuestOutcome:
    passed: bool
    skipped: bool
    detail: str


@dataclass
class GuestResults:
    outcomes: dict[str, GuestOutcome]
    console: str
    seconds: float


def _parse_junit(path: Path) -> dict[str, GuestOutcome]:
    outcomes: dict[str, GuestOutcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        node = f"{module}.py::{case.get('name')}"
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            outcomes[node] = GuestOutcome(False, False, f"{failure.get('message', '')}\n{failure.text or ''}")
        elif skipped is not None:
            outcomes[node] = GuestOutcome(False, True, skipped.get("message", ""))
        else:
            outcomes[node] = GuestOutcome(True, False, "")
    return outcomes


def _unavailable(reason: str) -> NoReturn:
    missing_prerequisite(f"kernel tier unavailable: {reason}")


@pytest.fixture(scope="session")
def guest_results(tmp_path_factory: pytest.TempPathFactory) -> GuestResults:
    from tests.kernel import lab

    if os.geteuid() != 0:
        _unavailable("needs root (to install Debian's packages and build modules)")
    try:
        assets = lab.prepare()
    except lab.LabUnavailable as exc:
        _unavailable(str(exc))
    results = tmp_path_factory.mktemp("guest-results")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        "kernel",
        "-rA",
        f"--junitxml={lab.GUEST_RESULTS}/junit.xml",
        GUEST_DIR,
    ]
    started = time.monotonic()
    run = lab.run_in_guest(
        assets,
        command,
        cwd=str(ROOT),
        results_dir=results,
        timeout=GUEST_TIMEOUT,
        env={"DEVMIG_KERNEL_GUEST": "1", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    seconds = time.monotonic() - started
    junit = results / "junit.xml"
    if run.timed_out or not junit.exists():
        why = f"timed out after {GUEST_TIMEOUT:.0f} s" if run.timed_out else f"ended with {run.returncode}, no results"
        pytest.fail(f"the guest {why}; its console:\n{run.console[-20000:]}", pytrace=False)
    return GuestResults(_parse_junit(junit), run.console, seconds)


@pytest.mark.parametrize("guest_test", _guest_test_ids())
def test_in_guest(guest_results: GuestResults, guest_test: str) -> None:
    outcome = guest_results.outcomes.get(guest_test)
    if outcome is None:
        pytest.fail(f"{guest_test} did not run in the guest; console:\n{guest_results.console[-5000:]}", pytrace=False)
    if outcome.skipped:
        pytest.fail(f"{guest_test} was skipped in the guest: {outcome.detail}", pytrace=False)
    if not outcome.passed:
        pytest.fail(f"{guest_test} failed in the guest:\n{outcome.detail}", pytrace=False)
