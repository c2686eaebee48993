#!/usr/bin/env python3
"""Kernel-tier benchmark: the wall time of the kernel tier (tests/kernel) with a cold and a warm lab cache.

    sudo .venv/bin/python benchmarks/kernel_tier.py [--write docs/performance.md]

Cold: an empty lab cache (DEVMIG_KERNEL_LAB_CACHE in a fresh temporary directory), so the run resolves the 6.12
packages, downloads the kernel image, builds the modules and the initramfs, boots and runs every guest test. Debian
packages already installed on this machine stay installed (the first run on a fresh machine also installs them: see
the note the script writes). Warm: the same command again on the filled cache. Beside them, the harness's floor: a
warm boot that runs `true`. Aims (issue 4): under 3 minutes cold, under 1 minute warm.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine, write_section

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- kernel-tier:begin -->", "<!-- kernel-tier:end -->"
AIMS = {"cold": 180.0, "warm": 60.0}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.monotonic() - started, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", type=Path, help="record the figures in this document's marked section")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("kernel_tier.py: must run as root (the lab installs packages and builds modules)", file=sys.stderr)
        return 2
    python = str(REPO / ".venv" / "bin" / "python")
    tier = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "kernel", "tests/kernel"]
    with tempfile.TemporaryDirectory(prefix="devmig-lab-cache-") as cache:
        env = {**os.environ, "DEVMIG_KERNEL_LAB_CACHE": cache}
        cold, cold_rc = timed(tier, env)
        warm, warm_rc = timed(tier, env)
        floor, floor_rc = timed([python, "-m", "tests.kernel.lab", "run", "--quiet", "--", "true"], env)
    if cold_rc or warm_rc or floor_rc:
        print(f"kernel_tier.py: a run failed (cold {cold_rc}, warm {warm_rc}, bare boot {floor_rc})", file=sys.stderr)
        return 1
    info = machine(python)
    rows = [
        ("kernel tier, cold lab cache", cold, "cold"),
        ("kernel tier, warm lab cache", warm, "warm"),
        ("bare boot running `true`, warm (the harness's floor)", floor, ""),
    ]
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/kernel_tier.py`.",
        "",
        f"Machine: {info['cpu']}, {info['cores']}, {info['ram']}, kernel {info['kernel']}, {info['os']}; "
        "QEMU TCG (no KVM).",
        "",
        "| run | wall s | aim |",
        "|---|--:|---|",
    ]
    for label, seconds, aim in rows:
        verdict = "" if not aim else f"under {AIMS[aim]:.0f} s: {'pass' if seconds < AIMS[aim] else 'FAIL'}"
        lines.append(f"| {label} | {seconds:.1f} | {verdict} |")
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        write_section(args.write, BEGIN, END, "Kernel tier", body)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
