"""A simulated VFIO device with migration v2: the driver's side of the protocol.

The simulator's vendor drivers build their devices from `SimVfioDevice`, and migration tests move a `DeviceState`
between two of them byte for byte. The device keeps the uAPI's rules (include/uapi/linux/vfio.h and the kernel's
vfio_main.c): states change one arc at a time along `devmig.migrate.fsm.path()`; only the final arc of a
request may return a data_fd; PRE_COPY, PRE_COPY_P2P and STOP_COPY share one session; STOP_COPY -> STOP,
PRE_COPY -> RUNNING and PRE_COPY_P2P -> RUNNING_P2P end it; RESUMING -> STOP validates what was written and fails
with EINVAL when the stream is incomplete or inconsistent. A failed arc leaves the device in ERROR, from which only
`reset()` brings it back (to RUNNING). Errors are `VfioError` with the errno the kernel or a driver would return
(`TransitionError`, EINVAL, when the state machine refuses a request). The session's file is a `SavingFd` (read,
precopy_info) or a `ResumingFd` (write), both `SimDataFd`.

Stream layout (all integers little-endian), what a reference vendor driver writes and checks, like hisi_acc's and
qat's match data:

    header   struct "<8sHHIIQII": magic b"DEVMIGSD", header version (1), reserved (0), registers length,
             queues length, memory length, page size, length N of the JSON that follows;
             then N bytes of UTF-8 JSON {"model": str, "software_version": "M.m.b", "params": {name: bool|int|str}}
    records  struct "<B3xIIQ": kind, payload length, crc32 of the payload, offset; then the payload.
             kind 1 = registers (offset 0, the whole block), 2 = queues (offset 0, the whole block),
             3 = one memory page (offset = its byte offset, length = page size; a page may come again, the last wins)
    end      a record of kind 255 with length 0, crc 0 and offset = the number of records before it.

Saving: the data_fd opened by RUNNING -> PRE_COPY (or RUNNING_P2P -> PRE_COPY_P2P) holds the header and every memory
page (the "initial data"); pages the guest dirties later are tracked and sent as new records when the initial data
has been read (a read with nothing pending fails ENOMSG, the uAPI's temporary end of stream). Entering STOP_COPY
appends the pages still dirty, the registers, the queues and the end record; in STOP_COPY a read returning b"" is the
permanent end. STOP -> STOP_COPY produces all of it at once.

Resuming: writes may be cut anywhere. The header is checked as soon as it is complete (magic, version, the region
sizes, then the driver's `check_incoming` hook); a refusal fails that write with EINVAL naming the reason, as a
vendor driver fails it. Records are checked (kind, bounds, crc) as they complete and loaded into a staging copy that
RESUMING -> STOP commits only if the stream ended with its end record and carried every page, the registers and
the queues.

DMA logging: the device writes its memory by DMA at IOVA = the byte offset in `DeviceState.memory`; the log records
the device pages written inside the logged ranges.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from devmig.migrate import fsm
from devmig.migrate.device import DeviceInfo, VfioError, flag_names
from devmig.migrate.fsm import (
    ENDS_SESSION,
    OPENS_DATA_FD,
    PRE_COPY,
    PRE_COPY_P2P,
    RESUMING,
    RUNNING,
    RUNNING_P2P,
    STOP,
    STOP_COPY,
)
from devmig.migrate.uapi import MIGRATION_FLAGS, MigState

ParamValue = bool | int | str

PAGE_SIZE = 4096
#: vfio_main.c: the ranges of DMA_LOGGING_START must fit one kernel page of {u64 iova; u64 length}
LOG_MAX_RANGES = PAGE_SIZE // 16
#: The flag combinations the uAPI defines (0: no migration, the driver has no mig_ops).
VALID_MIGRATION_FLAGS = frozenset({0, 1, 3, 5, 7})
#: States in which the device executes, so the guest can change its state.
EXECUTING = frozenset({RUNNING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P})
#: VFIO_DEVICE_GET_INFO per device API: flag names, num_regions, num_irqs (vfio-pci: VFIO_PCI_NUM_REGIONS/IRQS;
#: vfio-ccw: config, async, schib, crw regions and IO, CRW, REQ irqs; vfio-ap: no regions, REQ and CFG irqs).
DEVICE_APIS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "vfio-pci": (("RESET", "PCI"), 9, 5),
    "vfio-ccw": (("RESET", "CCW"), 4, 3),
    "vfio-ap": (("RESET", "AP"), 0, 2),
}

MAGIC = b"DEVMIGSD"
HEADER_VERSION = 1
_HEADER = struct.Struct("<8sHHIIQII")
_RECORD = struct.Struct("<B3xIIQ")


class RecordKind(IntEnum):
    REGISTERS = 1
    QUEUES = 2
    PAGE = 3
    END = 255


def _error(err: int, what: str, detail: str = "") -> VfioError:
    return VfioError(f"{what}: {os.strerror(err)}" + (f": {detail}" if detail else ""), err)


def _record(kind: RecordKind, offset: int, payload: bytes = b"") -> bytes:
    return _RECORD.pack(kind, len(payload), zlib.crc32(payload) if payload else 0, offset) + payload


def _parse_version(text: str) -> tuple[int, int, int] | None:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


class _Locked(Protocol):
    @property
    def lock(self) -> threading.RLock: ...


_S = TypeVar("_S", bound=_Locked)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def serialized(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """One call at a time per device: the guest (another thread) and the migration share it, as on a real one."""

    def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.lock:
            return method(self, *args, **kwargs)

    run.__name__, run.__doc__ = getattr(method, "__name__", "method"), method.__doc__
    return run


# -- the device's contents ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class DeviceState:
    """What a migration moves: registers, queues and a memory region the guest keeps dirtying (real bytes)."""

    registers: bytearray
    queues: bytearray
    memory: bytearray
    page_size: int = PAGE_SIZE
    _trackers: list[set[int]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.page_size <= 0 or self.page_size & (self.page_size - 1) or len(self.memory) % self.page_size:
            raise ValueError(f"memory of {len(self.memory)} bytes is not a whole number of {self.page_size}-byte pages")

    @classmethod
    def create(
        cls,
        *,
        registers: int = 256,
        queues: int = 1024,
        memory: int = 1 << 20,
        page_size: int = PAGE_SIZE,
        seed: int | None = None,
    ) -> DeviceState:
        """Zeroed regions, or regions filled with bytes drawn from `seed`."""
        fill: Callable[[int], bytes] = bytes if seed is None else random.Random(seed).randbytes
        return cls(bytearray(fill(registers)), bytearray(fill(queues)), bytearray(fill(memory)), page_size)

    def blank_like(self) -> DeviceState:
        return DeviceState.create(
            registers=len(self.registers), queues=len(self.queues), memory=len(self.memory), page_size=self.page_size
        )

    @property
    def pages(self) -> int:
        return len(self.memory) // self.page_size

    def page(self, index: int) -> bytes:
        return bytes(self.memory[index * self.page_size : (index + 1) * self.page_size])

    def write(self, offset: int, data: bytes) -> None:
        """A DMA write into the memory region: every tracker records the pages it touched."""
        if offset < 0 or offset + len(data) > len(self.memory):
            raise ValueError(f"write of {len(data)} bytes at {offset:#x} is outside {len(self.memory)} bytes of memory")
        self.memory[offset : offset + len(data)] = data
        if data:
            touched = range(offset // self.page_size, (offset + len(data) - 1) // self.page_size + 1)
            for tracker in self._trackers:
                tracker.update(touched)

    def track(self) -> set[int]:
        """A set that receives the index of every page written from now on (until `untrack`)."""
        pages: set[int] = set()
        self._trackers.append(pages)
        return pages

    def untrack(self, pages: set[int]) -> None:
        self._trackers = [t for t in self._trackers if t is not pages]

    def guest_tick(self, rng: random.Random, pages: int = 3) -> list[int]:
        """The guest at work: a few writes into memory pages, one register, one queue byte. Returns the pages."""
        touched: set[int] = set()
        for _ in range(pages if self.pages else 0):
            index, length = rng.randrange(self.pages), rng.randint(1, min(64, self.page_size))
            self.write(index * self.page_size + rng.randrange(self.page_size - length + 1), rng.randbytes(length))
            touched.add(index)
        if self.registers:
            self.registers[rng.randrange(len(self.registers))] = rng.randrange(256)
        if self.queues:
            self.queues[rng.randrange(len(self.queues))] = rng.randrange(256)
        return sorted(touched)

    def load(self, other: DeviceState) -> None:
        """Take `other`'s contents in place (the regions keep their identity and sizes)."""
        self.registers[:], self.queues[:], self.memory[:] = other.registers, other.queues, other.memory

    def digest(self) -> str:
        """sha256 of every region (with its length): equal digests mean equal device state."""
        h = hashlib.sha256()
        for region in (self.registers, self.queues, self.memory):
            h.update(len(region).to_bytes(8, "little"))
            h.update(region)
        h.update(self.page_size.to_bytes(8, "little"))
        return h.hexdigest()


