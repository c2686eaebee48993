"""`devmig list`: the assignable devices of this host (mdevs, VFIO PCI functions, vfio-ccw subchannels)."""

from __future__ import annotations

import click

from devmig.cli.hostopts import mdevctl_format_option, print_warnings, sysfs_of, sysfs_root_option, warnings_json
from devmig.cli.options import emit_json, output_options, resolve
from devmig.cli.render import table
from devmig.host.devices import MdevDevice, PciFunction, Subchannel
from devmig.host.inventory import Device, Inventory
from devmig.host.mdevctl import list_dumpjson


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
    """List the devices a VM can be given: mdevs, PCI functions bound to vfio-pci or a VFIO variant driver, and
    subchannels bound to vfio_ccw."""
    opts = resolve(json_output, pretty)
    if fmt == "mdevctl":
        inv = Inventory.scan(sysfs_of(sysfs_root, host), parts=("mdevs",))
        print_warnings(inv.warnings)
        click.echo(list_dumpjson(inv.root, inv.mdevs), nl=False)
        return 0
    inv = Inventory.scan(sysfs_of(sysfs_root, host), parts=("mdevs", "pci", "ccw"))
    print_warnings(inv.warnings)
    devices = inv.assignable()
    if opts.json:
        emit_json({"devices": [_json(d) for d in devices], "warnings": warnings_json(inv.warnings)}, opts)
    elif devices:
        header = ("KIND", "DEVICE", "PARENT", "TYPE", "DRIVER", "IOMMU_GROUP")
        click.echo("\n".join(table([header, *(_row(d) for d in devices)], indent="")))
    return 0
