"""Freshness and the publish that writes only what changed, on SQLite and PostgreSQL: last_seen and generation,
heartbeats, stale hosts left out of place and reported, and publish_many. The clock is every call's `now`."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update

from devmig.errors import InputError
from devmig.fleet import schema
from devmig.fleet.records import DeviceRecord, HostRecord
from devmig.fleet.store import FleetStore, StoreError
from tests.fleet.lab import LAB_HOSTS, lab_records
from tests.fleet.test_claims import gpu_host
from tests.provision.conftest import gpu_source

NOW = 2_000_000.0


@pytest.fixture
def store(store_url: str) -> Iterator[FleetStore]:
    with FleetStore.open(store_url, stale_after=600) as opened:
        yield opened


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def comparable(record: HostRecord) -> tuple[object, ...]:
    """What a host's inventory holds, whatever order it was given in."""
    return (
        record.name,
        record.kernel,
        record.warnings,
        sorted(
            (t.parent, t.type_id, t.available, canonical(t.capability.model_dump(exclude={"available_instances"})))
            for t in record.types
        ),
        sorted(
            (d.kind, d.name, d.parent, d.type_id, canonical(d.descriptor.model_dump() if d.descriptor else None))
            for d in record.devices
        ),
    )


def assert_counts_match_rows(store: FleetStore) -> None:
    """The per-document counts publish maintains equal a count of the host types (what placement's summary trusts)."""
    c, t = schema.capabilities, schema.host_types
    with store.engine.connect() as conn:
        kept = {row.id: (row.types, row.hosts) for row in conn.execute(select(c.c.id, c.c.types, c.c.hosts))}
        counted = {
            cap: (int(types), int(hosts))
            for cap, types, hosts in conn.execute(
                select(t.c.capability_id, func.count(), func.count(t.c.host_id.distinct())).group_by(t.c.capability_id)
            )
        }
    assert kept == {cap: counted.get(cap, (0, 0)) for cap in kept}


def test_last_seen_and_generation(store: FleetStore) -> None:
    beta = next(r for r in lab_records() if r.name == "beta")
    first = store.publish(beta, now=NOW)
    assert (first.generation, first.last_seen, first.published) == (1, NOW, NOW)
    # the same inventory, its types and devices listed in another order: the generation stays, last_seen moves
    shuffled = replace(beta, types=beta.types[::-1], devices=beta.devices[::-1])
    again = store.publish(shuffled, now=NOW + 10)
    assert (again.generation, again.last_seen) == (1, NOW + 10)
    stored = store.host("beta")
    assert (stored.generation, stored.last_seen, stored.published) == (1, NOW + 10, NOW + 10)
    # one free count changes: a new generation
    changed = replace(beta, types=(replace(beta.types[0], available=0), *beta.types[1:]))
    assert store.publish(changed, now=NOW + 20).generation == 2
    # a heartbeat moves last_seen only
    assert store.heartbeat("beta", now=NOW + 30) == NOW + 30
    after = store.host("beta")
    assert (after.generation, after.last_seen, after.published) == (2, NOW + 30, NOW + 20)
    assert comparable(after) == comparable(changed)


def test_a_heartbeat_of_an_unknown_host_is_an_input_error(store: FleetStore) -> None:
    store.publish(gpu_host("h1", 1), now=NOW)
    with pytest.raises(InputError) as info:
        store.heartbeat("omega", now=NOW)
    assert str(info.value) == (
        f"host omega: not in store {store.shown}, so it has no heartbeat to record (devmig inventory publish adds it)"
    )
    assert store.host("h1").last_seen == NOW


