"""systemd's service notifications (sd_notify(3)): READY=1, RELOADING=1, STOPPING=1, STATUS=..., WATCHDOG=1, each
a datagram of newline-separated KEY=VALUE lines on the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name"
for the abstract namespace). Without $NOTIFY_SOCKET (not started by systemd with Type=notify) nothing is sent.

The watchdog: with WatchdogSec= set, systemd passes $WATCHDOG_USEC (and $WATCHDOG_PID, the process meant) and
expects WATCHDOG=1 at least that often, else it kills the service; the agent pings at half the interval from its
main loop, so a loop that hangs is restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("devmig.agent")


def socket_address(value: str) -> str | bytes:
    """$NOTIFY_SOCKET as an address for sendto: "@name" is "\\0name" in the abstract namespace."""
    return b"\0" + value[1:].encode() if value.startswith("@") else value


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between two pings systemd expects (None: no watchdog for this process)."""
    environ = os.environ if env is None else env
    usec = environ.get("WATCHDOG_USEC", "")
    meant = environ.get("WATCHDOG_PID", "")
    if meant and meant.isdigit() and int(meant) != (os.getpid() if pid is None else pid):
        return None
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1_000_000


class Notifier:
    def __init__(self, address: str | None) -> None:
        self.address = address
        self._warned = False

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Notifier:
        environ = os.environ if env is None else env
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one notification; False when there is no socket or it failed (logged once: a notification that
        cannot be sent must not stop the agent)."""
        if self.address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, socket_address(self.address))
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd on %s: %s", self.address, exc.strerror or exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd (>= 253) tell this reload from an earlier one; older ones ignore it
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")
