"""NVIDIA SR-IOV vGPUs in the fleet, on SQLite and PostgreSQL: a board's creatable types are published on its PF with
their vendor facts (ECC and NVML's metadata from the lab's simulated NVML), and `place` applies NVIDIA's rules to
them from the stored documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devmig.fleet.collect import collect
from devmig.fleet.store import FleetStore
from devmig.host.describe import Describer
from devmig.host.inventory import Inventory
from devmig.host.profile import load_profiles
from devmig.machine.lab import lab_host
from devmig.sim.lab import load_lab


@pytest.fixture
def store(store_url: str) -> Iterator[FleetStore]:
    with FleetStore.open(store_url) as opened:
        yield opened


def test_place_applies_nvidias_rules_from_the_store(store: FleetStore) -> None:
    lab = load_lab("nvidia")
    profiles = load_profiles("/nonexistent")
    for name in ("same", "newer", "branch", "ecc-off", "full"):
        store.publish(collect(lab_host(lab, lab.host(name)), profiles, name=name))
    src = lab.host("src")
    inv = Inventory.scan(src.kernel.fs)
    source = Describer(inv, profiles, lab_host(lab, src).nvml()).descriptor(inv.device("0000:41:00.1"))
    placement = store.place(source)
    assert sorted(c.host for c in placement.candidates) == ["newer", "same"]
    stored = placement.candidates[0].capability
    assert stored.vendor is not None and {"ecc", "nvml_metadata"} <= stored.vendor.facts.keys()
    assert {r.code for r in placement.refused} >= {"nvidia-driver-branch-differs", "nvidia-ecc-differs"}
    # the full board offers no H100-20C: nothing of it is a candidate
    assert all(c.host != "full" for c in placement.candidates)
