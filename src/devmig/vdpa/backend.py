"""The vDPA seam: what the kernel's "vdpa" generic-netlink family returns, as plain data, and the interface a backend
implements (the netlink client on a real host, `devmig.sim.vdpa.SimVdpa` in the simulator).

Facts follow the project's reference notes (shared/reference/vdpa-netlink.md: kernel uapi
`include/uapi/linux/vdpa.h`, `drivers/vdpa/vdpa.c`, iproute2 `vdpa/vdpa.c`). Field names follow the netlink
attributes (VDPA_ATTR_*), values are kept as the kernel sends them (feature bitmasks as ints, MAC addresses as
"xx:xx:xx:xx:xx:xx"); the helpers here give the names iproute2's `vdpa` prints so `devmig vdpa` can be a drop-in
for it.

Errors: a request the kernel refuses raises `VdpaError` with the errno and the kernel's extack text, exactly as the
kernel sent it (e.g. "vdpa: device not found"; NL_SET_ERR_MSG_MOD prefixes the module name). Arguments the kernel
would never see (iproute2 rejects them locally, or they do not fit the attribute's type) raise `InputError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol, runtime_checkable

from devmig.errors import DevmigError, InputError

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


# --- what the family returns -----------------------------------------------------------------------------------


def mgmtdev_handle(bus_name: str | None, dev_name: str) -> str:
    """A management device's handle as iproute2 prints and parses it: "bus/name", or "name" when it has no bus."""
    return f"{bus_name}/{dev_name}" if bus_name else dev_name


