"""The fuzz suite's hooks: this run's seed, the time of each parser family, and the run's figures where scripts/fuzz
asks."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import settings

from tests.fuzz import harness
from tests.fuzz.harness import ENV_EXAMPLES, ENV_REPORT, SECONDS, family, write_report


def pytest_configure(config: pytest.Config) -> None:
    """The seed of this run's cases: hypothesis's --hypothesis-seed when given (a replay, in CI too), else a fresh
    one, except under CI, where the cases are derandomized. This conftest is loaded before the test modules it
    governs, so harness.fuzz sees the seed when they apply it."""
    given = config.getoption("hypothesis_seed", None)
    if given is not None:
        try:  # as hypothesis's plugin reads it: an int when it is one
            harness.SEED = int(given)
        except ValueError:
            harness.SEED = given
    elif not settings.get_profile(harness.PROFILE).derandomize:  # derandomized under CI
        harness.SEED = random.SystemRandom().getrandbits(64)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "/fuzz/" in report.fspath:
        SECONDS[family(report.fspath.removesuffix(".py").replace("/", "."))] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    failed = [r for r in terminalreporter.stats.get("failed", []) if "fuzz" in Path(getattr(r, "fspath", "")).parts]
    if failed and harness.SEED is not None:
        budget = os.environ.get(ENV_EXAMPLES)
        terminalreporter.section("fuzz seed")
        terminalreporter.write_line(
            f"this run's cases came from seed {harness.SEED}; replay it with "
            f"{f'{ENV_EXAMPLES}={budget} ' if budget else ''}pytest tests/fuzz --hypothesis-seed={harness.SEED}"
            " (each failing case also has its @reproduce_failure line above)"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report = os.environ.get(ENV_REPORT)
    if report:
        write_report(report)
