"""The story `devmig lab` tells: one running device of a lab's first host, and every other host's answer."""

from __future__ import annotations

from dataclasses import dataclass, field

from devmig.compat import candidate_rank, check
from devmig.errors import InputError
from devmig.host.describe import Describer
from devmig.host.inventory import Inventory
from devmig.host.profile import load_profiles
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.verdict import Verdict
from devmig.sim.lab import Lab


@dataclass
class HostAnswer:
    host: str
    description: str
    capability: TypeCapability | None
    verdict: Verdict | None
    #: why there is no verdict (no type at all), or None
    note: str | None = None


@dataclass
class Tour:
    lab: Lab
    source_host: str
    device: str
    descriptor: DeviceDescriptor
    answers: list[HostAnswer] = field(default_factory=list)

    @property
    def best(self) -> HostAnswer | None:
        usable = [
            a
            for a in self.answers
            if a.verdict is not None
            and a.capability is not None
            and a.verdict.compatible
            and (a.capability.available_instances is None or a.capability.available_instances > 0)
        ]
        return min(usable, key=lambda a: candidate_rank(a.verdict, a.capability)) if usable else None  # type: ignore[arg-type]


def tour(lab: Lab, device: str | None = None) -> Tour:
    """Describe a running device of the lab's first host (or `device`) and ask every other host for its best type."""
    first = next(iter(lab.hosts.values()))
    if not first.running:
        raise InputError(f"lab {lab.name}: host {first.name} runs no device to migrate")
    chosen = device or first.running[0]
    profiles = load_profiles()
    inventory = Inventory.scan(first.kernel.fs)
    descriptor = Describer(inventory, profiles).descriptor(inventory.device(chosen))
    result = Tour(lab=lab, source_host=first.name, device=chosen, descriptor=descriptor)
    for host in list(lab.hosts.values())[1:]:
        caps, _ = Describer(Inventory.scan(host.kernel.fs), profiles).capabilities()
        if not caps:
            result.answers.append(HostAnswer(host.name, host.spec.description, None, None, "no assignable type"))
            continue
        verdicts = [(check(descriptor, cap), cap) for cap in caps]
        verdict, cap = min(verdicts, key=lambda vc: candidate_rank(*vc))
        result.answers.append(HostAnswer(host.name, host.spec.description, cap, verdict))
    return result
