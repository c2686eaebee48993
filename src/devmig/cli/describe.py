"""`devmig describe DEVICE` and `devmig capabilities`: the formats, read from this host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from devmig.cli.options import emit_json, output_options, profiles_dir_option, resolve, sysfs_root_option
from devmig.cli.render import print_warnings
from devmig.errors import ExitCode

if TYPE_CHECKING:
    from devmig.vdpa.backend import VdpaBackend


def _vdpa_descriptor(backend: VdpaBackend | None, name: str) -> dict[str, Any] | None:
    """The descriptor of the vDPA device `name`, or None when the host has no such device."""
    if backend is None or name not in {dev.name for dev in backend.devices()}:
        return None
    from devmig.host import vdpa

    return vdpa.descriptor(backend.device(name), backend.config(name)).model_dump(mode="json", exclude_none=True)


@click.command(name="describe")
@click.argument("device", metavar="DEVICE")
@sysfs_root_option
@profiles_dir_option
@output_options
def command(
    device: str, sysfs_root: str, host: str | None, profiles_dir: str | None, json_output: bool, pretty: bool
) -> int:
    """Print the source descriptor of DEVICE (an mdev UUID, a PCI address or a vDPA device name), ready for
    `devmig check`.

    The output is JSON in every case: it is a document. -p indents it.
    """
    from devmig.errors import InputError
    from devmig.host.describe import Describer
    from devmig.host.inventory import Inventory
    from devmig.host.profile import load_profiles
    from devmig.machine import open_host

    opts = resolve(json_output, pretty)
    opened = open_host(host, sysfs_root)
    inv = Inventory.scan(opened.sysfs)
    try:
        target = inv.device(device)
    except InputError:
        vdpa = _vdpa_descriptor(opened.vdpa_if_any(), device)
        if vdpa is None:
            raise
        emit_json(vdpa, opts)
        return ExitCode.OK
    descriptor = Describer(inv, load_profiles(profiles_dir), opened.nvml()).descriptor(target)
    print_warnings(w for w in inv.warnings if device.lower() in w.object)
    emit_json(descriptor.model_dump(mode="json", exclude_none=True), opts)
    return ExitCode.OK
