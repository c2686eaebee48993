"""`devmig inventory publish|heartbeat|show|remove|serve-metrics`, `devmig place` and `devmig claim
list|release|purge`: the fleet store.

Exit codes: 0 done (place: some host can take the device; with --claim, one instance was claimed); 1 nothing can
take it, no claim could be made, or the store refused; 2 bad input (a URL, a document, an unknown host or claim).
"""

from __future__ import annotations

import time
from typing import Any

import click

from devmig.cli.files import load
from devmig.cli.options import (
    emit_json,
    output_options,
    profiles_dir_option,
    resolve,
    store_option,
    sysfs_root_option,
)
from devmig.cli.render import assignments, table
from devmig.errors import ExitCode


def _open(url: str | None) -> Any:
    from devmig.fleet.store import FleetStore

    return FleetStore.open(url)


def _seen(record: Any, now: float, stale_after: float | None) -> str:
    """A host's last sign of life as `inventory show` prints it: 'N s ago', marked when place leaves it out."""
    from devmig.fleet.freshness import age_text, is_stale

    text = age_text(record.last_seen, now)
    return f"{text} (stale)" if is_stale(record.last_seen, now, stale_after) else text


stale_after_option = click.option(
    "--stale-after",
    "stale_after",
    metavar="SECONDS",
    envvar="DEVMIG_STALE_AFTER",
    default=None,
    help="Leave out hosts last seen (published or heartbeat) longer ago than this; 0 or 'never': keep every host. "
    "Also $DEVMIG_STALE_AFTER [default: 600].",
)


#: --name of publish and heartbeat: one default for both, so a heartbeat finds the host its publish stored
host_name_option = click.option(
    "--name",
    "name",
    metavar="NAME",
    help="The host's name in the fleet [default: its hostname, or the simulated host's name].",
)


@click.group(name="inventory")
def inventory() -> None:
    """Publish a host's inventory to the fleet store, and read it back."""


@inventory.command(name="publish")
@host_name_option
@store_option
@sysfs_root_option
@profiles_dir_option
@output_options
def publish(
    name: str | None,
    store_url: str | None,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Collect this host's (or --host's) types, free instances and devices, and replace its inventory in the
    store in one transaction."""
    from devmig.fleet.collect import collect
    from devmig.host.profile import load_profiles
    from devmig.machine import open_host

    opts = resolve(json_output, pretty)
    opened = open_host(host, sysfs_root)
    default = opened.hostname
    record = collect(opened, load_profiles(profiles_dir), name=name or default)
    with _open(store_url) as store:
        stored = store.publish(record)
        shown = store.shown
    for warning in stored.warnings:
        click.echo(f"devmig: warning: {warning}", err=True)
    if opts.json:
        emit_json(
            {
                "host": stored.name,
                "store": shown,
                "types": len(stored.types),
                "devices": len(stored.devices),
                "published": stored.published,
                "warnings": list(stored.warnings),
            },
            opts,
        )
    else:
        click.echo(f"published {stored.name} to {shown}: {len(stored.types)} types, {len(stored.devices)} devices")
    return ExitCode.OK


@inventory.command(name="heartbeat")
@host_name_option
@store_option
@sysfs_root_option
@output_options
def heartbeat(
    name: str | None, store_url: str | None, sysfs_root: str, host: str | None, json_output: bool, pretty: bool
) -> int:
    """Record that this host (or --name) is alive: keeps a published host offered by `devmig place` between
    publishes, without collecting or writing its inventory. For scripts and timers."""
    opts = resolve(json_output, pretty)
    if name is None:
        from devmig.machine import open_host

        name = open_host(host, sysfs_root).hostname
    with _open(store_url) as store:
        when = store.heartbeat(name)
        shown = store.shown
    if opts.json:
        emit_json({"host": name, "store": shown, "last_seen": when}, opts)
    else:
        click.echo(f"heartbeat of {name} to {shown}")
    return ExitCode.OK


@inventory.command(name="show")
@click.argument("host_name", metavar="[HOST]", required=False)
@store_option
@output_options
def show(host_name: str | None, store_url: str | None, json_output: bool, pretty: bool) -> int:
    """The hosts in the store, or one host's types and devices."""
    from devmig.fleet.freshness import age, age_text, is_stale

    opts = resolve(json_output, pretty)
    with _open(store_url) as store:
        records = [store.host(host_name)] if host_name else store.hosts()
        stale_after = store.stale_after
    now = time.time()
    if opts.json:
        emit_json(
            {
                "hosts": [
                    {
                        **_host_json(r),
                        "age": age(r.last_seen, now),
                        "stale": is_stale(r.last_seen, now, stale_after),
                    }
                    for r in records
                ],
                "stale_after": stale_after,
            },
            opts,
        )
        return ExitCode.OK
    if host_name is None:
        rows = [("HOST", "TYPES", "FREE", "DEVICES", "KERNEL", "GEN", "LAST SEEN")]
        rows += [
            (
                r.name,
                str(len(r.types)),
                str(sum(t.available or 0 for t in r.types)),
                str(len(r.devices)),
                r.kernel or "-",
                str(r.generation),
                _seen(r, now, stale_after),
            )
            for r in records
        ]
        click.echo("\n".join(table(rows, indent="")))
        return ExitCode.OK
    (record,) = records
    click.echo(
        f"host {record.name}: kernel {record.kernel or '-'}, generation {record.generation}, last seen "
        f"{_seen(record, now, stale_after)}, published {age_text(record.published, now)}"
    )
    types = [("PARENT", "TYPE", "DEVICE_API", "VERSION", "MODEL", "FREE")]
    types += [
        (
            t.parent,
            t.type_id,
            t.capability.device_api,
            str(t.capability.software_version),
            next(iter(t.capability.models), "-"),
            "?" if t.available is None else str(t.available),
        )
        for t in record.types
    ]
    click.echo("\n".join(table(types, indent="  ")))
    if record.devices:
        click.echo("devices:")
        click.echo(
            "\n".join(
                table(
                    [("KIND", "DEVICE", "PARENT", "TYPE")]
                    + [(d.kind, d.name, d.parent or "-", d.type_id or "-") for d in record.devices],
                    indent="  ",
                )
            )
        )
    return ExitCode.OK


