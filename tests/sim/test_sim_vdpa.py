"""The simulated vdpa family (devmig.sim.vdpa) against the kernel's and iproute2's behaviour in
reference/vdpa-netlink.md, and the seam's vocabulary and data helpers (devmig.vdpa.family, virtio, records)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest

from devmig.errors import DevmigError, ExitCode, InputError
from devmig.sim.vdpa import (
    VDPASIM_BLK_FEATURES,
    VDPASIM_NET_FEATURES,
    SimMgmtDevSpec,
    SimVdpa,
    pci_net,
    vdpasim_blk,
    vdpasim_net,
)
from devmig.vdpa import family, records, virtio
from devmig.vdpa.backend import VdpaBackend, VdpaError, render_extack
from devmig.vdpa.family import Attr
from devmig.vdpa.records import BlkConfig, DevConfig, MgmtDev, NetConfig, VdpaDev, VqStats
from devmig.vdpa.virtio import VirtioId

PCI = "0000:03:00.2"


def refused(call: Callable[[], Any], err: int, extack: str | None = None) -> VdpaError:
    """Run a request the kernel refuses; check the errno and the exact extack (None: the kernel sends none)."""
    with pytest.raises(VdpaError) as info:
        call()
    assert (info.value.errno, info.value.extack) == (err, extack)
    return info.value


@pytest.fixture
def sim() -> SimVdpa:
    return SimVdpa()


# --- the seam ------------------------------------------------------------------------------------------------------


def test_sim_is_a_vdpa_backend() -> None:
    backend: VdpaBackend = SimVdpa()
    assert isinstance(backend, VdpaBackend)
    assert [m.handle for m in backend.mgmtdevs()] == ["vdpasim_net", "vdpasim_blk"]


def test_attribute_and_command_numbers_follow_the_uapi() -> None:
    assert (family.GENL_NAME, family.GENL_VERSION) == ("vdpa", 1)
    assert (family.Cmd.MGMTDEV_NEW, family.Cmd.DEV_VSTATS_GET, family.Cmd.DEV_ATTR_SET) == (1, 7, 8)
    assert (Attr.DEV_NET_CFG_MACADDR, Attr.DEV_FEATURES, Attr.DEV_BLK_CFG_CAPACITY) == (10, 20, 21)
    assert (Attr.DEV_BLK_FLUSH, max(Attr)) == (36, 36)
    assert set(family.ATTR_TYPES) == set(Attr)
    assert family.ATTR_TYPES[Attr.DEV_NET_STATUS] == "u16"
    assert family.NET_ATTRS_MASK == 0x3400


# --- feature names as iproute2 prints them -------------------------------------------------------------------------


def test_vdpasim_net_features_print_as_in_the_reference() -> None:
    assert VDPASIM_NET_FEATURES == 0x308830028
    assert virtio.feature_names(VDPASIM_NET_FEATURES) == [
        "MTU",
        "MAC",
        "STATUS",
        "CTRL_VQ",
        "CTRL_MAC_ADDR",
        "ANY_LAYOUT",
        "VERSION_1",
        "ACCESS_PLATFORM",
    ]


def test_unnamed_bits_are_bit_n_in_text_and_n_in_json() -> None:
    features = (1 << 5) | (1 << 4) | (1 << 40)
    assert virtio.feature_names(features) == ["bit_4", "MAC", "bit_40"]
    assert virtio.feature_names_json(features) == [4, "MAC", 40]


def test_other_device_types_get_only_transport_names() -> None:
    assert VDPASIM_BLK_FEATURES == 0x308007646
    assert virtio.feature_names(VDPASIM_BLK_FEATURES, VirtioId.BLOCK) == [
        "bit_1",
        "bit_2",
        "bit_6",
        "bit_9",
        "bit_10",
        "bit_12",
        "bit_13",
        "bit_14",
        "bit_27",
        "VERSION_1",
        "ACCESS_PLATFORM",
    ]
    assert virtio.feature_names(1 << 28 | 1 << 29 | 1 << 34 | 1 << 38, 0) == [
        "RING_INDIRECT_DESC",
        "RING_EVENT_IDX",
        "RING_PACKED",
        "NOTIFICATION_DATA",
    ]


def test_feature_names_parse_back() -> None:
    assert virtio.feature_bits(virtio.feature_names(VDPASIM_NET_FEATURES)) == VDPASIM_NET_FEATURES
    assert virtio.feature_bits(["MQ", "RSS", "bit_40"]) == (1 << 22) | (1 << 60) | (1 << 40)
    assert virtio.feature_bits(["VERSION_1"], VirtioId.BLOCK) == 1 << 32
    with pytest.raises(InputError, match="MAC"):
        virtio.feature_bits(["MAC"], VirtioId.BLOCK)
    with pytest.raises(InputError, match="bit_64"):
        virtio.feature_bits(["bit_64"])


def test_class_and_type_names() -> None:
    assert (virtio.class_name(1), virtio.class_name(2), virtio.class_name(3)) == ("net", "block", "< unknown class >")
    assert virtio.class_id("block") == VirtioId.BLOCK
    with pytest.raises(InputError, match="console"):
        virtio.class_id("console")
    dev = VdpaDev("x", "m", vendor_id=0, device_id=5, max_vqs=1, max_vq_size=1, min_vq_size=1)
    assert dev.type == "<unknown type>"


# --- management devices --------------------------------------------------------------------------------------------


def test_default_mgmtdevs_are_vdpa_sim(sim: SimVdpa) -> None:
    assert sim.mgmtdevs() == [
        MgmtDev(None, "vdpasim_net", ["net"], max_supported_vqs=3, dev_features=0x308830028),
        MgmtDev(None, "vdpasim_blk", ["block"], max_supported_vqs=0, dev_features=0),
    ]
    net, blk = sim.mgmtdevs()
    assert net.feature_device_id == VirtioId.NET
    assert " ".join(net.feature_names()) == "MTU MAC STATUS CTRL_VQ CTRL_MAC_ADDR ANY_LAYOUT VERSION_1 ACCESS_PLATFORM"
    assert (blk.feature_device_id, blk.feature_names()) == (0, [])


def test_mgmtdev_by_handle(sim: SimVdpa) -> None:
    assert sim.mgmtdev("vdpasim_blk").supported_classes == ["block"]
    err = refused(lambda: sim.mgmtdev("vdpa_sim_net"), errno.ENODEV, "vdpa: Fail to find the specified mgmt device")
    assert err.iproute2_lines() == [
        "Error: vdpa: Fail to find the specified mgmt device.",
        "kernel answers: No such device",
    ]
    # a bus name must match: vdpasim_net has none
    refused(lambda: sim.mgmtdev("pci/vdpasim_net"), errno.ENODEV, "vdpa: Fail to find the specified mgmt device")


def test_pci_mgmtdev_needs_its_bus_name() -> None:
    sim = SimVdpa([pci_net(PCI)])
    mgmt = sim.mgmtdev(f"pci/{PCI}")
    assert (mgmt.bus_name, mgmt.dev_name, mgmt.handle, mgmt.max_supported_vqs) == ("pci", PCI, f"pci/{PCI}", 17)
    refused(lambda: sim.mgmtdev(PCI), errno.ENODEV, "vdpa: Fail to find the specified mgmt device")
    refused(lambda: sim.add("v", PCI), errno.ENODEV, "vdpa: Fail to find the specified management device")


@pytest.mark.parametrize(
    ("handle", "parsed"),
    [("vdpasim_net", (None, "vdpasim_net")), (f"pci/{PCI}", ("pci", PCI)), ("auxiliary/mlx5_core.sf.1", None)],
)
def test_mgmtdev_handles(handle: str, parsed: tuple[str | None, str] | None) -> None:
    bus, name = records.parse_mgmtdev_handle(handle)
    assert records.mgmtdev_handle(bus, name) == handle
    if parsed is not None:
        assert (bus, name) == parsed


@pytest.mark.parametrize("handle", ["", "a/b/c", "/x", "pci/"])
def test_malformed_mgmtdev_handles_are_bad_input(sim: SimVdpa, handle: str) -> None:
    with pytest.raises(InputError):
        records.parse_mgmtdev_handle(handle)
    with pytest.raises(InputError):
        sim.add("v", handle)


def test_a_lab_cannot_register_one_mgmtdev_twice() -> None:
    with pytest.raises(InputError, match="vdpasim_net: registered twice"):
        SimVdpa([vdpasim_net(), vdpasim_net()])


# --- dev add / show / del ------------------------------------------------------------------------------------------


def test_add_a_vdpasim_net_device(sim: SimVdpa) -> None:
    dev = sim.add("foo2", "vdpasim_net")
    assert dev == VdpaDev("foo2", "vdpasim_net", vendor_id=0, device_id=1, max_vqs=3, max_vq_size=256, min_vq_size=1)
    assert dev.type == "network"
    assert sim.device("foo2") == dev
    assert sim.devices() == [dev]


def test_devices_list_in_creation_order_across_mgmtdevs(sim: SimVdpa) -> None:
    sim.add("b", "vdpasim_net")
    sim.add("a", "vdpasim_blk")
    sim.add("c", "vdpasim_net")
    assert [(d.name, d.mgmtdev, d.type) for d in sim.devices()] == [
        ("b", "vdpasim_net", "network"),
        ("a", "vdpasim_blk", "block"),
        ("c", "vdpasim_net", "network"),
    ]


def test_default_net_config(sim: SimVdpa) -> None:
    sim.add("bar", "vdpasim_net")
    cfg = sim.config("bar")
    assert cfg == DevConfig(
        "bar",
        VirtioId.NET,
        device_features=0x308830028,
        negotiated_features=None,
        net=NetConfig(mac="00:00:00:00:00:00", mtu=1500, status=1, max_vqp=None),
    )
    assert cfg.type == "network"
    assert cfg.net is not None
    assert (cfg.net.link_up, cfg.net.link_announce) == (True, False)


def test_add_with_mac_and_mtu(sim: SimVdpa) -> None:
    sim.add("bar", "vdpasim_net", mac="00:11:22:AA:b:c", mtu=9000)
    net = sim.config("bar").net
    assert net is not None
    assert (net.mac, net.mtu) == ("00:11:22:aa:0b:0c", 9000)


def test_provisioned_features_limit_the_device(sim: SimVdpa) -> None:
    features = (1 << virtio.F_NET_MAC) | (1 << virtio.F_VERSION_1)
    sim.add("bar", "vdpasim_net", device_features=features, mac="02:00:00:00:00:01")
    cfg = sim.config("bar")
    assert cfg.device_features == features
    # MTU and STATUS are no longer offered, so the kernel leaves them out of the config
    assert cfg.net == NetConfig(mac="02:00:00:00:00:01")
    assert cfg.net.link_up is None


def test_features_the_driver_does_not_have_are_refused_without_extack(sim: SimVdpa) -> None:
    err = refused(lambda: sim.add("bar", "vdpasim_net", device_features=1 << virtio.F_NET_MQ), errno.EINVAL)
    assert err.iproute2_lines() == ["kernel answers: Invalid argument"]
    assert sim.devices() == []


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        ({"mac": "02:00:00:00:00:01"}, 0x20),
        ({"mtu": 1500}, 0x8),
        ({"mac": "02:00:00:00:00:01", "mtu": 1500}, 0x28),
        ({"max_vqp": 2}, 0x400000),
    ],
)
def test_attributes_need_their_features(sim: SimVdpa, kwargs: dict[str, Any], missing: int) -> None:
    # checked before the mgmtdev is even looked up
    for mgmtdev in ("vdpasim_net", "nosuch"):
        refused(
            lambda: sim.add("bar", mgmtdev, device_features=1 << virtio.F_VERSION_1, **kwargs),  # noqa: B023
            errno.EINVAL,
            f"vdpa: Missing features 0x{missing:x} for provided attributes",
        )


def test_max_vqp_one_needs_no_mq() -> None:
    sim = SimVdpa([pci_net(PCI)])
    sim.add("v", f"pci/{PCI}", device_features=1 << virtio.F_VERSION_1, max_vqp=1)
    assert sim.config("v").net == NetConfig()


def test_zero_queue_pairs_are_refused(sim: SimVdpa) -> None:
    refused(lambda: sim.add("bar", "nosuch", max_vqp=0), errno.EINVAL, "vdpa: At least one pair of VQs is required")


def test_vdpasim_net_takes_no_max_vqp(sim: SimVdpa) -> None:
    """The example of Si-Wei Liu's commit 275487b4be89."""
    err = refused(
        lambda: sim.add("vdpasim0", "vdpasim_net", mtu=5000, max_vqp=2),
        errno.EOPNOTSUPP,
        "vdpa: Some provided attributes are not supported: 0x1000",
    )
    assert err.iproute2_lines() == [
        "Error: vdpa: Some provided attributes are not supported: 0x1000.",
        "kernel answers: Operation not supported",
    ]
    assert err.message == "dev add vdpasim0: " + "\n".join(err.iproute2_lines())


