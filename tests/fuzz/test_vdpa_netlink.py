"""Fuzzing the vdpa netlink client with the kernel's side played by bytes: replies with random attribute lists,
attributes of the wrong length or type, lying lengths, truncated messages, errors with or without extacks. The
bytes go through pyroute2's parser as they would from the socket, then through devmig's decoder, the iproute2
rendering and devmig's formats (host.vdpa): every step gives a result or a DevmigError."""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink import NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.marshal import Marshal

from devmig.errors import DevmigError
from devmig.host import vdpa as vdpa_formats
from devmig.vdpa.family import ATTR_TYPES, Attr, Cmd
from devmig.vdpa.iproute2 import render
from devmig.vdpa.iproute2.output import Output
from devmig.vdpa.netlink import NetlinkVdpa, VdpaMsg, decode, encode
from tests.fuzz.harness import fuzz, outcome

PRID = 0x1B
INTS = {"u8": "=B", "u16": "=H", "u32": "=I", "u64": "=Q"}


def nla(kind: int, payload: bytes, length: int | None = None) -> bytes:
    head = struct.pack("=HH", 4 + len(payload) if length is None else length, kind)
    raw = head + payload
    return raw + b"\0" * (-len(raw) % 4)


def message(msg_type: int, body: bytes, *, flags: int = 0, length_delta: int = 0) -> bytes:
    return struct.pack("=IHHII", max(0, 16 + len(body) + length_delta), msg_type, flags, 1, 0) + body


def genl(cmd: int, attrs: bytes, **kwargs: Any) -> bytes:
    return message(PRID, struct.pack("=BBH", cmd, 1, 0) + attrs, **kwargs)


ATTR_NUMBERS = st.sampled_from(list(Attr)) | st.integers(0, 0xFFFF)
STRINGS = st.text(max_size=20) | st.sampled_from(["vdpasim_net", "a b", "pci", "x/y", ""])
MOSTLY = st.integers(0, 3)  # 0: a value of another size, else one of the right type
LENGTH_LIES = st.none() | st.none() | st.integers(0, 40)  # None: the true length
INT_VALUES = {kind: st.integers(0, 2 ** (8 * struct.calcsize(fmt)) - 1) for kind, fmt in INTS.items()}
MACS = st.binary(min_size=6, max_size=6)
NOISE = st.binary(max_size=12)


@st.composite
def attribute(draw: st.DrawFn) -> bytes:
    """One attribute: of a known number with a value of its type (or of another size), or an unknown number."""
    attr = draw(ATTR_NUMBERS)
    kind = ATTR_TYPES.get(Attr(attr)) if attr in set(Attr) else None
    if kind in INTS and draw(MOSTLY):
        payload = struct.pack(INTS[str(kind)], draw(INT_VALUES[str(kind)]))
    elif kind == "string" and draw(MOSTLY):
        payload = draw(STRINGS).encode("utf-8", "surrogatepass") + b"\0"
    elif kind == "binary" and draw(MOSTLY):
        payload = draw(MACS)
    else:
        payload = draw(NOISE)
    return nla(attr, payload, draw(LENGTH_LIES))


# the attributes each reply must carry to be decoded at all: cases start from them, then add noise
REQUIRED: dict[Cmd, list[tuple[Attr, str, Any]]] = {
    Cmd.MGMTDEV_NEW: [(Attr.MGMTDEV_DEV_NAME, "string", "vdpasim_net"), (Attr.MGMTDEV_SUPPORTED_CLASSES, "u64", 2)],
    Cmd.DEV_NEW: [
        (Attr.DEV_NAME, "string", "vdpa0"),
        (Attr.MGMTDEV_DEV_NAME, "string", "vdpasim_net"),
        (Attr.DEV_VENDOR_ID, "u32", 0),
        (Attr.DEV_ID, "u32", 1),
        (Attr.DEV_MAX_VQS, "u32", 3),
        (Attr.DEV_MAX_VQ_SIZE, "u16", 256),
    ],
    Cmd.DEV_CONFIG_GET: [
        (Attr.DEV_NAME, "string", "vdpa0"),
        (Attr.DEV_ID, "u32", 1),
        (Attr.DEV_FEATURES, "u64", 0x1_0000_0020),
    ],
    Cmd.DEV_VSTATS_GET: [
        (Attr.DEV_NAME, "string", "vdpa0"),
        (Attr.DEV_ID, "u32", 1),
        (Attr.DEV_NEGOTIATED_FEATURES, "u64", 1 << 17),
        (Attr.DEV_QUEUE_INDEX, "u32", 0),
        (Attr.DEV_VENDOR_ATTR_NAME, "string", "received_desc"),
        (Attr.DEV_VENDOR_ATTR_VALUE, "u64", 7),
    ],
}


def _typed(attr: Attr, kind: str, value: Any) -> bytes:
    if kind == "string":
        return nla(attr, str(value).encode() + b"\0")
    return nla(attr, struct.pack(INTS[kind], value))


MESSAGES = st.integers(0, 3)
KEEP = st.integers(0, 9)  # 0: a required attribute left out
NOISY_ATTRS = st.lists(attribute(), max_size=6)
LENGTH_DELTAS = st.sampled_from([0, 0, 0, -3, 5])
ERRORS = st.sampled_from([0, -errno.ENODEV, -errno.EPERM, -errno.EINVAL, 5])
EXTACKS = st.binary(max_size=20)


