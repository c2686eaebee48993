"""The agent on the real kernel: no udevd runs in the guest, so it listens to the kernel's own uevents (pyudev's
"kernel" source), sees an mtty mdev created and removed, and a vdpa_sim device added and deleted (the vdpa family
has no multicast group: the vdpa bus's uevents tell), and publishes each to an SQLite store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from devmig.agent.config import AgentConfig
from devmig.agent.loop import Agent
from devmig.agent.udev import udevd_running
from devmig.errors import DevmigError
from devmig.fleet.records import HostRecord
from devmig.fleet.store import FleetStore
from tests.kernel.guest.conftest import devmig

pytestmark = pytest.mark.kernel

T = TypeVar("T")
MTTY = Path("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2")
UUID = "5b0a4c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b"


def eventually(check: Callable[[], T | None], what: str, timeout: float = 120.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except DevmigError:  # the host not in the store yet
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout:g} s: {what}")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Agent, FleetStore]]:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    store = FleetStore.open(url)
    agent = Agent(AgentConfig(store=url, name="guest", events="auto", debounce=0.05, max_delay=1.0))
    thread = threading.Thread(target=agent.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    assert agent.ready.wait(120)
    try:
        yield agent, store
    finally:
        agent.stop()
        thread.join(timeout=60)
        store.close()


def test_pyudev_loads_and_no_udevd_runs() -> None:
    import pyudev

    assert pyudev.Context() is not None
    assert not udevd_running()  # so "auto" means the kernel's own uevents


def test_the_agent_publishes_an_mtty_mdev_created_and_removed(agent: tuple[Agent, FleetStore]) -> None:
    running, store = agent
    assert running._source is not None and running._source.name == "kernel"
    first = eventually(lambda: store.host("guest"), "the first publish")
    assert UUID not in {d.name for d in first.devices}
    (MTTY / "create").write_text(UUID)
    try:

        def published() -> HostRecord | None:
            record = store.host("guest")
            return record if UUID in {d.name for d in record.devices} else None

        stored = eventually(published, "the mdev published")
        assert next(d for d in stored.devices if d.name == UUID).type_id == "mtty-2"
        free = {(t.parent, t.type_id): t.available for t in stored.types}
        assert free[("mtty", "mtty-2")] == int((MTTY / "available_instances").read_text())
    finally:
        Path(f"/sys/bus/mdev/devices/{UUID}/remove").write_text("1")
    eventually(lambda: UUID not in {d.name for d in store.host("guest").devices}, "the removal published")
    assert running.metrics.events.labels("mdev")._value.get() >= 2


def test_the_agent_publishes_a_vdpa_device(agent: tuple[Agent, FleetStore]) -> None:
    running, store = agent
    eventually(lambda: store.host("guest"), "the first publish")
    added = devmig("vdpa", "dev", "add", "name", "agent-vd", "mgmtdev", "vdpasim_net")
    assert added.code == 0, added.err
    try:
        eventually(lambda: "agent-vd" in {d.name for d in store.host("guest").devices}, "the vDPA device published")
    finally:
        devmig("vdpa", "dev", "del", "agent-vd")
    eventually(lambda: "agent-vd" not in {d.name for d in store.host("guest").devices}, "its deletion published")
    assert running.metrics.events.labels("vdpa")._value.get() >= 2
