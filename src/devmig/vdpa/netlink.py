"""The vdpa generic-netlink family of the running kernel, over pyroute2: `NetlinkVdpa` implements `VdpaBackend`.

One codec, driven by the attribute table (`family.ATTR_TYPES`): `VdpaMsg`'s nla_map is generated from it, requests
are lists of (Attr, value) and replies are read back in the order the kernel sent them. Requests go as iproute2's do:
NLM_F_DUMP when no object is named, NLM_F_ACK otherwise, extended acks on so the kernel's own error text comes back.

A refusal becomes `VdpaError(errno, extack)` with the extack exactly as the kernel sent it (None when it sent none);
an EPERM also carries a hint saying what CAP_NET_ADMIN means here. A kernel without the family gives
`VdpaUnavailableError` with a diagnosis (`devmig.vdpa.diagnose`) instead of iproute2's "Failed to connect".
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol

from pyroute2.netlink import NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_REQUEST, genlmsg, nlmsgerr
from pyroute2.netlink.exceptions import NetlinkDecodeError, NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket

from devmig.errors import DevmigError, InputError
from devmig.vdpa.backend import VdpaError, VdpaUnavailableError
from devmig.vdpa.diagnose import missing_family, permission_hint
from devmig.vdpa.family import (
    ATTR_TYPES,
    GENL_NAME,
    GENL_VERSION,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    Attr,
    Cmd,
    check_uint,
    format_mac,
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
from devmig.vdpa.virtio import VirtioId, class_name

__all__ = ["NLA_TYPES", "NetlinkVdpa", "VdpaMsg", "decode", "encode"]

#: the attribute table's types as pyroute2 NLA types; strings are sent NUL-terminated (the kernel strcmp()s them)
NLA_TYPES: dict[str, str] = {
    "pad": "none",
    "string": "asciiz",
    "binary": "cdata",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
}
PREFIX = "VDPA_ATTR_"
_BY_NAME: dict[str, Attr] = {f"{PREFIX}{attr.name}": attr for attr in Attr}


class VdpaMsg(genlmsg):  # type: ignore[misc]  # pyroute2 has no type hints
    """A vdpa family message; its attributes come from `ATTR_TYPES`, numbered as in the uapi."""

    prefix = PREFIX
    nla_map = tuple((int(attr), f"{PREFIX}{attr.name}", NLA_TYPES[kind]) for attr, kind in ATTR_TYPES.items())


#: what a request's value is as pyroute2 encodes it (MAC addresses are their six bytes)
Attrs = Sequence[tuple[Attr, Any]]


def encode(cmd: Cmd, attrs: Attrs) -> VdpaMsg:
    """A request (or, in tests, a reply): the generic header and the attributes in the order given."""
    msg = VdpaMsg()
    msg["cmd"] = int(cmd)
    msg["version"] = GENL_VERSION
    msg["attrs"] = [[f"{PREFIX}{attr.name}", value] for attr, value in attrs]
    return msg


#: what pyroute2 gives for each attribute type when the kernel sent what the table says; for an attribute of
#: another size (or a string that is not NUL-terminated UTF-8) it gives the raw bytes instead
_PY_TYPES: dict[str, type] = {"string": str, "binary": bytes, "u8": int, "u16": int, "u32": int, "u64": int}


def decode(msg: Any) -> list[tuple[Attr, Any]]:
    """A reply's attributes in the kernel's order, without PAD and without attributes this table does not know
    (a newer kernel's: pyroute2 names them UNKNOWN). An attribute that does not hold its type is an error."""
    out: list[tuple[Attr, Any]] = []
    for name, value in msg.get("attrs") or ():
        attr = _BY_NAME.get(name)
        if attr is None or attr is Attr.PAD:
            continue
        kind = ATTR_TYPES[attr]
        if not isinstance(value, _PY_TYPES[kind]):
            shown = repr(value)[:40]
            raise DevmigError(f"vdpa reply: VDPA_ATTR_{attr.name} does not hold a {kind}: the kernel sent {shown}")
        out.append((attr, value))
    return out


class GenlSocket(Protocol):
    """What NetlinkVdpa uses of pyroute2's GenericNetlinkSocket (a test passes a fake)."""

    @property
    def prid(self) -> int: ...

    def nlm_request(self, msg: Any, msg_type: int, msg_flags: int) -> Sequence[Any]: ...

    def close(self) -> None: ...


def _open_socket(root: str | os.PathLike[str]) -> GenlSocket:
    """A generic-netlink socket bound to "vdpa", or VdpaUnavailableError saying what the host lacks."""
    try:
        sock = GenericNetlinkSocket(ext_ack=True)
    except OSError as exc:
        raise VdpaUnavailableError(f"netlink socket for the vdpa family: {exc.strerror or exc}") from None
    # pyroute2 logs "Generic netlink protocol vdpa not found" at error level; the diagnosis below says more.
    # (0.9 keeps the setting on its asyncio core, older versions on the socket itself.)
    getattr(sock, "asyncore", sock).module_err_level = "debug"
    try:
        sock.bind(GENL_NAME, VdpaMsg)
    except NetlinkError as exc:
        sock.close()
        if exc.code == errno.ENOENT:  # nlctrl has no such family
            raise VdpaUnavailableError(missing_family(root)) from None
        raise VdpaUnavailableError(f'generic-netlink family "{GENL_NAME}": resolving it failed: {exc}') from None
    return sock  # type: ignore[no-any-return]


def _extack(exc: NetlinkError) -> str | None:
    """The kernel's extack text. pyroute2 puts NLMSGERR_ATTR_MSG in args[1], or os.strerror(code) when the kernel
    sent none; no kernel message is a bare strerror text, so that means "none"."""
    text = exc.args[1] if len(exc.args) > 1 else None
    if not isinstance(text, str) or not text or text == os.strerror(exc.code):
        return None
    return text


NLMSG_HDRLEN = 16
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER


def _align(n: int) -> int:
    return (n + 3) & ~3


def ack_extack(data: bytes, offset: int = 0) -> str | None:
    """The extack text (NLMSGERR_ATTR_MSG) of an NLMSG_ERROR message at `offset`, or None.

    pyroute2 cannot read it from a successful ack: the kernel caps those (NLM_F_CAPPED, only the request's header is
    echoed) and pyroute2 always skips a whole echoed request, so the TLVs are lost. An ack is: our nlmsghdr, the
    error code, the request's nlmsghdr (capped) or whole request, then the TLVs."""
    length, _type, flags = struct.unpack_from("=IHH", data, offset)
    if not flags & NLM_F_ACK_TLVS:
        return None
    echoed = offset + NLMSG_HDRLEN + 4
    (echoed_len,) = struct.unpack_from("=I", data, echoed)
    pos = echoed + (NLMSG_HDRLEN if flags & NLM_F_CAPPED else _align(echoed_len))
    end = min(offset + length, len(data))
    while pos + 4 <= end:
        nla_len, nla_type = struct.unpack_from("=HH", data, pos)
        if nla_len < 4:
            break
        if nla_type & NLA_TYPE_MASK == NLMSGERR_ATTR_MSG:
            return data[pos + 4 : pos + nla_len].split(b"\0", 1)[0].decode(errors="replace")
        pos += _align(nla_len)
    return None


#: the commands the family marks GENL_ADMIN_PERM: an EPERM on them means CAP_NET_ADMIN is missing
ADMIN_CMDS = frozenset({Cmd.DEV_NEW, Cmd.DEV_DEL, Cmd.DEV_VSTATS_GET, Cmd.DEV_ATTR_SET})


class NetlinkVdpa:
    """The running kernel's vdpa family. The socket is opened (and the family resolved) here, so a host without
    vdpa raises `VdpaUnavailableError` at once; `close()` or a `with` block releases it.

    `root` is where the diagnosis reads /proc, /sys and the kernel config; `sock` replaces the socket (tests)."""

    def __init__(self, *, root: str | os.PathLike[str] = "/", sock: GenlSocket | None = None) -> None:
        self._root = root
        self._sock: GenlSocket | None = sock if sock is not None else _open_socket(root)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> NetlinkVdpa:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the family ------------------------------------------------------------------------------------------

    def mgmtdevs(self) -> list[MgmtDev]:
        return [_mgmtdev(msg) for msg in self._dump(Cmd.MGMTDEV_GET, "mgmtdev show")]

    def mgmtdev(self, handle: str) -> MgmtDev:
        request = f"mgmtdev show {handle}"
        return _mgmtdev(self._get(Cmd.MGMTDEV_GET, _handle_attrs(handle), request))

    def devices(self) -> list[VdpaDev]:
        return [_dev(msg) for msg in self._dump(Cmd.DEV_GET, "dev show")]

    def device(self, name: str) -> VdpaDev:
        return _dev(self._get(Cmd.DEV_GET, [(Attr.DEV_NAME, name)], f"dev show {name}"))

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
        # What iproute2 refuses before sending, or what does not fit the attributes' types.
        if not name:
            raise InputError("device name is not set.")
        attrs: list[tuple[Attr, Any]] = [*_handle_attrs(mgmtdev), (Attr.DEV_NAME, name)]
        optional: list[tuple[Attr, Any, Callable[[Any], Any]]] = [
            (Attr.DEV_NET_CFG_MACADDR, mac, parse_mac),
            (Attr.DEV_NET_CFG_MTU, mtu, lambda v: check_uint("mtu", v, U16_MAX)),
            (Attr.DEV_NET_CFG_MAX_VQP, max_vqp, lambda v: check_uint("max_vqp", v, U16_MAX)),
            (Attr.DEV_FEATURES, device_features, lambda v: check_uint("device_features", v, U64_MAX)),
        ]
        attrs += [(attr, convert(value)) for attr, value, convert in optional if value is not None]
        self._do(Cmd.DEV_NEW, attrs, f"dev add {name}")
        return self.device(name)

    def delete(self, name: str) -> None:
        self._do(Cmd.DEV_DEL, [(Attr.DEV_NAME, name)], f"dev del {name}")

    def config(self, name: str) -> DevConfig:
        return _config(self._get(Cmd.DEV_CONFIG_GET, [(Attr.DEV_NAME, name)], f"dev config show {name}"))

    def set(self, name: str, *, mac: str | None = None) -> str | None:
        attrs: list[tuple[Attr, Any]] = [(Attr.DEV_NAME, name)]
        if mac is not None:
            attrs.append((Attr.DEV_NET_CFG_MACADDR, parse_mac(mac)))
        return self._do(Cmd.DEV_ATTR_SET, attrs, f"dev set {name}")

    def vstats(self, name: str, qidx: int) -> VqStats:
        request = f"dev vstats show {name} qidx {qidx}"
        attrs = [(Attr.DEV_NAME, name), (Attr.DEV_QUEUE_INDEX, check_uint("qidx", qidx, U32_MAX))]
        return _vstats(self._get(Cmd.DEV_VSTATS_GET, attrs, request))

    # --- requests ----------------------------------------------------------------------------------------------

    def _dump(self, cmd: Cmd, request: str) -> list[Any]:
        """A dump: every object, in the kernel's order (the family ignores attributes on dumps)."""
        return self._replies(self._request(cmd, [], NLM_F_REQUEST | NLM_F_DUMP, request))

    def _get(self, cmd: Cmd, attrs: Attrs, request: str) -> Any:
        """A doit that answers with one message."""
        replies = self._replies(self._request(cmd, attrs, NLM_F_REQUEST | NLM_F_ACK, request))
        if len(replies) != 1:
            raise DevmigError(f"{request}: expected one vdpa reply, the kernel sent {len(replies)}")
        return replies[0]

    def _do(self, cmd: Cmd, attrs: Attrs, request: str) -> str | None:
        """A doit that answers with an ack only; returns the ack's extack (a warning) if the kernel sent one."""
        for msg in self._request(cmd, attrs, NLM_F_REQUEST | NLM_F_ACK, request):
            if isinstance(msg, nlmsgerr):
                return ack_extack(bytes(msg.data), msg.offset)
        return None

    def _request(self, cmd: Cmd, attrs: Attrs, flags: int, request: str) -> Sequence[Any]:
        if self._sock is None:
            raise VdpaUnavailableError(f"{request}: the vdpa netlink client is closed")
        try:
            return self._sock.nlm_request(encode(cmd, attrs), msg_type=self._sock.prid, msg_flags=flags)
        except NetlinkError as exc:
            hint = permission_hint(request, self._root) if exc.code == errno.EPERM and cmd in ADMIN_CMDS else None
            raise VdpaError(exc.code, _extack(exc), request=request, hint=hint) from None
        except (struct.error, NetlinkDecodeError) as exc:
            # pyroute2 parses the reply inside the request: a truncated or malformed one fails in its decoder
            raise DevmigError(f"{request}: the kernel's reply cannot be decoded: {exc}") from None

    @staticmethod
    def _replies(messages: Sequence[Any]) -> list[Any]:
        """The family's messages, without acks (nlmsgerr with error 0)."""
        return [msg for msg in messages if isinstance(msg, VdpaMsg)]


def _handle_attrs(handle: str) -> list[tuple[Attr, Any]]:
    """A "[bus/]name" handle as MGMTDEV_BUS_NAME (when there is a bus) and MGMTDEV_DEV_NAME."""
    bus_name, dev_name = parse_mgmtdev_handle(handle)
    bus: list[tuple[Attr, Any]] = [(Attr.MGMTDEV_BUS_NAME, bus_name)] if bus_name else []
    return [*bus, (Attr.MGMTDEV_DEV_NAME, dev_name)]


# --- replies into the backend's data ---------------------------------------------------------------------------


class _Reply(dict[Attr, Any]):
    """A reply's attributes by number (the first of each; only vstats repeats attributes, read in order there)."""

    def __init__(self, msg: Any) -> None:
        super().__init__()
        self.cmd = msg["cmd"]
        for attr, value in decode(msg):
            self.setdefault(attr, value)

    def __missing__(self, attr: Attr) -> Any:
        cmd = Cmd(self.cmd).name if self.cmd in set(Cmd) else str(self.cmd)
        raise DevmigError(f"vdpa {cmd} reply: no VDPA_ATTR_{attr.name}, which the kernel always sends with it")


def _mgmtdev(msg: Any) -> MgmtDev:
    a = _Reply(msg)
    classes = a.get(Attr.MGMTDEV_SUPPORTED_CLASSES, 0)
    return MgmtDev(
        bus_name=a.get(Attr.MGMTDEV_BUS_NAME),
        dev_name=a[Attr.MGMTDEV_DEV_NAME],
        supported_classes=[class_name(bit) for bit in range(1, 64) if classes & (1 << bit)],
        max_supported_vqs=a.get(Attr.DEV_MGMTDEV_MAX_VQS),
        dev_features=a.get(Attr.DEV_SUPPORTED_FEATURES),
    )


def _dev(msg: Any) -> VdpaDev:
    a = _Reply(msg)
    return VdpaDev(
        name=a[Attr.DEV_NAME],
        mgmtdev=mgmtdev_handle(a.get(Attr.MGMTDEV_BUS_NAME), a[Attr.MGMTDEV_DEV_NAME]),
        vendor_id=a[Attr.DEV_VENDOR_ID],
        device_id=a[Attr.DEV_ID],
        max_vqs=a[Attr.DEV_MAX_VQS],
        max_vq_size=a[Attr.DEV_MAX_VQ_SIZE],
        min_vq_size=a.get(Attr.DEV_MIN_VQ_SIZE),
    )


#: config attributes -> NetConfig / BlkConfig fields (an absent attribute leaves the field None)
NET_CONFIG_FIELDS: dict[Attr, str] = {
    Attr.DEV_NET_CFG_MACADDR: "mac",
    Attr.DEV_NET_CFG_MTU: "mtu",
    Attr.DEV_NET_STATUS: "status",
    Attr.DEV_NET_CFG_MAX_VQP: "max_vqp",
}
BLK_CONFIG_FIELDS: dict[Attr, str] = {
    Attr.DEV_BLK_CFG_SIZE_MAX: "size_max",
    Attr.DEV_BLK_CFG_BLK_SIZE: "blk_size",
    Attr.DEV_BLK_CFG_SEG_MAX: "seg_max",
    Attr.DEV_BLK_CFG_NUM_QUEUES: "num_queues",
    Attr.DEV_BLK_CFG_PHY_BLK_EXP: "phy_blk_exp",
    Attr.DEV_BLK_CFG_ALIGN_OFFSET: "align_offset",
    Attr.DEV_BLK_CFG_MIN_IO_SIZE: "min_io_size",
    Attr.DEV_BLK_CFG_OPT_IO_SIZE: "opt_io_size",
    Attr.DEV_BLK_CFG_MAX_DISCARD_SEC: "max_discard_sec",
    Attr.DEV_BLK_CFG_MAX_DISCARD_SEG: "max_discard_seg",
    Attr.DEV_BLK_CFG_DISCARD_SEC_ALIGN: "discard_sec_align",
    Attr.DEV_BLK_CFG_MAX_WRITE_ZEROES_SEC: "max_write_zeroes_sec",
    Attr.DEV_BLK_CFG_MAX_WRITE_ZEROES_SEG: "max_write_zeroes_seg",
}


def _config(msg: Any) -> DevConfig:
    a = _Reply(msg)
    device_id = a[Attr.DEV_ID]
    net = blk = None
    if device_id == VirtioId.NET:
        fields = {field: a[attr] for attr, field in NET_CONFIG_FIELDS.items() if attr in a}
        if "mac" in fields:
            fields["mac"] = format_mac(fields["mac"])
        net = NetConfig(**fields)
    elif device_id == VirtioId.BLOCK and Attr.DEV_BLK_CFG_CAPACITY in a:  # block config is sent from 6.9 on
        blk = BlkConfig(
            capacity=a[Attr.DEV_BLK_CFG_CAPACITY],
            read_only=bool(a.get(Attr.DEV_BLK_READ_ONLY, 0)),
            flush=bool(a.get(Attr.DEV_BLK_FLUSH, 0)),
            **{field: a[attr] for attr, field in BLK_CONFIG_FIELDS.items() if attr in a},
        )
    return DevConfig(
        name=a[Attr.DEV_NAME],
        device_id=device_id,
        device_features=a.get(Attr.DEV_FEATURES),
        negotiated_features=a.get(Attr.DEV_NEGOTIATED_FEATURES),
        net=net,
        blk=blk,
    )


def _vstats(msg: Any) -> VqStats:
    a = _Reply(msg)
    # The vendor statistics are repeated (NAME, VALUE) pairs: pair each value with the name sent just before it.
    stats: dict[str, int] = {}
    name: str | None = None
    for attr, value in decode(msg):
        if attr is Attr.DEV_VENDOR_ATTR_NAME:
            name = value
        elif attr is Attr.DEV_VENDOR_ATTR_VALUE and name is not None:
            stats[name] = value
            name = None
    return VqStats(
        name=a[Attr.DEV_NAME],
        device_id=a[Attr.DEV_ID],
        negotiated_features=a[Attr.DEV_NEGOTIATED_FEATURES],
        max_vqp=a.get(Attr.DEV_NET_CFG_MAX_VQP),
        queue_index=a[Attr.DEV_QUEUE_INDEX],
        stats=stats,
    )