def test_unknown_mgmtdev(sim: SimVdpa) -> None:
    refused(lambda: sim.add("bar", "vdpa_sim_net"), errno.ENODEV, "vdpa: Fail to find the specified management device")


def test_duplicate_name_is_eexist_without_extack(sim: SimVdpa) -> None:
    sim.add("bar", "vdpasim_net")
    err = refused(lambda: sim.add("bar", "vdpasim_net"), errno.EEXIST)
    assert err.iproute2_lines() == ["kernel answers: File exists"]
    # names are unique on the whole vdpa bus
    refused(lambda: sim.add("bar", "vdpasim_blk"), errno.EEXIST)
    # the driver's own checks come first: registration is the last step
    refused(lambda: sim.add("bar", "vdpasim_net", device_features=1 << virtio.F_NET_MQ), errno.EINVAL)
    assert len(sim.devices()) == 1


@pytest.mark.parametrize(
    ("kwargs", "mask"),
    [
        ({"mac": "02:00:00:00:00:01"}, 0x400),
        ({"mtu": 1500}, 0x2000),
        ({"max_vqp": 1}, 0x1000),
        ({"device_features": 1 << virtio.F_VERSION_1}, 0x100000),
        ({"mac": "02:00:00:00:00:01", "mtu": 1500}, 0x2400),
    ],
)
def test_vdpasim_blk_takes_no_attribute(sim: SimVdpa, kwargs: dict[str, Any], mask: int) -> None:
    refused(
        lambda: sim.add("blk0", "vdpasim_blk", **kwargs),
        errno.EOPNOTSUPP,
        f"vdpa: Some provided attributes are not supported: 0x{mask:x}",
    )


