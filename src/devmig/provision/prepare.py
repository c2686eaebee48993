"""`devmig prepare` and `devmig release`: make the destination device for a source, and take it away again.

A prepare takes the best candidate: it creates the mdev (or claims the function, binding it to its driver through
driver_override when needed), writes each migration parameter once (the source's value, or the destination's
off_value), reads each back, and, with `persist`, writes an mdevctl definition. Each change is journaled before it
is made (devmig.provision.journal); any failure (a refused write, a read-back that differs, a signal, an exception)
unwinds the journal, and the next candidate is tried when the host refused this one, as the RFC's destination
algorithm does. A lock per parent keeps two prepares from counting on the same free instance.

Preparing again with the same id (the mdev's UUID) returns the device already made. `release` undoes a prepare from
its record.
"""

from __future__ import annotations

import errno
import time
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devmig.compat import check
from devmig.compat.nvidia import NvmlAnswer
from devmig.errors import DevmigError, IncompatibleError, InputError
from devmig.host.access import Host
from devmig.host.describe import Describer, parse_param_text
from devmig.host.devices import PciFunction
from devmig.host.inventory import Inventory
from devmig.host.mdev import MDEV_DEVICES
from devmig.host.mdevctl import MDEVCTL_CONFIG_DIR, definition
from devmig.host.nvml import ask
from devmig.host.ops import (
    NoCapacityError,
    RefusedError,
    UndoStep,
    bind_pci,
    create_mdev,
    create_vgpu,
    undo_attribute,
    undo_binding,
    undo_create_mdev,
    undo_create_vgpu,
    undo_file,
)
from devmig.host.profile import Profile, load_profiles
from devmig.host.scan import group_number
from devmig.host.sysfs import Sysfs, SysfsError
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.params import ParamValue, param_text
from devmig.provision.candidates import CandidateKind, HostCandidate, rank_candidates
from devmig.provision.journal import HostState, Journal, UnwindError, undo_all
from devmig.provision.locks import LOCK_TIMEOUT, parent_lock
from devmig.signals import signals_raise


@dataclass
class Prepared:
    """A prepared destination device: what `devmig prepare` prints and its record holds."""

    id: str
    host: str
    kind: CandidateKind
    device: str
    parent: str
    type: str
    #: the parameters written, in write order (none when the type fixes them: a profile's types)
    params: dict[str, ParamValue]
    #: the driver the function was bound to (None: no binding change)
    bound: str | None = None
    #: the NVIDIA vGPU type made on the VF (None: none made)
    vgpu: int | None = None
    #: the mdevctl definition written (--persist)
    persisted: str | None = None
    source_id: str | None = None
    #: True when an earlier prepare with this id had made it
    existing: bool = False
    #: why earlier candidates were not taken
    attempts: list[str] = field(default_factory=list)

    def mapping(self) -> dict[str, dict[str, str]]:
        """The source-to-destination map as Nova passes it: target_mdevs for mdevs, pci_dev_map_src_dst for PCI. Empty
        when the source's own id is not known (no --source-id, a descriptor without an address): a caller must not
        read a made-up key as a device."""
        key = "target_mdevs" if self.kind == "mdev" else "pci_dev_map_src_dst"
        return {key: {self.source_id: self.device} if self.source_id else {}}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "kind": self.kind,
            "device": self.device,
            "parent": self.parent,
            "type": self.type,
            "params": self.params,
            "bound": self.bound,
            "vgpu": self.vgpu,
            "persisted": self.persisted,
            "source_id": self.source_id,
            "existing": self.existing,
            "attempts": self.attempts,
            "mapping": self.mapping(),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, existing: bool) -> Prepared:
        return cls(
            id=record["id"],
            host=record["host"],
            kind=record["kind"],
            device=record["device"],
            parent=record["parent"],
            type=record["type"],
            params=dict(record["params"]),
            bound=record.get("bound"),
            vgpu=record.get("vgpu"),
            persisted=record.get("persisted"),
            source_id=record.get("source_id"),
            existing=existing,
        )


@dataclass
class Released:
    id: str
    device: str
    undone: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "device": self.device, "undone": self.undone}


def _source_json(source: DeviceDescriptor) -> dict[str, Any]:
    return source.model_dump(mode="json", exclude_none=True)


