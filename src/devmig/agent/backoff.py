"""How long to wait before trying the store again: exponential, capped, with jitter so that a fleet of agents that
lost the store together does not come back in step. Pure: the caller passes the random draw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    #: the first wait, seconds
    initial: float = 1.0
    #: the longest wait, seconds
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, attempt: int, draw: Callable[[], float]) -> float:
        """The wait after the `attempt`-th failure in a row (1 for the first): half of initial * factor^(attempt-1),
        capped at `maximum`, is fixed and the other half drawn ("equal jitter"), so a wait is never near zero and
        never above the cap. `draw` returns a number in [0, 1)."""
        if attempt < 1:
            return 0.0
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt - 1, 64))
        return ceiling / 2 + draw() * ceiling / 2
