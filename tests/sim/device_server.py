"""Simulated devices that outlive the processes driving them, as a kernel's VFIO devices do.

A VFIO device's state is the kernel's: when the process that drives it dies, even by SIGKILL, the device stays in
the migration state it was put in. The simulator's devices live inside a Python process, so a test plays the
kernel: its own process holds the `SimVfioDevice`s and runs, one at a time and in the order they arrive, the calls
that forked child processes make on them through `RemoteDevice` (a `MigrationDevice`) and its `RemoteFile`s (the
data_fds). Every state change is logged in that one order (`Change`), so a test can check what ran when across both
devices, including in the moments between a child's calls.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from devmig.errors import DevmigError
from devmig.migrate.device import DeviceInfo, VfioError
from devmig.migrate.uapi import MigState
from devmig.sim.vfio import SimDataFd, SimVfioDevice

#: a call a child sends: ("call", the device's name or a file's number, method, arguments)
Call = tuple[str, str | int, str, tuple[Any, ...]]


@dataclass(frozen=True)
class Change:
    """A state change the kernel made, in the order of all changes to all of its devices."""

    device: str
    call: str  # "set_state STOP_COPY", "reset"
    state: MigState  # the device's state after the call (ERROR when the driver failed the arc)
    digest: str  # its contents after the call
    error: str | None  # why the call failed, if it did


@dataclass
class Child:
    """A forked side as the kernel sees it: its process, its end of their pipe, and what it said besides calls."""

    process: BaseProcess
    conn: Connection
    #: the messages that were not calls: ("point", label) as it passes each kill point, ("result", ...) at its end
    said: list[tuple[Any, ...]] = field(default_factory=list)


class Kernel:
    """The devices, the data_fds they opened, and the log of their state changes."""

    def __init__(self, devices: Sequence[SimVfioDevice]) -> None:
        self.devices = {dev.name: dev for dev in devices}
        self.files: dict[int, SimDataFd] = {}
        self.log: list[Change] = []

    def call(self, target: str | int, method: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Run one call; the reply a child's proxy turns back into a value or the error the driver raised."""
        obj: SimVfioDevice | SimDataFd = self.files[target] if isinstance(target, int) else self.devices[target]
        error: DevmigError | None = None
        try:
            value = getattr(obj, method)(*args)
        except DevmigError as exc:
            error = exc
        if isinstance(obj, SimVfioDevice) and method in ("set_state", "reset"):
            what = f"{method} {MigState(args[0]).name}" if args else method
            state = obj.get_state()
            self.log.append(Change(obj.name, what, state, obj.state.digest(), None if error is None else str(error)))
        if error is not None:
            return ("error", type(error), error.message, getattr(error, "errno", None))
        if isinstance(value, SimDataFd):
            self.files[id(value)] = value
            return ("file", id(value))
        return ("ok", value)

    def serve(self, children: Sequence[Child], timeout: float) -> None:
        """Run the children's calls until every child has ended; after `timeout` seconds, kill them and fail."""
        try:
            self._serve(children, time.monotonic() + timeout)
        finally:
            for child in children:
                if child.process.is_alive():  # this failed: a side left waiting for a reply would wait for ever
                    child.process.kill()
                child.process.join()
                child.conn.close()

    def _serve(self, children: Sequence[Child], deadline: float) -> None:
        live = {child.conn: child for child in children}
        ended: set[int] = set()
        while live or len(ended) < len(children):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the sides did not end in time: {[c.said for c in children]}")
            for ready in wait(
                [*live, *(c.process.sentinel for c in children if c.process.sentinel not in ended)], left
            ):
                if isinstance(ready, int):  # a sentinel: that child has ended
                    ended.add(ready)
                    continue
                assert isinstance(ready, Connection)
                try:
                    message = ready.recv()
                except (EOFError, OSError):  # the child ended, and what it sent before has been read
                    del live[ready]
                    continue
                if message[0] != "call":
                    live[ready].said.append(message)
                    continue
                reply = self.call(*message[1:])
                with contextlib.suppress(OSError):  # killed while it waited: the call was made, as an ioctl is
                    ready.send(reply)


class _Remote:
    """`before` runs before each call (a test's hook: a signal as the call begins)."""

    def __init__(self, conn: Connection, target: str | int, before: Callable[[], None] | None = None) -> None:
        self._conn, self._target, self._before = conn, target, before

    def _call(self, method: str, *args: Any) -> Any:
        if self._before is not None:
            self._before()
        self._conn.send(("call", self._target, method, args))
        reply = self._conn.recv()
        if reply[0] == "error":
            _, kind, message, err = reply
            raise kind(message, err) if issubclass(kind, VfioError) else kind(message)
        if reply[0] == "file":
            return RemoteFile(self._conn, reply[1], self._before)
        return reply[1]


class RemoteFile(_Remote):
    """A data_fd the kernel holds: read, write, precopy_info, close."""

    def read(self, size: int = 1 << 20) -> bytes:
        data: bytes = self._call("read", size)
        return data

    def write(self, data: bytes | memoryview) -> int:
        written: int = self._call("write", bytes(data))
        return written

    def precopy_info(self) -> tuple[int, int]:
        info: tuple[int, int] = self._call("precopy_info")
        return info

    def close(self) -> None:
        self._call("close")


class RemoteDevice(_Remote):
    """A device the kernel holds, as a MigrationDevice for a session in a child process."""

    def __init__(self, conn: Connection, name: str, before: Callable[[], None] | None = None) -> None:
        super().__init__(conn, name, before)
        self.name = name

    def describe(self) -> DeviceInfo:
        info: DeviceInfo = self._call("describe")
        return info

    def migration_flags(self) -> int:
        flags: int = self._call("migration_flags")
        return flags

    def get_state(self) -> MigState:
        state: MigState = self._call("get_state")
        return state

    def set_state(self, target: int) -> RemoteFile | None:
        fd: RemoteFile | None = self._call("set_state", target)
        return fd

    def mig_data_size(self) -> int:
        size: int = self._call("mig_data_size")
        return size

    def reset(self) -> None:
        self._call("reset")

    def dma_logging_start(self, ranges: Sequence[tuple[int, int]], page_size: int) -> int:
        size: int = self._call("dma_logging_start", list(ranges), page_size)
        return size

    def dma_logging_report(self, iova: int, length: int, page_size: int) -> bytes:
        bitmap: bytes = self._call("dma_logging_report", iova, length, page_size)
        return bitmap

    def dma_logging_stop(self) -> None:
        self._call("dma_logging_stop")


def fork(side: Callable[[Connection], int]) -> Child:
    """A child process (forked: it starts as a copy of this one, without a new interpreter) that runs `side` with its
    end of a pipe to this kernel and exits with the code `side` returns."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_exit_with, args=(side, theirs), daemon=True)
    process.start()
    theirs.close()
    return Child(process, ours)


def _exit_with(side: Callable[[Connection], int], conn: Connection) -> None:
    sys.exit(side(conn))
