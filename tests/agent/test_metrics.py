"""Prometheus metrics, scraped from the real HTTP endpoints and read with prometheus_client's own text parser: the
agent's (--metrics-address) and the store's (`devmig inventory serve-metrics`, computed at each scrape)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from devmig.errors import InputError
from devmig.fleet.metrics import StoreCollector, parse_address, serve
from devmig.fleet.store import FleetStore
from devmig.machine import open_host
from tests.agent.helpers import REPO, agent_thread, eventually, fast
from tests.fleet.lab import lab_records
from tests.provision.conftest import gpu_source

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(host: str, port: int) -> Samples:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=30) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_agents_metrics(store_url: str) -> None:
    store = FleetStore.open(store_url)
    with agent_thread(fast(store=store_url, host="sim:beta", metrics_address="127.0.0.1:0")) as running:
        eventually(lambda: store.host("beta"), "the first publish")
        host, port = running.agent._server.address
        open_host("sim:beta").sysfs.write(
            "sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/simgpu-4G/create",
            "eeeeeeee-0000-4000-8000-000000000001",
        )
        eventually(lambda: running.agent.publishes >= 2, "the change published")
        samples = scrape(host, port)
    assert samples[("devmig_agent_publish_duration_seconds_count", ())] == 2
    assert samples[("devmig_agent_publish_duration_seconds_sum", ())] > 0
    assert samples[("devmig_agent_last_publish_timestamp_seconds", ())] >= store.host("beta").published - 1  # type: ignore[operator]
    assert samples[("devmig_agent_events_total", (("subsystem", "mdev"),))] == 2
    assert samples[("devmig_agent_events_coalesced_total", ())] == 1
    # beta's GPU: 8 GiB less the 4G vGPU
    free = {labels: value for (name, labels), value in samples.items() if name == "devmig_agent_free_instances"}
    assert free[(("parent", "0000:00:02.0"), ("type", "simgpu-2G"))] == 2
    assert free[(("parent", "0000:00:02.0"), ("type", "simgpu-4G"))] == 1


def test_the_agent_counts_failures_by_reason() -> None:
    # a PostgreSQL URL on a port where nothing listens: every try fails as "unavailable"
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/fleet"
    with agent_thread(fast(store=url, host="sim:beta", metrics_address="127.0.0.1:0")) as running:
        host, mport = running.agent._server.address
        eventually(
            lambda: (
                scrape(host, mport).get(("devmig_agent_publish_failures_total", (("reason", "unavailable"),)), 0) >= 2
            ),
            "two failures counted",
        )


def test_the_stores_metrics_are_computed_at_each_scrape(store_url: str) -> None:
    store = FleetStore.open(store_url)
    now = 3_000_000.0
    for record in lab_records():
        store.publish(record, now=now - 100)
    store.heartbeat("beta", now=now - 10)
    claim = store.place(gpu_source(), claim=60, holder="t", now=now).claim
    assert claim is not None
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, clock=lambda: now))
    server = serve(registry, "127.0.0.1:0")
    try:
        samples = scrape(*server.address)
        assert samples[("devmig_fleet_store_up", ())] == 1
        assert samples[("devmig_fleet_heartbeat_age_seconds", (("host", "beta"),))] == 10
        assert samples[("devmig_fleet_heartbeat_age_seconds", (("host", "gamma"),))] == 100
        assert samples[("devmig_fleet_inventory_generation", (("host", "beta"),))] == 1
        assert samples[("devmig_fleet_active_claims", (("host", claim.host),))] == 1
        assert samples[("devmig_fleet_active_claims", (("host", "eta"),))] == 0
        published = {
            (r.name, t.parent, t.type_id): t.available
            for r in lab_records()
            for t in r.types
            if t.available is not None
        }
        free = {
            (dict(labels)["host"], dict(labels)["parent"], dict(labels)["type"]): value
            for (name, labels), value in samples.items()
            if name == "devmig_fleet_free_instances"
        }
        assert free == {
            key: value - (1 if key == (claim.host, claim.parent, claim.type_id) else 0)
            for key, value in published.items()
        }
        # computed at each scrape: a publish shows in the next one
        beta = next(r for r in lab_records() if r.name == "beta")
        store.publish(beta.__class__(**{**beta.__dict__, "types": beta.types[:1]}), now=now)
        assert scrape(*server.address)[("devmig_fleet_inventory_generation", (("host", "beta"),))] == 2
    finally:
        server.close()


def test_a_store_that_cannot_answer_is_up_0_and_the_scrape_succeeds(tmp_path: Path) -> None:
    gone = FleetStore(create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'fleet.db'}"), "gone")
    registry = CollectorRegistry()
    registry.register(StoreCollector(gone))
    server = serve(registry, "127.0.0.1:0")
    try:
        assert scrape(*server.address) == {("devmig_fleet_store_up", ()): 0}
    finally:
        server.close()


def test_serve_metrics_command(store_url: str) -> None:
    store = FleetStore.open(store_url)
    store.publish(lab_records()[1])
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devmig",
            "inventory",
            "serve-metrics",
            "--store",
            store_url,
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        samples = eventually(lambda: scrape("127.0.0.1", port), "the endpoint answering")
        assert samples[("devmig_fleet_inventory_generation", (("host", "beta"),))] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_addresses() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    assert parse_address(":9464") == ("0.0.0.0", 9464)
    for bad in ("9464", "host:", "host:99999", "a:b"):
        with pytest.raises(InputError, match="expected HOST:PORT"):
            parse_address(bad)