def test_net_attributes_on_a_block_mgmtdev_that_accepts_them() -> None:
    blk = SimMgmtDevSpec(
        "blkdev", classes=(VirtioId.BLOCK,), config_attr_mask=family.attr_mask(Attr.DEV_NET_CFG_MACADDR)
    )
    sim = SimVdpa([blk])
    refused(
        lambda: sim.add("b", "blkdev", mac="02:00:00:00:00:01"),
        errno.EINVAL,
        "vdpa: Network class attributes provided on unsupported management device",
    )


def test_device_features_are_ambiguous_on_a_multi_class_mgmtdev() -> None:
    vduse = SimMgmtDevSpec(
        "vduse",
        classes=(VirtioId.NET, VirtioId.BLOCK),
        supported_features=VDPASIM_NET_FEATURES,
        config_attr_mask=family.attr_mask(Attr.DEV_NET_CFG_MTU, Attr.DEV_FEATURES),
    )
    sim = SimVdpa([vduse])
    assert sim.mgmtdev("vduse").supported_classes == ["net", "block"]
    refused(
        lambda: sim.add("v", "vduse", device_features=VDPASIM_NET_FEATURES),
        errno.EINVAL,
        "vdpa: Management device supports multi-class while device features specified are ambiguous",
    )
    # transport-only features, or a net attribute alongside, are not ambiguous
    sim.add("v1", "vduse", device_features=1 << virtio.F_VERSION_1)
    sim.add("v2", "vduse", device_features=VDPASIM_NET_FEATURES, mtu=1500)
    assert [d.device_id for d in sim.devices()] == [VirtioId.NET, VirtioId.NET]


