"""The vdpa netlink client without a kernel: the codec (requests as sent, replies built with pyroute2's encoder or
as raw bytes), errors and acks, and the diagnosis of a host without the family (fake /proc and /sys roots)."""

from __future__ import annotations

import errno
import gzip
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST, nlmsgerr
from pyroute2.netlink.exceptions import NetlinkError

from devmig.errors import DevmigError, InputError
from devmig.vdpa.backend import VdpaBackend, VdpaError, VdpaUnavailableError
from devmig.vdpa.diagnose import missing_family, permission_hint
from devmig.vdpa.family import ATTR_TYPES, Attr, Cmd
from devmig.vdpa.netlink import NLA_TYPES, NetlinkVdpa, VdpaMsg, ack_extack, decode, encode
from devmig.vdpa.records import BlkConfig, DevConfig, MgmtDev, NetConfig, VdpaDev, VqStats

PRID = 0x1B
PAD = (Attr.PAD, None)  # the kernel's alignment padding before a u64 (nla_put_u64_64bit): a bare 4-byte attribute


def wire(msg: Any) -> bytes:
    msg.encode()
    return bytes(msg.data)


def reply(cmd: Cmd, attrs: Sequence[tuple[Attr, Any]], extra: bytes = b"") -> VdpaMsg:
    """A message as the kernel would send it: encoded, `extra` raw attributes appended, decoded from the bytes."""
    data = bytearray(wire(encode(cmd, attrs)) + extra)
    struct.pack_into("=I", data, 0, len(data))
    msg = VdpaMsg(bytes(data))
    msg.decode()
    return msg


def raw_nla(kind: int, payload: bytes) -> bytes:
    nla = struct.pack("=HH", 4 + len(payload), kind) + payload
    return nla + b"\0" * (-len(nla) % 4)


def ack(warning: str | None = None, *, capped: bool = True) -> nlmsgerr:
    """An NLMSG_ERROR with error 0, as the kernel acks a request: the request's header echoed (the whole request
    when not capped), then the extack TLV if there is a message."""
    request = wire(encode(Cmd.DEV_ATTR_SET, [(Attr.DEV_NAME, "vb0")]))
    echoed = request[:16] if capped else request
    tlvs = raw_nla(1, warning.encode() + b"\0") if warning is not None else b""
    flags = (NLM_F_CAPPED if capped else 0) | (NLM_F_ACK_TLVS if tlvs else 0)
    body = struct.pack("=i", 0) + echoed + tlvs
    data = struct.pack("=IHHII", 16 + len(body), 2, flags, 7, 0) + body
    msg = nlmsgerr(data)
    msg.decode()
    return msg


class FakeSocket:
    """Plays the kernel's side of one conversation: records each request (decoded from its bytes) and answers with
    the next canned messages, or raises the next exception."""

    prid = PRID

    def __init__(self, *answers: Sequence[Any] | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[int, list[tuple[Attr, Any]], int, bytes]] = []
        self.closed = False

    def nlm_request(self, msg: Any, msg_type: int, msg_flags: int) -> Sequence[Any]:
        assert msg_type == PRID
        data = wire(msg)
        request = VdpaMsg(data)
        request.decode()
        assert request["version"] == 1
        self.sent.append((request["cmd"], decode(request), msg_flags, data))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


def client(*answers: Sequence[Any] | Exception, root: Path | str = "/") -> tuple[NetlinkVdpa, FakeSocket]:
    sock = FakeSocket(*answers)
    return NetlinkVdpa(sock=sock, root=root), sock


DOIT = NLM_F_REQUEST | NLM_F_ACK
DUMP = NLM_F_REQUEST | NLM_F_DUMP
NET_MGMTDEV = [
    (Attr.MGMTDEV_DEV_NAME, "vdpasim_net"),
    PAD,
    (Attr.MGMTDEV_SUPPORTED_CLASSES, 1 << 1),
    (Attr.DEV_MGMTDEV_MAX_VQS, 3),
    PAD,
    (Attr.DEV_SUPPORTED_FEATURES, 0x308830028),
]
NET_DEV = [
    (Attr.MGMTDEV_DEV_NAME, "vdpasim_net"),
    (Attr.DEV_NAME, "vdpa0"),
    (Attr.DEV_ID, 1),
    (Attr.DEV_VENDOR_ID, 0),
    (Attr.DEV_MAX_VQS, 3),
    (Attr.DEV_MAX_VQ_SIZE, 256),
    (Attr.DEV_MIN_VQ_SIZE, 1),
]
VDPA0 = VdpaDev("vdpa0", "vdpasim_net", vendor_id=0, device_id=1, max_vqs=3, max_vq_size=256, min_vq_size=1)


