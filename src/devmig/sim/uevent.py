"""The simulated kernel's uevents: what the real kernel broadcasts on its NETLINK_KOBJECT_UEVENT socket when a
device is added or removed or a driver bound or unbound (lib/kobject_uevent.c), here told to listeners in process.

An event is the kernel's environment: ACTION (add, remove, bind, unbind, change), SUBSYSTEM (mdev, pci, vdpa,
module...), DEVPATH (below /sys, with its leading slash), SEQNUM (one counter per kernel), and DRIVER on bind and
unbind. The simulator sends them from its own code, where its kernel makes the change; it knows nothing of who
listens.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

#: one uevent: the kernel's KEY=value environment
Uevent = dict[str, str]
Listener = Callable[[Uevent], None]


class UeventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._seqnum = itertools.count(1)
        self._lock = threading.Lock()

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every later uevent (from the thread that made the change); returns how to stop."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def emit(self, action: str, subsystem: str, devpath: str, **env: str) -> None:
        event = {
            "ACTION": action,
            "DEVPATH": "/" + devpath.removeprefix("sys/").lstrip("/"),
            "SUBSYSTEM": subsystem,
            **env,
            "SEQNUM": str(next(self._seqnum)),
        }
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(dict(event))
