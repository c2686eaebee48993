"""The plan of parameters: what the destination writes to each `migration/<param>`, once each.

This is the RFC v3 algorithm as corrected in review: rather than writing every off_value and then the source's
values (two writes, which can lose resources from a pre-configured pool), each parameter is written once.
"""

from __future__ import annotations

from collections.abc import Mapping

from devmig.model.params import ParamSpec, ParamValue


def write_plan(params: Mapping[str, ParamSpec], source: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    """The source's value, or the destination's off_value when the source does not list it (caller checked)."""
    plan: dict[str, ParamValue] = {}
    for name, spec in params.items():
        value = source.get(name, spec.off_value)
        assert value is not None, f"parameter {name} cannot be switched off: check() should have refused"
        plan[name] = value
    return plan
