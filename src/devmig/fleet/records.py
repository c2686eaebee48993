"""What the fleet store holds of a host, as plain data: its types (each a capability with free instances) and its
devices. `devmig inventory publish` makes a HostRecord from a host (devmig.fleet.collect); the store keeps it;
placement, claims and the exports read it back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from devmig.model.descriptor import DeviceDescriptor, TypeCapability

#: what a published device is (DeviceRecord.kind)
DeviceKind = Literal["mdev", "pci", "ccw", "vdpa"]


@dataclass(frozen=True)
class TypeRecord:
    """One type a host can create: an mdev type on a parent, a VFIO PCI function's signature, a vDPA class of a
    management device."""

    #: the parent device (mdev parent, PF, vDPA management device), or the function itself for a PCI type
    parent: str
    #: the capability's `type`
    type_id: str
    capability: TypeCapability
    #: free instances when published (None: unknown)
    available: int | None


@dataclass(frozen=True)
class DeviceRecord:
    """One device that exists on the host (an mdev, a VFIO PCI function, a vDPA device)."""

    kind: DeviceKind
    name: str  # UUID, PCI address, bus id, vDPA device name
    parent: str | None
    type_id: str | None
    #: its source descriptor, when it could be described
    descriptor: DeviceDescriptor | None = None


@dataclass(frozen=True)
class HostRecord:
    name: str
    types: tuple[TypeRecord, ...] = ()
    devices: tuple[DeviceRecord, ...] = ()
    #: the kernel release (/proc/sys/kernel/osrelease), when known
    kernel: str | None = None
    #: seconds since the epoch when the inventory was published (set by the store)
    published: float | None = None
    #: problems met while collecting (types that could not be described, ...)
    warnings: tuple[str, ...] = field(default=())
    #: the last sign of life, a publish or a heartbeat (set by the store; None: none recorded, or not stored)
    last_seen: float | None = None
    #: the inventory's generation: moved on by each publish that changed it (set by the store)
    generation: int | None = None


@dataclass(frozen=True)
class HostSeen:
    name: str
    last_seen: float | None
    generation: int


@dataclass(frozen=True)
class FleetGauges:
    """The store's state as metrics want it (devmig.fleet.metrics), read in one transaction."""

    #: (host, parent, type, free instances less active claims) for each host type whose free count is known
    free: list[tuple[str, str, str, int]]
    hosts: list[HostSeen]
    #: active claims per host (hosts without any are absent)
    claims: dict[str, int]
