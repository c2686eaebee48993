"""Bursts of events into one read: a read is due once the events have been quiet for `window` seconds, and at the
latest `max_delay` seconds after the first of them (a device that keeps changing is still published). Pure: the
caller passes the clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Burst:
    #: the inventory parts the events changed (devmig.fleet.collect.PARTS)
    parts: frozenset[str]
    #: how many events it gathered
    events: int


@dataclass
class Coalescer:
    window: float
    max_delay: float
    _first: float | None = None
    _last: float = 0.0
    _parts: set[str] = field(default_factory=set)
    _events: int = 0

    def add(self, now: float, parts: Iterable[str]) -> None:
        if self._first is None:
            self._first = now
        self._last = now
        self._parts.update(parts)
        self._events += 1

    def due(self) -> float | None:
        """When the burst under way is to be read (None: no event waits)."""
        if self._first is None:
            return None
        return min(self._last + self.window, self._first + self.max_delay)

    def take(self, now: float) -> Burst | None:
        """The burst, once due (and a fresh start); None before."""
        due = self.due()
        if due is None or now < due:
            return None
        burst = Burst(frozenset(self._parts), self._events)
        self._first, self._parts, self._events = None, set(), 0
        return burst
