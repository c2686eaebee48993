"""A driver test bench: ask a device for every state change and compare its answers with the kernel's table.

For every ordered pair (cur, target) with cur a state the device's migration flags support and target any state
(unsupported ones and ERROR included), the probe resets the device, brings it to cur one arc at a time along the
table, requests target, and compares what the driver did with `devmig.migrate.fsm`:
- accepted exactly when the table has a path (a refusal must be EINVAL and leave the state unchanged);
- the state afterwards (GET MIG_DEVICE_STATE) is target when accepted, cur when refused;
- a data_fd comes back exactly when the final arc is in fsm.OPENS_DATA_FD;
- a session kept inside the saving group still works (PRE_COPY(_P2P) -> STOP_COPY: read to its end).
Per state it checks that MIG_DATA_SIZE answers, and that VFIO_MIG_GET_PRECOPY_INFO answers on the saving session in
PRE_COPY and PRE_COPY_P2P and fails EINVAL in STOP_COPY.

Leaving RESUMING makes a driver validate what was loaded, so the probe first saves the device's own state (STOP_COPY
read to its end) and writes it whenever it enters RESUMING. It ends with a reset, which leaves the device RUNNING.

The expectations (`expect`, `expectations`) and the comparison (`compare`) are pure; `run_probe` does the I/O
through the MigrationDevice seam, so the simulator's drivers and the kernel's answer the same questions.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from devmig.errors import DevmigError
from devmig.migrate import fsm
from devmig.migrate.device import DataFd, MigrationDevice, VfioError, flag_names
from devmig.migrate.fsm import (
    ENDS_SESSION,
    OPENS_DATA_FD,
    PRE_COPY,
    PRE_COPY_P2P,
    RESUMING,
    RUNNING,
    SAVING_GROUP,
    STOP_COPY,
    TransitionError,
)
from devmig.migrate.uapi import MIGRATION_FLAGS, MigState

#: The VFIO_MIGRATION_* combinations the uAPI defines.
DEFINED_FLAGS: Final = frozenset({1, 3, 5, 7})
#: What VFIO_MIG_GET_PRECOPY_INFO gives on the saving session's fd in each state that has one: None = it answers.
PRECOPY_INFO: Final[dict[MigState, int | None]] = {PRE_COPY: None, PRE_COPY_P2P: None, STOP_COPY: errno.EINVAL}
#: A saved stream larger than this is a driver that never ends its stream (read() never returns b"").
SAVE_LIMIT: Final = 1 << 30
CHUNK: Final = 1 << 20


class ProbeError(DevmigError):
    """The probe cannot run on this device (no migration, in use, its own state cannot be saved)."""


def _errno_name(err: int | None) -> str:
    return errno.errorcode.get(err, str(err)) if err is not None else "no errno"


# -- what the table says (pure) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What the kernel's table says a request for `target` from `cur` does."""

    cur: MigState
    target: MigState
    #: the states the driver walks, cur first; () when refused
    path: tuple[MigState, ...]
    #: the table's reason for EINVAL, or None when the request is accepted
    refusal: str | None = None

    @property
    def accepted(self) -> bool:
        return self.refusal is None

    @property
    def state(self) -> MigState:
        """The state afterwards: the target when accepted, else unchanged."""
        return self.target if self.accepted else self.cur

    @property
    def final_arc(self) -> tuple[MigState, MigState] | None:
        return (self.path[-2], self.path[-1]) if len(self.path) > 1 else None

    @property
    def opens_data_fd(self) -> bool:
        return self.final_arc in OPENS_DATA_FD

    @property
    def keeps_session(self) -> bool:
        """The request moves inside the saving group: the session's fd goes on."""
        return self.accepted and self.cur != self.target and {self.cur, self.target} <= SAVING_GROUP

    def describe(self) -> str:
        if not self.accepted:
            return "EINVAL"
        return " -> ".join(s.name for s in self.path)


def expect(cur: MigState, target: MigState, flags: int) -> Expectation:
    try:
        walk = fsm.path(cur, target, flags)
    except TransitionError as exc:
        return Expectation(cur, target, (), exc.message)
    return Expectation(cur, target, tuple(walk))


def reachable(flags: int) -> list[MigState]:
    """The states a device with these flags can be brought to (from RUNNING, along the table)."""
    return [s for s in MigState if fsm.supported(s, flags)]