def test_a_republish_writes_what_changed_and_reads_back_whole(store: FleetStore) -> None:
    """Types gained, lost, with another free count or another document; devices gained and lost: the stored host
    is the last record published, and the documents' counts equal the rows, after every step of a random walk."""
    records = {r.name: r for r in lab_records()}
    pool = [t for r in records.values() for t in r.types]
    devices = [d for r in records.values() for d in r.devices]
    rng = random.Random(7)
    for record in records.values():
        store.publish(record, now=NOW)
    generations = dict.fromkeys(records, 1)
    for step in range(12):
        name = rng.choice(LAB_HOSTS)
        old = records[name]
        types = list(old.types)
        if types and rng.random() < 0.5:
            types.pop(rng.randrange(len(types)))
        kept = [replace(t, available=rng.choice([0, 1, 2, None])) if rng.random() < 0.3 else t for t in types]
        # another document under a key the host has, and a key it has not
        other = rng.choice(pool)
        if kept and (kept[0].parent, other.type_id) not in {(t.parent, t.type_id) for t in kept}:
            kept[0] = replace(kept[0], capability=other.capability, type_id=other.type_id)
        kept.append(replace(rng.choice(pool), parent=f"0000:9{step}:00.0"))
        new_devices = tuple(rng.sample(devices, rng.randrange(3)))
        record = replace(old, types=tuple(kept), devices=new_devices, warnings=(f"step {step}",))
        stored = store.publish(record, now=NOW + step)
        generations[name] += 1
        assert stored.generation == generations[name]
        records[name] = record
        assert comparable(store.host(name)) == comparable(record)
        assert_counts_match_rows(store)
    store.remove("beta")
    assert_counts_match_rows(store)


def test_publish_many_stores_each_host_whole(store: FleetStore) -> None:
    records = lab_records()
    stored = store.publish_many(records, now=NOW)
    assert [r.name for r in stored] == [r.name for r in records] and {r.generation for r in stored} == {1}
    for record in records:
        assert comparable(store.host(record.name)) == comparable(record)
    assert_counts_match_rows(store)
    # again, two of them changed: only those move on
    changed = [
        replace(r, devices=()) if r.name == "alpha" else replace(r, kernel="6.13.0") if r.name == "gamma" else r
        for r in records
    ]
    again = store.publish_many(changed, now=NOW + 5)
    assert {r.name: r.generation for r in again} == {r.name: 2 if r.name in ("alpha", "gamma") else 1 for r in records}
    assert store.host("alpha").devices == () and store.host("gamma").kernel == "6.13.0"
    assert {r.last_seen for r in store.hosts()} == {NOW + 5}
    with pytest.raises(InputError, match="host beta: given twice in one publish"):
        store.publish_many([records[1], records[1]])
    assert store.publish_many([]) == []


