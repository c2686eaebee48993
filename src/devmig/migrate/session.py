"""A migration session: the source and destination roles of the VFIO migration protocol, over a devmig stream.

Source: HELLO (what it sends, with its descriptor), wait for the receiver's VERDICT when there is one, then
RUNNING -> PRE_COPY and pre-copy rounds while the driver's estimate shrinks (at most `Budget.max_rounds`; the switch
happens once what is left fits the downtime budget at the measured rate, or stops shrinking), then STOP_COPY until
the end of the device's stream, END, the receiver's LOADED, COMMIT (from here the source never runs its device again
on its own) and the receiver's RESULT. A device without PRE_COPY goes straight to STOP_COPY. On any failure before
COMMIT, a signal included, the source is put back to the state it started in, RUNNING or STOP (a reset when the
driver left it in ERROR) before the error goes on: reading the stream never changed its state. A channel lost or a
signal after COMMIT is undecided (UndecidedError, exit 4): the source stays stopped. Once RESULT says the destination
runs, the outcome is decided: a signal is ignored while the source is put in STOP, and `run` returns.

Destination: read HELLO, judge it (devmig's compatibility check, before any byte of state), answer VERDICT, then
RESUMING, write every DATA record to the data_fd, check END, RESUMING -> STOP (the driver validates what it loaded),
answer LOADED, and only on the source's COMMIT STOP -> RUNNING and RESULT. On any failure before it runs the device
is reset: it never runs the state, and nothing half-loaded is left running. Once it runs, nothing resets it (the
source would run the state again after it ran here): a signal then ends nothing but the report, and `run` returns
exactly when the device runs the state.

No signal cuts short putting a device back after a failure (a second Ctrl-C), nor where a success leaves it
(devmig.signals.uninterrupted).

Sessions see devices only through devmig.migrate.device and bytes only through devmig.migrate.stream.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from devmig import __version__
from devmig.errors import DevmigError, ExitCode, IncompatibleError, SignalledError
from devmig.migrate.device import DataFd, MigrationDevice, VfioError
from devmig.migrate.fsm import PRE_COPY, RESUMING, RUNNING, STOP, STOP_COPY
from devmig.migrate.stream import CHUNK, Kind, Limits, Reader, Record, StreamError, Writer
from devmig.migrate.uapi import VFIO_MIGRATION_PRE_COPY, MigState
from devmig.signals import uninterrupted

Role = Literal["source", "destination"]
#: the steps a session reports progress in (Event.phase)
Phase = Literal["hello", "verdict", "pre-copy", "stop-copy", "resuming", "loading", "done"]
#: the device's state at the end of a session (Outcome.state): a MigState name, "" until the session ends
EndState = Literal["", "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P"]


class MigrationError(DevmigError):
    """A migration did not complete; the message says what failed and where each device was left."""


class DestinationResetError(MigrationError):
    """The destination reports it failed and reset its device: it never ran the state, so the source may resume."""


class UndecidedError(MigrationError):
    """The channel was lost after the source sent COMMIT and before the destination answered: the destination runs
    the state if COMMIT reached it, and has reset its device if it did not. The source stays stopped until told
    which (`devmig migrate --resolve`); neither side can run the state twice."""

    exit_code = ExitCode.UNDECIDED

    def __init__(self, message: str, device: str, start: MigState) -> None:
        super().__init__(message)
        #: the source device, and the state it returns to if the destination reset (`devmig migrate --resolve`)
        self.device, self.start = device, start


@dataclass(frozen=True)
class Budget:
    """When the source stops pre-copying."""

    #: pre-copy rounds at most (the first sends the initial data, the next ones what the guest dirtied)
    max_rounds: int = 8
    #: seconds the device may stay stopped: switch once what is left would take no longer at the measured rate
    downtime: float = 0.3


@dataclass(frozen=True)
class Event:
    """Progress, for a progress bar or a program (`devmig migrate -j` prints each as a JSON line)."""

    role: Role
    phase: Phase
    bytes: int  # device data so far
    total: int | None = None  # the driver's estimate of the whole, when known
    round: int = 0
    message: str | None = None

    def json(self) -> dict[str, Any]:
        return {"event": "progress", **{k: v for k, v in asdict(self).items() if v is not None}}


Progress = Callable[[Event], None]


def quiet(event: Event) -> None:
    pass


@dataclass
class Outcome:
    """What one side did. `ok` False only inside error paths' reports; failures raise."""

    role: Role
    device: str
    ok: bool = False
    state: EndState = ""
    bytes: int = 0  # device data moved
    precopy_bytes: int = 0
    records: int = 0
    rounds: int = 0
    #: seconds from the request for STOP_COPY to the receiver's RESULT (or END without one): the device downtime
    downtime: float | None = None
    seconds: float = 0.0
    verdict: dict[str, Any] | None = None
    peer: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return asdict(self)