@pytest.mark.parametrize("mtu", [0, 67])
def test_mtu_below_the_policy_minimum(sim: SimVdpa, mtu: int) -> None:
    err = refused(lambda: sim.add("bar", "vdpasim_net", mtu=mtu), errno.ERANGE, "integer out of range")
    assert err.iproute2_lines() == ["Error: integer out of range.", "kernel answers: Numerical result out of range"]


def test_mtu_at_the_policy_minimum(sim: SimVdpa) -> None:
    sim.add("bar", "vdpasim_net", mtu=68)
    assert sim.config("bar").net == NetConfig(mac="00:00:00:00:00:00", mtu=68, status=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mtu": 65536},
        {"mtu": -1},
        {"max_vqp": 1 << 16},
        {"device_features": 1 << 64},
        {"mac": "00:11:22:33:44"},
        {"mac": "00:11:22:33:44:5g"},
        {"mac": "001:11:22:33:44:55"},
    ],
)
def test_arguments_the_kernel_never_sees_are_bad_input(sim: SimVdpa, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError) as info:
        sim.add("bar", "vdpasim_net", **kwargs)
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_a_name_is_required(sim: SimVdpa) -> None:
    with pytest.raises(InputError, match="device name is not set"):
        sim.add("", "vdpasim_net")


