"""A host's inventory as a HostRecord: what `devmig inventory publish` sends to the store.

Types: every mdev type on every parent, every VFIO PCI function (a type of its own: a free function is one free
instance), and every class of every vDPA management device. Devices: the assignable ones, each with its source
descriptor when it can be described. What cannot be described is a warning of the record, not a failure: one odd
type must not keep a host out of the fleet.

The inventory is read in parts (PARTS: what sysfs holds, what the vdpa family tells), so a reader that knows which
part changed (the agent, told by a uevent) reads that part again and keeps the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from devmig.errors import DevmigError
from devmig.fleet.records import DeviceRecord, HostRecord, TypeRecord
from devmig.host import vdpa
from devmig.host.access import Host
from devmig.host.describe import Describer
from devmig.host.devices import MdevDevice, PciFunction, Subchannel
from devmig.host.inventory import Inventory
from devmig.host.profile import Profile, load_profiles


def kernel_release(host: Host) -> str | None:
    """/proc/sys/kernel/osrelease, when readable."""
    try:
        return host.sysfs.read("proc/sys/kernel/osrelease").strip() or None
    except (DevmigError, OSError):
        return None


@dataclass(frozen=True)
class Part:
    """One part of a host's inventory, read on its own: its types, devices and the warnings met reading them."""

    types: tuple[TypeRecord, ...] = ()
    devices: tuple[DeviceRecord, ...] = ()
    warnings: tuple[str, ...] = ()


def collect_sysfs(host: Host, profiles: list[Profile]) -> Part:
    """What sysfs holds: mdev types and devices, VFIO PCI functions, vfio-ccw subchannels."""
    inventory = Inventory.scan(host.sysfs)
    describer = Describer(inventory, profiles, host.nvml())
    warnings = [str(w) for w in inventory.warnings]
    types: list[TypeRecord] = []
    for mtype in inventory.types():
        try:
            cap = describer.type_capability(mtype)
        except DevmigError as exc:
            warnings.append(str(exc))
            continue
        types.append(TypeRecord(mtype.parent, cap.type, cap, mtype.available_instances))
    in_use = {m.parent for m in inventory.mdevs}
    for fn in inventory.pci:
        if not fn.vfio:
            continue
        try:
            cap = describer.function_capability(fn)
        except DevmigError as exc:
            warnings.append(str(exc))
            continue
        free = 0 if host.in_use(fn.address, fn.iommu_group) or fn.address in in_use else 1
        types.append(TypeRecord(fn.address, cap.type, cap, free))
    for fn, type_number, free in describer.vgpu_types():
        # an NVIDIA board's free VFs: each type they can be made, on the board (the PF), as many as can
        try:
            cap = describer.vgpu_capability(fn, type_number, free)
        except DevmigError as exc:
            warnings.append(str(exc))
            continue
        types.append(TypeRecord(fn.physfn or fn.address, cap.type, cap, free))
    devices: list[DeviceRecord] = []
    for device in inventory.assignable():
        descriptor = None
        if not isinstance(device, Subchannel):
            try:
                descriptor = describer.descriptor(device)
            except DevmigError as exc:
                warnings.append(str(exc))
        if isinstance(device, MdevDevice):
            devices.append(DeviceRecord("mdev", device.uuid, device.parent, device.type, descriptor))
        elif isinstance(device, PciFunction):
            devices.append(DeviceRecord("pci", device.address, device.physfn, device.pci_id, descriptor))
        else:
            devices.append(DeviceRecord("ccw", device.busid, device.dev_busid, None, None))
    return Part(tuple(types), tuple(devices), tuple(warnings))


def collect_vdpa(host: Host) -> Part:
    """What the vdpa family tells: each management device's classes, and the vDPA devices. A device that cannot be
    read or described is a warning (the family failing as a whole is an error: nothing could be said of vDPA)."""
    backend = host.vdpa_if_any()
    if backend is None:
        return Part()
    types: list[TypeRecord] = []
    devices: list[DeviceRecord] = []
    warnings: list[str] = []
    for mgmt in backend.mgmtdevs():
        try:
            types += [TypeRecord(mgmt.handle, cap.type, cap, None) for cap in vdpa.capabilities(mgmt)]
        except DevmigError as exc:
            warnings.append(f"vdpa management device {mgmt.handle}: {exc}")
    for dev in backend.devices():
        try:
            described = vdpa.descriptor(dev, backend.config(dev.name))
        except DevmigError as exc:
            warnings.append(f"vdpa device {dev.name}: {exc}")
            continue
        devices.append(DeviceRecord("vdpa", dev.name, dev.mgmtdev, described.type, described))
    return Part(tuple(types), tuple(devices), tuple(warnings))


#: the parts of an inventory, in the order a record lists them, and how each is read
PARTS: dict[str, Callable[[Host, list[Profile]], Part]] = {
    "sysfs": collect_sysfs,
    "vdpa": lambda host, _profiles: collect_vdpa(host),
}


def assemble(name: str, kernel: str | None, parts: Mapping[str, Part]) -> HostRecord:
    """A host's record from its parts (in PARTS' order: the same parts make the same record)."""
    chosen = [parts[key] for key in PARTS if key in parts]
    return HostRecord(
        name=name,
        types=tuple(t for part in chosen for t in part.types),
        devices=tuple(d for part in chosen for d in part.devices),
        kernel=kernel,
        warnings=tuple(w for part in chosen for w in part.warnings),
    )


def collect(host: Host, profiles: list[Profile] | None = None, *, name: str | None = None) -> HostRecord:
    """The inventory of `host` as the fleet stores it, under `name` (default: the host's own name)."""
    chosen = load_profiles() if profiles is None else profiles
    parts = {key: read(host, chosen) for key, read in PARTS.items()}
    return assemble(name or host.name, kernel_release(host), parts)
