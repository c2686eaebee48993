"""The virtio vocabulary the vdpa family speaks in: device IDs (a mgmtdev's classes, a device's type), feature bits
and the names iproute2's `vdpa` prints for them, and virtio-net's status bits.

Facts follow include/uapi/linux/virtio_ids.h, virtio_net.h, virtio_blk.h, virtio_config.h and iproute2's
`vdpa/vdpa.c` (its `class_map`, `device_type_name`, `net_feature_strs`, `ext_feature_strs`), so `devmig vdpa`
names classes, types and features as iproute2 does.
"""

from __future__ import annotations

from enum import IntEnum

from devmig.errors import InputError


class VirtioId(IntEnum):
    """Virtio device IDs (include/uapi/linux/virtio_ids.h) that vdpa uses as classes and as VDPA_ATTR_DEV_ID."""

    NET = 1
    BLOCK = 2


#: mgmtdev classes as iproute2 names them (`class_map`); any other ID prints as "< unknown class >"
CLASS_NAMES: dict[int, str] = {VirtioId.NET: "net", VirtioId.BLOCK: "block"}
UNKNOWN_CLASS = "< unknown class >"
#: a device's "type" as iproute2 prints it (`device_type_name`)
DEVICE_TYPE_NAMES: dict[int, str] = {VirtioId.NET: "network", VirtioId.BLOCK: "block"}
UNKNOWN_TYPE = "<unknown type>"


def class_name(device_id: int) -> str:
    return CLASS_NAMES.get(device_id, UNKNOWN_CLASS)


def class_id(name: str) -> int:
    """The virtio device ID of a class name ("net", "block")."""
    for num, known in CLASS_NAMES.items():
        if known == name:
            return num
    raise InputError(f"vdpa class {name!r}: expected one of {', '.join(CLASS_NAMES.values())}")


# Feature bits (include/uapi/linux/virtio_net.h, virtio_blk.h, virtio_config.h).
F_NET_MTU = 3
F_NET_MAC = 5
F_NET_STATUS = 16
F_NET_CTRL_VQ = 17
F_NET_MQ = 22
F_NET_CTRL_MAC_ADDR = 23
F_NET_RSS = 60
F_ANY_LAYOUT = 27
F_VERSION_1 = 32
F_ACCESS_PLATFORM = 33
F_BLK_SIZE_MAX = 1
F_BLK_SEG_MAX = 2
F_BLK_RO = 5
F_BLK_BLK_SIZE = 6
F_BLK_FLUSH = 9
F_BLK_TOPOLOGY = 10
F_BLK_MQ = 12
F_BLK_DISCARD = 13
F_BLK_WRITE_ZEROES = 14

#: the transport feature range (VIRTIO_TRANSPORT_F_START/END): these bits mean the same for every device type
TRANSPORT_F_START = 28
TRANSPORT_F_END = 42
#: the kernel's VIRTIO_DEVICE_F_MASK: the device-type specific bits
DEVICE_F_MASK = ((1 << 64) - 1) & ~(((1 << (TRANSPORT_F_END + 1)) - 1) & ~((1 << TRANSPORT_F_START) - 1))

#: virtio-net feature names exactly as iproute2 prints them (`net_feature_strs`); bits 24 and 27 are in this table
#: although they are transport-wide, so a block device prints them as bit_24/bit_27, as iproute2 does
NET_FEATURE_NAMES: dict[int, str] = {
    0: "CSUM",
    1: "GUEST_CSUM",
    2: "CTRL_GUEST_OFFLOADS",
    3: "MTU",
    5: "MAC",
    7: "GUEST_TSO4",
    8: "GUEST_TSO6",
    9: "GUEST_ECN",
    10: "GUEST_UFO",
    11: "HOST_TSO4",
    12: "HOST_TSO6",
    13: "HOST_ECN",
    14: "HOST_UFO",
    15: "MRG_RXBUF",
    16: "STATUS",
    17: "CTRL_VQ",
    18: "CTRL_RX",
    19: "CTRL_VLAN",
    20: "CTRL_RX_EXTRA",
    21: "GUEST_ANNOUNCE",
    22: "MQ",
    23: "CTRL_MAC_ADDR",
    24: "NOTIFY_ON_EMPTY",
    27: "ANY_LAYOUT",
    57: "HASH_REPORT",
    60: "RSS",
    61: "RSC_EXT",
    62: "STANDBY",
    63: "SPEED_DUPLEX",
}
#: transport feature names as iproute2 prints them (`ext_feature_strs`), used for every device type
TRANSPORT_FEATURE_NAMES: dict[int, str] = {
    28: "RING_INDIRECT_DESC",
    29: "RING_EVENT_IDX",
    32: "VERSION_1",
    33: "ACCESS_PLATFORM",
    34: "RING_PACKED",
    35: "IN_ORDER",
    36: "ORDER_PLATFORM",
    37: "SR_IOV",
    38: "NOTIFICATION_DATA",
}
#: device-type feature tables iproute2 has (`dev_to_feature_str`): only net
DEVICE_FEATURE_NAMES: dict[int, dict[int, str]] = {VirtioId.NET: NET_FEATURE_NAMES}