def test_delete(sim: SimVdpa) -> None:
    sim.add("bar", "vdpasim_net")
    sim.add("baz", "vdpasim_net")
    sim.delete("bar")
    assert [d.name for d in sim.devices()] == ["baz"]
    sim.add("bar", "vdpasim_net")  # the name is free again
    assert [d.name for d in sim.devices()] == ["baz", "bar"]


@pytest.mark.parametrize(
    "request_",
    [
        lambda s: s.delete("nosuch"),
        lambda s: s.device("nosuch"),
        lambda s: s.config("nosuch"),
        lambda s: s.set("nosuch", mac="02:00:00:00:00:01"),
        lambda s: s.vstats("nosuch", 0),
    ],
)
def test_unknown_device(sim: SimVdpa, request_: Callable[[SimVdpa], Any]) -> None:
    err = refused(lambda: request_(sim), errno.ENODEV, "vdpa: device not found")
    assert err.iproute2_lines() == ["Error: vdpa: device not found.", "kernel answers: No such device"]


@pytest.mark.parametrize(
    "request_",
    [
        lambda s: s.add("new", "vdpasim_net"),
        lambda s: s.delete("bar"),
        lambda s: s.set("bar", mac="02:00:00:00:00:01"),
        lambda s: s.vstats("bar", 0),
    ],
)
def test_admin_requests_need_cap_net_admin(request_: Callable[[SimVdpa], Any]) -> None:
    sim = SimVdpa()
    sim.add("bar", "vdpasim_net")
    sim.negotiate("bar")
    sim.privileged = False
    err = refused(lambda: request_(sim), errno.EPERM)
    assert err.iproute2_lines() == ["kernel answers: Operation not permitted"]
    # reads are open to everyone
    assert [d.name for d in sim.devices()] == ["bar"]
    assert sim.device("bar").name == sim.config("bar").name == "bar"
    assert len(sim.mgmtdevs()) == 2


# --- block devices -------------------------------------------------------------------------------------------------


