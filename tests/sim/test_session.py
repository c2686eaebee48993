"""Migration sessions end to end on the simulator: the state arrives byte for byte while the guest keeps writing,
and every failure leaves the source RUNNING with its state intact and the destination reset."""

from __future__ import annotations

import errno
import random
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

import pytest

from devmig.errors import DevmigError, IncompatibleError
from devmig.machine import open_host
from devmig.machine.lab import LabHost
from devmig.migrate import transport
from devmig.migrate.device import VfioError
from devmig.migrate.fsm import PRE_COPY, PRE_COPY_P2P, RESUMING, RUNNING, STOP, STOP_COPY
from devmig.migrate.identity import describe_destination, judge_for, source_hello
from devmig.migrate.session import (
    Budget,
    Destination,
    EndState,
    Event,
    MigrationError,
    Outcome,
    Source,
    accept_all,
)
from devmig.migrate.stream import Reader, StreamError, StreamFormatError, Writer
from devmig.migrate.transport import SocketChannel, TransportError
from devmig.migrate.uapi import MigState
from devmig.provision import prepare
from devmig.sim.vfio import DeviceState, SimVfioDevice, StreamHeader
from tests.provision.conftest import RUNNING_GPU, gpu_source

MiB = 1 << 20


def device(
    name: str, flags: int = 7, *, seed: int | None = 1, memory: int = 2 * MiB, model: str = "m"
) -> SimVfioDevice:
    state = DeviceState.create(memory=memory, seed=seed)
    dev = SimVfioDevice(name, state, migration_flags=flags, header=StreamHeader(model, "1.0.0"))
    dev.open()
    return dev


@contextmanager
def guest(dev: SimVfioDevice, seed: int = 7) -> Iterator[threading.Event]:
    """The guest keeps writing to the device (it changes only while the device executes)."""
    stop = threading.Event()

    def work() -> None:
        rng = random.Random(seed)
        while not stop.wait(0.0002):
            dev.guest_tick(rng, 4)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("flags", [1, 3, 5, 7])
def test_the_state_arrives_byte_for_byte_while_the_guest_writes(flags: int) -> None:
    src, dst = device("src", flags), device("dst", flags, seed=None)
    with guest(src):
        sent, got = transport.migrate_local(src, dst, judge=accept_all, budget=Budget(max_rounds=5, downtime=0.001))
    assert src.state.digest() == dst.state.digest()
    assert (src.get_state(), dst.get_state()) == (STOP, RUNNING)
    assert sent.bytes == got.bytes and sent.records == got.records and sent.ok and got.ok
    if flags & 4:  # PRE_COPY: most of the state moved while the device ran
        assert sent.rounds >= 1 and sent.precopy_bytes >= len(src.state.memory)
    else:
        assert sent.rounds == 0 and sent.precopy_bytes == 0


def test_pre_copy_rounds_are_bounded_and_can_be_skipped() -> None:
    src, dst = device("src"), device("dst", seed=None)
    with guest(src):
        sent, _ = transport.migrate_local(src, dst, judge=accept_all, budget=Budget(max_rounds=3, downtime=0))
    assert 1 <= sent.rounds <= 3
    src2, dst2 = device("src2"), device("dst2", seed=None)
    sent, _ = transport.migrate_local(src2, dst2, judge=accept_all, budget=Budget(max_rounds=0))
    assert sent.rounds == 0 and sent.precopy_bytes == 0 and src2.state.digest() == dst2.state.digest()


def test_a_quiet_device_switches_after_its_initial_data() -> None:
    src, dst = device("src"), device("dst", seed=None)
    sent, _ = transport.migrate_local(src, dst, judge=accept_all)
    assert sent.rounds == 1  # nothing dirty after the initial data: stop-copy at once
    assert sent.downtime is not None and sent.downtime < sent.seconds


# -- between two lab hosts, over TCP ---------------------------------------------------------------------------------


