"""The suite's seed: fresh outside CI and printed when a fuzz test fails, hypothesis's --hypothesis-seed replays it,
and CI's cases are derandomized. Each run is a pytest process on a tiny failing fuzz test using this suite's hooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT

FAILING = """
from hypothesis import given, strategies as st

from tests.fuzz.harness import fuzz


@fuzz(share=0.05)
@given(st.integers(min_value=0))
def test_fails(n: int) -> None:
    assert n % 7 != 3
"""


def _run(tmp_path: Path, *args: str, ci: bool = False) -> tuple[int, str]:
    suite = tmp_path / "fuzz"
    suite.mkdir(parents=True)
    (suite / "conftest.py").write_text("from tests.fuzz.conftest import *\n")  # this suite's hooks, whatever they are
    (suite / "test_failing.py").write_text(FAILING)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(ROOT)}
    if ci:
        env["CI"] = "true"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(suite), *args],
        cwd=tmp_path,  # hypothesis's example database goes here, not into the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout


def _seeds(out: str) -> list[tuple[str, str]]:
    """(the seed printed, the seed of the replay command printed) of each seed line."""
    return re.findall(r"this run's cases came from seed (\S+); replay it with .*--hypothesis-seed=(\S+)", out)


def test_a_failing_run_prints_its_fresh_seed(tmp_path: Path) -> None:
    first, second = _run(tmp_path / "a"), _run(tmp_path / "b")
    assert first[0] == second[0] == 1
    (seed_a, replay_a), (seed_b, _) = _seeds(first[1]) + _seeds(second[1])
    assert seed_a == replay_a and seed_a != seed_b  # a fresh seed each run
    assert "@reproduce_failure(" in first[1]  # and each failing case its own replay line


def test_hypothesis_seed_replays_and_ci_is_derandomized(tmp_path: Path) -> None:
    code, out = _run(tmp_path / "a", "--hypothesis-seed=1234")
    assert code == 1 and _seeds(out) == [("1234", "1234")]
    code, out = _run(tmp_path / "b", ci=True)
    assert code == 1 and _seeds(out) == [] and "fuzz seed" not in out
