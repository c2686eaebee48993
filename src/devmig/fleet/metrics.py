"""Prometheus metrics of the fleet store, computed when scraped (`devmig inventory serve-metrics`), and the small
HTTP server the agent's metrics use too.

Metrics (gauges; names and units as Prometheus' conventions want them):

- `devmig_fleet_free_instances{host,parent,type}`: free instances as published, less active claims (types whose
  count is unknown are left out);
- `devmig_fleet_heartbeat_age_seconds{host}`: seconds since the host's last publish or heartbeat (hosts never seen
  are left out);
- `devmig_fleet_inventory_generation{host}`: the generation of the host's inventory;
- `devmig_fleet_active_claims{host}`: claims held on the host's types that have not expired;
- `devmig_fleet_store_up`: 1 when the store answered this scrape, 0 when it did not.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devmig.errors import DevmigError, InputError
from devmig.fleet.store import FleetStore

log = logging.getLogger("devmig.metrics")


class StoreCollector(Collector):
    """Reads the store at each scrape: one short read transaction, nothing kept between scrapes."""

    def __init__(self, store: FleetStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # registering must not read the store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("devmig_fleet_store_up", "1 when the fleet store answered this scrape, else 0.")
        now = self.clock()
        try:
            gauges = self.store.gauges(now=now)
        except DevmigError as exc:
            log.warning("scrape: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        free = GaugeMetricFamily(
            "devmig_fleet_free_instances",
            "Free instances of a host's type as last published, less active claims.",
            labels=["host", "parent", "type"],
        )
        for host, parent, type_id, count in gauges.free:
            free.add_metric([host, parent, type_id], count)
        yield free
        age = GaugeMetricFamily(
            "devmig_fleet_heartbeat_age_seconds",
            "Seconds since the host's last publish or heartbeat.",
            labels=["host"],
        )
        generation = GaugeMetricFamily(
            "devmig_fleet_inventory_generation", "Generation of the host's stored inventory.", labels=["host"]
        )
        claims = GaugeMetricFamily(
            "devmig_fleet_active_claims", "Claims on the host's types that have not expired.", labels=["host"]
        )
        for seen in gauges.hosts:
            if seen.last_seen is not None:
                age.add_metric([seen.name], max(0.0, now - seen.last_seen))
            generation.add_metric([seen.name], seen.generation)
            claims.add_metric([seen.name], gauges.claims.get(seen.name, 0))
        yield age
        yield generation
        yield claims


def parse_address(text: str, what: str = "metrics address") -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT, or :PORT (every address) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InputError(f"{what} {text!r}: expected HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464 or :9464)")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    return host or "0.0.0.0", int(port)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


@dataclass
class MetricsServer:
    """A running metrics endpoint: GET /metrics (any path) answers the registry's text format."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(registry: CollectorRegistry, address: str) -> MetricsServer:
    """Serve `registry` on `address` (HOST:PORT; port 0 picks a free one) from a thread of its own."""
    host, port = parse_address(address)
    kind = _Server6 if ":" in host else _Server
    try:
        server = make_server(host, port, make_wsgi_app(registry), kind, handler_class=_QuietHandler)
    except OSError as exc:
        raise InputError(f"metrics address {address}: cannot listen: {exc.strerror or exc}") from None
    thread = threading.Thread(target=server.serve_forever, name="devmig-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
