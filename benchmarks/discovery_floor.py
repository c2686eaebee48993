"""The floor under `devmig list` and `devmig types` in Python: the interpreter's start and the kernel reads devmig
makes, with no logic, no objects and no output.

    python benchmarks/discovery_floor.py list|types

`list` reads what `devmig list` reads of the mdev bus (each entry's link, then its mdev_type, driver and iommu_group
links) and of the PCI bus (each function's link, attributes and links); `types` what `devmig types` reads of each
mdev parent (its links, its types and, for each type, four attributes, the devices directory and whether
migration_info.json exists). benchmarks/discovery.py times it beside devmig: what devmig takes above it is
Python's own work (imports, parsing, objects, JSON); the floor itself no Python program can go below.
"""

from __future__ import annotations

import os
import sys

PCI_ATTRIBUTES = ("vendor", "device", "subsystem_vendor", "subsystem_device", "class", "revision")
PCI_OPTIONAL = ("driver_override", "numa_node", "sriov_numvfs", "sriov_totalvfs")
PCI_LINKS = ("driver", "iommu_group", "physfn")
TYPE_ATTRIBUTES = ("device_api", "available_instances", "name", "description")


def read(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return
    try:
        os.read(fd, 65536)
    finally:
        os.close(fd)


def link(path: str) -> None:
    try:
        os.readlink(path)
    except OSError:
        return


def canonical(directory: str, name: str) -> str:
    return os.path.normpath(f"{directory}/{os.readlink(f'{directory}/{name}')}")


def entries(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def floor_list() -> None:
    bus = "/sys/bus/mdev/devices"
    for name in entries(bus):
        device = canonical(bus, name)
        for attr in ("mdev_type", "driver", "iommu_group"):
            link(f"{device}/{attr}")
    bus = "/sys/bus/pci/devices"
    for name in entries(bus):
        function = canonical(bus, name)
        for attr in PCI_ATTRIBUTES + PCI_OPTIONAL:
            read(f"{function}/{attr}")
        for attr in PCI_LINKS:
            link(f"{function}/{attr}")


def floor_types() -> None:
    bus = "/sys/class/mdev_bus"
    for name in entries(bus):
        parent = canonical(bus, name)
        link(f"{parent}/subsystem")
        link(f"{parent}/driver")
        types = f"{parent}/mdev_supported_types"
        if not os.path.isdir(types):
            continue
        with os.scandir(types) as found:
            type_ids = sorted(e.name for e in found if e.is_dir(follow_symlinks=False))
        for type_id in type_ids:
            path = f"{types}/{type_id}"
            for attr in TYPE_ATTRIBUTES:
                read(f"{path}/{attr}")
            entries(f"{path}/devices")
            os.path.lexists(f"{path}/migration_info.json")


if __name__ == "__main__":
    {"list": floor_list, "types": floor_types}[sys.argv[1]]()
