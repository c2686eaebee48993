"""Fuzzing the migration stream's reader (devmig.migrate.stream): random bytes, streams a Writer made then damaged,
and well-framed records whose payloads are hostile. Reading a stream to its end must give records or a StreamError
(a DevmigError); the JSON records must give a dict or a StreamFormatError. What the stream promises is held too:
what a Writer wrote reads back the same, any flipped bit in a record is a StreamFormatError (its CRC32C, length or
header), and a stream cut anywhere never reads as whole. The session's own bounds (sizes against the announced
state, an endless or a slow peer) are tested with the session, not here."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from devmig.errors import DevmigError
from devmig.migrate.stream import (
    END,
    PREAMBLE,
    Flag,
    Kind,
    Reader,
    StreamError,
    Writer,
    frame,
    preamble,
)
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.strategies import damaged_text, json_values

JSON_KINDS = (Kind.HELLO, Kind.ABORT, Kind.VERDICT, Kind.RESULT)
#: more records than any case holds: the loop below cannot run away
MAX_RECORDS = 1000


class Channel:
    """Bytes in memory, handed out `step` at a time (so records arrive cut at any byte)."""

    def __init__(self, data: bytes = b"", step: int = 1 << 30) -> None:
        self.name = "a fuzz case"
        self.out = bytearray()
        self._in = io.BytesIO(data)
        self.step = step

    def send(self, *parts: bytes | memoryview) -> None:
        for part in parts:
            self.out += part

    def recv_into(self, view: memoryview) -> int:
        return self._in.readinto(view[: self.step])


def read_everything(data: bytes, step: int = 1 << 30) -> list[Kind]:
    """What a receiver does with a stream: each record read, JSON ones decoded, END checked."""
    reader = Reader(Channel(data, step))
    kinds: list[Kind] = []
    for _ in range(MAX_RECORDS):
        record = reader.next()
        if record is None:
            break
        kinds.append(record.kind)
        if record.kind in JSON_KINDS:
            record.json()
        elif record.kind is Kind.END:
            reader.check_end(record)
    return kinds


def written(hello: dict[str, Any], payloads: list[bytes], end: bool = True) -> bytes:
    channel = Channel()
    writer = Writer(channel)
    writer.json(Kind.HELLO, hello)
    for index, payload in enumerate(payloads):
        writer.data(payload, precopy=index % 2 == 0)
    if end:
        writer.end()
    return bytes(channel.out)


hellos = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
payload_lists = st.lists(st.binary(max_size=64), max_size=5)


@fuzz(share=0.2)
@given(st.binary(max_size=400), st.integers(1, 64))
def test_random_bytes(data: bytes, step: int) -> None:
    outcome("stream", lambda: read_everything(data, step))


@fuzz(share=0.1)
@given(st.binary(max_size=400))
def test_random_bytes_after_a_good_preamble(data: bytes) -> None:
    outcome("stream", lambda: read_everything(preamble() + data))


@fuzz(share=0.3)
@given(hellos, payload_lists, st.booleans(), st.data())
def test_damaged_streams(hello: dict[str, Any], payloads: list[bytes], end: bool, data: st.DataObject) -> None:
    good = written(hello, payloads, end)
    kinds = read_everything(good)  # undamaged, it reads whole
    assert kinds[-1:] == ([Kind.END] if end else [Kind.DATA] if payloads else [Kind.HELLO])
    damaged, step = data.draw(damaged_text(good)), data.draw(st.integers(1, 64))
    outcome("stream", lambda: read_everything(damaged, step))


@fuzz(share=0.1)
@given(hellos, payload_lists, st.integers(1, 64))
def test_what_a_writer_wrote_reads_back_the_same(hello: dict[str, Any], payloads: list[bytes], step: int) -> None:
    reader = Reader(Channel(written(hello, payloads), step))
    first = reader.expect(Kind.HELLO)
    assert first.json() == json.loads(json.dumps(hello))  # what JSON keeps of it (a tuple is a list, say)
    for index, payload in enumerate(payloads):
        record = reader.expect(Kind.DATA)
        assert bytes(record.payload) == payload
        assert bool(record.flags & Flag.PRECOPY) == (index % 2 == 0)
    reader.check_end(reader.expect(Kind.END))
    assert reader.next() is None


@fuzz(share=0.1)
@given(hellos, payload_lists, st.data())
def test_a_flipped_bit_in_a_record_is_detected(
    hello: dict[str, Any], payloads: list[bytes], data: st.DataObject
) -> None:
    """Past the preamble every byte is covered: the header's first 8 and the payload by the CRC32C, the CRC itself,
    the length by what it makes the reader take as payload. So the damage is refused, never read as data."""
    good = bytearray(written(hello, payloads))
    at = data.draw(st.integers(PREAMBLE.size, len(good) - 1))
    good[at] ^= 1 << data.draw(st.integers(0, 7))
    got = outcome("stream", lambda: read_everything(bytes(good)))
    assert isinstance(got, StreamError), f"a flipped bit at byte {at} read as {got}"


@fuzz(share=0.1)
@given(hellos, payload_lists, st.data())
def test_a_cut_stream_never_reads_as_whole(hello: dict[str, Any], payloads: list[bytes], data: st.DataObject) -> None:
    """Cut inside a record: a StreamError saying so; cut between records: the records before, and no END."""
    good = written(hello, payloads)
    cut = data.draw(st.integers(0, len(good) - 1))
    got = outcome("stream", lambda: read_everything(good[:cut]))
    if not isinstance(got, DevmigError):
        assert Kind.END not in got, f"cut at byte {cut} of {len(good)} read as a whole stream"
    elif cut > PREAMBLE.size:
        assert "cut inside" in str(got), got


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A record with a valid frame and CRC: the payload is what is hostile (the CRC does not protect against a
    sender that means harm)."""
    kind = draw(st.sampled_from([*Kind, 5, 15, 99, 255]))
    flags = draw(st.sampled_from([0, Flag.OPTIONAL, Flag.PRECOPY, 0xFF]))
    if kind in JSON_KINDS:
        payload = draw(
            json_values.map(lambda v: json.dumps(v).encode())
            | st.binary(max_size=64)
            | st.sampled_from([b"", b"{", b"\xff", b'{"a": NaN}', b'{"a": 1e999}', b'{"a": ' + b"1" * 5000 + b"}"])
        )
    elif kind == Kind.END:
        payload = draw(
            st.binary(max_size=24)
            | st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)).map(lambda t: END.pack(*t))
        )
    else:
        payload = draw(st.binary(max_size=64))
    return frame(int(kind), payload, int(flags)) + payload


@fuzz(share=0.4)
@given(st.lists(records(), max_size=6), st.integers(1, 64))
def test_well_framed_hostile_records(framed: list[bytes], step: int) -> None:
    outcome("stream", lambda: read_everything(preamble() + b"".join(framed), step))


@fuzz(share=0.01)
@given(st.integers(1_000, 100_000), st.sampled_from([b"[", b'{"a":']), st.sampled_from(JSON_KINDS))
def test_deeply_nested_json_records(depth: int, opener: bytes, kind: Kind) -> None:
    """Nesting deeper than the interpreter's stack: json.loads' RecursionError once came out of Record.json."""
    payload = opener * depth
    got = outcome("stream", lambda: read_everything(preamble() + frame(int(kind), payload) + payload))
    assert isinstance(got, DevmigError)
