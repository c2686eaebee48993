#!/usr/bin/env python3
"""Fleet benchmark: publish a simulated fleet and time `place` on SQLite and PostgreSQL, beside the naive approach.

    .venv/bin/python benchmarks/fleet.py [--hosts 10000] [--types 32] [--places 200] [--write docs/performance.md]

The fleet: `--hosts` hosts with `--types` types each, built from the default lab's real capability documents
(simgpu types of every driver release, simnic VFs, mtty, vDPA management devices) with varied releases, parents
and free counts, so a few hundred distinct documents spread over every host, as drivers spread over a real fleet.
Publish: each host in its own transaction (`FleetStore.publish`), timed over the whole fleet. Place: `--places`
calls of `FleetStore.place(limit=10)` for sources drawn from the lab (a vGPU of each release, a VF, a vDPA device),
timed one by one (median, p95). Naive: what a scheduler without devmig's store would do: read every host type
with its document and run `devmig check` on each in Python, keeping those with room (a few calls, on the SQLite
store). Aim (issue 9): place p95 under 100 ms at 10,000 hosts x 32 types. PostgreSQL is a throwaway server
(devmig.testing.postgres).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from machine import machine, write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from devmig.compat import check  # noqa: E402
from devmig.fleet import schema  # noqa: E402
from devmig.fleet.records import HostRecord, TypeRecord  # noqa: E402
from devmig.fleet.store import FleetStore, _parse  # noqa: E402
from devmig.model import DeviceDescriptor, TypeCapability  # noqa: E402
from devmig.testing.postgres import postgres_server  # noqa: E402

BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"
AIM_MS = 100.0


def documents() -> tuple[list[TypeCapability], list[DeviceDescriptor]]:
    """Every capability document of the default lab, and sources: every lab device, each GPU also at each
    release (so sources and destinations cover the versions a fleet mixes)."""
    from tests.fleet.lab import lab_records

    records = lab_records()
    caps = {
        t.capability.model_dump_json(exclude={"available_instances"}): t.capability for r in records for t in r.types
    }
    sources = [d.descriptor for r in records for d in r.devices if d.descriptor is not None]
    releases = sorted({str(c.software_version) for c in caps.values() if c.type.startswith("simgpu")})
    gpu = [s for s in sources if s.type.startswith("simgpu")]
    sources += [
        DeviceDescriptor.model_validate({**s.model_dump(mode="json"), "software_version": release})
        for s in gpu
        for release in releases
    ]
    return list(caps.values()), sources


def variants(caps: list[TypeCapability], releases: int) -> list[TypeCapability]:
    """More distinct documents: each capability also at bugfix releases 1..`releases`, as a fleet mid-upgrade has."""
    out = list(caps)
    for cap in caps:
        v = cap.software_version
        for bugfix in range(1, releases + 1):
            version = f"{v.major}.{v.minor}.{v.bugfix + bugfix}"
            out.append(TypeCapability.model_validate({**cap.model_dump(mode="json"), "software_version": version}))
    return out


def fleet(hosts: int, types: int, caps: list[TypeCapability], seed: int = 1) -> list[HostRecord]:
    rng = random.Random(seed)
    out = []
    for index in range(hosts):
        # a host runs one release line of drivers: its types are drawn from a slice of the documents
        start = rng.randrange(len(caps))
        chosen = [caps[(start + k * 7) % len(caps)] for k in range(types)]
        records = tuple(
            TypeRecord(f"0000:{k // 8:02x}:{k % 8:02x}.0", cap.type, cap, rng.choice([0, 1, 2, 4, 8]))
            for k, cap in enumerate(chosen)
        )
        out.append(HostRecord(f"host-{index:05d}", records, kernel="6.12.117+deb12-amd64"))
    return out


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def naive(store: FleetStore, source: DeviceDescriptor) -> int:
    """Check every host type in Python: read them all with their documents, parse, check, keep those with room."""
    t, c = schema.host_types, schema.capabilities
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.available, c.c.document).join(c, c.c.id == t.c.capability_id)).all()
    _parse.cache_clear()  # a scheduler without the store's dedup parses what it reads
    return sum(1 for available, doc in rows if (available or 0) > 0 and check(source, _parse(doc)).compatible)


def measure(url: str, records: list[HostRecord], sources: list[DeviceDescriptor], places: int) -> dict[str, float]:
    with FleetStore.open(url) as store:
        publish = timed(lambda: [store.publish(r) for r in records])
        rng = random.Random(2)
        latencies = []
        found = 0
        for _ in range(places):
            source = rng.choice(sources)
            start = time.perf_counter()
            placement = store.place(source, limit=10)
            latencies.append(time.perf_counter() - start)
            found += bool(placement.candidates)
        latencies.sort()
        return {
            "publish_s": publish,
            "hosts_per_s": len(records) / publish,
            "median_ms": statistics.median(latencies) * 1000,
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
            "max_ms": latencies[-1] * 1000,
            "found": found / places,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--types", type=int, default=32)
    parser.add_argument("--places", type=int, default=200)
    parser.add_argument("--naive", type=int, default=3, help="naive placements to time (they are slow)")
    parser.add_argument("--bugfixes", type=int, default=4, help="bugfix releases added to each lab document")
    parser.add_argument("--write", type=Path, help="record the figures in this document's marked section")
    args = parser.parse_args()
    caps, sources = documents()
    caps = variants(caps, args.bugfixes)
    records = fleet(args.hosts, args.types, caps)
    distinct = len({t.capability.model_dump_json() for r in records for t in r.types})
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="devmig-fleet-bench-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/fleet.db"
        results["SQLite"] = measure(sqlite_url, records, sources, args.places)
        with postgres_server() as server:
            results["PostgreSQL"] = measure(server.new_database("fleet"), records, sources, args.places)
        with FleetStore.open(sqlite_url) as store:
            rng = random.Random(3)
            naive_times = [timed(lambda: naive(store, rng.choice(sources))) for _ in range(args.naive)]
    info = machine(str(REPO / ".venv" / "bin" / "python"))
    info.pop("mdevctl", None)
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/fleet.py --hosts {args.hosts} --types "
        f"{args.types} --places {args.places} --naive {args.naive}`.",
        "",
        "Machine:",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        f"Fleet: {args.hosts:,} hosts x {args.types} types = {args.hosts * args.types:,} host types, {distinct} "
        f"distinct capability documents; {len(sources)} sources drawn at random for the placements.",
        "",
        "| store | publish, whole fleet | hosts/s | place median ms | place p95 ms | place max ms | aim p95 < 100 ms |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for name, r in results.items():
        verdict = "pass" if r["p95_ms"] < AIM_MS else "FAIL"
        lines.append(
            f"| {name} | {r['publish_s']:.1f} s | {r['hosts_per_s']:,.0f} | {r['median_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['max_ms']:.1f} | {verdict} |"
        )
    naive_ms = [t * 1000 for t in naive_times]
    lines += [
        f"| naive: check every host type in Python (SQLite) | | | {statistics.median(naive_ms):,.0f} | "
        f"{max(naive_ms):,.0f} (max of {len(naive_ms)}) | | |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, BEGIN, END, "Fleet: publish and place at 10,000 hosts", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