@inventory.command(name="serve-metrics")
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default="127.0.0.1:9465",
    show_default=True,
    help="Where to serve the metrics (:PORT for every address).",
)
@store_option
def serve_metrics(listen: str, store_url: str | None) -> int:
    """Serve the store's metrics to Prometheus, read at each scrape: free instances per host type, each host's
    heartbeat age and inventory generation, active claims per host. Runs until SIGTERM or SIGINT (exit 0)."""
    import signal
    import threading

    from prometheus_client import CollectorRegistry

    from devmig.fleet.metrics import StoreCollector, serve

    stop = threading.Event()
    with _open(store_url) as store:
        registry = CollectorRegistry()
        registry.register(StoreCollector(store))
        server = serve(registry, listen)
        host, port = server.address
        click.echo(f"serving {store.shown}'s metrics on http://{host}:{port}/metrics", err=True)
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.close()
    return ExitCode.OK


@inventory.command(name="remove")
@click.argument("host_name", metavar="HOST")
@store_option
def remove(host_name: str, store_url: str | None) -> int:
    """Forget a host (a decommissioned one): its types and devices."""
    with _open(store_url) as store:
        store.remove(host_name)
    click.echo(f"removed {host_name}")
    return ExitCode.OK


def _host_json(record: Any) -> dict[str, Any]:
    return {
        "name": record.name,
        "kernel": record.kernel,
        "published": record.published,
        "last_seen": record.last_seen,
        "generation": record.generation,
        "warnings": list(record.warnings),
        "types": [
            {
                "parent": t.parent,
                "type": t.type_id,
                "available": t.available,
                "capability": t.capability.model_dump(mode="json", exclude_none=True),
            }
            for t in record.types
        ],
        "devices": [
            {
                "kind": d.kind,
                "name": d.name,
                "parent": d.parent,
                "type": d.type_id,
                "descriptor": d.descriptor.model_dump(mode="json", exclude_none=True) if d.descriptor else None,
            }
            for d in record.devices
        ],
    }


