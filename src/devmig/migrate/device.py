"""The seam for migration: what a VFIO device and its data_fd offer, whether the kernel or the simulator is behind.

`devmig.migrate.vfio.VfioDevice` (the real ioctls) and `devmig.sim.vfio.SimVfioDevice` (the simulator's drivers)
both satisfy `MigrationDevice`; sessions, the probe and the CLI see nothing else. Errors are
`devmig.migrate.vfio.VfioError` carrying the errno the kernel (or the simulated driver) gave.

Reading a saving data_fd: bytes, or b"" at the permanent end of the stream in STOP_COPY. In PRE_COPY and
PRE_COPY_P2P "nothing pending for now" is either VfioError(ENOMSG) (the uAPI's temporary end) or b"" (what mtty
does); a session treats both alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from devmig.errors import DevmigError
from devmig.host.access import Host
from devmig.migrate.uapi import MigState


class VfioError(DevmigError):
    """A VFIO call failed; `errno` is the kernel's (or the simulated driver's) errno, None when none applies."""

    def __init__(self, message: str, err: int | None = None) -> None:
        super().__init__(message)
        self.errno = err


def flag_names(value: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in table.items() if value & bit]


@dataclass
class DeviceInfo:
    name: str
    group: int | None
    flags: list[str]
    num_regions: int
    num_irqs: int
    #: VFIO_MIGRATION_* names, or None when the device has no migration support (ENOTTY)
    migration: list[str] | None
    migration_error: str | None = None
    #: how the device fd was opened: "group" or "cdev"; None for a simulated device
    via: str | None = None


@dataclass(frozen=True)
class RegionInfo:
    """VFIO_DEVICE_GET_REGION_INFO: where region `index` sits in the device fd (pread/pwrite at `offset`)."""

    index: int
    flags: list[str]
    size: int
    offset: int


class DataFd(Protocol):
    """The migration session's file (VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE returned it)."""

    def read(self, size: int = ...) -> bytes: ...

    def write(self, data: bytes | memoryview) -> int: ...

    def precopy_info(self) -> tuple[int, int]:
        """VFIO_MIG_GET_PRECOPY_INFO: (initial_bytes, dirty_bytes); EINVAL outside PRE_COPY(_P2P)."""
        ...

    def close(self) -> None: ...


class MigrationDevice(Protocol):
    """An open VFIO device, as far as migration goes."""

    name: str

    def describe(self) -> DeviceInfo: ...

    def migration_flags(self) -> int:
        """VFIO_DEVICE_FEATURE GET MIGRATION (VFIO_MIGRATION_* bits); VfioError(ENOTTY) without migration."""
        ...

    def get_state(self) -> MigState: ...

    def set_state(self, target: int) -> DataFd | None:
        """SET MIG_DEVICE_STATE: the new data_fd when the final arc opens a session, else None."""
        ...

    def mig_data_size(self) -> int:
        """GET MIG_DATA_SIZE: the bytes STOP_COPY would still produce (an estimate)."""
        ...

    def reset(self) -> None:
        """VFIO_DEVICE_RESET: back to RUNNING, any session dropped."""
        ...

    def dma_logging_start(self, ranges: Sequence[tuple[int, int]], page_size: int) -> int: ...

    def dma_logging_report(self, iova: int, length: int, page_size: int) -> bytes: ...

    def dma_logging_stop(self) -> None: ...


class VfioHost(Host, Protocol):
    """A host whose devices can be opened for migration (devmig.machine builds the real and the simulated one)."""

    def vfio(self, device: str, path: str = "auto") -> AbstractContextManager[MigrationDevice]:
        """The device opened through VFIO, closed when the block ends; `path` picks the way to a real device fd
        (devmig.migrate.vfio.PATHS), a simulated device has one."""
        ...