# --- the table -----------------------------------------------------------------------------------------------------


def test_the_message_class_is_the_attribute_table() -> None:
    assert [(num, name) for num, name, _ in VdpaMsg.nla_map] == [(a, f"VDPA_ATTR_{a.name}") for a in Attr]
    assert {Attr(num): kind for num, _, kind in VdpaMsg.nla_map} == {a: NLA_TYPES[t] for a, t in ATTR_TYPES.items()}
    kinds = {Attr(num): kind for num, _, kind in VdpaMsg.nla_map}
    assert kinds[Attr.DEV_NET_STATUS] == "uint16"  # the kernel puts a u16 although the uapi comment says u8
    assert kinds[Attr.DEV_NAME] == "asciiz" and kinds[Attr.DEV_NET_CFG_MACADDR] == "cdata"


def test_netlink_client_is_a_vdpa_backend() -> None:
    nl, _ = client()
    assert isinstance(nl, VdpaBackend)


# --- requests as sent ----------------------------------------------------------------------------------------------


def test_dumps_send_no_attributes_and_parse_every_reply() -> None:
    blk = [(Attr.MGMTDEV_DEV_NAME, "vdpasim_blk"), (Attr.MGMTDEV_SUPPORTED_CLASSES, 1 << 2)]
    blk += [(Attr.DEV_MGMTDEV_MAX_VQS, 0), PAD, (Attr.DEV_SUPPORTED_FEATURES, 0)]
    nl, sock = client([reply(Cmd.MGMTDEV_NEW, NET_MGMTDEV), reply(Cmd.MGMTDEV_NEW, blk)])
    assert nl.mgmtdevs() == [
        MgmtDev(None, "vdpasim_net", ["net"], max_supported_vqs=3, dev_features=0x308830028),
        MgmtDev(None, "vdpasim_blk", ["block"], max_supported_vqs=0, dev_features=0),
    ]
    assert sock.sent[0][:3] == (Cmd.MGMTDEV_GET, [], DUMP)


def test_mgmtdev_handle_with_a_bus() -> None:
    pci = [(Attr.MGMTDEV_BUS_NAME, "pci"), (Attr.MGMTDEV_DEV_NAME, "0000:03:00.2")]
    nl, sock = client([reply(Cmd.MGMTDEV_NEW, [*pci, (Attr.MGMTDEV_SUPPORTED_CLASSES, (1 << 1) | (1 << 9))])])
    got = nl.mgmtdev("pci/0000:03:00.2")
    # an old kernel sends no max vqs or features; a class iproute2 does not know keeps its place
    assert got == MgmtDev("pci", "0000:03:00.2", ["net", "< unknown class >"], None, None)
    assert got.handle == "pci/0000:03:00.2"
    assert sock.sent[0][:3] == (Cmd.MGMTDEV_GET, pci, DOIT)


def test_names_are_sent_nul_terminated() -> None:
    nl, sock = client([reply(Cmd.DEV_NEW, NET_DEV)])
    assert nl.device("vdpa0") == VDPA0
    cmd, attrs, flags, data = sock.sent[0]
    assert (cmd, attrs, flags) == (Cmd.DEV_GET, [(Attr.DEV_NAME, "vdpa0")], DOIT)
    assert data[20:] == raw_nla(Attr.DEV_NAME, b"vdpa0\0")  # after nlmsghdr (16) and genlmsghdr (4)


def test_add_sends_every_option_then_reads_the_device_back() -> None:
    nl, sock = client([ack()], [reply(Cmd.DEV_NEW, NET_DEV)])
    got = nl.add("vdpa0", "vdpasim_net", device_features=0x300000028, mac="00:11:22:AA:bb:0c", mtu=9000, max_vqp=4)
    assert got == VDPA0
    assert [s[:3] for s in sock.sent] == [
        (
            Cmd.DEV_NEW,
            [
                (Attr.MGMTDEV_DEV_NAME, "vdpasim_net"),
                (Attr.DEV_NAME, "vdpa0"),
                (Attr.DEV_NET_CFG_MACADDR, bytes.fromhex("001122aabb0c")),
                (Attr.DEV_NET_CFG_MTU, 9000),
                (Attr.DEV_NET_CFG_MAX_VQP, 4),
                (Attr.DEV_FEATURES, 0x300000028),
            ],
            DOIT,
        ),
        (Cmd.DEV_GET, [(Attr.DEV_NAME, "vdpa0")], DOIT),
    ]


