"""What `devmig list` and `devmig types` print, free of click: their click commands (devmig.cli.listing,
devmig.cli.types) and the click-free path (devmig.cli.quick) both run these, so both print the same bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devmig.cli.echo import echo
from devmig.cli.render import json_text, print_warnings, table, warnings_json
from devmig.host.devices import MdevDevice, PciFunction, Subchannel
from devmig.host.inventory import Device, Inventory
from devmig.host.sysfs import Sysfs

if TYPE_CHECKING:  # the vdpa package is loaded only on a host that has the vdpa family
    from devmig.host.access import Host
    from devmig.vdpa.records import VdpaDev


# -- devmig list ---------------------------------------------------------------------------------------------------


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


def _device_json(device: Device) -> dict[str, object]:
    kind = "mdev" if isinstance(device, MdevDevice) else "pci" if isinstance(device, PciFunction) else "ccw"
    return {"kind": kind, **device.to_dict()}


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


#: what `devmig list` says on stderr when it lists nothing: an empty table alone looks like a command that failed
NOTHING_LISTED = "devmig: no assignable devices on this host (mdevs, VFIO PCI functions, vfio-ccw subchannels, vDPA)"


def list_devices(host: Host, fmt: str, json_output: bool, pretty: bool) -> int:
    """`devmig list` on an opened host; `json_output` and `pretty` as the options resolve them. With nothing to list,
    NOTHING_LISTED goes to stderr; stdout stays what a reader parses (`{"devices": [], ...}` with -j), and
    `--format mdevctl` stays mdevctl's `[]` with nothing on stderr, as mdevctl prints it."""
    if fmt == "mdevctl":
        from devmig.host.mdevctl import list_dumpjson

        inv = Inventory.scan(host.sysfs, parts=("mdevs",))
        print_warnings(inv.warnings)
        echo(list_dumpjson(inv.root, inv.mdevs), nl=False)
        return 0
    inv = Inventory.scan(host.sysfs, parts=("mdevs", "pci", "ccw"))
    print_warnings(inv.warnings)
    devices = inv.assignable()
    backend = host.vdpa_if_any()
    vdpa = backend.devices() if backend is not None else []
    if json_output:
        listed = [_device_json(d) for d in devices] + [_vdpa_json(v) for v in vdpa]
        echo(json_text({"devices": listed, "warnings": warnings_json(inv.warnings)}, pretty))
    elif devices or vdpa:
        header = ("KIND", "DEVICE", "PARENT", "TYPE", "DRIVER", "IOMMU_GROUP")
        rows = [*(_row(d) for d in devices), *(("vdpa", v.name, v.mgmtdev, v.type, "-", "-") for v in vdpa)]
        echo("\n".join(table([header, *rows], indent="")))
    if not devices and not vdpa:
        echo(NOTHING_LISTED, err=True)
    return 0


# -- devmig types --------------------------------------------------------------------------------------------------


def list_types(sysfs: Sysfs, parent: str | None, fmt: str, json_output: bool, pretty: bool) -> int:
    """`devmig types` on a host's sysfs; `json_output` and `pretty` as the options resolve them."""
    inv = Inventory.scan(sysfs, parts=("mdev_types",))
    parents = [p for p in inv.parents if parent is None or p.name == parent]
    print_warnings(inv.warnings)
    if fmt == "mdevctl":
        from devmig.host.mdevctl import types_dumpjson

        echo(types_dumpjson(parents), nl=False)
    elif json_output:
        echo(json_text({"parents": [p.to_dict() for p in parents], "warnings": warnings_json(inv.warnings)}, pretty))
    else:
        lines = []
        for p in parents:
            lines.append(p.name)
            for t in p.types:
                lines.append(f"  {t.id}")
                lines.append(
                    f"    Available instances: {t.available_instances if t.available_instances is not None else '?'}"
                )
                lines.append(f"    Device API: {t.device_api or '?'}")
                if t.name is not None:
                    lines.append(f"    Name: {t.name}")
                if t.description is not None:
                    lines.append(f"    Description: {', '.join(t.description.splitlines())}")
                if t.migration_info:
                    lines.append("    Migration info: migration_info.json")
        if lines:
            echo("\n".join(lines))
    return 0
