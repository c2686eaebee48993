"""`devmig mdev create|remove`: mediated devices, created and removed through sysfs."""

from __future__ import annotations

import click

from devmig.cli.options import emit_json, output_options, resolve, sysfs_of, sysfs_root_option
from devmig.errors import ExitCode


@click.group(name="mdev")
def command() -> None:
    """Create and remove mediated devices."""


@command.command(name="create")
@click.argument("parent")
@click.argument("type_id", metavar="TYPE")
@click.option("-u", "--uuid", metavar="UUID", help="The new device's UUID (a random one by default).")
@sysfs_root_option
@output_options
def create(
    parent: str, type_id: str, uuid: str | None, sysfs_root: str, host: str | None, json_output: bool, pretty: bool
) -> int:
    """Create an mdev of TYPE on PARENT and print its UUID. Exit 1 when the host refuses (no free instance, the
    UUID exists), 2 when PARENT or TYPE does not exist."""
    from devmig.host.ops import create_mdev

    opts = resolve(json_output, pretty)
    device, _ = create_mdev(sysfs_of(sysfs_root, host), parent, type_id, uuid)
    if opts.json:
        emit_json({"uuid": device, "parent": parent, "type": type_id}, opts)
    else:
        click.echo(device)
    return ExitCode.OK


@command.command(name="remove")
@click.argument("uuid")
@sysfs_root_option
def remove(uuid: str, sysfs_root: str, host: str | None) -> int:
    """Remove the mdev UUID. Exit 1 when it is in use."""
    from devmig.host.ops import remove_mdev

    change = remove_mdev(sysfs_of(sysfs_root, host), uuid)
    click.echo(change.what)
    return ExitCode.OK
