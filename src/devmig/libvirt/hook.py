"""devmig's libvirt qemu hook: an incoming VM's devices prepared here, or the migration refused with every reason.

libvirt runs each executable of /etc/libvirt/hooks/qemu.d/ with four arguments (the domain's name, an operation, a
sub-operation, an extra argument or "-") and the domain's XML on stdin; for `migrate begin` on the destination its
stdout, when not empty, replaces the incoming XML, and a non-zero exit cancels the migration with the hook's stderr
in libvirt's error. A hook must not call libvirt (the daemon waits for it: a deadlock), so everything here comes from
the arguments, stdin and this host.

`migrate begin`: every mdev or PCI hostdev must carry devmig's descriptor in the domain's metadata (devmig libvirt
annotate, on the source; one without it follows the `unannotated` policy: refuse, or pass it to libvirt as it is).
First each device is judged against this host's types (nothing is changed yet): if any has no compatible device
with room, the hook refuses with every device's reasons. Then each is prepared (devmig.provision: create the mdev or
claim the function, write and read back each parameter, journaled) under one claim named by the domain's UUID; if
any prepare fails, those made are released and the hook refuses. Else each hostdev's source is rewritten to the
prepared device, devmig's metadata is set to the destination devices' own descriptors, and the XML is printed. An
mdev hostdev whose address names an mdev of this host that nothing uses (a management layer made it for the VM:
Nova's `--xml`) is judged itself and used as it is, or refused with its reasons; its descriptor is found by the
hostdev's alias when the address was rewritten on the way.

Later operations (the table OPERATIONS): `started begin` marks the claim started; `release end` (its extra argument
is libvirt's shut-off reason) releases the claim when the domain never started here, when it `failed` (an incoming
migration cancelled: libvirt runs `started begin` as soon as the destination's QEMU starts, before any state
arrives, so "started" alone proves nothing), when it left by migration (`migrated`: libvirt >= 10.5, on the source
after a successful outgoing migration), or when no persistent definition here could start it again. A crash
half-way leaves an incomplete claim, which `devmig recover` releases.

Exit codes: 0 done (or nothing to do), 1 refused (the migration is cancelled), 2 bad input (unreadable XML or
arguments: cancelled too).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from devmig import config as config_file
from devmig.errors import DevmigError, ExitCode, InputError
from devmig.host.access import Host
from devmig.host.devices import MdevDevice
from devmig.host.inventory import Inventory
from devmig.host.profile import Profile, load_profiles
from devmig.libvirt.annotate import describe_hostdevs
from devmig.libvirt.domain import DomainXml, Hostdev, parse_domain
from devmig.libvirt.metadata import from_domain, set_in_domain
from devmig.model.descriptor import DeviceDescriptor
from devmig.provision.candidates import NO_ROOM_MESSAGE, Ranking, rank_candidates
from devmig.provision.claims import Claim, holding, load, new_ids, release_claim, save
from devmig.provision.journal import HostState
from devmig.provision.prepare import Prepared, prepare

#: what the hook does with a hostdev that carries no devmig descriptor
Policy = Literal["refuse", "pass"]
POLICIES: Final = ("refuse", "pass")
#: the hook's settings (TOML): `unannotated = "refuse" | "pass"`
CONFIG: Final = Path("/etc/devmig/libvirt.toml")
#: where the system libvirt keeps its persistent QEMU domains (NAME.xml)
DEFINITIONS: Final = Path("/etc/libvirt/qemu")


@dataclass(frozen=True)
class Settings:
    unannotated: Policy = "refuse"
    #: where they came from, for messages
    source: str = "the default"

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """The settings file (CONFIG unless `path`); the defaults when the default file does not exist."""
        chosen = path or CONFIG
        data = config_file.read(
            chosen, "hook settings", {"unannotated": config_file.choice(*POLICIES)}, missing_ok=path is None
        )
        if data is None:
            return cls()
        policy = data.get("unannotated", "refuse")
        return cls(policy, str(chosen))


@dataclass
class HookResult:
    code: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class Call:
    """One invocation, as libvirt makes it."""

    domain: str
    operation: str
    sub_operation: str
    extra: str
    xml: str | bytes

    @classmethod
    def of(cls, argv: Sequence[str], xml: str | bytes) -> Call:
        if len(argv) != 4:
            raise InputError(
                f"libvirt qemu hook: {len(argv)} argument(s) {list(argv)[:6]!r}: expected 4 (the domain's name, the "
                "operation, the sub-operation, an extra argument or -), as libvirt passes them"
            )
        domain, operation, sub_operation, extra = argv
        return cls(domain, operation, sub_operation, extra, xml)


@dataclass
class Context:
    """What a hook call works on: this host, its state directory, the settings, the drivers' profiles."""

    host: Host
    settings: Settings = field(default_factory=Settings)
    state_dir: str | None = None
    profiles: list[Profile] | None = None
    #: libvirt's directory of persistent QEMU domain definitions on this host (qemu:///system's)
    definitions: Path = DEFINITIONS

    @property
    def state(self) -> HostState:
        return HostState.of(self.host.key, self.state_dir)