@st.composite
def reply(draw: st.DrawFn, cmd: Cmd) -> bytes:
    """The kernel's answer to one request: messages of the family (the required attributes, some left out or
    changed, plus random ones), maybe an error or a DONE, maybe cut short."""
    messages = []
    for _ in range(draw(MESSAGES)):
        attrs = [_typed(*item) for item in REQUIRED[cmd] if draw(KEEP)]
        attrs += draw(NOISY_ATTRS)
        attrs = draw(st.permutations(attrs))
        reply_cmd = draw(st.sampled_from([int(cmd), 0, 99]))
        messages.append(genl(reply_cmd, b"".join(attrs), length_delta=draw(LENGTH_DELTAS)))
    if draw(st.booleans()):
        echoed = genl(int(cmd), b"")[:16]
        tlv = nla(1, draw(EXTACKS) + b"\0") if draw(st.booleans()) else b""
        messages.append(
            message(NLMSG_ERROR, struct.pack("=i", draw(ERRORS)) + echoed + tlv, flags=0x300 if tlv else 0x100)
        )
    if draw(st.booleans()):
        messages.append(message(NLMSG_DONE, struct.pack("=i", 0)))
    data = b"".join(messages)
    if data and draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


class KernelBytes:
    """A socket whose replies are bytes parsed as pyroute2 parses what the kernel sent; an error message in them
    is raised as pyroute2 raises it."""

    prid = PRID

    def __init__(self, data: bytes) -> None:
        self.data = data

    def nlm_request(self, msg: Any, msg_type: int, msg_flags: int) -> Sequence[Any]:
        marshal = Marshal()
        marshal.msg_map = {PRID: VdpaMsg}
        parsed = list(marshal.parse(self.data))
        for reply_msg in parsed:
            error = reply_msg["header"].get("error")
            if error is not None:
                raise error
        return parsed

    def close(self) -> None:
        pass


def _render(show: Callable[[Output, Any], None], value: Any) -> None:
    for as_json in (False, True):
        out = Output(json=as_json)
        show(out, value)
        out.finish()


REQUESTS: dict[Cmd, Callable[[NetlinkVdpa], Any]] = {
    Cmd.MGMTDEV_NEW: lambda c: [*c.mgmtdevs(), c.mgmtdev("pci/0000:03:00.2")],
    Cmd.DEV_NEW: lambda c: [*c.devices(), c.device("vdpa0")],
    Cmd.DEV_CONFIG_GET: lambda c: [c.config("vdpa0")],
    Cmd.DEV_VSTATS_GET: lambda c: [c.vstats("vdpa0", 0)],
}


@fuzz(share=1.0)
@given(st.sampled_from(list(REQUESTS)), st.data())
def test_replies(cmd: Cmd, data: st.DataObject) -> None:
    client = NetlinkVdpa(sock=KernelBytes(data.draw(reply(cmd))))
    answers = outcome("vdpa netlink", lambda: REQUESTS[cmd](client))
    if isinstance(answers, DevmigError):
        return
    for answer in answers:
        if cmd is Cmd.MGMTDEV_NEW:
            outcome("vdpa render", lambda answer=answer: _render(render.mgmtdev, answer))  # type: ignore[misc]
            outcome("vdpa formats", lambda answer=answer: vdpa_formats.capabilities(answer))  # type: ignore[misc]
        elif cmd is Cmd.DEV_NEW:
            outcome("vdpa render", lambda answer=answer: _render(render.dev, answer))  # type: ignore[misc]
        elif cmd is Cmd.DEV_CONFIG_GET:
            outcome("vdpa render", lambda answer=answer: _render(render.config, answer))  # type: ignore[misc]
            for device in answers_for_descriptor(answer):
                outcome("vdpa formats", lambda device=device, answer=answer: vdpa_formats.descriptor(device, answer))  # type: ignore[misc]
        else:
            outcome("vdpa render", lambda answer=answer: _render(render.vstats, answer))  # type: ignore[misc]


def answers_for_descriptor(config: Any) -> list[Any]:
    """Devices to describe with a config: one like vdpa_sim's, and one whose fields come from the config."""
    from devmig.vdpa.records import VdpaDev

    return [
        VdpaDev("vdpa0", "vdpasim_net", 0, 1, 3, 256, 1),
        VdpaDev(config.name, config.name or "x", 0, config.device_id, 3, 256, None),
    ]


#: a value of each attribute type as the codec takes it (a string has no NUL: the kernel's strings end at one)
TYPED_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20),
    "binary": st.binary(max_size=16),
    **INT_VALUES,
}
TYPED_ATTRS = st.lists(
    st.sampled_from([attr for attr in Attr if attr is not Attr.PAD]).flatmap(
        lambda attr: TYPED_VALUES[ATTR_TYPES[attr]].map(lambda value: (attr, value))
    ),
    max_size=8,
)


@fuzz(share=0.2)
@given(st.sampled_from(list(Cmd)), TYPED_ATTRS)
def test_the_codec_round_trips(cmd: Cmd, attrs: list[tuple[Attr, Any]]) -> None:
    """What `encode` builds, on the wire and parsed back as a reply, `decode`s to the same attributes in order."""
    msg = encode(cmd, attrs)
    msg["header"]["type"] = PRID
    msg.encode()
    marshal = Marshal()
    marshal.msg_map = {PRID: VdpaMsg}
    (parsed,) = marshal.parse(bytes(msg.data))
    assert parsed["cmd"] == int(cmd)
    assert outcome("vdpa decode", lambda: decode(parsed)) == attrs