#: why a receiver refuses: a sentence, and the verdict JSON when a compatibility check gave one
Refusal = tuple[str, dict[str, Any] | None]
#: the receiver's judge: the sender's HELLO -> None to accept, or a Refusal
Judge = Callable[[dict[str, Any]], Refusal | None]


def accept_all(hello: dict[str, Any]) -> None:
    """A judge that lets the driver decide (devmig receive --no-check; the kernel tier's driver matrix)."""
    return None


def _end_state(device: MigrationDevice) -> EndState:
    return cast(EndState, device.get_state().name)  # every MigState name is in EndState (tests/sim/test_session.py)


def _close_quietly(fd: DataFd | None) -> None:
    """Close a session's file on a failure path: a close that fails too must not keep the device from being put
    back (the first error is the one reported)."""
    if fd is not None:
        with contextlib.suppress(OSError, DevmigError):
            fd.close()


def _runs(device: MigrationDevice) -> bool:
    try:
        return device.get_state() is RUNNING
    except DevmigError:
        return False


def _cut(exc: BaseException) -> str:
    """What ended a session after its source sent COMMIT (nothing is undone then: the source stays stopped)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    if isinstance(exc, SignalledError):
        return f"stopped by {exc.signal}"
    return f"the connection was lost ({exc})"


def _migration_flags(device: MigrationDevice, role: Role) -> int:
    try:
        return device.migration_flags()
    except VfioError as exc:
        if exc.errno == errno.ENOTTY:
            raise MigrationError(f"{role} device {device.name}: its driver implements no VFIO migration") from None
        raise


def _start_state(device: MigrationDevice, role: Role) -> MigState:
    state = device.get_state()
    if state not in (RUNNING, STOP):
        raise MigrationError(
            f"{role} device {device.name} is in {state.name}: a migration starts from RUNNING or STOP "
            "(another session may be using it; a reset brings it back to RUNNING)"
        )
    return state


class Source:
    """The sending side of one session."""

    def __init__(
        self,
        device: MigrationDevice,
        *,
        identity: dict[str, Any] | None = None,
        budget: Budget | None = None,
        progress: Progress = quiet,
        clock: Callable[[], float] = time.monotonic,
        finish: MigState = STOP,
    ) -> None:
        self.device = device
        #: {"descriptor": DeviceDescriptor JSON or None, "descriptor_error": why not} (devmig.migrate.identity)
        self.identity = identity or {"descriptor": None, "descriptor_error": "the sender gave no descriptor"}
        self.budget = budget or Budget()
        self.progress = progress
        self.clock = clock
        #: where the source is left after a success: STOP for a migration (the guest moved), RUNNING for a save
        self.finish = finish
        self.outcome = Outcome("source", device.name)

    def hello(self, flags: int) -> dict[str, Any]:
        return {
            **self.identity,
            "devmig": __version__,
            "device": self.device.name,
            "migration_flags": flags,
            "data_size": self.device.mig_data_size(),
        }

    def run(self, writer: Writer, replies: Callable[[], Reader] | None = None) -> Outcome:
        """Send the device's state. `replies` opens the receiver's answers on a two-way transport."""
        started = self.clock()
        flags = _migration_flags(self.device, "source")
        start = _start_state(self.device, "source")
        writer.json(Kind.HELLO, self.hello(flags))
        self.progress(Event("source", "hello", 0))
        reply = replies() if replies is not None else None
        if reply is not None:
            self._verdict(reply.expect(Kind.VERDICT).json())
        fd: DataFd | None = None
        committing = False
        try:
            fd = self._precopy(writer, flags) if start is RUNNING and flags & VFIO_MIGRATION_PRE_COPY else None
            stop_copy = self.clock()
            fd = self._enter_stop_copy(fd)
            self._pump(fd, writer, None, precopy=False)
            writer.end()
            if reply is not None:
                loaded = reply.expect(Kind.LOADED, Kind.RESULT)
                if loaded.kind is Kind.RESULT:  # the destination failed before it had the state: it reset
                    self._result(loaded.json())
                # From here COMMIT may reach the destination even if sending it fails: the source never runs again
                # unless the destination says it reset.
                committing = True
                writer.json(Kind.COMMIT, {})
                self._result(reply.expect(Kind.RESULT).json())
        except BaseException as exc:
            if committing and not isinstance(exc, DestinationResetError):
                with uninterrupted():
                    _close_quietly(fd)
                    # Stopped, never started again here: STOP_COPY -> STOP ends the session (a driver that refuses
                    # even that is left where it is, which does not execute either; never a reset, which would run it).
                    with contextlib.suppress(DevmigError):
                        self.device.set_state(STOP)
                    self.outcome.state = _end_state(self.device)
                raise UndecidedError(
                    f"{_cut(exc)} after COMMIT was sent: the destination runs the state if COMMIT "
                    "reached it (its devmig receive exits 0), and reset its device without running it if not (it "
                    f"exits non-zero). {self.device.name} stays in {self.outcome.state} until one of: "
                    f"`devmig migrate {self.device.name} --resolve destination-runs` (it stays stopped) or "
                    f"`devmig migrate {self.device.name} --resolve destination-reset` (it returns to {start.name})",
                    self.device.name,
                    start,
                ) from exc
            self._abort(writer, exc)
            with uninterrupted():  # a second signal must not leave the device half-way back
                _close_quietly(fd)
                self._recover(start)
            told = self._told(reply) if reply is not None and isinstance(exc, StreamError) else None
            if told is not None:  # the receiver failed and hung up: its reason, not the broken pipe
                raise MigrationError(f"the destination failed to load the state: {told}") from None
            raise
        # Decided: the destination runs (or the file is whole). A signal now could only keep the source from where a
        # success leaves it (a migration's source stopped, a save's running), never undo the migration: it is
        # ignored, and the session ends as the success it is.
        with uninterrupted():
            self.outcome.downtime = self.clock() - stop_copy
            fd.close()
            self._finish()
            self.outcome.ok, self.outcome.state = True, _end_state(self.device)
            self.outcome.seconds = self.clock() - started
            self.progress(Event("source", "done", self.outcome.bytes, self.outcome.bytes))
        return self.outcome

    def _finish(self) -> None:
        """After a success the state lives on at the destination: the source must not run it again by mistake."""
        try:
            self.device.set_state(self.finish)
        except DevmigError as exc:
            raise MigrationError(
                f"the state of {self.device.name} arrived whole, but the source could not be put in "
                f"{self.finish.name} afterwards ({exc}); it was left as the driver left it"
            ) from None

    def _verdict(self, answer: dict[str, Any]) -> None:
        self.outcome.verdict = answer.get("verdict")
        self.outcome.peer = {k: answer[k] for k in ("device", "devmig") if k in answer}
        self.progress(Event("source", "verdict", 0, message=answer.get("reason")))
        if not answer.get("accept"):
            raise IncompatibleError(
                f"the destination refused device {self.device.name} before any state was sent: "
                f"{answer.get('reason') or 'no reason given'}",
                answer.get("verdict"),
            )

    @staticmethod
    def _told(reply: Reader) -> str | None:
        """A failed RESULT the receiver sent before it hung up, if one is there to read."""
        try:
            while (record := reply.next()) is not None:
                if record.kind is Kind.RESULT:
                    answer = record.json()
                    return None if answer.get("ok") else str(answer.get("error") or "no reason given")
        except DevmigError:
            return None
        return None

    def _result(self, answer: dict[str, Any]) -> None:
        if not answer.get("ok"):
            raise DestinationResetError(
                f"the destination failed to load the state: {answer.get('error') or 'no reason'}"
            )

    def _precopy(self, writer: Writer, flags: int) -> DataFd:
        """RUNNING -> PRE_COPY, then rounds; returns the session's fd, still in PRE_COPY."""
        fd = self.device.set_state(PRE_COPY)
        if fd is None:
            raise MigrationError(f"source device {self.device.name}: RUNNING -> PRE_COPY returned no data_fd")
        rate: float | None = None
        last: int | None = None
        while True:
            initial, dirty = fd.precopy_info()
            pending = initial + dirty
            if initial == 0:
                fits = pending == 0 or (rate is not None and pending <= rate * self.budget.downtime)
                stalled = last is not None and pending >= last
                if fits or stalled:
                    break
                last = pending
            if self.outcome.rounds >= self.budget.max_rounds:
                break
            self.outcome.rounds += 1
            began = self.clock()
            sent = self._pump(fd, writer, pending, precopy=True)
            took = self.clock() - began
            if sent and took > 0:
                rate = sent / took
            if not sent and initial == 0:
                break  # the driver has nothing more for now: pre-copy is over
        return fd

    def _enter_stop_copy(self, fd: DataFd | None) -> DataFd:
        new = self.device.set_state(STOP_COPY)
        if fd is not None:
            if new is not None:
                new.close()
                raise MigrationError(
                    f"source device {self.device.name}: PRE_COPY -> STOP_COPY opened a new data_fd; the uAPI keeps "
                    "the pre-copy session's"
                )
            return fd
        if new is None:
            raise MigrationError(f"source device {self.device.name}: entering STOP_COPY returned no data_fd")
        return new

    def _pump(self, fd: DataFd, writer: Writer, limit: int | None, *, precopy: bool) -> int:
        """Read the data_fd into DATA records: up to `limit` bytes in pre-copy, else to the end of the stream."""
        phase: Phase = "pre-copy" if precopy else "stop-copy"
        sent = 0
        readinto = getattr(fd, "readinto", None)  # a fd that can fill our buffer spares an allocation a chunk
        buffer = memoryview(bytearray(CHUNK)) if readinto is not None else None
        while limit is None or sent < limit:
            size = CHUNK if limit is None else min(CHUNK, limit - sent)
            try:
                if buffer is not None and readinto is not None:
                    chunk: bytes | memoryview = buffer[: readinto(buffer[:size])]
                else:
                    chunk = fd.read(size)
            except VfioError as exc:
                if precopy and exc.errno == errno.ENOMSG:
                    break  # nothing pending for now (the uAPI's temporary end of stream)
                raise
            if not chunk:
                break
            writer.data(chunk, precopy)
            sent += len(chunk)
            self.outcome.bytes += len(chunk)
            self.outcome.records += 1
            if precopy:
                self.outcome.precopy_bytes += len(chunk)
            self.progress(Event("source", phase, self.outcome.bytes, round=self.outcome.rounds))
        return sent

    def _abort(self, writer: Writer, exc: BaseException) -> None:
        if isinstance(exc, StreamError | IncompatibleError):
            return  # the receiver spoke or the channel is gone
        # the channel is gone, or a second signal cut the ABORT: the receiver sees a cut stream
        with contextlib.suppress(OSError, DevmigError, KeyboardInterrupt):
            writer.json(Kind.ABORT, {"reason": str(exc) or type(exc).__name__})

    def _recover(self, start: MigState) -> None:
        """Back to the state the session found the device in (RUNNING, or STOP: a VM paused before the migration
        must not be started by its failure), with the state intact; a reset when the driver cannot get there by
        itself (a reset ends in RUNNING, so a STOP start is asked for again)."""
        try:
            self.device.set_state(start)
        except DevmigError:  # the kernel's EINVAL (VfioError) or the simulator's TransitionError, from ERROR
            self.device.reset()
            if start is not RUNNING:
                self.device.set_state(start)
        self.outcome.state = _end_state(self.device)