def _domain(call: Call) -> DomainXml:
    xml = parse_domain(call.xml, f"domain {call.domain} (the XML libvirt passed on stdin)")
    if xml.name != call.domain:
        raise InputError(f"domain {call.domain}: the XML on stdin is domain {xml.name}'s: expected the same domain")
    if xml.uuid is None:
        raise InputError(f"domain {call.domain}: its XML has no <uuid>: expected the one libvirt always writes")
    return xml


# -- migrate begin: judge, prepare, rewrite -------------------------------------------------------------------------


@dataclass
class _Device:
    hostdev: Hostdev
    descriptor: DeviceDescriptor | None
    problems: list[str] = field(default_factory=list)
    #: the XML already names an mdev of this host that takes it: used as it is, nothing prepared for it
    adopted: bool = False

    @property
    def label(self) -> str:
        d = self.descriptor
        what = f" ({d.device_api} {d.type}, version {d.software_version})" if d is not None else ""
        return f"hostdev #{self.hostdev.index} {self.hostdev.kind} {self.hostdev.address}{what}"


def _named_mdev(ctx: Context, mdevs: dict[str, MdevDevice], hostdev: Hostdev) -> MdevDevice | None:
    """The mdev of this host the hostdev names, when nothing uses it: one a management layer made here for the
    incoming VM (Nova's `--xml`, mdevctl's same UUID on both hosts). A PCI address names a slot every host may have,
    so a function is always prepared."""
    mdev = mdevs.get(hostdev.address) if hostdev.kind == "mdev" else None
    if mdev is None or ctx.host.in_use(mdev.uuid, mdev.iommu_group) is not False:
        return None
    return mdev


def _judge_named(device: _Device, mdev: MdevDevice, ranking: Ranking) -> None:
    """Adopt the named mdev when its type takes the source (its own instance exists: the type's free count does not
    matter), else the reasons it does not: the management layer chose it, so devmig does not swap in another."""
    every = (*ranking.candidates, *ranking.rejected)
    kind = next((c for c in every if c.kind == "mdev" and (c.parent, c.type) == (mdev.parent, mdev.type)), None)
    if kind is not None and kind.verdict is not None and kind.verdict.compatible:
        device.adopted = True
        return
    why = [r for r in kind.reasons if r != NO_ROOM_MESSAGE] if kind is not None else []
    device.problems.append(
        f"the XML names mdev {mdev.uuid} ({mdev.parent}/{mdev.type or '?'}) here, which cannot take it: "
        + (" | ".join(why) or "its type is not one devmig can describe")
    )


def _judge(ctx: Context, devices: list[_Device], profiles: list[Profile]) -> None:
    """Every device's reasons, before anything is changed: no descriptor, or no device here that takes it."""
    claimed = ctx.state.claimed()  # every prepare record read once, not once a device
    mdevs = {m.uuid: m for m in Inventory.scan(ctx.host.sysfs, parts=("mdevs",)).mdevs}
    for device in devices:
        if device.descriptor is None:
            continue
        ranking = rank_candidates(device.descriptor, ctx.host, profiles, claimed)
        named = _named_mdev(ctx, mdevs, device.hostdev)
        if named is not None:
            _judge_named(device, named, ranking)
        elif ranking.best is None:
            reasons = ranking.reasons() or [f"{ctx.host.name} has no device of this kind"]
            free = any(c.verdict is not None and c.verdict.compatible for c in ranking.rejected)
            head = "no free instance of a compatible type" if free else "no compatible device"
            device.problems.append(f"{head}: {' | '.join(reasons)}")


