"""Tests that run inside the kernel lab's guest (a real Linux 6.12 booted in QEMU), on the real /sys.

They are collected only where DEVMIG_KERNEL_GUEST is set: "1" in the guest, "collect" when the host lists them
(tests/kernel/test_kernel_tier.py makes one host-side test per guest test). Adding a test here adds it to the
tier; the harness needs no change.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

if not os.environ.get("DEVMIG_KERNEL_GUEST"):
    collect_ignore_glob = ["test_*.py"]

IN_GUEST = os.environ.get("DEVMIG_KERNEL_GUEST") == "1"


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(*args: str) -> Run:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def devmig(*args: str) -> Run:
    """devmig's command in this process: the guest runs under emulation, where each new Python costs a second.
    (`devmig_process` runs it as a whole process where that matters.)"""
    from devmig.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Run(code, out.getvalue(), err.getvalue())


def devmig_process(*args: str) -> Run:
    return run(sys.executable, "-m", "devmig", *args)


def mdevctl(*args: str) -> Run:
    return run("mdevctl", *args)


@pytest.fixture(autouse=True)
def _only_in_the_guest() -> None:
    if not IN_GUEST:
        pytest.skip("runs only inside the kernel lab's guest")


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """mdev UUIDs a test created; removed after it whatever happened."""
    created: list[str] = []
    yield created
    for uuid in created:
        device = Path(f"/sys/bus/mdev/devices/{uuid}")
        if device.exists():
            (device / "remove").write_text("1")
