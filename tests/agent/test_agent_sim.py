"""End to end on the simulator: agents for the default lab's hosts publish to SQLite and PostgreSQL, and every change
to a host (a device created or removed, a vDPA device added, a driver upgraded, the agent stopped) shows in `place`.
The agents run in threads of this process; test_agent_process.py runs them as processes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from devmig.fleet.store import FleetStore
from devmig.machine import open_host
from devmig.machine.lab import open_lab_host
from devmig.testing.sysfs_tree import SysfsTree
from tests.agent.helpers import agent_thread, candidates, eventually, fast
from tests.provision.conftest import gpu_source

GPU_TYPES = "sys/class/mdev_bus/0000:00:02.0/mdev_supported_types"
UUIDS = ("aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002")


@pytest.fixture
def store(store_url: str) -> FleetStore:
    opened = FleetStore.open(store_url)  # the schema is made once, before the agents start
    return opened


def test_agents_keep_place_current(store_url: str, store: FleetStore) -> None:
    source = gpu_source()  # alpha's running vGPU: simgpu-2G 1.2.0
    with (
        agent_thread(fast(store=store_url, host="sim:beta", heartbeat_interval=0.2)) as beta,
        agent_thread(fast(store=store_url, host="sim:gamma", heartbeat_interval=0.2)),
        agent_thread(fast(store=store_url, host="sim:delta", heartbeat_interval=0.2)),
    ):
        # beta (1.2.0) and gamma (1.3.0) can take it; delta's 1.1.0 is too old
        eventually(lambda: candidates(store, source) == {"beta", "gamma"}, "beta and gamma offered")
        # two 4G vGPUs fill beta's 8 GiB: no room for the 2G device there
        beta_host = open_host("sim:beta")
        for uuid in UUIDS:
            beta_host.sysfs.write(f"{GPU_TYPES}/simgpu-4G/create", uuid)
        eventually(lambda: candidates(store, source) == {"gamma"}, "beta full after two mdevs were created")
        assert {d.name for d in store.host("beta").devices} >= set(UUIDS)
        # one removed: room again
        beta_host.sysfs.write(f"sys/bus/mdev/devices/{UUIDS[0]}/remove", "1")
        eventually(lambda: candidates(store, source) == {"beta", "gamma"}, "beta offered after an mdev was removed")
        # a vDPA device added on beta is published with it
        beta_host.vdpa().add("vdpa-test", "vdpasim_net")
        eventually(lambda: "vdpa-test" in {d.name for d in store.host("beta").devices}, "beta's vDPA device")
        # gamma's driver upgraded to 2.0.0 (dropped ppgtt, a major bump): gamma can no longer take it
        open_lab_host("sim:gamma").sim.reload_driver("simgpu", "2.0.0")
        eventually(lambda: candidates(store, source) == {"beta"}, "gamma refused after its driver upgrade")
        gamma_gpu = [t for t in store.host("gamma").types if t.parent == "0000:00:02.0"]
        assert {str(t.capability.software_version) for t in gamma_gpu} == {"2.0.0"}
        # delta's driver upgraded to 1.2.3: now it can
        open_lab_host("sim:delta").sim.reload_driver("simgpu", "1.2.3")
        eventually(lambda: candidates(store, source) == {"beta", "delta"}, "delta offered after its upgrade")
        # beta's agent stops: once the others were seen after it, a TTL between the two leaves beta out
        beta.stop()
        stopped = store.host("beta").last_seen
        assert stopped is not None
        seen = eventually(
            lambda: (s := store.host("delta").last_seen) is not None and s > stopped + 0.5 and s,
            "delta's heartbeat after beta stopped",
        )
        ttl = (seen - stopped) / 2
        placement = store.place(source, now=seen, stale_after=ttl, limit=100)
        assert {c.host for c in placement.candidates} == {"delta"}
        assert any(r.code == "stale" and "host beta" in r.message for r in placement.refused)
        # with the TTL off beta is offered again: its rows are all there, only its freshness went
        assert "beta" in candidates(store, source, now=seen, stale_after=0)


def test_an_identical_inventory_costs_the_store_only_its_cheap_path(store_url: str, store: FleetStore) -> None:
    with agent_thread(fast(store=store_url, host="sim:beta", resync_interval=0.05)) as running:
        first = eventually(lambda: store.host("beta"), "the first publish")
        eventually(lambda: running.agent.publishes >= 5, "five re-reads published")
        again = store.host("beta")
    assert again.generation == first.generation == 1
    assert again.last_seen is not None and first.last_seen is not None and again.last_seen > first.last_seen


def test_a_burst_of_events_is_one_read(store_url: str, store: FleetStore) -> None:
    with agent_thread(fast(store=store_url, host="sim:beta", debounce=0.5, max_delay=5.0)) as running:
        eventually(lambda: store.host("beta"), "the first publish")
        host = open_host("sim:beta")
        for uuid in UUIDS:  # four events (add and bind of each) well inside one debounce window
            host.sysfs.write(f"{GPU_TYPES}/simgpu-1G/create", uuid)
        eventually(lambda: {d.name for d in store.host("beta").devices} >= set(UUIDS), "both mdevs")
        metrics = running.agent.metrics
        assert metrics.events.labels("mdev")._value.get() == 4
        assert metrics.coalesced._value.get() == 3
        assert store.host("beta").generation == 2  # one publish for the burst


def test_a_malformed_device_is_a_warning_and_the_rest_is_published(
    store_url: str, store: FleetStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = SysfsTree(tmp_path / "root")
    tree.osrelease("6.12.0")
    parent = tree.pci_function("0000:00:02.0", 0x1AF4, 0x10F0, driver="simgpu")
    tree.mdev_parent("0000:00:02.0", parent)
    tree.mdev_type(parent, "good", available_instances=3)
    tree.mdev_type(parent, "broken", available_instances="many")
    tree.mdev_type(parent, "garbled", migration_info="{not json")
    caplog.set_level(logging.WARNING, logger="devmig.agent")
    config = fast(store=store_url, sysfs_root=str(tree.root), name="odd", events="none")
    with agent_thread(config):
        record = eventually(lambda: store.host("odd"), "the publish")
    assert {t.type_id for t in record.types} >= {"good", "broken"}
    assert {t.type_id: t.available for t in record.types}["good"] == 3
    assert any("available_instances: expected a whole number, found 'many'" in w for w in record.warnings)
    assert any("garbled/migration_info.json: not valid JSON" in w for w in record.warnings)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("found 'many'" in line for line in logged)


def test_a_heartbeat_for_a_host_the_store_forgot_publishes_it_again(store_url: str, store: FleetStore) -> None:
    with agent_thread(fast(store=store_url, host="sim:beta", heartbeat_interval=0.05)):
        eventually(lambda: store.host("beta"), "the first publish")
        store.remove("beta")
        again = eventually(lambda: store.host("beta"), "beta published again after `inventory remove`")
    assert again.types


def test_systemd_hears_ready_status_watchdog_and_stopping_and_hooks_run(
    store_url: str, store: FleetStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from devmig.fleet.records import HostRecord

    path = tmp_path / "notify"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping at least every 0.05 s
    published: list[HostRecord] = []

    def failing(record: HostRecord) -> None:
        raise RuntimeError("a hook's own failure")

    with agent_thread(fast(store=store_url, host="sim:beta")) as running:
        running.agent.on_published += [failing, published.append]
        open_host("sim:beta").sysfs.write(f"{GPU_TYPES}/simgpu-1G/create", UUIDS[0])  # a publish after the hooks
        messages: list[str] = []

        def status_published() -> bool:
            messages.append(server.recv(4096).decode())
            return any(m.startswith("STATUS=published") for m in messages)

        eventually(status_published, "a publish's status")
        eventually(lambda: any(UUIDS[0] in {d.name for d in r.devices} for r in published), "the hook called")
    with server:
        while True:
            try:
                server.settimeout(0.5)
                messages.append(server.recv(4096).decode())
            except TimeoutError:
                break
    assert messages[0].startswith("READY=1\nSTATUS=watching sim events")
    assert "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"
    assert published[-1].name == "beta" and published[-1].generation == store.host("beta").generation


def test_the_agent_keeps_the_nfd_feature_file_current(store_url: str, store: FleetStore, tmp_path: Path) -> None:
    """--nfd-dir: the host's labels in nfd-worker's features.d after each publish, renewed on heartbeats, and
    changed when the host's devices change (a driver upgrade moves its highest accepted minor)."""
    from devmig.fleet.nfd import FEATURE_FILE

    features = tmp_path / "features.d"
    features.mkdir()
    path = features / FEATURE_FILE

    def labels() -> dict[str, str]:
        if not path.exists():
            return {}
        lines = path.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    with agent_thread(fast(store=store_url, host="sim:beta", heartbeat_interval=0.2, nfd_dir=features)):
        first = eventually(labels, "the feature file written after the first publish")
        minors = {k: v for k, v in first.items() if "simgpu-2G" in k and ".minor." in k}
        assert minors and set(minors.values()) == {"2"}, first  # beta's simgpu 1.2.0
        assert [line for line in path.read_text().splitlines() if line.startswith("# +expiry-time=")]
        assert not [p for p in features.iterdir() if p.name.startswith(".")]  # no dot-file left behind
        open_lab_host("sim:beta").sim.reload_driver("simgpu", "1.3.0")
        eventually(lambda: {labels().get(k) for k in minors} == {"3"}, "the labels follow the driver upgrade")