def _host_label(host: Host) -> str:
    """The host as the operator reading virsh's error on the source knows it: by its hostname (devmig's own name of
    this machine, "local", says nothing there), and a lab host by its devmig name too."""
    return host.hostname if host.name == "local" else f"{host.name} ({host.hostname})"


def _refusal(xml: DomainXml, host: Host, devices: list[_Device], prepared: bool) -> HookResult:
    failing = [d for d in devices if d.problems]
    undone = "what was prepared was released" if prepared else "nothing was prepared"
    lines = [
        f"devmig: {_host_label(host)} cannot take {xml.what} ({xml.uuid}): {len(failing)} of {len(devices)} device(s) "
        f"refused; {undone}"
    ]
    lines += [f"  {d.label}: {'; '.join(d.problems)}" for d in failing]
    return HookResult(ExitCode.REFUSED, "", "\n".join(lines) + "\n")


def migrate_begin(ctx: Context, call: Call) -> HookResult:
    xml = _domain(call)
    assert xml.uuid is not None
    metadata = from_domain(xml)
    devices: list[_Device] = []
    for hostdev in xml.hostdevs:
        descriptor = metadata.descriptor(hostdev) if metadata is not None else None
        device = _Device(hostdev, descriptor)
        if descriptor is None and ctx.settings.unannotated == "refuse":
            device.problems.append(
                "no devmig descriptor in the domain's metadata (run `devmig libvirt annotate` on the source first; "
                f'unannotated = "refuse" in {ctx.settings.source}; "pass" leaves such a device to libvirt)'
            )
        devices.append(device)
    if not any(d.descriptor is not None for d in devices) and not any(d.problems for d in devices):
        return HookResult(ExitCode.OK)  # nothing devmig prepares: the XML goes on unchanged
    profiles = load_profiles() if ctx.profiles is None else ctx.profiles
    _judge(ctx, devices, profiles)
    if any(d.problems for d in devices):
        return _refusal(xml, ctx.host, devices, prepared=False)
    managed = [d for d in devices if d.descriptor is not None and not d.adopted]
    state = ctx.state
    with holding(state, xml.uuid):
        _release_stale(ctx, state, xml.uuid)
        claim = Claim(xml.uuid, xml.what, new_ids(len(managed)))
        save(state, claim)  # before the first change: a crash from here on leaves a claim `recover` releases
        made: list[tuple[_Device, Prepared]] = []
        try:
            for device, prepare_id in zip(managed, claim.ids, strict=True):
                assert device.descriptor is not None
                try:
                    made.append(
                        (
                            device,
                            prepare(
                                device.descriptor,
                                ctx.host,
                                uuid=prepare_id,
                                source_id=device.hostdev.address,
                                profiles=profiles,
                                state_dir=ctx.state_dir,
                            ),
                        )
                    )
                except DevmigError as exc:
                    device.problems.append(f"prepare failed: {exc}")
                    for later in managed[managed.index(device) + 1 :]:
                        later.problems.append(f"not prepared: hostdev #{device.hostdev.index}'s prepare failed first")
                    break
            if any(d.problems for d in devices):
                release_claim(ctx.host, state, claim, state_dir=ctx.state_dir)
                return _refusal(xml, ctx.host, devices, prepared=True)
            rewrite_all(xml, {device.hostdev.address: prepared.device for device, prepared in made})
            described = describe_hostdevs(xml, ctx.host)
            set_in_domain(xml, [a.descriptor for a in described if a.descriptor is not None])
            text = xml.text()
        except BaseException:
            release_claim(ctx.host, state, claim, state_dir=ctx.state_dir)
            raise
        claim.complete = True
        save(state, claim)
    return HookResult(ExitCode.OK, text)


def rewrite_all(xml: DomainXml, moves: dict[str, str]) -> None:
    """Each hostdev's source from its old address to its new one, all at once: a new address may be another
    hostdev's old one (two VFs whose places swap between hosts), so each goes first to an address no hostdev has."""
    used = {h.address for h in xml.hostdevs} | set(moves.values())
    parked: dict[str, str] = {}
    for number, (old, new) in enumerate(moves.items()):
        kind = xml.hostdev(old).kind
        spare = _spare(kind, number, used)
        used.add(spare)
        xml.rewrite_source(old, spare)
        parked[spare] = new
    for spare, new in parked.items():
        xml.rewrite_source(spare, new)


