#!/usr/bin/env python3
"""How soon a change to a host is visible to `place`: the agent against a cron-style `devmig inventory publish`.

    .venv/bin/python benchmarks/agent_latency.py [--changes 40] [--cron 60,300] [--write docs/performance.md]

An agent (devmig.agent, in a thread, its default debounce 0.2 s and max delay 2 s) watches the default lab's beta
host and publishes to SQLite and to a throwaway PostgreSQL. `--changes` times, a 4G vGPU is created on (or removed
from) beta's GPU through its sysfs, which changes how many 2G vGPUs it has room for; the clock runs from the write
to the first `FleetStore.place` (polled every 2 ms from this process) whose candidate on beta shows the new free
count. p50, p95 and max over the changes, per database.

The peer: a timer running `devmig inventory publish --host sim:beta` every T seconds (`--cron`). A change at a
uniformly random moment waits for the next run, then for that run's publish: its staleness is U(0, T) + P, P the
time of one whole `devmig inventory publish` process, measured here (`--runs` times, median) against the same
store: p50 = T/2 + P, p95 = 0.95 T + P, max = T + P.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import machine, write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

BEGIN, END = "<!-- agent-latency:begin -->", "<!-- agent-latency:end -->"
GPU = "sys/class/mdev_bus/0000:00:02.0/mdev_supported_types"
UUID = "f0f0f0f0-0000-4000-8000-000000000001"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def agent_latencies(url: str, changes: int, state_dir: Path) -> list[float]:
    os.environ["DEVMIG_STATE_DIR"] = str(state_dir)
    from tests.provision.conftest import gpu_source

    from devmig.agent.config import AgentConfig
    from devmig.agent.loop import Agent
    from devmig.fleet.store import FleetStore
    from devmig.machine import open_host
    from devmig.machine.lab import forget_labs

    forget_labs()
    source = gpu_source()
    store = FleetStore.open(url)
    agent = Agent(AgentConfig(store=url, host="sim:beta"))
    thread = threading.Thread(target=agent.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    agent.ready.wait(60)

    def beta_free() -> int | None:
        for c in store.place(source, limit=20).candidates:
            if c.host == "beta":
                return c.free
        return None

    deadline = time.monotonic() + 60
    while beta_free() != 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    host = open_host("sim:beta")
    latencies = []
    for i in range(changes):
        create = i % 2 == 0
        expected = 2 if create else 4
        time.sleep(0.3)  # apart from the last change's burst
        started = time.perf_counter()
        if create:
            host.sysfs.write(f"{GPU}/simgpu-4G/create", UUID)
        else:
            host.sysfs.write(f"sys/bus/mdev/devices/{UUID}/remove", "1")
        while beta_free() != expected:
            if time.perf_counter() - started > 60:
                raise SystemExit(f"change {i} not visible after 60 s")
            time.sleep(0.002)
        latencies.append(time.perf_counter() - started)
    agent.stop()
    thread.join(30)
    store.close()
    return latencies


def publish_seconds(url: str, runs: int, state_dir: Path) -> list[float]:
    env = {**os.environ, "DEVMIG_STATE_DIR": str(state_dir)}
    argv = [sys.executable, "-m", "devmig", "inventory", "publish", "--host", "sim:beta", "--store", url]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--runs", type=int, default=7, help="timed runs of `devmig inventory publish`")
    parser.add_argument("--cron", default="60,300", help="the peer's periods, seconds")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from devmig.testing.postgres import postgres_server

    periods = [float(p) for p in args.cron.split(",")]
    rows: list[tuple[str, list[float], list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        for name, url in (("SQLite", f"sqlite:///{tmp}/fleet.db"), ("PostgreSQL", pg.new_database("agent_latency"))):
            state = Path(tmp) / f"state-{name}"
            latencies = agent_latencies(url, args.changes, state)
            publish = publish_seconds(url, args.runs, state)
            rows.append((name, latencies, publish))
    lines = [
        f"Run {dt.date.today().isoformat()}; {args.changes} changes per database, agent defaults (debounce 0.2 s, "
        "max delay 2 s); the peer's publish timed over "
        f"{args.runs} whole `devmig inventory publish` processes.",
        "",
        "| database | way | p50 | p95 | max |",
        "|---|---|---|---|---|",
    ]
    for name, latencies, publish in rows:
        p = statistics.median(publish)
        lines.append(
            f"| {name} | agent (measured) | {pct(latencies, 0.5) * 1000:.0f} ms | {pct(latencies, 0.95) * 1000:.0f} ms "
            f"| {max(latencies) * 1000:.0f} ms |"
        )
        for period in periods:
            lines.append(
                f"| {name} | cron every {period:g} s (computed, P = {p * 1000:.0f} ms) | {period / 2 + p:.1f} s "
                f"| {0.95 * period + p:.1f} s | {period + p:.1f} s |"
            )
    lines += ["", "Every change, ms (in order):", ""]
    for name, latencies, publish in rows:
        lines.append(f"- {name}: " + ", ".join(f"{v * 1000:.0f}" for v in latencies))
        lines.append(f"- {name}, `devmig inventory publish` runs: " + ", ".join(f"{v * 1000:.0f}" for v in publish))
    facts = machine(sys.executable)
    lines += ["", "Machine: " + "; ".join(f"{k} {v}" for k, v in facts.items() if k != "mdevctl")]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, BEGIN, END, "Agent: change to visible", text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
