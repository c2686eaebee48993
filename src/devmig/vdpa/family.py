"""The kernel's "vdpa" generic-netlink family as data: its name and version, its commands (VDPA_CMD_*), its
attributes (VDPA_ATTR_*) with the type each is sent as, and the checks on values before they become attributes
(integer ranges, MAC addresses).

Facts follow the project's reference notes (shared/reference/vdpa-netlink.md: kernel uapi
`include/uapi/linux/vdpa.h`, `drivers/vdpa/vdpa.c`, iproute2 `vdpa/vdpa.c`). A value that does not fit its
attribute's type never reaches the kernel: it raises `InputError`, as iproute2 refuses it locally.
"""

from __future__ import annotations

from enum import IntEnum

from devmig.errors import InputError

GENL_NAME = "vdpa"
GENL_VERSION = 1


class Cmd(IntEnum):
    """VDPA_CMD_* (uapi). MGMTDEV_NEW has no handler: it is the reply command of MGMTDEV_GET."""

    UNSPEC = 0
    MGMTDEV_NEW = 1
    MGMTDEV_GET = 2
    DEV_NEW = 3
    DEV_DEL = 4
    DEV_GET = 5
    DEV_CONFIG_GET = 6
    DEV_VSTATS_GET = 7
    DEV_ATTR_SET = 8


class Attr(IntEnum):
    """VDPA_ATTR_* (uapi, 6.9+ numbering: 21 was VDPA_ATTR_DEV_SUPPORTED_FEATURES in 6.1 only)."""

    PAD = 0
    MGMTDEV_BUS_NAME = 1
    MGMTDEV_DEV_NAME = 2
    MGMTDEV_SUPPORTED_CLASSES = 3
    DEV_NAME = 4
    DEV_ID = 5
    DEV_VENDOR_ID = 6
    DEV_MAX_VQS = 7
    DEV_MAX_VQ_SIZE = 8
    DEV_MIN_VQ_SIZE = 9
    DEV_NET_CFG_MACADDR = 10
    DEV_NET_STATUS = 11
    DEV_NET_CFG_MAX_VQP = 12
    DEV_NET_CFG_MTU = 13
    DEV_NEGOTIATED_FEATURES = 14
    DEV_MGMTDEV_MAX_VQS = 15
    DEV_SUPPORTED_FEATURES = 16
    DEV_QUEUE_INDEX = 17
    DEV_VENDOR_ATTR_NAME = 18
    DEV_VENDOR_ATTR_VALUE = 19
    DEV_FEATURES = 20
    DEV_BLK_CFG_CAPACITY = 21
    DEV_BLK_CFG_SIZE_MAX = 22
    DEV_BLK_CFG_BLK_SIZE = 23
    DEV_BLK_CFG_SEG_MAX = 24
    DEV_BLK_CFG_NUM_QUEUES = 25
    DEV_BLK_CFG_PHY_BLK_EXP = 26
    DEV_BLK_CFG_ALIGN_OFFSET = 27
    DEV_BLK_CFG_MIN_IO_SIZE = 28
    DEV_BLK_CFG_OPT_IO_SIZE = 29
    DEV_BLK_CFG_MAX_DISCARD_SEC = 30
    DEV_BLK_CFG_MAX_DISCARD_SEG = 31
    DEV_BLK_CFG_DISCARD_SEC_ALIGN = 32
    DEV_BLK_CFG_MAX_WRITE_ZEROES_SEC = 33
    DEV_BLK_CFG_MAX_WRITE_ZEROES_SEG = 34
    DEV_BLK_READ_ONLY = 35
    DEV_BLK_FLUSH = 36