class _Attempt:
    """One candidate's prepare, under its parent's lock, with its journal."""

    def __init__(
        self, host: Host, state: HostState, prepare_id: str, source: DeviceDescriptor, profiles: list[Profile]
    ) -> None:
        self.host, self.root, self.state, self.id = host, host.sysfs, state, prepare_id
        self.source, self.profiles = source, profiles

    def run(self, cand: HostCandidate, persist: bool, source_id: str | None, lock_timeout: float) -> Prepared:
        with parent_lock(self.state, cand.parent, lock_timeout):
            journal = Journal(
                self.state,
                self.id,
                {"host": self.host.name, "candidate": cand.label, "source": _source_json(self.source)},
            )
            try:
                prepared = self._mdev(journal, cand, persist) if cand.kind == "mdev" else self._function(journal, cand)
                prepared.source_id = source_id
                record = prepared.to_dict() | {"source": _source_json(self.source), "time": time.time()}
                record.pop("attempts")
                record.pop("existing")
                journal.commit(record)
                return prepared
            except BaseException:
                journal.unwind(self.root)
                raise

    def _mdev(self, journal: Journal, cand: HostCandidate, persist: bool) -> Prepared:
        assert cand.capability is not None and cand.verdict is not None
        journal.record(f"create mdev {self.id} of type {cand.label}", undo_create_mdev(self.id))
        # Under the lock, create_mdev's own look at available_instances sees what other prepares left.
        create_mdev(self.root, cand.parent, cand.type, self.id)
        path = self.root.readlink(f"{MDEV_DEVICES}/{self.id}")
        written = self._write_params(journal, f"mdev {self.id}", path, cand.capability, cand.verdict.plan or {}, False)
        persisted = None
        if persist:
            rel = f"{MDEVCTL_CONFIG_DIR}/{cand.parent}/{self.id}"
            journal.record(f"write the mdevctl definition {rel}", undo_file(self.root, rel))
            attrs = [(f"migration/{name}", param_text(value)) for name, value in written.items()]
            try:
                self.root.write_file(rel, definition(cand.type, attrs))
            except SysfsError as exc:
                raise RefusedError(f"mdev {self.id}: writing its mdevctl definition failed: {exc}") from None
            persisted = f"/{rel}"
        return Prepared(self.id, self.host.name, "mdev", self.id, cand.parent, cand.type, written, persisted=persisted)

    def _function(self, journal: Journal, cand: HostCandidate) -> Prepared:
        assert cand.device is not None
        address = cand.device
        taken = self.state.find(address)
        if taken is not None:
            raise NoCapacityError(f"PCI function {address}: claimed by devmig prepare {taken['id']} meanwhile")
        driver = cand.type.split(":", 1)[0]
        if cand.bind is not None:
            journal.record(f"bind PCI function {address} to {driver}", undo_binding(self.root, address))
            bind_pci(self.root, address, driver)
        if cand.vgpu_type is not None:
            journal.record(
                f"create vGPU type {cand.vgpu_type} on VF {address}", undo_create_vgpu(address, cand.vgpu_type)
            )
            create_vgpu(self.root, address, cand.vgpu_type)
        inv = Inventory.scan(self.root, parts=("pci",))
        fn = inv.device(address)
        assert isinstance(fn, PciFunction)
        if self.host.in_use(address, fn.iommu_group):
            raise NoCapacityError(f"PCI function {address}: opened by a VM meanwhile")
        nvml = self.host.nvml()
        cap = Describer(inv, self.profiles, nvml).function_capability(fn)
        verdict = check(self.source, cap, nvml=NvmlAnswer.of(ask(nvml, self.source, cap)))
        if not verdict.compatible:
            reasons = "; ".join(f"{f.code}: {f.message}" for f in verdict.errors)
            raise IncompatibleError(f"PCI function {address}, once bound to {driver}: {reasons}", verdict)
        written = self._write_params(journal, f"PCI function {address}", fn.path, cap, verdict.plan or {}, True)
        return Prepared(
            self.id, self.host.name, "function", address, cand.parent, cand.type, written, cand.bind, cand.vgpu_type
        )

    def _write_params(
        self,
        journal: Journal,
        what: str,
        path: str,
        cap: TypeCapability,
        plan: Mapping[str, ParamValue],
        undo_each: bool,
    ) -> dict[str, ParamValue]:
        """Each parameter once, in the destination's order, each read back. A new mdev needs no undo per write (its
        removal takes them all); a claimed function gets its old values back."""
        if cap.confidence != "declared":
            # A profile's parameters are fixed by the type (mtty's nr_ports): the driver has no migration/ files,
            # and creating the type was the whole configuration.
            return {}
        specs = cap.param_specs()
        written: dict[str, ParamValue] = {}
        for name, value in plan.items():
            rel = f"{path}/migration/{name}"
            if undo_each:
                journal.record(f"write {name} of {what}", undo_attribute(self.root, rel))
            try:
                self.root.write(rel, param_text(value))
                back = parse_param_text(specs[name], self.root.read(rel), rel)
            except SysfsError as exc:
                error = NoCapacityError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else RefusedError
                raise error(f"{what}: the driver refused {name}={param_text(value)}: {exc}") from None
            if back != value:
                raise RefusedError(f"{what}: {name} reads back {back!r} after writing {value!r}")
            written[name] = value
        return written