def test_publish_many_is_one_transaction(store: FleetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the hosts' rows were written leaves none of them: not the new hosts, not the changes."""
    records = lab_records()
    store.publish(records[0], now=NOW)

    def fail(*args: object) -> None:
        raise StoreError("the counts could not be written")

    monkeypatch.setattr(FleetStore, "_count", staticmethod(fail))
    with pytest.raises(StoreError, match="the counts could not be written"):
        store.publish_many([replace(records[0], devices=()), *records[1:]], now=NOW + 1)
    assert [h.name for h in store.hosts()] == [records[0].name]
    assert comparable(store.host(records[0].name)) == comparable(records[0])


def stale_fleet(store: FleetStore) -> None:
    """fresh (seen 10 s ago), old (1000 s ago), never (no sign of life recorded), each with one free simgpu-2G."""
    store.publish(gpu_host("fresh", 1), now=NOW - 10)
    store.publish(gpu_host("old", 4), now=NOW - 1000)
    store.publish(gpu_host("never", 8), now=NOW)
    with store.engine.begin() as conn:
        conn.execute(update(schema.hosts).where(schema.hosts.c.name == "never").values(last_seen=None))


def test_place_leaves_out_stale_and_never_seen_hosts(store: FleetStore) -> None:
    stale_fleet(store)
    placement = store.place(gpu_source(), now=NOW)
    assert [c.host for c in placement.candidates] == ["fresh"] and placement.stale_after == 600
    (fresh,) = placement.candidates
    assert (fresh.last_seen, fresh.generation) == (NOW - 10, 1)
    (stale,) = [r for r in placement.refused if r.code == "stale"]
    assert (stale.types, stale.hosts) == (2, 2)
    # the example is the most recently seen of them
    assert stale.message == (
        "stale: last seen 1000 s ago, host old (hosts are left out 600 s after their last publish or heartbeat)"
    )
    assert [r.code for r in placement.refused] == ["stale"]
    # freshness off: every host, by free instances
    assert [c.host for c in store.place(gpu_source(), now=NOW, stale_after=0).candidates] == ["never", "old", "fresh"]
    # a longer TTL takes old back; never-seen stays out
    longer = store.place(gpu_source(), now=NOW, stale_after=2000)
    assert [c.host for c in longer.candidates] == ["old", "fresh"]
    assert [(r.code, r.types, r.hosts) for r in longer.refused] == [("stale", 1, 1)]
    assert longer.refused[0].message.startswith("stale: never seen (no publish or heartbeat recorded), host never")
    # a heartbeat brings a host back
    store.heartbeat("old", now=NOW - 5)
    assert [c.host for c in store.place(gpu_source(), now=NOW).candidates] == ["old", "fresh"]


def test_a_claim_never_lands_on_a_stale_host(store: FleetStore) -> None:
    stale_fleet(store)
    first = store.place(gpu_source(), claim=60, now=NOW).claim
    assert first is not None and first.host == "fresh"
    full = store.place(gpu_source(), claim=60, now=NOW)
    assert full.claim is None and full.candidates == []
    assert sorted((r.code, r.types) for r in full.refused) == [("no-free-instance", 1), ("stale", 2)]


STALE = ("beta", "delta", "zeta")


@pytest.mark.parametrize("stale_after", [0, 600])
def test_every_host_type_is_a_candidate_or_refused_once(store: FleetStore, stale_after: float) -> None:
    """The lab, three hosts of it stale (zeta with its full simgpu-2G): the candidates and the refusals' type counts
    add up to the fleet, so a stale host's types are counted as stale and under no other reason."""
    for record in lab_records():
        store.publish(record, now=NOW - (5000 if record.name in STALE else 0))
    placement = store.place(gpu_source(), limit=10_000, now=NOW, stale_after=stale_after)
    total = sum(len(r.types) for r in store.hosts())
    assert len(placement.candidates) + sum(r.types for r in placement.refused) == total == placement.host_types
    stale = [r for r in placement.refused if r.code == "stale"]
    if stale_after:
        assert [(r.types, r.hosts) for r in stale] == [(sum(len(store.host(name).types) for name in STALE), 3)]
        assert "beta" not in {c.host for c in placement.candidates}
        assert "no-free-instance" not in {r.code for r in placement.refused}  # zeta's, stale
    else:
        assert stale == [] and "beta" in {c.host for c in placement.candidates}


def test_the_ttl_default_and_its_spellings(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from devmig.fleet.freshness import STALE_AFTER, parse_stale_after

    monkeypatch.delenv("DEVMIG_STALE_AFTER", raising=False)
    with FleetStore.open(store_url) as opened:
        assert opened.stale_after == STALE_AFTER
    monkeypatch.setenv("DEVMIG_STALE_AFTER", "never")
    with FleetStore.open(store_url) as opened:
        assert opened.stale_after is None
    monkeypatch.setenv("DEVMIG_STALE_AFTER", "soon")
    with pytest.raises(InputError, match=r"\$DEVMIG_STALE_AFTER: stale-after 'soon': expected seconds"):
        FleetStore.open(store_url)
    assert [parse_stale_after(x) for x in ("90", "0", "never", "NEVER", "1.5")] == [90.0, None, None, None, 1.5]
    with pytest.raises(InputError, match="expected seconds"):
        parse_stale_after("-1")


def test_a_host_record_with_devices_only(store: FleetStore) -> None:
    """A host with no types at all still has a generation and can go stale (counted as a stale host)."""
    bare = HostRecord("bare", devices=(DeviceRecord("ccw", "0.0.0001", "0.0.0000", None),))
    assert store.publish(bare, now=NOW - 5000).generation == 1
    store.publish(gpu_host("fresh", 1), now=NOW)
    placement = store.place(gpu_source(), now=NOW)
    assert [(r.code, r.types, r.hosts) for r in placement.refused] == [("stale", 0, 1)]
