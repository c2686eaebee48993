"""`devmig check SOURCE DEST`: can this device migrate to that type? Exit 0 compatible, 1 not, 2 bad input."""

from __future__ import annotations

import click

from devmig.cli.files import load, single_stdin
from devmig.cli.options import emit_json, output_options, resolve
from devmig.cli.render import assignments, table
from devmig.compat import check
from devmig.errors import ExitCode
from devmig.model import DeviceDescriptor, TypeCapability, Verdict


def verdict_lines(verdict: Verdict, source: DeviceDescriptor, dest: TypeCapability) -> list[str]:
    model = f" model {source.model}" if source.model else ""
    lines = [
        f"source:      {source.device_api} {source.type}{model} version {source.software_version}",
        f"destination: {dest.device_api} {dest.type} version {dest.software_version}",
        f"verdict:     {verdict.level}",
    ]
    lines += table((f.severity, f.code, f"{f.field}: {f.message}") for f in verdict.findings)
    if verdict.plan is not None:
        lines.append(f"plan:        {assignments(verdict.plan)}")
    return lines


@click.command(name="check")
@click.argument("source", metavar="SOURCE")
@click.argument("destination", metavar="DEST")
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="VFIO devices of the source's VM, this one included (more than one needs P2P on every device)",
)
@output_options
def command(source: str, destination: str, devices: int, json_output: bool, pretty: bool) -> int:
    """Check the device SOURCE (a descriptor) against the type DEST (a capability, migration_info.json).

    Either file may be - for standard input. Every failed rule is reported. Exit 0 when compatible,
    1 when incompatible, 2 on bad input.
    """
    opts = resolve(json_output, pretty)
    single_stdin(source, destination)
    src = load(DeviceDescriptor, source)
    dst = load(TypeCapability, destination)
    verdict = check(src, dst, devices=devices)
    if opts.json:
        emit_json(verdict.model_dump(mode="json"), opts)
    else:
        click.echo("\n".join(verdict_lines(verdict, src, dst)))
    return ExitCode.OK if verdict.compatible else ExitCode.REFUSED
