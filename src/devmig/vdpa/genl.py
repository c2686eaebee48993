"""Generic netlink, asked one question with the socket module alone: is a family registered in the running kernel?

`devmig list` asks it before listing vDPA devices: most hosts have no vdpa family, and telling so through pyroute2
(the vdpa client's library) costs more than the rest of a 10,000-device listing. A "yes", or no answer, leaves the
question to the client, which asks again and says why on failure.
"""

from __future__ import annotations

import errno
import socket
import struct

NETLINK_GENERIC = 16
#: nlctrl, the family that names the others (include/uapi/linux/genetlink.h)
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 0x2
_NLMSGHDR = struct.Struct("=IHHII")


def _request(name: str) -> bytes:
    """CTRL_CMD_GETFAMILY with the family's name (NUL-terminated, as the kernel compares it)."""
    value = name.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(value), CTRL_ATTR_FAMILY_NAME) + value
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=BBH", CTRL_CMD_GETFAMILY, 1, 0) + attr
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), GENL_ID_CTRL, NLM_F_REQUEST, 1, 0) + body


def family_registered(name: str) -> bool | None:
    """True when nlctrl knows the family, False when it answers ENOENT, None when that cannot be told (no netlink
    socket here, another error, a reply not understood)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC) as sock:
            sock.send(_request(name))
            # the kernel answers within send(): a reply that is not there yet is not waited for
            reply = sock.recv(65536, socket.MSG_DONTWAIT)
    except OSError:
        return None
    if len(reply) < _NLMSGHDR.size:
        return None
    msg_type = _NLMSGHDR.unpack_from(reply)[1]
    if msg_type == GENL_ID_CTRL:
        return True
    if msg_type == NLMSG_ERROR and len(reply) >= _NLMSGHDR.size + 4:
        (error,) = struct.unpack_from("=i", reply, _NLMSGHDR.size)
        if error == -errno.ENOENT:
            return False
    return None