def test_add_without_options_sends_the_handle_and_name_only() -> None:
    nl, sock = client([ack()], [reply(Cmd.DEV_NEW, NET_DEV)])
    nl.add("vdpa0", "vdpasim_net")
    assert sock.sent[0][1] == [(Attr.MGMTDEV_DEV_NAME, "vdpasim_net"), (Attr.DEV_NAME, "vdpa0")]


@pytest.mark.parametrize(
    "options",
    [{"mac": "00:11:22:33:44"}, {"mtu": 65536}, {"max_vqp": -1}, {"device_features": 1 << 64}, {"mtu": True}],
)
def test_add_arguments_that_do_not_fit_are_refused_before_sending(options: dict[str, Any]) -> None:
    nl, sock = client()
    with pytest.raises(InputError):
        nl.add("vdpa0", "vdpasim_net", **options)
    assert sock.sent == []


@pytest.mark.parametrize(("name", "mgmtdev"), [("", "vdpasim_net"), ("vdpa0", ""), ("vdpa0", "a/b/c")])
def test_add_without_a_name_or_handle(name: str, mgmtdev: str) -> None:
    nl, sock = client()
    with pytest.raises(InputError):
        nl.add(name, mgmtdev)
    assert sock.sent == []


def test_delete_and_set() -> None:
    nl, sock = client([ack()], [ack()], [ack()])
    nl.delete("vdpa0")
    assert nl.set("vdpa0", mac="00:aa:bb:cc:dd:ee") is None
    assert nl.set("vdpa0") is None
    assert [s[:3] for s in sock.sent] == [
        (Cmd.DEV_DEL, [(Attr.DEV_NAME, "vdpa0")], DOIT),
        (Cmd.DEV_ATTR_SET, [(Attr.DEV_NAME, "vdpa0"), (Attr.DEV_NET_CFG_MACADDR, bytes.fromhex("00aabbccddee"))], DOIT),
        (Cmd.DEV_ATTR_SET, [(Attr.DEV_NAME, "vdpa0")], DOIT),
    ]


@pytest.mark.parametrize("capped", [True, False])
def test_a_warning_in_the_ack_is_returned(capped: bool) -> None:
    nl, _ = client([ack("vdpa: vb0 device not supported", capped=capped)])
    assert nl.set("vb0", mac="00:aa:bb:cc:dd:ee") == "vdpa: vb0 device not supported"


def test_ack_extack_reads_raw_acks() -> None:
    for capped in (True, False):
        msg = ack("vdpa: x", capped=capped)
        assert ack_extack(bytes(msg.data)) == "vdpa: x"
        assert ack_extack(b"\0" * 8 + bytes(msg.data), 8) == "vdpa: x"  # at an offset in a bigger buffer
        assert ack_extack(bytes(ack(capped=capped).data)) is None


# --- replies -------------------------------------------------------------------------------------------------------


def test_devices_dump_with_a_bus() -> None:
    pci = [(Attr.MGMTDEV_BUS_NAME, "pci"), (Attr.MGMTDEV_DEV_NAME, "0000:03:00.2")]
    old = [*pci, *NET_DEV[1:-1]]  # a 5.12 kernel: no MIN_VQ_SIZE
    nl, sock = client([reply(Cmd.DEV_NEW, NET_DEV), reply(Cmd.DEV_NEW, old)])
    assert nl.devices() == [
        VDPA0,
        VdpaDev("vdpa0", "pci/0000:03:00.2", vendor_id=0, device_id=1, max_vqs=3, max_vq_size=256, min_vq_size=None),
    ]
    assert sock.sent[0][:3] == (Cmd.DEV_GET, [], DUMP)