def test_vdpasim_blk_device(sim: SimVdpa) -> None:
    dev = sim.add("blk0", "vdpasim_blk")
    assert dev == VdpaDev("blk0", "vdpasim_blk", vendor_id=0, device_id=2, max_vqs=1, max_vq_size=256, min_vq_size=1)
    assert dev.type == "block"
    cfg = sim.config("blk0")
    assert (cfg.device_features, cfg.negotiated_features, cfg.net, cfg.type) == (0x308007646, None, None, "block")
    assert cfg.blk == BlkConfig(
        capacity=0x40000,
        read_only=False,
        flush=True,
        size_max=4096,
        blk_size=512,
        seg_max=32,
        num_queues=1,
        phy_blk_exp=0,
        align_offset=0,
        min_io_size=1,
        opt_io_size=1,
        max_discard_sec=0xFFFFFFFF,
        max_discard_seg=1,
        discard_sec_align=512,
        max_write_zeroes_sec=0xFFFFFFFF,
        max_write_zeroes_seg=1,
    )


def test_block_config_follows_the_offered_features() -> None:
    features = (1 << virtio.F_VERSION_1) | (1 << virtio.F_BLK_RO) | (1 << virtio.F_BLK_BLK_SIZE)
    sim = SimVdpa([SimMgmtDevSpec("blkdev", classes=(VirtioId.BLOCK,), device_features=features, device_vqs=1)])
    sim.add("b", "blkdev")
    assert sim.config("b").blk == BlkConfig(capacity=0x40000, read_only=True, flush=False, blk_size=512)


def test_config_of_other_device_types_is_not_supported() -> None:
    sim = SimVdpa([SimMgmtDevSpec("console", classes=(3,), device_vqs=2)])
    assert sim.mgmtdev("console").supported_classes == ["< unknown class >"]
    assert sim.add("c", "console").type == "<unknown type>"
    refused(lambda: sim.config("c"), errno.EOPNOTSUPP)


# --- dev set -------------------------------------------------------------------------------------------------------


def test_set_mac(sim: SimVdpa) -> None:
    sim.add("vdpa0", "vdpasim_net")
    assert sim.set("vdpa0", mac="00:11:22:33:44:55") is None
    net = sim.config("vdpa0").net
    assert net is not None
    assert net.mac == "00:11:22:33:44:55"


