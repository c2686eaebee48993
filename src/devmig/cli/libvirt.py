"""`devmig libvirt annotate`: the descriptors of a running domain's devices, stored in its libvirt metadata."""

from __future__ import annotations

import click

from devmig.cli.options import (
    emit_json,
    output_options,
    profiles_dir_option,
    resolve,
    state_dir_option,
    sysfs_root_option,
)
from devmig.cli.render import table
from devmig.errors import DevmigError, ExitCode


@click.group(name="libvirt")
def command() -> None:
    """Carry devmig's device descriptors with libvirt domains."""


@command.command(name="annotate")
@click.argument("domain_name", metavar="DOMAIN")
@click.option(
    "-c",
    "--connect",
    "uri",
    metavar="URI",
    default=None,
    help="The libvirt URI (as virsh -c) [default: libvirt's own: $LIBVIRT_DEFAULT_URI, else its choice].",
)
@sysfs_root_option
@profiles_dir_option
@state_dir_option
@output_options
def annotate(
    domain_name: str,
    uri: str | None,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    state_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Describe each mdev and PCI hostdev the running DOMAIN holds on this host (or --host), and store the
    descriptors in the domain's metadata (namespace urn:devmig:libvirt:v1), live and, when the domain is
    persistent, in its configuration: they travel with the VM when it migrates.

    A hostdev that cannot be described is reported with its reason and left out; the others are stored. Exit 0
    when every hostdev was described, 1 when one could not be or libvirt refused (not running, no connection),
    2 on bad input (no such domain, XML devmig cannot read)."""
    from devmig.libvirt.annotate import annotate as run
    from devmig.libvirt.connection import connect
    from devmig.machine import open_host

    opts = resolve(json_output, pretty)
    target = open_host(host, sysfs_root, state_dir)
    done = run(connect(uri), domain_name, target, profiles_dir)
    code = ExitCode.OK if done.complete else ExitCode.REFUSED
    if opts.json:
        emit_json(done.to_dict(), opts)
        return code
    where = "live and config" if done.config else "live (the domain is transient)"
    lines = [f"domain {done.domain} ({done.uuid or 'no uuid'}) at {done.uri}, devices on {target.name}:"]
    rows = []
    for a in done.hostdevs:
        d = a.descriptor
        summary = (
            f"{d.device_api} {d.type} model {d.model or '-'} version {d.software_version} ({d.confidence})"
            if d is not None
            else f"not described: {a.reason}"
        )
        rows.append((a.hostdev.kind, a.hostdev.address, a.hostdev.alias or "-", summary))
    lines += table(rows) or ["  no mdev or PCI hostdev"]
    described = sum(a.descriptor is not None for a in done.hostdevs)
    lines.append(f"metadata set ({where}): {described} of {len(done.hostdevs)} hostdev(s) described")
    click.echo("\n".join(lines))
    return code


# -- the hook ---------------------------------------------------------------------------------------------------------


@command.command(name="hook", context_settings={"ignore_unknown_options": True})
@click.argument("arguments", nargs=-1, metavar="DOMAIN OPERATION SUB-OPERATION EXTRA")
@click.option(
    "--config", "config", metavar="FILE", default=None, help="The hook's settings [default: /etc/devmig/libvirt.toml]."
)
@sysfs_root_option
@state_dir_option
def hook(
    arguments: tuple[str, ...], config: str | None, sysfs_root: str, host: str | None, state_dir: str | None
) -> int:
    """libvirt's qemu hook (run by libvirt, from the drop-in `install-hook` writes): the four arguments libvirt
    passes and the domain's XML on stdin. On `migrate begin` (the destination) it prepares each mdev/PCI hostdev
    from the descriptor in the domain's devmig metadata and prints the rewritten XML, or refuses with every reason;
    `started begin`, `release end` keep or release what it prepared. Exit 0 done, 1 refused (libvirt cancels the
    migration and shows the message), 2 bad input."""
    import sys
    from pathlib import Path

    from devmig.libvirt.domain import MAX_XML_BYTES
    from devmig.libvirt.hook import Context, HookResult, Settings, run
    from devmig.machine import open_host

    # libvirt writes the XML on stdin for every operation: read it (bounded) so its write never meets a closed pipe
    stdin = b"" if sys.stdin.isatty() else sys.stdin.buffer.read(MAX_XML_BYTES + 1)
    try:
        ctx = Context(
            open_host(host, sysfs_root, state_dir), Settings.load(Path(config) if config else None), state_dir
        )
    except DevmigError as exc:
        result = HookResult(int(getattr(exc, "exit_code", ExitCode.BAD_INPUT)), "", f"devmig: {exc}\n")
    else:
        result = run(arguments, stdin, ctx)
    if result.stdout:
        click.echo(result.stdout, nl=False)
    if result.stderr:
        click.echo(result.stderr, nl=False, err=True)
    return result.code


@command.command(name="install-hook")
@click.option(
    "--hooks-dir", metavar="DIR", default="/etc/libvirt/hooks", show_default=True, help="libvirt's hook directory."
)
@click.option("--name", default="devmig", show_default=True, help="The drop-in's file name in qemu.d/.")
@click.option(
    "--config",
    "config",
    metavar="FILE",
    default=None,
    help="Settings the hook reads [default: /etc/devmig/libvirt.toml].",
)
@sysfs_root_option
@state_dir_option
@output_options
def install_hook(
    hooks_dir: str,
    name: str,
    config: str | None,
    sysfs_root: str,
    host: str | None,
    state_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Install devmig's hook as HOOKS-DIR/qemu.d/NAME: a script that runs this devmig (by its absolute path) with
    the given --host, --state-dir and --config. Restart libvirtd (or virtqemud) afterwards: libvirt reads its hooks
    when it starts. Exit 0 installed, 2 refused (a file of another's there, no permission)."""
    from pathlib import Path

    from devmig.libvirt.install import RESTART, hook_command, install

    opts = resolve(json_output, pretty)
    if sysfs_root != "/":
        raise click.UsageError("install-hook: --sysfs-root is for tests; the hook acts on this machine or --host")
    done = install(hook_command(host=host, state_dir=state_dir, config=config), hooks_dir=Path(hooks_dir), name=name)
    if opts.json:
        emit_json({"installed": str(done.path), "command": done.command, "restart": RESTART}, opts)
    else:
        click.echo(f"installed {done.path}: runs {' '.join(done.command)}\n{RESTART}")
    return ExitCode.OK


@command.command(name="uninstall-hook")
@click.option(
    "--hooks-dir", metavar="DIR", default="/etc/libvirt/hooks", show_default=True, help="libvirt's hook directory."
)
@click.option("--name", default="devmig", show_default=True, help="The drop-in's file name in qemu.d/.")
@output_options
def uninstall_hook(hooks_dir: str, name: str, json_output: bool, pretty: bool) -> int:
    """Remove devmig's hook from HOOKS-DIR/qemu.d/ (only a file devmig wrote). Exit 0 removed or absent, 2 refused."""
    from pathlib import Path

    from devmig.libvirt.install import RESTART, uninstall

    opts = resolve(json_output, pretty)
    removed = uninstall(hooks_dir=Path(hooks_dir), name=name)
    if opts.json:
        emit_json({"removed": str(removed) if removed else None}, opts)
    elif removed is None:
        click.echo(f"no devmig hook in {Path(hooks_dir) / 'qemu.d'}: nothing to remove")
    else:
        click.echo(f"removed {removed}\n{RESTART}")
    return ExitCode.OK
