"""Where a session's bytes go: in-process (a socket pair), TCP between hosts, or a file.

Each transport is a `Channel` (devmig.migrate.stream) plus a runner that wires a Source or a Destination to it.
TCP is two-way: the receiver answers VERDICT before any state is sent and RESULT once it has loaded the state, so
the source learns of a refusal up front and of a failed load before it gives up its device. A file is one-way: the
check runs when it is restored, still before the device is touched. A saved file is written under a temporary name
and renamed once whole, so a failed save leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from devmig.errors import InputError
from devmig.migrate.device import MigrationDevice
from devmig.migrate.fsm import RUNNING
from devmig.migrate.session import Budget, Destination, Judge, Outcome, Progress, Source, quiet
from devmig.migrate.stream import Reader, StreamError, Writer

#: seconds of silence after which a peer is taken for gone
TIMEOUT: Final = 60.0


class TransportError(StreamError):
    """The connection or file failed under the stream (reset, timed out, refused, no space)."""


class SocketChannel:
    """A connected stream socket."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock, self.name = sock, name

    def send(self, *parts: bytes | memoryview) -> None:
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        try:
            while views:
                sent = self.sock.sendmsg(views)
                while views and sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                if views and sent:
                    views[0] = views[0][sent:]
        except OSError as exc:
            raise TransportError(f"sending to {self.name}: {_why(exc)}") from None

    def recv_into(self, view: memoryview) -> int:
        try:
            return self.sock.recv_into(view)
        except OSError as exc:
            raise TransportError(f"receiving from {self.name}: {_why(exc)}") from None

    def close(self) -> None:
        self.sock.close()


class FileChannel:
    """One direction of a file: written by `save`, read by `restore`."""

    def __init__(self, file: io.FileIO, name: str) -> None:
        self.file, self.name = file, name

    def send(self, *parts: bytes | memoryview) -> None:
        try:
            for part in parts:
                view = memoryview(part).cast("B")
                while view:
                    written = self.file.write(view)
                    view = view[written or 0 :]
        except OSError as exc:
            raise TransportError(f"writing {self.name}: {_why(exc)}") from None

    def recv_into(self, view: memoryview) -> int:
        try:
            return self.file.readinto(view) or 0
        except OSError as exc:
            raise TransportError(f"reading {self.name}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time: the peer is gone or stuck"
    return exc.strerror or str(exc)


# -- addresses --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, *, default_host: str | None = None) -> Address:
    """HOST:PORT, [IPv6]:PORT, or PORT alone when `default_host` is given (a listening side, where 0 means any
    free port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        if default_host is None:
            raise InputError(f"address {text!r}: expected HOST:PORT")
        host = default_host
    lowest = 0 if default_host is not None else 1  # a listener may take port 0: any free port
    if not port.isdigit() or not lowest <= int(port) < 65536:
        raise InputError(f"address {text!r}: the port must be a number from {lowest} to 65535")
    return Address(host, int(port))


def _tune(sock: socket.socket, timeout: float) -> None:
    sock.settimeout(timeout)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # VERDICT and RESULT are small and waited for: no Nagle delay on them
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def listen(address: Address) -> socket.socket:
    try:
        return socket.create_server((address.host, address.port), reuse_port=False)
    except OSError as exc:
        raise TransportError(f"listening on {address}: {_why(exc)}") from None


def connect(address: Address, timeout: float = TIMEOUT) -> SocketChannel:
    try:
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
    except OSError as exc:
        raise TransportError(f"connecting to {address}: {_why(exc)} (is `devmig receive` listening there?)") from None
    _tune(sock, timeout)
    return SocketChannel(sock, str(address))


def accept(listener: socket.socket, timeout: float | None = None, idle: float = TIMEOUT) -> SocketChannel:
    """The first connection (waiting `timeout` seconds, or for ever)."""
    listener.settimeout(timeout)
    try:
        sock, peer = listener.accept()
    except OSError as exc:
        raise TransportError(f"waiting for a sender on {listener.getsockname()}: {_why(exc)}") from None
    _tune(sock, idle)
    return SocketChannel(sock, f"{peer[0]}:{peer[1]}")


# -- runners -----------------------------------------------------------------------------------------------------------


def send(source: Source, channel: SocketChannel) -> Outcome:
    """Run the source over a two-way channel (TCP or a socket pair)."""
    try:
        return source.run(Writer(channel), replies=lambda: Reader(channel))
    finally:
        channel.close()


def receive(destination: Destination, channel: SocketChannel) -> Outcome:
    try:
        return destination.run(Reader(channel), replies=lambda: Writer(channel))
    finally:
        channel.close()


def migrate_local(
    source: MigrationDevice,
    destination: MigrationDevice,
    *,
    identity: dict[str, Any] | None = None,
    judge: Judge,
    budget: Budget | None = None,
    progress: Progress = quiet,
    timeout: float = TIMEOUT,
) -> tuple[Outcome, Outcome]:
    """Both sides in this process, over a socket pair: the destination in a thread, the source here."""
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.settimeout(timeout)
    dest = Destination(destination, judge=judge, progress=progress)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            receive(dest, SocketChannel(right, "the in-process receiver"))
        except BaseException as exc:  # reported to the source as RESULT; kept for the caller
            failure.append(exc)

    thread = threading.Thread(target=serve, name="devmig-receive", daemon=True)
    thread.start()
    try:
        sender = Source(source, identity=identity, budget=budget, progress=progress)
        sent = send(sender, SocketChannel(left, "the in-process sender"))
    finally:
        thread.join(timeout)
    if failure:
        raise failure[0]
    return sent, dest.outcome


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[io.FileIO]:
    """A new file at `path`, there only once complete."""
    tmp = path.with_name(f".{path.name}.devmig-partial")
    try:
        file = io.FileIO(tmp, "w")
    except OSError as exc:
        raise TransportError(f"cannot write {path}: {_why(exc)}") from None
    try:
        with file:
            yield file
            os.fsync(file.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(source: Source, path: str | os.PathLike[str]) -> Outcome:
    """The device's state into a file; the device goes back to RUNNING afterwards (a checkpoint)."""
    target = Path(path)
    source.finish = RUNNING
    with _atomic(target) as file:
        return source.run(Writer(FileChannel(file, str(target))))


def restore(destination: Destination, path: str | os.PathLike[str]) -> Outcome:
    try:
        file = io.FileIO(path, "r")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {_why(exc)}") from None
    with file:
        return destination.run(Reader(FileChannel(file, str(path))))
