"""`devmig libvirt preflight`: every reason a domain's migration would fail, decided before it starts.

A pure function over facts devmig.libvirt.gather collects (the domain's XML, each hostdev's descriptor and
migration flags, the destination's types, the versions of libvirt, QEMU and the kernels, QEMU's migration
blockers): `preflight(facts) -> Preflight`. Each concern is one function in `CHECKS`, yielding items; `CODES` is the
catalogue (docs/libvirt.md). Nothing here talks to libvirt, a host or a store, so every check is tested on plain
data.

A fact devmig could not read is None with the reason beside it; a check that needs it says "not checked" and why,
never nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from devmig.compat import candidate_rank, check
from devmig.compat.migration import lacks_p2p
from devmig.compat.rank import Rank
from devmig.host.describe import version_from_text
from devmig.libvirt.domain import DomainXml, Hostdev
from devmig.libvirt.metadata import NAMESPACE, Metadata
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.preflight import (
    SEVERITIES,
    Candidate,
    DescriptorOrigin,
    Destination,
    DeviceReport,
    ItemSeverity,
    Preflight,
    PreflightItem,
    Refusal,
)
from devmig.model.verdict import Finding, Verdict
from devmig.model.version import SoftwareVersion

# -- the facts ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DestType:
    """A type the destination publishes: its capability and free instances (None: not known). Host types with the
    same capability document (the VFs of one PF, each a type of its own) are one, their instances added up."""

    type_id: str
    capability: TypeCapability
    free: int | None


@dataclass(frozen=True)
class DestinationFacts:
    name: str
    #: where its types were read: "fleet store URL" or a capabilities file
    origin: str
    types: tuple[DestType, ...]
    kernel: str | None = None
    kernel_why: str | None = None


@dataclass(frozen=True)
class HostdevFacts:
    """What the source host says of one hostdev's device."""

    hostdev: Hostdev
    #: described on the source host now (descriptors "live"), or why it could not be
    live: DeviceDescriptor | None = None
    live_why: str | None = None
    #: VFIO_MIGRATION_* bits read through VFIO (0: the driver has no migration), or why they were not read
    flags: int | None = None
    flags_why: str | None = None


@dataclass(frozen=True)
class Facts:
    domain: DomainXml
    #: the source's libvirt URI, and the source host the devices were read on
    uri: str
    host: str
    running: bool
    #: one per hostdev of `domain`, in its order
    hostdevs: tuple[HostdevFacts, ...]
    destination: DestinationFacts
    #: where descriptors come from: described now, or the domain's devmig metadata
    origin: DescriptorOrigin = "live"
    metadata: Metadata | None = None
    #: why the metadata could not be read (damaged, another version)
    metadata_why: str | None = None
    #: libvirt's and the hypervisor's versions as libvirt gives them (major * 1,000,000 + minor * 1,000 + micro)
    libvirt_version: int | None = None
    libvirt_why: str | None = None
    #: the connection's driver ("QEMU"; "TEST" for libvirt's test driver)
    hypervisor: str | None = None
    hypervisor_version: int | None = None
    hypervisor_why: str | None = None
    #: the source host's kernel release
    kernel: str | None = None
    kernel_why: str | None = None
    #: QEMU's `query-migrate` `blocked-reasons` (empty: none), or why they could not be read
    blockers: tuple[str, ...] | None = None
    blockers_why: str | None = None
    #: the migration was asked to switch to postcopy
    postcopy: bool = False
    #: devmig libvirt migrate annotates before it migrates: the metadata as it is now does not matter
    annotating: bool = False

    @property
    def domain_object(self) -> str:
        return f"domain {self.domain.name}"


