"""`devmig capabilities`: the destination capability of every type this host can create."""

from __future__ import annotations

import click

from devmig.cli.options import emit_json, output_options, profiles_dir_option, resolve, sysfs_root_option
from devmig.cli.render import print_warnings, table
from devmig.errors import ExitCode


@click.command(name="capabilities")
@click.option(
    "-t",
    "--type",
    "type_id",
    metavar="TYPE",
    help="Only this type (an mdev type id, a PCI signature, or a vDPA type such as vdpasim_net-net).",
)
@sysfs_root_option
@profiles_dir_option
@output_options
def command(
    type_id: str | None, sysfs_root: str, host: str | None, profiles_dir: str | None, json_output: bool, pretty: bool
) -> int:
    """Print the destination capabilities (migration_info.json documents) of this host's types.

    From the driver's own migration_info.json where it has one, else from a devmig profile, else a conservative
    'unverified' document. With --type and -j, prints the single capability, ready for `devmig check`.
    """
    from devmig.host import vdpa
    from devmig.host.describe import Describer
    from devmig.host.inventory import Inventory
    from devmig.host.profile import load_profiles
    from devmig.machine import open_host

    opts = resolve(json_output, pretty)
    opened = open_host(host, sysfs_root)
    inv = Inventory.scan(opened.sysfs)
    caps, problems = Describer(inv, load_profiles(profiles_dir), opened.nvml()).capabilities(type_id)
    backend = opened.vdpa_if_any()
    for mgmt in backend.mgmtdevs() if backend is not None else []:
        caps += [c for c in vdpa.capabilities(mgmt) if type_id is None or c.type == type_id]
    print_warnings(inv.warnings)
    for problem in problems:
        click.echo(f"devmig: warning: {problem}", err=True)
    if type_id is not None and not caps:
        click.echo(f"devmig: error: type {type_id}: not found on this host, or not describable", err=True)
        return ExitCode.REFUSED
    docs = [c.model_dump(mode="json", exclude_none=True) for c in caps]
    if opts.json:
        emit_json(docs[0] if type_id is not None and len(docs) == 1 else docs, opts)
    else:
        rows = [
            (
                c.type,
                c.device_api,
                str(c.software_version),
                next(iter(c.models), "-"),
                c.confidence,
                str(c.available_instances if c.available_instances is not None else "?"),
            )
            for c in caps
        ]
        click.echo("\n".join(table([("TYPE", "DEVICE_API", "VERSION", "MODEL", "CONFIDENCE", "FREE"), *rows], "")))
    return ExitCode.OK
