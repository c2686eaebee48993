"""`devmig list`: the assignable devices of this host (mdevs, VFIO PCI functions, vfio-ccw subchannels, and vDPA
devices when the host has the vdpa family)."""

from __future__ import annotations

import click

from devmig.cli.options import emit_json, mdevctl_format_option, output_options, resolve, sysfs_of, sysfs_root_option
from devmig.cli.render import print_warnings, table, warnings_json
from devmig.host.devices import MdevDevice, PciFunction, Subchannel
from devmig.host.inventory import Device, Inventory
from devmig.host.mdevctl import list_dumpjson
from devmig.machine import open_host
from devmig.vdpa.records import VdpaDev


def _row(device: Device) -> tuple[str, ...]:
    if isinstance(device, MdevDevice):
        return (
            "mdev",
            device.uuid,
            device.parent,
            device.type or "?",
            device.driver or "-",
            str(device.iommu_group) if device.iommu_group is not None else "-",
        )
    if isinstance(device, PciFunction):
        return (
            "pci",
            device.address,
            device.physfn or "-",
            device.pci_id or "?",
            device.driver or "-",
            str(device.iommu_group) if device.iommu_group is not None else "-",
        )
    assert isinstance(device, Subchannel)
    return ("ccw", device.busid, device.dev_busid or "-", f"type {device.subchannel_type}", device.driver or "-", "-")


def _json(device: Device) -> dict[str, object]:
    kind = "mdev" if isinstance(device, MdevDevice) else "pci" if isinstance(device, PciFunction) else "ccw"
    return {"kind": kind, **device.to_dict()}


@click.command(name="list")
@mdevctl_format_option("list")
@sysfs_root_option
@output_options
def command(fmt: str, sysfs_root: str, host: str | None, json_output: bool, pretty: bool) -> int:
    """List the devices a VM can be given: mdevs, PCI functions bound to vfio-pci or a VFIO variant driver,
    subchannels bound to vfio_ccw, and vDPA devices (from the vdpa netlink family, when the host has it)."""
    opts = resolve(json_output, pretty)
    if fmt == "mdevctl":
        inv = Inventory.scan(sysfs_of(sysfs_root, host), parts=("mdevs",))
        print_warnings(inv.warnings)
        click.echo(list_dumpjson(inv.root, inv.mdevs), nl=False)
        return 0
    opened = open_host(host, sysfs_root)
    inv = Inventory.scan(opened.sysfs, parts=("mdevs", "pci", "ccw"))
    print_warnings(inv.warnings)
    devices = inv.assignable()
    backend = opened.vdpa_if_any()
    vdpa = backend.devices() if backend is not None else []
    if opts.json:
        listed = [_json(d) for d in devices] + [_vdpa_json(v) for v in vdpa]
        emit_json({"devices": listed, "warnings": warnings_json(inv.warnings)}, opts)
    elif devices or vdpa:
        header = ("KIND", "DEVICE", "PARENT", "TYPE", "DRIVER", "IOMMU_GROUP")
        rows = [*(_row(d) for d in devices), *(("vdpa", v.name, v.mgmtdev, v.type, "-", "-") for v in vdpa)]
        click.echo("\n".join(table([header, *rows], indent="")))
    return 0


def _vdpa_json(dev: VdpaDev) -> dict[str, object]:
    """A vDPA device (from the vdpa family, not sysfs): iproute2's `vdpa dev show` fields."""
    return {
        "kind": "vdpa",
        "name": dev.name,
        "mgmtdev": dev.mgmtdev,
        "type": dev.type,
        "vendor_id": dev.vendor_id,
        "max_vqs": dev.max_vqs,
        "max_vq_size": dev.max_vq_size,
    }
