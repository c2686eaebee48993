"""Migration parameters: their specification, their values, and sets of allowed values.

The format is Stefan Hajnoczi's VFIO Migration RFC v3: a parameter has a `type` (bool, int or str), an
`init_value`, an optional `off_value` (absent when it cannot be switched off), optional `allowed_values` (absent
means any value of the type; for int, items may be inclusive ranges "lo-hi") and an optional `description`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

ParamType = Literal["bool", "int", "str"]
#: A parameter value as it appears in JSON. Strict: "1" is not an int and true is not an int.
ParamValue = StrictBool | StrictInt | StrictStr

#: Names: UTF-8 without '=', '/' or white space (RFC v3), and non-empty.
PARAM_NAME_PATTERN = r"^[^=/\s]+$"
ParamName = Annotated[str, Field(pattern=PARAM_NAME_PATTERN)]

_RANGE_RE = re.compile(r"^(-?[0-9]+)-(-?[0-9]+)$")

_PY_TYPES: dict[ParamType, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "str": (str,)}


def param_type_name(value: object) -> str:
    """The parameter type name of a Python value, as the format spells it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def has_type(ptype: ParamType, value: object) -> bool:
    """True when `value` is of the parameter type (a bool is not an int here)."""
    return param_type_name(value) == ptype and isinstance(value, _PY_TYPES[ptype])


def check_value_text(value: object) -> None:
    """Values are written to sysfs one per file: a str value may not hold a newline (RFC v3)."""
    if isinstance(value, str) and ("\n" in value or "\x00" in value):
        raise ValueError(f"a parameter value may not contain a newline or NUL, found {value!r}")


def param_text(value: object) -> str:
    """The text written to a `migration/<param>` attribute: 1/0 for a bool (what kstrtobool reads), else str()."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


#: what the kernel's kstrtobool reads, as devmig reads a bool parameter's text
_TRUTH = {
    "1": True,
    "y": True,
    "yes": True,
    "on": True,
    "true": True,
    "0": False,
    "n": False,
    "no": False,
    "off": False,
    "false": False,
}


def value_from_text(ptype: ParamType, text: str) -> ParamValue:
    """A `migration/<param>` attribute's text (as read from sysfs, or as mdevctl writes it) as a value of the
    parameter's type; ValueError says what was expected."""
    value = text.strip()
    if ptype == "int":
        try:
            return int(value, 10)
        except ValueError:
            raise ValueError(f"expected an integer, found {value[:40]!r}") from None
    if ptype == "bool":
        if value.lower() not in _TRUTH:
            raise ValueError(f"expected a boolean (1/0, Y/N, on/off, true/false), found {value[:40]!r}")
        return _TRUTH[value.lower()]
    return text.removesuffix("\n")


@dataclass(frozen=True, order=True, slots=True)
class IntRange:
    """An inclusive integer range, written "lo-hi" in allowed_values (a single value is written as an int)."""

    lo: int
    hi: int

    @classmethod
    def parse(cls, item: int | str) -> IntRange:
        if isinstance(item, int) and not isinstance(item, bool):
            return cls(item, item)
        if isinstance(item, str):
            match = _RANGE_RE.fullmatch(item)
            if match is not None:
                lo, hi = int(match[1]), int(match[2])
                if lo > hi:
                    raise ValueError(f"range {item!r} is empty: its low end is above its high end")
                return cls(lo, hi)
        raise ValueError(f"expected an int or an inclusive range 'lo-hi' of ints, found {item!r}")

    def to_item(self) -> int | str:
        return self.lo if self.lo == self.hi else f"{self.lo}-{self.hi}"

    def __str__(self) -> str:
        return str(self.to_item())

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.lo <= value <= self.hi


def normalize_ranges(ranges: Iterable[IntRange]) -> tuple[IntRange, ...]:
    """Sort and merge overlapping or adjacent ranges."""
    merged: list[IntRange] = []
    for rng in sorted(ranges):
        if merged and rng.lo <= merged[-1].hi + 1:
            last = merged[-1]
            merged[-1] = IntRange(last.lo, max(last.hi, rng.hi))
        else:
            merged.append(rng)
    return tuple(merged)


def _intersect_ranges(a: tuple[IntRange, ...], b: tuple[IntRange, ...]) -> tuple[IntRange, ...]:
    out: list[IntRange] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].lo, b[j].lo), min(a[i].hi, b[j].hi)
        if lo <= hi:
            out.append(IntRange(lo, hi))
        if a[i].hi < b[j].hi:
            i += 1
        else:
            j += 1
    return tuple(out)


