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
from devmig.errors import ExitCode


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
