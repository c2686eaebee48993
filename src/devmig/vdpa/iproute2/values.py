"""iproute2's value parsers: lib/utils.c's (strtoul's leniency, get_u16/u32/u64, ll_addr_a2n's MAC addresses) and
the ones `vdpa_argv_parse` applies to each keyword's value. A value iproute2 refuses raises `Refused` with what
iproute2 prints (maybe nothing) and devmig's own line."""

from __future__ import annotations

from collections.abc import Callable

from devmig.vdpa.family import U64_MAX, format_mac
from devmig.vdpa.iproute2.outcome import Refused

_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def strtoul(text: str, base: int) -> tuple[int | None, str]:
    """C's strtoul(3) on a 64-bit host: (value, the unparsed rest); value None when no digit was read (the rest is
    then all of `text`), U64_MAX + 1 for an overflow (ERANGE). Leading white space and a sign are accepted (a
    negative number wraps around, as in C); base 16 takes a 0x prefix, base 0 means 0x hex, 0 octal or decimal."""
    i = len(text) - len(text.lstrip(_SPACE))
    negative = text[i : i + 1] == "-"
    i += text[i : i + 1] in ("-", "+")
    after_prefix = text[i + 2 : i + 3].lower()
    hex_prefix = text[i : i + 2].lower() == "0x" and after_prefix != "" and after_prefix in _DIGITS[:16]
    if base == 0:
        base = 16 if hex_prefix else 8 if text[i : i + 1] == "0" else 10
    if base == 16 and hex_prefix:
        i += 2
    start = i
    while i < len(text) and text[i].lower() in _DIGITS[:base]:
        i += 1
    if i == start:
        return None, text
    value = int(text[start:i], base)
    if value > U64_MAX:
        return U64_MAX + 1, text[i:]
    return (-value) % (U64_MAX + 1) if negative else value, text[i:]


def get_unsigned(text: str, base: int, limit: int) -> int | None:
    """get_u16/get_u32/get_u64: the whole text must be a number no larger than `limit`; None otherwise (iproute2
    then fails without a word)."""
    value, rest = strtoul(text, base)
    if not text or value is None or rest or value > limit:
        return None
    return value


def _scan_hex(text: str) -> int | None:
    """sscanf(text, "%x", &int): leading space, a sign, 0x, hex digits; trailing characters are ignored."""
    value, _ = strtoul(text, 16)
    if value is None:
        return None
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


def _ipv4(text: str) -> bytes | None:
    """get_addr_1(AF_INET): one to four dotted numbers (C literals, each at most 255); a ':' means IPv6 (refused)."""
    if ":" in text:
        return None
    out = bytearray(4)
    rest = text
    for i in range(4):
        value, after = strtoul(rest, 0)
        if value is None or value > 255:
            return None
        out[i] = value
        if not after:
            return bytes(out)
        if i == 3 or after[0] != ".":
            return None
        rest = after[1:]
    return None  # not reached: the loop returns


def ll_addr(text: str, size: int = 6) -> bytes:
    """ll_addr_a2n into iproute2's zeroed 6-byte buffer: colon-separated hex bytes (fewer than six leave zeros,
    more are ignored) or, with a dot, an IPv4 address in the first four bytes; else `"X" is invalid lladdr.` naming
    the part that failed."""
    mac = bytearray(size)
    if "." in text:
        addr = _ipv4(text)
        if addr is None:
            raise Refused(f'"{text}" is invalid lladdr.')
        mac[:4] = addr
        return bytes(mac)
    parts = text.split(":")
    for i, part in enumerate(parts[:size]):
        value = _scan_hex(part)
        if value is None or not 0 <= value <= 255:
            raise Refused(f'"{part}" is invalid lladdr.')
        mac[i] = value
    return bytes(mac)


# --- vdpa_argv_parse's values -------------------------------------------------------------------------------


def number(what: str, base: int, limit: int) -> Callable[[str], int]:
    """get_u16/u32/u64 for one keyword: iproute2 fails without a word, devmig adds one line saying why."""
    kind = "a hexadecimal" if base == 16 else "a decimal"

    def parse(text: str) -> int:
        value = get_unsigned(text, base, limit)
        if value is None:
            raise Refused(note=f'{what} "{text}": not {kind} number from 0 to {limit}')
        return value

    return parse


def string(text: str) -> str:
    """A name, taken as it is."""
    return text


def handle(text: str) -> str:
    """vdpa_argv_handle: "[bus/]name", at most one slash (empty parts go to the kernel, which finds nothing)."""
    if text.count("/") > 1:
        raise Refused(
            "Wrong vdpa mgmtdev identification string format",
            'Expected "mgmtdev_bus_name/mgmtdev_name"',
            'Expected "mgmtdev_name"',
        )
    return text


def mac(text: str) -> str:
    """A MAC address as ll_addr_a2n reads it, in the "xx:xx:xx:xx:xx:xx" form the backend takes."""
    return format_mac(ll_addr(text))


__all__ = ["get_unsigned", "handle", "ll_addr", "mac", "number", "string", "strtoul"]
