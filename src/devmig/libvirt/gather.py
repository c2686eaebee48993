"""What preflight decides on, collected: from libvirt (the domain's XML, versions, QEMU's migration blockers), the
source host (each hostdev described, its migration flags, the kernel) and the destination (its types, from the
fleet store or a capabilities file). A thin layer: each fact devmig cannot read becomes None and the reason, for
devmig.libvirt.preflight to report as "not checked".
"""

from __future__ import annotations

import errno
import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from devmig.errors import DevmigError, InputError
from devmig.host.inventory import Inventory
from devmig.libvirt.annotate import describe_hostdevs
from devmig.libvirt.connection import Connection, Domain, LibvirtError, binding, domain, message
from devmig.libvirt.domain import Hostdev, parse_domain
from devmig.libvirt.metadata import from_domain
from devmig.libvirt.preflight import DestinationFacts, DestType, Facts, HostdevFacts
from devmig.migrate.device import VfioError, VfioHost
from devmig.model.descriptor import TypeCapability
from devmig.model.load import parse_json, validate_document
from devmig.model.preflight import DescriptorOrigin

T = TypeVar("T")

#: the QMP command whose reply carries `blocked-reasons` (QEMU >= 6.0), through libvirt's monitor passthrough
QUERY_MIGRATE = '{"execute":"query-migrate"}'


# -- the source: libvirt and QEMU -----------------------------------------------------------------------------------


def _read(call: Callable[[], T], what: str) -> tuple[T | None, str | None]:
    """A value libvirt gives, or None and why it did not."""
    libvirt = binding()
    try:
        return call(), None
    except libvirt.libvirtError as exc:
        return None, f"{what}: {message(exc)}"


def parse_blockers(reply: str) -> tuple[tuple[str, ...] | None, str | None]:
    """QEMU's `query-migrate` reply (untrusted text) -> its blocked-reasons (empty: none), or why it cannot tell."""
    try:
        data = parse_json(reply, "QEMU's query-migrate reply")
    except InputError as exc:
        return None, exc.message
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return None, f"QEMU answered query-migrate with an error: {str(data['error'].get('desc', '?'))[:200]}"
    answer = data.get("return") if isinstance(data, dict) else None
    if not isinstance(answer, dict):
        return None, f"QEMU's query-migrate reply has no 'return' object: {reply[:120]!r}"
    reasons = answer.get("blocked-reasons", [])  # absent when nothing blocks
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        return None, f"QEMU's blocked-reasons is not a list of strings: {json.dumps(reasons)[:120]}"
    return tuple(reasons), None


def qemu_blockers(dom: Domain, running: bool) -> tuple[tuple[str, ...] | None, str | None]:
    """QEMU's migration blockers through libvirt's QEMU monitor passthrough (libvirt_qemu.qemuMonitorCommand)."""
    if not running:
        return None, "the domain is not running, and only a running QEMU has blockers"
    libvirt = binding()
    try:
        qemu = importlib.import_module("libvirt_qemu")
    except ImportError as exc:
        return None, f"the binding's libvirt_qemu module cannot be imported ({exc})"
    try:
        reply = qemu.qemuMonitorCommand(dom, QUERY_MIGRATE, 0)
    except libvirt.libvirtError as exc:
        return None, f"libvirt's QEMU monitor passthrough refused: {message(exc)}"
    return parse_blockers(str(reply))


# -- the source host --------------------------------------------------------------------------------------------------


def migration_flags(host: VfioHost, hostdev: Hostdev, inventory: Inventory) -> tuple[int | None, str | None]:
    """The device's VFIO_MIGRATION_* bits (0: its driver has no migration), read through VFIO only when nothing
    uses the device; else None and why."""
    try:
        group = getattr(inventory.device(hostdev.address), "iommu_group", None)  # a subchannel has none
    except DevmigError as exc:
        return None, str(exc)
    used = host.in_use(hostdev.address, group)
    if used is None:
        return None, f"whether it is in use cannot be told on {host.name}"
    if used:
        return None, f"the device is open on {host.name} (by the VM); devmig opens it through VFIO only when unused"
    try:
        with host.vfio(hostdev.address) as device:
            return device.migration_flags(), None
    except VfioError as exc:
        if exc.errno == errno.ENOTTY:
            return 0, None
        return None, str(exc)
    except DevmigError as exc:
        return None, str(exc)


def kernel_release(host: VfioHost) -> tuple[str | None, str | None]:
    """The host's kernel release (what os.uname gives on this machine; a simulated host's own)."""
    try:
        return host.sysfs.read("proc/sys/kernel/osrelease").strip() or None, None
    except DevmigError as exc:
        return None, str(exc)


def _reason(reason: str | None, hostdev: Hostdev, host: str) -> str | None:
    """annotate's reason without the hostdev's label and host, which the item names already."""
    return None if reason is None else reason.removeprefix(f"{hostdev.label} on {host}: ")


