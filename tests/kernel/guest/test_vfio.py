"""VFIO on the real kernel: QEMU's edu device on vfio-pci (no migration) and mtty (migration v2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devmig.host import Inventory
from tests.kernel.guest.conftest import devmig, devmig_process

pytestmark = pytest.mark.kernel

EDU_ID = "1234:11e8"


def edu_address() -> str:
    (edu,) = [f for f in Inventory.scan("/", parts=("pci",)).pci if f.pci_id == EDU_ID]
    return edu.address


def test_edu_binds_to_vfio_pci_and_is_not_migratable() -> None:
    address = edu_address()
    driver = Path(f"/sys/bus/pci/devices/{address}/driver")
    assert not driver.exists()  # edu has no in-kernel driver
    bound = devmig("pci", "bind", address, "vfio-pci")
    assert bound.code == 0, bound.err
    try:
        assert driver.resolve().name == "vfio-pci"
        listed = json.loads(devmig("list", "-j").out)["devices"]
        (entry,) = [d for d in listed if d["kind"] == "pci" and d["address"] == address]
        assert entry["pci_id"] == EDU_ID and entry["iommu_group"] is not None and not entry["migration_driver"]
        info = devmig("vfio", "info", address, "-j")
        assert info.code == 0, info.err
        data = json.loads(info.out)
        assert "PCI" in data["flags"] and data["migration"] is None and "ENOTTY" in data["migration_error"]
        text = devmig("vfio", "info", address).out
        assert "migration:  none (the driver implements no VFIO migration (ENOTTY))" in text
        described = json.loads(devmig("describe", address).out)
        assert described["confidence"] == "unverified" and described["api"]["pci_id"] == EDU_ID
    finally:
        unbound = devmig("pci", "unbind", address)
    assert unbound.code == 0, unbound.err
    assert not driver.exists()
    assert Path(f"/sys/bus/pci/devices/{address}/driver_override").read_text() == "(null)\n"


def test_mtty_reports_migration_v2_flags(cleanup: list[str]) -> None:
    made = devmig("mdev", "create", "mtty", "mtty-2")
    assert made.code == 0, made.err
    uuid = made.out.strip()
    cleanup.append(uuid)
    info = devmig("vfio", "info", uuid, "-j")
    assert info.code == 0, info.err
    data = json.loads(info.out)
    assert data["migration"] == ["STOP_COPY", "P2P", "PRE_COPY"]
    assert "PCI" in data["flags"]


def test_vfio_errors_are_one_line() -> None:
    address = edu_address()
    unbound = devmig_process("vfio", "info", address)
    assert unbound.code == 1 and "not to a VFIO driver" in unbound.err and unbound.err.count("\n") == 1
