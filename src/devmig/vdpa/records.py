"""What the vdpa family returns, as plain data: management devices, devices, a device's configuration and a
queue's vendor statistics, one frozen dataclass per reply.

Field names follow the netlink attributes (VDPA_ATTR_*), values are kept as the kernel sends them (feature bitmasks
as ints, MAC addresses as "xx:xx:xx:xx:xx:xx"); a field a kernel did not send is None. The properties give what
iproute2's `vdpa` derives from them (a mgmtdev's handle, a device's type, a queue's type).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devmig.errors import InputError
from devmig.vdpa.virtio import (
    CLASS_NAMES,
    DEVICE_TYPE_NAMES,
    F_NET_CTRL_VQ,
    NET_S_ANNOUNCE,
    NET_S_LINK_UP,
    UNKNOWN_TYPE,
    VirtioId,
    feature_names,
)


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


__all__ = [
    "BlkConfig",
    "DevConfig",
    "MgmtDev",
    "NetConfig",
    "VdpaDev",
    "VqStats",
    "mgmtdev_handle",
    "parse_mgmtdev_handle",
]