def gather(
    conn: Connection,
    domain_name: str,
    host: VfioHost,
    destination: DestinationFacts,
    *,
    origin: DescriptorOrigin = "live",
    postcopy: bool = False,
    annotating: bool = False,
    profiles_dir: str | None = None,
) -> Facts:
    """Every fact preflight decides on, for the domain `domain_name` at `conn` whose devices are on `host`."""
    libvirt = binding()
    uri = conn.getURI()
    dom = domain(conn, domain_name)
    try:
        running = bool(dom.isActive())
        xml = parse_domain(dom.XMLDesc(0), f"domain {domain_name} (XML from {uri})")
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"domain {domain_name} at {uri}: {message(exc)}") from None
    try:
        metadata, metadata_why = from_domain(xml), None
    except InputError as exc:
        metadata, metadata_why = None, exc.message
    inventory = Inventory.scan(host.sysfs)
    described = {a.hostdev.address: a for a in describe_hostdevs(xml, host, profiles_dir)} if origin == "live" else {}
    hostdevs = []
    for hostdev in xml.hostdevs:
        flags, flags_why = migration_flags(host, hostdev, inventory)
        annotation = described.get(hostdev.address)
        hostdevs.append(
            HostdevFacts(
                hostdev,
                live=annotation.descriptor if annotation else None,
                live_why=_reason(annotation.reason, hostdev, host.name) if annotation else None,
                flags=flags,
                flags_why=flags_why,
            )
        )
    lib, lib_why = _read(conn.getLibVersion, "virConnectGetLibVersion")
    kind, kind_why = _read(conn.getType, "virConnectGetType")
    version, version_why = _read(conn.getVersion, "virConnectGetVersion") if kind is not None else (None, kind_why)
    blockers, blockers_why = qemu_blockers(dom, running)
    kernel, kernel_why = kernel_release(host)
    return Facts(
        domain=xml,
        uri=uri,
        host=host.name,
        running=running,
        hostdevs=tuple(hostdevs),
        destination=destination,
        origin=origin,
        metadata=metadata,
        metadata_why=metadata_why,
        libvirt_version=lib,
        libvirt_why=lib_why,
        hypervisor=kind,
        hypervisor_version=version,
        hypervisor_why=version_why,
        kernel=kernel,
        kernel_why=kernel_why,
        blockers=blockers,
        blockers_why=blockers_why,
        postcopy=postcopy,
        annotating=annotating,
    )


# -- the destination ------------------------------------------------------------------------------------------------


def _document(cap: TypeCapability) -> str:
    return json.dumps(cap.model_dump(mode="json", exclude_none=True, exclude={"available_instances"}), sort_keys=True)


def dest_types(types: Iterable[tuple[str, TypeCapability, int | None]]) -> tuple[DestType, ...]:
    """(type id, capability, free) per host type -> one DestType per distinct capability, free instances added
    up (unknown when any is), in first-seen order."""
    grouped: dict[tuple[str, str], DestType] = {}
    for type_id, cap, free in types:
        key = (type_id, _document(cap))
        seen = grouped.get(key)
        if seen is None:
            grouped[key] = DestType(type_id, cap.model_copy(update={"available_instances": None}), free)
        else:
            total = None if seen.free is None or free is None else seen.free + free
            grouped[key] = DestType(type_id, seen.capability, total)
    return tuple(grouped.values())


def destination_from_document(text: str | bytes, origin: str, name: str) -> DestinationFacts:
    """DEST's types from what `devmig capabilities -j` printed on it: a list of capabilities, or one (--type)."""
    data: Any = parse_json(text, origin)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InputError(f"{origin}: a JSON {type(data).__name__}: expected what `devmig capabilities -j` prints")
    caps = [validate_document(TypeCapability, doc, f"{origin}: capability [{i}]") for i, doc in enumerate(data)]
    return DestinationFacts(
        name=name,
        origin=origin,
        types=dest_types((c.type, c, c.available_instances) for c in caps),
        kernel=None,
        kernel_why=f"{origin} (devmig capabilities -j) carries none: publish {name} to the fleet store (devmig "
        "inventory publish) and give --store instead to check it",
    )


def destination_from_store(store_url: str | None, name: str, now: float | None = None) -> DestinationFacts:
    """DEST's types as its last `devmig inventory publish` left them in the fleet store, less the active claims."""
    from devmig.fleet.store import FleetStore

    with FleetStore.open(store_url) as store:
        record = store.host(name)
        claims = store.claims(now=now)
        shown = store.shown
    claimed: dict[tuple[str, str], int] = {}
    for claim in claims:
        if claim.host == name:
            claimed[claim.parent, claim.type_id] = claimed.get((claim.parent, claim.type_id), 0) + 1
    types = (
        (
            t.type_id,
            t.capability,
            None if t.available is None else max(0, t.available - claimed.get((t.parent, t.type_id), 0)),
        )
        for t in record.types
    )
    return DestinationFacts(
        name=name,
        origin=f"fleet store {shown}",
        types=dest_types(types),
        kernel=record.kernel,
        kernel_why=None if record.kernel else f"its inventory in {shown} carries no kernel release",
    )
