"""The candidates on one destination host (`devmig plan`): which device would take the source, and why not the
others.

The candidates of a mediated device are the host's mdev types (one per parent: two GPUs are two candidates); those
of a PCI function (a VF on a variant driver, type `<driver>:<vendor>:<device>`) are the host's functions with the
same PCI identity that are free: not open by a VM, not claimed by an earlier prepare, and either unbound or on a
VFIO driver (a function on a host driver, such as a VF that carries the host's own traffic, is never taken).

Every candidate gets the check's verdict. An unbound function shows its type only once bound, so its capability is
taken from a sibling on the same driver when there is one (`inferred_from`), else from a profile, else it is
unknown (no verdict; ranked last); the prepare checks again after binding. Candidates that fail are kept with
their reasons; the others are ranked (devmig.compat.rank.Rank).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from devmig.compat import Rank, candidate_rank, check
from devmig.compat.nvidia import NvmlAnswer
from devmig.errors import DevmigError, IncompatibleError
from devmig.host.access import Host
from devmig.host.describe import Describer
from devmig.host.devices import MdevType, PciFunction, driver_key
from devmig.host.inventory import Inventory
from devmig.host.nvml import Nvml, ask
from devmig.host.ops import NoCapacityError
from devmig.host.profile import Profile
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.verdict import Verdict

#: A PCI function's type, as devmig describes it: "<driver>:<vendor>:<device>".
FUNCTION_TYPE = re.compile(r"^(?P<driver>[A-Za-z0-9_.-]+):(?P<pci_id>[0-9a-f]{4}:[0-9a-f]{4})$")

CandidateKind = Literal["mdev", "function"]
#: the reason a full mdev type is rejected with (a sentence; the fleet's code for it is fleet.place.NO_ROOM_CODE)
NO_ROOM_MESSAGE = "no free instance (available_instances is 0)"


@dataclass
class HostCandidate:
    """One device of the host that might take the source: an mdev type on a parent, or a PCI function."""

    kind: CandidateKind
    #: the mdev parent, or the physical function of a VF (its own address for a function without one)
    parent: str
    type: str
    #: the function's address (None for an mdev, which does not exist yet)
    device: str | None = None
    #: the driver the function must be bound to first (None: no binding change)
    bind: str | None = None
    capability: TypeCapability | None = None
    #: the sibling function whose declared capability stands for this unbound one
    inferred_from: str | None = None
    #: the NVIDIA vGPU type the prepare makes on this VF (None: none to make; the VF carries it already)
    vgpu_type: int | None = None
    verdict: Verdict | None = None
    free: int | None = None
    reasons: list[str] = field(default_factory=list)
    rank: Rank | None = None

    @property
    def usable(self) -> bool:
        return not self.reasons

    @property
    def label(self) -> str:
        return f"{self.parent}/{self.type}" if self.kind == "mdev" else f"{self.device} ({self.type})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "parent": self.parent,
            "type": self.type,
            "device": self.device,
            "bind": self.bind,
            "software_version": str(self.capability.software_version) if self.capability else None,
            "confidence": self.capability.confidence if self.capability else None,
            "inferred_from": self.inferred_from,
            "create_vgpu": self.vgpu_type,
            "free": self.free,
            "level": self.verdict.level if self.verdict else None,
            "plan": self.verdict.plan if self.verdict else None,
            "findings": [f.model_dump(mode="json") for f in self.verdict.findings] if self.verdict else [],
            "reasons": self.reasons,
            "rank": self.rank._asdict() if self.rank else None,
        }


@dataclass
class Ranking:
    """Every candidate of one host for the source: the usable ones ranked, the others with their reasons."""

    host: str
    source: DeviceDescriptor
    #: usable candidates, best first
    candidates: list[HostCandidate]
    rejected: list[HostCandidate]
    problems: list[str] = field(default_factory=list)

    @property
    def best(self) -> HostCandidate | None:
        return self.candidates[0] if self.candidates else None

    def reasons(self) -> list[str]:
        return [f"{c.label}: {'; '.join(c.reasons)}" for c in self.rejected] + self.problems

    def require(self) -> HostCandidate:
        """The best candidate, or IncompatibleError with every reason."""
        if self.best is None:
            found = self.reasons() or ["it has no device of this kind"]
            if any(c.verdict is not None and c.verdict.compatible for c in self.rejected):
                raise NoCapacityError(f"no capacity on {self.host} for the source: {' | '.join(found)}")
            raise IncompatibleError(f"no device on {self.host} can take the source: {' | '.join(found)}")
        return self.best

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "source": self.source.model_dump(mode="json", exclude_none=True),
            "candidates": [c.to_dict() for c in self.candidates],
            "rejected": [c.to_dict() for c in self.rejected],
            "problems": self.problems,
        }


def _judge(source: DeviceDescriptor, cand: HostCandidate, nvml: Nvml | None = None) -> None:
    if cand.capability is None:
        return
    cand.verdict = check(source, cand.capability, nvml=NvmlAnswer.of(ask(nvml, source, cand.capability)))
    cand.reasons += [f"{f.code}: {f.message}" for f in cand.verdict.errors]


def _mdev_candidate(source: DeviceDescriptor, describer: Describer, mtype: MdevType) -> HostCandidate:
    cand = HostCandidate("mdev", mtype.parent, mtype.id, free=mtype.available_instances)
    try:
        cand.capability = describer.type_capability(mtype)
    except DevmigError as exc:
        cand.reasons.append(f"cannot be described: {exc}")
        return cand
    _judge(source, cand)
    if mtype.available_instances == 0:
        cand.reasons.append(NO_ROOM_MESSAGE)
    return cand


def _unavailable(host: Host, fn: PciFunction, claimed: dict[str, str]) -> str | None:
    """Why a function of the right identity cannot be offered, or None."""
    if fn.address in claimed:
        return f"claimed by devmig prepare {claimed[fn.address]}"
    if fn.driver is not None and not fn.vfio:
        return f"bound to the host driver {fn.driver} (in use by the host; unbind it to offer it)"
    if host.in_use(fn.address, fn.iommu_group):
        return "open by a VM (its VFIO group is busy)"
    return None


def _function_candidate(
    source: DeviceDescriptor,
    describer: Describer,
    fn: PciFunction,
    driver: str,
    sibling: PciFunction | None,
) -> HostCandidate:
    cand = HostCandidate("function", fn.physfn or fn.address, f"{driver}:{fn.pci_id}", device=fn.address, free=1)
    if fn.driver != driver:
        cand.bind = driver
    try:
        if cand.bind and sibling is not None:
            cand.capability = describer.function_capability(sibling)
            cand.inferred_from = sibling.address
        else:
            cand.capability = describer.function_capability(replace(fn, driver=driver))
    except DevmigError as exc:
        cand.reasons.append(f"cannot be described: {exc}")
        return cand
    if cand.bind and cand.capability.confidence == "unverified":
        # Nothing tells its type before the driver declares it: the prepare binds it and checks then.
        cand.capability = None
    _judge(source, cand)
    return cand


def _function_candidates(
    source: DeviceDescriptor,
    host: Host,
    inv: Inventory,
    describer: Describer,
    driver: str,
    pci_id: str,
    claimed: dict[str, str],
) -> list[HostCandidate]:
    same = [fn for fn in inv.pci if fn.pci_id == pci_id]
    sibling = next((fn for fn in same if driver_key(fn.driver or "") == driver_key(driver)), None)
    driver = sibling.driver if sibling is not None and sibling.driver else driver  # this host's spelling
    out = []
    for fn in same:
        reason = _unavailable(host, fn, claimed)
        if reason is None:
            out.append(_function_candidate(source, describer, fn, driver, sibling))
        else:
            out.append(HostCandidate("function", fn.physfn or fn.address, f"{driver}:{pci_id}", fn.address, free=0))
            out[-1].reasons.append(reason)
    return out


def _vgpu_candidates(
    source: DeviceDescriptor, host: Host, inv: Inventory, describer: Describer, claimed: dict[str, str]
) -> list[HostCandidate]:
    """NVIDIA SR-IOV vGPU: the VFs that carry the source's type and are free, and those that can be made it (a VF
    that cannot, now, is kept with the reason: the board is full or holds types of another size)."""
    digits = source.type.removeprefix("nvidia-")
    number = int(digits) if digits.isascii() and digits.isdigit() else -1
    nvml = host.nvml()
    out = []
    for fn in inv.pci:
        if fn.vgpu is None or fn.vgpu.current not in (0, number):
            continue
        make = None if fn.vgpu.current else number
        cand = HostCandidate("function", fn.physfn or fn.address, source.type, fn.address, free=1, vgpu_type=make)
        out.append(cand)
        if fn.address in claimed:
            cand.reasons.append(f"claimed by devmig prepare {claimed[fn.address]}")
        elif host.in_use(fn.address, fn.iommu_group):
            cand.reasons.append("open by a VM (its VFIO device is busy)")
        if cand.reasons:
            cand.free = 0
            continue
        room = make is None or number in fn.vgpu.creatable
        try:
            cand.capability = describer.vgpu_capability(fn, number, free=1 if room else 0)
        except DevmigError as exc:
            cand.reasons.append(f"cannot be described: {exc}")
            continue
        _judge(source, cand, nvml)
        if not room:
            cand.free = 0
            listed = ", ".join(str(t) for t in fn.vgpu.creatable) or "none: the board is full"
            cand.reasons.append(f"vGPU type {number} is not creatable on this VF now (creatable: {listed})")
    return out


#: The rank of a function whose type is known only once bound: after every candidate whose type is known.
UNKNOWN_RANK = Rank(unusable=0, not_identical=1, changes=1_000, minor_distance=0, bugfix_distance=0, fewer_free=-1)


def rank_candidates(
    source: DeviceDescriptor, host: Host, profiles: list[Profile], claimed: dict[str, str] | None = None
) -> Ranking:
    """Every candidate on `host` for `source`, judged and ranked; `claimed` maps functions to their prepare."""
    inv = Inventory.scan(host.sysfs)
    describer = Describer(inv, profiles, host.nvml())
    match = FUNCTION_TYPE.fullmatch(source.type) if source.device_api == "vfio-pci" else None
    if source.api.get("vgpu_mode") == "sriov":
        found = _vgpu_candidates(source, host, inv, describer, claimed or {})
    elif match is not None:
        found = _function_candidates(source, host, inv, describer, match["driver"], match["pci_id"], claimed or {})
    else:
        found = [_mdev_candidate(source, describer, mtype) for mtype in inv.types()]
    usable = [c for c in found if c.usable]
    for cand in usable:
        if cand.capability is None or cand.verdict is None:
            cand.rank = UNKNOWN_RANK
            continue
        changes = 1 if cand.bind or cand.vgpu_type else 0
        cand.rank = candidate_rank(source, cand.capability, cand.verdict, binding_changes=changes)
    usable.sort(key=lambda c: (c.rank, c.parent, c.type, c.device or ""))
    problems = [str(w) for w in inv.warnings]
    return Ranking(host.name, source, usable, [c for c in found if not c.usable], problems)
