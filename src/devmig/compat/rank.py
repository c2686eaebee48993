"""The order of destination candidates for one source (`devmig plan`, `devmig place`): a sort key, best first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.params import ParamValue
from devmig.model.verdict import Verdict


class Rank(NamedTuple):
    """Sort key of destination candidates for one source, best first (`devmig plan`): compatible ones with a free
    instance first; then the same version and model; then fewer changes (parameter writes that move a value away
    from the destination's init_value, and a driver binding); then the closer minor and bugfix; then more free
    instances."""

    unusable: int
    not_identical: int
    changes: int
    minor_distance: int
    bugfix_distance: int
    fewer_free: int


def parameter_changes(capability: TypeCapability, plan: Mapping[str, ParamValue] | None) -> int:
    """How many planned writes set a value other than the one a new device starts with."""
    if not plan:
        return 0
    specs = capability.param_specs()
    return sum(1 for name, value in plan.items() if name not in specs or specs[name].init_value != value)


def candidate_rank(
    source: DeviceDescriptor, capability: TypeCapability, verdict: Verdict, *, binding_changes: int = 0
) -> Rank:
    free = capability.available_instances
    has_room = free is None or free > 0
    same_model = (source.model or None) == next(iter(capability.models), None)
    src, dst = source.software_version, capability.software_version
    return Rank(
        unusable=0 if verdict.compatible and has_room else 1,
        not_identical=0 if src == dst and same_model else 1,
        changes=parameter_changes(capability, verdict.plan) + binding_changes,
        minor_distance=abs(dst.minor - src.minor) + 100 * abs(dst.major - src.major),
        bugfix_distance=abs(dst.bugfix - src.bugfix),
        fewer_free=-(free or 0),
    )
