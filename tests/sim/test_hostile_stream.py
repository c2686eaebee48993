"""A hostile sender against `devmig receive`'s side of a session: a record longer than the state, a HELLO that
lies, a stream that never ends, a peer that dribbles. Each ends with a clear StreamError, in bounded memory and
time, with the destination device reset and its state unchanged."""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

from devmig.migrate.session import Destination, accept_all
from devmig.migrate.stream import FRAME, Kind, Limits, Reader, StreamError, Writer, frame
from devmig.migrate.transport import SocketChannel
from devmig.sim.bulk import BlobFd, BulkDevice
from devmig.sim.vfio import DeviceState, SimVfioDevice

HELLO = {"devmig": "9.9.9", "device": "hostile", "descriptor": None, "migration_flags": 7}


def device() -> SimVfioDevice:
    dev = SimVfioDevice("dst", DeviceState.create(memory=64 << 10, seed=3))
    dev.open()
    return dev


class Sink(BulkDevice):
    """A driver that checks nothing until RESUMING -> STOP (as pds_vfio_pci leaves it to its firmware): it takes
    any bytes, so only devmig's own limits stand between a hostile sender and the host."""

    def __init__(self) -> None:
        super().__init__("sink", bytearray(64 << 10))
        self.taken = 0

    def set_state(self, target: int) -> BlobFd | None:
        opened = super().set_state(target)
        if opened is not None and opened.resuming:
            sink = self

            class Taker(BlobFd):
                def write(self, data: bytes | memoryview) -> int:
                    sink.taken += len(data)
                    return len(data)

            taker = Taker(self, resuming=True)
            self.session = taker
            return taker
        return opened

    def digest(self) -> bytes:
        return bytes(self.blob)


@contextmanager
def receiver(
    dev: SimVfioDevice | Sink, limits: Limits | None = None
) -> Iterator[tuple[SocketChannel, list[BaseException]]]:
    """A destination in a thread; yields the hostile side's channel and, after the block, the receiver's error."""
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.settimeout(10)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            Destination(dev, judge=accept_all, limits=limits).run(Reader(SocketChannel(right, "hostile peer")))
        except BaseException as exc:
            errors.append(exc)
        finally:
            right.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield SocketChannel(left, "receiver"), errors
    finally:
        with suppress(OSError):
            left.shutdown(socket.SHUT_WR)
        thread.join(30)
        left.close()


def sending(channel: SocketChannel, body: Callable[[Writer], None]) -> None:
    """Run the hostile sender; the receiver hanging up on it is the expected outcome, not a failure here."""
    with suppress(StreamError):
        body(Writer(channel))


def assert_untouched(dev: SimVfioDevice | Sink, digest: str | bytes) -> None:
    assert dev.get_state().name == "RUNNING"
    assert (dev.digest() if isinstance(dev, Sink) else dev.state.digest()) == digest


def test_a_record_longer_than_the_state_is_refused_before_it_is_read() -> None:
    dev = device()
    digest = dev.state.digest()
    tracemalloc.start()
    with receiver(dev) as (channel, errors):

        def body(writer: Writer) -> None:
            writer.json(Kind.HELLO, {**HELLO, "data_size": 70_000})
            head = struct.pack("<BBHI", Kind.DATA, 0, 0, 1 << 30)  # says 1 GiB follows; sends nothing
            channel.send(head + b"\0\0\0\0")

        sending(channel, body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (error,) = errors
    assert isinstance(error, StreamError) and "a record of 1073741824 bytes" in str(error)
    assert peak < 16 << 20  # nothing near the declared size was allocated
    assert_untouched(dev, digest)


def test_a_hello_that_lies_low_cannot_push_more_than_its_bound() -> None:
    dev = Sink()
    digest = dev.digest()
    chunk = bytes(1 << 20)
    with receiver(dev) as (channel, errors):

        def body(writer: Writer) -> None:
            writer.json(Kind.HELLO, {**HELLO, "data_size": 1000})
            for _ in range(100):  # 100 MiB announced as 1000 bytes
                writer.data(chunk, precopy=True)

        sending(channel, body)
    (error,) = errors
    assert isinstance(error, StreamError) and "the sender lied about the state's size or never ends" in str(error)
    assert dev.taken <= 16 * 1000 + 64 * (1 << 20)  # what reached the driver stayed within the bound
    assert_untouched(dev, digest)


def test_a_hello_that_lies_high_is_bounded_by_the_destinations_own_size() -> None:
    dev = Sink()
    digest = dev.digest()
    chunk = bytes(1 << 20)
    with receiver(dev) as (channel, errors):

        def body(writer: Writer) -> None:
            writer.json(Kind.HELLO, {**HELLO, "data_size": 1 << 60})
            for _ in range(200):
                writer.data(chunk, precopy=True)

        sending(channel, body)
    (error,) = errors
    assert isinstance(error, StreamError) and "more than" in str(error)
    assert_untouched(dev, digest)


def test_a_peer_that_dribbles_is_cut() -> None:
    dev = device()
    digest = dev.state.digest()
    limits = Limits(record_seconds=0.5)
    started = time.monotonic()
    with receiver(dev, limits) as (channel, errors):

        def body(writer: Writer) -> None:
            writer.json(Kind.HELLO, {**HELLO, "data_size": 70_000})
            payload = b"x" * 100
            record = frame(Kind.DATA, payload) + payload
            for byte in record:  # one byte every 50 ms: each read returns in time, the record never does
                channel.send(bytes([byte]))
                time.sleep(0.05)

        sending(channel, body)
    (error,) = errors
    assert isinstance(error, StreamError) and "took more than 0.5 s to arrive" in str(error)
    assert time.monotonic() - started < 5
    assert_untouched(dev, digest)


def test_a_stream_below_the_minimum_rate_is_cut() -> None:
    dev = Sink()
    digest = dev.digest()
    limits = Limits(min_rate=1 << 20, grace=0.3, record_seconds=30)
    with receiver(dev, limits) as (channel, errors):

        def body(writer: Writer) -> None:
            writer.json(Kind.HELLO, {**HELLO, "data_size": 70_000})
            for _ in range(100):  # small valid records, slowly: each arrives in time, the average does not
                writer.data(b"y" * 64, precopy=True)
                time.sleep(0.02)

        sending(channel, body)
    (error,) = errors
    assert isinstance(error, StreamError) and "bytes/s a stream must keep" in str(error)
    assert_untouched(dev, digest)


def test_limits_follow_the_announced_state() -> None:
    small = Limits().for_state(96)  # an mtty-2 device
    assert small.max_record == 1 << 20 and small.max_data == 16 * 96 + 64 * (1 << 20)
    big = Limits().for_state(1 << 30)
    assert big.max_record == 64 << 20 and big.max_data == 16 * (1 << 30) + 64 * (1 << 20)
    assert Limits(max_data=5).for_state(1 << 30).max_data == 5
    assert FRAME.size == 12


@pytest.mark.parametrize("size", [None, -5, "big"])
def test_a_hello_without_a_usable_size_falls_back_to_the_devices_own(size: object) -> None:
    dev = device()
    digest = dev.state.digest()
    with receiver(dev) as (channel, errors):

        def body(writer: Writer) -> None:
            writer.json(Kind.HELLO, {**HELLO, "data_size": size})
            writer.data(bytes(2 << 20), precopy=True)  # bigger than a chunk and than the device's state

        sending(channel, body)
    (error,) = errors
    assert isinstance(error, StreamError) and "in one record" in str(error)
    assert_untouched(dev, digest)
