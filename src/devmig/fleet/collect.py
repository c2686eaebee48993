"""A host's inventory as a HostRecord: what `devmig inventory publish` sends to the store.

Types: every mdev type on every parent, every VFIO PCI function (a type of its own: a free function is one free
instance), and every class of every vDPA management device. Devices: the assignable ones, each with its source
descriptor when it can be described. What cannot be described is a warning of the record, not a failure: one odd
type must not keep a host out of the fleet.
"""

from __future__ import annotations

from devmig.errors import DevmigError
from devmig.fleet.records import DeviceRecord, HostRecord, TypeRecord
from devmig.host import vdpa
from devmig.host.access import Host
from devmig.host.describe import Describer
from devmig.host.devices import MdevDevice, PciFunction, Subchannel
from devmig.host.inventory import Inventory
from devmig.host.profile import Profile, load_profiles


def _kernel(host: Host) -> str | None:
    try:
        return host.sysfs.read("proc/sys/kernel/osrelease").strip() or None
    except (DevmigError, OSError):
        return None


def collect(host: Host, profiles: list[Profile] | None = None, *, name: str | None = None) -> HostRecord:
    """The inventory of `host` as the fleet stores it, under `name` (default: the host's own name)."""
    inventory = Inventory.scan(host.sysfs)
    describer = Describer(inventory, load_profiles() if profiles is None else profiles)
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
    backend = host.vdpa_if_any()
    if backend is not None:
        for mgmt in backend.mgmtdevs():
            types += [TypeRecord(mgmt.handle, cap.type, cap, None) for cap in vdpa.capabilities(mgmt)]
        for dev in backend.devices():
            described = vdpa.descriptor(dev, backend.config(dev.name))
            devices.append(DeviceRecord("vdpa", dev.name, dev.mgmtdev, described.type, described))
    return HostRecord(
        name=name or host.name,
        types=tuple(types),
        devices=tuple(devices),
        kernel=_kernel(host),
        warnings=tuple(warnings),
    )