def _remove_int(ranges: tuple[IntRange, ...], value: int) -> tuple[IntRange, ...]:
    out: list[IntRange] = []
    for rng in ranges:
        if value not in rng:
            out.append(rng)
            continue
        if rng.lo < value:
            out.append(IntRange(rng.lo, value - 1))
        if value < rng.hi:
            out.append(IntRange(value + 1, rng.hi))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ValueSet:
    """The values of one type that a parameter accepts.

    `include` is None for "any value of the type" (only for int and str: bool sets are always finite);
    `exclude` holds values taken out of an unbounded set. Finite sets hold ints as merged ranges.
    """

    ptype: ParamType
    include: tuple[IntRange, ...] | frozenset[bool | str] | None
    exclude: frozenset[ParamValue] = frozenset()

    @classmethod
    def of(cls, ptype: ParamType, allowed: list[ParamValue] | None) -> ValueSet:
        if allowed is None:
            if ptype == "bool":
                return cls(ptype, frozenset({True, False}))
            return cls(ptype, None)
        if ptype == "int":
            return cls(ptype, normalize_ranges(IntRange.parse(item) for item in allowed))
        return cls(ptype, frozenset(allowed))  # type: ignore[arg-type]

    def __contains__(self, value: object) -> bool:
        if not has_type(self.ptype, value) or value in self.exclude:
            return False
        if self.include is None:
            return True
        if isinstance(self.include, tuple):
            return any(value in rng for rng in self.include)
        return value in self.include

    @property
    def is_empty(self) -> bool:
        return self.include is not None and len(self.include) == 0

    def intersect(self, other: ValueSet) -> ValueSet:
        if other.ptype != self.ptype:
            return ValueSet(self.ptype, () if self.ptype == "int" else frozenset())
        include: tuple[IntRange, ...] | frozenset[bool | str] | None
        if self.include is None:
            include = other.include
        elif other.include is None:
            include = self.include
        elif isinstance(self.include, tuple) and isinstance(other.include, tuple):
            include = _intersect_ranges(self.include, other.include)
        else:
            assert isinstance(self.include, frozenset) and isinstance(other.include, frozenset)
            include = self.include & other.include
        return ValueSet(self.ptype, include, self.exclude | other.exclude)._settle()

    def without(self, values: Iterable[ParamValue]) -> ValueSet:
        return ValueSet(self.ptype, self.include, self.exclude | frozenset(values))._settle()

    def _settle(self) -> ValueSet:
        """Apply exclusions to a finite set, so only unbounded sets keep an explicit exclude list."""
        if self.include is None or not self.exclude:
            return self
        include = self.include
        if isinstance(include, tuple):
            for value in self.exclude:
                if isinstance(value, int) and not isinstance(value, bool):
                    include = _remove_int(include, value)
        else:
            include = include - self.exclude
        return ValueSet(self.ptype, include)

    def allowed_values(self) -> list[ParamValue] | None:
        """The set in the format's `allowed_values` shape (None: any value, less `excluded_values()`)."""
        if self.include is None:
            return None
        if isinstance(self.include, tuple):
            return [rng.to_item() for rng in self.include]
        return sorted(self.include, key=lambda v: (param_type_name(v), v))

    def excluded_values(self) -> list[ParamValue]:
        return sorted(self.exclude, key=lambda v: (param_type_name(v), v))

    def sample(self) -> ParamValue | None:
        """One member of the set, or None when it is empty."""
        if self.include is None:
            candidates: Iterable[ParamValue] = (
                range(0, len(self.exclude) + 1)
                if self.ptype == "int"
                else (f"value{i}" for i in range(len(self.exclude) + 1))
            )
            return next(v for v in candidates if v not in self.exclude)
        if isinstance(self.include, tuple):
            return self.include[0].lo if self.include else None
        return min(self.include, key=lambda v: (param_type_name(v), v)) if self.include else None


_JSON_TYPES: dict[ParamType, dict[str, Any]] = {
    "bool": {"type": "boolean"},
    "int": {"type": "integer"},
    "str": {"type": "string", "pattern": "^[^\\n\\x00]*$"},
}
_INT_OR_RANGE = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": _RANGE_RE.pattern}]}


def _typed_values_schema(schema: dict[str, Any]) -> None:
    """In JSON Schema too, the values of a parameter follow its declared type."""
    schema["allOf"] = [
        {
            "if": {"properties": {"type": {"const": ptype}}},
            "then": {
                "properties": {
                    "init_value": json_type,
                    "off_value": {"anyOf": [json_type, {"type": "null"}]},
                    "allowed_values": {
                        "type": "array",
                        "items": _INT_OR_RANGE if ptype == "int" else json_type,
                    },
                }
            },
        }
        for ptype, json_type in _JSON_TYPES.items()
    ]


class ParamSpec(BaseModel):
    """One parameter of a device model in a destination capability (RFC v3 fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_typed_values_schema)

    type: ParamType
    init_value: ParamValue = Field(description="the value the parameter has when the device is created")
    off_value: ParamValue | None = Field(
        default=None, description="the value that disables the parameter; absent when it cannot be disabled"
    )
    allowed_values: list[ParamValue] | None = Field(
        default=None,
        description="accepted values; absent means any value of the type; int items may be ranges 'lo-hi'",
    )
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for field in ("init_value", "off_value"):
            value = getattr(self, field)
            if value is None:
                continue
            if not has_type(self.type, value):
                raise ValueError(f"{field} must be of type {self.type}, found {param_type_name(value)} {value!r}")
            check_value_text(value)
        for item in self.allowed_values or []:
            if self.type == "int":
                if isinstance(item, bool):
                    raise ValueError(f"allowed_values of an int parameter: expected an int or 'lo-hi', found {item!r}")
                IntRange.parse(item)
            elif not has_type(self.type, item):
                raise ValueError(f"allowed_values of a {self.type} parameter: found {param_type_name(item)} {item!r}")
            else:
                check_value_text(item)
        allowed = self.value_set()
        if self.init_value not in allowed:
            raise ValueError(f"init_value {self.init_value!r} is not among the allowed_values")
        if self.off_value is not None and self.off_value not in allowed:
            # The destination writes off_value when the source does not list the parameter: it must be writable.
            raise ValueError(f"off_value {self.off_value!r} is not among the allowed_values")
        return self

    def value_set(self) -> ValueSet:
        return ValueSet.of(self.type, self.allowed_values)

    def allows(self, value: object) -> bool:
        return value in self.value_set()

    @property
    def can_be_off(self) -> bool:
        return self.off_value is not None