@click.command(name="place")
@click.argument("source", metavar="SOURCE")
@click.option(
    "-n", "--limit", type=click.IntRange(min=0), default=10, show_default=True, help="Candidates to print at most."
)
@click.option(
    "--claim",
    "claim",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Also reserve one instance of the best candidate with room, for this long.",
)
@click.option("--holder", metavar="NAME", help="Who holds the claim (a scheduler, a request id).")
@click.option(
    "--exclude",
    "exclude",
    metavar="HOST",
    multiple=True,
    help="Leave this host out (the source's own); may be given again.",
)
@stale_after_option
@store_option
@output_options
def place(
    source: str,
    limit: int,
    claim: float | None,
    holder: str | None,
    exclude: tuple[str, ...],
    stale_after: str | None,
    store_url: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """The hosts and types of the fleet that can take the device SOURCE (a descriptor; - for standard input),
    ranked as `devmig plan` ranks, with their free instances, and why the others cannot (grouped by reason)."""
    from devmig.fleet.freshness import parse_stale_after
    from devmig.model import DeviceDescriptor

    opts = resolve(json_output, pretty)
    # 0 asks place for no TTL; None leaves the store's default
    ttl = None if stale_after is None else (parse_stale_after(stale_after) or 0.0)
    descriptor = load(DeviceDescriptor, source)
    with _open(store_url) as store:
        started = time.perf_counter()
        placement = store.place(descriptor, limit=limit, claim=claim, holder=holder, exclude=exclude, stale_after=ttl)
        took = time.perf_counter() - started
    found = bool(placement.candidates) and (claim is None or placement.claim is not None)
    if opts.json:
        emit_json({**placement.json(), "seconds": round(took, 6)}, opts)
        return ExitCode.OK if found else ExitCode.REFUSED
    d = descriptor
    model = f" model {d.model}" if d.model else ""
    lines = [
        f"source: {d.device_api} {d.type}{model} version {d.software_version}; parameters {assignments(d.params)}",
        f"fleet:  {placement.host_types} host types; {placement.checked} distinct types checked after SQL "
        f"narrowing, in {took * 1000:.1f} ms; "
        + (
            f"hosts seen in the last {placement.stale_after:g} s"
            if placement.stale_after is not None
            else "every host, however long ago it was seen"
        ),
    ]
    if placement.candidates:
        lines.append("candidates, best first:")
        rows = [("#", "HOST", "PARENT", "TYPE", "VERSION", "LEVEL", "FREE", "PLAN")]
        rows += [
            (
                str(i),
                c.host,
                c.parent,
                c.type_id,
                str(c.capability.software_version),
                c.verdict.level,
                "?" if c.free is None else str(c.free),
                assignments(c.verdict.plan or {}),
            )
            for i, c in enumerate(placement.candidates, 1)
        ]
        lines += table(rows, indent="  ")
    else:
        lines.append("no host of the fleet can take it")
    if placement.refused:
        lines.append("refused, by reason:")
        why = [("TYPES", "HOSTS", "REASON", "FOR EXAMPLE")]
        why += [(str(r.types), str(r.hosts), r.code, r.message) for r in placement.refused]
        lines += table(why, indent="  ")
    if claim is not None:
        c = placement.claim
        lines.append(
            f"claimed: {c.id} on {c.host} {c.parent} {c.type_id}, for {claim:g} s (devmig claim release {c.id})"
            if c
            else "claimed: nothing: no candidate has a free instance left"
        )
    click.echo("\n".join(lines))
    return ExitCode.OK if found else ExitCode.REFUSED


@click.group(name="claim")
def claim_group() -> None:
    """Claims made by `devmig place --claim`: list, release, purge the expired."""


@claim_group.command(name="list")
@click.option("--expired", is_flag=True, help="Also the expired claims.")
@store_option
@output_options
def claim_list(expired: bool, store_url: str | None, json_output: bool, pretty: bool) -> int:
    """The active claims, soonest to expire first."""
    opts = resolve(json_output, pretty)
    with _open(store_url) as store:
        claims = store.claims(expired=expired)
    if opts.json:
        emit_json({"claims": [c.json() for c in claims]}, opts)
    elif claims:
        now = time.time()
        rows = [("CLAIM", "HOST", "PARENT", "TYPE", "EXPIRES", "HOLDER")]
        rows += [
            (
                c.id,
                c.host,
                c.parent,
                c.type_id,
                f"in {c.expires - now:.0f} s" if c.expires > now else "expired",
                c.holder or "-",
            )
            for c in claims
        ]
        click.echo("\n".join(table(rows, indent="")))
    return ExitCode.OK


@claim_group.command(name="release")
@click.argument("claim_id", metavar="CLAIM")
@store_option
def claim_release(claim_id: str, store_url: str | None) -> int:
    """Give a claim back (after the prepare it reserved for is done, or abandoned)."""
    with _open(store_url) as store:
        released = store.release(claim_id)
    click.echo(f"released {released.id} ({released.host} {released.parent} {released.type_id})")
    return ExitCode.OK


@claim_group.command(name="purge")
@store_option
def claim_purge(store_url: str | None) -> int:
    """Delete the expired claims (they no longer count anyway)."""
    with _open(store_url) as store:
        count = store.purge()
    click.echo(f"purged {count} expired claim{'s' if count != 1 else ''}")
    return ExitCode.OK


#: the module's commands under the names the COMMANDS table gives them
claim = claim_group
