#!/usr/bin/env python3
"""What devmig's mdevctl callout adds to mdevctl's own operations, run by Debian's mdevctl itself.

    .venv/bin/python benchmarks/callout_latency.py [--runs 15] [--write docs/performance.md]

mdevctl runs every script of its callout directory around every operation (pre and post of define, modify, start,
stop, undefine; get attributes for `list` and for `define` of a running device). Each run times, alternating:

- `mdevctl define` and `mdevctl start` (a transient device) on a host without any callout: the peer, the floor;
- the same with devmig's callout installed (`devmig mdevctl install-callout`), a definition with no migration/
  attribute: devmig is started for `pre`, finds nothing to judge and answers 2; `post` stops in the drop-in's shell;
- `mdevctl define` of a definition with migration/ attributes devmig judges and accepts, and one it refuses;
- the drop-in called directly with mdevctl's argv and stdin: an event it filters in shell (post define), `pre define`
  with nothing to judge, `pre define` judged, `get attributes` of a running device.

The host is tests/mdevctl/hosts.py's fixture tree, mounted over /sys and /etc/mdevctl.d in a private mount namespace
(Debian's mdevctl 1.2.0 reads no other root): every mdevctl figure includes `unshare` and two bind mounts, the same
for both sides. Needs root, util-linux's unshare and mdevctl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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

from tests.host.test_mdevctl_peer import NAMESPACE_SCRIPT, PEER_MISSING  # noqa: E402
from tests.mdevctl.hosts import NIC, NIC_TYPE, RUNNING, argv, callout_host, config  # noqa: E402

from devmig.mdevctl.install import callout_command, install  # noqa: E402

BEGIN, END = "<!-- callout-latency:begin -->", "<!-- callout-latency:end -->"
UUID = "3c4d5e6f-7a8b-4c9d-8e0f-112233445566"


def timed(argv: list[str], expect: int, stdin: str = "", env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, env=env)
    took = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"callout_latency.py: {argv} exited {done.returncode}, expected {expect}: {done.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--write", type=Path, help="record the figures in this document's marked section")
    args = parser.parse_args()
    if PEER_MISSING:
        raise SystemExit(f"callout_latency.py: {PEER_MISSING}")
    work = Path(tempfile.mkdtemp(prefix="devmig-callout-bench-"))
    bare, with_callout = callout_host(work / "bare"), callout_host(work / "devmig")
    script = install(
        callout_command(profiles_dir=None), callouts_dir=with_callout.root / "etc/mdevctl.d/scripts.d/callouts"
    )
    accepted = work / "accepted.json"
    accepted.write_text(json.dumps(config(NIC_TYPE, ("migration/num-resources", "32"), ("migration/mode", "safe"))))
    refused = work / "refused.json"
    refused.write_text(json.dumps(config(NIC_TYPE, ("migration/num-resources", "99"))))
    direct_env = {**os.environ, "DEVMIG_SYSFS_ROOT": str(with_callout.root)}

    def mdevctl(root: Path, *words: str, expect: int = 0, then: tuple[str, ...] = ()) -> float:
        def ns(*cmd: str) -> list[str]:
            return ["unshare", "-m", "sh", "-c", NAMESPACE_SCRIPT, "sh", str(root), "mdevctl", *cmd]

        took = timed(ns(*words), expect)
        if then:
            timed(ns(*then), 0)  # untimed: back to where the next run starts
        return took

    def define(root: Path) -> float:
        return mdevctl(root, "define", "-u", UUID, "-p", NIC, "-t", NIC_TYPE, then=("undefine", "-u", UUID))

    def start(root: Path) -> float:
        # the fixture tree takes the UUID in its plain `create` file and makes no device: nothing to stop
        return mdevctl(root, "start", "-u", UUID, "-p", NIC, "-t", NIC_TYPE)

    def define_file(path: Path, expect: int) -> float:
        then = ("undefine", "-u", UUID) if expect == 0 else ()
        return mdevctl(
            with_callout.root, "define", "-u", UUID, "-p", NIC, "--jsonfile", str(path), expect=expect, then=then
        )

    plain = json.dumps(config(NIC_TYPE))
    judged = accepted.read_text()
    kinds: dict[str, Callable[[], float]] = {
        "mdevctl define, no callout (peer)": lambda: define(bare.root),
        "mdevctl define, devmig's callout, nothing to judge": lambda: define(with_callout.root),
        "mdevctl define, devmig's callout, 2 attributes judged and accepted": lambda: define_file(accepted, 0),
        "mdevctl define, devmig's callout, refused": lambda: define_file(refused, 1),
        "mdevctl start, no callout (peer)": lambda: start(bare.root),
        "mdevctl start, devmig's callout, nothing to judge": lambda: start(with_callout.root),
        "drop-in alone: post define (filtered in shell)": lambda: timed(
            [str(script), *argv("post", "define", NIC_TYPE, NIC)], 2, plain, direct_env
        ),
        "drop-in alone: pre define, nothing to judge": lambda: timed(
            [str(script), *argv("pre", "define", NIC_TYPE, NIC)], 2, plain, direct_env
        ),
        "drop-in alone: pre define, judged": lambda: timed(
            [str(script), *argv("pre", "define", NIC_TYPE, NIC)], 0, judged, direct_env
        ),
        "drop-in alone: get attributes": lambda: timed(
            [str(script), *argv("get", "attributes", NIC_TYPE, NIC, RUNNING)], 0, "", direct_env
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.runs):
        for kind, once in kinds.items():
            times[kind].append(once())
    info = machine(str(REPO / ".venv" / "bin" / "python"))
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/callout_latency.py --runs {args.runs}`.",
        "",
        "Machine:",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "mdevctl runs in a private mount namespace over tests/mdevctl/hosts.py's fixture tree (unshare and two bind "
        "mounts in every mdevctl figure, both sides); the kinds alternate.",
        "",
        "| call | median ms | min ms | max ms |",
        "|---|--:|--:|--:|",
    ]
    for kind, values in times.items():
        med = statistics.median(values)
        lines.append(f"| {kind} | {med * 1000:.1f} | {min(values) * 1000:.1f} | {max(values) * 1000:.1f} |")
    runs = "; ".join(f"{kind} " + ", ".join(f"{t * 1000:.0f}" for t in v) for kind, v in times.items())
    lines += ["", f"Every run, in ms: {runs}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, BEGIN, END, "The mdevctl callout's added latency", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
