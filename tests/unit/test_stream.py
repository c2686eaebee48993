"""devmig's migration stream: framing, versions, and every way a stream can be damaged."""

from __future__ import annotations

import io
import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devmig.errors import ExitCode
from devmig.migrate import stream
from devmig.migrate.stream import Flag, Kind, Reader, StreamError, StreamFormatError, Writer


class Buffer:
    """A channel over bytes in memory, read in pieces of `step` bytes (so records arrive cut anywhere)."""

    def __init__(self, data: bytes = b"", step: int = 1 << 30, name: str = "a test buffer") -> None:
        self.out = bytearray()
        self._in = io.BytesIO(data)
        self.step, self.name = step, name

    def send(self, *parts: bytes | memoryview) -> None:
        for part in parts:
            self.out += part

    def recv_into(self, view: memoryview) -> int:
        return self._in.readinto(view[: self.step])


def written(*payloads: bytes, version: tuple[int, int] = stream.VERSION) -> bytes:
    channel = Buffer()
    writer = Writer(channel, version)
    writer.json(Kind.HELLO, {"device": "d"})
    for payload in payloads:
        writer.data(payload, precopy=False)
    writer.end()
    return bytes(channel.out)


def read_all(data: bytes, step: int = 1 << 30) -> tuple[dict[str, object], bytes]:
    reader = Reader(Buffer(data, step))
    hello = reader.expect(Kind.HELLO).json()
    body = bytearray()
    while True:
        record = reader.expect(Kind.DATA, Kind.END)
        if record.kind is Kind.END:
            reader.check_end(record)
            assert reader.next() is None
            return hello, bytes(body)
        body += record.payload


@given(st.lists(st.binary(max_size=300), max_size=6), st.integers(1, 40))
def test_what_is_written_is_read_back_whatever_the_segmentation(payloads: list[bytes], step: int) -> None:
    hello, body = read_all(written(*payloads), step)
    assert hello == {"device": "d"}
    assert body == b"".join(payloads)


def test_the_layout_is_the_documented_one() -> None:
    data = written(b"abc")
    assert data[:16] == b"DEVMIGMS" + struct.pack(
        "<HHI", 2, 1, 0
    )  # 2.1; no flags on a channel that does not authenticate
    kind, flags, reserved, length, crc = struct.unpack_from("<BBHII", data, 16)
    hello = data[28 : 28 + length]
    assert (kind, flags, reserved) == (Kind.HELLO, 0, 0)
    assert crc == crc32c.crc32c(hello, crc32c.crc32c(data[16:24]))
    end = data[-28:]
    assert struct.unpack("<BBHII", end[:12])[0] == Kind.END
    assert struct.unpack("<QQ", end[12:]) == (3, 1)


def test_an_older_minor_and_a_newer_minor_are_read() -> None:
    assert read_all(written(b"x", version=(2, 0)))[1] == b"x"
    assert read_all(written(b"x", version=(2, 7)))[1] == b"x"


def test_the_older_major_is_still_read() -> None:
    """Files written by devmig before the commit step (`devmig restore`); a 1.x sender on a two-way session is
    refused by the destination, by name (tests/sim/test_session.py)."""
    assert read_all(written(b"x", version=(1, 0)))[1] == b"x"


def test_a_newer_major_is_refused_with_both_versions() -> None:
    with pytest.raises(StreamFormatError, match=r"stream version 3\.0, this devmig reads version 1/2\.x") as info:
        read_all(written(b"x", version=(3, 0)))
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_an_optional_record_of_a_newer_minor_is_skipped_and_a_mandatory_one_refused() -> None:
    def with_record(flags: int) -> bytes:
        channel = Buffer()
        writer = Writer(channel, (1, 3))
        writer.json(Kind.HELLO, {})
        writer.record(99, b"something new", flags)  # type: ignore[arg-type]
        writer.data(b"payload", precopy=True)
        writer.end()
        return bytes(channel.out)

    assert read_all(with_record(Flag.OPTIONAL))[1] == b"payload"
    with pytest.raises(StreamFormatError, match="record kind 99 is unknown to this devmig"):
        read_all(with_record(0))


def test_not_a_devmig_stream() -> None:
    with pytest.raises(StreamFormatError, match="not a devmig stream"):
        Reader(Buffer(b"\x7fELF" + bytes(60)))


#: the preamble's minor version: any value reads (that is the point of minors)
MINOR = range(10, 12)


@given(st.data())
@settings(max_examples=200)
def test_any_single_damaged_byte_is_caught(data: st.DataObject) -> None:
    good = written(b"device state " * 20, b"more state")
    at = data.draw(st.integers(0, len(good) - 1).filter(lambda i: i not in MINOR))
    flip = data.draw(st.integers(1, 255))
    bad = bytearray(good)
    bad[at] ^= flip
    with pytest.raises(StreamError):
        read_all(bytes(bad))


@given(st.data())
def test_a_stream_cut_anywhere_is_refused_as_cut(data: st.DataObject) -> None:
    good = written(b"device state " * 20, b"more state")
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(StreamError) as info:
        read_all(good[:cut])
    assert "cut" in str(info.value) or "ended after" in str(info.value)


def test_a_lost_record_is_caught_by_end() -> None:
    channel = Buffer()
    writer = Writer(channel)
    writer.json(Kind.HELLO, {})
    writer.data(b"one", precopy=True)
    writer.data_records += 1  # as if a record had gone missing on the way
    writer.data_bytes += 5
    writer.end()
    with pytest.raises(StreamError, match="END counts 8 bytes in 2 records, 3 bytes in 1 records arrived"):
        read_all(bytes(channel.out))


def test_a_record_of_absurd_length_is_refused_before_reading_it() -> None:
    data = bytearray(written(b"x"))
    struct.pack_into("<I", data, 16 + 4, stream.MAX_RECORD + 1)
    with pytest.raises(StreamFormatError, match="corrupt"):
        read_all(bytes(data))


def test_records_are_flagged_pre_copy() -> None:
    channel = Buffer()
    writer = Writer(channel)
    writer.data(b"early", precopy=True)
    writer.data(b"late", precopy=False)
    reader = Reader(Buffer(bytes(channel.out)))
    first, second = reader.expect(Kind.DATA), reader.expect(Kind.DATA)
    assert first.flags == Flag.PRECOPY and second.flags == Flag.NONE


def test_malformed_json_is_named() -> None:
    channel = Buffer()
    Writer(channel).record(Kind.HELLO, b"{not json")
    with pytest.raises(StreamFormatError, match="HELLO record: its JSON is malformed"):
        Reader(Buffer(bytes(channel.out))).expect(Kind.HELLO).json()
