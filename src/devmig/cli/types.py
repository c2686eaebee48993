"""`devmig types`: the mdev types each parent can create (what `mdevctl types` shows, and more)."""

from __future__ import annotations

import click

from devmig.cli.options import emit_json, mdevctl_format_option, output_options, resolve, sysfs_of, sysfs_root_option
from devmig.cli.render import print_warnings, warnings_json
from devmig.host.inventory import Inventory
from devmig.host.mdevctl import types_dumpjson


@click.command(name="types")
@click.option("-P", "--parent", metavar="PARENT", help="Only the types of this parent device.")
@mdevctl_format_option("types")
@sysfs_root_option
@output_options
def command(parent: str | None, fmt: str, sysfs_root: str, host: str | None, json_output: bool, pretty: bool) -> int:
    """List the mdev types each parent device can create, with free instances.

    A type that cannot be read completely (no device_api, an available_instances that is not a number) is
    reported as a warning on standard error; the others are listed all the same.
    """
    opts = resolve(json_output, pretty)
    inv = Inventory.scan(sysfs_of(sysfs_root, host), parts=("mdev_types",))
    parents = [p for p in inv.parents if parent is None or p.name == parent]
    print_warnings(inv.warnings)
    if fmt == "mdevctl":
        click.echo(types_dumpjson(parents), nl=False)
    elif opts.json:
        emit_json({"parents": [p.to_dict() for p in parents], "warnings": warnings_json(inv.warnings)}, opts)
    else:
        lines = []
        for p in parents:
            lines.append(p.name)
            for t in p.types:
                lines.append(f"  {t.id}")
                lines.append(
                    f"    Available instances: {t.available_instances if t.available_instances is not None else '?'}"
                )
                lines.append(f"    Device API: {t.device_api or '?'}")
                if t.name is not None:
                    lines.append(f"    Name: {t.name}")
                if t.description is not None:
                    lines.append(f"    Description: {', '.join(t.description.splitlines())}")
                if t.migration_info:
                    lines.append("    Migration info: migration_info.json")
        if lines:
            click.echo("\n".join(lines))
    return 0