def expectations(flags: int) -> list[Expectation]:
    """Every request the probe makes: each reachable state to each state (ERROR and unsupported ones included)."""
    return [expect(cur, target, flags) for cur in reachable(flags) for target in MigState]


def flag_problems(flags: int) -> list[str]:
    if flags in DEFINED_FLAGS:
        return []
    return [f"migration flags {flags:#x}: the uAPI defines only 0x1, 0x3, 0x5 and 0x7 (STOP_COPY is mandatory)"]


# -- what the driver did --------------------------------------------------------------------------------------------


@dataclass
class Observed:
    """The driver's answer to one request."""

    accepted: bool
    #: the errno of a refusal (None when accepted)
    errno: int | None = None
    error: str | None = None
    #: GET MIG_DEVICE_STATE afterwards; None when that failed too
    state: MigState | None = None
    state_error: str | None = None
    data_fd: bool = False
    #: what went wrong with the session kept inside the saving group, if anything
    session_error: str | None = None


def compare(expected: Expectation, observed: Observed) -> list[str]:
    """Each way the driver's answer differs from the table, one precise sentence each."""
    arc = f"{expected.cur.name} -> {expected.target.name}"
    problems: list[str] = []
    if expected.accepted and not observed.accepted:
        problems.append(f"{arc}: the driver refused it ({observed.error}); the table walks {expected.describe()}")
    elif not expected.accepted and observed.accepted:
        problems.append(f"{arc}: the driver accepted it; the table refuses it with EINVAL ({expected.refusal})")
    elif not expected.accepted and observed.errno != errno.EINVAL:
        problems.append(f"{arc}: the driver refused it with {_errno_name(observed.errno)}, expected EINVAL")
    if observed.state is None:
        problems.append(f"{arc}: GET MIG_DEVICE_STATE failed afterwards ({observed.state_error})")
    elif observed.state != expected.state:
        why = "the request is refused" if not expected.accepted else "the request is accepted"
        problems.append(
            f"{arc}: the device is in {observed.state.name} afterwards, expected {expected.state.name} ({why})"
        )
    final = expected.final_arc
    if observed.data_fd and not expected.opens_data_fd:
        where = (
            f"the final arc {final[0].name} -> {final[1].name} does not open a session"
            if final is not None
            else "no arc was run"
        )
        problems.append(f"{arc}: the driver returned a data_fd; expected none ({where})")
    elif expected.opens_data_fd and observed.accepted and not observed.data_fd:
        assert final is not None
        problems.append(
            f"{arc}: the driver returned no data_fd; the final arc {final[0].name} -> {final[1].name} opens a session"
        )
    if observed.session_error is not None:
        problems.append(f"{arc}: the session kept inside the saving group: {observed.session_error}")
    return problems


@dataclass
class ArcResult:
    expected: Expectation
    #: None when the device could not be brought to expected.cur (see problems)
    observed: Observed | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        e, o = self.expected, self.observed
        return {
            "from": e.cur.name,
            "to": e.target.name,
            "expected": {
                "accepted": e.accepted,
                "path": [s.name for s in e.path],
                "state": e.state.name,
                "data_fd": e.opens_data_fd,
                "keeps_session": e.keeps_session,
                "refusal": e.refusal,
            },
            "observed": None
            if o is None
            else {
                "accepted": o.accepted,
                "errno": _errno_name(o.errno) if o.errno is not None else None,
                "error": o.error,
                "state": o.state.name if o.state is not None else None,
                "data_fd": o.data_fd,
            },
            "ok": self.ok,
            "problems": self.problems,
        }


@dataclass
class StateCheck:
    """MIG_DATA_SIZE and PRECOPY_INFO in one state."""

    state: MigState
    mig_data_size: int | None = None
    #: (initial_bytes, dirty_bytes), or the errno name it failed with; None when not asked (no saving session)
    precopy_info: tuple[int, int] | str | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        info = self.precopy_info
        return {
            "state": self.state.name,
            "mig_data_size": self.mig_data_size,
            "precopy_info": list(info) if isinstance(info, tuple) else info,
            "problems": self.problems,
        }


