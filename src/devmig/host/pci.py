"""PCI functions from /sys/bus/pci/devices (Documentation/ABI/testing/sysfs-bus-pci)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from devmig.host.devices import PciFunction
from devmig.host.nvidia import name_types, read_vgpu
from devmig.host.scan import Scan, group_number, parse_hex, parse_override, parse_uint

PCI_DEVICES = "sys/bus/pci/devices"

#: attribute -> (field, hex digits): IDs as lspci spells them
_HEX_ATTRS: tuple[tuple[str, str, int], ...] = (
    ("vendor", "vendor", 4),
    ("device", "device", 4),
    ("subsystem_vendor", "subsystem_vendor", 4),
    ("subsystem_device", "subsystem_device", 4),
    ("class", "class_code", 6),
    ("revision", "revision", 2),
)


def _numa(text: str) -> int | None:
    node = int(text.strip())
    return None if node < 0 else node


def read_function(scan: Scan, address: str, path: str) -> PciFunction:
    obj = f"PCI function {address}"
    fn = PciFunction(address=address, path=path)
    for attr, fld, digits in _HEX_ATTRS:
        parse: Callable[[str], str] = partial(parse_hex, digits=digits)
        setattr(fn, fld, scan.attr(obj, f"{path}/{attr}", parse, required=attr in ("vendor", "device")))
    fn.driver = scan.link(obj, f"{path}/driver")
    fn.driver_override = scan.attr(obj, f"{path}/driver_override", parse_override)
    fn.iommu_group = group_number(scan.link(obj, f"{path}/iommu_group"))
    fn.numa_node = scan.attr(obj, f"{path}/numa_node", _numa)
    fn.physfn = scan.link(obj, f"{path}/physfn")
    fn.sriov_numvfs = scan.attr(obj, f"{path}/sriov_numvfs", parse_uint)
    fn.sriov_totalvfs = scan.attr(obj, f"{path}/sriov_totalvfs", parse_uint)
    if fn.sriov_totalvfs:
        virtfns = [e for e in scan.entries(obj, path) if e.startswith("virtfn") and e[6:].isascii() and e[6:].isdigit()]
        for entry in sorted(virtfns, key=lambda e: int(e[6:])):
            vf = scan.link(obj, f"{path}/{entry}")
            if vf is not None:
                fn.virtfns.append(vf)
    fn.vgpu = read_vgpu(scan, fn)
    return fn


def scan_pci(scan: Scan) -> list[PciFunction]:
    functions = [read_function(scan, address, path) for address, path in scan.listed("PCI function", PCI_DEVICES)]
    name_types(functions)
    return functions
