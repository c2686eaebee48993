"""How fresh a host's inventory is: its last sign of life (a publish or a heartbeat), and the TTL after which
placement leaves the host out. Pure: the store reads the clock and the rows, this module decides and words it.

A host is fresh when it was seen at most `stale_after` seconds before the placement's clock. `last_seen` NULL
means no sign of life was ever recorded (a row no devmig publish wrote: every publish sets it, and the upgrade to
schema 0002 copies the publish time): with a TTL on, such a host is stale, since nothing says it is alive.
"""

from __future__ import annotations

import math
import os

from devmig.errors import InputError

#: environment variable holding the TTL: seconds, or 0 / "never" to switch freshness off
ENV_STALE_AFTER = "DEVMIG_STALE_AFTER"
#: the TTL when neither the caller nor $DEVMIG_STALE_AFTER says: ten minutes, several heartbeats of an agent and
#: more than a publish timer of a few minutes, so a host missing one beat is not dropped
STALE_AFTER = 600.0
#: the refusal code of hosts left out as stale (devmig.fleet.place summarises refusals by code)
STALE_CODE = "stale"
#: the words that switch freshness off
NEVER = ("never", "0")


def parse_stale_after(text: str | float | None) -> float | None:
    """A TTL as given on a command line or in the environment: seconds (> 0), or 0 / "never" (None: off)."""
    if text is None:
        return None
    if isinstance(text, str) and text.strip().lower() in NEVER:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise InputError(f"stale-after {text!r}: expected seconds (a number >= 0) or 'never'") from None
    if math.isnan(seconds) or seconds < 0:
        raise InputError(f"stale-after {text!r}: expected seconds (a number >= 0) or 'never'")
    return None if seconds == 0 or math.isinf(seconds) else seconds


def default_stale_after() -> float | None:
    """$DEVMIG_STALE_AFTER when set, else STALE_AFTER."""
    raw = os.environ.get(ENV_STALE_AFTER)
    if raw is None or not raw.strip():
        return STALE_AFTER
    try:
        return parse_stale_after(raw)
    except InputError as exc:
        raise InputError(f"${ENV_STALE_AFTER}: {exc}") from None


def cutoff(now: float, stale_after: float | None) -> float | None:
    """The oldest last_seen still fresh at `now`; None when freshness is off."""
    return None if stale_after is None else now - stale_after


def age(last_seen: float | None, now: float) -> int | None:
    """Whole seconds since the host was seen (never below 0: a host's clock may run slightly ahead)."""
    return None if last_seen is None else max(0, int(now - last_seen))


def age_text(last_seen: float | None, now: float) -> str:
    """'N s ago', or 'never' when no sign of life was recorded."""
    seconds = age(last_seen, now)
    return "never" if seconds is None else f"{seconds} s ago"


def is_stale(last_seen: float | None, now: float, stale_after: float | None) -> bool:
    limit = cutoff(now, stale_after)
    return limit is not None and (last_seen is None or last_seen < limit)


def stale_message(host: str, last_seen: float | None, now: float, stale_after: float) -> str:
    """The refusal's words for a stale host (the most recently seen of the group, as its example)."""
    seen = (
        "never seen (no publish or heartbeat recorded)"
        if last_seen is None
        else f"last seen {age_text(last_seen, now)}"
    )
    return f"stale: {seen}, host {host} (hosts are left out {stale_after:g} s after their last publish or heartbeat)"
