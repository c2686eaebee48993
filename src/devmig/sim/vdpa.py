"""A simulated vdpa netlink family: the kernel's vdpa core (drivers/vdpa/vdpa.c) with vdpa_sim behind it.

`SimVdpa` implements `devmig.vdpa.backend.VdpaBackend`. By default it has the two simulator management devices a
kernel with vdpa_sim_net and vdpa_sim_blk loaded has (reference/vdpa-netlink.md §5):

- `vdpasim_net`: class net, no bus, max_supported_vqs 3, features 0x308830028 (MTU MAC STATUS CTRL_VQ CTRL_MAC_ADDR
  ANY_LAYOUT VERSION_1 ACCESS_PLATFORM), accepts mac/mtu/device_features at add time (not max_vqp), supports
  `dev set mac`; devices have vendor 0, 3 vqs of at most 256 entries, mac 00:00:00:00:00:00, mtu 1500, link up,
  and per-queue vendor statistics;
- `vdpasim_blk`: class block, no max vqs, no features, accepts no attribute; devices offer 0x308007646, 1 vq.

A lab may give a host other management devices (`SimMgmtDevSpec`, e.g. `pci_net("0000:03:00.2")`).

Requests are checked in the kernel's order with its errnos and extack texts (§2): permission, attribute policy,
the doit's own checks, then the driver's (vdpasim_create: unsupported provisioned features -> EINVAL), and last the
bus registration (a duplicate name -> EEXIST). State lives in memory; nothing depends on time or chance.

Beyond the family, a test or a lab can play the guest driver: `negotiate` completes feature negotiation
(FEATURES_OK, which config's negotiated_features and vstats need), `reset` undoes it, `count` adds to a queue's
vendor statistics.

Checked against a real kernel (Linux 6.12 with vdpa_sim, tests/kernel/guest/test_vdpa_netlink.py): every request
of the family with `vdpasim_net` and `vdpasim_blk` gives the same data or the same (errno, extack) here, including
an MTU below 68 -> ERANGE "integer out of range" (the netlink core's policy text, no "vdpa: " prefix; 68 is
accepted), min_vq_size 1, the blk `dev set` warning "vdpa: NAME device not supported", and vstats before
negotiation: EAGAIN "vdpa: feature negotiation not complete" up to qidx 0x8000, ERANGE above (the range comes first).
Not checked (the test kernel has no driver to negotiate features, and no hardware): vstats listing max_vqp only
when MQ or RSS was negotiated, the statistics' values after negotiation, and `pci_net`'s mlx5-like limits.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from devmig.errors import InputError
from devmig.sim.uevent import UeventBus
from devmig.vdpa.backend import VdpaError
from devmig.vdpa.family import (
    NET_ATTRS_MASK,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    Attr,
    attr_mask,
    check_uint,
    format_mac,
    is_valid_ether_addr,
    parse_mac,
)
from devmig.vdpa.records import (
    BlkConfig,
    DevConfig,
    MgmtDev,
    NetConfig,
    VdpaDev,
    VqStats,
    mgmtdev_handle,
    parse_mgmtdev_handle,
)
from devmig.vdpa.virtio import (
    DEVICE_F_MASK,
    F_ACCESS_PLATFORM,
    F_ANY_LAYOUT,
    F_BLK_BLK_SIZE,
    F_BLK_DISCARD,
    F_BLK_FLUSH,
    F_BLK_MQ,
    F_BLK_RO,
    F_BLK_SEG_MAX,
    F_BLK_SIZE_MAX,
    F_BLK_TOPOLOGY,
    F_BLK_WRITE_ZEROES,
    F_NET_CTRL_MAC_ADDR,
    F_NET_CTRL_VQ,
    F_NET_MAC,
    F_NET_MQ,
    F_NET_MTU,
    F_NET_RSS,
    F_NET_STATUS,
    F_VERSION_1,
    NET_S_LINK_UP,
    VirtioId,
    class_name,
)


def _bits(*bits: int) -> int:
    out = 0
    for bit in bits:
        out |= 1 << bit
    return out


#: VDPASIM_FEATURES (vdpa_sim.h): what every vdpa_sim device offers
VDPASIM_FEATURES = _bits(F_ANY_LAYOUT, F_VERSION_1, F_ACCESS_PLATFORM)
#: VDPASIM_NET_FEATURES = 0x308830028
VDPASIM_NET_FEATURES = VDPASIM_FEATURES | _bits(F_NET_MAC, F_NET_STATUS, F_NET_MTU, F_NET_CTRL_VQ, F_NET_CTRL_MAC_ADDR)
#: VDPASIM_BLK_FEATURES = 0x308007646
VDPASIM_BLK_FEATURES = VDPASIM_FEATURES | _bits(F_BLK_FLUSH, F_BLK_SIZE_MAX, F_BLK_SEG_MAX, F_BLK_BLK_SIZE)
VDPASIM_BLK_FEATURES |= _bits(F_BLK_TOPOLOGY, F_BLK_MQ, F_BLK_DISCARD, F_BLK_WRITE_ZEROES)
#: vdpasim_blk_get_config: capacity 0x40000 sectors, size_max 4096, seg_max 32, 1 queue, 512-byte blocks, ...
VDPASIM_BLK_CONFIG = BlkConfig(
    capacity=0x40000,
    read_only=False,
    flush=False,
    size_max=0x1000,
    blk_size=512,
    seg_max=32,
    num_queues=1,
    phy_blk_exp=0,
    align_offset=0,
    min_io_size=1,
    opt_io_size=1,
    max_discard_sec=U32_MAX,
    max_discard_seg=1,
    discard_sec_align=512,
    max_write_zeroes_sec=U32_MAX,
    max_write_zeroes_seg=1,
)
#: vdpasim_net_get_stats: the vendor statistics of queue 0 (rx), 1 (tx) and 2 (control vq), in the kernel's order
VDPASIM_NET_VQ_STATS: tuple[tuple[str, ...], ...] = (
    ("rx packets", "rx bytes", "rx errors", "rx overruns", "rx drops"),
    ("tx packets", "tx bytes", "tx errors", "tx drops"),
    ("cvq requests", "cvq successes", "cvq errors"),
)

#: VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX: the vdpa core refuses a larger queue index with ERANGE
VQ_PAIRS_MAX = 0x8000
#: the minimum MTU the family's policy accepts (NLA_POLICY_MIN(NLA_U16, 68), virtio spec 5.1.4.1)
MIN_MTU = 68

# The kernel's extack texts (NL_SET_ERR_MSG_MOD prefixes "vdpa: "; the netlink core's policy messages have no prefix).
E_MGMTDEV_NOT_FOUND_GET = "vdpa: Fail to find the specified mgmt device"
E_MGMTDEV_NOT_FOUND_ADD = "vdpa: Fail to find the specified management device"
E_NO_VQP = "vdpa: At least one pair of VQs is required"
E_MISSING_FEATURES = "vdpa: Missing features 0x{:x} for provided attributes"
E_UNSUPPORTED_ATTRS = "vdpa: Some provided attributes are not supported: 0x{:x}"
E_NET_ATTRS_ON_NON_NET = "vdpa: Network class attributes provided on unsupported management device"
E_AMBIGUOUS_FEATURES = "vdpa: Management device supports multi-class while device features specified are ambiguous"
E_DEVICE_NOT_FOUND = "vdpa: device not found"
E_NOT_NEGOTIATED = "vdpa: feature negotiation not complete"
E_QUEUE_INDEX = "vdpa: queue index exceeds max value"
E_INVALID_MAC = "vdpa: Invalid MAC address"
E_SET_NOT_SUPPORTED = "vdpa: Operation not supported by the device."
W_SET_CLASS = "vdpa: {} device not supported"
E_POLICY_RANGE = "integer out of range"


@dataclass(frozen=True)
class SimMgmtDevSpec:
    """A management device and the driver behind it: what it reports and how its devices behave."""

    dev_name: str
    bus_name: str | None = None
    #: virtio device IDs it can create (the driver's id_table); a device gets the first
    classes: tuple[int, ...] = (VirtioId.NET,)
    #: VDPA_ATTR_DEV_MGMTDEV_MAX_VQS
    max_supported_vqs: int = 0
    #: VDPA_ATTR_DEV_SUPPORTED_FEATURES
    supported_features: int = 0
    #: the DEV_NEW attributes the driver accepts (`attr_mask(Attr.DEV_NET_CFG_MACADDR, ...)`)
    config_attr_mask: int = 0
    #: what a new device offers when none are provisioned, and the limit of what may be provisioned (vdpasim_create
    #: checks device_features against it); None: supported_features
    device_features: int | None = None
    vendor_id: int = 0
    max_vq_size: int = 256
    min_vq_size: int = 1
    #: a fixed number of virtqueues per device (vdpa_sim); None: 2 * max_vqp, plus one with CTRL_VQ
    device_vqs: int | None = None
    default_mac: str = "00:00:00:00:00:00"
    default_mtu: int = 1500
    #: the config space's max_virtqueue_pairs when none is provisioned (vdpa_sim leaves it 0)
    default_max_vqp: int = 1
    link_up: bool = True
    #: the driver implements dev_set_attr (`vdpa dev set mac`)
    set_attr: bool = False
    #: the vendor statistics names of each queue index (get_vendor_vq_stats); None: the driver has none
    vq_stats: tuple[tuple[str, ...], ...] | None = None
    #: devices it can hold at once (ENOSPC beyond, as mlx5_vdpa has one); None: no limit
    max_devices: int | None = None
    #: a block device's config space (capacity, geometry, limits)
    blk: BlkConfig = VDPASIM_BLK_CONFIG

    @property
    def handle(self) -> str:
        return mgmtdev_handle(self.bus_name, self.dev_name)

    @property
    def offered_features(self) -> int:
        return self.supported_features if self.device_features is None else self.device_features


def _devpath(spec: SimMgmtDevSpec, name: str) -> str:
    """Where a vdpa device sits in sysfs: vdpa_sim registers it with no parent (/sys/devices/NAME); a PCI
    management device's devices sit below the function."""
    if spec.bus_name == "pci":
        return f"devices/pci{spec.dev_name.rsplit(':', 1)[0]}/{spec.dev_name}/{name}"
    return f"devices/{name}"


