"""devmig.host.genl: whether the running kernel has a generic-netlink family, asked of nlctrl without pyroute2."""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import pytest

from devmig.testing.ci import missing_prerequisite
from devmig.vdpa import genl


def test_the_request_is_ctrl_getfamily_with_the_name() -> None:
    msg = genl._request("vdpa")
    length, msg_type, flags, _seq, _pid = struct.unpack_from("=IHHII", msg)
    assert (length, msg_type, flags) == (len(msg), genl.GENL_ID_CTRL, genl.NLM_F_REQUEST)
    assert msg[16:18] == bytes([genl.CTRL_CMD_GETFAMILY, 1])
    nla_len, nla_type = struct.unpack_from("=HH", msg, 20)
    assert (nla_type, msg[24 : 20 + nla_len]) == (genl.CTRL_ATTR_FAMILY_NAME, b"vdpa\0")
    assert len(msg) % 4 == 0


def test_the_running_kernel() -> None:
    """nlctrl always knows itself; a name no family has is an ENOENT."""
    if genl.family_registered("nlctrl") is None:
        missing_prerequisite("no generic netlink here: the running kernel cannot be asked")
    assert genl.family_registered("nlctrl") is True
    assert genl.family_registered("devmig-none") is False


class FakeSocket:
    def __init__(self, reply: bytes | OSError) -> None:
        self.reply = reply

    def __call__(self, *args: Any) -> FakeSocket:
        return self

    def __enter__(self) -> FakeSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send(self, data: bytes) -> int:
        return len(data)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if isinstance(self.reply, OSError):
            raise self.reply
        return self.reply


def _error(code: int) -> bytes:
    return struct.pack("=IHHII", 36, genl.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", code) + bytes(16)


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        (struct.pack("=IHHII", 20, genl.GENL_ID_CTRL, 0, 1, 0) + bytes(4), True),
        (_error(-errno.ENOENT), False),
        (_error(-errno.EPERM), None),  # not an answer to the question: the client asks again and says why
        (_error(-errno.ENOENT)[:18], None),
        (b"", None),
        (struct.pack("=IHHII", 16, 0x99, 0, 1, 0), None),
        (BlockingIOError(errno.EAGAIN, "no reply yet"), None),
        (OSError(errno.EPROTONOSUPPORT, "no netlink"), None),
    ],
)
def test_replies(monkeypatch: pytest.MonkeyPatch, reply: bytes | OSError, answer: bool | None) -> None:
    monkeypatch.setattr(socket, "socket", FakeSocket(reply))
    assert genl.family_registered("vdpa") is answer
