"""`devmig libvirt annotate`: the descriptors of a running domain's devices, stored in its libvirt metadata;
`devmig libvirt preflight` and `migrate`: every reason its migration would fail, and the migration; `devmig libvirt
hook`, `install-hook`, `uninstall-hook`: the destination's qemu hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from devmig.cli.options import (
    F,
    emit_json,
    output_options,
    profiles_dir_option,
    resolve,
    state_dir_option,
    store_option,
    sysfs_root_option,
)
from devmig.cli.render import table
from devmig.errors import DevmigError, ExitCode, InputError

if TYPE_CHECKING:
    from devmig.libvirt.connection import Connection
    from devmig.libvirt.preflight import DestinationFacts
    from devmig.migrate.device import VfioHost
    from devmig.model.preflight import Preflight


@click.group(name="libvirt")
def command() -> None:
    """Carry devmig's device descriptors with libvirt domains; check and run their migration; the qemu hook."""


def connect_option(func: F) -> F:
    return click.option(
        "-c",
        "--connect",
        "uri",
        metavar="URI",
        default=None,
        help="The libvirt URI where DOMAIN runs (as virsh -c) [default: libvirt's own: $LIBVIRT_DEFAULT_URI, else its "
        "choice].",
    )(func)


def hook_file_options(func: F) -> F:
    """--hooks-dir and --name: where the drop-in lives (install-hook, uninstall-hook)."""
    func = click.option("--name", default="devmig", show_default=True, help="The drop-in's file name in qemu.d/.")(func)
    return click.option(
        "--hooks-dir", metavar="DIR", default="/etc/libvirt/hooks", show_default=True, help="libvirt's hook directory."
    )(func)


def hook_config_option(func: F) -> F:
    return click.option(
        "--config",
        "config",
        metavar="FILE",
        default=None,
        help="The hook's settings [default: /etc/devmig/libvirt.toml].",
    )(func)


@command.command(name="annotate")
@click.argument("domain_name", metavar="DOMAIN")
@connect_option
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


# -- preflight and migrate --------------------------------------------------------------------------------------------


def destination_options(func: F) -> F:
    """Where DEST's types are read: the fleet store (DEST a host name there), or a capabilities file."""
    func = store_option(func)
    return click.option(
        "--dest-capabilities",
        "dest_capabilities",
        metavar="FILE",
        default=None,
        help="DEST's types from FILE (what `devmig capabilities -j` prints on DEST; - for standard input) instead "
        "of the fleet store.",
    )(func)


def postcopy_option(func: F) -> F:
    return click.option(
        "--postcopy",
        is_flag=True,
        help="The migration would switch to postcopy (QEMU blocks it for VFIO devices: reported as an error).",
    )(func)


def descriptors_option(func: F) -> F:
    return click.option(
        "--descriptors",
        "origin",
        type=click.Choice(["live", "metadata"]),
        default="live",
        show_default=True,
        help="live: describe each hostdev on this host now, as annotate does; metadata: the descriptors in the "
        "domain's devmig metadata.",
    )(func)


def _destination(name: str, dest_capabilities: str | None, store_url: str | None) -> DestinationFacts:
    from devmig.cli.files import read_input
    from devmig.libvirt.gather import destination_from_document, destination_from_store

    if dest_capabilities is not None:
        data, origin = read_input(dest_capabilities)
        return destination_from_document(data, origin, name)
    return destination_from_store(store_url, name)


def _run_preflight(
    conn: Connection,
    domain_name: str,
    target: VfioHost,
    destination: DestinationFacts,
    *,
    origin: str = "live",
    postcopy: bool,
    annotating: bool = False,
    profiles_dir: str | None,
) -> Preflight:
    from devmig.libvirt.gather import gather
    from devmig.libvirt.preflight import preflight

    facts = gather(
        conn,
        domain_name,
        target,
        destination,
        origin="metadata" if origin == "metadata" else "live",
        postcopy=postcopy,
        annotating=annotating,
        profiles_dir=profiles_dir,
    )
    return preflight(facts)


def _free(free: int | None) -> str:
    return "? free" if free is None else f"{free} free"


