"""Debian package versions compared as dpkg compares them (`dpkg --compare-versions`), without a process per pair:
the lab asks "is the installed QEMU at least 8.0?" on every warm `prepare()`.
"""

from __future__ import annotations

import re

_VERSION_RE = re.compile(r"^(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")


def _order(char: str) -> int:
    """dpkg's weight of one non-digit character: `~` before the end of a part, letters before the other marks."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating runs of non-digits (compared by `_order`) and digits (compared as numbers)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i, j = i + 1, j + 1
        start_a, start_b = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_a:i] or "0"), int(b[start_b:j] or "0")
        if na != nb:
            return -1 if na < nb else 1
    return 0


def split_version(version: str) -> tuple[int, str, str]:
    """(epoch, upstream version, Debian revision) of a Debian version string; ValueError if it is not one."""
    match = _VERSION_RE.match(version.strip())
    if match is None:
        raise ValueError(f"not a Debian package version: {version!r}")
    epoch, upstream, revision = match.groups()
    return int(epoch or 0), upstream, revision or ""


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version `a` sorts before, with or after `b`."""
    ea, ua, ra = split_version(a)
    eb, ub, rb = split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def at_least(version: str | None, minimum: str) -> bool:
    """Whether `version` (None: not installed, not offered) is `minimum` or later."""
    return version is not None and compare_versions(version, minimum) >= 0
