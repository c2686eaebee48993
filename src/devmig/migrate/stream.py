"""devmig's migration stream: a versioned preamble, then framed records, each with its length and a CRC32C.

The device's own bytes are opaque (the uAPI says so): devmig carries them in order inside DATA records and never
looks into them. Around them it says who sends what (HELLO, with the source's descriptor) and where the data ends
(END, with the byte and record counts), so a receiver can refuse an incompatible device before a byte of state
arrives, and can tell a cut stream from a whole one.

Layout (little-endian):

    preamble  "<8sHHI": magic b"DEVMIGMS", major, minor, flags (SEALED, or 0)
    record    "<BBHII": kind, flags, reserved (0), payload length, CRC32C over the first 8 header bytes and the
              payload (a DATA record's header only, under SEALED); then the payload

Versions: a reader takes any stream of a major it knows, whatever its minor. A newer minor may add record kinds;
those it marks OPTIONAL are skipped by older readers, any other unknown kind is refused by name. A new major is
refused with both versions named. So a newer devmig reads an older stream, and an older one reads a newer stream
as far as it safely can.

The same framing carries the receiver's replies on a two-way transport (VERDICT, LOADED, RESULT).

Version 2.0 added the commit step (LOADED, COMMIT): a destination starts its device only once the source has said it
never will again, so no lost reply can leave two running copies (docs/migration.md). A 1.x reader refuses 2.0 by
name; this devmig still reads 1.x files (`devmig restore`) and refuses a 1.x sender on a two-way session by name.

Version 2.1 added the preamble flag SEALED: the stream travels over a channel that authenticates every byte with
AES-GCM (devmig.migrate.tls.records), a stronger check than a CRC, so a DATA record's CRC32C covers its header only
and the device bytes are not read a second time for it. A writer sets it only on such a channel, and a reader
refuses it on any other (a file, plain TCP), so no DATA record goes unchecked.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any, Final, Protocol

import crc32c

from devmig.errors import DevmigError, ExitCode

MAGIC: Final = b"DEVMIGMS"
VERSION: Final = (2, 1)
#: majors this devmig reads (1.x: files and senders without the commit step; see Destination)
READS_MAJORS: Final = frozenset({1, 2})
PREAMBLE: Final = struct.Struct("<8sHHI")
FRAME: Final = struct.Struct("<BBHII")
#: a record larger than this is garbage, not data (devmig writes at most CHUNK bytes a record)
MAX_RECORD: Final = 64 << 20
#: how much device data one DATA record carries: 512 KiB measured fastest here (docs/performance.md: 256 KiB and
#: 1 MiB both moved less on the same machine, in alternating runs)
CHUNK: Final = 512 << 10
#: the largest DATA record a devmig writes or wrote (1 MiB before 2.1): what a receiver's bounds allow for, so it
#: takes an older sender's records
WRITTEN_RECORD: Final = 1 << 20


class Kind(IntEnum):
    HELLO = 1  # JSON: the sender, the device, its descriptor, its migration flags, the size estimate
    DATA = 2  # device bytes, in order
    END = 3  # "<QQ": data bytes, data records: the stream is whole
    ABORT = 4  # JSON {"reason"}: the sender gave up; the receiver must not load what it has
    COMMIT = 5  # JSON {}: (2.0) the source will not run its device again: the destination may start
    VERDICT = 16  # reply, JSON: {"accept": bool, "reason": str | null, "verdict": Verdict | null}
    RESULT = 17  # reply, JSON: {"ok": bool, "error": str | null, "bytes": int, "running": bool}
    LOADED = 18  # reply, JSON: (2.0) {"bytes": int}: the state is loaded and validated, the device is stopped


#: preamble flag: the channel authenticates every byte; DATA records' CRC32C covers their header only (2.1)
SEALED: Final = 1
#: the preamble flags this devmig knows
STREAM_FLAGS: Final = SEALED


class Flag(IntFlag):
    NONE = 0
    OPTIONAL = 1  # a reader that does not know the kind skips the record
    PRECOPY = 2  # DATA read while the device was still running (pre-copy)


END: Final = struct.Struct("<QQ")


class StreamError(DevmigError):
    """The stream was cut or is incomplete: the sender stopped, or the connection was lost."""


class StreamFormatError(StreamError):
    """The bytes are not a devmig stream this devmig can read: another format, a newer major version, corrupt."""

    exit_code = ExitCode.BAD_INPUT


class Channel(Protocol):
    """Bytes in order, one way or both: a socket, a file, a pipe (devmig.migrate.transport)."""

    name: str

    def send(self, *parts: bytes | memoryview) -> None:
        """Send every byte of every part, in order."""
        ...

    def recv_into(self, view: memoryview) -> int:
        """Fill part of `view`; 0 at the end of the stream."""
        ...


@dataclass(frozen=True)
class Record:
    kind: Kind
    flags: Flag
    #: valid until the next read from the same reader (its buffer is reused)
    payload: memoryview

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(bytes(self.payload))
        except ValueError as exc:
            raise StreamFormatError(f"{self.kind.name} record: its JSON is malformed ({exc})") from None
        except RecursionError:  # nesting deeper than the interpreter's stack: hostile, not a document
            raise StreamFormatError(f"{self.kind.name} record: its JSON is nested too deeply") from None
        if not isinstance(value, dict):
            raise StreamFormatError(f"{self.kind.name} record: expected a JSON object")
        return value


def preamble(version: tuple[int, int] = VERSION, flags: int = 0) -> bytes:
    return PREAMBLE.pack(MAGIC, version[0], version[1], flags)


def frame(kind: int, payload: bytes | memoryview = b"", flags: int = 0, *, covered: bool = True) -> bytes:
    """The header of one record (send the payload after it); its CRC covers the payload too when `covered`."""
    head = struct.pack("<BBHI", kind, flags, 0, len(payload))
    crc = crc32c.crc32c(head)
    return head + (crc32c.crc32c(payload, crc) if covered else crc).to_bytes(4, "little")


def authenticates(channel: Channel) -> bool:
    """Whether the channel itself authenticates every byte (devmig.migrate.transport.SealedChannel)."""
    return bool(getattr(channel, "authenticates", False))


def json_payload(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class Writer:
    """Records onto a channel. Counts the DATA bytes and records, which END carries."""

    def __init__(self, channel: Channel, version: tuple[int, int] = VERSION) -> None:
        self.channel = channel
        self.data_bytes = self.data_records = 0
        self.sent = 0
        #: DATA payloads left to the channel's own authentication (SEALED)
        self.sealed = version >= (2, 1) and authenticates(channel)
        channel.send(preamble(version, SEALED if self.sealed else 0))

    def record(self, kind: Kind, payload: bytes | memoryview = b"", flags: int = 0) -> None:
        covered = not (self.sealed and kind is Kind.DATA)
        self.channel.send(frame(kind, payload, flags, covered=covered), payload)
        self.sent += FRAME.size + len(payload)

    def json(self, kind: Kind, value: dict[str, Any]) -> None:
        self.record(kind, json_payload(value))

    def data(self, payload: bytes | memoryview, precopy: bool) -> None:
        self.record(Kind.DATA, payload, Flag.PRECOPY if precopy else Flag.NONE)
        self.data_bytes += len(payload)
        self.data_records += 1

    def end(self) -> None:
        self.record(Kind.END, END.pack(self.data_bytes, self.data_records))


@dataclass
class Limits:
    """What a reader accepts from a peer it does not trust: every limit ends a hostile stream with a StreamError, in
    bounded memory and time.

    `max_record` bounds one record (and so the memory a read takes: the length is checked before anything is
    allocated); `max_data` bounds the DATA bytes of the whole stream (None: no bound yet; a receiver sets it from
    the sender's announced size, see `for_state`); `record_seconds` bounds the time one record may take to arrive,
    so a peer that dribbles bytes (slow loris) is cut even though each read returns in time; `min_rate` (bytes/s,
    0: none) is the average the stream must keep once `grace` seconds have passed.
    """

    max_record: int = MAX_RECORD
    max_data: int | None = None
    record_seconds: float = 60.0
    min_rate: float = 64 << 10
    grace: float = 30.0

    def for_state(self, announced: int | None) -> Limits:
        """Limits once the sender has said how big the device's state is: no record larger than both the largest
        record any devmig writes (WRITTEN_RECORD) and the whole state, and no more DATA than `STATE_FACTOR` times
        the state (pre-copy sends dirty pages again, so more than once is normal) plus 64 such records of slack."""
        size = max(int(announced or 0), 0)
        record = min(self.max_record, max(WRITTEN_RECORD, size))
        total = STATE_FACTOR * size + 64 * WRITTEN_RECORD
        return Limits(
            record,
            total if self.max_data is None else min(total, self.max_data),
            self.record_seconds,
            self.min_rate,
            self.grace,
        )


#: a stream may carry this many times the device's announced state size (pre-copy rounds re-send dirty data)
STATE_FACTOR = 16
#: HELLO and the other control records are small: their limit before the sender has announced a size
CONTROL_RECORD = 1 << 20


class Reader:
    """Records from a channel, checked: version, kind, length and CRC32C, within `Limits`; StreamError names what
    is wrong."""

    def __init__(
        self, channel: Channel, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.channel = channel
        self.limits = limits or Limits(max_record=CONTROL_RECORD)
        self.clock = clock
        self.started = clock()
        self._record_started = self.started
        self.what = f"migration stream from {channel.name}"
        self._head = bytearray(max(PREAMBLE.size, FRAME.size))
        self._buffer = bytearray(CHUNK)
        self.received = 0
        self.data_bytes = self.data_records = 0
        magic, major, minor, flags = PREAMBLE.unpack(self._exactly(PREAMBLE.size, self._head, "its preamble"))
        if magic != MAGIC:
            raise StreamFormatError(f"{self.what}: starts with {bytes(magic)!r}, not {MAGIC!r}: not a devmig stream")
        if major not in READS_MAJORS:
            raise StreamFormatError(
                f"{self.what}: stream version {major}.{minor}, this devmig reads version "
                f"{'/'.join(str(m) for m in sorted(READS_MAJORS))}.x (devmig stream {VERSION[0]}.{VERSION[1]})"
            )
        if flags & ~STREAM_FLAGS or (flags and (major, minor) < (2, 1)):
            raise StreamFormatError(
                f"{self.what}: stream flags {flags:#x}: this devmig knows {STREAM_FLAGS:#x} from version 2.1 (a newer "
                "devmig wrote it: upgrade)"
            )
        if flags & SEALED and not authenticates(channel):
            raise StreamFormatError(
                f"{self.what}: the stream leaves its device data to a channel that authenticates every byte, and "
                f"{channel.name} does not: refused, its DATA records would go unchecked"
            )
        #: DATA payloads authenticated by the channel, not by their CRC (SEALED)
        self.sealed = bool(flags & SEALED)
        self.version = (major, minor)

    def _exactly(self, size: int, buffer: bytearray, what: str, eof_ok: bool = False) -> memoryview:
        """`size` bytes into `buffer`; an empty view when the channel ends before the first byte and `eof_ok`."""
        view = memoryview(buffer)[:size]
        got = 0
        while got < size:
            n = self.channel.recv_into(view[got:])
            if n == 0 and got == 0 and eof_ok:
                return view[:0]
            self._pace(got + n, what)
            if n == 0:
                raise StreamError(
                    f"{self.what}: cut inside {what} after {self.received + got} bytes "
                    f"(expected {size - got} more): the sender stopped or the connection was lost"
                )
            got += n
        self.received += size
        return view

    def _pace(self, got: int, what: str) -> None:
        """A peer that sends too slowly is cut: one record within `record_seconds`, and the average rate."""
        now, limits = self.clock(), self.limits
        if now - self._record_started > limits.record_seconds:
            raise StreamError(
                f"{self.what}: {what} took more than {limits.record_seconds:g} s to arrive ({got} bytes of it): "
                "the sender is stalled or too slow"
            )
        elapsed = now - self.started
        if limits.min_rate and elapsed > limits.grace and (self.received + got) / elapsed < limits.min_rate:
            raise StreamError(
                f"{self.what}: {self.received + got} bytes in {elapsed:.0f} s, below the {limits.min_rate:g} "
                "bytes/s a stream must keep: the sender is stalled or too slow"
            )

    def next(self) -> Record | None:
        """The next record; None at a clean end of the channel (between records)."""
        while True:
            self._record_started = self.clock()
            head = bytes(self._exactly(FRAME.size, self._head, "a record header", eof_ok=True))
            if not head:
                return None
            code, flags, _, length, crc = FRAME.unpack(head)
            if length > self.limits.max_record:
                raise StreamFormatError(
                    f"{self.what}: a record of {length} bytes at byte {self.received}, more than the "
                    f"{self.limits.max_record} this stream may carry in one record: corrupt or hostile"
                )
            if (
                code == Kind.DATA
                and self.limits.max_data is not None
                and self.data_bytes + length > self.limits.max_data
            ):
                raise StreamFormatError(
                    f"{self.what}: more than {self.limits.max_data} bytes of device data, {STATE_FACTOR} times what "
                    "the sender announced and more: the sender lied about the state's size or never ends"
                )
            if len(self._buffer) < length:
                self._buffer = bytearray(length)
            payload = self._exactly(length, self._buffer, f"a record of {length} bytes")
            covered = crc32c.crc32c(head[:8])
            if not (self.sealed and code == Kind.DATA):
                covered = crc32c.crc32c(payload, covered)
            if covered != crc:
                raise StreamFormatError(
                    f"{self.what}: record at byte {self.received - length} fails its CRC32C: corrupt"
                )
            try:
                kind = Kind(code)
            except ValueError:
                if flags & Flag.OPTIONAL:
                    continue  # added by a newer minor version; safe to skip
                raise StreamFormatError(
                    f"{self.what}: record kind {code} is unknown to this devmig (stream version "
                    f"{self.version[0]}.{self.version[1]}, devmig reads {VERSION[0]}.{VERSION[1]}): upgrade devmig"
                ) from None
            if kind is Kind.DATA:
                self.data_bytes += length
                self.data_records += 1
            return Record(kind, Flag(flags & int(Flag.OPTIONAL | Flag.PRECOPY)), payload)

    def expect(self, *kinds: Kind) -> Record:
        record = self.next()
        if record is None:
            raise StreamError(
                f"{self.what}: ended after {self.received} bytes, expected a {' or '.join(k.name for k in kinds)} "
                "record: the sender stopped or the connection was lost"
            )
        if record.kind not in kinds:
            raise StreamFormatError(
                f"{self.what}: a {record.kind.name} record where {' or '.join(k.name for k in kinds)} was expected"
            )
        return record

    def check_end(self, record: Record) -> None:
        """END's counts must match what arrived: a stream with a lost or extra record is refused."""
        if len(record.payload) != END.size:
            raise StreamFormatError(f"{self.what}: END record of {len(record.payload)} bytes, expected {END.size}")
        size, count = END.unpack(record.payload)
        if (size, count) != (self.data_bytes, self.data_records):
            raise StreamError(
                f"{self.what}: END counts {size} bytes in {count} records, {self.data_bytes} bytes in "
                f"{self.data_records} records arrived: incomplete"
            )