def preflight_lines(report: Preflight) -> list[str]:
    """The report for people: each device and what DEST offers it, each item, the result."""
    dest = report.destination
    lines = [
        f"domain {report.domain} ({report.uuid or 'no uuid'}) at {report.uri}, devices on {report.host}; "
        f"destination {dest.name}: {dest.types} type(s) from {dest.origin}",
    ]
    rows: list[tuple[str, ...]] = []
    below: dict[int, list[str]] = {}
    for n, d in enumerate(report.devices):
        desc = d.descriptor
        shown = f"{desc.type} {desc.software_version} ({d.origin})" if desc is not None else "not described"
        chosen = next((c for c in d.candidates if c.type == d.target), None)
        if chosen is not None:
            outcome = f"-> {chosen.type} {chosen.version}: {chosen.level}, {_free(chosen.free)}"
            others = len(d.candidates) - 1
            outcome += f" ({others} other candidate(s))" if others else ""
        else:
            outcome = "-> none" if desc is not None else "-> not checked"
        rows.append((d.kind, d.address, d.alias or "-", shown, outcome))
        if chosen is None:
            below[n] = [
                f"      {r.type} {r.version}: " + "; ".join(f"{f.code}: {f.message}" for f in r.findings)
                for r in d.refused
            ]
    if rows:
        lines.append("devices:")
        for n, row in enumerate(table(rows)):
            lines += [row, *below.get(n, [])]
    else:
        lines.append("devices: no mdev or PCI hostdev")
    if report.items:
        lines.append("items:")
        lines += table((i.severity, i.code, f"{i.object}: {i.message}") for i in report.items)
    counts = report.counts
    tally = f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['not-checked']} not checked"
    verdict = "blocked: the migration would fail" if report.blocking else "nothing blocks the migration"
    lines.append(f"result: {verdict} ({tally})")
    return lines


