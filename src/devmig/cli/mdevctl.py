"""`devmig mdevctl callout`, `install-callout`, `uninstall-callout`: devmig as a callout of mdevctl, judging the
`migration/<param>` attributes of the mdevs mdevctl defines, modifies and starts."""

from __future__ import annotations

import click

from devmig.cli.options import F, emit_json, output_options, profiles_dir_option, resolve
from devmig.errors import ExitCode


@click.group(name="mdevctl")
def command() -> None:
    """devmig as mdevctl's callout: the migration/ attributes of the mdevs mdevctl defines, judged."""


def callout_file_options(func: F) -> F:
    """--callouts-dir and --name: where the script lives (install-callout, uninstall-callout)."""
    func = click.option("--name", default="devmig", show_default=True, help="The script's file name.")(func)
    return click.option(
        "--callouts-dir",
        metavar="DIR",
        default="/etc/mdevctl.d/scripts.d/callouts",
        show_default=True,
        help="mdevctl's callout directory (1.3+ also reads /usr/lib/mdevctl/scripts.d/callouts; 1.2 only this).",
    )(func)


@command.command(name="callout", context_settings={"ignore_unknown_options": True})
@click.argument(
    "arguments", nargs=-1, type=click.UNPROCESSED, metavar="-t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT"
)
@click.option("--sysfs-root", metavar="DIR", default=None, help="Read this root instead of / (for tests).")
@profiles_dir_option
def callout(arguments: tuple[str, ...], sysfs_root: str | None, profiles_dir: str | None) -> int:
    """mdevctl's callout (run by mdevctl, from the script `install-callout` writes): the arguments mdevctl passes
    and the device's JSON on stdin. On `pre define|modify|start` it judges the device's migration/<param>
    attributes against its type's capability; on `get attributes` it prints a running device's migration/ values.
    Exit 0 allowed (or answered), 1 refused with every reason on stderr (mdevctl stops and shows them; also a
    request devmig cannot read), 2 not devmig's: a type it cannot describe, no migration/ attribute to judge, any
    other event or action (mdevctl asks its next script)."""
    from devmig.mdevctl.callout import main

    options = [
        *(["--sysfs-root", sysfs_root] if sysfs_root else []),
        *(["--profiles-dir", profiles_dir] if profiles_dir else []),
    ]
    return main([*options, "--", *arguments])


@command.command(name="install-callout")
@callout_file_options
@profiles_dir_option
@output_options
def install_callout(callouts_dir: str, name: str, profiles_dir: str | None, json_output: bool, pretty: bool) -> int:
    """Install devmig's callout as CALLOUTS-DIR/NAME: a script that runs this devmig (by its absolute path) for the
    events it answers and exits 2 at once for the others. mdevctl reads the directory on every run. Exit 0
    installed, 2 refused (a file of another's there, no permission)."""
    from pathlib import Path

    from devmig.mdevctl.install import callout_command, install

    opts = resolve(json_output, pretty)
    command = callout_command(profiles_dir=profiles_dir)
    path = install(command, callouts_dir=Path(callouts_dir), name=name)
    if opts.json:
        emit_json({"installed": str(path), "command": command}, opts)
    else:
        click.echo(f"installed {path}: runs {' '.join(command)}")
    return ExitCode.OK


@command.command(name="uninstall-callout")
@callout_file_options
@output_options
def uninstall_callout(callouts_dir: str, name: str, json_output: bool, pretty: bool) -> int:
    """Remove devmig's callout from CALLOUTS-DIR (only a file devmig wrote). Exit 0 removed or absent, 2 refused."""
    from pathlib import Path

    from devmig.mdevctl.install import uninstall

    opts = resolve(json_output, pretty)
    removed = uninstall(callouts_dir=Path(callouts_dir), name=name)
    if opts.json:
        emit_json({"removed": str(removed) if removed else None}, opts)
    elif removed is None:
        click.echo(f"no devmig callout in {callouts_dir}: nothing to remove")
    else:
        click.echo(f"removed {removed}")
    return ExitCode.OK
