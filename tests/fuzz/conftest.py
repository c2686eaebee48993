"""The fuzz suite's hooks: time each parser family, and write the run's figures where scripts/fuzz asks."""

from __future__ import annotations

import os

import pytest

from tests.fuzz.harness import ENV_REPORT, SECONDS, family, write_report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "/fuzz/" in report.fspath:
        SECONDS[family(report.fspath.removesuffix(".py").replace("/", "."))] += report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report = os.environ.get(ENV_REPORT)
    if report:
        write_report(report)