def test_a_lab_device_migrates_over_tcp_to_a_prepared_destination_byte_for_byte() -> None:
    alpha, beta = open_host("sim:alpha"), open_host("sim:beta")
    assert isinstance(alpha, LabHost) and isinstance(beta, LabHost)
    target = prepare(gpu_source(), beta).device
    src, dst = alpha.sim.kernel.vfio_device(RUNNING_GPU), beta.sim.kernel.vfio_device(target)
    judge = judge_for(*describe_destination(beta.sysfs, target))
    identity = source_hello(alpha.sysfs, RUNNING_GPU)
    events: list[Event] = []
    with transport.listen(transport.Address("127.0.0.1", 0)) as listener:
        address = transport.Address(*listener.getsockname()[:2])
        src.open()
        dst.open()
        results: list[Outcome] = []

        def serve() -> None:
            results.append(transport.receive(Destination(dst, judge=judge), transport.accept(listener, 10, tls=None)))

        thread = threading.Thread(target=serve)
        thread.start()
        with guest(src):
            sent = transport.send(
                Source(src, identity=identity, budget=Budget(downtime=0.001), progress=events.append),
                transport.connect(address, 10, tls=None),
            )
        thread.join()
    assert src.state.digest() == dst.state.digest()
    assert sent.verdict is None and sent.peer["device"] == target and results[0].ok
    phases = [e.phase for e in events]
    assert phases[:2] == ["hello", "verdict"] and "pre-copy" in phases and "stop-copy" in phases
    assert phases[-1] == "done"


def test_an_outcome_can_name_every_state_a_device_reports() -> None:
    assert set(get_args(EndState)) == {"", *(state.name for state in MigState)}


def test_an_incompatible_destination_refuses_before_any_state_is_sent() -> None:
    alpha, delta = open_host("sim:alpha"), open_host("sim:delta")  # delta runs simgpu 1.1.0, alpha 1.2.0
    assert isinstance(alpha, LabHost) and isinstance(delta, LabHost)
    from devmig.host.ops import create_mdev

    target = "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001"
    create_mdev(delta.sysfs, "0000:00:02.0", "simgpu-2G", target)
    src, dst = alpha.sim.kernel.vfio_device(RUNNING_GPU), delta.sim.kernel.vfio_device(target)
    src.open()
    dst.open()
    before = dst.state.digest()
    with pytest.raises(IncompatibleError, match=r"before any state was sent: .*older than the source") as info:
        transport.migrate_local(
            src,
            dst,
            identity=source_hello(alpha.sysfs, RUNNING_GPU),
            judge=judge_for(*describe_destination(delta.sysfs, target)),
        )
    verdict = info.value.verdict
    assert isinstance(verdict, dict) and not verdict["compatible"]
    assert src.get_state() is RUNNING and dst.get_state() is RUNNING and dst.state.digest() == before


def test_a_sender_that_cannot_describe_its_device_is_refused_unless_told_otherwise() -> None:
    beta = open_host("sim:beta")
    target = prepare(gpu_source(), beta).device
    judge = judge_for(*describe_destination(beta.sysfs, target))
    refusal = judge({"descriptor": None, "descriptor_error": "no profile"})
    assert refusal is not None and "(no profile)" in refusal[0] and "--no-check" in refusal[0]
    malformed = judge({"descriptor": {"device_api": 3}})
    assert malformed is not None and "malformed" in malformed[0]


# -- failures: the source always ends RUNNING and intact --------------------------------------------------------------


class CutChannel:
    """A socket channel that is cut (the socket shut down) once `after` bytes have been sent."""

    def __init__(self, inner: SocketChannel, after: int) -> None:
        self.inner, self.after, self.name = inner, after, inner.name

    def send(self, *parts: bytes | memoryview) -> None:
        size = sum(len(p) for p in parts)
        if size >= self.after:
            data = b"".join(bytes(p) for p in parts)[: self.after]
            self.inner.send(data)
            self.inner.sock.shutdown(socket.SHUT_RDWR)
            raise TransportError(f"sending to {self.name}: connection cut by the test")
        self.after -= size
        self.inner.send(*parts)

    def recv_into(self, view: memoryview) -> int:
        return self.inner.recv_into(view)