def _check_id(uuid: str | None) -> str:
    if uuid is None:
        return str(uuidlib.uuid4())
    try:
        return str(uuidlib.UUID(uuid))
    except ValueError:
        raise InputError(f"prepare id {uuid!r}: expected a UUID such as 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001") from None


def _device_dir(record: Mapping[str, Any]) -> str:
    """Where the recorded device shows in sysfs."""
    return f"{MDEV_DEVICES if record['kind'] == 'mdev' else 'sys/bus/pci/devices'}/{record['device']}"


def _existing(host: Host, record: Mapping[str, Any], source: DeviceDescriptor) -> Prepared:
    if record.get("source") != _source_json(source):
        raise RefusedError(f"prepare {record['id']}: already made on {host.name} for a different source device")
    device = str(record["device"])
    rel = _device_dir(record) if record["kind"] == "mdev" else f"{_device_dir(record)}/driver"
    if not host.sysfs.exists(rel):
        raise RefusedError(
            f"prepare {record['id']}: recorded, but its device {device} is gone from {host.name} (was the host "
            f"restarted?): `devmig release {record['id']}` clears the record"
        )
    return Prepared.from_record(record, existing=True)


def prepare(
    source: DeviceDescriptor,
    host: Host,
    *,
    uuid: str | None = None,
    persist: bool = False,
    source_id: str | None = None,
    profiles: list[Profile] | None = None,
    state_dir: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> Prepared:
    """Prepare the best destination device for `source` on `host`; the host is unchanged when this raises.

    `source_id` names the source device in the mapping; by default the source's own address when its descriptor
    carries one (`devmig describe` writes it), else the placeholder "source"."""
    if source_id is None and source.address is not None:
        source_id = source.address.id
    state = HostState.of(host.key, state_dir)
    prepare_id = _check_id(uuid)
    record = state.record(prepare_id)
    if record is not None:
        return _existing(host, record, source)
    if uuid is not None and host.sysfs.exists(f"{MDEV_DEVICES}/{prepare_id}"):
        raise RefusedError(
            f"mdev {prepare_id} already exists on {host.name} and devmig did not prepare it: choose another UUID"
        )
    profiles = load_profiles() if profiles is None else profiles
    ranking = rank_candidates(source, host, profiles, state.claimed())
    ranking.require()
    attempt = _Attempt(host, state, prepare_id, source, profiles)
    failures: list[tuple[HostCandidate, DevmigError]] = []
    with signals_raise():
        for cand in ranking.candidates:
            try:
                prepared = attempt.run(cand, persist, source_id, lock_timeout)
            except UnwindError:
                raise
            except (RefusedError, IncompatibleError, SysfsError) as exc:
                failures.append((cand, exc))  # the host refused this one: the next may do (RFC v3)
                continue
            prepared.attempts = [f"{c.label}: {e}" for c, e in failures]
            return prepared
    reasons = " | ".join(f"{c.label}: {e}" for c, e in failures)
    if all(isinstance(e, NoCapacityError) for _, e in failures):
        raise NoCapacityError(f"no capacity on {host.name} for the source: {reasons}")
    raise RefusedError(f"no device on {host.name} could be prepared (the host was left as it was): {reasons}")


def _group_of(root: Sysfs, record: Mapping[str, Any]) -> int | None:
    name = root.link_name(f"{_device_dir(record)}/iommu_group")
    return group_number(name)


def release(device: str, host: Host, *, state_dir: str | None = None, lock_timeout: float = LOCK_TIMEOUT) -> Released:
    """Undo the prepare that made `device` (its id, mdev UUID or PCI address)."""
    state = HostState.of(host.key, state_dir)
    record = state.find(device)
    if record is None:
        raise InputError(
            f"{device}: no devmig prepare on {host.name} made it (`devmig mdev remove` removes any mdev, "
            "`devmig pci unbind` unbinds any function)"
        )
    target = str(record["device"])
    if host.in_use(target, _group_of(host.sysfs, record)):
        raise RefusedError(f"{target}: open by a VM on {host.name}; release it after the VM has let it go")
    try:
        steps = [UndoStep.from_json(s) for s in record.get("undo", [])]
    except InputError as exc:
        raise InputError(f"prepare record {state.record_path(record['id'])}: {exc}") from None
    with signals_raise(), parent_lock(state, str(record["parent"]), lock_timeout):
        failures = undo_all(host.sysfs, steps)
        if failures:
            raise UnwindError(
                f"releasing {target}: {'; '.join(failures)}; the record is kept: run `devmig release` again"
            )
        state.record_path(record["id"]).unlink()
    return Released(record["id"], target, [s.describe() for s in reversed(steps)])