def vdpasim_net() -> SimMgmtDevSpec:
    """vdpa_sim_net's management device (drivers/vdpa/vdpa_sim/vdpa_sim_net.c)."""
    return SimMgmtDevSpec(
        dev_name="vdpasim_net",
        classes=(VirtioId.NET,),
        max_supported_vqs=3,
        supported_features=VDPASIM_NET_FEATURES,
        config_attr_mask=attr_mask(Attr.DEV_NET_CFG_MACADDR, Attr.DEV_NET_CFG_MTU, Attr.DEV_FEATURES),
        device_vqs=3,
        default_max_vqp=0,
        set_attr=True,
        vq_stats=VDPASIM_NET_VQ_STATS,
    )


def vdpasim_blk() -> SimMgmtDevSpec:
    """vdpa_sim_blk's management device (drivers/vdpa/vdpa_sim/vdpa_sim_blk.c): no attribute mask, no features."""
    return SimMgmtDevSpec(
        dev_name="vdpasim_blk",
        classes=(VirtioId.BLOCK,),
        max_supported_vqs=0,
        supported_features=0,
        config_attr_mask=0,
        device_features=VDPASIM_BLK_FEATURES,
        device_vqs=1,
    )


#: the features of `pci_net`'s default NIC: a representative hardware virtio-net function, not a copy of one
PCI_NET_FEATURES = VDPASIM_NET_FEATURES | _bits(0, 1, 11, 12, F_NET_MQ)  # + CSUM GUEST_CSUM HOST_TSO4/6 MQ


