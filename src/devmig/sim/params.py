"""A reference driver's migration parameters, declared, parsed and checked as a kernel driver does it.

A driver's `migration/<param>` store function parses the written text with the kernel's own helpers (kstrtobool,
kstrtoint with base 0, sysfs_streq for strings) and checks the value against its own list; its
`migration_info.json` is a document it writes itself. This module does the same, in the simulator's own code and
on purpose apart from devmig's model and host parsers: the simulator is the oracle devmig is tested against, so a
bug in devmig's parsing or in its allowed-value sets must not be shared by the driver that judges it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from devmig.sim.vfio import ParamValue

Kind = Literal["bool", "int", "str"]
#: an allowed value: an int, an inclusive (lo, hi) range of ints, or a string
Allowed = int | tuple[int, int] | str

S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
_HEX = "0123456789abcdefABCDEF"


def kstrtobool(text: str) -> bool:
    """lib/kstrtox.c: only the first one or two characters count; anything else is EINVAL (ValueError)."""
    first, second = text[:1], text[1:2]
    if first in ("y", "Y", "t", "T", "1"):
        return True
    if first in ("n", "N", "f", "F", "0"):
        return False
    if first in ("o", "O"):
        if second in ("n", "N"):
            return True
        if second in ("f", "F"):
            return False
    raise ValueError(f"kstrtobool: {text!r}")


def kstrtoint(text: str) -> int:
    """kstrtoint(s, 0, &v): an optional sign, a 0x (hex) or 0 (octal) prefix, ASCII digits, one trailing newline;
    no spaces. Out of the s32 range is ERANGE, which a store function returns as is (OverflowError here)."""
    body = text[:-1] if text.endswith("\n") else text
    negative = body.startswith("-")
    if body[:1] in ("+", "-"):
        body = body[1:]
    if body[:2].lower() == "0x" and body[2:3] and body[2] in _HEX:
        base, digits = 16, body[2:]
    elif body.startswith("0"):
        base, digits = 8, body
    else:
        base, digits = 10, body
    alphabet = {8: "01234567", 10: "0123456789", 16: _HEX}[base]
    if not digits or any(c not in alphabet for c in digits):
        raise ValueError(f"kstrtoint: {text!r}")
    value = int(digits, base) * (-1 if negative else 1)
    if not S32_MIN <= value <= S32_MAX:
        raise OverflowError(f"kstrtoint: {text!r} is out of range")
    return value


def sysfs_text(text: str) -> str:
    """What sysfs_streq compares: the text without one trailing newline."""
    return text[:-1] if text.endswith("\n") else text


@dataclass(frozen=True)
class DriverParam:
    kind: Kind
    init: ParamValue
    #: the value that switches the feature off; None when it cannot be switched off
    off: ParamValue | None = None
    #: the values the store function accepts; None accepts any value of the kind
    allowed: tuple[Allowed, ...] | None = None
    description: str | None = None

    def parse(self, text: str) -> ParamValue:
        """The written text as the store function reads it (ValueError: EINVAL; OverflowError: ERANGE)."""
        if self.kind == "bool":
            return kstrtobool(text)
        if self.kind == "int":
            return kstrtoint(text)
        return sysfs_text(text)

    def accepts(self, value: ParamValue) -> bool:
        if self.allowed is None:
            return True
        for item in self.allowed:
            if isinstance(item, tuple):
                if type(value) is int and item[0] <= value <= item[1]:
                    return True
            elif type(item) is type(value) and item == value:
                return True
        return False

    def show(self, value: ParamValue) -> str:
        """The show function's text: sysfs_emit("%d\\n") for a bool or an int, "%s\\n" for a string."""
        return f"{int(value)}\n" if isinstance(value, bool) else f"{value}\n"

    def document(self) -> dict[str, Any]:
        """This parameter's entry of migration_info.json (the interface's field names)."""
        entry: dict[str, Any] = {"type": self.kind, "init_value": self.init}
        if self.off is not None:
            entry["off_value"] = self.off
        if self.allowed is not None:
            entry["allowed_values"] = [f"{a[0]}-{a[1]}" if isinstance(a, tuple) else a for a in self.allowed]
        if self.description is not None:
            entry["description"] = self.description
        return entry


@dataclass(frozen=True)
class DriverCapability:
    """What a driver says about one of its types in `migration_info.json`: one model and its parameters."""

    device_api: str
    type: str
    software_version: str
    api: dict[str, str]
    model: str
    params: dict[str, DriverParam]

    def document(self) -> str:
        return json.dumps(
            {
                "device_api": self.device_api,
                "type": self.type,
                "software_version": self.software_version,
                "api": self.api,
                "models": {self.model: {"params": {n: p.document() for n, p in self.params.items()}}},
            },
            separators=(",", ":"),
        )