def run_pair(
    src: SimVfioDevice,
    dst: SimVfioDevice,
    *,
    wrap: Callable[[SocketChannel], object] = lambda c: c,
    progress: Callable[[Event], None] = lambda e: None,
) -> tuple[BaseException | None, BaseException | None]:
    """One session over a socket pair; the errors of each side (None for a success)."""
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.settimeout(10)
    errors: list[BaseException | None] = [None, None]

    def serve() -> None:
        channel = SocketChannel(right, "receiver")
        try:
            Destination(dst, judge=accept_all).run(Reader(channel), replies=lambda: Writer(channel))
        except BaseException as exc:
            errors[1] = exc
        finally:
            right.close()

    thread = threading.Thread(target=serve)
    thread.start()
    channel = wrap(SocketChannel(left, "sender"))
    try:
        Source(src, progress=progress).run(Writer(channel), replies=lambda: Reader(channel))  # type: ignore[arg-type]
    except BaseException as exc:
        errors[0] = exc
    finally:
        left.close()
        thread.join()
    return errors[0], errors[1]


def assert_recovered(src: SimVfioDevice, digest: str, dst: SimVfioDevice, dst_digest: str) -> None:
    assert src.get_state() is RUNNING and src.state.digest() == digest
    assert dst.get_state() is RUNNING and dst.state.digest() == dst_digest


#: byte offsets of the cut: inside the preamble and HELLO, and at random through the 2 MiB of state
CUTS = [16, 30, *sorted(random.Random(5).sample(range(40, 2_200_000), 12))]


@pytest.mark.parametrize("offset", CUTS)
def test_a_connection_cut_anywhere_leaves_the_source_running_and_intact(offset: int) -> None:
    src, dst = device("src"), device("dst", seed=None)
    digest, dst_digest = src.state.digest(), dst.state.digest()
    sent_error, got_error = run_pair(src, dst, wrap=lambda c: CutChannel(c, offset))
    assert isinstance(sent_error, StreamError), sent_error
    assert isinstance(got_error, StreamError | MigrationError), got_error
    assert_recovered(src, digest, dst, dst_digest)


def test_a_driver_that_refuses_the_stream_leaves_both_sides_recovered() -> None:
    src, dst = device("src", model="one"), device("dst", seed=None, model="another")
    digest, dst_digest = src.state.digest(), dst.state.digest()
    sent_error, got_error = run_pair(src, dst)
    assert isinstance(sent_error, MigrationError) and "destination failed to load" in str(sent_error)
    assert "from model 'one', this device is 'another'" in str(sent_error)
    assert isinstance(got_error, DevmigError) and getattr(got_error, "errno", None) == errno.EINVAL
    assert_recovered(src, digest, dst, dst_digest)


@pytest.mark.parametrize(
    ("side", "arc"),
    [
        ("dst", (RESUMING, STOP)),  # the driver rejects what it loaded
        ("dst", (STOP, RUNNING)),  # RESUMING -> STOP -> RUNNING_P2P: fails after the state was taken
        ("src", (PRE_COPY, PRE_COPY_P2P)),  # the source's driver fails on the way to STOP_COPY
        ("src", (PRE_COPY_P2P, STOP_COPY)),
        ("src", (RUNNING, PRE_COPY)),
    ],
)
def test_a_failed_arc_on_either_side_leaves_the_source_running_and_intact(
    side: str, arc: tuple[MigState, MigState]
) -> None:
    src, dst = device("src"), device("dst", seed=None)
    digest, dst_digest = src.state.digest(), dst.state.digest()
    cur, nxt = arc
    if (cur, nxt) == (STOP, RUNNING):
        nxt = MigState.RUNNING_P2P
    (src if side == "src" else dst).fail_next(cur, nxt, errno.EIO)
    sent_error, _ = run_pair(src, dst)
    assert sent_error is not None
    assert src.get_state() is RUNNING and src.state.digest() == digest
    assert dst.get_state() is RUNNING
    if (cur, nxt) != (STOP, MigState.RUNNING_P2P):
        assert dst.state.digest() == dst_digest


def test_an_interrupt_mid_stream_leaves_the_source_running() -> None:
    src, dst = device("src"), device("dst", seed=None)
    digest, dst_digest = src.state.digest(), dst.state.digest()

    def interrupt(event: Event) -> None:
        if event.phase == "pre-copy" and event.bytes > 1 << 20:
            raise KeyboardInterrupt

    sent_error, got_error = run_pair(src, dst, progress=interrupt)
    assert isinstance(sent_error, KeyboardInterrupt)
    assert isinstance(got_error, MigrationError) and "the source gave up" in str(got_error)
    assert_recovered(src, digest, dst, dst_digest)


