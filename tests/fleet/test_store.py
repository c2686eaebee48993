"""The fleet store on SQLite and on PostgreSQL: publish, read back, place, and the SQL narrowing held to the exact
check (the same tests run on both databases through the `store_url` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update

from devmig.compat import check
from devmig.compat.rank import candidate_rank
from devmig.errors import InputError
from devmig.fleet import schema
from devmig.fleet.records import HostRecord, TypeRecord
from devmig.fleet.store import FleetStore, StoreError, normalise_url
from devmig.host import vdpa
from devmig.model import DeviceDescriptor
from devmig.sim.vdpa import SimVdpa
from tests.fleet.lab import LAB_HOSTS, lab_records, publish_lab
from tests.provision.conftest import gpu_source, vf_source


@pytest.fixture
def store(store_url: str) -> Iterator[FleetStore]:
    with FleetStore.open(store_url) as opened:
        yield opened


def test_an_inventory_reads_back_as_published(store: FleetStore) -> None:
    records = {r.name: r for r in lab_records()}
    for record in records.values():
        store.publish(record, now=1000.0)
    assert [r.name for r in store.hosts()] == sorted(LAB_HOSTS)
    alpha = store.host("alpha")
    original = records["alpha"]
    assert alpha.published == 1000.0 and alpha.kernel == original.kernel
    assert sorted((t.parent, t.type_id, t.available) for t in alpha.types) == sorted(
        (t.parent, t.type_id, t.available) for t in original.types
    )
    by_key = {(t.parent, t.type_id): t.capability for t in original.types}
    for stored in alpha.types:
        # the document comes back whole, less the free count (that is the host type's, not the document's)
        assert stored.capability == by_key[(stored.parent, stored.type_id)].model_copy(
            update={"available_instances": None}
        )
    assert [(d.kind, d.name, d.descriptor) for d in alpha.devices] == [
        (d.kind, d.name, d.descriptor) for d in original.devices
    ]
    with pytest.raises(InputError, match="host omega: not in store"):
        store.host("omega")


def test_a_device_of_a_kind_devmig_does_not_publish_is_a_store_error(store: FleetStore) -> None:
    publish_lab(store)
    with store.engine.begin() as conn:
        conn.execute(update(schema.devices).values(kind="usb"))
    with pytest.raises(StoreError, match="a stored device has kind 'usb': the store was written by another program"):
        store.host("alpha")


def test_a_republish_replaces_the_host_and_documents_are_stored_once(store: FleetStore) -> None:
    publish_lab(store)
    with store.engine.connect() as conn:
        documents = conn.execute(select(func.count()).select_from(schema.capabilities)).scalar_one()
    beta = store.host("beta")
    # beta loses a type and the free count of another changes
    fewer = replace(beta, types=tuple(replace(t, available=1) for t in beta.types[1:]))
    store.publish(fewer)
    again = store.host("beta")
    assert len(again.types) == len(beta.types) - 1 and {t.available for t in again.types} == {1}
    publish_lab(store)  # the same documents again: no new rows
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.capabilities)).scalar_one() == documents
        distinct = {
            t.capability.model_dump_json(exclude={"available_instances"}) for r in lab_records() for t in r.types
        }
        assert documents == len(distinct)
    store.remove("beta")
    assert "beta" not in {r.name for r in store.hosts()}


def test_place_ranks_as_plan_does_and_summarises_the_refusals(store: FleetStore) -> None:
    publish_lab(store)
    source = gpu_source()
    placement = store.place(source, exclude=["alpha"])
    assert [(c.host, c.type_id, c.verdict.level, c.free) for c in placement.candidates] == [
        ("beta", "simgpu-2G", "identical", 4),
        ("gamma", "simgpu-2G", "compatible", 4),
    ]
    for candidate in placement.candidates:
        cap = candidate.capability.model_copy(update={"available_instances": candidate.free})
        assert candidate.rank == candidate_rank(source, cap, check(source, cap))
    assert [c.rank for c in placement.candidates] == sorted(c.rank for c in placement.candidates)
    refused = {r.code: (r.types, r.hosts) for r in placement.refused}
    assert refused["minor-older"] == (3, 3)  # delta's 1.1.0 types
    assert refused["major-mismatch"] == (3, 3)  # epsilon's 2.0.0 types
    assert refused["no-free-instance"] == (1, 1)  # zeta's simgpu-2G is full
    assert refused["param-value-not-allowed"][0] >= 6  # the 1G and 4G types
    assert placement.checked < len({t.capability.model_dump_json() for r in store.hosts() for t in r.types})


def test_a_type_published_while_placing_is_reported_not_checked(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gamma publishes after SQL narrowed: its types were never checked, so no reason is guessed for them (they used
    to be called minor-older, though 1.3.0 is newer than the source). PostgreSQL only: each statement of a READ
    COMMITTED transaction sees what was committed before it; SQLite reads one snapshot, where gamma is unseen."""
    with FleetStore.open(pg_database) as store:
        records = {record.name: record for record in lab_records()}
        for name in LAB_HOSTS:
            if name != "gamma":
                store.publish(records[name])
        judge = FleetStore._judge

        def judge_then_publish(self: FleetStore, *args: object, **kwargs: object) -> object:
            judged = judge(self, *args, **kwargs)  # type: ignore[arg-type]
            store.publish(records["gamma"])
            return judged

        monkeypatch.setattr(FleetStore, "_judge", judge_then_publish)
        placement = store.place(gpu_source(), exclude=["alpha"])
        refused = {r.code: r for r in placement.refused}
        # gamma's three 1.3.0 types (host counts add up per document: one host each)
        assert (refused["not-checked"].types, refused["not-checked"].hosts) == (3, 3)
        assert (
            "1.3.0" in refused["not-checked"].message
            and "published while this placement ran" in refused["not-checked"].message
        )
        assert refused["minor-older"].types == 3  # delta's 1.1.0 types, and no more
        assert [c.host for c in placement.candidates] == ["beta"]


