"""`devmig types`: the mdev types each parent can create (what `mdevctl types` shows, and more)."""

from __future__ import annotations

import click

from devmig.cli.discovery import list_types
from devmig.cli.options import mdevctl_format_option, output_options, resolve, sysfs_of, sysfs_root_option


@click.command(name="types")
@click.option("-P", "--parent", metavar="PARENT", help="Only the types of this parent device.")
@mdevctl_format_option("types")
@sysfs_root_option
@output_options
def command(parent: str | None, fmt: str, sysfs_root: str, host: str | None, json_output: bool, pretty: bool) -> int:
    """List the mdev types each parent device can create, with free instances.

    A type that cannot be read completely (no device_api, an available_instances that is not a number) is
    reported as a warning on standard error; the others are listed all the same.
    """
    opts = resolve(json_output, pretty)
    return list_types(sysfs_of(sysfs_root, host), parent, fmt, opts.json, opts.pretty)