# -- the stream header ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamHeader:
    """What the driver puts first in its stream and checks while resuming.

    A driver supplies model, software_version and params; the device fills in the region lengths from its state.
    """

    model: str
    software_version: str
    params: dict[str, ParamValue] = field(default_factory=dict)
    registers_len: int = 0
    queues_len: int = 0
    memory_len: int = 0
    page_size: int = PAGE_SIZE
    version: int = HEADER_VERSION

    def encode(self) -> bytes:
        meta = {"model": self.model, "software_version": self.software_version, "params": self.params}
        text = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        fixed = _HEADER.pack(
            MAGIC, self.version, 0, self.registers_len, self.queues_len, self.memory_len, self.page_size, len(text)
        )
        return fixed + text

    @classmethod
    def decode(cls, data: bytes) -> tuple[StreamHeader, int] | None:
        """(header, bytes used) from the start of `data`; None while incomplete; ValueError naming what is wrong."""
        if len(data) < _HEADER.size:
            if not MAGIC.startswith(data[: len(MAGIC)]):
                raise ValueError(f"the stream does not start with {MAGIC!r}: not a stream of this driver")
            return None
        magic, version, _, registers, queues, memory, page_size, size = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ValueError(f"the stream starts with {magic!r}, not {MAGIC!r}: not a stream of this driver")
        if version != HEADER_VERSION:
            raise ValueError(f"stream header version {version}, this driver reads version {HEADER_VERSION}")
        if len(data) < _HEADER.size + size:
            return None
        try:
            meta = json.loads(data[_HEADER.size : _HEADER.size + size])
            model, software_version, params = meta["model"], meta["software_version"], meta["params"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the stream header's JSON is malformed ({exc})") from None
        if not isinstance(model, str) or not isinstance(software_version, str) or not isinstance(params, dict):
            raise ValueError("the stream header's JSON does not hold model, software_version and params")
        bad = [name for name, value in params.items() if not isinstance(value, bool | int | str)]
        if bad:
            raise ValueError(f"stream header parameters {bad} are not bool, int or str")
        header = cls(model, software_version, params, registers, queues, memory, page_size, version)
        return header, _HEADER.size + size


#: A driver's compatibility hook: (incoming header, this device's header) -> a reason to refuse, or None.
CompatCheck = Callable[[StreamHeader, StreamHeader], str | None]


def default_compatible(incoming: StreamHeader, own: StreamHeader) -> str | None:
    """The architecture's rules from the stream's side: same model; same major version and a destination minor at
    least the source's; every parameter of the source present here with the same value (extra destination
    parameters are the preparation step's business)."""
    if incoming.model != own.model:
        return f"the stream is from model {incoming.model!r}, this device is {own.model!r}"
    src, dst = _parse_version(incoming.software_version), _parse_version(own.software_version)
    if src is None or dst is None:
        bad = incoming.software_version if src is None else own.software_version
        return f"software version {bad!r} is not major.minor.bugfix"
    if src[0] != dst[0]:
        return (
            f"the stream is from software version {incoming.software_version}, this device runs "
            f"{own.software_version}: the major versions differ"
        )
    if src[1] > dst[1]:
        return (
            f"the stream is from software version {incoming.software_version}, newer than this device's "
            f"{own.software_version} (minor {src[1]} > {dst[1]})"
        )
    for name, value in sorted(incoming.params.items()):
        if name not in own.params:
            return f"parameter {name}={value!r} of the stream is unknown to this device"
        mine = own.params[name]
        if type(mine) is not type(value) or mine != value:
            return f"parameter {name}={value!r} in the stream, {mine!r} on this device"
    return None


# -- the data_fd ----------------------------------------------------------------------------------------------------


class SimDataFd:
    """The session's file. Saving sessions are `SavingFd` (read, precopy_info), resuming ones `ResumingFd` (write);
    the other calls fail as on the kernel's files (EBADF: opened read-only or write-only; ENOTTY: no such ioctl)."""

    def __init__(self, device: SimVfioDevice) -> None:
        self.device = device
        self.closed = False
        self._ended: str | None = None
        self._buffer = bytearray()
        self._records = 0

    @property
    def lock(self) -> threading.RLock:
        return self.device.lock

    def __enter__(self) -> SimDataFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True

    def _alive(self, what: str) -> str:
        what = f"{self.device.name}: data_fd {what}"
        if self.closed:
            raise _error(errno.EBADF, what, "the file is closed")
        if self._ended is not None:
            raise _error(errno.ENODEV, what, f"the session ended ({self._ended})")
        return what

    def read(self, size: int = 1 << 20) -> bytes:
        raise _error(errno.EBADF, self._alive("read"), "a resuming data_fd is open for writing only")

    def write(self, data: bytes | memoryview) -> int:
        raise _error(errno.EBADF, self._alive("write"), "a saving data_fd is open for reading only")

    def precopy_info(self) -> tuple[int, int]:
        raise _error(errno.ENOTTY, self._alive("VFIO_MIG_GET_PRECOPY_INFO"), "a resuming data_fd has no such ioctl")

    def _end(self, reason: str) -> None:
        """The driver ends the session: every later call fails ENODEV."""
        self._ended = reason


class SavingFd(SimDataFd):
    """RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P or STOP -> STOP_COPY: the stream, read in any chunks."""

    def __init__(self, device: SimVfioDevice, *, precopy: bool) -> None:
        super().__init__(device)
        self._buffer += device.header().encode()
        self._emit_pages(range(device.state.pages))
        #: bytes of the initial data not read yet (precopy_info's initial_bytes)
        self._initial = len(self._buffer) if precopy else 0
        #: pages written since they were last put in the stream; None once the device is stopped
        self._dirty: set[int] | None = device.state.track() if precopy else None
        if not precopy:
            self._stop_copy()

    def _emit(self, kind: RecordKind, offset: int, payload: bytes = b"") -> None:
        self._buffer += _record(kind, offset, payload)
        self._records += 1

    def _emit_pages(self, pages: Sequence[int]) -> None:
        state = self.device.state
        for index in pages:
            self._emit(RecordKind.PAGE, index * state.page_size, state.page(index))

    def _stop_copy(self) -> None:
        """Entering STOP_COPY: the device no longer changes; append what is left and the end record."""
        state = self.device.state
        if self._dirty is not None:
            self._emit_pages(sorted(self._dirty))
            state.untrack(self._dirty)
            self._dirty = None
        self._emit(RecordKind.REGISTERS, 0, bytes(state.registers))
        self._emit(RecordKind.QUEUES, 0, bytes(state.queues))
        self._buffer += _record(RecordKind.END, self._records)

    @serialized
    def read(self, size: int = 1 << 20) -> bytes:
        """Up to `size` bytes. In PRE_COPY(_P2P) ENOMSG when nothing is pending; in STOP_COPY b"" is the end."""
        what = self._alive("read")
        if size < 0:
            raise _error(errno.EINVAL, what, f"negative size {size}")
        if not self._buffer and self.device.get_state() in (PRE_COPY, PRE_COPY_P2P):
            if not self._dirty:
                raise _error(errno.ENOMSG, what, "no pre-copy data pending")
            self._emit_pages(sorted(self._dirty))
            self._dirty.clear()
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._initial = max(0, self._initial - len(chunk))
        return chunk

    @serialized
    def precopy_info(self) -> tuple[int, int]:
        """VFIO_MIG_GET_PRECOPY_INFO: (initial_bytes, dirty_bytes); EINVAL outside PRE_COPY and PRE_COPY_P2P."""
        what = self._alive("VFIO_MIG_GET_PRECOPY_INFO")
        state = self.device.get_state()
        if state not in (PRE_COPY, PRE_COPY_P2P):
            raise _error(errno.EINVAL, what, f"the device is in {state.name}, not in PRE_COPY or PRE_COPY_P2P")
        page_record = _RECORD.size + self.device.state.page_size
        return self._initial, len(self._buffer) - self._initial + len(self._dirty or ()) * page_record

    def pending_bytes(self) -> int:
        """What the session would still stream if the device went to STOP_COPY now (MIG_DATA_SIZE)."""
        if self._dirty is None:
            return len(self._buffer)
        state = self.device.state
        final = 3 * _RECORD.size + len(state.registers) + len(state.queues)
        return len(self._buffer) + len(self._dirty) * (_RECORD.size + state.page_size) + final

    def _end(self, reason: str) -> None:
        super()._end(reason)
        if self._dirty is not None:
            self.device.state.untrack(self._dirty)
            self._dirty = None


class ResumingFd(SimDataFd):
    """STOP -> RESUMING: takes the stream cut anywhere, checks it as it comes, loads it on RESUMING -> STOP."""

    def __init__(self, device: SimVfioDevice) -> None:
        super().__init__(device)
        self._header: StreamHeader | None = None
        self._staging = device.state.blank_like()
        self._pages_seen: set[int] = set()
        self._blocks_seen: set[RecordKind] = set()
        self._complete = False
        self._refused: str | None = None

    def _refuse(self, reason: str, err: int = errno.EINVAL) -> VfioError:
        self._refused = reason
        return _error(err, f"{self.device.name}: data_fd write", f"refusing the incoming stream: {reason}")

    @serialized
    def write(self, data: bytes | memoryview) -> int:
        """Take the next bytes of the stream. Returns len(data); VfioError when the driver refuses the stream."""
        what = self._alive("write")
        if self._refused is not None:
            raise _error(errno.EINVAL, what, f"the stream was refused: {self._refused}")
        self._buffer += data
        if self._header is None and not self._take_header():
            return len(data)
        self._take_records()
        return len(data)

    def _take_header(self) -> bool:
        try:
            decoded = StreamHeader.decode(bytes(self._buffer))
        except ValueError as exc:
            raise self._refuse(str(exc)) from None
        if decoded is None:
            return False
        header, used = decoded
        reason = self.device.refusal(header)
        if reason is not None:
            raise self._refuse(reason, self.device.refusal_errno)
        self._header = header
        del self._buffer[:used]
        return True

    def _take_records(self) -> None:
        buf, state = self._buffer, self._staging
        while not self._complete and len(buf) >= _RECORD.size:
            code, length, crc, offset = _RECORD.unpack_from(buf)
            if code == RecordKind.END:
                if length or offset != self._records:
                    raise self._refuse(f"the end record counts {offset} records, the stream had {self._records}")
                self._complete = True
                del buf[: _RECORD.size]
                break
            if code not in (RecordKind.REGISTERS, RecordKind.QUEUES, RecordKind.PAGE):
                raise self._refuse(f"record {self._records} has unknown kind {code}", errno.EOPNOTSUPP)
            kind = RecordKind(code)
            self._check_bounds(kind, offset, length)
            if len(buf) < _RECORD.size + length:
                return
            payload = bytes(buf[_RECORD.size : _RECORD.size + length])
            if zlib.crc32(payload) != crc:
                raise self._refuse(f"record {self._records} ({kind.name} at {offset:#x}) fails its crc")
            if kind is RecordKind.PAGE:
                state.memory[offset : offset + length] = payload
                self._pages_seen.add(offset // state.page_size)
            else:
                (state.registers if kind is RecordKind.REGISTERS else state.queues)[:] = payload
                self._blocks_seen.add(kind)
            self._records += 1
            del buf[: _RECORD.size + length]
        if self._complete and buf:
            raise self._refuse(f"{len(buf)} bytes follow the end record")

    def _check_bounds(self, kind: RecordKind, offset: int, length: int) -> None:
        state, where = self._staging, f"record {self._records} ({kind.name}, {length} bytes at {offset:#x})"
        if kind is RecordKind.PAGE:
            if offset % state.page_size or length != state.page_size or offset + length > len(state.memory):
                raise self._refuse(f"{where} is not one of the {state.pages} pages of {state.page_size} bytes")
        else:
            size = len(state.registers if kind is RecordKind.REGISTERS else state.queues)
            if offset or length != size:
                raise self._refuse(f"{where} does not cover the {size}-byte {kind.name.lower()} block")

    def loaded(self) -> DeviceState:
        """RESUMING -> STOP: the staged state when the stream was whole, else VfioError(EINVAL) with the reason."""
        what = f"{self.device.name}: SET MIG_DEVICE_STATE RESUMING -> STOP"
        if self._refused is not None:
            raise _error(errno.EINVAL, what, f"the stream was refused: {self._refused}")
        if self._header is None:
            raise _error(errno.EINVAL, what, f"the stream ended inside its header ({len(self._buffer)} bytes)")
        if not self._complete:
            partial = f", and {len(self._buffer)} bytes of a partial record" if self._buffer else ""
            raise _error(
                errno.EINVAL, what, f"the stream has no end record ({self._records} records{partial}): incomplete"
            )
        missing = [k.name.lower() for k in (RecordKind.REGISTERS, RecordKind.QUEUES) if k not in self._blocks_seen]
        missing += [f"page {p}" for p in range(self._staging.pages) if p not in self._pages_seen]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise _error(errno.EINVAL, what, f"the stream never carried {', '.join(missing[:3])}{more}: inconsistent")
        return self._staging


# -- the device -----------------------------------------------------------------------------------------------------


@dataclass
class _DmaLog:
    ranges: list[tuple[int, int]]
    page_size: int
    pages: set[int]


class SimVfioDevice:
    """A VFIO device as a driver implements it: migration v2 (mig_ops) and DMA logging (log_ops)."""

    def __init__(
        self,
        name: str,
        state: DeviceState | None = None,
        *,
        migration_flags: int = 7,
        header: StreamHeader | Callable[[], StreamHeader] | None = None,
        check_incoming: CompatCheck = default_compatible,
        device_api: str = "vfio-pci",
        group: int = 0,
        dma_logging: bool | None = None,
        on_open: Callable[[SimVfioDevice], None] | None = None,
        on_close: Callable[[SimVfioDevice], None] | None = None,
        refusal_errno: int = errno.EINVAL,
    ) -> None:
        if migration_flags not in VALID_MIGRATION_FLAGS:
            raise ValueError(f"migration flags {migration_flags:#x}: the uAPI defines 0, 1, 3, 5 and 7")
        if device_api not in DEVICE_APIS:
            raise ValueError(f"device API {device_api!r}: the simulator knows {sorted(DEVICE_APIS)}")
        self.name, self.group, self.device_api = name, group, device_api
        self._lock = threading.RLock()
        self.state = state if state is not None else DeviceState.create()
        self._flags = migration_flags
        self._header = header if header is not None else StreamHeader("devmig.sim/device", "1.0.0")
        self._check_incoming = check_incoming
        self._log_ops = bool(migration_flags) if dma_logging is None else dma_logging
        self._on_open, self._on_close = on_open, on_close
        #: the errno a write fails with when the driver refuses the incoming header (xe: ENODEV)
        self.refusal_errno = refusal_errno
        self.open_count = 0
        self._mig_state = RUNNING
        self._session: SimDataFd | None = None
        self._log: _DmaLog | None = None
        self._failures: dict[tuple[MigState, MigState], int] = {}

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def __repr__(self) -> str:
        return f"SimVfioDevice({self.name!r}, {self._mig_state.name}, migration_flags={self._flags})"

    # -- what it is --------------------------------------------------------------------------------------------------

    def describe(self) -> DeviceInfo:
        flags, regions, irqs = DEVICE_APIS[self.device_api]
        migration = flag_names(self._flags, MIGRATION_FLAGS) if self._flags else None
        error = None if self._flags else "the driver implements no VFIO migration (ENOTTY)"
        return DeviceInfo(self.name, self.group, list(flags), regions, irqs, migration, error)

    def migration_flags(self) -> int:
        """VFIO_DEVICE_FEATURE GET MIGRATION; VfioError(ENOTTY) when the driver has no migration, as vfio-pci."""
        return self._require_migration("VFIO_DEVICE_FEATURE GET MIGRATION")

    def _require_migration(self, what: str) -> int:
        if not self._flags:
            raise _error(errno.ENOTTY, f"{self.name}: {what}", "the driver implements no VFIO migration")
        return self._flags

    def header(self) -> StreamHeader:
        """The header this device writes, and compares an incoming one with."""
        base = self._header() if callable(self._header) else self._header
        s = self.state
        return replace(
            base,
            registers_len=len(s.registers),
            queues_len=len(s.queues),
            memory_len=len(s.memory),
            page_size=s.page_size,
        )

    def refusal(self, incoming: StreamHeader) -> str | None:
        """Why this device refuses a stream with this header (region sizes, then the driver's hook), or None."""
        own = self.header()
        for label, theirs, mine in (
            ("registers", incoming.registers_len, own.registers_len),
            ("queues", incoming.queues_len, own.queues_len),
            ("memory", incoming.memory_len, own.memory_len),
            ("page size", incoming.page_size, own.page_size),
        ):
            if theirs != mine:
                return f"the stream's {label} is {theirs} bytes, this device's is {mine}"
        return self._check_incoming(incoming, own)

    # -- the device fd -----------------------------------------------------------------------------------------------

    @serialized
    def open(self) -> None:
        """A user opens the device: the first open starts in RUNNING, as vfio-pci variant drivers do."""
        if self.open_count == 0:
            self._drop_session("the device was opened")
            self._mig_state = RUNNING
        self.open_count += 1
        if self._on_open is not None:
            self._on_open(self)

    @serialized
    def close(self) -> None:
        """The last close drops the migration session and stops DMA logging."""
        if self.open_count == 0:
            raise _error(errno.EBADF, f"{self.name}: close", "the device is not open")
        self.open_count -= 1
        if self.open_count == 0:
            self._drop_session("the device was closed")
            self._stop_log()
        if self._on_close is not None:
            self._on_close(self)

    @serialized
    def reset(self) -> None:
        """VFIO_DEVICE_RESET: back to RUNNING, the session dropped (the contents are kept)."""
        self._drop_session("the device was reset")
        self._mig_state = RUNNING

    @serialized
    def guest_tick(self, rng: random.Random, pages: int = 3) -> list[int]:
        """The guest uses the device: it changes only while the device executes (RUNNING, PRE_COPY and P2P)."""
        return self.state.guest_tick(rng, pages) if self._mig_state in EXECUTING else []

    # -- migration ---------------------------------------------------------------------------------------------------

    def current_state(self) -> MigState:
        """The state as the driver's debugfs shows it (no migration check: debugfs exists only with mig_ops)."""
        return self._mig_state

    @serialized
    def get_state(self) -> MigState:
        """VFIO_DEVICE_FEATURE GET MIG_DEVICE_STATE: allowed in every state."""
        self._require_migration("VFIO_DEVICE_FEATURE GET MIG_DEVICE_STATE")
        return self._mig_state

    @serialized
    def set_state(self, target: int) -> SimDataFd | None:
        """VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE: walk fsm.path() one arc at a time.

        Returns the new data_fd when the final arc opens a session, else None. TransitionError (EINVAL) when the
        state machine refuses (the state is unchanged); VfioError when an arc fails (the device is left in ERROR).
        """
        flags = self._require_migration("VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE")
        data_fd = None
        while self._mig_state != target:
            step = fsm.next_step(self._mig_state, target, flags)
            data_fd = self._arc(self._mig_state, step)
            self._mig_state = step
        return data_fd

    def _arc(self, cur: MigState, nxt: MigState) -> SimDataFd | None:
        what = f"{self.name}: SET MIG_DEVICE_STATE {cur.name} -> {nxt.name}"
        err = self._failures.pop((cur, nxt), None)
        if err is not None:
            self._break()
            raise _error(err, what, "the driver failed the arc (injected)")
        if (cur, nxt) in OPENS_DATA_FD:
            self._drop_session("a new session started")
            session = ResumingFd(self) if nxt is RESUMING else SavingFd(self, precopy=nxt is not STOP_COPY)
            self._session = session
            return session
        if nxt is STOP_COPY:  # PRE_COPY(_P2P) -> STOP_COPY: the same session goes on
            assert isinstance(self._session, SavingFd), what
            self._session._stop_copy()
        elif (cur, nxt) == (RESUMING, STOP):
            assert isinstance(self._session, ResumingFd), what
            try:
                loaded = self._session.loaded()
            except VfioError:
                self._break()
                raise
            self.state.load(loaded)
            self._drop_session(f"{cur.name} -> {nxt.name}")
        elif (cur, nxt) in ENDS_SESSION:
            self._drop_session(f"{cur.name} -> {nxt.name}")
        return None

    def _break(self) -> None:
        self._drop_session("the device entered ERROR")
        self._mig_state = MigState.ERROR

    def _drop_session(self, reason: str) -> None:
        if self._session is not None:
            self._session._end(reason)
            self._session = None

    def fail_next(self, cur: MigState, nxt: MigState, err: int = errno.EIO) -> None:
        """Make the next run of the arc cur -> nxt fail with `err` (the device then enters ERROR): for tests."""
        self._failures[(cur, nxt)] = err

    @serialized
    def mig_data_size(self) -> int:
        """VFIO_DEVICE_FEATURE GET MIG_DATA_SIZE: the bytes STOP_COPY would still stream (any state)."""
        self._require_migration("VFIO_DEVICE_FEATURE GET MIG_DATA_SIZE")
        if isinstance(self._session, SavingFd):
            return self._session.pending_bytes()
        s = self.state
        records = s.pages * (_RECORD.size + s.page_size) + 3 * _RECORD.size + len(s.registers) + len(s.queues)
        return len(self.header().encode()) + records

    # -- DMA logging -------------------------------------------------------------------------------------------------

    def _require_log(self, what: str) -> str:
        what = f"{self.name}: VFIO_DEVICE_FEATURE {what}"
        if not self._log_ops:
            raise _error(errno.ENOTTY, what, "the driver implements no DMA logging")
        return what

    @serialized
    def dma_logging_start(self, ranges: Sequence[tuple[int, int]], page_size: int) -> int:
        """DMA_LOGGING_START over (iova, length) ranges; returns the page size the driver chose."""
        what = self._require_log("SET DMA_LOGGING_START")
        if not ranges:
            raise _error(errno.EINVAL, what, "no ranges")
        if len(ranges) > LOG_MAX_RANGES:
            raise _error(errno.E2BIG, what, f"{len(ranges)} ranges, at most {LOG_MAX_RANGES}")
        taken: list[tuple[int, int]] = []
        for iova, length in ranges:
            if page_size <= 0 or iova % page_size or length % page_size:
                raise _error(errno.EINVAL, what, f"range {iova:#x}+{length:#x} is not aligned to {page_size:#x}")
            if iova + length > 1 << 64:
                raise _error(errno.EOVERFLOW, what, f"range {iova:#x}+{length:#x} overflows 64 bits")
            if any(iova < end and start < iova + length for start, end in taken):
                raise _error(errno.EINVAL, what, f"range {iova:#x}+{length:#x} overlaps another range")
            taken.append((iova, iova + length))
        if self._log is not None:
            raise _error(errno.EINVAL, what, "DMA logging is already started")
        if page_size & (page_size - 1):
            raise _error(errno.EINVAL, what, f"page size {page_size:#x} is not a power of two")
        chosen = max(page_size, self.state.page_size)
        self._log = _DmaLog(list(ranges), chosen, self.state.track())
        return chosen

    @serialized
    def dma_logging_report(self, iova: int, length: int, page_size: int) -> bytes:
        """DMA_LOGGING_REPORT: a bitmap (u64 words, little-endian; bit i = the page at iova + i * page_size) of the
        pages written since the last report; the reported pages are cleared from the log."""
        what = self._require_log("GET DMA_LOGGING_REPORT")
        if page_size < 4096 or page_size & (page_size - 1):
            raise _error(errno.EINVAL, what, f"page size {page_size:#x} is not a power of two of at least 4 KiB")
        if iova + length > 1 << 64:
            raise _error(errno.EOVERFLOW, what, f"range {iova:#x}+{length:#x} overflows 64 bits")
        if self._log is None:
            raise _error(errno.EINVAL, what, "DMA logging is not started")
        bits = -(-length // page_size)
        bitmap = bytearray(-(-bits // 64) * 8)
        device_page, end = self.state.page_size, iova + length
        for page in sorted(self._log.pages):
            start, stop = page * device_page, (page + 1) * device_page
            if not any(r_iova <= start < r_iova + r_len for r_iova, r_len in self._log.ranges):
                self._log.pages.discard(page)  # a write outside the logged ranges is not logged
                continue
            if stop <= iova or start >= end:
                continue
            for bit in range((max(start, iova) - iova) // page_size, (min(stop, end) - 1 - iova) // page_size + 1):
                bitmap[bit // 8] |= 1 << (bit % 8)
            self._log.pages.discard(page)
        return bytes(bitmap)

    @serialized
    def dma_logging_stop(self) -> None:
        self._require_log("SET DMA_LOGGING_STOP")
        self._stop_log()

    def _stop_log(self) -> None:
        if self._log is not None:
            self.state.untrack(self._log.pages)
            self._log = None
