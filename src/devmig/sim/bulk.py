"""A simulated device whose migration state is one opaque blob, as pds_vfio_pci's is: large states at memory speed.

The reference drivers of devmig.sim.vfio build their stream record by record in Python, which is right for checking
protocols and wrong for measuring a transport with a gigabyte of state. This driver keeps its state in one buffer:
saving copies it out in `read()` calls (one copy, as a kernel driver copies into the caller's buffer), resuming
copies each `write()` into a staging buffer that RESUMING -> STOP commits only when exactly the whole size arrived
(pds's firmware rejects a short blob there, with no check earlier). Migration flags STOP_COPY|P2P, pds's.
"""

from __future__ import annotations

import errno
import threading

from devmig.migrate import fsm
from devmig.migrate.device import DeviceInfo, VfioError, flag_names
from devmig.migrate.fsm import RESUMING, RUNNING, STOP
from devmig.migrate.uapi import MIGRATION_FLAGS, VFIO_MIGRATION_P2P, VFIO_MIGRATION_STOP_COPY, MigState

FLAGS = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P


class BlobFd:
    """The session's file: reads the blob out (saving) or takes it in (resuming)."""

    def __init__(self, device: BulkDevice, resuming: bool) -> None:
        self.device, self.resuming = device, resuming
        self.offset = 0
        self.closed = False

    def _check(self, what: str, resuming: bool) -> None:
        if self.closed or self.device.session is not self:
            raise VfioError(f"{self.device.name}: data_fd {what}: the session ended", errno.ENODEV)
        if resuming != self.resuming:
            raise VfioError(f"{self.device.name}: data_fd {what}: not open for that", errno.EBADF)

    def read(self, size: int = 1 << 20) -> bytes:
        self._check("read", resuming=False)
        chunk = bytes(memoryview(self.device.blob)[self.offset : self.offset + size])
        self.offset += len(chunk)
        return chunk

    def readinto(self, buffer: memoryview) -> int:
        """read() into the caller's buffer (the session reuses one, so it stays in the cache)."""
        self._check("read", resuming=False)
        chunk = memoryview(self.device.blob)[self.offset : self.offset + len(buffer)]
        buffer[: len(chunk)] = chunk
        self.offset += len(chunk)
        return len(chunk)

    def write(self, data: bytes | memoryview) -> int:
        self._check("write", resuming=True)
        end, size = self.offset + len(data), len(self.device.staging)
        if end > size:
            raise VfioError(f"{self.device.name}: data_fd write: {end} bytes, the state is {size}", errno.ENOMEM)
        self.device.staging[self.offset : end] = data
        self.offset = end
        return len(data)

    def precopy_info(self) -> tuple[int, int]:
        raise VfioError(f"{self.device.name}: VFIO_MIG_GET_PRECOPY_INFO: the device has no PRE_COPY", errno.EINVAL)

    def close(self) -> None:
        self.closed = True


class BulkDevice:
    """A MigrationDevice (devmig.migrate.device) whose state is `blob`."""

    def __init__(self, name: str, blob: bytearray) -> None:
        self.name, self.blob = name, blob
        #: where a resuming session writes; made when one opens (a source never needs it)
        self.staging = bytearray()
        self.state = RUNNING
        self.session: BlobFd | None = None
        self._lock = threading.Lock()

    def describe(self) -> DeviceInfo:
        return DeviceInfo(self.name, 0, ["RESET", "PCI"], 9, 5, flag_names(FLAGS, MIGRATION_FLAGS))

    def migration_flags(self) -> int:
        return FLAGS

    def get_state(self) -> MigState:
        return self.state

    def set_state(self, target: int) -> BlobFd | None:
        with self._lock:
            opened = None
            for step in fsm.path(self.state, target, FLAGS)[1:]:
                opened = self._arc(self.state, step)
                self.state = step
            return opened

    def _arc(self, cur: MigState, nxt: MigState) -> BlobFd | None:
        if (cur, nxt) in fsm.OPENS_DATA_FD:
            if nxt is RESUMING and len(self.staging) != len(self.blob):
                self.staging = bytearray(len(self.blob))
            self.session = BlobFd(self, resuming=nxt is RESUMING)
            return self.session
        if (cur, nxt) == (RESUMING, STOP):
            assert self.session is not None
            arrived = self.session.offset
            if arrived != len(self.blob):
                self.state, self.session = MigState.ERROR, None
                raise VfioError(
                    f"{self.name}: RESUMING -> STOP: {arrived} of {len(self.blob)} bytes arrived", errno.EINVAL
                )
            self.blob, self.staging = self.staging, self.blob  # load: the staged copy becomes the state
        if (cur, nxt) in fsm.ENDS_SESSION:
            self.session = None
        return None

    def mig_data_size(self) -> int:
        return len(self.blob)

    def reset(self) -> None:
        with self._lock:
            self.state, self.session = RUNNING, None

    def dma_logging_start(self, ranges: object, page_size: int) -> int:
        raise VfioError(f"{self.name}: DMA_LOGGING_START: the driver implements no DMA logging", errno.ENOTTY)

    def dma_logging_report(self, iova: int, length: int, page_size: int) -> bytes:
        raise VfioError(f"{self.name}: DMA_LOGGING_REPORT: the driver implements no DMA logging", errno.ENOTTY)

    def dma_logging_stop(self) -> None:
        raise VfioError(f"{self.name}: DMA_LOGGING_STOP: the driver implements no DMA logging", errno.ENOTTY)
