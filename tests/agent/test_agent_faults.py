"""The store down at the agent's start, lost in the middle of a publish, or slow (a lock another connection holds):
the agent retries with backoff, keeps only the newest inventory, and publishes once the store answers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from devmig.fleet.store import FleetStore
from devmig.machine import open_host
from tests.agent.helpers import Proxy, agent_thread, eventually, fast
from tests.agent.test_agent_process import _blocked, holding

GPU_TYPES = "sys/class/mdev_bus/0000:00:02.0/mdev_supported_types"
UUIDS = ("cccccccc-0000-4000-8000-000000000001", "cccccccc-0000-4000-8000-000000000002")


@pytest.fixture
def proxy(pg_database: str) -> Iterator[tuple[Proxy, str]]:
    """A proxy in front of the test's database (down until a test brings it up), and the URL through it."""
    url = make_url(pg_database)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    proxy.down()


def devices(store: FleetStore, host: str = "beta") -> set[str]:
    return {d.name for d in store.host(host).devices}


def failures(running: object, reason: str) -> float:
    return float(running.agent.metrics.failures.labels(reason)._value.get())  # type: ignore[attr-defined]


def test_a_store_down_at_start_is_retried_until_it_comes_up(pg_database: str, proxy: tuple[Proxy, str]) -> None:
    gate, through = proxy
    store = FleetStore.open(pg_database)
    with agent_thread(fast(store=through, host="sim:beta")) as running:
        eventually(lambda: failures(running, "unavailable") >= 3, "three failed tries while the store is down")
        # a change while the store is down: the newest inventory is the one kept for the next try
        open_host("sim:beta").sysfs.write(f"{GPU_TYPES}/simgpu-1G/create", UUIDS[0])
        eventually(
            lambda: (p := running.agent.state.pending) is not None and UUIDS[0] in {d.name for d in p.devices},
            "the newest pending",
        )
        gate.up()
        eventually(lambda: UUIDS[0] in devices(store), "published once the store came up")
    assert store.host("beta").generation == 1  # one publish: the inventory before the change was never sent


def test_a_store_lost_in_the_middle_of_a_publish(pg_database: str, proxy: tuple[Proxy, str]) -> None:
    gate, through = proxy
    gate.up()
    store = FleetStore.open(pg_database)
    with agent_thread(fast(store=through, host="sim:beta")) as running:
        eventually(lambda: store.host("beta"), "the first publish")
        with holding(pg_database, "SELECT * FROM hosts WHERE name = 'beta' FOR UPDATE"):
            open_host("sim:beta").sysfs.write(f"{GPU_TYPES}/simgpu-1G/create", UUIDS[0])
            eventually(lambda: _blocked(pg_database) >= 1, "the publish waiting on the store")
            gate.down()  # the connection goes in the middle of the publish's transaction
            eventually(lambda: failures(running, "unavailable") >= 1, "the publish failed")
        assert UUIDS[0] not in devices(store)
        gate.up()
        eventually(lambda: UUIDS[0] in devices(store), "published once the store was back")


def test_a_slow_store_delays_the_publish_and_keeps_the_newest(store_url: str, tmp_path: Path) -> None:
    store = FleetStore.open(store_url)
    with agent_thread(fast(store=store_url, host="sim:beta")) as running:
        eventually(lambda: store.host("beta"), "the first publish")
        host = open_host("sim:beta")
        if store_url.startswith("sqlite"):
            lock = sqlite3.connect(make_url(store_url).database or "", isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # the database's write lock: the publish waits (busy_timeout)
        else:
            held = holding(store_url, "SELECT * FROM hosts WHERE name = 'beta' FOR UPDATE")
            held.__enter__()
        try:
            host.sysfs.write(f"{GPU_TYPES}/simgpu-1G/create", UUIDS[0])
            eventually(lambda: running.agent.state.in_flight is not None, "a publish under way")
            # meanwhile another change: read, and kept as the one publish that follows
            host.sysfs.write(f"{GPU_TYPES}/simgpu-1G/create", UUIDS[1])
            eventually(
                lambda: (p := running.agent.state.pending) is not None and UUIDS[1] in {d.name for d in p.devices},
                "the newer one pending",
            )
            assert not set(UUIDS) & devices(store)  # readers see the old inventory meanwhile
        finally:
            if store_url.startswith("sqlite"):
                lock.rollback() if lock.in_transaction else None
                lock.close()
            else:
                held.__exit__(None, None, None)
        eventually(lambda: set(UUIDS) <= devices(store), "both devices once the lock went")
    assert running.agent.publishes == 3  # the first, the one that waited, the newest
