"""`devmig baseline CAP...`: the device configuration every destination type accepts."""

from __future__ import annotations

import click

from devmig.cli.files import load, single_stdin
from devmig.cli.options import emit_json, output_options, resolve
from devmig.cli.render import table, value_text
from devmig.compat import baseline
from devmig.errors import ExitCode
from devmig.model import Baseline, TypeCapability


def baseline_lines(result: Baseline) -> list[str]:
    lines = [f"baseline of {len(result.types)} capabilities: {'usable' if result.usable else 'NOT usable'}"]
    if result.device_api:
        lines.append(f"device_api:       {result.device_api}")
    if result.api:
        lines.append("api:              " + " ".join(f"{k}={v}" for k, v in result.api.items()))
    if result.software_version is not None:
        v = result.software_version
        lines.append(f"software_version: {v} (a device must be {v.major}.x with minor at most {v.minor})")
    for name, model in result.models.items():
        lines.append(f"model {name}:")
        rows = []
        for pname, p in model.params.items():
            allowed = "any" if p.allowed_values is None else value_text(p.allowed_values)
            if p.excluded_values:
                allowed += f" except {value_text(p.excluded_values)}"
            notes = ["must be off" if p.must_be_off else ""] + (
                [f"off={value_text(p.off_value)}"] if p.off_value is not None else []
            )
            rows.append((pname, p.type, allowed, " ".join(n for n in notes if n)))
        lines += table(rows) if rows else ["  (no parameters)"]
    if result.conflicts:
        lines.append("conflicts:")
        lines += table((c.severity, c.code, c.message) for c in result.conflicts)
    return lines


@click.command(name="baseline")
@click.argument("capabilities", metavar="CAP...", nargs=-1, required=True)
@output_options
def command(capabilities: tuple[str, ...], json_output: bool, pretty: bool) -> int:
    """Compute the baseline of several destination capabilities (one per host, say).

    Prints the version floor and, per parameter, the values every capability accepts, with the capabilities
    that narrow or empty each set. Exit 0 when a common configuration exists, 1 when none does.
    """
    opts = resolve(json_output, pretty)
    single_stdin(*capabilities)
    caps = {("<stdin>" if path == "-" else path): load(TypeCapability, path) for path in capabilities}
    result = baseline(caps)
    if opts.json:
        emit_json(result.model_dump(mode="json"), opts)
    else:
        click.echo("\n".join(baseline_lines(result)))
    return ExitCode.OK if result.usable else ExitCode.REFUSED
