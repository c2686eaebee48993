"""`devmig vdpa`: a drop-in for iproute2's `vdpa`, over devmig's vdpa backend (the netlink client on this machine,
the simulated family on a lab host with `--host sim:LAB/HOST`).

The command language is devmig.vdpa.iproute2's (iproute2's options, command tree, values and output, byte for
byte); this is the click command around it: devmig's --host taken out of the arguments, the host's backend opened
when a command needs it, what the run prints written out and its exit code returned.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from devmig.errors import DevmigError, InputError
from devmig.vdpa.backend import VdpaBackend, VdpaUnavailableError
from devmig.vdpa.iproute2.options import PROG
from devmig.vdpa.iproute2.run import vdpa_main


def split_host(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """devmig's --host HOST (or --host=HOST), taken out wherever it is before `--`."""
    host: str | None = None
    rest: list[str] = []
    items = list(args)
    while items:
        arg = items.pop(0)
        if arg == "--":
            rest += [arg, *items]
            break
        if arg == "--host":
            if not items:
                raise InputError(f"{PROG}: option '--host' requires an argument (sim:LAB/HOST or sim:HOST)")
            host = items.pop(0)
        elif arg.startswith("--host="):
            host = arg[len("--host=") :]
        else:
            rest.append(arg)
    return host, rest


class RawCommand(click.Command):
    """Hands its arguments over untouched: click would take `--` and --help, which iproute2's grammar decides."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.params["argv"] = list(args)
        return []


@click.command(
    name="vdpa",
    cls=RawCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def command(argv: list[str]) -> int:
    """Manage vDPA devices over netlink, as iproute2's vdpa (`devmig vdpa help`)."""
    from devmig.cli.options import resolve

    host, args = split_host(argv)
    host = host if host is not None else os.environ.get("DEVMIG_HOST") or None
    opts = resolve(False, False)

    def backend() -> VdpaBackend:
        from devmig.machine import open_host

        try:
            return open_host(host).vdpa()
        except VdpaUnavailableError:
            raise
        except DevmigError as exc:
            # a --host that names no host: devmig's own usage error, exit 2 from devmig's main
            raise _HostError(exc) from None

    try:
        result = vdpa_main(
            args, backend, json=opts.json, pretty=opts.pretty, permute="POSIXLY_CORRECT" not in os.environ
        )
    except _HostError as exc:
        raise exc.error from None
    sys.stdout.write(result.out)
    sys.stdout.flush()
    sys.stderr.write(result.err)
    return result.code


class _HostError(Exception):
    """Carries a --host error past vdpa_main's handling of the family's errors, to devmig's main."""

    def __init__(self, error: DevmigError) -> None:
        super().__init__(error.message)
        self.error = error