@dataclass
class ProbeReport:
    device: str
    migration_flags: int
    saved_bytes: int = 0
    states: list[StateCheck] = field(default_factory=list)
    arcs: list[ArcResult] = field(default_factory=list)
    #: device-level findings (reserved flags, a failed final reset)
    problems: list[str] = field(default_factory=list)
    #: the state after the final reset (RUNNING), None when it could not be read
    left_state: MigState | None = None

    @property
    def disagreements(self) -> list[str]:
        found = list(self.problems)
        for check in self.states:
            found += check.problems
        for arc in self.arcs:
            found += arc.problems
        return found

    @property
    def agrees(self) -> bool:
        return not self.disagreements

    @property
    def unsupported(self) -> list[MigState]:
        return [s for s in MigState if not fsm.supported(s, self.migration_flags)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "migration_flags": self.migration_flags,
            "migration": flag_names(self.migration_flags, MIGRATION_FLAGS),
            "unsupported_states": [s.name for s in self.unsupported],
            "saved_bytes": self.saved_bytes,
            "requests": len(self.arcs),
            "agreeing": sum(arc.ok for arc in self.arcs),
            "states": [c.to_dict() for c in self.states],
            "arcs": [a.to_dict() for a in self.arcs],
            "problems": self.problems,
            "disagreements": self.disagreements,
            "agrees": self.agrees,
            "left_state": self.left_state.name if self.left_state is not None else None,
        }


# -- the walk (I/O through the MigrationDevice seam) ----------------------------------------------------------------


#: What the drivers raise: VfioError from the kernel or a simulated driver, TransitionError from the simulator's table.
DriverError = (VfioError, TransitionError)


class _Unreached(Exception):  # noqa: N818 - internal: the device could not be brought to a state
    pass


def _drain(fd: DataFd, what: str) -> bytes:
    """Read a STOP_COPY session to its end (b"")."""
    out = bytearray()
    while chunk := fd.read(CHUNK):
        out += chunk
        if len(out) > SAVE_LIMIT:
            raise VfioError(f"{what}: more than {SAVE_LIMIT} bytes and no end of stream", errno.EFBIG)
    return bytes(out)


def _close(fd: DataFd | None) -> None:
    if fd is not None:
        fd.close()


class _Walker:
    def __init__(self, device: MigrationDevice, flags: int) -> None:
        self.device, self.flags = device, flags
        self.saved: bytes | None = None

    def reach(self, state: MigState) -> DataFd | None:
        """Reset, then walk the table to `state` one request per arc; the session open there (the caller closes it).

        Entering RESUMING writes the saved stream, so that leaving it later passes the driver's validation."""
        self.device.reset()
        session: DataFd | None = None
        try:
            walk = fsm.path(RUNNING, state, self.flags)
            for cur, nxt in itertools.pairwise(walk):
                try:
                    fd = self.device.set_state(nxt)
                except DriverError as exc:
                    raise _Unreached(f"the table's arc {cur.name} -> {nxt.name} failed: {exc}") from None
                if fd is not None:
                    _close(session)
                    session = fd
                elif (cur, nxt) in ENDS_SESSION:
                    _close(session)
                    session = None
                if nxt is RESUMING and self.saved is not None:
                    if fd is None:
                        raise _Unreached("STOP -> RESUMING returned no data_fd to write the saved state into")
                    try:
                        fd.write(self.saved)
                    except DriverError as exc:
                        raise _Unreached(f"writing the device's own saved state in RESUMING failed: {exc}") from None
            try:
                now = self.device.get_state()
            except DriverError as exc:
                raise _Unreached(f"GET MIG_DEVICE_STATE failed: {exc}") from None
            if now != state:
                raise _Unreached(f"after walking {' -> '.join(s.name for s in walk)} the device is in {now.name}")
        except BaseException:
            _close(session)
            raise
        return session

    def save(self) -> bytes:
        """The device's own state: STOP_COPY read to its end."""
        try:
            session = self.reach(STOP_COPY)
        except (_Unreached, *DriverError) as exc:
            raise ProbeError(f"device {self.device.name}: cannot save its own state (STOP_COPY): {exc}") from None
        if session is None:
            raise ProbeError(f"device {self.device.name}: STOP -> STOP_COPY returned no data_fd: nothing to save")
        try:
            return _drain(session, f"device {self.device.name}: reading its own state")
        except DriverError as exc:
            raise ProbeError(f"device {self.device.name}: cannot read its own state in STOP_COPY: {exc}") from None
        finally:
            session.close()

    def check_state(self, state: MigState) -> StateCheck:
        check = StateCheck(state)
        where = f"in {state.name}"
        try:
            session = self.reach(state)
        except _Unreached as exc:
            check.problems.append(f"{where}: could not bring the device there: {exc}")
            return check
        try:
            try:
                check.mig_data_size = self.device.mig_data_size()
            except DriverError as exc:
                check.problems.append(f"{where}: GET MIG_DATA_SIZE failed ({exc}); it must answer in every state")
            if state in PRECOPY_INFO and session is not None:
                check.precopy_info, problem = _precopy(session, state)
                if problem:
                    check.problems.append(f"{where}: {problem}")
        finally:
            _close(session)
        return check

    def request(self, expected: Expectation) -> ArcResult:
        try:
            session = self.reach(expected.cur)
        except _Unreached as exc:
            return ArcResult(expected, None, [f"could not bring the device to {expected.cur.name}: {exc}"])
        fd: DataFd | None = None
        try:
            try:
                fd = self.device.set_state(expected.target)
                observed = Observed(accepted=True, data_fd=fd is not None)
            except DriverError as exc:
                observed = Observed(accepted=False, errno=getattr(exc, "errno", None), error=str(exc))
            try:
                observed.state = self.device.get_state()
            except DriverError as exc:
                observed.state_error = str(exc)
            if expected.keeps_session and observed.accepted and session is not None:
                observed.session_error = _kept_session(session, expected.target)
            return ArcResult(expected, observed, compare(expected, observed))
        finally:
            _close(fd)
            _close(session)


