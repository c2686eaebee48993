"""`check_attributes(capability, attrs)`: can a device of this type be given these `migration/<param>` attribute
texts (an mdevctl definition's attrs, written to the device's sysfs directory in order when it starts)? Pure.

Each attribute is judged as the driver would take it: the parameter must be one the type declares, its text must
read as a value of the parameter's type, and the value must be among the allowed ones. A type devmig knows only from
a profile has no `migration/` attributes at all (its parameters are fixed by the type), so any is refused. Other
attributes (the vendor's own, such as vfio_ap's assign_adapter) are not devmig's to judge and are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from devmig.compat.rules import finding, show
from devmig.model.descriptor import TypeCapability
from devmig.model.params import value_from_text
from devmig.model.verdict import Finding

PREFIX = "migration/"


def migration_attributes(attrs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (name, text) pairs that are `migration/<param>` attributes, in their order."""
    return [(name, text) for name, text in attrs if name.startswith(PREFIX)]


def _allowed(values: list[object] | None) -> str:
    return ", ".join(show(v) if isinstance(v, bool) else str(v) for v in values or [])


def _judge(cap: TypeCapability, name: str, text: str) -> Finding | None:
    param = name.removeprefix(PREFIX)
    specs = cap.param_specs()
    field = f"params.{param}"
    where = f"{name}={text!r}"
    spec = specs.get(param)
    if spec is None:
        known = ", ".join(specs) or "none"
        return finding(
            "param-unknown",
            field,
            f"{where}: type {cap.type} has no parameter {param!r} (its parameters: {known})",
            text,
            list(specs),
        )
    if cap.confidence != "declared":
        # a profile's parameter is fixed by the type: there is no attribute for mdevctl to write it to
        return finding(
            "param-not-writable",
            field,
            f"{where}: the driver of type {cap.type} has no migration/ attributes (devmig knows the type from a "
            f"profile, where {param} is {show(spec.init_value)}): leave the attribute out",
            text,
            spec.init_value,
        )
    try:
        value = value_from_text(spec.type, text)
    except ValueError as exc:
        return finding(
            "param-type-mismatch", field, f"{where}: parameter {param} is {spec.type}: {exc}", text, spec.type
        )
    if not spec.allows(value):
        return finding(
            "param-value-not-allowed",
            field,
            f"{where}: {param}={show(value)} is not allowed for type {cap.type} "
            f"(allowed: {_allowed(list(spec.allowed_values or []))})",
            value,
            spec.allowed_values,
        )
    return None


def check_attributes(cap: TypeCapability, attrs: Iterable[tuple[str, str]]) -> list[Finding]:
    """Every `migration/<param>` attribute of `attrs` the type would refuse, each a finding (an error); empty when
    the type takes them all. No I/O."""
    return [f for name, text in migration_attributes(attrs) if (f := _judge(cap, name, text)) is not None]