@pytest.mark.parametrize("mac", ["00:00:00:00:00:00", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff"])
def test_set_refuses_an_invalid_mac(sim: SimVdpa, mac: str) -> None:
    sim.add("vdpa0", "vdpasim_net")
    err = refused(lambda: sim.set("vdpa0", mac=mac), errno.EOPNOTSUPP, "vdpa: Invalid MAC address")
    assert err.iproute2_lines() == ["Error: vdpa: Invalid MAC address.", "kernel answers: Operation not supported"]


def test_set_without_an_attribute(sim: SimVdpa) -> None:
    sim.add("vdpa0", "vdpasim_net")
    refused(lambda: sim.set("vdpa0"), errno.EOPNOTSUPP)


def test_set_on_a_driver_without_dev_set_attr() -> None:
    sim = SimVdpa([SimMgmtDevSpec("plainnet", supported_features=VDPASIM_NET_FEATURES, device_vqs=3)])
    sim.add("v", "plainnet")
    err = refused(
        lambda: sim.set("v", mac="02:00:00:00:00:01"), errno.EOPNOTSUPP, "vdpa: Operation not supported by the device."
    )
    # the extack already ends with ".": iproute2 does not add another
    assert err.iproute2_lines()[0] == "Error: vdpa: Operation not supported by the device."


def test_set_on_a_block_device_succeeds_with_a_warning(sim: SimVdpa) -> None:
    sim.add("blk0", "vdpasim_blk")
    warning = sim.set("blk0", mac="02:00:00:00:00:01")
    assert warning == "vdpa: blk0 device not supported"
    assert render_extack(warning, error=False) == "Warning: vdpa: blk0 device not supported."


# --- vstats --------------------------------------------------------------------------------------------------------


def test_vstats_need_feature_negotiation(sim: SimVdpa) -> None:
    sim.add("vdpa-a", "vdpasim_net")
    refused(lambda: sim.vstats("vdpa-a", 0), errno.EAGAIN, "vdpa: feature negotiation not complete")
    assert sim.negotiate("vdpa-a") == VDPASIM_NET_FEATURES
    assert sim.vstats("vdpa-a", 0).stats["rx packets"] == 0
    sim.reset("vdpa-a")
    refused(lambda: sim.vstats("vdpa-a", 0), errno.EAGAIN, "vdpa: feature negotiation not complete")


def test_vdpasim_net_vstats(sim: SimVdpa) -> None:
    sim.add("vdpa-a", "vdpasim_net")
    sim.negotiate("vdpa-a")
    sim.count("vdpa-a", 0, "rx packets", 3)
    sim.count("vdpa-a", 0, "rx bytes", 180)
    sim.count("vdpa-a", 1, "tx packets")
    rx = sim.vstats("vdpa-a", 0)
    assert rx == VqStats(
        name="vdpa-a",
        device_id=VirtioId.NET,
        negotiated_features=VDPASIM_NET_FEATURES,
        max_vqp=None,
        queue_index=0,
        stats={"rx packets": 3, "rx bytes": 180, "rx errors": 0, "rx overruns": 0, "rx drops": 0},
    )
    assert list(rx.stats) == ["rx packets", "rx bytes", "rx errors", "rx overruns", "rx drops"]
    assert sim.vstats("vdpa-a", 1).stats == {"tx packets": 1, "tx bytes": 0, "tx errors": 0, "tx drops": 0}
    assert list(sim.vstats("vdpa-a", 2).stats) == ["cvq requests", "cvq successes", "cvq errors"]
    # iproute2's labels, with its quirk: no MQ means max_vqp 0, so queue 0 is the "control_vq"
    assert [sim.vstats("vdpa-a", q).queue_type for q in range(3)] == ["control_vq", "tx", "rx"]
    with pytest.raises(InputError, match="no statistic"):
        sim.count("vdpa-a", 0, "tx packets")


def test_vstats_queue_types_without_a_control_queue(sim: SimVdpa) -> None:
    sim.add("vdpa-a", "vdpasim_net")
    negotiated = sim.negotiate("vdpa-a", (1 << virtio.F_VERSION_1) | (1 << virtio.F_NET_MAC) | (1 << virtio.F_NET_MQ))
    # the device keeps only what it offers: vdpa_sim has no MQ
    assert negotiated == (1 << virtio.F_VERSION_1) | (1 << virtio.F_NET_MAC)
    assert sim.config("vdpa-a").negotiated_features == negotiated
    assert [sim.vstats("vdpa-a", q).queue_type for q in range(3)] == ["rx", "tx", "rx"]


@pytest.mark.parametrize(("qidx", "err", "extack"), [(3, errno.EINVAL, None), (0x8000, errno.EINVAL, None)])
def test_vstats_queue_beyond_the_driver(sim: SimVdpa, qidx: int, err: int, extack: str | None) -> None:
    sim.add("vdpa-a", "vdpasim_net")
    sim.negotiate("vdpa-a")
    refused(lambda: sim.vstats("vdpa-a", qidx), err, extack)


def test_vstats_queue_index_limit(sim: SimVdpa) -> None:
    sim.add("vdpa-a", "vdpasim_net")
    # checked by the vdpa core before the driver, and before feature negotiation
    refused(lambda: sim.vstats("vdpa-a", 0x8001), errno.ERANGE, "vdpa: queue index exceeds max value")
    with pytest.raises(InputError):
        sim.vstats("vdpa-a", 1 << 32)


def test_vstats_are_for_net_devices_only(sim: SimVdpa) -> None:
    sim.add("blk0", "vdpasim_blk")
    sim.negotiate("blk0")
    err = refused(lambda: sim.vstats("blk0", 0), errno.EOPNOTSUPP)
    assert err.iproute2_lines() == ["kernel answers: Operation not supported"]


def test_vstats_of_a_driver_without_statistics() -> None:
    sim = SimVdpa([SimMgmtDevSpec("plainnet", supported_features=VDPASIM_NET_FEATURES, device_vqs=3)])
    sim.add("v", "plainnet")
    refused(lambda: sim.vstats("v", 0), errno.EOPNOTSUPP)


# --- a hardware-like mgmtdev ---------------------------------------------------------------------------------------


def test_pci_net_mgmtdev_with_queue_pairs() -> None:
    sim = SimVdpa([pci_net(PCI, max_vqp=4)])
    features = (
        (1 << virtio.F_VERSION_1) | (1 << virtio.F_NET_MQ) | (1 << virtio.F_NET_CTRL_VQ) | (1 << virtio.F_NET_MAC)
    )
    dev = sim.add("vdpa0", f"pci/{PCI}", device_features=features, max_vqp=4, mac="02:00:00:00:00:01")
    assert (dev.mgmtdev, dev.vendor_id, dev.max_vqs) == (f"pci/{PCI}", 0x15B3, 9)
    assert sim.config("vdpa0").net == NetConfig(mac="02:00:00:00:00:01", max_vqp=4)
    sim.negotiate("vdpa0")
    stats = sim.vstats("vdpa0", 8)
    assert (stats.max_vqp, stats.queue_type) == (4, "control_vq")
    assert stats.stats == {"received_desc": 0, "completed_desc": 0}
    assert [sim.vstats("vdpa0", q).queue_type for q in (0, 1, 7)] == ["rx", "tx", "tx"]
    refused(lambda: sim.vstats("vdpa0", 9), errno.EINVAL)


def test_pci_net_limits() -> None:
    sim = SimVdpa([pci_net(PCI, max_vqp=4)])
    mq = (1 << virtio.F_VERSION_1) | (1 << virtio.F_NET_MQ) | (1 << virtio.F_NET_CTRL_VQ)
    refused(lambda: sim.add("vdpa0", f"pci/{PCI}", device_features=mq, max_vqp=5), errno.EINVAL)
    sim.add("vdpa0", f"pci/{PCI}")
    assert sim.device("vdpa0").max_vqs == 3  # one queue pair and the control queue
    refused(lambda: sim.add("vdpa1", f"pci/{PCI}"), errno.ENOSPC)
    sim.delete("vdpa0")
    sim.add("vdpa1", f"pci/{PCI}")


# --- errors and determinism ----------------------------------------------------------------------------------------


def test_vdpa_error_is_a_refusal() -> None:
    err = VdpaError(errno.ENODEV, "vdpa: device not found", request="dev del foo")
    assert isinstance(err, DevmigError)
    assert err.exit_code == ExitCode.REFUSED
    assert err.strerror == "No such device"
    assert str(err) == err.message == "dev del foo: Error: vdpa: device not found.\nkernel answers: No such device"
    assert str(VdpaError(errno.EEXIST)) == "kernel answers: File exists"


def test_render_extack() -> None:
    assert render_extack("vdpa: x") == "Error: vdpa: x."
    assert render_extack("done.") == "Error: done."
    assert render_extack("vdpa: y", error=False) == "Warning: vdpa: y."


def test_macs() -> None:
    assert family.parse_mac("0:1:a:BB:cc:Dd") == bytes([0, 1, 10, 0xBB, 0xCC, 0xDD])
    assert family.format_mac(bytes([0, 1, 10, 0xBB, 0xCC, 0xDD])) == "00:01:0a:bb:cc:dd"
    assert family.is_valid_ether_addr(bytes.fromhex("020000000001"))
    assert not family.is_valid_ether_addr(bytes.fromhex("030000000001"))
    assert not family.is_valid_ether_addr(bytes(6))


def test_the_simulator_is_deterministic() -> None:
    def run() -> list[object]:
        sim = SimVdpa([vdpasim_net(), vdpasim_blk(), pci_net(PCI)])
        sim.add("a", "vdpasim_net", mac="02:00:00:00:00:0a")
        sim.add("b", f"pci/{PCI}")
        sim.add("c", "vdpasim_blk")
        sim.negotiate("a")
        return [sim.mgmtdevs(), sim.devices(), [sim.config(n) for n in "abc"], sim.vstats("a", 1)]

    assert run() == run()