def _spare(kind: str, number: int, used: set[str]) -> str:
    """An address of `kind` that no hostdev has and no move goes to (a UUID, or a PCI address no host uses)."""
    while True:
        spare = str(uuidlib.uuid4()) if kind == "mdev" else f"{0xFFFF - number:04x}:ff:1f.7"
        if spare not in used:
            return spare
        number += 1


def _release_stale(ctx: Context, state: HostState, owner: str) -> None:
    """A claim left by an earlier incoming attempt of the same domain that never started here (libvirt retried)."""
    old = load(state, owner)
    if old is not None:
        if old.started:
            raise InputError(
                f"{old.label}: devmig's devices for it are in use here (its claim says it started on this host): "
                "an incoming migration of a domain that runs here is not one devmig prepares"
            )
        release_claim(ctx.host, state, old, state_dir=ctx.state_dir)


# -- the operations after it ----------------------------------------------------------------------------------------


def started(ctx: Context, call: Call) -> HookResult:
    xml = _domain(call)
    assert xml.uuid is not None
    state = ctx.state
    with holding(state, xml.uuid):
        claim = load(state, xml.uuid)
        if claim is not None and not claim.started:
            claim.started = True
            save(state, claim)
    return HookResult(ExitCode.OK)


#: libvirt's shut-off reasons at `release end` after which the domain's devices are let go even though it started:
#: it left by migration, or it never ran here (an incoming migration cancelled after QEMU started)
RELEASE_REASONS: Final = frozenset({"migrated", "failed"})


def _defined(ctx: Context, name: str) -> bool:
    """Whether libvirt keeps a persistent definition of the domain on this host (its file in libvirt's qemu
    configuration directory: read, never asked of libvirt, which waits for the hook). A name that cannot be a
    file name there counts as defined: its devices are kept."""
    if not name or "/" in name or name.startswith("."):
        return True
    return (ctx.definitions / f"{name}.xml").is_file()


def released(ctx: Context, call: Call) -> HookResult:
    """`release end`: the domain's resources are let go here. Its devices go too when it never started here, for
    one of RELEASE_REASONS, or when no persistent definition here could start it again: a transient domain, or an
    incoming one whose QEMU was killed mid-migration (libvirt says `crashed`, and only a completed migration
    defines the domain on the destination). A domain defined here that shut down, crashed or was destroyed keeps
    them: it starts on them again."""
    xml = _domain(call)
    assert xml.uuid is not None
    state = ctx.state
    with holding(state, xml.uuid):
        claim = load(state, xml.uuid)
        if claim is None or (claim.started and call.extra not in RELEASE_REASONS and _defined(ctx, xml.name)):
            return HookResult(ExitCode.OK)
        release_claim(ctx.host, state, claim, state_dir=ctx.state_dir)
    return HookResult(ExitCode.OK)


#: (operation, sub-operation) -> what the hook does; every other call is answered with exit 0 and no output
OPERATIONS: Final[dict[tuple[str, str], Callable[[Context, Call], HookResult]]] = {
    ("migrate", "begin"): migrate_begin,
    ("started", "begin"): started,
    ("release", "end"): released,
}


#: the operations that concern only a domain devmig prepared devices for (a claim): the drop-in skips them while the
#: host holds no claim at all, so a VM's start and stop on a host where devmig prepared nothing never start devmig
CLAIMED_ONLY: Final = frozenset({("started", "begin"), ("release", "end")})


def run(argv: Sequence[str], stdin: str | bytes, ctx: Context) -> HookResult:
    """One hook call: `argv` as libvirt passes it (4 arguments), `stdin` the domain's XML. Never raises for bad
    input or a refusal: the result says it, with the exit code libvirt acts on."""
    try:
        call = Call.of(argv, stdin)
        action = OPERATIONS.get((call.operation, call.sub_operation))
        return HookResult(ExitCode.OK) if action is None else action(ctx, call)
    except InputError as exc:
        return HookResult(ExitCode.BAD_INPUT, "", f"devmig: {exc}\n")
    except DevmigError as exc:
        return HookResult(int(getattr(exc, "exit_code", ExitCode.REFUSED)), "", f"devmig: {exc}\n")
