"""A fleet made of the default lab's hosts, published to a store."""

from __future__ import annotations

from devmig.fleet.collect import collect
from devmig.fleet.records import HostRecord
from devmig.fleet.store import FleetStore
from devmig.host.profile import load_profiles
from devmig.machine import open_host

LAB_HOSTS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta")


def lab_records() -> list[HostRecord]:
    profiles = load_profiles("/nonexistent")
    return [collect(open_host(f"sim:{name}"), profiles, name=name) for name in LAB_HOSTS]


def publish_lab(store: FleetStore) -> list[HostRecord]:
    return [store.publish(record) for record in lab_records()]