def sources() -> list[DeviceDescriptor]:
    backend = SimVdpa()
    dev = backend.add("v0", "vdpasim_net", mac="52:54:00:00:00:01")
    return [gpu_source(), vf_source(), vdpa.descriptor(dev, backend.config("v0"))]


@pytest.mark.parametrize("index", range(3), ids=["gpu", "vf", "vdpa"])
def test_sql_narrowing_never_loses_a_host_the_exact_check_accepts(store: FleetStore, index: int) -> None:
    """The store's answer is the naive one: check every stored type in Python, keep those with room."""
    publish_lab(store)
    source = sources()[index]
    placed = {(c.host, c.parent, c.type_id) for c in store.place(source, limit=10_000).candidates}
    naive = {
        (r.name, t.parent, t.type_id)
        for r in store.hosts()
        for t in r.types
        if check(source, t.capability).compatible and (t.available is None or t.available > 0)
    }
    assert placed == naive and placed


def test_a_limit_and_an_empty_fleet(store: FleetStore) -> None:
    assert store.place(gpu_source()).candidates == []
    publish_lab(store)
    assert len(store.place(gpu_source(), limit=1).candidates) == 1
    assert store.place(gpu_source(), limit=0).candidates == []


def test_unknown_free_counts_are_offered_after_known_ones(store: FleetStore) -> None:
    beta = next(r for r in lab_records() if r.name == "beta")
    store.publish(beta)
    unknown = HostRecord("mystery", tuple(replace(t, available=None) for t in beta.types))
    store.publish(unknown)
    placed = store.place(gpu_source())
    assert [(c.host, c.free) for c in placed.candidates] == [("beta", 4), ("mystery", None)]


def test_urls_and_errors() -> None:
    assert normalise_url("/tmp/x.db") == "sqlite:////tmp/x.db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(InputError, match="store URL"):
        FleetStore.open("sqlite://:bad:url")
    with pytest.raises(StoreError) as info:
        FleetStore.open("postgresql://devmig:secret@127.0.0.1:9/fleet")
    assert "secret" not in str(info.value) and "127.0.0.1:9" in str(info.value)


def test_type_records_keep_their_parent(store: FleetStore) -> None:
    cap = next(t.capability for r in lab_records() for t in r.types if t.type_id == "simgpu-2G")
    record = HostRecord(
        "two-gpus", (TypeRecord("0000:00:02.0", "simgpu-2G", cap, 2), TypeRecord("0000:81:00.0", "simgpu-2G", cap, 3))
    )
    store.publish(record)
    placed = store.place(gpu_source())
    assert [(c.parent, c.free) for c in placed.candidates] == [("0000:81:00.0", 3), ("0000:00:02.0", 2)]


def test_a_postgresql_store_that_never_answers_is_unavailable_after_the_connect_timeout() -> None:
    """A host that takes the connection and says nothing (a hung server, a half-open firewall) would hold a publish
    or `place` for the system's TCP timeout: libpq's connect_timeout (10 s unless the URL sets its own) ends it."""
    import socket

    from devmig.fleet.store import CONNECT_TIMEOUT, pg_connect_args

    assert pg_connect_args({}) == {"connect_timeout": CONNECT_TIMEOUT}
    assert pg_connect_args({"connect_timeout": "3"}) == {}  # the URL's own wins
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(StoreError) as info:
            FleetStore.open(f"postgresql://devmig@127.0.0.1:{port}/fleet?connect_timeout=1")
    assert info.value.reason == "unavailable" and "timeout" in str(info.value), info.value
