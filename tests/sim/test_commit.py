"""The commit step (stream 2.0): at no moment can both devices run the state; when the outcome is decided exactly one
runs; when a cut leaves it undecided (only after COMMIT was sent) the source stays stopped and says so.

The fault matrix cuts the connection at every record boundary of both directions (the sender's stream and the
receiver's replies) of one session between two simulated devices, and checks the invariant after each cut.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import pytest

from devmig.migrate.device import MigrationDevice
from devmig.migrate.fsm import RUNNING, STOP
from devmig.migrate.session import (
    Destination,
    DestinationResetError,
    MigrationError,
    Source,
    UndecidedError,
    accept_all,
)
from devmig.migrate.stream import Kind, Reader, Writer
from devmig.migrate.transport import SocketChannel, TransportError
from devmig.sim.vfio import SimVfioDevice
from tests.sim.rig import VIAS, Link, device


class Cut:
    """A channel whose `send`s stop at the `at`-th (0-based): the socket is shut down both ways instead."""

    def __init__(self, inner: SocketChannel, at: int | None) -> None:
        self.inner, self.at, self.name, self.sends = inner, at, inner.name, 0

    def send(self, *parts: bytes | memoryview) -> None:
        if self.at is not None and self.sends >= self.at:
            self.inner.sock.shutdown(socket.SHUT_RDWR)
            raise TransportError(f"sending to {self.name}: cut by the test before send {self.sends}")
        self.sends += 1
        self.inner.send(*parts)

    def recv_into(self, view: memoryview) -> int:
        return self.inner.recv_into(view)


@dataclass
class Run:
    source_error: BaseException | None
    dest_error: BaseException | None
    sender_sends: int
    receiver_sends: int


def session(
    src: MigrationDevice,
    dst: MigrationDevice,
    cut_sender: int | None,
    cut_receiver: int | None,
    via: str = "pair",
    writer: type[Writer] = Writer,
) -> Run:
    errors: list[BaseException | None] = [None, None]
    counts = [0, 0]
    link = Link(via)

    def serve() -> None:
        try:
            channel = link.receiver()
        except BaseException as exc:  # no channel could be accepted: a sender cut before its first byte
            errors[1] = exc
            return
        receiver = Cut(channel, cut_receiver)
        try:
            Destination(dst, judge=accept_all).run(Reader(receiver), replies=lambda: Writer(receiver))
        except BaseException as exc:
            errors[1] = exc
        finally:
            counts[1] = receiver.sends
            channel.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        channel = link.sender()
        sender = Cut(channel, cut_sender)
        try:
            Source(src).run(writer(sender), replies=lambda: Reader(sender))
        except BaseException as exc:
            errors[0] = exc
        finally:
            counts[0] = sender.sends
            channel.close()
    finally:
        thread.join(30)
        link.close()
    return Run(errors[0], errors[1], counts[0], counts[1])


def check_invariant(run: Run, src: SimVfioDevice, dst: SimVfioDevice, digest: str) -> str:
    """The outcome, after asserting the invariant: "destination", "source" or "undecided"."""
    dest_runs = run.dest_error is None and dst.get_state() is RUNNING and dst.state.digest() == digest
    source_runs = src.get_state() is RUNNING
    assert src.state.digest() == digest, "the source's state changed"
    assert not (dest_runs and source_runs), "both devices run the state"
    if isinstance(run.source_error, UndecidedError):
        assert src.get_state() is STOP, "an undecided source must stay stopped"
        assert run.source_error.exit_code == 4
        return "undecided"
    assert dest_runs != source_runs, "a decided outcome runs exactly one device"
    if dest_runs:
        assert run.source_error is None and src.get_state() is STOP
        return "destination"
    assert run.dest_error is not None and dst.get_state() is RUNNING
    return "source"


def whole() -> Run:
    src, dst = device("src", 1), device("dst", None)
    return session(src, dst, None, None)


@pytest.mark.parametrize("via", VIAS)
def test_an_uncut_session_runs_the_destination_only(via: str) -> None:
    src, dst = device("src", 1), device("dst", None)
    digest = src.state.digest()
    run = session(src, dst, None, None, via)
    assert check_invariant(run, src, dst, digest) == "destination"
    # preamble, HELLO, 4 DATA, END, COMMIT; preamble, VERDICT, LOADED, RESULT
    assert (run.sender_sends, run.receiver_sends) == (SENDER_SENDS, RECEIVER_SENDS)


SENDER_SENDS, RECEIVER_SENDS = 8, 4


#: every cut point: (direction, how many sends get through) and the outcome it must have. Before COMMIT the
#: destination never runs and the source is sure of it; a cut COMMIT or a lost RESULT is undecided at the source.
CUTS = [("sender", at, "undecided" if at == SENDER_SENDS - 1 else "source") for at in range(SENDER_SENDS)] + [
    ("receiver", at, "undecided" if at == RECEIVER_SENDS - 1 else "source") for at in range(RECEIVER_SENDS)
]


@pytest.mark.parametrize("via", VIAS)
@pytest.mark.parametrize(("direction", "at", "expected"), CUTS)
def test_a_cut_at_every_record_boundary_in_both_directions(via: str, direction: str, at: int, expected: str) -> None:
    src, dst = device("src", 1), device("dst", None)
    digest = src.state.digest()
    sender, receiver = (at, None) if direction == "sender" else (None, at)
    assert check_invariant(session(src, dst, sender, receiver, via), src, dst, digest) == expected


def test_the_lost_reply_no_longer_forks_the_state() -> None:
    """The defect issue 16 found: RESULT lost after the destination started, and the source resumed too."""
    src, dst = device("src", 1), device("dst", None)
    digest = src.state.digest()
    run = session(src, dst, None, RECEIVER_SENDS - 1)
    assert run.dest_error is None and dst.get_state() is RUNNING and dst.state.digest() == digest
    assert isinstance(run.source_error, UndecidedError) and src.get_state() is STOP
    assert "--resolve destination-runs" in str(run.source_error)


class AbortInsteadOfCommit(Writer):
    """A source that changes its mind after LOADED: it sends ABORT where COMMIT would go."""

    def json(self, kind: Kind, value: dict[str, object]) -> None:
        if kind is Kind.COMMIT:
            kind, value = Kind.ABORT, {"reason": "the test changed its mind"}
        super().json(kind, value)


def test_an_abort_after_loading_resets_the_destination_and_the_source_resumes() -> None:
    src, dst = device("src", 1), device("dst", None)
    digest = src.state.digest()
    run = session(src, dst, None, None, writer=AbortInsteadOfCommit)
    assert isinstance(run.source_error, DestinationResetError)
    assert "gave up after the state was loaded" in str(run.source_error)
    assert isinstance(run.dest_error, MigrationError) and "gave up after the state was loaded" in str(run.dest_error)
    assert src.get_state() is RUNNING and src.state.digest() == digest
    assert dst.get_state() is RUNNING


def test_a_sender_without_the_commit_step_is_refused_by_name() -> None:
    src, dst = device("src", 1), device("dst", None)
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        channel = SocketChannel(right, "receiver")
        try:
            Destination(dst, judge=accept_all).run(Reader(channel), replies=lambda: Writer(channel))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    channel = SocketChannel(left, "sender")
    writer = Writer(channel, (1, 0))
    writer.json(Kind.HELLO, Source(src).hello(src.migration_flags()))
    verdict = Reader(channel).expect(Kind.VERDICT).json()
    thread.join()
    left.close()
    right.close()
    assert not verdict["accept"] and "stream 1.0, which has no commit step" in verdict["reason"]
    assert dst.get_state() is RUNNING and src.get_state() is RUNNING
    assert errors and "stream 1.0" in str(errors[0])