def _feature_name(bit: int, device_id: int) -> str | None:
    if TRANSPORT_F_START <= bit <= TRANSPORT_F_END:
        return TRANSPORT_FEATURE_NAMES.get(bit)
    return DEVICE_FEATURE_NAMES.get(device_id, {}).get(bit)


def feature_names(features: int, device_id: int = VirtioId.NET) -> list[str]:
    """The names iproute2 prints in text for a feature bitmask, low bit first; an unnamed bit is "bit_N"."""
    return [str(name) if isinstance(name, str) else f"bit_{name}" for name in feature_names_json(features, device_id)]


def feature_names_json(features: int, device_id: int = VirtioId.NET) -> list[str | int]:
    """The same for iproute2's JSON output, where an unnamed bit is the bare integer N."""
    out: list[str | int] = []
    for bit in range(64):
        if features & (1 << bit):
            name = _feature_name(bit, device_id)
            out.append(bit if name is None else name)
    return out


def feature_bits(names: list[str], device_id: int = VirtioId.NET) -> int:
    """The bitmask of feature names as `feature_names` prints them ("MAC", "VERSION_1", "bit_40")."""
    features = 0
    for name in names:
        bit = _feature_bit(name, device_id)
        if bit is None:
            raise InputError(f"virtio feature {name!r}: not a {class_name(device_id)} or transport feature name")
        features |= 1 << bit
    return features


def _feature_bit(name: str, device_id: int) -> int | None:
    if name.startswith("bit_") and name[4:].isascii() and name[4:].isdigit() and int(name[4:]) < 64:
        return int(name[4:])
    for bit in range(64):
        if _feature_name(bit, device_id) == name:
            return bit
    return None


# Virtio-net status bits (VIRTIO_NET_S_*).
NET_S_LINK_UP = 1
NET_S_ANNOUNCE = 2

__all__ = [
    "CLASS_NAMES",
    "DEVICE_FEATURE_NAMES",
    "DEVICE_F_MASK",
    "DEVICE_TYPE_NAMES",
    "F_ACCESS_PLATFORM",
    "F_ANY_LAYOUT",
    "F_BLK_BLK_SIZE",
    "F_BLK_DISCARD",
    "F_BLK_FLUSH",
    "F_BLK_MQ",
    "F_BLK_RO",
    "F_BLK_SEG_MAX",
    "F_BLK_SIZE_MAX",
    "F_BLK_TOPOLOGY",
    "F_BLK_WRITE_ZEROES",
    "F_NET_CTRL_MAC_ADDR",
    "F_NET_CTRL_VQ",
    "F_NET_MAC",
    "F_NET_MQ",
    "F_NET_MTU",
    "F_NET_RSS",
    "F_NET_STATUS",
    "F_VERSION_1",
    "NET_FEATURE_NAMES",
    "NET_S_ANNOUNCE",
    "NET_S_LINK_UP",
    "TRANSPORT_FEATURE_NAMES",
    "TRANSPORT_F_END",
    "TRANSPORT_F_START",
    "UNKNOWN_CLASS",
    "UNKNOWN_TYPE",
    "VirtioId",
    "class_id",
    "class_name",
    "feature_bits",
    "feature_names",
    "feature_names_json",
]
