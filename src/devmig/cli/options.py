"""The options commands share, in one place: output (-j/-p), the host (--host, --sysfs-root), the directories
(--profiles-dir, --state-dir), the fleet store (--store) and mdevctl's formats. A command module defines only the
options that are its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from devmig.cli.render import json_text

if TYPE_CHECKING:
    from devmig.host.sysfs import Sysfs

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Options:
    json: bool = False
    pretty: bool = False
    debug: bool = False


def output_options(func: F) -> F:
    """Accept -j/-p after the command name too (iproute2 takes them before: both work)."""
    func = click.option("-p", "--pretty", "pretty", is_flag=True, help="Indent JSON output.")(func)
    func = click.option("-j", "--json", "json_output", is_flag=True, help="Output JSON for programs.")(func)
    return func


def resolve(json_output: bool, pretty: bool) -> Options:
    ctx = click.get_current_context()
    base = ctx.find_object(Options) or Options()
    pretty = pretty or base.pretty
    return Options(json=json_output or pretty or base.json, pretty=pretty, debug=base.debug)


def emit_json(data: Any, opts: Options) -> None:
    click.echo(json_text(data, opts.pretty))


# -- the host ---------------------------------------------------------------------------------------------------------


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


def sysfs_of(sysfs_root: str, host: str | None) -> Sysfs:
    """The sysfs of the host the host options name."""
    from devmig.machine import open_host

    return open_host(host, sysfs_root).sysfs


# -- directories and the store ----------------------------------------------------------------------------------------


def profiles_dir_option(func: F) -> F:
    return dir_option(
        "--profiles-dir",
        "DEVMIG_PROFILES_DIR",
        "Extra driver profiles (*.toml) that take precedence over the shipped ones "
        "[default: /etc/devmig/profiles.d; also $DEVMIG_PROFILES_DIR].",
    )(func)


def state_dir_option(func: F) -> F:
    return dir_option(
        "--state-dir",
        "DEVMIG_STATE_DIR",
        "Where journals, prepare records and locks live [default: /var/lib/devmig for root, else "
        "~/.local/state/devmig; also $DEVMIG_STATE_DIR].",
    )(func)


def store_option(func: F) -> F:
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar="DEVMIG_STORE",
        default=None,
        help="The fleet store: sqlite:///PATH, postgresql://USER@HOST/DB or a path "
        "[default: $DEVMIG_STORE, else ~/.local/share/devmig/fleet.db].",
    )(func)