def pci_net(
    bdf: str,
    *,
    max_vqp: int = 8,
    features: int = PCI_NET_FEATURES,
    max_devices: int | None = 1,
    vendor_id: int = 0x15B3,
) -> SimMgmtDevSpec:
    """A hardware NIC function as a net management device on the pci bus ("pci/BDF"), shaped after mlx5_vdpa: it
    accepts mac, mtu, max_vqp and device_features; max_supported_vqs is 2 * max_vqp data queues plus a control
    queue; it holds one device; every queue counts received_desc and completed_desc."""
    nvqs = 2 * max_vqp + 1
    return SimMgmtDevSpec(
        dev_name=bdf,
        bus_name="pci",
        classes=(VirtioId.NET,),
        max_supported_vqs=nvqs,
        supported_features=features,
        config_attr_mask=attr_mask(
            Attr.DEV_NET_CFG_MACADDR, Attr.DEV_NET_CFG_MTU, Attr.DEV_NET_CFG_MAX_VQP, Attr.DEV_FEATURES
        ),
        vendor_id=vendor_id,
        set_attr=True,
        vq_stats=tuple(("received_desc", "completed_desc") for _ in range(nvqs)),
        max_devices=max_devices,
    )


@dataclass
class _SimDev:
    name: str
    spec: SimMgmtDevSpec
    device_id: int
    device_features: int
    nvqs: int
    mac: bytes
    mtu: int
    max_vqp: int
    #: VIRTIO_NET_S_* bits of the config space
    status: int
    #: the driver features once FEATURES_OK is set; None before
    negotiated: int | None = None
    stats: dict[int, dict[str, int]] = field(default_factory=dict)


