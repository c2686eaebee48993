"""The story `devmig lab` tells: one running device of a lab's first host (a vGPU's mdev or a VF on a variant
driver), every other host's answer (the same plan `devmig plan` makes), a prepare on the best host (the next one
when that host's driver refuses it), the device's state moved there by a migration session while its guest keeps
writing, and everything put back so the lab is left as it was."""

from __future__ import annotations

import random
import tempfile
import threading
from dataclasses import dataclass, field

from devmig.errors import IncompatibleError, InputError
from devmig.host.describe import Describer
from devmig.host.inventory import Inventory
from devmig.host.ops import RefusedError
from devmig.host.profile import load_profiles
from devmig.machine.lab import lab_host
from devmig.migrate.identity import describe_destination, judge_for, source_hello
from devmig.migrate.session import Outcome
from devmig.migrate.transport import migrate_local
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.verdict import Verdict
from devmig.provision import HostCandidate, Prepared, Ranking, UnwindError, prepare, rank_candidates, release
from devmig.provision.candidates import FUNCTION_TYPE
from devmig.sim.lab import Lab, SimHost
from devmig.sim.vfio import SimVfioDevice


@dataclass
class HostAnswer:
    host: str
    description: str
    #: the best candidate, or the closest refused one (fewest reasons) when none fits
    candidate: HostCandidate | None
    #: why there is no candidate at all, or None
    note: str | None = None

    @property
    def capability(self) -> TypeCapability | None:
        return self.candidate.capability if self.candidate else None

    @property
    def verdict(self) -> Verdict | None:
        return self.candidate.verdict if self.candidate else None

    @property
    def usable(self) -> bool:
        return self.candidate is not None and self.candidate.usable


@dataclass
class Tour:
    lab: Lab
    source_host: str
    device: str
    descriptor: DeviceDescriptor
    answers: list[HostAnswer] = field(default_factory=list)
    #: the hosts whose prepare was refused before one succeeded (best first), each with the driver's reason
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: the host the device was prepared on: the best one, or the next when the best refused
    destination: HostAnswer | None = None
    prepared: Prepared | None = None
    #: the source side of the migration to the prepared device
    moved: Outcome | None = None
    #: the destination's state equals the source's, byte for byte, after the migration
    identical: bool = False
    released: bool = False

    @property
    def function(self) -> bool:
        """The device is a PCI function (a VF on a variant driver): its candidates are free functions, not types."""
        return self.descriptor.device_api == "vfio-pci" and FUNCTION_TYPE.fullmatch(self.descriptor.type) is not None

    @property
    def ranked(self) -> list[HostAnswer]:
        """The hosts that can take the device, best first."""
        ranked = [
            (a.candidate.rank, i, a)
            for i, a in enumerate(self.answers)
            if a.usable and a.candidate and a.candidate.rank
        ]
        return [a for _, _, a in sorted(ranked, key=lambda r: r[:2])]

    @property
    def best(self) -> HostAnswer | None:
        ranked = self.ranked
        return ranked[0] if ranked else None


def tour(lab: Lab, device: str | None = None) -> Tour:
    """Describe a running device of the lab's first host (or `device`), plan it on every other host, prepare it on
    the best one that accepts it, move its state there and release it."""
    first = next(iter(lab.hosts.values()))
    if not first.running:
        raise InputError(f"lab {lab.name}: host {first.name} runs no device to migrate")
    chosen = device or first.running[0]
    profiles = load_profiles()
    inventory = Inventory.scan(first.kernel.fs)
    nvml = lab_host(lab, first).nvml()  # the simulated NVML of NVIDIA boards: their ECC and migration metadata
    descriptor = Describer(inventory, profiles, nvml).descriptor(inventory.device(chosen))
    result = Tour(lab=lab, source_host=first.name, device=chosen, descriptor=descriptor)
    hosts = {sim.name: lab_host(lab, sim) for sim in list(lab.hosts.values())[1:]}
    for name, host in hosts.items():
        plan = rank_candidates(descriptor, host, profiles)
        described = [c for c in plan.rejected if c.verdict is not None]
        closest = plan.best or min(described, key=lambda c: len(c.reasons), default=None)
        note = None if closest else _nothing(plan)
        result.answers.append(HostAnswer(name, lab.hosts[name].spec.description, closest, note))
    # The lab's hosts live in this process only: the prepare's journal and record go to a scratch directory.
    with tempfile.TemporaryDirectory(prefix="devmig-lab-") as scratch:
        for answer in result.ranked:
            target = hosts[answer.host]
            try:
                result.prepared = prepare(descriptor, target, source_id=chosen, profiles=profiles, state_dir=scratch)
            except UnwindError:
                raise
            except (RefusedError, IncompatibleError) as exc:
                # The plan cannot see every limit (simgpu's aggregator takes more of the pool than the free count
                # says; the capability document does not tell it), so a refusal moves on, as prepare does within
                # a host.
                result.refused.append((answer.host, str(exc)))
                continue
            result.destination = answer
            _migrate(result, first, target.sim, result.prepared.device)
            release(result.prepared.id, target, state_dir=scratch)
            result.released = True
            break
    return result


def _nothing(plan: Ranking) -> str:
    """Why a host offers no candidate at all: each refused function's reason (a VF open by a VM, one claimed),
    else that it has no device of the kind."""
    if plan.rejected:
        return "; ".join(f"{c.label}: {'; '.join(c.reasons)}" for c in plan.rejected)
    match = FUNCTION_TYPE.fullmatch(plan.source.type) if plan.source.device_api == "vfio-pci" else None
    return f"no PCI function {match['pci_id']}" if match else "no assignable type"


def _migrate(result: Tour, source_host: SimHost, dest_host: SimHost, target: str) -> None:
    """A session from the running device to the prepared one while a guest thread writes to the source; then the
    source is reset to RUNNING, as it was (the lab's story ends where it began)."""
    source, dest = source_host.kernel.vfio_device(result.device), dest_host.kernel.vfio_device(target)
    judge = judge_for(*describe_destination(dest_host.kernel.fs, target))
    identity = source_hello(source_host.kernel.fs, result.device)
    stop = threading.Event()
    guest = threading.Thread(target=_guest, args=(source, stop), daemon=True)
    source.open()
    dest.open()
    guest.start()
    try:
        result.moved, _ = migrate_local(source, dest, identity=identity, judge=judge)
    finally:
        stop.set()
        guest.join()
        result.identical = source.state.digest() == dest.state.digest()
        source.reset()
        source.close()
        dest.close()


def _guest(device: SimVfioDevice, stop: threading.Event) -> None:
    rng = random.Random(0)
    while not stop.wait(0.0005):
        device.guest_tick(rng, 2)
