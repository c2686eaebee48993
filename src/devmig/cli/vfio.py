"""`devmig vfio info DEVICE`: open a device through VFIO and report what it supports, migration first."""

from __future__ import annotations

import dataclasses

import click

from devmig.cli.hostopts import sysfs_root_option
from devmig.cli.options import emit_json, output_options, resolve
from devmig.errors import ExitCode


@click.group(name="vfio")
def command() -> None:
    """Talk to devices through VFIO."""


@command.command(name="info")
@click.argument("device")
@sysfs_root_option
@output_options
def info(device: str, sysfs_root: str, host: str | None, json_output: bool, pretty: bool) -> int:
    """Open DEVICE (an mdev UUID or a PCI address bound to a VFIO driver) and print its VFIO flags and its
    migration support (VFIO_MIGRATION_STOP_COPY, P2P, PRE_COPY). Needs root."""
    from devmig.host.hosts import open_host

    opts = resolve(json_output, pretty)
    with open_host(host, sysfs_root).vfio(device) as dev:
        described = dev.describe()
    if opts.json:
        emit_json(dataclasses.asdict(described), opts)
    else:
        migration = "|".join(described.migration) if described.migration is not None else "none"
        click.echo(f"device:     {described.name} (IOMMU group {described.group})")
        click.echo(
            f"flags:      {'|'.join(described.flags)}; {described.num_regions} regions, {described.num_irqs} irqs"
        )
        click.echo(
            f"migration:  {migration}" + (f" ({described.migration_error})" if described.migration_error else "")
        )
    return ExitCode.OK