class Destination:
    """The receiving side of one session."""

    def __init__(
        self,
        device: MigrationDevice,
        *,
        judge: Judge,
        progress: Progress = quiet,
        clock: Callable[[], float] = time.monotonic,
        limits: Limits | None = None,
    ) -> None:
        self.device = device
        self.judge = judge
        self.progress = progress
        self.clock = clock
        #: what a hostile sender may cost (devmig.migrate.stream.Limits); sized from the state once HELLO is read
        self.limits = limits or Limits()
        self.outcome = Outcome("destination", device.name)

    def run(self, reader: Reader, replies: Callable[[], Writer] | None = None) -> Outcome:
        started = self.clock()
        hello = reader.expect(Kind.HELLO).json()
        self.outcome.peer = {k: hello.get(k) for k in ("device", "devmig", "migration_flags", "data_size")}
        total = hello.get("data_size") if isinstance(hello.get("data_size"), int) else None
        reader.limits = self.limits.for_state(self._expected_size(total))
        self.progress(Event("destination", "hello", 0, total, message=str(hello.get("device"))))
        reply = replies() if replies is not None else None
        refusal = self._refusal(hello)
        if refusal is None and reply is not None and reader.version[0] < 2:
            refusal = (
                f"the sender speaks devmig stream {reader.version[0]}.{reader.version[1]}, which has no commit step "
                "(a destination could start before its source agreed, and a lost reply would leave two running "
                "copies): upgrade devmig on the sender",
                None,
            )
        if reply is not None:
            reply.json(Kind.VERDICT, self._verdict_json(refusal))
        if refusal is not None:
            raise IncompatibleError(
                f"device {self.device.name} refuses the state of {hello.get('device')}: {refusal[0]}", refusal[1]
            )
        fd: DataFd | None = None
        decided = False
        try:
            fd = self.device.set_state(RESUMING)
            if fd is None:
                raise MigrationError(f"destination device {self.device.name}: RESUMING returned no data_fd")
            self._load(reader, fd, total)
            self.progress(Event("destination", "loading", self.outcome.bytes, total))
            fd.close()
            fd = None
            self.device.set_state(STOP)  # the driver validates what it loaded
            if reply is not None:
                # The commit step: stopped with the whole state, the device starts only on the source's COMMIT; a
                # cut, a timeout or an ABORT before it resets the device (it never ran).
                reply.json(Kind.LOADED, {"bytes": self.outcome.bytes})
                record = reader.expect(Kind.COMMIT, Kind.ABORT)
                if record.kind is Kind.ABORT:
                    raise MigrationError(
                        f"the source gave up after the state was loaded: {record.json().get('reason')}; reset"
                    )
            decided = True  # the source will not run the state again (or the file is whole): it may run here
            self.device.set_state(RUNNING)
        except BaseException as exc:
            with uninterrupted():
                # Once it runs the state (a signal right after RUNNING), a reset would let the source run it again
                # after it ran here: it keeps running, and the session ends as the success it is.
                ran = decided and _runs(self.device)
                if not ran:
                    _close_quietly(fd)
                    self.device.reset()
                    self.outcome.state = _end_state(self.device)
            if ran:
                return self._ran(reply, started)
            if reply is not None:
                self._tell(
                    reply,
                    {
                        "ok": False,
                        "error": str(exc) or type(exc).__name__,
                        "bytes": self.outcome.bytes,
                        "running": False,
                    },
                )
            raise
        return self._ran(reply, started)

    def _ran(self, reply: Writer | None, started: float) -> Outcome:
        """The device runs the state: decided. A lost RESULT leaves the source undecided, never running; a signal
        from here on is too late to undo anything (the device runs either way), so it ends nothing but the report
        and the session returns: `devmig receive` exits 0 exactly when its device runs the state."""
        self.outcome.ok, self.outcome.state = True, "RUNNING"
        if reply is not None:
            with contextlib.suppress(OSError, DevmigError, KeyboardInterrupt):
                reply.json(Kind.RESULT, {"ok": True, "error": None, "bytes": self.outcome.bytes, "running": True})
        with contextlib.suppress(SignalledError, KeyboardInterrupt):
            self.outcome.seconds = self.clock() - started
            self.progress(Event("destination", "done", self.outcome.bytes, self.outcome.bytes))
        return self.outcome

    def _expected_size(self, announced: int | None) -> int:
        """The state size to bound the stream by: what the sender announced, but never more than four times what
        this device (of a compatible type) says its own state takes, so a HELLO that lies high buys nothing."""
        try:
            own: int | None = self.device.mig_data_size()
        except DevmigError:
            own = None
        if announced is None or announced < 0:
            return own or 0
        return announced if own is None else min(announced, 4 * max(own, 1))

    def _refusal(self, hello: dict[str, Any]) -> Refusal | None:
        _migration_flags(self.device, "destination")
        if not isinstance(hello.get("migration_flags"), int) or not hello["migration_flags"]:
            return "the sender's HELLO has no migration flags", None
        state = self.device.get_state()
        if state not in (RUNNING, STOP):
            return f"device {self.device.name} is in {state.name}, not RUNNING or STOP (is it in use?)", None
        return self.judge(hello)

    def _verdict_json(self, refusal: Refusal | None) -> dict[str, Any]:
        return {
            "accept": refusal is None,
            "reason": None if refusal is None else refusal[0],
            "verdict": None if refusal is None else refusal[1],
            "device": self.device.name,
            "devmig": __version__,
        }

    def _load(self, reader: Reader, fd: DataFd, total: int | None) -> None:
        while True:
            record: Record = reader.expect(Kind.DATA, Kind.END, Kind.ABORT)
            if record.kind is Kind.ABORT:
                reason = record.json().get("reason")
                raise MigrationError(f"the source gave up: {reason}; nothing was loaded")
            if record.kind is Kind.END:
                reader.check_end(record)
                return
            self._write(fd, record.payload)
            self.outcome.bytes += len(record.payload)
            self.outcome.records += 1
            self.progress(Event("destination", "resuming", self.outcome.bytes, total))

    @staticmethod
    def _write(fd: DataFd, data: memoryview) -> None:
        done = 0
        while done < len(data):
            n = fd.write(data[done:])
            if n <= 0:
                raise MigrationError("the destination's data_fd took no bytes")
            done += n

    @staticmethod
    def _tell(reply: Writer, result: dict[str, Any]) -> None:
        # the sender is gone (it recovers on its own), or a second signal cut the RESULT (the sender sees a cut)
        with contextlib.suppress(OSError, DevmigError, KeyboardInterrupt):
            reply.json(Kind.RESULT, result)
