"""devmig.vdpa.iproute2.render and .output print what iproute2's `vdpa` prints for the same answers, byte for byte.

The expected texts (the long ones in tests/golden/vdpa) are iproute2's output on vdpa_sim (reference/vdpa-netlink.md
§3 and §5; /usr/sbin/vdpa, iproute2 6.1.0, on Linux 6.12 in the kernel tier)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from devmig.vdpa.iproute2 import render
from devmig.vdpa.iproute2.output import Output, json_string
from devmig.vdpa.records import BlkConfig, DevConfig, MgmtDev, NetConfig, VdpaDev, VqStats
from devmig.vdpa.virtio import F_NET_CTRL_VQ, F_NET_MQ, VirtioId
from tests.golden import assert_golden

T = TypeVar("T")

NET = MgmtDev(None, "vdpasim_net", ["net"], 3, 0x308830028)
BLK = MgmtDev(None, "vdpasim_blk", ["block"], 0, 0)
VDPA0 = VdpaDev("vdpa0", "vdpasim_net", 0, VirtioId.NET, 3, 256, 1)
BLK0 = VdpaDev("blk0", "vdpasim_blk", 0, VirtioId.BLOCK, 1, 256, 1)
CONFIG = DevConfig("b", VirtioId.NET, 0x308830028, None, net=NetConfig(mac="00:11:22:33:44:55", mtu=9000, status=1))


def section(name: str, items: list[T], one: Callable[[Output, T], None], json: bool, pretty: bool) -> str:
    out = Output(json=json, pretty=pretty)
    out.section_start(name)
    for item in items:
        one(out, item)
    out.section_end()
    return out.finish()


def test_mgmtdev_text_keeps_iproute2s_layout() -> None:
    assert_golden("vdpa/mgmtdev-show.txt", section("mgmtdev", [NET, BLK], render.mgmtdev, False, False))


def test_mgmtdev_json_is_the_kernel_labs_line() -> None:
    assert_golden("vdpa/mgmtdev-show.json", section("mgmtdev", [NET, BLK], render.mgmtdev, True, False))


def test_mgmtdev_pretty_has_four_space_indents_and_inline_arrays() -> None:
    assert_golden("vdpa/mgmtdev-show.pretty.json", section("mgmtdev", [NET, BLK], render.mgmtdev, True, True))


def test_mgmtdev_on_a_bus_unknown_bits_and_classes_and_old_kernels() -> None:
    pci = MgmtDev("pci", "0000:03:00.2", ["net", "< unknown class >"], None, (1 << 40) | (1 << 5))
    assert section("mgmtdev", [pci], render.mgmtdev, False, False) == (
        "pci/0000:03:00.2: \n  supported_classes net < unknown class >\n  dev_features MAC bit_40\n"
    )
    assert section("mgmtdev", [pci], render.mgmtdev, True, False) == (
        '{"mgmtdev":{"pci/0000:03:00.2":{"supported_classes":["net","< unknown class >"],"dev_features":["MAC",40]}}}\n'
    )
    old = MgmtDev(None, "vdpasim_net", ["net"], None, None)  # a kernel before 5.17 sends neither
    assert section("mgmtdev", [old], render.mgmtdev, False, False) == "vdpasim_net: \n  supported_classes net\n"


def test_a_block_mgmtdev_names_no_net_feature() -> None:
    blk = MgmtDev(None, "vduse", ["block"], 1, (1 << 5) | (1 << 32))
    assert section("mgmtdev", [blk], render.mgmtdev, False, False).endswith("dev_features bit_5 VERSION_1\n")


def test_dev_show_text_json_and_pretty() -> None:
    assert section("dev", [VDPA0, BLK0], render.dev, False, False) == (
        "vdpa0: type network mgmtdev vdpasim_net vendor_id 0 max_vqs 3 max_vq_size 256\n"
        "blk0: type block mgmtdev vdpasim_blk vendor_id 0 max_vqs 1 max_vq_size 256\n"
    )
    assert section("dev", [VDPA0], render.dev, True, False) == (
        '{"dev":{"vdpa0":{"type":"network","mgmtdev":"vdpasim_net","vendor_id":0,"max_vqs":3,"max_vq_size":256}}}\n'
    )
    assert_golden("vdpa/dev-show-vdpa0.pretty.json", section("dev", [VDPA0], render.dev, True, True))


def test_an_unknown_device_type() -> None:
    odd = VdpaDev("x", "pci/0000:03:00.2", 0x15B3, 9, 2, 64, None)
    assert section("dev", [odd], render.dev, False, False) == (
        "x: type <unknown type> mgmtdev pci/0000:03:00.2 vendor_id 5555 max_vqs 2 max_vq_size 64\n"
    )


@pytest.mark.parametrize(("json", "pretty", "expected"), [(False, False, ""), (True, False, '{"dev":{}}\n')])
def test_an_empty_section(json: bool, pretty: bool, expected: str) -> None:
    assert section("dev", [], render.dev, json, pretty) == expected


def test_an_empty_section_pretty() -> None:
    assert section("vstats", [], render.vstats, True, True) == '{\n    "vstats": {}\n}\n'


def test_config_trailing_spaces_and_link_keys() -> None:
    assert section("config", [CONFIG], render.config, False, False) == (
        "b: mac 00:11:22:33:44:55 link up link_announce false mtu 9000 \n"
    )
    assert section("config", [CONFIG], render.config, True, False) == (
        '{"config":{"b":{"mac":"00:11:22:33:44:55","link ":"up","link_announce ":false,"mtu":9000}}}\n'
    )
    assert_golden("vdpa/config-show-b.pretty.json", section("config", [CONFIG], render.config, True, True))


def test_config_with_every_net_field_and_negotiated_features() -> None:
    negotiated = (1 << 5) | (1 << F_NET_MQ) | (1 << 32) | (1 << 50)
    cfg = DevConfig(
        "bar", VirtioId.NET, None, negotiated, net=NetConfig(mac="02:00:00:00:00:01", mtu=1500, status=2, max_vqp=2)
    )
    assert section("config", [cfg], render.config, False, False) == (
        "bar: mac 02:00:00:00:00:01 link down link_announce true max_vq_pairs 2 mtu 1500 \n"
        "  negotiated_features MAC MQ VERSION_1 bit_50\n"
    )
    assert section("config", [cfg], render.config, True, False) == (
        '{"config":{"bar":{"mac":"02:00:00:00:00:01","link ":"down","link_announce ":true,"max_vq_pairs":2,'
        '"mtu":1500,"negotiated_features":["MAC","MQ","VERSION_1",50]}}}\n'
    )


def test_config_of_a_block_device_is_its_name_alone() -> None:
    blk = DevConfig("blk0", VirtioId.BLOCK, 0x308007646, None, blk=BlkConfig(0x40000, False, True))
    assert section("config", [blk], render.config, False, False) == "blk0: \n"
    assert section("config", [blk], render.config, True, False) == '{"config":{"blk0":{}}}\n'
    assert section("config", [blk], render.config, True, True) == '{\n    "config": {\n        "blk0": {}\n    }\n}\n'


def test_config_without_any_net_field() -> None:
    bare = DevConfig("n", VirtioId.NET, 0, None, net=NetConfig())
    assert section("config", [bare], render.config, False, False) == "n: \n"


VSTATS = VqStats("vdpa-a", VirtioId.NET, 1 << F_NET_CTRL_VQ, None, 1, {"tx packets": 3, "tx bytes": 180})


def test_vstats_text_and_json() -> None:
    assert section("vstats", [VSTATS], render.vstats, False, False) == (
        "vdpa-a: queue_type tx tx packets 3 tx bytes 180 \n"
    )
    assert section("vstats", [VSTATS], render.vstats, True, False) == (
        '{"vstats":{"vdpa-a":{"queue_type":"tx","tx packets":3,"tx bytes":180}}}\n'
    )


@pytest.mark.parametrize(
    ("qidx", "max_vqp", "features", "queue_type"),
    [
        (0, None, 1 << F_NET_CTRL_VQ, "control_vq"),  # iproute2's quirk: max_vqp counts as 0 without MQ
        (0, None, 0, "rx"),
        (2, 1, 1 << F_NET_CTRL_VQ, "control_vq"),
        (2, 2, 1 << F_NET_CTRL_VQ, "rx"),
        (3, 2, 1 << F_NET_CTRL_VQ, "tx"),
        (4, 2, 1 << F_NET_CTRL_VQ, "control_vq"),
    ],
)
def test_vstats_queue_type(qidx: int, max_vqp: int | None, features: int, queue_type: str) -> None:
    stats = VqStats("v", VirtioId.NET, features, max_vqp, qidx, {"received_desc": 1, "completed_desc": 2})
    assert section("vstats", [stats], render.vstats, False, False) == (
        f"v: queue_type {queue_type} received_desc 1 completed_desc 2 \n"
    )


def test_vstats_of_another_type_prints_the_name_alone() -> None:
    stats = VqStats("b", VirtioId.BLOCK, 0, None, 0, {"x": 1})
    assert section("vstats", [stats], render.vstats, True, False) == '{"vstats":{"b":{}}}\n'


def test_json_strings_use_iproute2s_escapes() -> None:
    # seen from iproute2 6.1 for a device named q'u"o\te<TAB>x: the single quote is not escaped
    name = "q'u\"o\\te\tx"
    odd = VdpaDev(name, "vdpasim_net", 0, VirtioId.NET, 3, 256, 1)
    assert section("dev", [odd], render.dev, True, False).startswith('{"dev":{"q\'u\\"o\\\\te\\tx":{')
    assert section("dev", [odd], render.dev, False, False).startswith(f"{name}: type network")
    assert json_string("\r\f\b\n\x01\x7fé") == '"\\r\\f\\b\\n\x01\x7fé"'


def test_output_without_a_section_prints_only_the_json_newline() -> None:
    assert Output(json=True).finish() == "\n"
    assert Output(json=True, pretty=True).finish() == "\n"
    assert Output().finish() == ""