def test_net_config() -> None:
    attrs = [
        (Attr.DEV_NAME, "vdpa0"),
        (Attr.DEV_ID, 1),
        PAD,
        (Attr.DEV_NEGOTIATED_FEATURES, 0x300400028),
        PAD,
        (Attr.DEV_FEATURES, 0x308C30028),
        (Attr.DEV_NET_CFG_MTU, 1500),
        (Attr.DEV_NET_CFG_MACADDR, bytes.fromhex("525400123456")),
        (Attr.DEV_NET_STATUS, 3),
        (Attr.DEV_NET_CFG_MAX_VQP, 4),
    ]
    nl, sock = client([reply(Cmd.DEV_CONFIG_GET, attrs)])
    config = nl.config("vdpa0")
    assert config == DevConfig(
        "vdpa0", 1, 0x308C30028, 0x300400028, net=NetConfig(mac="52:54:00:12:34:56", mtu=1500, status=3, max_vqp=4)
    )
    assert config.net is not None and (config.net.link_up, config.net.link_announce) == (True, True)
    assert sock.sent[0][:3] == (Cmd.DEV_CONFIG_GET, [(Attr.DEV_NAME, "vdpa0")], DOIT)


def test_net_config_only_what_the_features_offer() -> None:
    attrs = [(Attr.DEV_NAME, "vdpa0"), (Attr.DEV_ID, 1), PAD, (Attr.DEV_FEATURES, 0x300000020)]
    attrs.append((Attr.DEV_NET_CFG_MACADDR, bytes(6)))
    nl, _ = client([reply(Cmd.DEV_CONFIG_GET, attrs)])
    assert nl.config("vdpa0") == DevConfig("vdpa0", 1, 0x300000020, None, net=NetConfig(mac="00:00:00:00:00:00"))


def test_block_config() -> None:
    attrs = [(Attr.DEV_NAME, "vb0"), (Attr.DEV_ID, 2), PAD, (Attr.DEV_FEATURES, 0x308007646)]
    attrs += [(Attr.DEV_BLK_CFG_CAPACITY, 0x40000), (Attr.DEV_BLK_CFG_SIZE_MAX, 4096), (Attr.DEV_BLK_CFG_SEG_MAX, 32)]
    attrs += [(Attr.DEV_BLK_CFG_BLK_SIZE, 512), (Attr.DEV_BLK_CFG_NUM_QUEUES, 1), (Attr.DEV_BLK_CFG_PHY_BLK_EXP, 0)]
    attrs += [(Attr.DEV_BLK_CFG_MAX_DISCARD_SEC, 0xFFFF_FFFF), (Attr.DEV_BLK_READ_ONLY, 0), (Attr.DEV_BLK_FLUSH, 1)]
    nl, _ = client([reply(Cmd.DEV_CONFIG_GET, attrs)])
    blk = BlkConfig(0x40000, read_only=False, flush=True, size_max=4096, blk_size=512, seg_max=32, num_queues=1)
    blk = BlkConfig(**{**blk.__dict__, "phy_blk_exp": 0, "max_discard_sec": 0xFFFF_FFFF})
    assert nl.config("vb0") == DevConfig("vb0", 2, 0x308007646, None, blk=blk)


def test_block_config_from_a_kernel_before_6_9() -> None:
    nl, _ = client([reply(Cmd.DEV_CONFIG_GET, [(Attr.DEV_NAME, "vb0"), (Attr.DEV_ID, 2)])])
    assert nl.config("vb0") == DevConfig("vb0", 2, None, None)


def test_vstats_pairs_keep_the_kernels_order() -> None:
    attrs = [
        (Attr.DEV_NAME, "vdpa0"),
        (Attr.DEV_ID, 1),
        PAD,
        (Attr.DEV_NEGOTIATED_FEATURES, 0x300420028),
        (Attr.DEV_NET_CFG_MAX_VQP, 2),
        (Attr.DEV_QUEUE_INDEX, 1),
    ]
    for name, value in [("tx packets", 7), ("tx bytes", 700), ("tx errors", 0), ("tx drops", 1)]:
        attrs += [(Attr.DEV_VENDOR_ATTR_NAME, name), PAD, (Attr.DEV_VENDOR_ATTR_VALUE, value)]
    nl, sock = client([reply(Cmd.DEV_VSTATS_GET, attrs)])
    stats = nl.vstats("vdpa0", 1)
    assert stats == VqStats(
        "vdpa0", 1, 0x300420028, 2, 1, {"tx packets": 7, "tx bytes": 700, "tx errors": 0, "tx drops": 1}
    )
    assert list(stats.stats) == ["tx packets", "tx bytes", "tx errors", "tx drops"]
    assert sock.sent[0][:3] == (Cmd.DEV_VSTATS_GET, [(Attr.DEV_NAME, "vdpa0"), (Attr.DEV_QUEUE_INDEX, 1)], DOIT)


