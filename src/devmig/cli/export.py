"""`devmig export placement|k8s-labels|query`: the fleet's facts in the terms of existing schedulers.

The hosts come from the fleet store (--store, default $DEVMIG_STORE or the store's own default), or with --host from
one host read directly, as `devmig inventory publish` reads it, for when there is no store. The encoding is in
devmig.fleet.export and docs/fleet.md.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from devmig.cli.options import F, emit_json, output_options, profiles_dir_option, resolve
from devmig.cli.render import table
from devmig.errors import ExitCode, InputError

if TYPE_CHECKING:
    from devmig.fleet.records import HostRecord


def source_options(func: F) -> F:
    """--store URL or --host HOST (with --name and --profiles-dir): where the hosts to export come from."""
    func = profiles_dir_option(func)
    func = click.option(
        "--name",
        "name",
        metavar="NAME",
        help="With --host: the host's name (the compute node, the Kubernetes node) [default: its hostname, or the "
        "simulated host's name].",
    )(func)
    func = click.option(
        "--host",
        "host",
        metavar="HOST",
        help="Export this one host, read now, instead of the store: local, sim:HOST or sim:LAB/HOST.",
    )(func)
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        help="The fleet store: sqlite:///PATH, postgresql://USER@HOST/DB or a path "
        "[default: $DEVMIG_STORE, else ~/.local/share/devmig/fleet.db].",
    )(func)


def _one_host(spec: str, name: str | None, profiles_dir: str | None) -> HostRecord:
    from devmig.fleet.collect import collect
    from devmig.host.profile import load_profiles
    from devmig.machine import open_host

    opened = open_host(spec)
    default = opened.hostname
    record = collect(opened, load_profiles(profiles_dir), name=name or default)
    for warning in record.warnings:
        click.echo(f"devmig: warning: {warning}", err=True)
    return record


def _stored_hosts(url: str | None) -> list[HostRecord]:
    try:
        from devmig.fleet.store import FleetStore
    except ImportError as exc:  # the store needs SQLAlchemy; --host works without it
        raise InputError(f"the fleet store is not available ({exc}); export one host with --host") from None
    with FleetStore.open(url) as store:
        hosts = store.hosts()
        shown = store.shown
    if not hosts:
        click.echo(f"devmig: warning: store {shown} holds no host (devmig inventory publish adds one)", err=True)
    return hosts


def hosts_of(store_url: str | None, host: str | None, name: str | None, profiles_dir: str | None) -> list[HostRecord]:
    if host is not None and store_url is not None:
        raise click.UsageError("--store and --host exclude each other: export the store, or one host read now")
    if host is None:
        if name is not None:
            raise click.UsageError("--name names the host read with --host; the store's hosts keep their names")
        return _stored_hosts(store_url)
    return [_one_host(host, name, profiles_dir)]


prefix_option = click.option(
    "--prefix",
    "prefix",
    metavar="DOMAIN",
    default="devmig.io",
    show_default=True,
    help="The label keys' prefix (a DNS subdomain).",
)


@click.group(name="export")
def command() -> None:
    """Print the fleet's facts for schedulers: Placement resource providers and traits, Kubernetes node labels.

    Each type's device API, identity, model, accepted versions and parameter values become traits or labels, so a
    scheduler can keep only the hosts that can take a device without calling devmig (docs/fleet.md).
    """


@command.command(name="placement")
@source_options
@output_options
def placement(
    store_url: str | None,
    host: str | None,
    name: str | None,
    profiles_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """OpenStack Placement resource providers: one per host, a nested one per type of each parent device, with the
    type's CUSTOM_DEVMIG_TYPE* resource class and CUSTOM_DEVMIG_* traits. -j prints them as the Placement API
    shows them (GET /resource_providers/{uuid}, .../inventories, .../traits)."""
    from devmig.fleet.export import placement as export

    opts = resolve(json_output, pretty)
    doc = export(hosts_of(store_url, host, name, profiles_dir), time.time())
    if opts.json:
        emit_json(doc, opts)
        return ExitCode.OK
    seen = {h["name"]: h for h in doc["hosts"]}
    rows = [("PROVIDER", "UUID", "RESOURCE_CLASS", "TOTAL", "TRAITS", "GEN", "LAST SEEN")]
    for provider in doc["resource_providers"]:
        ((rc, inventory),) = provider["inventories"].items() or [("-", {"total": "-"})]
        # a root provider is a host: its freshness; a type's provider shares its host's
        host = seen.get(provider["name"]) if provider["parent_provider_uuid"] is None else None
        rows.append(
            (
                provider["name"],
                provider["uuid"],
                rc,
                str(inventory["total"]),
                str(len(provider["traits"])),
                *(_freshness(host) if host else ("", "")),
            )
        )
    click.echo("\n".join(table(rows, indent="")))
    click.echo(
        f"{len(doc['resource_providers'])} providers, {len(doc['resource_classes'])} resource classes, "
        f"{len(doc['traits'])} traits (-j prints them for the Placement API)"
    )
    return ExitCode.OK


@command.command(name="k8s-labels")
@source_options
@prefix_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["kubectl", "json"]),
    default="kubectl",
    show_default=True,
    help="kubectl: one `kubectl label node` command per node; json: {node: {label: value}} (as -j).",
)
@output_options
def k8s_labels(
    store_url: str | None,
    host: str | None,
    name: str | None,
    profiles_dir: str | None,
    prefix: str,
    fmt: str,
    json_output: bool,
    pretty: bool,
) -> int:
    """Kubernetes node labels with the same facts, one per fact of each type: PREFIX/<type>.<fact>=true."""
    from devmig.fleet.export import check_prefix, freshness, k8s_labels, kubectl_lines

    opts = resolve(json_output or fmt == "json", pretty)
    hosts = hosts_of(store_url, host, name, profiles_dir)
    labels = k8s_labels(hosts, check_prefix(prefix))
    if opts.json:
        # {node: {label: value}} as kubectl and client libraries apply it: no freshness, which is no label
        emit_json(labels, opts)
        return ExitCode.OK
    seen = {h["name"]: h for h in freshness(hosts, time.time())}
    for node, pairs in labels.items():
        for line in kubectl_lines({node: pairs}):  # none for a node without labels
            if seen[node]["generation"] is not None:  # read from a store: how fresh, as a comment to the shell
                generation, last = _freshness(seen[node])
                click.echo(f"# {node}: generation {generation}, last seen {last}")
            click.echo(line)
    return ExitCode.OK


def _freshness(host: dict[str, Any]) -> tuple[str, str]:
    """(generation, last seen) as the text exports print them; '-' for a host read directly, not stored."""
    if host["generation"] is None:
        return "-", "-"
    return str(host["generation"]), "never" if host["age"] is None else f"{host['age']} s ago"


@command.command(name="query")
@click.argument("source", metavar="SOURCE")
@click.option(
    "-t",
    "--type",
    "type_id",
    metavar="TYPE",
    help="Kubernetes: the destination type whose labels to select [default: the source's own type].",
)
@prefix_option
@output_options
def query(source: str, type_id: str | None, prefix: str, json_output: bool, pretty: bool) -> int:
    """What a scheduler asks to find the hosts that can take the device SOURCE (a descriptor; - for standard
    input): Placement's `required` query parameters, and a Kubernetes nodeSelector or node affinity."""
    import yaml

    from devmig.cli.files import load
    from devmig.fleet.export import check_prefix, k8s_selector, placement_query
    from devmig.model import DeviceDescriptor

    opts = resolve(json_output, pretty)
    descriptor = load(DeviceDescriptor, source)
    found = placement_query(descriptor)
    selector = k8s_selector(descriptor, type_id, check_prefix(prefix))
    if opts.json:
        emit_json({"placement": found, "kubernetes": selector}, opts)
        return ExitCode.OK
    click.echo(f"Placement (microversion {found['microversion']}):")
    click.echo(f"  GET /resource_providers?{found['query']}")
    click.echo(f"  resource class of the source's type: {found['resource_class']}")
    click.echo(f"Kubernetes (labels of type {type_id or descriptor.type}):")
    click.echo(yaml.safe_dump(selector, sort_keys=False).rstrip())
    return ExitCode.OK
