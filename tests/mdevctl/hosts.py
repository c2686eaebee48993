"""A host for the callout, as a sysfs tree in the kernel's layout that Debian's mdevctl also reads (mounted over /sys
in a private mount namespace): a type that declares the migration interface, with a running device; mtty's types
(devmig knows them from its profile); a type devmig cannot describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devmig.testing.sysfs_tree import SysfsTree
from tests.builders import MODEL, cap_doc, param

NIC = "0000:05:00.0"
NIC_TYPE = "my-nic-vf"
GPU = "0000:00:02.0"
UNKNOWN_TYPE = "acme_gpu-small"
RUNNING = "8f2a1e54-3c1d-4a0b-9e6f-0123456789ab"
NEW = "5b0c7e3a-2d4f-4e8a-b1c9-abcdef012345"
#: the declared type's parameters, in its order: what mdevctl would write back, and what the type allows
PARAMS: dict[str, Any] = {
    "new-feature": param("bool", True, off_value=False),
    "num-resources": param("int", 64, allowed_values=["16-64"]),
    "mode": param("str", "fast", allowed_values=["fast", "safe"]),
}


def callout_host(root: Path) -> SysfsTree:
    tree = SysfsTree(root)
    for rel in ("etc/mdevctl.d/scripts.d/callouts", "etc/mdevctl.d/scripts.d/notifiers", "sys/bus/mdev/devices"):
        tree.mkdir(rel)
    nic = tree.pci_function(NIC, 0x1EAA, 0x0101, driver="vendor_a")
    tree.mdev_parent(NIC, nic)
    tree.mdev_type(nic, NIC_TYPE, migration_info=cap_doc(models={MODEL: {"params": PARAMS}}), available_instances=4)
    tree.mdev(nic, RUNNING, NIC_TYPE, params={"new-feature": False, "num-resources": 32, "mode": "safe"})
    gpu = tree.pci_function(GPU, 0xABCD, 0x0001, driver="acme_gpu")
    tree.mdev_parent(GPU, gpu)
    tree.mdev_type(gpu, UNKNOWN_TYPE, available_instances=2)
    mtty = tree.mkdir("sys/devices/virtual/mtty/mtty").relative_to(tree.root).as_posix()
    tree.mdev_parent("mtty", mtty, subsystem="sys/class/mtty")
    tree.mdev_type(mtty, "mtty-1", name="Single port serial", available_instances=24)
    tree.mdev_type(mtty, "mtty-2", name="Dual port serial", available_instances=12)
    tree.module("mtty", "0.1")
    tree.osrelease("6.12.57")
    return tree


def config(mdev_type: str, *attrs: tuple[str, str], start: str = "manual") -> dict[str, Any]:
    """An mdevctl device JSON, as mdevctl writes it on a callout's stdin and in its definition files."""
    return {"mdev_type": mdev_type, "start": start, "attrs": [{name: value} for name, value in attrs]}


def argv(event: str, action: str, mdev_type: str, parent: str, uuid: str = NEW, state: str = "none") -> list[str]:
    """A callout's arguments in mdevctl's order (src/callouts.rs invoke_script)."""
    return ["-t", mdev_type, "-e", event, "-a", action, "-s", state, "-u", uuid, "-p", parent]
