"""`devmig vfio info DEVICE` and `devmig vfio probe DEVICE`: open a device through VFIO, report what it supports,
and check its driver's migration answers against the kernel's state table."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import click

from devmig.cli.options import F, emit_json, output_options, resolve, sysfs_root_option
from devmig.errors import ExitCode

if TYPE_CHECKING:
    from devmig.migrate.probe import ArcResult, ProbeReport


#: How each path is named in text output (None: a simulated device, which has no fd of its own).
VIA_TEXT: dict[str | None, str] = {
    "group": "group (/dev/vfio/vfio container + IOMMU group)",
    "cdev": "cdev (/dev/vfio/devices/vfioN + /dev/iommu)",
    None: "simulated device",
}


def via_option(func: F) -> F:
    return click.option(
        "--via",
        type=click.Choice(["auto", "group", "cdev"]),
        default="auto",
        show_default=True,
        help="How to open the device: its IOMMU group (container), its iommufd cdev, or auto (the cdev when "
        "/dev/iommu and the cdev exist, else the group). A simulated device ignores it.",
    )(func)


@click.group(name="vfio")
def command() -> None:
    """Talk to devices through VFIO."""


@command.command(name="info")
@click.argument("device")
@via_option
@sysfs_root_option
@output_options
def info(device: str, via: str, sysfs_root: str, host: str | None, json_output: bool, pretty: bool) -> int:
    """Open DEVICE (an mdev UUID or a PCI address bound to a VFIO driver) and print its VFIO flags and its
    migration support (VFIO_MIGRATION_STOP_COPY, P2P, PRE_COPY). Needs root."""
    from devmig.machine import open_host

    opts = resolve(json_output, pretty)
    with open_host(host, sysfs_root).vfio(device, via) as dev:
        described = dev.describe()
    if opts.json:
        emit_json(dataclasses.asdict(described), opts)
    else:
        migration = "|".join(described.migration) if described.migration is not None else "none"
        group = f" (IOMMU group {described.group})" if described.group is not None else ""
        click.echo(f"device:     {described.name}{group}")
        click.echo(f"opened via: {VIA_TEXT.get(described.via, described.via or '')}")
        click.echo(
            f"flags:      {'|'.join(described.flags)}; {described.num_regions} regions, {described.num_irqs} irqs"
        )
        click.echo(
            f"migration:  {migration}" + (f" ({described.migration_error})" if described.migration_error else "")
        )
    return ExitCode.OK


@command.command(name="probe")
@click.argument("device")
@via_option
@sysfs_root_option
@output_options
def probe(device: str, via: str, sysfs_root: str, host: str | None, json_output: bool, pretty: bool) -> int:
    """Check DEVICE's migration driver against the kernel's state table: from every state its flags support,
    request every state (unsupported ones and ERROR too) and compare the answer, the state afterwards and the
    data_fd with the table; MIG_DATA_SIZE in every state, PRECOPY_INFO in the saving states. Resets the device
    many times and leaves it RUNNING: never on a device a VM uses. Needs root.

    Exit 0 when the driver agrees with the table on every request, 1 when it disagrees anywhere (or has no
    migration, or is in use), 2 on bad input."""
    from devmig.machine import open_host
    from devmig.migrate.probe import ProbeError, run_probe

    opts = resolve(json_output, pretty)
    target = open_host(host, sysfs_root)
    if target.in_use(device, None):
        raise ProbeError(
            f"device {device}: open by a VM on {target.name}; the probe resets it and walks it through every "
            "migration state: stop the VM first"
        )
    with target.vfio(device, via) as dev:
        report = run_probe(dev)
    if opts.json:
        emit_json(report.to_dict(), opts)
    else:
        for line in render_probe(report):
            click.echo(line)
    return ExitCode.OK if report.agrees else ExitCode.REFUSED


def _cell(arc: ArcResult) -> str:
    e = arc.expected
    if not arc.ok:
        return "FAIL"
    if not e.accepted:
        return "EINVAL"
    if e.cur == e.target:
        return "="
    if e.opens_data_fd:
        return "fd"
    return "kept" if e.keeps_session else "ok"


def render_probe(report: ProbeReport) -> list[str]:
    """The probe's text report: flags, the request grid (rows: from, columns: to), each state, each problem."""
    from devmig.migrate.device import flag_names
    from devmig.migrate.uapi import MIGRATION_FLAGS, MigState

    flags = "|".join(flag_names(report.migration_flags, MIGRATION_FLAGS)) or "none"
    lines = [
        f"device:     {report.device}",
        f"migration:  {flags} ({report.migration_flags:#x})",
    ]
    if report.unsupported:
        lines.append(f"unsupported states: {', '.join(s.name for s in report.unsupported)} (requested, never entered)")
    lines.append(
        f"saved:      {report.saved_bytes} bytes of the device's own state, written on every entry to RESUMING"
    )
    if report.arcs:
        grid = {(a.expected.cur, a.expected.target): _cell(a) for a in report.arcs}
        rows = sorted({a.expected.cur for a in report.arcs})
        width = max(len(s.name) for s in MigState) + 1
        lines.append("")
        lines.append("from \\ to".ljust(width) + "".join(s.name.ljust(width) for s in MigState).rstrip())
        for cur in rows:
            lines.append(cur.name.ljust(width) + "".join(grid[cur, t].ljust(width) for t in MigState).rstrip())
        lines.append(
            "(fd: a new data_fd; kept: the session's fd goes on and works; ok: accepted; =: no change; "
            "EINVAL: refused; all as the table says. FAIL: see below)"
        )
        lines.append("")
    for check in report.states:
        info = check.precopy_info
        if isinstance(info, tuple):
            shown = f"; PRECOPY_INFO initial_bytes {info[0]}, dirty_bytes {info[1]}"
        else:
            shown = f"; PRECOPY_INFO {info}" if info else ""
        size = check.mig_data_size if check.mig_data_size is not None else "failed"
        lines.append(f"in {check.state.name}: MIG_DATA_SIZE {size}{shown}")
    agreeing = sum(arc.ok for arc in report.arcs)
    lines.append(f"requests:   {len(report.arcs)}, {agreeing} as the table says")
    for problem in report.disagreements:
        lines.append(f"  disagrees: {problem}")
    left = report.left_state.name if report.left_state is not None else "unknown"
    lines.append(f"left:       {left} (reset)")
    lines.append(
        "result:     the driver agrees with the table on every request"
        if report.agrees
        else f"result:     {len(report.disagreements)} disagreement(s) with the table"
    )
    return lines
