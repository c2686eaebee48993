"""A side killed, or stopped by SIGTERM or SIGINT, at each phase of a migration: the commit step's invariant holds.

Each side (Source, Destination) runs in a forked process of its own, as `devmig migrate` and `devmig receive` do,
inside `signals_raise()` as the commands do, over a socket pair, TCP on loopback or mutual TLS; the devices stay
in this process, which plays the kernel (tests/sim/device_server.py): a killed side's device stays where it was
left. At one kill point a side sends itself SIGKILL, SIGTERM or SIGINT. Afterwards this process checks, on the
log of every state change of both devices and on their final states and digests, that the state never ran on two
devices (at once, or one after the other once the source had stopped it), and that each side that lived said what
happened: the source exits 0 only when the destination runs, 4 when it cannot know (and stays stopped), and
otherwise is back in the state it started in; the destination exits 0 exactly when its device runs the state.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import pytest

from devmig.cli import INTERNAL_ERROR
from devmig.errors import DevmigError, ExitCode
from devmig.migrate.fsm import RUNNING, STOP, STOP_COPY
from devmig.migrate.session import Destination, Source, accept_all
from devmig.migrate.stream import CHUNK, Channel, Kind, Reader, Record, Writer
from devmig.migrate.uapi import MigState
from devmig.signals import signals_raise
from tests.sim.device_server import Change, Child, Kernel, RemoteDevice, RemoteFile, fork
from tests.sim.rig import VIAS, Link, device

SOURCE, DESTINATION, UNDECIDED, UNDECIDED_RUNS = "source", "destination", "undecided", "undecided, destination runs"
#: two chunks of device memory: 3 DATA records (the first, one between, the last), less time than test_commit's 3
MEMORY = 2 * CHUNK
#: what the signals do to a side: SIGKILL ends it where it is; SIGTERM and SIGINT raise in it (signals_raise)
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)

#: Every kill point of each side, in the order it passes them, and the outcome of a SIGKILL there and of a SIGTERM
#: or SIGINT there. "source": the destination never ran the state and the source holds it (one that lived is back
#: in the state it started in); "destination": the destination runs it and the source never again; "undecided": the
#: source lived, stays stopped and exits 4, and the destination never ran the state; "undecided, destination runs":
#: the same, but the destination runs it (the undecided source's operator then sees its receive exit 0, or a
#: killed one's device RUNNING).
POINTS: list[tuple[str, str, str, str]] = [
    ("source", "before sending the preamble", SOURCE, SOURCE),
    ("source", "before sending HELLO", SOURCE, SOURCE),
    ("source", "after receiving the preamble", SOURCE, SOURCE),
    ("source", "after receiving VERDICT", SOURCE, SOURCE),
    ("source", "before sending DATA 1", SOURCE, SOURCE),
    ("source", "before sending DATA 2", SOURCE, SOURCE),
    ("source", "before sending DATA 3", SOURCE, SOURCE),
    ("source", "before sending END", SOURCE, SOURCE),
    ("source", "after receiving LOADED", SOURCE, SOURCE),
    # A signal here is undecided although COMMIT never left: a signal in the middle of a send cannot tell how much
    # of it went out, so the source takes it as sent.
    ("source", "before sending COMMIT", SOURCE, UNDECIDED),
    # RESULT arrived, but the signal came before the source read it: it cannot know that it did.
    ("source", "after receiving RESULT", DESTINATION, UNDECIDED_RUNS),
    ("source", "after entering STOP", DESTINATION, DESTINATION),
    ("destination", "after receiving the preamble", SOURCE, SOURCE),
    ("destination", "after receiving HELLO", SOURCE, SOURCE),
    ("destination", "before sending the preamble", SOURCE, SOURCE),
    ("destination", "before sending VERDICT", SOURCE, SOURCE),
    ("destination", "after receiving DATA 1", SOURCE, SOURCE),
    ("destination", "after receiving DATA 2", SOURCE, SOURCE),
    ("destination", "after receiving DATA 3", SOURCE, SOURCE),
    ("destination", "after receiving END", SOURCE, SOURCE),
    ("destination", "before sending LOADED", SOURCE, SOURCE),
    # Killed with the whole state, stopped: it never ran. Signalled, it resets and says so: the source resumes.
    ("destination", "after receiving COMMIT", UNDECIDED, SOURCE),
    # Running, it is the decided outcome: a signal does not undo it (the RESULT goes out).
    ("destination", "after entering RUNNING", UNDECIDED_RUNS, DESTINATION),
    # The signal stops the RESULT, not the device: the destination exits 0, running.
    ("destination", "before sending RESULT", UNDECIDED_RUNS, UNDECIDED_RUNS),
]


def points_of(side: str) -> list[str]:
    return [point for who, point, *_ in POINTS if who == side]


# -- in a side's process ---------------------------------------------------------------------------------------------


class Points:
    """The kill points a side passes, told to the kernel as it passes each; at the `at`-th it signals itself. With
    `again`, it signals itself again at each later point and as each later device call begins (a user who keeps
    pressing Ctrl-C until something happens)."""

    def __init__(self, conn: Connection, at: int | None, sig: int | None, again: bool = False) -> None:
        self.conn, self.at, self.sig, self.again, self.passed = conn, at, sig, again, 0

    def __call__(self, point: str) -> None:
        self.conn.send(("point", point))
        self.passed += 1
        if self.passed - 1 == self.at:
            self.signal()
        else:
            self.signal_again()

    def signal(self) -> None:
        assert self.sig is not None
        os.kill(os.getpid(), self.sig)  # its handler runs before the next line: the signal lands here

    def signal_again(self) -> None:
        if self.again and self.at is not None and self.passed > self.at:
            self.signal()


class KillWriter(Writer):
    """A point before each record it sends (the preamble first)."""

    def __init__(self, channel: Channel, point: Points) -> None:
        self.point = point
        point("before sending the preamble")
        super().__init__(channel)

    def record(self, kind: Kind, payload: bytes | memoryview = b"", flags: int = 0) -> None:
        self.point(f"before sending {kind.name}" + (f" {self.data_records + 1}" if kind is Kind.DATA else ""))
        super().record(kind, payload, flags)


class KillReader(Reader):
    """A point after each record it receives (the preamble first)."""

    def __init__(self, channel: Channel, point: Points) -> None:
        self.point = point
        super().__init__(channel)
        point("after receiving the preamble")

    def next(self) -> Record | None:
        record = super().next()
        if record is not None:
            self.point(
                f"after receiving {record.kind.name}" + (f" {self.data_records}" if record.kind is Kind.DATA else "")
            )
        return record


class KillDevice(RemoteDevice):
    """A point after the request that puts the device in `last`, the state a success leaves it in."""

    def __init__(self, conn: Connection, name: str, point: Points, last: MigState) -> None:
        super().__init__(conn, name, point.signal_again)
        self.point, self.last = point, last

    def set_state(self, target: int) -> RemoteFile | None:
        fd = super().set_state(target)
        if target == self.last:
            self.point(f"after entering {self.last.name}")
        return fd


def as_a_command(conn: Connection, session: Callable[[], object]) -> int:
    """Run `session` as `devmig migrate` and `devmig receive` run theirs; report how it ended and return the exit
    code the command would have (devmig.cli.main's rules)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new process, whatever pytest's was
    try:
        with signals_raise():
            session()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            code = int(ExitCode.INTERRUPTED)
        else:
            code = int(exc.exit_code) if isinstance(exc, DevmigError) else INTERNAL_ERROR
        conn.send(("result", code, type(exc).__name__, str(exc)))
        return code
    conn.send(("result", 0, None, None))
    return 0


def send(device: KillDevice, channel: Channel, point: Points) -> None:
    Source(device).run(KillWriter(channel, point), replies=lambda: KillReader(channel, point))


def receive(device: KillDevice, channel: Channel, point: Points) -> None:
    Destination(device, judge=accept_all).run(KillReader(channel, point), replies=lambda: KillWriter(channel, point))


#: each side: its end of the link, its device, the state a success leaves it in, and its session (transport.send or
#: transport.receive, with the points)
SIDES = {"source": ("sender", "src", STOP, send), "destination": ("receiver", "dst", RUNNING, receive)}


def side_process(name: str, link: Link, at: int | None, sig: int | None, again: bool) -> Callable[[Connection], int]:
    """What the side's process runs: its session as its command runs it, with the points."""
    end, device_name, last, session = SIDES[name]

    def process(conn: Connection) -> int:
        link.keep(end)
        point = Points(conn, at, sig, again)
        device = KillDevice(conn, device_name, point, last)

        def run() -> None:
            channel = link.sender() if end == "sender" else link.receiver()
            try:
                session(device, channel, point)
            finally:
                channel.close()

        return as_a_command(conn, run)

    return process


# -- in this process: the kernel -------------------------------------------------------------------------------------


@dataclass
class Run:
    start: MigState
    digest: str  # the source's state
    kernel: Kernel
    sides: dict[str, Child]

    def result(self, side: str) -> tuple[int, str | None, str | None] | None:
        """(exit code, exception type, message) of a side that lived to say; None for one killed."""
        said = [m[1:] for m in self.sides[side].said if m[0] == "result"]
        return said[0] if said else None

    def points(self, side: str) -> list[str]:
        return [m[1] for m in self.sides[side].said if m[0] == "point"]

    def exitcode(self, side: str) -> int | None:
        return self.sides[side].process.exitcode


def migrate(
    via: str,
    start: MigState,
    signalled: str | None = None,
    at: int | None = None,
    sig: int | None = None,
    again: bool = False,
) -> Run:
    """One migration between two processes, the `signalled` side sent `sig` at its `at`-th point (and after)."""
    src, dst = device("src", 1, MEMORY), device("dst", None, MEMORY)
    if start is STOP:
        src.set_state(STOP)
    kernel = Kernel([src, dst])
    link = Link(via)
    try:
        children = {
            name: fork(side_process(name, link, *((at, sig, again) if name == signalled else (None, None, False))))
            for name in ("destination", "source")
        }
    finally:
        link.close()  # the children hold their ends: one that dies hangs up on the other
    kernel.serve(list(children.values()), timeout=30)
    return Run(start, src.state.digest(), kernel, children)


def runs_the_state(change: Change, digest: str) -> bool:
    """Whether a change leaves its device running the state: RUNNING with the source's contents. A reset device runs
    its own, reset state (the simulator keeps the bytes, a real reset does not; the protocol counts a reset
    destination as one that never ran)."""
    return change.call != "reset" and change.state is RUNNING and change.digest == digest


def replay(run: Run) -> tuple[set[str], dict[str, bool]]:
    """The kernel's log, replayed: asserts that the two devices never ran the state at once; returns the devices
    that ran it after the source had stopped it, and which run it at the end."""
    runs = {"src": run.start is RUNNING, "dst": False}
    stopped = not runs["src"]
    after_stop: set[str] = set()
    for change in run.kernel.log:
        runs[change.device] = runs_the_state(change, run.digest)
        stopped = stopped or not runs["src"]
        assert not all(runs.values()), f"both devices run the state after {change}"
        if stopped and runs[change.device]:
            after_stop.add(change.device)
    return after_stop, runs


def outcome(run: Run) -> str:
    """Where the state is after the run, once the invariant is checked, and what each side that lived said."""
    src, dst = run.kernel.devices["src"], run.kernel.devices["dst"]
    assert src.state.digest() == run.digest, "the source's state changed"
    after_stop, runs = replay(run)
    assert len(after_stop) <= 1, f"the state ran on {sorted(after_stop)} after the source stopped it"
    assert runs["dst"] or "dst" not in after_stop, "the destination ran the state, then was reset"
    source, destination = run.result("source"), run.result("destination")
    for side, said in (("source", source), ("destination", destination)):
        assert said is not None or run.exitcode(side) == -signal.SIGKILL, f"the {side} ended without a word"
        assert said is None or said[0] != INTERNAL_ERROR, f"the {side} failed: {said}"
    if destination is not None:  # exit 0 exactly when it runs: what an undecided source's operator looks at
        assert (destination[0] == 0) == runs["dst"], f"the destination said {destination}, runs: {runs['dst']}"
        changes = [c for c in run.kernel.log if c.device == "dst"]
        assert runs["dst"] or not changes or changes[-1].call == "reset", f"it said {destination}, left {dst}"
    if source is not None and source[0] == ExitCode.UNDECIDED:
        assert src.get_state() is STOP and "src" not in after_stop
        assert source[1] == "UndecidedError" and "--resolve destination-runs" in str(source[2])
        return UNDECIDED_RUNS if runs["dst"] else UNDECIDED
    if runs["dst"]:
        assert "src" not in after_stop and src.get_state() in (STOP, STOP_COPY)
        assert source is None or (source[0] == 0 and src.get_state() is STOP), f"the source said {source}"
        return DESTINATION
    if source is None:  # killed: left where it was, before or during the copy
        assert src.get_state() in (run.start, STOP_COPY)
    else:  # failed or stopped, and back as it started
        assert source[0] not in (0, ExitCode.UNDECIDED) and src.get_state() is run.start, f"the source: {source}"
    return SOURCE


# -- the tests -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", VIAS)
def test_a_whole_migration_between_two_processes_passes_every_point(via: str) -> None:
    run = migrate(via, RUNNING)
    assert outcome(run) == DESTINATION
    assert run.result("source") == run.result("destination") == (0, None, None)
    for side in ("source", "destination"):
        assert run.points(side) == points_of(side)


def cases(vias: tuple[str, ...], signals: tuple[signal.Signals, ...], again: bool) -> list[Any]:
    """Every (channel, start state, signal, side, point) with its expected outcome."""
    return [
        pytest.param(via, start, sig, side, point, expected, id=f"{via}-{start.name}-{sig.name}-{side}-{point}")
        for via in vias
        for start in (RUNNING, STOP)
        for sig in signals
        for side, point, killed, signalled in POINTS
        for expected in [
            killed if sig == signal.SIGKILL else AGAIN.get((side, point), signalled) if again else signalled
        ]
    ]


def signalled_at(via: str, start: MigState, sig: signal.Signals, side: str, point: str, again: bool = False) -> Run:
    at = points_of(side).index(point)
    run = migrate(via, start, side, at, sig, again)
    passed = run.points(side)
    assert passed[at] == point, f"the {side} passed {passed}"
    if sig == signal.SIGKILL:
        assert len(passed) == at + 1 and run.exitcode(side) == -signal.SIGKILL
    else:
        assert run.result(side) is not None, f"the {side} died of {sig.name}: {run.exitcode(side)}"
    return run


@pytest.mark.parametrize(("via", "start", "sig", "side", "point", "expected"), cases(VIAS, SIGNALS, again=False))
def test_a_side_killed_or_signalled_at_each_point(
    via: str, start: MigState, sig: signal.Signals, side: str, point: str, expected: str
) -> None:
    assert outcome(signalled_at(via, start, sig, side, point)) == expected


#: where a signal that keeps coming ends otherwise than one signal: the next one cuts the destination's RESULT
AGAIN = {
    ("destination", "after receiving COMMIT"): UNDECIDED,
    ("destination", "after entering RUNNING"): UNDECIDED_RUNS,
}


@pytest.mark.parametrize(
    ("via", "start", "sig", "side", "point", "expected"), cases(("pair",), (signal.SIGTERM, signal.SIGINT), again=True)
)
def test_a_signal_that_keeps_coming_does_not_cut_an_undo_or_a_success_short(
    via: str, start: MigState, sig: signal.Signals, side: str, point: str, expected: str
) -> None:
    """Signalled again at every later point and device call: putting a device back, or where a success leaves it,
    is finished all the same (before, a second Ctrl-C left a source stopped half-way back, in STOP_COPY)."""
    assert outcome(signalled_at(via, start, sig, side, point, again=True)) == expected
