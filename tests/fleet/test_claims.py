"""Claims: a lease on one instance, counted against the free instances until released or expired; and a race of
many schedulers claiming at once, which never gets more claims than free instances (both databases)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from devmig.errors import InputError
from devmig.fleet.place import Claim
from devmig.fleet.records import HostRecord, TypeRecord
from devmig.fleet.store import FleetStore
from tests.fleet.lab import lab_records
from tests.provision.conftest import gpu_source

NOW = 1_000_000.0


@pytest.fixture
def store(store_url: str) -> Iterator[FleetStore]:
    with FleetStore.open(store_url) as opened:
        yield opened


def gpu_host(name: str, free: int) -> HostRecord:
    """A host with one simgpu-2G 1.2.0 type (the type alpha's running vGPU needs) and `free` instances."""
    beta = next(r for r in lab_records() if r.name == "beta")
    (gpu,) = [t for t in beta.types if t.type_id == "simgpu-2G"]
    return HostRecord(name, (TypeRecord(gpu.parent, gpu.type_id, gpu.capability, free),))


def test_a_claim_counts_until_released_or_expired(store: FleetStore) -> None:
    store.publish(gpu_host("h1", 2))
    first = store.place(gpu_source(), claim=60, holder="nova-1", now=NOW).claim
    assert first is not None and (first.host, first.holder, first.expires) == ("h1", "nova-1", NOW + 60)
    assert [c.free for c in store.place(gpu_source(), now=NOW).candidates] == [1]
    second = store.place(gpu_source(), claim=60, now=NOW).claim
    assert second is not None
    full = store.place(gpu_source(), claim=60, now=NOW)
    assert full.candidates == [] and full.claim is None
    assert [r.code for r in full.refused] == ["no-free-instance"]
    assert {c.id for c in store.claims(now=NOW)} == {first.id, second.id}
    store.release(first.id)
    assert [c.free for c in store.place(gpu_source(), now=NOW).candidates] == [1]
    with pytest.raises(InputError, match="released already, or never made"):
        store.release(first.id)
    later = NOW + 61  # the second claim expired
    assert [c.free for c in store.place(gpu_source(), now=later).candidates] == [2]
    assert store.claims(now=later) == [] and len(store.claims(now=later, expired=True)) == 1
    assert store.purge(now=later) == 1 and store.claims(now=later, expired=True) == []


def test_a_claim_moves_to_the_next_host_and_survives_a_republish(store: FleetStore) -> None:
    store.publish(gpu_host("big", 1))
    store.publish(gpu_host("small", 1))
    a = store.place(gpu_source(), claim=60, now=NOW).claim
    b = store.place(gpu_source(), claim=60, now=NOW).claim
    assert a is not None and b is not None and {a.host, b.host} == {"big", "small"}
    store.publish(gpu_host("big", 1))  # republished with the same free count: the claim still holds it
    assert store.place(gpu_source(), claim=60, now=NOW).claim is None
    assert store.place(gpu_source(), claim=60, now=NOW, exclude=["big", "small"]).claim is None


def test_a_claim_must_last(store: FleetStore) -> None:
    store.publish(gpu_host("h1", 1))
    with pytest.raises(InputError, match="must last a positive time"):
        store.place(gpu_source(), claim=0)


@pytest.mark.parametrize(("free", "schedulers"), [(5, 16), (1, 8)])
def test_concurrent_claims_never_exceed_the_free_instances(store_url: str, free: int, schedulers: int) -> None:
    with FleetStore.open(store_url) as setup:
        setup.publish(gpu_host("only", free))
    start = threading.Barrier(schedulers)
    granted: list[Claim] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def schedule(index: int) -> None:
        try:
            with FleetStore.open(store_url) as mine:  # each scheduler its own connection pool
                start.wait()
                claim = mine.place(gpu_source(), claim=60, holder=f"s{index}", now=NOW).claim
            if claim is not None:
                with lock:
                    granted.append(claim)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=schedule, args=(i,)) for i in range(schedulers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(granted) == free  # never more, and (given time) never fewer
    with FleetStore.open(store_url) as check:
        assert len(check.claims(now=NOW)) == free
        assert check.place(gpu_source(), now=NOW).candidates == []
