"""Device events as the agent sees them, which part of the inventory each one changes, and the seam its sources
implement (the real kernel's through pyudev, devmig.agent.udev; the simulator's, devmig.agent.simevents).

The kernel announces a device added or removed and a driver bound or unbound with a uevent (ACTION, SUBSYSTEM,
DEVPATH, and DRIVER on bind/unbind). The vdpa generic-netlink family has no multicast group to announce anything
(drivers/vdpa/vdpa.c registers `vdpa_nl_family` without `mcgrps`), so a vDPA device added or deleted is known by
its uevent on the vdpa bus. A VM opening a bound VFIO device makes no uevent at all: the periodic re-read (resync)
is what sees a function's free count change then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

#: the subsystems whose events change a host's inventory -> the parts to read again (devmig.fleet.collect.PARTS).
#: A module loaded or unloaded may be a driver upgrade (a new software_version): everything is read again.
PARTS_BY_SUBSYSTEM: dict[str, frozenset[str]] = {
    "mdev": frozenset({"sysfs"}),
    "mdev_bus": frozenset({"sysfs"}),
    "pci": frozenset({"sysfs"}),
    "vfio": frozenset({"sysfs"}),
    "vfio-dev": frozenset({"sysfs"}),
    "vfio_ap": frozenset({"sysfs"}),
    "css": frozenset({"sysfs"}),
    "ccw": frozenset({"sysfs"}),
    "vdpa": frozenset({"vdpa"}),
    "module": frozenset({"sysfs", "vdpa"}),
}
#: every part: what an overflow of the event socket (events lost) or a resync reads
ALL_PARTS = frozenset({"sysfs", "vdpa"})
#: the subsystem of the event a source makes up when it lost events (ENOBUFS): everything is read again
OVERFLOW = "*overflow*"


@dataclass(frozen=True)
class Uevent:
    action: str
    subsystem: str
    devpath: str
    driver: str | None = None

    @classmethod
    def of(cls, env: Mapping[str, str]) -> Uevent:
        """From the kernel's KEY=value environment."""
        return cls(env.get("ACTION", ""), env.get("SUBSYSTEM", ""), env.get("DEVPATH", ""), env.get("DRIVER"))

    def parts(self) -> frozenset[str]:
        """The inventory parts this event may have changed (empty: none, the event is ignored)."""
        if self.subsystem == OVERFLOW:
            return ALL_PARTS
        return PARTS_BY_SUBSYSTEM.get(self.subsystem, frozenset())

    def __str__(self) -> str:
        driver = f" driver {self.driver}" if self.driver else ""
        return f"{self.action} {self.subsystem} {self.devpath}{driver}"


class EventSource(Protocol):
    """Where the agent's device events come from. `receive` is called from one thread, in a loop."""

    #: what it listens to, for the log: "udev", "kernel", "sim", "none"
    name: str

    def receive(self, timeout: float) -> list[Uevent]:
        """The events that arrived, waiting up to `timeout` seconds for the first (an empty list when none did)."""
        ...

    def close(self) -> None: ...


class NoEvents:
    """No event source (a sysfs tree that is not this machine's): the periodic re-read alone keeps the store."""

    name = "none"

    def receive(self, timeout: float) -> list[Uevent]:
        import time

        time.sleep(timeout)
        return []

    def close(self) -> None:
        pass
