"""Placement's decisions, pure: why a stored type cannot take a source, and how refusals are summarised.

The store narrows in SQL by the identity rules (device API, identity, model or type, major version, minor not
older) and runs the exact check (devmig.compat.check) on the distinct capability documents that are left. For the
types SQL left out, the reason is found by running the same rules on the stored identity columns alone (a document
built without its parameters), so a reason here is always the reason `devmig check` would give first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from devmig.compat import check
from devmig.compat.rank import Rank
from devmig.model.descriptor import Confidence, DeviceDescriptor, ModelSpec, TypeCapability
from devmig.model.verdict import Verdict
from devmig.model.version import SoftwareVersion

#: the identity rules SQL narrows by, in the order `check` reports them
IDENTITY_CODES = ("device-api-mismatch", "api-mismatch", "model-mismatch", "type-mismatch", "major-mismatch")
#: the refusal code of compatible types with no free instance (provision's sentence for it: NO_ROOM_MESSAGE)
NO_ROOM_CODE = "no-free-instance"
#: the refusal code of a type SQL did not hand to the exact check although its identity gives no error: it was
#: published while the placement ran (a statement after the narrowing sees it), so nothing is known against it
NOT_CHECKED_CODE = "not-checked"


@dataclass(frozen=True)
class StoredIdentity:
    """A stored capability's identity columns."""

    device_api: str
    type_id: str
    api: dict[str, str]
    models: tuple[str, ...]
    version: str
    confidence: Confidence


def identity_reason(source: DeviceDescriptor, stored: StoredIdentity) -> tuple[str, str]:
    """The first error `check` gives a type with this identity (its parameters left aside): (code, message); or
    NOT_CHECKED_CODE when the identity gives none, since then the reason SQL left the type out is not known here."""
    skeleton = TypeCapability.model_construct(
        device_api=stored.device_api,
        type=stored.type_id,
        software_version=SoftwareVersion.parse(stored.version),
        api=stored.api,
        models={model: ModelSpec() for model in stored.models},
        available_instances=None,
        confidence=stored.confidence,
    )
    verdict = check(source, skeleton)
    first = next((f for f in verdict.errors if f.code != "param-unknown"), None)
    if first is None:
        what = f"type {stored.type_id} {stored.version} ({stored.device_api})"
        return NOT_CHECKED_CODE, (
            f"{what} was not checked: its identity (device API, api, model or type, version) gives no error, and "
            "its parameters were not compared; it was published while this placement ran (place again to check it)"
        )
    return first.code, first.message


def first_error(verdict: Verdict) -> tuple[str, str]:
    error = verdict.errors[0]
    return error.code, error.message


@dataclass(frozen=True)
class FleetCandidate:
    """One host type that can take the source, best first."""

    host: str
    parent: str
    type_id: str
    capability: TypeCapability
    verdict: Verdict
    rank: Rank
    #: free instances less the active claims; None when the host could not tell
    free: int | None
    #: the host's last sign of life and its inventory's generation, as stored
    last_seen: float | None = None
    generation: int | None = None

    def json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "parent": self.parent,
            "type": self.type_id,
            "level": self.verdict.level,
            "version": str(self.capability.software_version),
            "free": self.free,
            "plan": self.verdict.plan,
            "warnings": [f.code for f in self.verdict.warnings],
            "last_seen": self.last_seen,
            "generation": self.generation,
        }


@dataclass
class RefusalGroup:
    """Types that cannot take the source for one reason: how many, on how many hosts, and an example message."""

    code: str
    message: str
    types: int = 0
    hosts: int = 0

    def json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "types": self.types, "hosts": self.hosts}


@dataclass
class Claim:
    id: str
    host: str
    parent: str
    type_id: str
    expires: float
    holder: str | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "parent": self.parent,
            "type": self.type_id,
            "expires": self.expires,
            "holder": self.holder,
        }


@dataclass
class Placement:
    source: DeviceDescriptor
    candidates: list[FleetCandidate] = field(default_factory=list)
    refused: list[RefusalGroup] = field(default_factory=list)
    #: host types in the store, distinct capability documents checked exactly (after SQL narrowed them)
    host_types: int = 0
    checked: int = 0
    claim: Claim | None = None
    #: the TTL the placement used (None: freshness off)
    stale_after: float | None = None

    def json(self) -> dict[str, Any]:
        return {
            "candidates": [c.json() for c in self.candidates],
            "refused": [r.json() for r in self.refused],
            "host_types": self.host_types,
            "checked": self.checked,
            "claim": self.claim.json() if self.claim else None,
            "stale_after": self.stale_after,
        }


def group(rows: Iterable[tuple[str, str, int, int]]) -> list[RefusalGroup]:
    """(code, message, types, hosts) per capability -> one RefusalGroup per code, most types first. Host counts add up
    per capability, so a host refused for one reason on two capabilities counts twice (the summary says types and
    the hosts they are on, not distinct hosts)."""
    groups: dict[str, RefusalGroup] = {}
    for code, message, types, hosts in rows:
        refusal = groups.setdefault(code, RefusalGroup(code, message))
        refusal.types += types
        refusal.hosts += hosts
    return sorted(groups.values(), key=lambda r: (-r.types, r.code))