class SimVdpa:
    """The vdpa family of one simulated host. `privileged=False` plays a caller without CAP_NET_ADMIN."""

    def __init__(
        self,
        mgmtdevs: Iterable[SimMgmtDevSpec] | None = None,
        *,
        privileged: bool = True,
        uevents: UeventBus | None = None,
    ) -> None:
        specs = list(mgmtdevs) if mgmtdevs is not None else [vdpasim_net(), vdpasim_blk()]
        handles = [spec.handle for spec in specs]
        duplicates = sorted({h for h in handles if handles.count(h) > 1})
        if duplicates:
            raise InputError(f"vdpa management devices {', '.join(duplicates)}: registered twice")
        self._mgmtdevs = specs
        self._devices: dict[str, _SimDev] = {}
        self.privileged = privileged
        #: the kernel's uevents: a device added to or removed from the vdpa bus is one (the family itself has no
        #: multicast group to announce it)
        self.uevents = uevents if uevents is not None else UeventBus()

    # --- the family ------------------------------------------------------------------------------------------

    def mgmtdevs(self) -> list[MgmtDev]:
        return [self._mgmtdev_reply(spec) for spec in self._mgmtdevs]

    def mgmtdev(self, handle: str) -> MgmtDev:
        request = f"mgmtdev show {handle}"
        spec = self._find_mgmtdev(handle)
        if spec is None:
            raise VdpaError(errno.ENODEV, E_MGMTDEV_NOT_FOUND_GET, request=request)
        return self._mgmtdev_reply(spec)

    def devices(self) -> list[VdpaDev]:
        return [self._dev_reply(dev) for dev in self._devices.values()]

    def device(self, name: str) -> VdpaDev:
        return self._dev_reply(self._find(name, f"dev show {name}"))

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
        request = f"dev add {name}"
        # What iproute2 checks before sending, or what does not fit the attributes' types.
        if not name:
            raise InputError("device name is not set.")
        parse_mgmtdev_handle(mgmtdev)
        mac_bytes = parse_mac(mac) if mac is not None else None
        if mtu is not None:
            check_uint("mtu", mtu, U16_MAX)
        if max_vqp is not None:
            check_uint("max_vqp", max_vqp, U16_MAX)
        if device_features is not None:
            check_uint("device_features", device_features, U64_MAX)
        self._check_admin(request)
        # The family's attribute policy.
        if mtu is not None and mtu < MIN_MTU:
            raise VdpaError(errno.ERANGE, E_POLICY_RANGE, request=request)
        # vdpa_nl_cmd_dev_add_set_doit.
        mask = 0
        if mac_bytes is not None:
            mask |= attr_mask(Attr.DEV_NET_CFG_MACADDR)
        if mtu is not None:
            mask |= attr_mask(Attr.DEV_NET_CFG_MTU)
        if max_vqp is not None:
            if max_vqp == 0:
                raise VdpaError(errno.EINVAL, E_NO_VQP, request=request)
            mask |= attr_mask(Attr.DEV_NET_CFG_MAX_VQP)
        if device_features is not None:
            missing = 0
            if mac_bytes is not None and not device_features & (1 << F_NET_MAC):
                missing |= 1 << F_NET_MAC
            if mtu is not None and not device_features & (1 << F_NET_MTU):
                missing |= 1 << F_NET_MTU
            if max_vqp is not None and max_vqp > 1 and not device_features & (1 << F_NET_MQ):
                missing |= 1 << F_NET_MQ
            if missing:
                raise VdpaError(errno.EINVAL, E_MISSING_FEATURES.format(missing), request=request)
            mask |= attr_mask(Attr.DEV_FEATURES)
        spec = self._find_mgmtdev(mgmtdev)
        if spec is None:
            raise VdpaError(errno.ENODEV, E_MGMTDEV_NOT_FOUND_ADD, request=request)
        unsupported = mask & ~spec.config_attr_mask
        if unsupported:
            raise VdpaError(errno.EOPNOTSUPP, E_UNSUPPORTED_ATTRS.format(unsupported), request=request)
        if mask & NET_ATTRS_MASK and VirtioId.NET not in spec.classes:
            raise VdpaError(errno.EINVAL, E_NET_ATTRS_ON_NON_NET, request=request)
        if (
            not mask & NET_ATTRS_MASK
            and device_features is not None
            and VirtioId.NET in spec.classes
            and len(spec.classes) > 1
            and device_features & DEVICE_F_MASK
        ):
            raise VdpaError(errno.EINVAL, E_AMBIGUOUS_FEATURES, request=request)
        # The driver's dev_add: no extack from vdpa_sim or mlx5_vdpa.
        offered = spec.offered_features
        if device_features is not None:
            if device_features & ~offered:
                raise VdpaError(errno.EINVAL, request=request)
            offered = device_features
        vqp = max_vqp if max_vqp is not None else spec.default_max_vqp
        ctrl_vq = 1 if offered & (1 << F_NET_CTRL_VQ) else 0
        if max_vqp is not None and 2 * max_vqp > spec.max_supported_vqs - ctrl_vq:
            raise VdpaError(errno.EINVAL, request=request)
        if spec.max_devices is not None and sum(d.spec is spec for d in self._devices.values()) >= spec.max_devices:
            raise VdpaError(errno.ENOSPC, request=request)
        # _vdpa_register_device: the name is unique on the vdpa bus.
        if name in self._devices:
            raise VdpaError(errno.EEXIST, request=request)
        nvqs = spec.device_vqs if spec.device_vqs is not None else 2 * max(vqp, 1) + ctrl_vq
        self._devices[name] = _SimDev(
            name=name,
            spec=spec,
            device_id=spec.classes[0],
            device_features=offered,
            nvqs=nvqs,
            mac=mac_bytes if mac_bytes is not None else parse_mac(spec.default_mac),
            mtu=mtu if mtu is not None else spec.default_mtu,
            max_vqp=vqp,
            status=NET_S_LINK_UP if spec.link_up else 0,
        )
        self.uevents.emit("add", "vdpa", _devpath(spec, name))
        return self.device(name)

    def delete(self, name: str) -> None:
        request = f"dev del {name}"
        self._check_admin(request)
        dev = self._find(name, request)
        del self._devices[name]
        self.uevents.emit("remove", "vdpa", _devpath(dev.spec, name))

    def config(self, name: str) -> DevConfig:
        request = f"dev config show {name}"
        dev = self._find(name, request)
        features = dev.device_features
        if dev.device_id == VirtioId.NET:

            def has(bit: int) -> bool:
                return bool(features & (1 << bit))

            net = NetConfig(
                mac=format_mac(dev.mac) if has(F_NET_MAC) else None,
                mtu=dev.mtu if has(F_NET_MTU) else None,
                status=dev.status if has(F_NET_STATUS) else None,
                max_vqp=dev.max_vqp if has(F_NET_MQ) or has(F_NET_RSS) else None,
            )
            return DevConfig(dev.name, dev.device_id, features, dev.negotiated, net=net)
        if dev.device_id == VirtioId.BLOCK:
            return DevConfig(dev.name, dev.device_id, features, dev.negotiated, blk=_blk_config(dev.spec.blk, features))
        raise VdpaError(errno.EOPNOTSUPP, request=request)

    def set(self, name: str, *, mac: str | None = None) -> str | None:
        request = f"dev set {name}"
        mac_bytes = parse_mac(mac) if mac is not None else None
        self._check_admin(request)
        dev = self._find(name, request)
        if VirtioId.NET not in dev.spec.classes:
            return W_SET_CLASS.format(name)
        if mac_bytes is None:
            raise VdpaError(errno.EOPNOTSUPP, request=request)
        if not is_valid_ether_addr(mac_bytes):
            raise VdpaError(errno.EOPNOTSUPP, E_INVALID_MAC, request=request)
        if not dev.spec.set_attr:
            raise VdpaError(errno.EOPNOTSUPP, E_SET_NOT_SUPPORTED, request=request)
        dev.mac = mac_bytes
        return None

    def vstats(self, name: str, qidx: int) -> VqStats:
        request = f"dev vstats show {name} qidx {qidx}"
        check_uint("qidx", qidx, U32_MAX)
        self._check_admin(request)
        dev = self._find(name, request)
        if dev.device_id != VirtioId.NET:
            raise VdpaError(errno.EOPNOTSUPP, request=request)
        if qidx > VQ_PAIRS_MAX:
            raise VdpaError(errno.ERANGE, E_QUEUE_INDEX, request=request)
        names = dev.spec.vq_stats
        if names is None:
            raise VdpaError(errno.EOPNOTSUPP, request=request)
        if dev.negotiated is None:
            raise VdpaError(errno.EAGAIN, E_NOT_NEGOTIATED, request=request)
        if qidx >= len(names) or qidx >= dev.nvqs:
            raise VdpaError(errno.EINVAL, request=request)
        counters = dev.stats.get(qidx, {})
        mq = dev.negotiated & ((1 << F_NET_MQ) | (1 << F_NET_RSS))
        return VqStats(
            name=dev.name,
            device_id=dev.device_id,
            negotiated_features=dev.negotiated,
            max_vqp=dev.max_vqp if mq else None,
            queue_index=qidx,
            stats={stat: counters.get(stat, 0) for stat in names[qidx]},
        )

    # --- the guest driver's side (not part of the family) ----------------------------------------------------

    def negotiate(self, name: str, features: int | None = None) -> int:
        """A driver (virtio_vdpa or vhost_vdpa) finishes feature negotiation, accepting `features` (default: all the
        device offers). The device keeps what it offers of them (vdpasim_set_driver_features); returns that."""
        dev = self._find(name, f"dev {name}")
        wanted = dev.device_features if features is None else check_uint("features", features, U64_MAX)
        dev.negotiated = wanted & dev.device_features
        return dev.negotiated

    def reset(self, name: str) -> None:
        """The driver resets the device: FEATURES_OK is cleared, the statistics stay."""
        self._find(name, f"dev {name}").negotiated = None

    def count(self, name: str, qidx: int, stat: str, n: int = 1) -> None:
        """Traffic: add `n` to one vendor statistic of queue `qidx`."""
        dev = self._find(name, f"dev {name}")
        names = dev.spec.vq_stats or ()
        if qidx >= len(names) or stat not in names[qidx]:
            raise InputError(f"vdpa device {name} queue {qidx}: has no statistic {stat!r}")
        queue = dev.stats.setdefault(qidx, {})
        queue[stat] = queue.get(stat, 0) + n

    # --- helpers -----------------------------------------------------------------------------------------------

    def _check_admin(self, request: str) -> None:
        """GENL_ADMIN_PERM: checked before the attributes are parsed; no extack."""
        if not self.privileged:
            raise VdpaError(errno.EPERM, request=request)

    def _find(self, name: str, request: str) -> _SimDev:
        dev = self._devices.get(name)
        if dev is None:
            raise VdpaError(errno.ENODEV, E_DEVICE_NOT_FOUND, request=request)
        return dev

    def _find_mgmtdev(self, handle: str) -> SimMgmtDevSpec | None:
        """mgmtdev_handle_match: with a bus name the device must be on that bus, without one it must have none."""
        bus_name, dev_name = parse_mgmtdev_handle(handle)
        for spec in self._mgmtdevs:
            if spec.dev_name == dev_name and spec.bus_name == bus_name:
                return spec
        return None

    @staticmethod
    def _mgmtdev_reply(spec: SimMgmtDevSpec) -> MgmtDev:
        return MgmtDev(
            bus_name=spec.bus_name,
            dev_name=spec.dev_name,
            supported_classes=[class_name(c) for c in sorted(set(spec.classes)) if 0 < c <= 63],
            max_supported_vqs=spec.max_supported_vqs,
            dev_features=spec.supported_features,
        )

    @staticmethod
    def _dev_reply(dev: _SimDev) -> VdpaDev:
        return VdpaDev(
            name=dev.name,
            mgmtdev=dev.spec.handle,
            vendor_id=dev.spec.vendor_id,
            device_id=dev.device_id,
            max_vqs=dev.nvqs,
            max_vq_size=dev.spec.max_vq_size,
            min_vq_size=dev.spec.min_vq_size,
        )