def libvirt_version(number: int) -> SoftwareVersion:
    """libvirt's version numbers (virConnectGetLibVersion, virConnectGetVersion): major * 1e6 + minor * 1e3 +
    micro."""
    return SoftwareVersion(number // 1_000_000, number // 1_000 % 1_000, number % 1_000)


# -- the catalogue --------------------------------------------------------------------------------------------------

#: code -> (severity, what it means). Errors block the migration; warnings do not; not-checked says why not.
CODES: dict[str, tuple[ItemSeverity, str]] = {
    "domain-not-running": ("error", "the domain is not running: a live migration moves a running domain"),
    "device-not-described": ("error", "a hostdev's device cannot be described on the source host"),
    "no-metadata": ("error", "with --descriptors metadata: the domain's devmig metadata has no descriptor for it"),
    "metadata-damaged": ("error", "the domain's devmig metadata cannot be read (a warning when describing live)"),
    "metadata-stale": (
        "warning",
        "the domain's devmig metadata does not hold the device's descriptor of now: the destination's hook reads "
        "the metadata (devmig libvirt migrate annotates first)",
    ),
    "device-incompatible": ("error", "no type the destination publishes can take the device"),
    "no-free-instance": ("error", "compatible types, but none with a free instance"),
    "not-enough-instances": ("error", "the domain's devices together need more free instances than there are"),
    "qemu-blocker": ("error", "QEMU reports a migration blocker (query-migrate, blocked-reasons)"),
    "qemu-blockers-not-checked": ("not-checked", "QEMU's migration blockers could not be read"),
    "postcopy-requested": ("error", "postcopy was asked for: QEMU blocks postcopy for VFIO devices"),
    "viommu": ("error", "the domain has a vIOMMU: QEMU blocks the migration of VFIO devices with one"),
    "migration-disabled": ("error", "a qemu:override or qemu:commandline sets enable-migration=off for the device"),
    "driver-no-migration": ("error", "the device's driver has no VFIO migration"),
    "no-p2p": ("error", "more than one VFIO device, and this one's driver lacks P2P: QEMU blocks the migration"),
    "migration-flags-not-checked": (
        "not-checked",
        "the device's migration flags were not read and QEMU's blockers are not known: its driver's migration and "
        "P2P support are not checked",
    ),
    "libvirt-too-old": ("error", "libvirt is older than device migration needs (8.6.0)"),
    "libvirt-version-not-checked": ("not-checked", "libvirt's version could not be read"),
    "qemu-too-old": ("error", "QEMU is older than VFIO migration v2 (8.0)"),
    "qemu-experimental": ("warning", "QEMU 8.0: VFIO migration is experimental (x-enable-migration); 8.1 is not"),
    "qemu-version-not-checked": ("not-checked", "QEMU's version could not be read (another hypervisor driver)"),
    "variant-driver-versions": (
        "warning",
        "a PCI hostdev names its variant driver (<driver model>) and libvirt or QEMU is below Nova's minimum for "
        "that (10.0.0, 8.2.2)",
    ),
    "kernel-too-old": ("error", "a host's kernel is older than the VFIO migration v2 uAPI (5.18)"),
    "kernel-not-checked": ("not-checked", "a host's kernel release is not known"),
    "destination-versions-not-checked": (
        "not-checked",
        "the destination's libvirt and QEMU versions: preflight reads none (libvirt's own prepare step checks them)",
    ),
}

#: the refusal code of a compatible type with no free instance (the fleet's placement uses the same)
NO_ROOM = "no-free-instance"


def item(code: str, obj: str, message: str, severity: ItemSeverity | None = None) -> PreflightItem:
    return PreflightItem(code=code, severity=severity or CODES[code][0], object=obj, message=message)


# -- the devices against the destination ----------------------------------------------------------------------------


@dataclass
class DeviceOutcome:
    """One hostdev's descriptor and what the destination offers it (filled by `judge_devices`)."""

    facts: HostdevFacts
    descriptor: DeviceDescriptor | None
    origin: DescriptorOrigin | None
    #: (dest type index, verdict, rank) of compatible types with room, best first
    candidates: list[tuple[int, Verdict, Rank]]
    refused: list[Refusal]
    target: int | None = None


def descriptor_of(facts: Facts, hostdev: HostdevFacts) -> tuple[DeviceDescriptor | None, DescriptorOrigin | None]:
    if facts.origin == "live":
        return (hostdev.live, "live") if hostdev.live is not None else (None, None)
    found = facts.metadata.descriptor(hostdev.hostdev) if facts.metadata is not None else None
    return (found, "metadata") if found is not None else (None, None)


def _no_room(dest: DestType, name: str) -> Finding:
    return Finding(
        code=NO_ROOM,
        severity="error",
        field="available_instances",
        destination=0,
        message=f"type {dest.type_id} on {name} is compatible, but has no free instance",
    )


def judge(facts: Facts, hostdev: HostdevFacts) -> DeviceOutcome:
    """One device against every type of the destination: compatible ones with room, ranked; the others with each
    of the check's errors, or no-free-instance."""
    descriptor, origin = descriptor_of(facts, hostdev)
    outcome = DeviceOutcome(hostdev, descriptor, origin, [], [])
    if descriptor is None:
        return outcome
    for index, dest in enumerate(facts.destination.types):
        verdict = check(descriptor, dest.capability, devices=len(facts.hostdevs))
        version = str(dest.capability.software_version)
        if not verdict.compatible:
            outcome.refused.append(Refusal(type=dest.type_id, version=version, findings=verdict.errors))
        elif dest.free is not None and dest.free <= 0:
            outcome.refused.append(
                Refusal(type=dest.type_id, version=version, findings=[_no_room(dest, facts.destination.name)])
            )
        else:
            rank = candidate_rank(descriptor, dest.capability, verdict)._replace(fewer_free=-(dest.free or 0))
            outcome.candidates.append((index, verdict, rank))
    outcome.candidates.sort(key=lambda c: (c[2], c[0]))
    return outcome


def assign(options: list[list[int]], capacity: list[int | None]) -> list[int | None]:
    """Give each device (its options: type indexes, best first) a type, no type beyond its capacity (None:
    unbounded): augmenting paths (Kuhn's algorithm), so a device moves to its next option when that lets another
    have one. Returns each device's type, or None when the free instances run out for it."""
    holders: dict[int, list[int]] = {t: [] for t in range(len(capacity))}
    target: list[int | None] = [None] * len(options)

    def place(device: int, seen: set[int]) -> bool:
        for t in options[device]:
            if t in seen:
                continue
            seen.add(t)
            room = capacity[t]
            if room is None or len(holders[t]) < room:
                holders[t].append(device)
                target[device] = t
                return True
            for other in list(holders[t]):
                if place(other, seen):  # `other` took another type: its place here is free
                    holders[t].remove(other)
                    holders[t].append(device)
                    target[device] = t
                    return True
        return False

    for device in range(len(options)):
        place(device, set())
    return target


def judge_devices(facts: Facts) -> list[DeviceOutcome]:
    outcomes = [judge(facts, h) for h in facts.hostdevs]
    capacity = [t.free for t in facts.destination.types]
    targets = assign([[index for index, _, _ in o.candidates] for o in outcomes], capacity)
    for outcome, target in zip(outcomes, targets, strict=True):
        outcome.target = target
    return outcomes


# -- the checks -----------------------------------------------------------------------------------------------------

Check = Callable[[Facts, list[DeviceOutcome]], Iterator[PreflightItem]]


def running(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    if not facts.running:
        yield item("domain-not-running", facts.domain_object, "not running: a live migration moves a running domain")


def metadata(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    """The descriptors the destination's hook will read: the domain's devmig metadata."""
    obj = f"{facts.domain_object}: devmig metadata ({NAMESPACE})"
    if facts.annotating and facts.origin == "live":
        return  # rewritten whole from the descriptors of now before the migration starts
    if facts.metadata_why is not None:
        severity: ItemSeverity = "error" if facts.origin == "metadata" else "warning"
        yield item("metadata-damaged", obj, facts.metadata_why, severity)
        return
    if facts.origin == "metadata":
        return  # each missing descriptor is its device's no-metadata item
    for d in devices:
        if d.descriptor is None:
            continue
        stored = facts.metadata.descriptor(d.facts.hostdev) if facts.metadata is not None else None
        if stored is None:
            where = "no devmig metadata" if facts.metadata is None else "no descriptor of it in devmig's metadata"
            yield item(
                "metadata-stale",
                d.facts.hostdev.label,
                f"the domain has {where}: the destination's hook reads the metadata (devmig libvirt migrate, or "
                f"devmig libvirt annotate {facts.domain.name}, writes it)",
            )
        elif stored != d.descriptor:
            yield item(
                "metadata-stale",
                d.facts.hostdev.label,
                "its descriptor in devmig's metadata differs from the one described now: the destination's hook "
                f"reads the metadata (devmig libvirt migrate, or devmig libvirt annotate {facts.domain.name}, "
                "rewrites it)",
            )


def described(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    for d in devices:
        if d.descriptor is not None:
            continue
        label = d.facts.hostdev.label
        if facts.origin == "live":
            why = d.facts.live_why or "not described"
            yield item("device-not-described", label, f"cannot be described on {facts.host}: {why}")
        elif facts.metadata_why is None:
            where = "the domain has no devmig metadata" if facts.metadata is None else "devmig's metadata has none"
            yield item(
                "no-metadata",
                label,
                f"no descriptor: {where} (devmig libvirt annotate {facts.domain.name} writes it on the source)",
            )


def _refusal_summary(refused: list[Refusal]) -> str:
    reasons = sorted({f.code for r in refused for f in r.findings})
    return f"{len(refused)} type(s) refused ({', '.join(reasons)})" if refused else "it publishes no type"


def destination(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    """Each device: a compatible type with a free instance on the destination, every device counted."""
    dest = facts.destination
    types = dest.types
    for d in devices:
        if d.descriptor is None:
            continue
        label = d.facts.hostdev.label
        if not d.candidates:
            full = [r for r in d.refused if any(f.code == NO_ROOM for f in r.findings)]
            if full:
                names = ", ".join(sorted({r.type for r in full}))
                yield item("no-free-instance", label, f"{dest.name} can take it as {names}, but has no free instance")
            else:
                yield item(
                    "device-incompatible", label, f"no type on {dest.name} can take it: {_refusal_summary(d.refused)}"
                )
        elif d.target is None:
            names = ", ".join(sorted({types[i].type_id for i, _, _ in d.candidates}))
            free = sum(types[i].free or 0 for i, _, _ in d.candidates)
            yield item(
                "not-enough-instances",
                label,
                f"{dest.name} can take it as {names}, but the domain's other hostdevs take the {free} free "
                "instance(s) of those types",
            )


def blockers(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    obj = f"QEMU of {facts.domain_object}"
    if facts.blockers is None:
        why = facts.blockers_why or "not read"
        yield item("qemu-blockers-not-checked", obj, f"its migration blockers (query-migrate) were not read: {why}")
        return
    for reason in facts.blockers:
        yield item("qemu-blocker", obj, f"QEMU blocks the migration: {reason}")


def postcopy(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    if facts.postcopy and devices:
        yield item(
            "postcopy-requested",
            facts.domain_object,
            f"postcopy was asked for, and QEMU blocks postcopy for VFIO devices ({len(devices)} hostdev(s))",
        )


def viommu(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    models = facts.domain.iommus()
    if models and devices:
        yield item(
            "viommu",
            facts.domain_object,
            f"it has a vIOMMU (<iommu model='{models[0]}'>): QEMU blocks the migration of VFIO devices in a VM with "
            "one",
        )


#: the device properties that switch VFIO migration on or off (x-enable-migration before QEMU 8.1)
MIGRATION_PROPERTIES = ("enable-migration", "x-enable-migration")
#: how QEMU reads "off" for them (OnOffAuto, and the bool x-enable-migration was)
OFF = frozenset({"off", "false", "no"})


def off_in_args(args: list[str]) -> Iterator[tuple[str | None, str]]:
    """(alias, argument) per argument that switches migration off: `-set device.ALIAS.PROP=off` for one device,
    `-global vfio-pci.PROP=off` (or driver=,property=,value=) for every VFIO PCI device (alias None)."""
    for option, value in itertools.pairwise(args):
        name, _, setting = value.partition("=")
        if option == "-set" and name.startswith("device."):
            alias, _, prop = name[len("device.") :].rpartition(".")
            if prop in MIGRATION_PROPERTIES and setting.lower() in OFF:
                yield alias, f"{option} {value}"
        elif option == "-global":
            fields = dict(part.partition("=")[::2] for part in value.split(","))
            if "driver" in fields:  # -global driver=vfio-pci,property=PROP,value=off
                driver, prop, setting = fields["driver"], fields.get("property", ""), fields.get("value", "")
            else:  # -global vfio-pci.PROP=off
                driver, _, prop = name.partition(".")
            if driver == "vfio-pci" and prop in MIGRATION_PROPERTIES and setting.lower() in OFF:
                yield None, f"{option} {value}"


def migration_switched_off(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    """enable-migration=off for a hostdev: QEMU blocks the migration of a device whose migration is disabled."""
    props = [
        p
        for p in facts.domain.qemu_properties()
        if p.name in MIGRATION_PROPERTIES
        and ((p.type == "bool" and p.value.lower() == "false") or (p.type == "string" and p.value.lower() in OFF))
    ]
    args = list(off_in_args(facts.domain.qemu_args()))
    for d in devices:
        hostdev = d.facts.hostdev
        for p in props:
            if hostdev.alias is not None and p.alias == hostdev.alias:
                yield item(
                    "migration-disabled",
                    hostdev.label,
                    f"<qemu:override> sets {p.name}={p.value} on it: QEMU blocks the migration of a device whose "
                    "migration is switched off",
                )
        vfio_pci = hostdev.kind == "pci" or hostdev.model in (None, "vfio-pci")
        for alias, arg in args:
            if (alias is None and vfio_pci) or (alias is not None and alias == hostdev.alias):
                yield item(
                    "migration-disabled",
                    hostdev.label,
                    f"<qemu:commandline> passes {arg!r} to QEMU: it blocks the migration of a device whose migration "
                    "is switched off",
                )


#: What a descriptor shows of a driver that has no VFIO migration (Linux 6.12), and why: used only when devmig
#: could read neither the device's flags nor QEMU's blockers, and never for a declared descriptor (a driver that
#: declares the migration interface speaks for itself).
NO_MIGRATION: tuple[tuple[Callable[[DeviceDescriptor], bool], str], ...] = (
    (lambda d: d.device_api == "vfio-ccw", "the kernel's vfio-ccw driver implements no VFIO migration"),
    (lambda d: d.device_api == "vfio-ap", "the kernel's vfio-ap driver implements no VFIO migration"),
    (
        lambda d: d.device_api in ("vfio-platform", "vfio-amba"),
        "no vfio-platform or vfio-amba driver implements VFIO migration",
    ),
    (
        lambda d: d.device_api == "vfio-pci" and d.type.startswith("vfio-pci:"),
        "it is bound to vfio-pci itself, which has no migration: a PCI function migrates through a VFIO variant "
        "driver (mlx5_vfio_pci, pds_vfio_pci, ...)",
    ),
)


def device_migration(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    """Each device's driver supports migration, and P2P when the domain has more than one VFIO device: from the
    flags devmig read through VFIO, else QEMU's blockers (QEMU opened the device and blocks for both), else what
    the descriptor shows; else not checked."""
    several = len(devices) > 1
    for d in devices:
        hostdev, flags = d.facts.hostdev, d.facts.flags
        if flags is not None:
            if flags == 0:
                yield item(
                    "driver-no-migration",
                    hostdev.label,
                    "its driver has no VFIO migration (VFIO_DEVICE_FEATURE_MIGRATION answers ENOTTY)",
                )
            elif lacks_p2p(flags, len(devices)):
                yield item(
                    "no-p2p",
                    hostdev.label,
                    f"the domain has {len(devices)} VFIO devices, and this one's driver lacks P2P "
                    f"(migration flags {flags:#x}): QEMU migrates several only when all have it",
                )
            continue
        if facts.blockers is not None:
            continue  # QEMU's blockers hold the driver's answer (the blockers check reports them)
        descriptor = d.descriptor
        known = (
            next((why for test, why in NO_MIGRATION if test(descriptor)), None)
            if descriptor is not None and descriptor.confidence != "declared"
            else None
        )
        if known is not None:
            yield item("driver-no-migration", hostdev.label, known)
            continue
        unchecked = "its driver's migration and P2P support" if several else "its driver's migration support"
        yield item(
            "migration-flags-not-checked",
            hostdev.label,
            f"{unchecked} not checked: QEMU's blockers are not known, and its migration flags were not read: "
            f"{d.facts.flags_why or 'unknown'}",
        )


@dataclass(frozen=True)
class Minimum:
    """A version below which device migration fails (error) or is not what a minimum asks (warning)."""

    code: str
    minimum: SoftwareVersion
    why: str
    #: only when a PCI hostdev names its variant driver
    variant_only: bool = False


LIBVIRT_MINIMUMS = (
    Minimum(
        "libvirt-too-old",
        SoftwareVersion(8, 6, 0),
        "before 8.6.0 libvirt refuses to migrate a domain with mdev or PCI hostdevs (since then it asks QEMU's "
        "blockers instead; Nova's minimum for device migration)",
    ),
    Minimum("variant-driver-versions", SoftwareVersion(10, 0, 0), "Nova's minimum for variant drivers", True),
)
QEMU_MINIMUMS = (
    Minimum(
        "qemu-too-old",
        SoftwareVersion(8, 0, 0),
        "VFIO migration v2 arrived in QEMU 8.0; before it QEMU speaks only v1, which Linux removed",
    ),
    Minimum(
        "qemu-experimental",
        SoftwareVersion(8, 1, 0),
        "QEMU 8.0's VFIO migration is experimental (x-enable-migration, off unless set on each device); 8.1 made "
        "it supported (enable-migration=auto), Nova's minimum",
    ),
    Minimum("variant-driver-versions", SoftwareVersion(8, 2, 2), "Nova's minimum for variant drivers", True),
)
KERNEL_MINIMUMS = (
    Minimum("kernel-too-old", SoftwareVersion(5, 18, 0), "the VFIO migration v2 uAPI arrived in Linux 5.18"),
)


def _below(
    minimums: tuple[Minimum, ...], version: SoftwareVersion, obj: str, name: str, variants: bool
) -> Iterator[PreflightItem]:
    for m in minimums:
        if version < m.minimum and (variants or not m.variant_only):
            yield item(m.code, obj, f"{name} {version} is older than {m.minimum}: {m.why}")
            if not m.variant_only:
                return  # the oldest floor says it; a newer floor below it would only repeat


def versions(facts: Facts, devices: list[DeviceOutcome]) -> Iterator[PreflightItem]:
    """libvirt, QEMU and both kernels against what device migration needs (only when the domain has devices)."""
    if not devices:
        return
    variants = any(d.facts.hostdev.kind == "pci" and d.facts.hostdev.model for d in devices)
    obj = f"libvirt at {facts.uri}"
    if facts.libvirt_version is None:
        yield item("libvirt-version-not-checked", obj, f"its version was not read: {facts.libvirt_why or 'unknown'}")
    else:
        yield from _below(LIBVIRT_MINIMUMS, libvirt_version(facts.libvirt_version), obj, "libvirt", variants)
    obj = f"QEMU at {facts.uri}"
    if facts.hypervisor_version is None:
        why = facts.hypervisor_why or "unknown"
        yield item("qemu-version-not-checked", obj, f"its version was not read: {why}")
    elif (facts.hypervisor or "").upper() != "QEMU":
        yield item("qemu-version-not-checked", obj, f"not checked: the connection's driver is {facts.hypervisor}")
    else:
        yield from _below(QEMU_MINIMUMS, libvirt_version(facts.hypervisor_version), obj, "QEMU", variants)
    dest = facts.destination
    for host, release, unknown in (
        (facts.host, facts.kernel, facts.kernel_why),
        (dest.name, dest.kernel, dest.kernel_why),
    ):
        obj = f"kernel of {host}"
        parsed = version_from_text(release) if release is not None else None
        if parsed is None:
            shown = unknown or (f"its release {release!r} holds no version" if release else "unknown")
            yield item("kernel-not-checked", obj, f"its release was not read: {shown}")
        else:
            yield from _below(KERNEL_MINIMUMS, parsed, obj, "Linux", variants)
    yield item(
        "destination-versions-not-checked",
        f"libvirt and QEMU of {dest.name}",
        "not read by preflight: libvirt's own prepare step on the destination refuses what it cannot run",
    )


#: every check, in the order its items are reported within a severity
CHECKS: tuple[Check, ...] = (
    running,
    described,
    metadata,
    destination,
    blockers,
    postcopy,
    viommu,
    migration_switched_off,
    device_migration,
    versions,
)


# -- the report -----------------------------------------------------------------------------------------------------


def _device_report(facts: Facts, d: DeviceOutcome) -> DeviceReport:
    types = facts.destination.types
    hostdev = d.facts.hostdev
    return DeviceReport(
        kind=hostdev.kind,
        address=hostdev.address,
        alias=hostdev.alias,
        descriptor=d.descriptor,
        origin=d.origin,
        target=types[d.target].type_id if d.target is not None else None,
        candidates=[
            Candidate(
                type=types[i].type_id,
                version=str(types[i].capability.software_version),
                level=verdict.level,
                free=types[i].free,
                plan=verdict.plan,
                warnings=[f.code for f in verdict.warnings],
            )
            for i, verdict, _ in d.candidates
        ],
        refused=d.refused,
    )


def preflight(facts: Facts) -> Preflight:
    """Every reason the migration the facts describe would fail, every device against the destination. Pure."""
    devices = judge_devices(facts)
    found = [i for check_ in CHECKS for i in check_(facts, devices)]
    ordered = sorted(found, key=lambda i: SEVERITIES.index(i.severity))
    dest = facts.destination
    return Preflight(
        domain=facts.domain.name,
        uuid=facts.domain.uuid,
        uri=facts.uri,
        host=facts.host,
        destination=Destination(name=dest.name, origin=dest.origin, types=len(dest.types), kernel=dest.kernel),
        blocking=any(i.severity == "error" for i in ordered),
        counts={s: sum(i.severity == s for i in ordered) for s in SEVERITIES},
        items=ordered,
        devices=[_device_report(facts, d) for d in devices],
    )
