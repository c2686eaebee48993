#!/usr/bin/env python3
"""The libvirt hook's added latency on an incoming migration, on the simulator: what libvirt waits for at
`migrate begin` before QEMU starts, run exactly as libvirt runs it.

    .venv/bin/python benchmarks/hook_latency.py [--runs 15] [--write docs/performance.md]

Each run installs nothing: it executes the drop-in `devmig libvirt install-hook` writes (a /bin/sh script that
runs this devmig by its absolute path) with libvirt's hook environment (LC_ALL=C, a minimal PATH, HOME=/), the
four arguments and the domain's XML on stdin, and times it from the spawn to its exit. Kinds, alternating:

- `noop hook`: a drop-in that only reads its stdin (`cat >/dev/null`): what any hook costs libvirt (the floor).
- `python -c pass`: the interpreter's own start, a share of any Python hook.
- `devmig drop-in, an operation it ignores`: libvirt runs the hook for every operation of every domain (a VM's
  start and stop too); the drop-in starts devmig only for those it acts on, and `started`/`release` only while
  the host holds a claim (devices devmig prepared for a domain): `started begin, no claim on the host`.
- `devmig, 1 device`: `migrate begin` of a domain with the default lab's running vGPU (simgpu-2G): judge it on
  beta, create the mdev, write and read back its 3 parameters, journal, rewrite the XML; then `release end`
  (untimed) takes it away again, so every run prepares anew.
- `devmig, 2 devices`: the same with the vGPU and the NIC VF (two prepares under one claim).
- `devmig, refused`: a domain whose vGPU version no type on beta takes: the judgement and the message, no change.

The simulated host keeps its changes in the state directory between processes (a fresh one for the whole run).
A real host's sysfs writes cost more than the simulator's; the kernel tier times the same hook on real mtty.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from machine import machine, write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.domains.builders import GPU_UUID, VF, annotated_xml, mdev_hostdev, pci_hostdev  # noqa: E402

from devmig.libvirt.install import hook_command, install  # noqa: E402
from devmig.machine import open_host  # noqa: E402
from devmig.provision.journal import HostState  # noqa: E402

BEGIN, END = "<!-- hook-latency:begin -->", "<!-- hook-latency:end -->"
LIBVIRT_ENV = {"LC_ALL": "C", "PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "HOME": "/"}


def annotated(*hostdevs: str, version: str | None = None) -> str:
    return annotated_xml(open_host("sim:alpha"), *hostdevs, version=version)


def timed(argv: list[str], xml: str, expect: int) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, input=xml, env=LIBVIRT_ENV, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"hook_latency.py: {argv[-4:]} exited {done.returncode}, expected {expect}: {done.stderr}")
    return took, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--write", type=Path, help="record the figures in this document's marked section")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="devmig-hook-bench-"))
    state = work / "state"
    os.environ["DEVMIG_STATE_DIR"] = str(state)  # for annotated(): alpha's descriptors
    claims = HostState.of(open_host("sim:beta").key, str(state)).base / "claims"
    command = hook_command(host="sim:beta", state_dir=str(state), config=None)
    hook = install(command, hooks_dir=work / "hooks", claims=claims).path
    noop = work / "noop"
    noop.write_text("#!/bin/sh\ncat >/dev/null\n")
    noop.chmod(0o755)
    one = annotated(mdev_hostdev(GPU_UUID))
    two = annotated(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "simnic_vfio_pci"))
    refused = annotated(mdev_hostdev(GPU_UUID), version="9.0.0")
    begin = ["vm1", "migrate", "begin", "-"]

    def devmig(xml: str) -> float:
        took, out = timed([str(hook), *begin], xml, 0)
        timed([str(hook), "vm1", "release", "end", "-"], out, 0)  # untimed: every run prepares anew
        return took

    kinds: dict[str, Callable[[], float]] = {
        "noop hook (peer: the floor)": lambda: timed([str(noop), *begin], one, 0)[0],
        "python -c pass (the interpreter's start)": lambda: timed([sys.executable, "-c", "pass"], "", 0)[0],
        "devmig drop-in, an operation it ignores (prepare begin)": lambda: timed(
            [str(hook), "vm1", "prepare", "begin", "-"], one, 0
        )[0],
        "devmig drop-in, started begin, no claim on the host": lambda: timed(
            [str(hook), "vm1", "started", "begin", "-"], one, 0
        )[0],
        "devmig, 1 device (mdev prepared)": lambda: devmig(one),
        "devmig, 2 devices (mdev and VF prepared)": lambda: devmig(two),
        "devmig, refused (every reason, no change)": lambda: timed([str(hook), *begin], refused, 1)[0],
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.runs):
        for kind, once in kinds.items():
            times[kind].append(once())
    info = machine(str(REPO / ".venv" / "bin" / "python"))
    info.pop("mdevctl", None)
    floor = statistics.median(times["noop hook (peer: the floor)"])
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/hook_latency.py --runs {args.runs}`.",
        "",
        "Machine:",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "Each run spawns the drop-in as libvirt does (its environment, four arguments, the XML on stdin) on the "
        "simulated host beta; the kinds alternate.",
        "",
        "| hook call | median ms | min ms | max ms | added over the noop hook, ms |",
        "|---|--:|--:|--:|--:|",
    ]
    for kind, values in times.items():
        med = statistics.median(values)
        lines.append(
            f"| {kind} | {med * 1000:.1f} | {min(values) * 1000:.1f} | {max(values) * 1000:.1f} "
            f"| {(med - floor) * 1000:.1f} |"
        )
    runs = "; ".join(f"{kind.split(' (')[0]} " + ", ".join(f"{t * 1000:.0f}" for t in v) for kind, v in times.items())
    lines += ["", f"Every run, in ms: {runs}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, BEGIN, END, "The libvirt hook's added latency (simulator)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
