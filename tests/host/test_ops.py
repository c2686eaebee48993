"""Host changes on fixture trees: what is checked before writing, and what a refused write reports.

The successful paths need a kernel that reacts to the writes: they run in the kernel tier
(tests/kernel/guest/test_mdev.py, test_vfio.py).
"""

from __future__ import annotations

import errno
import os

import pytest

from devmig.errors import InputError
from devmig.host import SysfsRoot
from devmig.host.ops import RefusedError, bind_pci, create_mdev, remove_mdev, unbind_pci
from devmig.testing.sysfs_tree import SysfsTree
from tests.labs import MTTY, MTTY_UUID


def test_create_checks_parent_type_uuid_and_capacity(lab: SysfsTree) -> None:
    root = SysfsRoot(lab.root)
    with pytest.raises(InputError, match="mdev parent nope: not found"):
        create_mdev(root, "nope", "mtty-1")
    with pytest.raises(InputError, match="mdev parent mtty does not support type mtty-9"):
        create_mdev(root, "mtty", "mtty-9")
    with pytest.raises(InputError, match="expected a UUID"):
        create_mdev(root, "mtty", "mtty-1", "not-a-uuid")
    with pytest.raises(RefusedError, match=f"mdev {MTTY_UUID}: already exists"):
        create_mdev(root, "mtty", "mtty-1", MTTY_UUID.upper())
    lab.write(f"{MTTY}/mdev_supported_types/mtty-1/available_instances", "0")
    with pytest.raises(RefusedError, match="no free instance"):
        create_mdev(root, "mtty", "mtty-1")


def test_a_refused_create_keeps_the_kernels_reason(lab: SysfsTree, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def full(path: str, flags: int, *args: int) -> int:
        if path.endswith("mtty-2/create"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", full)
    with pytest.raises(RefusedError, match=r"no free instance of this type \(the parent is full\)"):
        create_mdev(SysfsRoot(lab.root), "mtty", "mtty-2")


def test_a_create_that_makes_no_device_is_an_error(lab: SysfsTree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devmig.host.ops.SETTLE_SECONDS", 0.05)
    with pytest.raises(RefusedError, match="the write was accepted but no device appeared"):
        create_mdev(SysfsRoot(lab.root), "mtty", "mtty-1", "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001")
    # the UUID was written to create, as the kernel expects it
    assert (
        lab.root / MTTY / "mdev_supported_types/mtty-1/create"
    ).read_text() == "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001"


def test_remove_checks_the_device(lab: SysfsTree) -> None:
    with pytest.raises(InputError, match="mdev 0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001: not found"):
        remove_mdev(SysfsRoot(lab.root), "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001")


def test_bind_checks_device_and_driver(lab: SysfsTree) -> None:
    root = SysfsRoot(lab.root)
    with pytest.raises(InputError, match=r"PCI function 0000:99:00\.0: not found"):
        bind_pci(root, "0000:99:00.0", "vfio-pci")
    with pytest.raises(RefusedError, match="driver mlx5_vfio_pci_x: not loaded"):
        bind_pci(root, "0000:3b:00.3", "mlx5_vfio_pci_x")
    same = bind_pci(root, "0000:00:03.0", "vfio-pci")
    assert same.what == "PCI function 0000:00:03.0 was already bound to vfio-pci"
    with pytest.raises(InputError):
        unbind_pci(root, "0000:99:00.0")


def test_bind_that_does_not_take_restores_the_override(lab: SysfsTree, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a tree nothing probes: the bind fails, and driver_override is put back as it was."""
    monkeypatch.setattr("devmig.host.ops.SETTLE_SECONDS", 0.05)
    address = "0000:3b:00.3"
    override = lab.root / f"sys/devices/pci0000:3b/{address}/driver_override"
    before = override.read_text()
    (lab.root / "sys/bus/pci/drivers/mlx5_core/unbind").write_text("")
    (lab.root / "sys/bus/pci/drivers_probe").write_text("")
    with pytest.raises(RefusedError, match="the driver did not take it"):
        bind_pci(SysfsRoot(lab.root), address, "vfio-pci")
    assert override.read_text() in (before, "\n")  # cleared, as the kernel shows "(null)" again
