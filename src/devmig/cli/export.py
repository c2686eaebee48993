"""`devmig export placement|k8s-labels|query|k8s-affinity`: the fleet's facts in the terms of existing schedulers.

The hosts come from the fleet store (--store, default $DEVMIG_STORE or the store's own default), or with --host from
one host read directly, as `devmig inventory publish` reads it, for when there is no store. The encoding is in
devmig.fleet.export and docs/fleet.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devmig.cli.options import F, emit_json, output_options, profiles_dir_option, resolve
from devmig.cli.render import table
from devmig.errors import ExitCode, InputError

#: the feature file's expiry when --expiry is not given (devmig.fleet.nfd.DEFAULT_EXPIRY, the fleet's TTL; kept
#: here so --help imports no fleet module)
DEFAULT_EXPIRY = 600.0

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
    type=click.Choice(["kubectl", "json", "nfd"]),
    default="kubectl",
    show_default=True,
    help="kubectl: one `kubectl label node` command per node; json: {node: {label: value}} (as -j); nfd: Node "
    "Feature Discovery's feature file of the one host (to standard output, --nfd-dir or -o).",
)
@click.option(
    "--nfd-dir",
    "nfd_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --format nfd: keep DIR/devmig current (nfd-worker's features.d, usually "
    "/etc/kubernetes/node-feature-discovery/features.d): written atomically, only when the labels changed or half "
    "the expiry is gone.",
)
@click.option(
    "-o",
    "--output",
    "output",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --format nfd: write this file instead (atomically, as --nfd-dir does).",
)
@click.option(
    "--expiry",
    "expiry",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    default=DEFAULT_EXPIRY,
    show_default=True,
    help="With --format nfd: the labels expire this long after writing (# +expiry-time=); 0: never.",
)
@output_options
def k8s_labels(
    store_url: str | None,
    host: str | None,
    name: str | None,
    profiles_dir: str | None,
    prefix: str,
    fmt: str,
    nfd_dir: Path | None,
    output: Path | None,
    expiry: float,
    json_output: bool,
    pretty: bool,
) -> int:
    """Kubernetes node labels with the same facts, under each type: PREFIX/<type>.<fact>=true, and numbers where node
    affinity's Gt/Lt compare them (<type>.minor.<major>, <type>.int.<param>.min|max)."""
    from devmig.fleet.export import check_prefix, freshness
    from devmig.fleet.k8s import k8s_labels, kubectl_lines

    if fmt != "nfd" and (nfd_dir is not None or output is not None):
        raise click.UsageError("--nfd-dir and -o write the feature file of --format nfd")
    if nfd_dir is not None and output is not None:
        raise click.UsageError("--nfd-dir and -o exclude each other: a feature directory, or one file")
    hosts = hosts_of(store_url, host, name, profiles_dir)
    if fmt == "nfd":
        return _nfd(hosts, prefix, nfd_dir, output, expiry or None)
    opts = resolve(json_output or fmt == "json", pretty)
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


def _nfd(hosts: list[HostRecord], prefix: str, nfd_dir: Path | None, output: Path | None, expiry: float | None) -> int:
    """One node's feature file: printed, or kept current in a features.d directory or a file."""
    from datetime import UTC, datetime, timedelta

    from devmig.fleet.nfd import FEATURE_FILE, feature_text, write_file

    if len(hosts) != 1:
        raise InputError(
            f"--format nfd writes one node's feature file, and {len(hosts)} hosts were given: "
            "read the node's own host with --host (e.g. --host local)"
        )
    (record,) = hosts
    if nfd_dir is None and output is None:
        now = datetime.now(UTC)
        until = None if expiry is None else now + timedelta(seconds=expiry)
        click.echo(feature_text(record, prefix=prefix, expiry=until, now=now), nl=False)
        return ExitCode.OK
    path = output if output is not None else nfd_dir / FEATURE_FILE if nfd_dir is not None else None
    assert path is not None
    written = write_file(path, record, prefix=prefix, expiry_seconds=expiry)
    click.echo(f"{path}: {'written' if written else 'unchanged, kept'} (host {record.name})")
    return ExitCode.OK


def _freshness(host: dict[str, Any]) -> tuple[str, str]:
    """(generation, last seen) as the text exports print them; '-' for a host read directly, not stored."""
    if host["generation"] is None:
        return "-", "-"
    return str(host["generation"]), "never" if host["age"] is None else f"{host['age']} s ago"


type_option = click.option(
    "-t",
    "--type",
    "type_ids",
    metavar="TYPE",
    multiple=True,
    help="Kubernetes: a destination type whose labels to select; repeat for several (ORed) [default: the source's "
    "own type].",
)


@command.command(name="query")
@click.argument("source", metavar="SOURCE")
@type_option
@prefix_option
@output_options
def query(source: str, type_ids: tuple[str, ...], prefix: str, json_output: bool, pretty: bool) -> int:
    """What a scheduler asks to find the hosts that can take the device SOURCE (a descriptor; - for standard
    input): Placement's `required` query parameters, and a Kubernetes node affinity."""
    import yaml

    from devmig.cli.files import load
    from devmig.fleet.export import placement_query
    from devmig.fleet.k8s import node_affinity
    from devmig.model import DeviceDescriptor

    opts = resolve(json_output, pretty)
    descriptor = load(DeviceDescriptor, source)
    found = placement_query(descriptor)
    selector = {"affinity": node_affinity(descriptor, type_ids, prefix)}
    if opts.json:
        emit_json({"placement": found, "kubernetes": selector}, opts)
        return ExitCode.OK
    click.echo(f"Placement (microversion {found['microversion']}):")
    click.echo(f"  GET /resource_providers?{found['query']}")
    click.echo(f"  resource class of the source's type: {found['resource_class']}")
    click.echo(f"Kubernetes (labels of type {', '.join(type_ids) or descriptor.type}):")
    click.echo(yaml.safe_dump(selector, sort_keys=False).rstrip())
    return ExitCode.OK


@command.command(name="k8s-affinity")
@click.argument("source", metavar="SOURCE")
@type_option
@prefix_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="yaml: for a manifest (as -j prints json).",
)
@output_options
def k8s_affinity(source: str, type_ids: tuple[str, ...], prefix: str, fmt: str, json_output: bool, pretty: bool) -> int:
    """The node affinity a VM (a pod, a KubeVirt VirtualMachine's template) needs to land only on nodes whose
    labels say they can take the device SOURCE (a descriptor; - for standard input): nodeAffinity's
    requiredDuringSchedulingIgnoredDuringExecution, one nodeSelectorTerm per type and choice, for spec.affinity."""
    from devmig.cli.files import load
    from devmig.fleet.k8s import node_affinity
    from devmig.model import DeviceDescriptor

    opts = resolve(json_output or fmt == "json", pretty)
    affinity = node_affinity(load(DeviceDescriptor, source), type_ids, prefix)
    if opts.json:
        emit_json(affinity, opts)
        return ExitCode.OK
    import yaml

    click.echo(yaml.safe_dump(affinity, sort_keys=False).rstrip())
    return ExitCode.OK