#: The attribute table: each attribute's type as the kernel actually emits it (NET_STATUS is u16 on the wire although
#: the uapi comment says u8). No attribute is nested; PAD attributes (type 0) may appear before u64s and are skipped.
ATTR_TYPES: dict[Attr, str] = {
    Attr.PAD: "pad",
    Attr.MGMTDEV_BUS_NAME: "string",
    Attr.MGMTDEV_DEV_NAME: "string",
    Attr.MGMTDEV_SUPPORTED_CLASSES: "u64",
    Attr.DEV_NAME: "string",
    Attr.DEV_ID: "u32",
    Attr.DEV_VENDOR_ID: "u32",
    Attr.DEV_MAX_VQS: "u32",
    Attr.DEV_MAX_VQ_SIZE: "u16",
    Attr.DEV_MIN_VQ_SIZE: "u16",
    Attr.DEV_NET_CFG_MACADDR: "binary",
    Attr.DEV_NET_STATUS: "u16",
    Attr.DEV_NET_CFG_MAX_VQP: "u16",
    Attr.DEV_NET_CFG_MTU: "u16",
    Attr.DEV_NEGOTIATED_FEATURES: "u64",
    Attr.DEV_MGMTDEV_MAX_VQS: "u32",
    Attr.DEV_SUPPORTED_FEATURES: "u64",
    Attr.DEV_QUEUE_INDEX: "u32",
    Attr.DEV_VENDOR_ATTR_NAME: "string",
    Attr.DEV_VENDOR_ATTR_VALUE: "u64",
    Attr.DEV_FEATURES: "u64",
    Attr.DEV_BLK_CFG_CAPACITY: "u64",
    Attr.DEV_BLK_CFG_SIZE_MAX: "u32",
    Attr.DEV_BLK_CFG_BLK_SIZE: "u32",
    Attr.DEV_BLK_CFG_SEG_MAX: "u32",
    Attr.DEV_BLK_CFG_NUM_QUEUES: "u16",
    Attr.DEV_BLK_CFG_PHY_BLK_EXP: "u8",
    Attr.DEV_BLK_CFG_ALIGN_OFFSET: "u8",
    Attr.DEV_BLK_CFG_MIN_IO_SIZE: "u16",
    Attr.DEV_BLK_CFG_OPT_IO_SIZE: "u32",
    Attr.DEV_BLK_CFG_MAX_DISCARD_SEC: "u32",
    Attr.DEV_BLK_CFG_MAX_DISCARD_SEG: "u32",
    Attr.DEV_BLK_CFG_DISCARD_SEC_ALIGN: "u32",
    Attr.DEV_BLK_CFG_MAX_WRITE_ZEROES_SEC: "u32",
    Attr.DEV_BLK_CFG_MAX_WRITE_ZEROES_SEG: "u32",
    Attr.DEV_BLK_READ_ONLY: "u8",
    Attr.DEV_BLK_FLUSH: "u8",
}


def attr_mask(*attrs: Attr) -> int:
    """A mgmtdev's `config_attr_mask`: one bit per attribute number (BIT_ULL(VDPA_ATTR_...))."""
    mask = 0
    for attr in attrs:
        mask |= 1 << attr
    return mask


#: The attributes that configure a network device at DEV_NEW (the kernel's VDPA_DEV_NET_ATTRS_MASK)
NET_ATTRS_MASK = attr_mask(Attr.DEV_NET_CFG_MACADDR, Attr.DEV_NET_CFG_MTU, Attr.DEV_NET_CFG_MAX_VQP)


# --- attribute values ----------------------------------------------------------------------------------------

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = (1 << 64) - 1


def check_uint(what: str, value: int, limit: int) -> int:
    """An integer argument that must fit its attribute's type (iproute2 refuses the others before sending)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise InputError(f"{what} {value!r}: expected an integer from 0 to {limit}")
    return value


def parse_mac(text: str) -> bytes:
    """A MAC address "xx:xx:xx:xx:xx:xx" (one or two hex digits per byte) as its six bytes."""
    parts = text.split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise InputError(f"mac {text!r}: expected six colon-separated hex bytes, e.g. 00:11:22:33:44:55")
    return bytes(int(p, 16) for p in parts)


def format_mac(mac: bytes) -> str:
    """A MAC address as iproute2 prints it (`ll_addr_n2a`): lower-case, two digits per byte."""
    return ":".join(f"{b:02x}" for b in mac)


def is_valid_ether_addr(mac: bytes) -> bool:
    """The kernel's is_valid_ether_addr: not multicast (bit 0 of the first byte) and not all zeros."""
    return len(mac) == 6 and not mac[0] & 1 and any(mac)


__all__ = [
    "ATTR_TYPES",
    "GENL_NAME",
    "GENL_VERSION",
    "NET_ATTRS_MASK",
    "U16_MAX",
    "U32_MAX",
    "U64_MAX",
    "Attr",
    "Cmd",
    "attr_mask",
    "check_uint",
    "format_mac",
    "is_valid_ether_addr",
    "parse_mac",
]