def _blk_config(raw: BlkConfig, features: int) -> BlkConfig:
    """vdpa_dev_blk_config_fill: capacity, read_only and flush always; the rest only with their feature bit."""

    def has(bit: int) -> bool:
        return bool(features & (1 << bit))

    topology = has(F_BLK_TOPOLOGY)
    discard = has(F_BLK_DISCARD)
    write_zeroes = has(F_BLK_WRITE_ZEROES)
    return replace(
        BlkConfig(capacity=raw.capacity, read_only=has(F_BLK_RO), flush=has(F_BLK_FLUSH)),
        size_max=raw.size_max if has(F_BLK_SIZE_MAX) else None,
        blk_size=raw.blk_size if has(F_BLK_BLK_SIZE) else None,
        seg_max=raw.seg_max if has(F_BLK_SEG_MAX) else None,
        num_queues=raw.num_queues if has(F_BLK_MQ) else None,
        phy_blk_exp=raw.phy_blk_exp if topology else None,
        align_offset=raw.align_offset if topology else None,
        min_io_size=raw.min_io_size if topology else None,
        opt_io_size=raw.opt_io_size if topology else None,
        max_discard_sec=raw.max_discard_sec if discard else None,
        max_discard_seg=raw.max_discard_seg if discard else None,
        discard_sec_align=raw.discard_sec_align if discard else None,
        max_write_zeroes_sec=raw.max_write_zeroes_sec if write_zeroes else None,
        max_write_zeroes_seg=raw.max_write_zeroes_seg if write_zeroes else None,
    )


__all__ = [
    "PCI_NET_FEATURES",
    "VDPASIM_BLK_CONFIG",
    "VDPASIM_BLK_FEATURES",
    "VDPASIM_NET_FEATURES",
    "VDPASIM_NET_VQ_STATS",
    "SimMgmtDevSpec",
    "SimVdpa",
    "pci_net",
    "vdpasim_blk",
    "vdpasim_net",
]