def test_vstats_qidx_must_fit_u32() -> None:
    nl, sock = client()
    with pytest.raises(InputError):
        nl.vstats("vdpa0", 1 << 32)
    assert sock.sent == []


def test_attributes_of_a_newer_kernel_are_skipped() -> None:
    newer = raw_nla(40, struct.pack("=I", 5)) + raw_nla(41, b"x\0")
    nl, _ = client([reply(Cmd.DEV_NEW, NET_DEV, extra=newer)])
    assert nl.device("vdpa0") == VDPA0


def test_a_reply_without_a_required_attribute() -> None:
    nl, _ = client([reply(Cmd.DEV_NEW, NET_DEV[1:])])
    with pytest.raises(DevmigError, match=r"^vdpa DEV_NEW reply: no VDPA_ATTR_MGMTDEV_DEV_NAME, which the kernel"):
        nl.device("vdpa0")


def test_a_doit_answered_by_more_than_one_message() -> None:
    nl, _ = client([reply(Cmd.DEV_NEW, NET_DEV), reply(Cmd.DEV_NEW, NET_DEV)])
    with pytest.raises(DevmigError, match="dev show vdpa0: expected one vdpa reply, the kernel sent 2"):
        nl.device("vdpa0")


# --- errors --------------------------------------------------------------------------------------------------------


def test_refusals_keep_errno_and_extack() -> None:
    nl, _ = client(
        NetlinkError(errno.ENODEV, "vdpa: device not found"),
        NetlinkError(errno.EEXIST),  # pyroute2 fills in strerror when the kernel sent no message
        NetlinkError(errno.ERANGE, "integer out of range"),
    )
    with pytest.raises(VdpaError) as info:
        nl.config("nosuch")
    assert (info.value.errno, info.value.extack, info.value.hint) == (errno.ENODEV, "vdpa: device not found", None)
    assert (
        info.value.message == "dev config show nosuch: Error: vdpa: device not found.\nkernel answers: No such device"
    )
    with pytest.raises(VdpaError) as info:
        nl.add("vdpa0", "vdpasim_net")
    assert (info.value.errno, info.value.extack) == (errno.EEXIST, None)
    assert info.value.iproute2_lines() == ["kernel answers: File exists"]
    with pytest.raises(VdpaError) as info:
        nl.add("vdpa0", "vdpasim_net", mtu=67)
    assert (info.value.errno, info.value.extack) == (errno.ERANGE, "integer out of range")


@pytest.mark.parametrize(
    ("call", "request_text"),
    [
        (lambda nl: nl.add("vdpa0", "vdpasim_net"), "dev add vdpa0"),
        (lambda nl: nl.delete("vdpa0"), "dev del vdpa0"),
        (lambda nl: nl.set("vdpa0", mac="00:11:22:33:44:55"), "dev set vdpa0"),
        (lambda nl: nl.vstats("vdpa0", 0), "dev vstats show vdpa0 qidx 0"),
    ],
)
def test_eperm_on_admin_commands_is_explained(tmp_path: Path, call: Any, request_text: str) -> None:
    root = FakeRoot(tmp_path, cap_eff="0000000000000000")
    nl, _ = client(NetlinkError(errno.EPERM), root=root.path)
    with pytest.raises(VdpaError) as info:
        call(nl)
    err = info.value
    assert (err.errno, err.extack) == (errno.EPERM, None)  # as the kernel sent it
    assert err.iproute2_lines() == ["kernel answers: Operation not permitted"]
    assert err.hint is not None and err.hint.startswith(f"hint: {request_text} needs CAP_NET_ADMIN")
    assert err.message == f"{request_text}: kernel answers: Operation not permitted\n{err.hint}"


def test_eperm_on_a_read_has_no_hint() -> None:
    nl, _ = client(NetlinkError(errno.EPERM))
    with pytest.raises(VdpaError) as info:
        nl.devices()
    assert info.value.hint is None


