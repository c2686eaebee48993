"""`devmig pci bind|unbind`: which driver a PCI function is bound to."""

from __future__ import annotations

import click

from devmig.cli.options import sysfs_of, sysfs_root_option
from devmig.errors import ExitCode


@click.group(name="pci")
def command() -> None:
    """Bind PCI functions to VFIO drivers and back."""


@command.command(name="bind")
@click.argument("address")
@click.argument("driver", default="vfio-pci")
@sysfs_root_option
def bind(address: str, driver: str, sysfs_root: str, host: str | None) -> int:
    """Bind the PCI function ADDRESS to DRIVER (vfio-pci by default, or a variant driver such as mlx5_vfio_pci)
    through driver_override. On failure the previous driver is restored."""
    from devmig.host.ops import bind_pci

    click.echo(bind_pci(sysfs_of(sysfs_root, host), address, driver).what)
    return ExitCode.OK


@command.command(name="unbind")
@click.argument("address")
@sysfs_root_option
def unbind(address: str, sysfs_root: str, host: str | None) -> int:
    """Unbind the PCI function ADDRESS from its driver and clear its driver_override."""
    from devmig.host.ops import unbind_pci

    click.echo(unbind_pci(sysfs_of(sysfs_root, host), address).what)
    return ExitCode.OK
