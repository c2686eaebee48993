"""The real kernel's device events, through pyudev (libudev): from the udev daemon where one runs (its events come
after its rules ran, so the device's nodes and links exist), else from the kernel's own uevent broadcast (pyudev's
"kernel" netlink source: a guest, a container, an initramfs without udevd). Either may be received without
privilege (the kernel lets any user join its uevent multicast groups)."""

from __future__ import annotations

import errno
import os
import select
from pathlib import Path
from typing import Any, Literal

from devmig.agent.events import OVERFLOW, Uevent
from devmig.errors import DevmigError

#: the socket udevd listens on for control messages: libudev and systemd take its presence to mean udevd runs
UDEV_CONTROL = Path("/run/udev/control")

Origin = Literal["udev", "kernel"]


def udevd_running(control: Path = UDEV_CONTROL) -> bool:
    return control.exists()


class PyudevSource:
    def __init__(self, origin: Origin) -> None:
        try:
            import pyudev
        except ImportError as exc:  # pyudev is a dependency; libudev.so.1 is the system's
            raise DevmigError(f"device events: pyudev cannot be loaded ({exc})") from None
        self.name: str = origin
        try:
            self._monitor: Any = pyudev.Monitor.from_netlink(pyudev.Context(), source=origin)
            self._monitor.start()
        except (OSError, ImportError) as exc:
            raise DevmigError(f"device events: cannot listen to {origin} events: {exc}") from None

    def receive(self, timeout: float) -> list[Uevent]:
        if self._monitor is None:
            return []
        try:
            ready, _, _ = select.select([self._monitor], [], [], timeout)
        except InterruptedError:
            return []
        if not ready:
            return []
        events: list[Uevent] = []
        while True:
            try:
                device = self._monitor.poll(timeout=0)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    # the socket's buffer overflowed: events were lost, so every part is read again
                    return [*events, Uevent("overflow", OVERFLOW, "")]
                raise DevmigError(f"device events: receiving from {self.name}: {os.strerror(exc.errno or 0)}") from None
            if device is None:
                return events
            events.append(Uevent(device.action or "", device.subsystem or "", device.device_path or "", device.driver))

    def close(self) -> None:
        # pyudev's Monitor has no close: dropping it lets libudev close the socket (its __del__ unrefs it)
        self._monitor = None


def real_source(kind: str = "auto") -> PyudevSource:
    """`kind`: "udev", "kernel", or "auto" (udev where udevd runs, else the kernel's uevents)."""
    origin: Origin = "udev" if kind == "udev" or (kind == "auto" and udevd_running()) else "kernel"
    return PyudevSource(origin)