@command.command(name="preflight")
@click.argument("domain_name", metavar="DOMAIN")
@click.option("--to", "dest", metavar="DEST", required=True, help="The destination host (its name in the store).")
@connect_option
@destination_options
@descriptors_option
@postcopy_option
@sysfs_root_option
@profiles_dir_option
@state_dir_option
@output_options
def preflight(
    domain_name: str,
    dest: str,
    uri: str | None,
    dest_capabilities: str | None,
    store_url: str | None,
    origin: str,
    postcopy: bool,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    state_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Every reason DOMAIN's live migration to DEST would fail, before it starts: each hostdev's descriptor
    against DEST's types (from the fleet store, or --dest-capabilities), QEMU's migration blockers, postcopy, a
    vIOMMU, enable-migration=off, drivers without migration or P2P, and the versions of libvirt, QEMU and the
    kernels. Whatever devmig cannot read is reported as not checked, with why.

    Exit 0 when nothing blocks, 1 when something does (or libvirt refused), 2 on bad input (no such domain or
    host, a file or XML devmig cannot read)."""
    from devmig.libvirt.connection import connect
    from devmig.machine import open_host

    opts = resolve(json_output, pretty)
    destination = _destination(dest, dest_capabilities, store_url)
    target = open_host(host, sysfs_root, state_dir)
    report = _run_preflight(
        connect(uri), domain_name, target, destination, origin=origin, postcopy=postcopy, profiles_dir=profiles_dir
    )
    if opts.json:
        emit_json(report.model_dump(mode="json"), opts)
    else:
        click.echo("\n".join(preflight_lines(report)))
    return ExitCode.REFUSED if report.blocking else ExitCode.OK


def _dest_name(dest: str | None, dest_uri: str) -> str:
    """DEST's name in the store: --to, else the host DEST_URI names (qemu+ssh://beta/system -> beta)."""
    from urllib.parse import urlsplit

    if dest is not None:
        return dest
    try:
        name = urlsplit(dest_uri).hostname
    except ValueError:
        name = None
    if not name:
        raise InputError(f"{dest_uri}: names no host: give --to DEST, the destination's name in the fleet store")
    return name


@command.command(name="migrate")
@click.argument("domain_name", metavar="DOMAIN")
@click.argument("dest_uri", metavar="DEST_URI")
@click.option(
    "--to",
    "dest",
    metavar="DEST",
    default=None,
    help="The destination's name in the store [default: the host DEST_URI names].",
)
@click.option("--force", is_flag=True, help="Migrate even when preflight finds reasons it would fail.")
@click.option("--tls", is_flag=True, help="Migrate over libvirt's TLS (VIR_MIGRATE_TLS).")
@click.option(
    "--migrate-uri",
    metavar="URI",
    default=None,
    help="Where QEMU sends the state, e.g. tcp://10.1.0.2:49152 on a migration network (virsh's --migrateuri) "
    "[default: libvirt's choice, the destination's hostname].",
)
@click.option(
    "--listen-address",
    metavar="ADDRESS",
    default=None,
    help="The address the destination's QEMU listens on for the state (virsh's --listen-address).",
)
@connect_option
@destination_options
@postcopy_option
@sysfs_root_option
@profiles_dir_option
@state_dir_option
@output_options
def migrate(
    domain_name: str,
    dest_uri: str,
    dest: str | None,
    force: bool,
    tls: bool,
    migrate_uri: str | None,
    listen_address: str | None,
    uri: str | None,
    dest_capabilities: str | None,
    store_url: str | None,
    postcopy: bool,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    state_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Migrate the running DOMAIN to the libvirt at DEST_URI (as the source's libvirt reaches it, e.g.
    qemu+tls://beta/system): preflight (refused when something blocks, unless --force), annotate (the
    descriptors for the destination's hook), then libvirt's live, peer-to-peer migration; a persistent domain's
    definition moves with it. Never postcopy.

    Exit 0 when the domain runs at DEST_URI, 1 when preflight or libvirt refused (the domain then still runs on
    the source), 2 on bad input."""
    from devmig.cli.progress import PhaseView
    from devmig.libvirt.annotate import annotate
    from devmig.libvirt.connection import connect
    from devmig.libvirt.migration import PhaseEvent, migration_params
    from devmig.libvirt.migration import migrate as run
    from devmig.machine import open_host
    from devmig.model.preflight import Preflight
    from devmig.signals import signals_raise

    if postcopy and force:
        raise InputError(
            "--postcopy with --force: devmig never migrates with postcopy (QEMU blocks it for VFIO devices)"
        )
    opts = resolve(json_output, pretty)
    destination = _destination(_dest_name(dest, dest_uri), dest_capabilities, store_url)
    target = open_host(host, sysfs_root, state_dir)
    conn = connect(uri)

    def check() -> Preflight:
        # annotate rewrites the metadata from the devices described now: preflight checks those
        return _run_preflight(
            conn, domain_name, target, destination, postcopy=postcopy, annotating=True, profiles_dir=profiles_dir
        )

    with PhaseView(opts, f"migrate {domain_name}") as view:

        def report(event: PhaseEvent) -> None:
            if not opts.json and event.phase == "preflight" and event.result is not None:
                view.echo("\n".join(preflight_lines(Preflight.model_validate(event.result))))
            view(event)

        with signals_raise():
            done = run(
                conn,
                domain_name,
                dest_uri,
                preflight=check,
                annotate=lambda: annotate(conn, domain_name, target, profiles_dir),
                force=force,
                tls=tls,
                params=migration_params(migrate_uri, listen_address),
                report=report,
            )
    if opts.json:
        emit_json({"event": "result", "domain": done.domain, "to": done.dest_uri, "forced": done.forced}, opts)
    else:
        forced = f" (forced past {done.forced} preflight error(s))" if done.forced else ""
        click.echo(f"migrated {done.domain} to {done.dest_uri}{forced}")
    return ExitCode.OK


# -- the hook ---------------------------------------------------------------------------------------------------------


@command.command(name="hook", context_settings={"ignore_unknown_options": True})
@click.argument("arguments", nargs=-1, metavar="DOMAIN OPERATION SUB-OPERATION EXTRA")
@hook_config_option
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
@hook_file_options
@hook_config_option
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
    from devmig.machine import open_host
    from devmig.provision.journal import HostState
    from devmig.state import state_dir as chosen_state_dir

    opts = resolve(json_output, pretty)
    if sysfs_root != "/":
        raise click.UsageError("install-hook: --sysfs-root is for tests; the hook acts on this machine or --host")
    # the state directory as resolved now, given to the hook explicitly: libvirt runs it with another environment
    state = str(chosen_state_dir(state_dir).absolute())
    claims = HostState.of(open_host(host, sysfs_root, state).key, state).base / "claims"
    command = hook_command(host=host, state_dir=state, config=config)
    done = install(command, hooks_dir=Path(hooks_dir), name=name, claims=claims)
    if opts.json:
        emit_json({"installed": str(done.path), "command": done.command, "restart": RESTART}, opts)
    else:
        click.echo(f"installed {done.path}: runs {' '.join(done.command)}\n{RESTART}")
    return ExitCode.OK


@command.command(name="uninstall-hook")
@hook_file_options
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