def parse_mgmtdev_handle(handle: str) -> tuple[str | None, str]:
    """Split "[bus/]name" into (bus_name, dev_name) as iproute2's `vdpa_argv_handle` does."""
    if not handle:
        raise InputError("management device handle not set.")
    parts = handle.split("/")
    if len(parts) > 2 or not all(parts):
        raise InputError(
            f"management device {handle!r}: wrong vdpa mgmtdev identification string format: "
            'expected "mgmtdev_bus_name/mgmtdev_name" or "mgmtdev_name"'
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


@dataclass(frozen=True)
class MgmtDev:
    """One management device (a MGMTDEV_NEW reply)."""

    #: VDPA_ATTR_MGMTDEV_BUS_NAME: "pci", "auxiliary", ...; None for a bus-less device such as vdpasim_net
    bus_name: str | None
    #: VDPA_ATTR_MGMTDEV_DEV_NAME: "vdpasim_net", "0000:03:00.2", ...
    dev_name: str
    #: VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES decoded to class names ("net", "block"), lowest ID first
    supported_classes: list[str]
    #: VDPA_ATTR_DEV_MGMTDEV_MAX_VQS (5.17+; None from older kernels)
    max_supported_vqs: int | None
    #: VDPA_ATTR_DEV_SUPPORTED_FEATURES (5.17+; None from older kernels): what devices of this mgmtdev may offer
    dev_features: int | None

    @property
    def handle(self) -> str:
        return mgmtdev_handle(self.bus_name, self.dev_name)

    @property
    def feature_device_id(self) -> int:
        """Which feature table iproute2 names `dev_features` with: net's when the mgmtdev supports net, else none."""
        return VirtioId.NET if CLASS_NAMES[VirtioId.NET] in self.supported_classes else 0

    def feature_names(self) -> list[str]:
        return feature_names(self.dev_features or 0, self.feature_device_id)


@dataclass(frozen=True)
class VdpaDev:
    """One vDPA device (a DEV_NEW reply to DEV_GET)."""

    #: VDPA_ATTR_DEV_NAME
    name: str
    #: the handle of its management device ("[bus/]name", from MGMTDEV_BUS_NAME + MGMTDEV_DEV_NAME)
    mgmtdev: str
    #: VDPA_ATTR_DEV_VENDOR_ID
    vendor_id: int
    #: VDPA_ATTR_DEV_ID: the virtio device type (1 net, 2 block)
    device_id: int
    #: VDPA_ATTR_DEV_MAX_VQS
    max_vqs: int
    #: VDPA_ATTR_DEV_MAX_VQ_SIZE
    max_vq_size: int
    #: VDPA_ATTR_DEV_MIN_VQ_SIZE (5.16+; the kernel sends 1 when the driver has no minimum)
    min_vq_size: int | None

    @property
    def type(self) -> str:
        """The type iproute2 prints: network, block or <unknown type>."""
        return DEVICE_TYPE_NAMES.get(self.device_id, UNKNOWN_TYPE)


@dataclass(frozen=True)
class NetConfig:
    """The net part of DEV_CONFIG_GET: each field is present (not None) only when its feature bit is offered."""

    #: VDPA_ATTR_DEV_NET_CFG_MACADDR (feature MAC)
    mac: str | None = None
    #: VDPA_ATTR_DEV_NET_CFG_MTU (feature MTU)
    mtu: int | None = None
    #: VDPA_ATTR_DEV_NET_STATUS (feature STATUS): VIRTIO_NET_S_* bits
    status: int | None = None
    #: VDPA_ATTR_DEV_NET_CFG_MAX_VQP (feature MQ or RSS)
    max_vqp: int | None = None

    @property
    def link_up(self) -> bool | None:
        return None if self.status is None else bool(self.status & NET_S_LINK_UP)

    @property
    def link_announce(self) -> bool | None:
        return None if self.status is None else bool(self.status & NET_S_ANNOUNCE)


@dataclass(frozen=True)
class BlkConfig:
    """The block part of DEV_CONFIG_GET (6.9+): capacity, read_only and flush always; the rest per VIRTIO_BLK_F_*."""

    #: VDPA_ATTR_DEV_BLK_CFG_CAPACITY, in 512-byte sectors
    capacity: int
    #: VDPA_ATTR_DEV_BLK_READ_ONLY (feature RO)
    read_only: bool
    #: VDPA_ATTR_DEV_BLK_FLUSH (feature FLUSH)
    flush: bool
    size_max: int | None = None
    blk_size: int | None = None
    seg_max: int | None = None
    num_queues: int | None = None
    phy_blk_exp: int | None = None
    align_offset: int | None = None
    min_io_size: int | None = None
    opt_io_size: int | None = None
    max_discard_sec: int | None = None
    max_discard_seg: int | None = None
    discard_sec_align: int | None = None
    max_write_zeroes_sec: int | None = None
    max_write_zeroes_seg: int | None = None


@dataclass(frozen=True)
class DevConfig:
    """A DEV_CONFIG_GET reply."""

    #: VDPA_ATTR_DEV_NAME
    name: str
    #: VDPA_ATTR_DEV_ID
    device_id: int
    #: VDPA_ATTR_DEV_FEATURES: the features the device offers (provisioned at DEV_NEW, else the driver's own)
    device_features: int | None
    #: VDPA_ATTR_DEV_NEGOTIATED_FEATURES: present only once a driver finished feature negotiation (FEATURES_OK)
    negotiated_features: int | None
    net: NetConfig | None = None
    blk: BlkConfig | None = None

    @property
    def type(self) -> str:
        return DEVICE_TYPE_NAMES.get(self.device_id, UNKNOWN_TYPE)


@dataclass(frozen=True)
class VqStats:
    """A DEV_VSTATS_GET reply: one queue's vendor statistics."""

    #: VDPA_ATTR_DEV_NAME
    name: str
    #: VDPA_ATTR_DEV_ID
    device_id: int
    #: VDPA_ATTR_DEV_NEGOTIATED_FEATURES
    negotiated_features: int
    #: VDPA_ATTR_DEV_NET_CFG_MAX_VQP: sent only when MQ or RSS was negotiated
    max_vqp: int | None
    #: VDPA_ATTR_DEV_QUEUE_INDEX
    queue_index: int
    #: the (VENDOR_ATTR_NAME, VENDOR_ATTR_VALUE) pairs, in the order the kernel sent them
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def queue_type(self) -> str:
        """iproute2's label: control_vq when CTRL_VQ is negotiated and the index is 2 * max_vqp (max_vqp counts as 0
        when not sent, so queue 0 of a device without MQ is labelled control_vq), else tx for odd and rx for even."""
        max_vqp = self.max_vqp or 0
        if self.negotiated_features & (1 << F_NET_CTRL_VQ) and self.queue_index == 2 * max_vqp:
            return "control_vq"
        return "tx" if self.queue_index % 2 else "rx"


# --- errors --------------------------------------------------------------------------------------------------------


def render_extack(extack: str, *, error: bool = True) -> str:
    """An extack line as iproute2 prints it: "Error: <msg>." ("Warning: " on success), with a "." added if missing."""
    return f"{'Error' if error else 'Warning'}: {extack}{'' if extack.endswith('.') else '.'}"


class VdpaError(DevmigError):
    """The kernel refused a vdpa request. Keeps the errno and the extack text the kernel sent (None when it sent
    none); `message` is what iproute2 prints for it, optionally after the request it answers, then the hint if any.
    `hint` is devmig's own explanation (e.g. what a missing CAP_NET_ADMIN means), for a CLI to print after
    iproute2's lines; None when the kernel's answer says it all."""

    def __init__(
        self, err: int, extack: str | None = None, *, request: str | None = None, hint: str | None = None
    ) -> None:
        self.errno = err
        self.extack = extack
        #: what was asked, e.g. "dev add vdpa0" (iproute2's words), to name the object in the message
        self.request = request
        self.hint = hint
        text = "\n".join(self.iproute2_lines())
        text = f"{request}: {text}" if request else text
        super().__init__(f"{text}\n{hint}" if hint else text)

    @property
    def strerror(self) -> str:
        return os.strerror(self.errno)

    def iproute2_lines(self) -> list[str]:
        """What iproute2's `vdpa` prints on stderr for this error (then it exits 1)."""
        lines = [render_extack(self.extack)] if self.extack else []
        return [*lines, f"kernel answers: {self.strerror}"]


class VdpaUnavailableError(DevmigError):
    """This host has no vdpa family to talk to (the modules are not loaded, the kernel is built without VDPA, a
    network namespace other than the initial one, a simulated host without vdpa). The message says what is needed;
    `iproute2` is what iproute2's `vdpa` prints in the same case ("Failed to connect to vdpa Netlink")."""

    iproute2 = "Failed to connect to vdpa Netlink"


# --- arguments -------------------------------------------------------------------------------------------------

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


# --- the seam ----------------------------------------------------------------------------------------------------


@runtime_checkable
class VdpaBackend(Protocol):
    """The vdpa family, as devmig uses it. Every method is one request; a refusal raises `VdpaError`.

    Lists come in the kernel's dump order (registration order). Names are matched exactly, as the kernel does.
    """

    def mgmtdevs(self) -> list[MgmtDev]:
        """MGMTDEV_GET dump (`vdpa mgmtdev show`)."""
        ...

    def mgmtdev(self, handle: str) -> MgmtDev:
        """MGMTDEV_GET for one "[bus/]name" (`vdpa mgmtdev show HANDLE`): ENODEV when there is none."""
        ...

    def devices(self) -> list[VdpaDev]:
        """DEV_GET dump (`vdpa dev show`)."""
        ...

    def device(self, name: str) -> VdpaDev:
        """DEV_GET for one device (`vdpa dev show NAME`): ENODEV "vdpa: device not found" when there is none."""
        ...

    def add(
        self,
        name: str,
        mgmtdev: str,
        *,
        device_features: int | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        max_vqp: int | None = None,
    ) -> VdpaDev:
        """DEV_NEW (`vdpa dev add name NAME mgmtdev [BUS/]DEV [device_features HEX] [mac M] [mtu N] [max_vqp N]`),
        then the new device as DEV_GET reports it."""
        ...

    def delete(self, name: str) -> None:
        """DEV_DEL (`vdpa dev del NAME`)."""
        ...

    def config(self, name: str) -> DevConfig:
        """DEV_CONFIG_GET (`vdpa dev config show NAME`)."""
        ...

    def set(self, name: str, *, mac: str | None = None) -> str | None:
        """DEV_ATTR_SET (`vdpa dev set name NAME mac MAC`, kernel 6.12+). Returns the kernel's warning when it
        accepted the request without doing anything (a non-net device: "vdpa: NAME device not supported")."""
        ...

    def vstats(self, name: str, qidx: int) -> VqStats:
        """DEV_VSTATS_GET (`vdpa dev vstats show NAME qidx N`): net devices only (EOPNOTSUPP otherwise)."""
        ...


__all__ = [
    "ATTR_TYPES",
    "CLASS_NAMES",
    "DEVICE_TYPE_NAMES",
    "GENL_NAME",
    "GENL_VERSION",
    "NET_ATTRS_MASK",
    "NET_FEATURE_NAMES",
    "TRANSPORT_FEATURE_NAMES",
    "Attr",
    "BlkConfig",
    "Cmd",
    "DevConfig",
    "MgmtDev",
    "NetConfig",
    "VdpaBackend",
    "VdpaDev",
    "VdpaError",
    "VdpaUnavailableError",
    "VirtioId",
    "VqStats",
    "attr_mask",
    "check_uint",
    "class_id",
    "class_name",
    "feature_bits",
    "feature_names",
    "feature_names_json",
    "format_mac",
    "is_valid_ether_addr",
    "mgmtdev_handle",
    "parse_mac",
    "parse_mgmtdev_handle",
    "render_extack",
]
