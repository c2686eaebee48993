"""The plan of parameters: what the destination writes to each `migration/<param>`, once each.

This is the RFC v3 algorithm as corrected in review: rather than writing every off_value and then the source's
values (two writes, which can lose resources from a pre-configured pool), each parameter is written once.
"""

from __future__ import annotations

from collections.abc import Mapping

from devmig.model.descriptor import TypeCapability
from devmig.model.params import ParamSpec, ParamValue
from devmig.model.verdict import Verdict


def write_plan(params: Mapping[str, ParamSpec], source: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    """The source's value, or the destination's off_value when the source does not list it (caller checked)."""
    plan: dict[str, ParamValue] = {}
    for name, spec in params.items():
        value = source.get(name, spec.off_value)
        assert value is not None, f"parameter {name} cannot be switched off: check() should have refused"
        plan[name] = value
    return plan


def candidate_rank(verdict: Verdict, capability: TypeCapability) -> tuple[int, int, int, int, int]:
    """Sort key of destination types for one source, best first: compatible before not, identical first, a type
    with a free instance first, fewer findings, more free instances (as `devmig plan` will rank them)."""
    free = capability.available_instances
    return (
        0 if verdict.compatible else 1,
        0 if verdict.level == "identical" else 1,
        0 if free is None or free > 0 else 1,
        len(verdict.errors) * 100 + len(verdict.warnings),
        -(free or 0),
    )
