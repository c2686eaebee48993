"""Mediated devices: parents and their types under /sys/class/mdev_bus, instances under /sys/bus/mdev/devices.

Layout: Documentation/driver-api/vfio-mediated-device.rst and drivers/vfio/mdev/mdev_sysfs.c. Unlike mdevctl, one
bad type (no device_api, an available_instances that is not a number, a parent without mdev_supported_types)
becomes a warning on that entry and the scan goes on.
"""

from __future__ import annotations

import posixpath

from devmig.host.devices import MdevDevice, MdevParent, MdevType
from devmig.host.scan import Scan, group_number, parse_count, trim

MDEV_BUS_CLASS = "sys/class/mdev_bus"
MDEV_DEVICES = "sys/bus/mdev/devices"


def read_type(scan: Scan, parent: str, type_id: str, path: str) -> MdevType:
    obj = f"mdev type {parent}/{type_id}"
    mtype = MdevType(parent=parent, id=type_id, path=path)
    mtype.device_api = scan.attr(obj, f"{path}/device_api", trim, required=True)
    mtype.available_instances = scan.attr(obj, f"{path}/available_instances", parse_count, required=True)
    if mtype.available_instances is not None and mtype.available_instances < 0:
        scan.warn(obj, f"{path}/available_instances", f"negative available_instances {mtype.available_instances}")
    mtype.name = scan.attr(obj, f"{path}/name", str)
    mtype.description = scan.attr(obj, f"{path}/description", str)
    mtype.devices = scan.entries(obj, f"{path}/devices")
    mtype.migration_info = scan.root.exists(f"{path}/migration_info.json")
    return mtype


def read_parent(scan: Scan, name: str, path: str) -> MdevParent:
    obj = f"mdev parent {name}"
    parent = MdevParent(name=name, path=path)
    parent.subsystem = scan.link(obj, f"{path}/subsystem")
    parent.driver = scan.link(obj, f"{path}/driver")
    types_dir = f"{path}/mdev_supported_types"
    if not scan.root.isdir(types_dir):
        scan.warn(obj, types_dir, "missing mdev_supported_types: the parent offers no types")
        parent.types_dir = False
        return parent
    for type_id in scan.subdirs(obj, types_dir):
        parent.types.append(read_type(scan, name, type_id, f"{types_dir}/{type_id}"))
    return parent


def scan_parents(scan: Scan, only: str | None = None) -> list[MdevParent]:
    return [
        read_parent(scan, name, path)
        for name, path in scan.listed("mdev parent", MDEV_BUS_CLASS, must_exist=True)
        if only is None or name == only
    ]


def read_mdev(scan: Scan, uuid: str, path: str) -> MdevDevice:
    obj = f"mdev {uuid}"
    device = MdevDevice(uuid=uuid, parent=posixpath.basename(posixpath.dirname(path)), path=path)
    device.type = scan.link(obj, f"{path}/mdev_type")
    if device.type is None:
        scan.warn(obj, f"{path}/mdev_type", "missing mdev_type link: the device's type is unknown")
    device.driver = scan.link(obj, f"{path}/driver")
    device.iommu_group = group_number(scan.link(obj, f"{path}/iommu_group"))
    return device


def scan_mdevs(scan: Scan) -> list[MdevDevice]:
    return [read_mdev(scan, uuid, path) for uuid, path in scan.listed("mdev", MDEV_DEVICES)]