def _precopy(session: DataFd, state: MigState) -> tuple[tuple[int, int] | str, str | None]:
    """PRECOPY_INFO on the saving session in `state`: (the answer or its errno name, a problem or None)."""
    want = PRECOPY_INFO[state]
    try:
        info = session.precopy_info()
    except DriverError as exc:
        err = getattr(exc, "errno", None)
        if err == want:
            return _errno_name(err), None
        expected = "an answer" if want is None else _errno_name(want)
        return _errno_name(err), f"VFIO_MIG_GET_PRECOPY_INFO failed ({exc}), expected {expected}"
    if want is not None:
        return info, f"VFIO_MIG_GET_PRECOPY_INFO answered {info}, expected {_errno_name(want)}"
    return info, None


def _kept_session(session: DataFd, state: MigState) -> str | None:
    """After a move inside the saving group the old fd must still work: None when it does, else what failed."""
    _, problem = _precopy(session, state)
    if problem is not None:
        return problem
    if state is STOP_COPY:
        try:
            _drain(session, "reading it to its end")
        except DriverError as exc:
            return f"reading it to its end failed ({exc})"
    return None


def run_probe(device: MigrationDevice, progress: Callable[[str], None] | None = None) -> ProbeReport:
    """Walk every request of `expectations()` on `device` and report each disagreement with the table.

    ProbeError when the device has no migration or its own state cannot be saved. The device is reset at the end
    (RUNNING) whatever happened."""
    try:
        flags = device.migration_flags()
    except VfioError as exc:
        if exc.errno == errno.ENOTTY:
            raise ProbeError(
                f"device {device.name}: the driver implements no VFIO migration (ENOTTY): nothing to probe"
            ) from None
        raise
    report = ProbeReport(device.name, flags, problems=flag_problems(flags))
    walker = _Walker(device, flags)
    say = progress or (lambda _: None)
    try:
        if fsm.supported(STOP_COPY, flags):
            say("saving the device's own state")
            walker.saved = walker.save()
            report.saved_bytes = len(walker.saved)
        for state in reachable(flags):
            say(f"checking {state.name}")
            report.states.append(walker.check_state(state))
        for expected in expectations(flags):
            report.arcs.append(walker.request(expected))
    finally:
        try:
            device.reset()
            report.left_state = device.get_state()
        except DriverError as exc:
            report.problems.append(f"the final VFIO_DEVICE_RESET failed: {exc}")
    if report.left_state is not None and report.left_state is not RUNNING:
        report.problems.append(f"after the final reset the device is in {report.left_state.name}, expected RUNNING")
    return report
