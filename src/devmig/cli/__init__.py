"""The `devmig` command: thin, lazy, and never a traceback without --debug.

Subcommands live in their own modules and are imported only when run, so `devmig --help` and the fast read-only
commands do not pay for pydantic and the rest. Nothing here imports click: `main` gives the hot read-only command
lines (`devmig list|types -j`, `--format mdevctl`, `devmig --help`) to `devmig.cli.quick`, which prints what click
would without loading it, and everything else to the click group (`devmig.cli.group`).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

from devmig.errors import DevmigError, ExitCode

#: What `devmig --help` says of devmig, before its options.
ABOUT = """devmig: predictable live migration of VMs with assigned devices.

Exit codes: 0 ok or compatible, 1 incompatible or refused, 2 bad input or usage, 3 internal error."""

#: name -> (module holding `command`, or "module:attribute", and the one-line help `devmig --help` shows without
#: importing the module).
#: A module is never named after a builtin: once imported it is an attribute of this package and would shadow it.
COMMANDS: dict[str, tuple[str, str]] = {
    "lab": ("devmig.cli.lab", "Run the main job on a simulated lab: which hosts can take a running device."),
    "list": ("devmig.cli.listing", "List this host's assignable devices (mdevs, VFIO PCI functions, vfio-ccw)."),
    "types": ("devmig.cli.types", "List the mdev types each parent device can create."),
    "describe": ("devmig.cli.describe", "Print the source descriptor of a device on this host."),
    "capabilities": ("devmig.cli.capabilities", "Print the destination capabilities of this host's types."),
    "mdev": ("devmig.cli.mdev", "Create and remove mediated devices."),
    "pci": ("devmig.cli.pci", "Bind PCI functions to VFIO drivers and back."),
    "vfio": ("devmig.cli.vfio", "Open a device through VFIO and report its migration support."),
    "vdpa": ("devmig.cli.vdpa", "Manage vDPA devices over netlink, as iproute2's vdpa."),
    "plan": ("devmig.cli.provision:plan", "Rank the devices a destination host could give a source device."),
    "prepare": ("devmig.cli.provision:prepare", "Make the destination device for a source device (undone on failure)."),
    "release": ("devmig.cli.provision:release", "Undo a prepare: remove or give back the device it made."),
    "recover": ("devmig.cli.provision:recover", "Finish undoing prepares whose process died."),
    "migrate": ("devmig.cli.migrate:migrate", "Send a device's state to `devmig receive` on another host."),
    "receive": ("devmig.cli.migrate:receive", "Wait for `devmig migrate` and load its state into a device."),
    "save": ("devmig.cli.migrate:save", "Write a device's state to a file (a checkpoint)."),
    "restore": ("devmig.cli.migrate:restore", "Load a device's state from a file written by `devmig save`."),
    "inventory": ("devmig.cli.fleet:inventory", "Publish a host's inventory to the fleet store, and read it back."),
    "place": ("devmig.cli.fleet:place", "Find the hosts of the fleet that can take a device (and claim one)."),
    "claim": ("devmig.cli.fleet:claim", "List, release or purge the claims `devmig place --claim` made."),
    "agent": ("devmig.cli.agent", "Keep this host's inventory in the fleet store as its devices change (a service)."),
    "export": ("devmig.cli.export", "Print the fleet's facts for schedulers: Placement traits, Kubernetes labels."),
    "check": ("devmig.cli.check", "Check a source device descriptor against a destination capability."),
    "baseline": ("devmig.cli.baseline", "Find the configuration every given destination capability accepts."),
    "schema": ("devmig.cli.schema", "Print the JSON Schema of a devmig format."),
    "libvirt": ("devmig.cli.libvirt", "Carry descriptors in libvirt domains' metadata; preflight and migrate them."),
    "mdevctl": ("devmig.cli.mdevctl", "mdevctl's callout: judge the migration/ attributes of the mdevs it defines."),
}

#: An unexpected exception is a bug in devmig, not bad input: it gets its own code.
INTERNAL_ERROR = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DEVMIG_DEBUG") == "1"
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A name read from a host may not be UTF-8 (a file name's bytes, kept as surrogate escapes): print it
        # escaped, as Python's stderr does, rather than fail on it.
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        from devmig.cli.quick import run_quick

        result = run_quick(args)
        if result is None:
            from devmig.cli.group import cli

            result = cli.main(args=args, prog_name="devmig", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitCode.OK
    except BrokenPipeError:
        # The reader went away (`devmig ... | head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115, PTH123 - keep shutdown from failing on flush
        return ExitCode.OK
    except Exception as exc:
        import click  # only failures need it here

        if isinstance(exc, click.ClickException):
            exc.show()
            return ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            click.echo("devmig: interrupted", err=True)
            return 130
        if debug:
            raise
        if isinstance(exc, DevmigError):
            click.echo(f"devmig: error: {exc.message}", err=True)
            return exc.exit_code
        click.echo(
            f"devmig: internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
            err=True,
        )
        return INTERNAL_ERROR
