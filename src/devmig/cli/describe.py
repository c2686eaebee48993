"""`devmig describe DEVICE` and `devmig capabilities`: the formats, read from this host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from devmig.cli.hostopts import dir_option, print_warnings, sysfs_of, sysfs_root_option
from devmig.cli.options import emit_json, output_options, resolve
from devmig.errors import ExitCode

F = TypeVar("F", bound=Callable[..., Any])


def profiles_dir_option(func: F) -> F:
    return dir_option(
        "--profiles-dir",
        "DEVMIG_PROFILES_DIR",
        "Extra driver profiles (*.toml) that take precedence over the shipped ones "
        "[default: /etc/devmig/profiles.d; also $DEVMIG_PROFILES_DIR].",
    )(func)


@click.command(name="describe")
@click.argument("device", metavar="DEVICE")
@sysfs_root_option
@profiles_dir_option
@output_options
def command(
    device: str, sysfs_root: str, host: str | None, profiles_dir: str | None, json_output: bool, pretty: bool
) -> int:
    """Print the source descriptor of DEVICE (an mdev UUID or a PCI address), ready for `devmig check`.

    The output is JSON in every case: it is a document. -p indents it.
    """
    from devmig.host.describe import Describer
    from devmig.host.inventory import Inventory
    from devmig.host.profile import load_profiles

    opts = resolve(json_output, pretty)
    inv = Inventory.scan(sysfs_of(sysfs_root, host))
    target = inv.device(device)
    descriptor = Describer(inv, load_profiles(profiles_dir)).descriptor(target)
    print_warnings(w for w in inv.warnings if device.lower() in w.object)
    emit_json(descriptor.model_dump(mode="json", exclude_none=True), opts)
    return ExitCode.OK