def test_a_device_without_migration_is_named() -> None:
    src, dst = device("src", flags=0), device("dst", seed=None)
    with pytest.raises(MigrationError, match="source device src: its driver implements no VFIO migration"):
        transport.migrate_local(src, dst, judge=accept_all)


def test_a_device_in_the_middle_of_another_session_is_refused() -> None:
    src, dst = device("src"), device("dst", seed=None)
    src.set_state(PRE_COPY)
    with pytest.raises(MigrationError, match="is in PRE_COPY: a migration starts from RUNNING or STOP"):
        transport.migrate_local(src, dst, judge=accept_all)


# -- a file ----------------------------------------------------------------------------------------------------------


def test_save_and_restore_through_a_file(tmp_path: Path) -> None:
    src, dst = device("src"), device("dst", seed=None)
    path = tmp_path / "state.devmig"
    saved = transport.save(Source(src), path)
    assert src.get_state() is RUNNING and saved.state == "RUNNING"  # a checkpoint: the device runs on
    restored = transport.restore(Destination(dst, judge=accept_all), path)
    assert restored.bytes == saved.bytes and dst.state.digest() == src.state.digest()
    assert not list(tmp_path.glob(".*partial"))


def test_a_failed_save_leaves_no_file_and_the_device_running(tmp_path: Path) -> None:
    src = device("src")
    src.fail_next(PRE_COPY_P2P, STOP_COPY, errno.EIO)
    with pytest.raises(DevmigError):
        transport.save(Source(src), tmp_path / "state.devmig")
    assert list(tmp_path.iterdir()) == [] and src.get_state() is RUNNING


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_file_is_refused_and_the_destination_reset(tmp_path: Path, damage: str) -> None:
    src, dst = device("src"), device("dst", seed=None)
    path = tmp_path / "state.devmig"
    transport.save(Source(src), path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        del data[len(data) // 2 :]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x40
    else:
        data[:] = b"#!/bin/sh\n" * 10
    path.write_bytes(bytes(data))
    before = dst.state.digest()
    expected = StreamError if damage == "truncate" else StreamFormatError
    with pytest.raises(expected):
        transport.restore(Destination(dst, judge=accept_all), path)
    assert dst.get_state() is RUNNING and dst.state.digest() == before


@pytest.mark.parametrize("offset", CUTS[::3])
def test_a_source_that_started_in_stop_is_left_in_stop(offset: int) -> None:
    """A VM paused before its migration stays paused when the migration fails: its device is not started."""
    src, dst = device("src"), device("dst", seed=None)
    src.set_state(STOP)
    digest = src.state.digest()
    sent_error, _ = run_pair(src, dst, wrap=lambda c: CutChannel(c, offset))
    assert isinstance(sent_error, StreamError), sent_error
    assert src.get_state() is STOP and src.state.digest() == digest
    assert dst.get_state() is RUNNING


class CloseFails:
    """A device whose session files fail to close (EIO), as a driver's release can."""

    def __init__(self, inner: SimVfioDevice) -> None:
        self.inner, self.name = inner, inner.name

    def set_state(self, target: int) -> object:
        fd = self.inner.set_state(target)
        if fd is None:
            return None
        inner_close = fd.close

        def close() -> None:
            inner_close()
            raise VfioError("close: Input/output error", errno.EIO)

        fd.close = close  # type: ignore[method-assign]
        return fd

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_failing_close_does_not_keep_either_side_from_being_put_back() -> None:
    src, dst = device("src"), device("dst", seed=None)
    digest, dst_digest = src.state.digest(), dst.state.digest()
    sent_error, got_error = run_pair(
        CloseFails(src),  # type: ignore[arg-type]
        CloseFails(dst),  # type: ignore[arg-type]
        wrap=lambda c: CutChannel(c, 1_000_000),
    )
    assert isinstance(sent_error, StreamError), sent_error
    assert got_error is not None and not isinstance(got_error, VfioError)  # the first error, not the close's
    assert_recovered(src, digest, dst, dst_digest)