def test_close_and_context_manager() -> None:
    sock = FakeSocket()
    with NetlinkVdpa(sock=sock) as nl:
        pass
    assert sock.closed
    nl.close()  # twice is fine
    with pytest.raises(VdpaUnavailableError, match="closed"):
        nl.devices()


# --- no family here ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(Path("/sys/bus/vdpa").exists(), reason="this machine has the vdpa core")
def test_this_machine_has_no_family_and_says_why(tmp_path: Path) -> None:
    with pytest.raises(VdpaUnavailableError) as info:
        NetlinkVdpa()
    assert info.value.message.startswith('no "vdpa" generic-netlink family in the running kernel ')
    assert '(iproute2: "Failed to connect to vdpa Netlink")' in info.value.message
    # the diagnosis reads the injected root
    root = FakeRoot(tmp_path, config="# CONFIG_VDPA is not set\n")
    with pytest.raises(VdpaUnavailableError) as info:
        NetlinkVdpa(root=root.path)
    assert "kernel 6.12.0-test is built without CONFIG_VDPA" in info.value.message


class FakeRoot:
    """A /proc, /sys, /boot tree for the diagnosis."""

    def __init__(
        self,
        tmp: Path,
        *,
        release: str = "6.12.0-test",
        config: str | None = None,
        config_at: str = "boot",
        modules: Sequence[str] = (),
        sys_vdpa: bool = False,
        netns: tuple[str, str] | None = ("net:[4026531840]", "net:[4026531840]"),
        userns: tuple[str, str] | None = ("user:[4026531837]", "user:[4026531837]"),
        cap_eff: str | None = None,
    ) -> None:
        self.path = tmp / "root"
        self.release = release
        proc = self.path / "proc"
        (proc / "sys/kernel").mkdir(parents=True)
        (proc / "sys/kernel/osrelease").write_text(f"{release}\n")
        (proc / "modules").write_text("".join(f"{m} 16384 0 - Live 0x0\n" for m in modules))
        places = {
            "boot": self.path / f"boot/config-{release}",
            "headers": self.path / f"usr/src/linux-headers-{release}/.config",
        }
        if config is not None and config_at == "proc":
            (proc / "config.gz").write_bytes(gzip.compress(config.encode()))
        elif config is not None:
            places[config_at].parent.mkdir(parents=True)
            places[config_at].write_text(config)
        if sys_vdpa:
            (self.path / "sys/bus/vdpa/devices").mkdir(parents=True)
        for kind, links in (("net", netns), ("user", userns)):
            if links is None:
                continue
            for pid, target in zip(("self", "1"), links, strict=True):
                (proc / pid / "ns").mkdir(parents=True, exist_ok=True)
                (proc / pid / "ns" / kind).symlink_to(target)
        if cap_eff is not None:
            (proc / "self/status").write_text(f"Name:\tdevmig\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\n")


def findings(root: FakeRoot) -> list[str]:
    head, *lines = missing_family(root.path).splitlines()
    assert head == (
        f'no "vdpa" generic-netlink family in the running kernel {root.release} '
        '(iproute2: "Failed to connect to vdpa Netlink"); what is needed:'
    )
    assert all(line.startswith("  - ") for line in lines)
    return [line[4:] for line in lines]


def test_diagnosis_kernel_without_vdpa(tmp_path: Path) -> None:
    root = FakeRoot(tmp_path, config="CONFIG_NET=y\n# CONFIG_VDPA is not set\n")
    assert findings(root) == [
        f"kernel 6.12.0-test is built without CONFIG_VDPA ({root.path}/boot/config-6.12.0-test): no module can add "
        "the family; boot a kernel built with CONFIG_VDPA=m or =y"
    ]


def test_diagnosis_module_not_loaded(tmp_path: Path) -> None:
    config = "CONFIG_VDPA=m\nCONFIG_VDPA_USER=m\n# CONFIG_VDPA_SIM_NET is not set\nCONFIG_MLX5_VDPA_NET=m\n"
    root = FakeRoot(tmp_path, config=config, config_at="headers")
    assert findings(root) == [
        "the vdpa core is not loaded (/sys/bus/vdpa is missing; CONFIG_VDPA=m): `modprobe vdpa`",
        "no management-device driver is loaded: `modprobe` one this kernel builds: vduse (devices implemented in "
        "userspace, VDUSE), mlx5_vdpa (NVIDIA ConnectX)",
    ]


