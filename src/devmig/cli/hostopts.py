"""The --sysfs-root option of every command that reads a host, and warning output."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from devmig.host.devices import ScanWarning
from devmig.host.sysfs import Sysfs

F = TypeVar("F", bound=Callable[..., Any])


def sysfs_root_option(func: F) -> F:
    """--sysfs-root DIR and --host HOST: which host a command reads or changes."""
    func = click.option(
        "--host",
        "host",
        metavar="HOST",
        envvar="DEVMIG_HOST",
        default=None,
        help="A simulated host: sim:LAB/HOST (LAB a lab file or a shipped lab's name) or sim:HOST (the default "
        "lab). Also $DEVMIG_HOST. Default: this machine.",
    )(func)
    return click.option(
        "--sysfs-root",
        metavar="DIR",
        envvar="DEVMIG_SYSFS_ROOT",
        default="/",
        show_default=True,
        help="Read the host under DIR (a directory holding sys/) instead of /. Also $DEVMIG_SYSFS_ROOT.",
    )(func)


def dir_option(flag: str, envvar: str, help_text: str) -> Callable[[F], F]:
    """An option naming a directory, also read from an environment variable, with no default of click's own."""

    def decorate(func: F) -> F:
        return click.option(flag, metavar="DIR", envvar=envvar, default=None, help=help_text)(func)

    return decorate


def sysfs_of(sysfs_root: str, host: str | None) -> Sysfs:
    from devmig.host.hosts import open_host

    return open_host(host, sysfs_root).sysfs


def mdevctl_format_option(peer: str) -> Callable[[F], F]:
    """--format devmig|mdevctl, where mdevctl means exactly what `mdevctl PEER --dumpjson` prints."""

    def decorate(func: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(["devmig", "mdevctl"]),
            default="devmig",
            show_default=True,
            help=f"mdevctl: exactly what `mdevctl {peer} --dumpjson` prints (implies JSON).",
        )(func)

    return decorate


def print_warnings(warnings: Iterable[ScanWarning]) -> None:
    for warning in warnings:
        click.echo(f"devmig: warning: {warning}", err=True)


def warnings_json(warnings: Iterable[ScanWarning]) -> list[dict[str, str]]:
    return [{"object": w.object, "path": w.path, "message": w.message} for w in warnings]
