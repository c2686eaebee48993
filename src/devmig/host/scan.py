"""The state of one scan: the root it reads and the warnings it collects instead of failing."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

from devmig.host.devices import ScanWarning
from devmig.host.sysfs import Sysfs, SysfsError

T = TypeVar("T")

_HEX_RE = re.compile(r"0x([0-9a-fA-F]+)")


def parse_hex(text: str, digits: int) -> str:
    """ "0x8086" -> "8086" (lowercase, zero-padded), as lspci and the formats spell IDs."""
    match = _HEX_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a hexadecimal value such as 0x{'0' * digits}, found {text[:40]!r}")
    return match[1].lower().zfill(digits)


#: Rust's char::is_whitespace, which mdevctl's trim() uses (Python's strip() also drops \x1c-\x1f): devmig trims
#: attribute text as mdevctl does, so both read a tree the same way.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_ASCII_DIGITS = frozenset("0123456789")
_I32 = range(-(2**31), 2**31)


def trim(text: str) -> str:
    return text.strip(WHITESPACE)


def parse_count(text: str) -> int:
    """A count such as available_instances. The kernel prints "%u"; like mdevctl, a sign is accepted and the value
    must be ASCII digits within a 32-bit signed integer. A negative count is reported by the caller."""
    value = trim(text)
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not digits or not _ASCII_DIGITS.issuperset(digits) or int(value) not in _I32:
        raise ValueError(f"expected a whole number, found {text[:40]!r}")
    return int(value)


def parse_uint(text: str) -> int:
    value = text.strip()
    if not value.isdigit():
        raise ValueError(f"expected a whole number, found {text[:40]!r}")
    return int(value)


def parse_override(text: str) -> str | None:
    # An unset driver_override reads "(null)" (printed from a NULL pointer) or empty.
    return None if text in ("(null)", "") else text


class Scan:
    def __init__(self, root: Sysfs) -> None:
        self.root = root
        self.warnings: list[ScanWarning] = []

    def warn(self, obj: str, path: str, message: str) -> None:
        self.warnings.append(ScanWarning(obj, path, message))

    def attr(self, obj: str, rel: str, parse: Callable[[str], T], *, required: bool = False) -> T | None:
        """An attribute parsed, or None: a missing optional file is silent, anything else becomes a warning."""
        try:
            text = self.root.read_optional(rel)
        except SysfsError as exc:
            self.warn(obj, rel, str(exc).removeprefix(f"{rel}: "))
            return None
        if text is None:
            if required:
                self.warn(obj, rel, f"missing {rel.rsplit('/', 1)[-1]}")
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.warn(obj, rel, f"{rel.rsplit('/', 1)[-1]}: {exc}")
            return None

    def link(self, obj: str, rel: str) -> str | None:
        """The name a link points to (driver, group), None when absent; a broken or escaping link is a warning."""
        try:
            return self.root.link_name(rel)
        except SysfsError as exc:
            self.warn(obj, rel, str(exc).removeprefix(f"{rel}: "))
            return None

    def entries(self, obj: str, rel: str) -> list[str]:
        """A directory's entries; a missing directory is empty, an unreadable one a warning."""
        try:
            return self.root.listdir_optional(rel)
        except SysfsError as exc:
            self.warn(obj, rel, str(exc).removeprefix(f"{rel}: "))
            return []

    def subdirs(self, obj: str, rel: str) -> list[str]:
        """The real subdirectories of a directory (not links, not files: the kernel makes type dirs so)."""
        try:
            return self.root.subdirs(rel)
        except SysfsError as exc:
            self.warn(obj, rel, str(exc).removeprefix(f"{rel}: "))
            return []

    def listed(self, kind: str, rel: str, *, must_exist: bool = False) -> Iterator[tuple[str, str]]:
        """(name, canonical path) of each entry of a bus or class directory, `kind` naming them in warnings."""
        for name in self.entries(f"{kind}s", rel):
            path = self.resolve(f"{kind} {name}", f"{rel}/{name}", must_exist=must_exist)
            if path is not None:
                yield name, path

    def resolve(self, obj: str, rel: str, *, must_exist: bool = False) -> str | None:
        """Where a bus or class link points (a device's canonical path), or None with a warning. A real
        directory in place of the link is its own canonical path."""
        try:
            target = self.root.readlink(rel)
        except SysfsError as exc:
            # EINVAL is "not a link": asked only then, so the usual entry (a link) costs no lstat
            if exc.errno == errno.EINVAL and self.root.isdir(rel):
                return rel
            self.warn(obj, rel, str(exc).removeprefix(f"{rel}: "))
            return None
        if must_exist and not self.root.isdir(target):
            self.warn(obj, rel, f"dangling link to {target}")
            return None
        return target


def group_number(text: str | None) -> int | None:
    # isdigit() alone takes superscripts ("²"), which int() refuses: IOMMU group names are ASCII decimals
    return int(text) if text is not None and text.isascii() and text.isdigit() and len(text) < 20 else None
