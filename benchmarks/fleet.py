#!/usr/bin/env python3
"""Fleet benchmark: publish a simulated fleet and time `place` on SQLite and PostgreSQL, beside the naive approach;
then 1,000 agents heartbeating and republishing on PostgreSQL while `place` is timed.

    .venv/bin/python benchmarks/fleet.py [--hosts 10000] [--types 32] [--places 200] [--agents 1000]
        [--load-seconds 30] [--interval 10] [--write docs/performance.md]

The fleet: `--hosts` hosts with `--types` types each, built from the default lab's real capability documents
(simgpu types of every driver release, simnic VFs, mtty, vDPA management devices) with varied releases, parents
and free counts, so a few hundred distinct documents spread over every host, as drivers spread over a real fleet.
Publish, each timed over the whole fleet into a database of its own: before (the publish of schema 0001, kept here
as the peer: one transaction per host, every row of the host deleted and inserted again, one UPDATE per document
count), now (`FleetStore.publish`: one transaction per host, only what changed written, the counts in one
pipelined statement) and batched (`FleetStore.publish_many`, 100 hosts per transaction). Then, on the store of
"now": republishing `--republish` hosts unchanged (an agent's periodic publish), republishing them with one free
count changed (a VM started), and `--republish` heartbeats (`FleetStore.heartbeat`), one by one. Place: `--places`
calls of `FleetStore.place(limit=10)` for sources drawn from the lab (a vGPU of each release, a VF, a vDPA device),
timed one by one (median, p95). Naive: what a scheduler without devmig's store would do: read every host type
with its document and run `devmig check` on each in Python, keeping those with room (a few calls, on the SQLite
store). Aim (issue 9): place p95 under 100 ms at 10,000 hosts x 32 types. PostgreSQL is a throwaway server
(devmig.testing.postgres).

Load (PostgreSQL): the first `--agents` hosts are agents, served by `--workers` processes, each with its own
connection pool, for `--load-seconds`: every agent in turn sends a heartbeat, and every tenth turn republishes its
inventory with a free count changed instead. Meanwhile the main process places (limit 10) one source after
another. Twice: flat out (what the store sustains on this machine) and paced, each agent one message every
`--interval` seconds (a fleet's real load); place's latency under each beside its latency idle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from machine import machine, write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from sqlalchemy import delete, func, insert, select, update  # noqa: E402

from devmig.compat import check  # noqa: E402
from devmig.fleet import schema  # noqa: E402
from devmig.fleet.records import HostRecord, TypeRecord  # noqa: E402
from devmig.fleet.store import FleetStore, _document, _parse, _unique_types  # noqa: E402
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


def previous_publish(store: FleetStore, record: HostRecord) -> None:
    """The peer: publish as schema 0001's store did, one transaction per host: the host's row selected and
    updated or inserted, its counts read, every type and device row deleted and inserted again, and one UPDATE
    per document whose counts moved (with each type's document dumped three times, as it was)."""
    hosts, t, d, c = schema.hosts, schema.host_types, schema.devices, schema.capabilities
    when = time.time()
    with store._write() as conn:
        values = {"kernel": record.kernel, "published": when, "warnings": "[]"}
        found = conn.execute(select(hosts.c.id).where(hosts.c.name == record.name).with_for_update()).scalar()
        if found is not None:
            conn.execute(update(hosts).where(hosts.c.id == found).values(**values))
            host_id = int(found)
        else:
            host_id = int(
                conn.execute(insert(hosts).values(name=record.name, **values).returning(hosts.c.id)).scalar_one()
            )
        rows = conn.execute(
            select(t.c.capability_id, func.count()).where(t.c.host_id == host_id).group_by(t.c.capability_id)
        )
        before = Counter({int(cap_id): int(count) for cap_id, count in rows})
        conn.execute(delete(t).where(t.c.host_id == host_id))
        conn.execute(delete(d).where(d.c.host_id == host_id))
        ids = store._capability_ids(conn, {_document(tr.capability): tr.capability for tr in record.types})
        conn.execute(
            insert(t),
            [
                {
                    "host_id": host_id,
                    "parent": tr.parent,
                    "type_id": tr.type_id,
                    "capability_id": ids[_document(tr.capability)],
                    "available": tr.available,
                }
                for tr in _unique_types(record.types)
            ],
        )
        after = Counter(ids[_document(tr.capability)] for tr in _unique_types(record.types))
        for cap_id in sorted(before.keys() | after.keys()):
            types = after[cap_id] - before[cap_id]
            moved = (cap_id in after) - (cap_id in before)
            if types or moved:
                conn.execute(update(c).where(c.c.id == cap_id).values(types=c.c.types + types, hosts=c.c.hosts + moved))


def each(call: Callable[[HostRecord], object], records: list[HostRecord]) -> None:
    for record in records:
        call(record)


def one_changed(record: HostRecord, turn: int) -> HostRecord:
    """The record with its first type's free count changed (a VM started or stopped)."""
    first, *rest = record.types
    return replace(record, types=(replace(first, available=(turn % 5) + 10), *rest))


def place_latencies(store: FleetStore, sources: list[DeviceDescriptor], places: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    latencies = []
    for _ in range(places):
        source = rng.choice(sources)
        start = time.perf_counter()
        store.place(source, limit=10)
        latencies.append(time.perf_counter() - start)
    return sorted(latencies)


def aim(figures: dict[str, float]) -> str:
    return "pass" if figures["p95_ms"] < AIM_MS else "FAIL"


def p95(latencies: list[float]) -> float:
    return latencies[int(0.95 * (len(latencies) - 1))]


def measure(
    urls: Callable[[str], str],
    records: list[HostRecord],
    sources: list[DeviceDescriptor],
    places: int,
    republish: int,
) -> dict[str, float]:
    """`urls(name)` gives a fresh store of this database for each way of publishing."""
    out: dict[str, float] = {}
    with FleetStore.open(urls("before")) as before:
        out["before"] = len(records) / timed(lambda: each(lambda r: previous_publish(before, r), records))
    with FleetStore.open(urls("batched")) as batched:
        out["batched"] = len(records) / timed(
            lambda: [batched.publish_many(records[i : i + 100]) for i in range(0, len(records), 100)]
        )
    with FleetStore.open(urls("now")) as store:
        publish = timed(lambda: [store.publish(r) for r in records])
        out["publish_s"], out["now"] = publish, len(records) / publish
        sample = records[:republish]
        out["unchanged"] = len(sample) / timed(lambda: [store.publish(r) for r in sample])
        out["changed"] = len(sample) / timed(lambda: [store.publish(one_changed(r, 1)) for r in sample])
        out["heartbeats"] = len(sample) / timed(lambda: [store.heartbeat(r.name) for r in sample])
        latencies = place_latencies(store, sources, places, 2)
    out |= {
        "median_ms": statistics.median(latencies) * 1000,
        "p95_ms": p95(latencies) * 1000,
        "max_ms": latencies[-1] * 1000,
    }
    return out


def agent_loop(
    url: str, records: list[HostRecord], index: int, workers: int, stop: Any, results: Any, interval: float
) -> None:
    """One worker process: its share of the agents, in turn, until told to stop; a turn every `interval` seconds
    (0: flat out); its counts go to `results`."""
    mine = records[index::workers]
    done = Counter[str]()
    try:
        with FleetStore.open(url) as store:
            turn = 0
            while not stop.is_set():
                began = time.monotonic()
                for position, record in enumerate(mine):
                    if stop.is_set():
                        break
                    if (turn + position * workers + index) % 10 == 0:  # a tenth of the agents each turn
                        store.publish(one_changed(record, turn))
                        done["publishes"] += 1
                    else:
                        store.heartbeat(record.name)
                        done["heartbeats"] += 1
                turn += 1
                if interval:
                    stop.wait(max(0.0, began + interval - time.monotonic()))
        results.put((dict(done), None))
    except BaseException as exc:  # reported by the parent: a worker's failure must not pass silently
        results.put((dict(done), repr(exc)))


def load(
    url: str,
    records: list[HostRecord],
    sources: list[DeviceDescriptor],
    agents: int,
    workers: int,
    seconds: float,
    interval: float,
) -> dict[str, float]:
    """`agents` hosts heartbeating and republishing from `workers` processes, each agent once every `interval`
    seconds or flat out (0), while this process places. Processes: agents run on other hosts, they do not share
    the placing interpreter's lock."""
    context = multiprocessing.get_context("fork")
    stop, results = context.Event(), context.Queue()
    with FleetStore.open(url) as store:
        idle = place_latencies(store, sources, 50, 4)
        procs = [
            context.Process(target=agent_loop, args=(url, records[:agents], i, workers, stop, results, interval))
            for i in range(workers)
        ]
        started = time.perf_counter()
        for proc in procs:
            proc.start()
        busy: list[float] = []
        rng = random.Random(5)
        while time.perf_counter() - started < seconds:
            source = rng.choice(sources)
            start = time.perf_counter()
            store.place(source, limit=10)
            busy.append(time.perf_counter() - start)
        stop.set()
        counts = Counter[str]()
        for _ in procs:
            done, error = results.get(timeout=120)
            if error is not None:
                raise RuntimeError(f"an agent worker failed: {error}")
            counts.update(done)
        took = time.perf_counter() - started
        for proc in procs:
            proc.join()
    busy.sort()
    return {
        "seconds": took,
        "heartbeats": counts["heartbeats"] / took,
        "publishes": counts["publishes"] / took,
        "places": len(busy),
        "idle_median_ms": statistics.median(idle) * 1000,
        "idle_p95_ms": p95(idle) * 1000,
        "median_ms": statistics.median(busy) * 1000,
        "p95_ms": p95(busy) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--types", type=int, default=32)
    parser.add_argument("--places", type=int, default=200)
    parser.add_argument("--naive", type=int, default=3, help="naive placements to time (they are slow)")
    parser.add_argument("--bugfixes", type=int, default=4, help="bugfix releases added to each lab document")
    parser.add_argument("--republish", type=int, default=2000, help="hosts republished and heartbeats sent")
    parser.add_argument("--agents", type=int, default=1000, help="agents of the load run (0: no load run)")
    parser.add_argument("--workers", type=int, default=4, help="processes serving the agents")
    parser.add_argument("--load-seconds", type=float, default=30.0, help="seconds of each load run")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="the paced load run: seconds between an agent's messages"
    )
    parser.add_argument("--write", type=Path, help="record the figures in this document's marked section")
    args = parser.parse_args()
    caps, sources = documents()
    caps = variants(caps, args.bugfixes)
    records = fleet(args.hosts, args.types, caps)
    distinct = len({t.capability.model_dump_json() for r in records for t in r.types})
    results: dict[str, dict[str, float]] = {}
    loaded: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="devmig-fleet-bench-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/now.db"
        results["SQLite"] = measure(
            lambda name: f"sqlite:///{tmp}/{name}.db", records, sources, args.places, args.republish
        )
        with postgres_server() as server:
            results["PostgreSQL"] = measure(server.new_database, records, sources, args.places, args.republish)
            if args.agents:
                for pace, interval in (("flat out", 0.0), (f"one message every {args.interval:g} s", args.interval)):
                    loaded[pace] = load(
                        server.url_for("now"), records, sources, args.agents, args.workers, args.load_seconds, interval
                    )
        with FleetStore.open(sqlite_url) as store:
            rng = random.Random(3)
            naive_times = [timed(lambda: naive(store, rng.choice(sources))) for _ in range(args.naive)]
    info = machine(str(REPO / ".venv" / "bin" / "python"))
    info.pop("mdevctl", None)
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/fleet.py --hosts {args.hosts} --types "
        f"{args.types} --places {args.places} --naive {args.naive} --republish {args.republish} --agents "
        f"{args.agents} --workers {args.workers} --load-seconds {args.load_seconds:g} --interval {args.interval:g}`.",
        "",
        "Machine:",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        f"Fleet: {args.hosts:,} hosts x {args.types} types = {args.hosts * args.types:,} host types, {distinct} "
        f"distinct capability documents; {len(sources)} sources drawn at random for the placements.",
        "",
        "Publish, hosts/s (each column a store of its own, the whole fleet; the last three on the store of "
        f"'now', {args.republish:,} hosts each):",
        "",
        "| store | before: per host, every row replaced (peer) | now: per host | now: 100 hosts per transaction | "
        "republish unchanged | republish, one free count changed | heartbeats/s |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['before']:,.0f} | {r['now']:,.0f} ({r['now'] / r['before']:.1f}x) | "
            f"{r['batched']:,.0f} ({r['batched'] / r['before']:.1f}x) | {r['unchanged']:,.0f} | {r['changed']:,.0f} | "
            f"{r['heartbeats']:,.0f} |"
        )
    lines += [
        "",
        "Place, on the store of 'now' (10 candidates):",
        "",
        "| store | publish, whole fleet | place median ms | place p95 ms | place max ms | aim p95 < 100 ms |",
        "|---|--:|--:|--:|--:|---|",
    ]
    lines += [
        f"| {name} | {r['publish_s']:.1f} s | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.1f} | {aim(r)} |"
        for name, r in results.items()
    ]
    naive_ms = [t * 1000 for t in naive_times]
    lines += [
        f"| naive: check every host type in Python (SQLite) | | | {statistics.median(naive_ms):,.0f} | "
        f"{max(naive_ms):,.0f} (max of {len(naive_ms)}) | | |",
        "",
    ]
    if loaded:
        lines += [
            f"Load (PostgreSQL, the store of 'now'): {args.agents:,} agents served by {args.workers} processes, "
            f"{args.load_seconds:g} s each run; an agent sends a heartbeat, or every tenth time a republish with one "
            "free count changed; flat out (what the store sustains: the agents take every cycle of the 2 cores the "
            f"server and the placer also run on), then paced at one message per agent every {args.interval:g} s.",
            "",
            "| agents' pace | heartbeats/s | publishes/s | placements | place median ms, idle | place p95 ms, idle "
            "| place median ms, under load | place p95 ms, under load | aim p95 < 100 ms |",
            "|---|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        lines += [
            f"| {pace} | {r['heartbeats']:,.0f} | {r['publishes']:,.0f} | {r['places']:,.0f} | "
            f"{r['idle_median_ms']:.1f} | {r['idle_p95_ms']:.1f} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{aim(r)} |"
            for pace, r in loaded.items()
        ]
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, BEGIN, END, "Fleet: publish and place at 10,000 hosts", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
