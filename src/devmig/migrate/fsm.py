"""The VFIO migration v2 state machine, as the kernel writes it: one next-step table and a short walk.

This is `vfio_from_fsm_table` and `vfio_mig_get_next_state()` of drivers/vfio/vfio_main.c. `NEXT[cur][target]` is
one step towards `target`; a step into a state the device's migration flags do not support is skipped by looking
the table up again from that state (this is how RUNNING_P2P and the PRE_COPY states disappear on devices without
P2P or PRE_COPY). A driver walks `next_step()` one arc at a time until it reaches the target; `path()` is that walk.

ERROR is never a legal target and a step into ERROR is a refusal: both give EINVAL, as the kernel does. (Unpatched
kernels spin in the skip loop on STOP_COPY -> PRE_COPY, since ERROR is never "supported"; the fix, and the real
kernel the reference checked, return EINVAL at once, which is what `next_step()` does.)

Pure data and functions: no I/O, importable anywhere.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from itertools import pairwise
from typing import Final, Literal

from devmig.errors import DevmigError
from devmig.migrate.uapi import VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY, MigState


class TransitionError(DevmigError):
    """A state change the kernel refuses with EINVAL (an unsupported state, ERROR as a target, a blocked path)."""

    errno: int = errno.EINVAL


ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P = MigState

_GRID: Final[dict[MigState, tuple[MigState, ...]]] = {
    # from:        target = ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P
    STOP: (ERROR, STOP, RUNNING_P2P, STOP_COPY, RESUMING, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P),
    RUNNING: (ERROR, RUNNING_P2P, RUNNING, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P, PRE_COPY, RUNNING_P2P),
    STOP_COPY: (ERROR, STOP, STOP, STOP_COPY, STOP, STOP, ERROR, ERROR),
    RESUMING: (ERROR, STOP, STOP, STOP, RESUMING, STOP, STOP, STOP),
    RUNNING_P2P: (ERROR, STOP, RUNNING, STOP, STOP, RUNNING_P2P, RUNNING, PRE_COPY_P2P),
    PRE_COPY: (ERROR, RUNNING, RUNNING, PRE_COPY_P2P, RUNNING, RUNNING, PRE_COPY, PRE_COPY_P2P),
    PRE_COPY_P2P: (ERROR, RUNNING_P2P, RUNNING_P2P, STOP_COPY, RUNNING_P2P, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P),
    ERROR: (ERROR, ERROR, ERROR, ERROR, ERROR, ERROR, ERROR, ERROR),
}

#: vfio_from_fsm_table: NEXT[cur][target] is the next step from cur towards target.
NEXT: Final[Mapping[MigState, Mapping[MigState, MigState]]] = {
    cur: dict(zip(MigState, row, strict=True)) for cur, row in _GRID.items()
}

#: state_flags_table: the migration flags a state needs. ERROR needs ~0 (every bit), so no device supports it.
STATE_FLAGS: Final[Mapping[MigState, int]] = {
    ERROR: ~0,
    STOP: VFIO_MIGRATION_STOP_COPY,
    RUNNING: VFIO_MIGRATION_STOP_COPY,
    STOP_COPY: VFIO_MIGRATION_STOP_COPY,
    RESUMING: VFIO_MIGRATION_STOP_COPY,
    RUNNING_P2P: VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
    PRE_COPY: VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
    PRE_COPY_P2P: VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY,
}

#: The states that produce migration data; they share one session (one data_fd).
SAVING_GROUP: Final = frozenset({PRE_COPY, PRE_COPY_P2P, STOP_COPY})

#: Arcs that return a new data_fd (the driver's session starts here).
OPENS_DATA_FD: Final = frozenset(
    {(RUNNING, PRE_COPY), (RUNNING_P2P, PRE_COPY_P2P), (STOP, STOP_COPY), (STOP, RESUMING)}
)

#: Arcs inside the saving group: the session goes on and the caller keeps reading the same data_fd.
KEEPS_DATA_FD: Final = frozenset(
    {(PRE_COPY, PRE_COPY_P2P), (PRE_COPY_P2P, PRE_COPY), (PRE_COPY_P2P, STOP_COPY), (PRE_COPY, STOP_COPY)}
)

#: Arcs that end the session: the data_fd stops working (RESUMING -> STOP also validates what was loaded).
ENDS_SESSION: Final = frozenset({(STOP_COPY, STOP), (RESUMING, STOP), (PRE_COPY, RUNNING), (PRE_COPY_P2P, RUNNING_P2P)})


def supported(state: MigState, migration_flags: int) -> bool:
    """True when a device with these VFIO_MIGRATION_* flags implements `state` (never for ERROR)."""
    need = STATE_FLAGS[state]
    return need & migration_flags == need


def _state(value: int, what: str) -> MigState:
    try:
        return MigState(value)
    except ValueError:
        raise TransitionError(f"{what} {value} is not a VFIO migration state (0-7)") from None


def _refuse(cur: MigState, target: MigState, why: str) -> TransitionError:
    return TransitionError(f"migration state {cur.name} -> {target.name}: {why} (EINVAL)")


def next_step(cur: int, target: int, migration_flags: int) -> MigState:
    """vfio_mig_get_next_state(): the next state on the way from `cur` to `target`; TransitionError for EINVAL."""
    here, there = _state(cur, "current state"), _state(target, "target state")
    if not supported(here, migration_flags):
        raise _refuse(here, there, f"the current state is not supported by migration flags {migration_flags:#x}")
    if not supported(there, migration_flags):
        if there is ERROR:
            raise _refuse(here, there, "ERROR cannot be requested")
        raise _refuse(here, there, f"the target state is not supported by migration flags {migration_flags:#x}")
    step = NEXT[here][there]
    while step is not ERROR and not supported(step, migration_flags):
        step = NEXT[step][there]
    if step is ERROR:
        raise _refuse(here, there, "no path between these states (STOP_COPY cannot go back to pre-copy)")
    return step


def path(cur: int, target: int, migration_flags: int) -> list[MigState]:
    """The states a driver walks from `cur` to `target`, both included ([cur] when they are equal).

    This is the driver's `while (cur != new)` loop over `next_step()`; consecutive pairs are the arcs it runs.
    Raises TransitionError before any step when the kernel would refuse the request.
    """
    states = [_state(cur, "current state")]
    while states[-1] != target:
        states.append(next_step(states[-1], target, migration_flags))
        if len(states) > len(MigState):  # the table has no loops; this guards the data, not the caller
            raise AssertionError(f"the state table loops: {[s.name for s in states]}")
    return states


def data_fd(cur: int, target: int, migration_flags: int) -> Literal["new", "kept", "none"]:
    """What a SET of `target` from `cur` does to the session's file: "new" (the final arc opens a session and the
    ioctl returns its fd), "kept" (the caller's fd goes on: every arc stays inside the session), or "none" (no
    session afterwards). TransitionError when the kernel refuses the request."""
    states = path(cur, target, migration_flags)
    arcs = list(pairwise(states))
    if arcs and arcs[-1] in OPENS_DATA_FD:
        return "new"
    if states[0] in SAVING_GROUP | {RESUMING} and all(arc in KEEPS_DATA_FD for arc in arcs):
        return "kept"
    return "none"