def test_diagnosis_from_proc_config_gz(tmp_path: Path) -> None:
    root = FakeRoot(tmp_path, config="CONFIG_VDPA=m\n", config_at="proc")
    assert findings(root) == [
        "the vdpa core is not loaded (/sys/bus/vdpa is missing; CONFIG_VDPA=m): `modprobe vdpa`",
        "no management-device driver is loaded, and this kernel builds none (CONFIG_VDPA_SIM_NET, ...)",
    ]


def test_diagnosis_without_a_kernel_config(tmp_path: Path) -> None:
    root = FakeRoot(tmp_path)
    got = findings(root)
    assert got[0] == (
        "the config of kernel 6.12.0-test was not found (/boot/config-6.12.0-test, "
        "/usr/src/linux-headers-6.12.0-test/.config, /proc/config.gz): whether it has CONFIG_VDPA is unknown"
    )
    assert got[1] == "the vdpa core is not loaded (/sys/bus/vdpa is missing): `modprobe vdpa`"
    assert got[2].startswith("no management-device driver is loaded: load the one for your device (vdpa_sim_net, ")
    assert len(got) == 3


def test_diagnosis_another_network_namespace(tmp_path: Path) -> None:
    root = FakeRoot(
        tmp_path,
        config="CONFIG_VDPA=m\nCONFIG_VDPA_SIM_NET=m\n",
        modules=("vdpa_sim_net", "vdpa_sim", "vdpa"),
        sys_vdpa=True,
        netns=("net:[4026532169]", "net:[4026531840]"),
    )
    assert findings(root) == [
        "this process runs in network namespace net:[4026532169], not the initial one (net:[4026531840]); the vdpa "
        "family is registered with netnsok=false, so it exists only there: run it in the initial namespace, e.g. "
        "`nsenter --net=/proc/1/ns/net devmig ...`",
        "management-device drivers present: vdpa_sim_net (`devmig vdpa mgmtdev show` lists their devices)",
    ]


def test_diagnosis_unreadable_init_namespace_and_builtin_drivers(tmp_path: Path) -> None:
    # /proc/1/ns/net needs privileges: nothing is said about namespaces then; a built-in driver counts as present
    root = FakeRoot(tmp_path, config="CONFIG_VDPA=y\nCONFIG_VDPA_SIM_BLK=y\n", sys_vdpa=True, netns=None)
    assert findings(root) == [
        "management-device drivers present: vdpa_sim_blk (`devmig vdpa mgmtdev show` lists their devices)"
    ]


def test_diagnosis_builtin_core_without_sysfs(tmp_path: Path) -> None:
    root = FakeRoot(tmp_path, config="CONFIG_VDPA=y\n")
    assert findings(root)[0] == "/sys/bus/vdpa is missing although CONFIG_VDPA=y: is sysfs mounted at /sys?"


def test_diagnosis_sysfs_of_another_kernel(tmp_path: Path) -> None:
    root = FakeRoot(tmp_path, config="# CONFIG_VDPA is not set\n", sys_vdpa=True)
    assert findings(root)[1] == "/sys/bus/vdpa exists although the config has no CONFIG_VDPA: is /sys this kernel's?"


def test_permission_hint(tmp_path: Path) -> None:
    without = FakeRoot(tmp_path / "a", cap_eff="000001ffffffefff")
    assert permission_hint("dev add vdpa0", without.path) == (
        "hint: dev add vdpa0 needs CAP_NET_ADMIN (the vdpa family marks it GENL_ADMIN_PERM) and this process does "
        "not have it (CapEff 000001ffffffefff): run it as root (e.g. sudo)"
    )
    container = FakeRoot(tmp_path / "b", cap_eff="000001ffffffffff", userns=("user:[4026532200]", "user:[4026531837]"))
    assert permission_hint("dev del vdpa0", container.path) == (
        "hint: dev del vdpa0 needs CAP_NET_ADMIN (the vdpa family marks it GENL_ADMIN_PERM) in the initial user "
        "namespace; this process has it only in its own (user:[4026532200], the initial one is user:[4026531837]): "
        "run it on the host, outside the container"
    )
    unknown = FakeRoot(tmp_path / "c")
    assert permission_hint("dev set vdpa0", unknown.path) == (
        "hint: dev set vdpa0 needs CAP_NET_ADMIN (the vdpa family marks it GENL_ADMIN_PERM) in the initial user "
        "namespace: run it as root on the host"
    )
