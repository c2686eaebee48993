"""`devmig plan`, `prepare`, `release` and `recover`: the destination side of a migration, on this host or a
simulated one."""

from __future__ import annotations

import json
from typing import Any

import click

from devmig.cli.files import load
from devmig.cli.options import (
    emit_json,
    output_options,
    profiles_dir_option,
    resolve,
    state_dir_option,
    sysfs_root_option,
)
from devmig.cli.render import assignments, table, value_text
from devmig.errors import ExitCode


def _host(host: str | None, sysfs_root: str, state_dir: str | None) -> Any:
    from devmig.machine import open_host

    return open_host(host, sysfs_root, state_dir)


@click.command(name="plan")
@click.argument("source", metavar="SOURCE")
@sysfs_root_option
@profiles_dir_option
@state_dir_option
@output_options
def plan(
    source: str,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    state_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Rank the devices this host (or --host) could give SOURCE, a descriptor (`devmig describe -j` on the source
    host; - for standard input), and say why every other one cannot. Exit 0 when one fits, 1 when none does."""
    from devmig.host.profile import load_profiles
    from devmig.model import DeviceDescriptor
    from devmig.provision import rank

    opts = resolve(json_output, pretty)
    descriptor = load(DeviceDescriptor, source)
    target = _host(host, sysfs_root, state_dir)
    result = rank(descriptor, target, profiles=load_profiles(profiles_dir), state_dir=state_dir)
    if opts.json:
        emit_json(result.to_dict(), opts)
        return ExitCode.OK if result.best else ExitCode.REFUSED
    d = descriptor
    lines = [
        f"source: {d.device_api} {d.type} model {d.model or '-'} version {d.software_version} ({d.confidence}); "
        f"parameters {assignments(d.params)}",
        f"host:   {target.name}",
    ]
    if result.candidates:
        lines.append("candidates, best first:")
        rows = [("#", "DEVICE", "VERSION", "LEVEL", "CHANGES", "FREE", "PLAN")]
        for number, c in enumerate(result.candidates, 1):
            label = c.label + (f" (bind {c.bind})" if c.bind else "")
            if c.capability is None or c.verdict is None or c.rank is None:
                rows.append((str(number), label, "-", "once bound", "-", value_text(c.free), "checked after binding"))
                continue
            rows.append(
                (
                    str(number),
                    label,
                    str(c.capability.software_version),
                    c.verdict.level,
                    str(c.rank.changes),
                    value_text(c.free),
                    assignments(c.verdict.plan or {}),
                )
            )
        lines += table(rows)
    else:
        lines.append("no device fits.")
    if result.rejected:
        lines.append("rejected:")
        lines += table((c.label, "; ".join(c.reasons)) for c in result.rejected)
    click.echo("\n".join(lines))
    return ExitCode.OK if result.best else ExitCode.REFUSED


@click.command(name="prepare")
@click.argument("source", metavar="SOURCE")
@click.option("-u", "--uuid", metavar="UUID", help="The prepare's id, and the new mdev's UUID (default: random).")
@click.option("--persist", is_flag=True, help="Also write an mdevctl definition (start auto) for the new mdev.")
@click.option(
    "--source-id",
    metavar="ID",
    help="The source device's name in the printed mapping [default: the descriptor's address (its mdev UUID or PCI "
    "address), else 'source'].",
)
@sysfs_root_option
@profiles_dir_option
@state_dir_option
@output_options
def prepare(
    source: str,
    uuid: str | None,
    persist: bool,
    source_id: str | None,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    state_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Make the best destination device for SOURCE (a descriptor; - for standard input) on this host or --host:
    create the mdev or claim the function, write each migration parameter once and read it back. Any failure puts
    the host back as it was. Preparing again with the same --uuid returns the same device.

    Exit 0 when prepared, 1 when nothing fits or the host refused every candidate (no capacity), 2 on bad input,
    130 when stopped by a signal (after putting the host back)."""
    from devmig.host.profile import load_profiles
    from devmig.model import DeviceDescriptor
    from devmig.provision import prepare as run

    opts = resolve(json_output, pretty)
    descriptor = load(DeviceDescriptor, source)
    target = _host(host, sysfs_root, state_dir)
    done = run(
        descriptor,
        target,
        uuid=uuid,
        persist=persist,
        source_id=source_id,
        profiles=load_profiles(profiles_dir),
        state_dir=state_dir,
    )
    if opts.json:
        emit_json(done.to_dict(), opts)
        return ExitCode.OK
    what = f"PCI function {done.device}"
    if done.kind == "mdev":
        what = f"mdev {done.device} ({done.type} on {done.parent})"
    lines = [f"{'already prepared' if done.existing else 'prepared'} on {done.host}: {what}"]
    if done.bound:
        lines.append(f"  bound to:   {done.bound}")
    lines.append(f"  parameters: {assignments(done.params)}")
    if done.persisted:
        lines.append(f"  persisted:  {done.persisted}")
    unknown = "" if done.source_id else " (the source's id is not known: give --source-id, or describe it anew)"
    lines.append(f"  mapping:    {json.dumps(done.mapping())}{unknown}")
    lines += [f"  not taken:  {attempt}" for attempt in done.attempts]
    lines.append(f"  release:    devmig release {done.id}" + (f" --host {target.name}" if host else ""))
    click.echo("\n".join(lines))
    return ExitCode.OK


@click.command(name="release")
@click.argument("device", metavar="DEVICE")
@sysfs_root_option
@state_dir_option
@output_options
def release(
    device: str, sysfs_root: str, host: str | None, state_dir: str | None, json_output: bool, pretty: bool
) -> int:
    """Undo the prepare that made DEVICE (the prepare's id, the mdev's UUID or the function's address): remove the
    mdev and its definition, or give the function back its driver and parameters. Exit 1 while a VM uses it."""
    from devmig.provision import release as run

    opts = resolve(json_output, pretty)
    done = run(device, _host(host, sysfs_root, state_dir), state_dir=state_dir)
    if opts.json:
        emit_json(done.to_dict(), opts)
    else:
        click.echo(f"released {done.device} (prepare {done.id})")
        click.echo("\n".join(f"  {step}" for step in done.undone))
    return ExitCode.OK


@click.command(name="recover")
@sysfs_root_option
@state_dir_option
@output_options
def recover(sysfs_root: str, host: str | None, state_dir: str | None, json_output: bool, pretty: bool) -> int:
    """Finish undoing every prepare whose process died (a crash, a power cut) and left its journal on disk.
    Prepares still running are left alone. Exit 1 when some undo failed (its journal is kept)."""
    from devmig.provision import recover as run

    opts = resolve(json_output, pretty)
    results = run(_host(host, sysfs_root, state_dir), state_dir=state_dir)
    failed = any(r.outcome == "failed" for r in results)
    if opts.json:
        emit_json([r.to_dict() for r in results], opts)
    elif not results:
        click.echo("nothing to recover")
    else:
        click.echo("\n".join(table((r.id, r.outcome, f"{r.steps} steps", "; ".join(r.errors)) for r in results)))
    return ExitCode.REFUSED if failed else ExitCode.OK
