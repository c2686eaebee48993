"""The simulator's device events: its kernel's uevents (devmig.sim.uevent), as a lab host's changes happen.

Changes made in this process reach the listener at once. Changes another process made to the host (a `devmig mdev
create --host sim:...`) are in the host's log: each `receive` catches up with it first, and the simulated kernel
making those changes again sends their uevents, as the real kernel would have.
"""

from __future__ import annotations

import logging
import queue
import time

from devmig.agent.events import Uevent
from devmig.errors import DevmigError
from devmig.machine.lab import LabHost

log = logging.getLogger("devmig.agent")

#: how often, at most, the host's log is looked at while waiting (a stat)
FOLLOW_INTERVAL = 0.02


class SimSource:
    name = "sim"

    def __init__(self, host: LabHost) -> None:
        self._host = host
        self._queue: queue.SimpleQueue[Uevent] = queue.SimpleQueue()
        self._stop = host.uevents().listen(lambda env: self._queue.put(Uevent.of(env)))

    def receive(self, timeout: float) -> list[Uevent]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._host.catch_up()
            except DevmigError as exc:
                log.warning("%s", exc)
            events = []
            while True:
                try:
                    events.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            remaining = deadline - time.monotonic()
            if events or remaining <= 0:
                return events
            try:
                events.append(self._queue.get(timeout=min(FOLLOW_INTERVAL, remaining)))
            except queue.Empty:
                continue
            return events

    def close(self) -> None:
        self._stop()
