"""`devmig list`: the assignable devices of this host (mdevs, VFIO PCI functions, vfio-ccw subchannels, and vDPA
devices when the host has the vdpa family)."""

from __future__ import annotations

import click

from devmig.cli.discovery import list_devices
from devmig.cli.options import mdevctl_format_option, output_options, resolve, sysfs_root_option
from devmig.machine import open_host


@click.command(name="list")
@mdevctl_format_option("list")
@sysfs_root_option
@output_options
def command(fmt: str, sysfs_root: str, host: str | None, json_output: bool, pretty: bool) -> int:
    """List the devices a VM can be given: mdevs, PCI functions bound to vfio-pci or a VFIO variant driver,
    subchannels bound to vfio_ccw, and vDPA devices (from the vdpa netlink family, when the host has it)."""
    opts = resolve(json_output, pretty)
    return list_devices(open_host(host, sysfs_root), fmt, opts.json, opts.pretty)
