"""The vDPA seam: the interface a backend implements (the netlink client on a real host, `devmig.sim.vdpa.SimVdpa`
in the simulator) and the errors it raises.

A request the kernel refuses raises `VdpaError` with the errno and the kernel's extack text, exactly as the kernel
sent it (e.g. "vdpa: device not found"; NL_SET_ERR_MSG_MOD prefixes the module name). Arguments the kernel would
never see (iproute2 rejects them locally, or they do not fit the attribute's type) raise `InputError`. The
vocabulary is in `devmig.vdpa.family` and `devmig.vdpa.virtio`, the replies in `devmig.vdpa.records`.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from devmig.errors import DevmigError
from devmig.vdpa.records import DevConfig, MgmtDev, VdpaDev, VqStats

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
    "VdpaBackend",
    "VdpaError",
    "VdpaUnavailableError",
    "render_extack",
]
