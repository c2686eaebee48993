"""The hot read-only command lines, run without click: `devmig list` and `devmig types` on this machine,
`devmig --help`, and `devmig mdevctl callout` (mdevctl runs it around every operation; it reads its own arguments).

Loading click (and what it loads) takes longer than `mdevctl types` takes in all. `run_quick` reads the command
lines it knows exactly as click would, and runs the same code as the click commands (devmig.cli.discovery); for any
other command line it returns None and click runs it: an option it does not know, an option given twice, a value
attached to a short option or starting with "-", an empty value, `--host` or $DEVMIG_HOST (a simulated host), `-h`
after a command, shell completion ($_DEVMIG_COMPLETE). tests/cli/test_quick.py runs both paths and compares them.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence

from devmig.cli.echo import echo

#: flag -> what it sets, before the command name (the group's) and after it (the command's own -j/-p)
GROUP_FLAGS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty", "--debug": "debug"}
COMMAND_FLAGS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty"}
#: option taking a value -> what it sets, per command
VALUE_OPTIONS: dict[str, dict[str, str]] = {
    "list": {"--format": "format", "--sysfs-root": "sysfs_root"},
    "types": {"--format": "format", "--sysfs-root": "sysfs_root", "-P": "parent", "--parent": "parent"},
}
FORMATS = ("devmig", "mdevctl")
HELP = (["--help"], ["-h"])
HELP_FLAGS = frozenset({"--help", "-h"})

Values = dict[str, str | bool]


def _options(args: Sequence[str], flags: dict[str, str], values: dict[str, str]) -> Values | None:
    """One level's options, or None for anything click would read otherwise, or refuse."""
    seen: Values = {}
    i = 0
    while i < len(args):
        token = args[i]
        name, eq, attached = token.partition("=")
        value: str | bool
        if token in flags:
            dest, value = flags[token], True
        elif eq and name.startswith("--") and name in values:
            dest, value = values[name], attached
        elif token in values and i + 1 < len(args):
            i += 1
            dest, value = values[token], args[i]
        else:
            return None
        if dest in seen or value == "" or (isinstance(value, str) and value.startswith("-")):
            return None
        seen[dest] = value
        i += 1
    return seen


def _parse(args: Sequence[str]) -> tuple[str, Values, Values] | None:
    """(command, group options, command options) of a `devmig list|types` line this module runs, else None."""
    at = next((i for i, token in enumerate(args) if not token.startswith("-")), None)
    if at is None or args[at] not in VALUE_OPTIONS:
        return None
    command = args[at]
    group = _options(args[:at], GROUP_FLAGS, {})
    own = _options(args[at + 1 :], COMMAND_FLAGS, VALUE_OPTIONS[command])
    if group is None or own is None or own.get("format", "devmig") not in FORMATS:
        return None
    return command, group, own


class _QuietFlush:
    """A standard stream whose flush ignores EPIPE, as click leaves them when the reader has gone: shutdown must
    not complain about a pipe no one reads."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def flush(self) -> None:
        try:
            self._stream.flush()  # type: ignore[attr-defined]
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _as_click(run: Callable[[], int]) -> int:
    """Run as click's main runs a command: an interrupt becomes its Abort, a closed pipe ends with status 1."""
    try:
        return run()
    except (EOFError, KeyboardInterrupt) as exc:
        import click

        click.echo(file=sys.stderr)
        raise click.exceptions.Abort() from exc
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        sys.stdout = _QuietFlush(sys.stdout)
        sys.stderr = _QuietFlush(sys.stderr)
        sys.exit(1)


def _help() -> int:
    from devmig.cli.helptext import page

    echo(page())
    return 0


def run_quick(args: Sequence[str]) -> int | None:
    """The exit status of a command line run here, or None when click is to run it."""
    if list(args[:2]) == ["mdevctl", "callout"] and not HELP_FLAGS.intersection(args[2:3]):
        # mdevctl runs its callouts for every operation: the callout parses its own arguments (mdevctl's)
        from devmig.mdevctl.callout import main

        return main(args[2:])
    if os.environ.get("_DEVMIG_COMPLETE") or os.environ.get("DEVMIG_HOST"):
        return None
    if list(args) in HELP:
        return _as_click(_help)
    parsed = _parse(args)
    if parsed is None:
        return None
    command, group, own = parsed
    # as the group's Options and devmig.cli.options.resolve combine them
    pretty = bool(own.get("pretty") or group.get("pretty"))
    json_output = bool(own.get("json") or group.get("json")) or pretty
    fmt = str(own.get("format", "devmig"))
    sysfs_root = str(own.get("sysfs_root") or os.environ.get("DEVMIG_SYSFS_ROOT") or "/")
    from devmig.cli import discovery

    if command == "list":
        from devmig.machine import open_host

        return _as_click(lambda: discovery.list_devices(open_host(None, sysfs_root), fmt, json_output, pretty))
    from devmig.host.sysfs import SysfsRoot

    parent = own.get("parent")
    only = parent if isinstance(parent, str) else None
    # no --host: this machine, under the root, as devmig.machine.open_host opens it
    return _as_click(lambda: discovery.list_types(SysfsRoot(sysfs_root), only, fmt, json_output, pretty))
