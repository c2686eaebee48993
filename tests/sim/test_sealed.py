"""The sealed record layer after the TLS handshake (devmig.migrate.tls.records, transport.SealedChannel).

Every byte after the handshake travels in AES-GCM records keyed from both sides' shares: a record that is altered,
replayed, reordered or cut does not open; any way of cutting the bytes into sends and reads gives the same bytes;
a peer that does not offer the layer is refused by name; and a stream that leaves its device data to the channel's
authentication (stream 2.1's SEALED) is refused on a channel that does not authenticate.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devmig.migrate import transport
from devmig.migrate.stream import FRAME, SEALED, Kind, Reader, StreamFormatError, Writer, preamble
from devmig.migrate.tls.channel import HandshakeError, TlsConfig
from devmig.migrate.tls.records import (
    MAX_PLAINTEXT,
    OFFER_TAG,
    TAG_BYTES,
    Opener,
    RecordError,
    Sealer,
    derive,
    new_share,
    offer,
    peer_share,
)
from devmig.migrate.transport import SealedChannel, TransportError
from tests.sim.test_tls import psk_file


def keyed() -> tuple[Sealer, Opener]:
    keys = derive(new_share(), new_share())
    return Sealer(keys["client"]), Opener(keys["client"])


def test_both_ends_derive_the_same_keys_one_per_direction_from_both_shares() -> None:
    server, client = new_share(), new_share()
    keys = derive(server, client)
    assert keys == derive(server, client)
    assert keys["server"].key != keys["client"].key and keys["server"].iv != keys["client"].iv
    assert derive(server, new_share())["client"] != keys["client"]  # each share counts
    assert derive(client, server)["client"] != keys["client"]  # and its role


def opened(opener: Opener, record: bytes) -> bytes:
    header, sealed = record[:4], memoryview(bytearray(record[4:]))
    out = bytearray(len(sealed) - TAG_BYTES)
    opener.open(header, sealed, memoryview(out))
    return bytes(out)


def test_a_record_opens_once_in_order_and_not_when_altered() -> None:
    sealer, opener = keyed()
    first, second = bytes(sealer.seal(b"first")), bytes(sealer.seal(b"second"))
    with pytest.raises(RecordError, match="record 0 failed its authentication"):
        opened(opener, second)  # reordered: the nonce is the sequence number
    sealer, opener = keyed()
    first, second = bytes(sealer.seal(b"first")), bytes(sealer.seal(b"second"))
    assert opened(opener, first) == b"first"
    with pytest.raises(RecordError):
        opened(opener, first)  # replayed
    sealer, opener = keyed()
    record = bytearray(sealer.seal(b"x" * 100))
    record[40] ^= 1
    with pytest.raises(RecordError, match="altered in flight"):
        opened(opener, bytes(record))
    sealer, opener = keyed()
    record = bytearray(sealer.seal(b"x" * 100))
    record[3] -= 1  # a shorter length: the additional data differs too
    with pytest.raises(RecordError):
        opened(opener, bytes(record[:-1]))


def test_a_length_no_record_can_have_is_refused_before_its_bytes_are_read() -> None:
    for size in (0, TAG_BYTES - 1, MAX_PLAINTEXT + TAG_BYTES + 1, 0xFFFFFFFF):
        with pytest.raises(RecordError, match="corrupt or not devmig"):
            Opener.length(struct.pack(">I", size))
    assert Opener.length(struct.pack(">I", TAG_BYTES)) == TAG_BYTES


def test_a_peer_that_offers_no_or_another_layer_is_named() -> None:
    share = new_share()
    assert peer_share(offer(share)) == share
    with pytest.raises(RecordError, match="did not offer devmig's sealed record layer"):
        peer_share(b"DEVMIGMS" + bytes(48))
    with pytest.raises(RecordError, match=r"another sealed record layer \('devmig-sealed-records/2'"):
        peer_share(OFFER_TAG.replace(b"/1", b"/2") + share)


def channels() -> tuple[SealedChannel, SealedChannel, socket.socket, socket.socket]:
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.settimeout(10)
    keys = derive(new_share(), new_share())
    return (
        SealedChannel(left, "receiver", Sealer(keys["client"]), Opener(keys["server"]), "test"),
        SealedChannel(right, "sender", Sealer(keys["server"]), Opener(keys["client"]), "test"),
        left,
        right,
    )


def pump(sender: SealedChannel, receiver: SealedChannel, parts: list[bytes], reads: list[int]) -> bytes:
    """`parts` sent (in a thread), read back in reads of the given sizes (cycled) until the sender closes."""

    def send() -> None:
        for part in parts:
            sender.send(part)
        sender.sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send)
    thread.start()
    got, i = bytearray(), 0
    while True:
        view = memoryview(bytearray(reads[i % len(reads)]))
        n = receiver.recv_into(view)
        if not n:
            break
        got += view[:n]
        i += 1
    thread.join()
    return bytes(got)


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(st.binary(max_size=3000), max_size=8),
    reads=st.lists(st.integers(1, 5000), min_size=1, max_size=5),
)
def test_any_cut_into_sends_and_reads_gives_the_same_bytes(parts: list[bytes], reads: list[int]) -> None:
    sender, receiver, left, right = channels()
    with left, right:
        assert pump(sender, receiver, parts, reads) == b"".join(parts)


def test_a_part_larger_than_a_record_is_split_and_large_reads_are_opened_in_place() -> None:
    sender, receiver, left, right = channels()
    big = os.urandom(MAX_PLAINTEXT + 12345)
    with left, right:
        assert pump(sender, receiver, [b"head", big, b""], [MAX_PLAINTEXT + 1, 7]) == b"head" + big


def test_a_connection_cut_inside_a_record_is_a_cut_not_an_end() -> None:
    sender, receiver, left, right = channels()
    with left, right:
        record = bytes(sender.sealer.seal(b"y" * 1000))
        left.sendall(record[:500])
        left.shutdown(socket.SHUT_WR)
        with pytest.raises(TransportError, match="ended inside a sealed record"):
            receiver.recv_into(memoryview(bytearray(2000)))


def test_a_stream_over_a_sealed_channel_leaves_its_data_to_the_channel() -> None:
    sender, receiver, left, right = channels()
    with left, right:
        writer = Writer(sender)
        assert writer.sealed
        payload = os.urandom(5000)
        writer.data(payload, False)
        writer.end()
        left.shutdown(socket.SHUT_WR)
        reader = Reader(receiver)
        assert reader.sealed and reader.version == (2, 1)
        assert bytes(reader.expect(Kind.DATA).payload) == payload
        reader.check_end(reader.expect(Kind.END))


class Recording:
    """A channel that keeps what is sent (and may claim to authenticate it)."""

    def __init__(self, authenticates: bool) -> None:
        self.name, self.authenticates, self.sent = "recording", authenticates, bytearray()

    def send(self, *parts: bytes | memoryview) -> None:
        for part in parts:
            self.sent += part

    def recv_into(self, view: memoryview) -> int:
        n = min(len(view), len(self.sent))
        view[:n] = self.sent[:n]
        del self.sent[:n]
        return n


def test_sealed_data_records_crc_their_header_only_and_plain_ones_all() -> None:
    for sealed in (True, False):
        channel = Recording(sealed)
        Writer(channel).data(b"z" * 100, False)
        head = bytes(channel.sent[16 : 16 + FRAME.size])
        want = crc32c.crc32c(head[:8]) if sealed else crc32c.crc32c(b"z" * 100, crc32c.crc32c(head[:8]))
        assert FRAME.unpack(head)[4] == want


def test_a_sealed_stream_on_a_channel_that_does_not_authenticate_is_refused(tmp_path: Path) -> None:
    channel = Recording(True)
    Writer(channel).data(b"z" * 100, False)
    channel.authenticates = False  # the same bytes from a file, or plain TCP
    with pytest.raises(StreamFormatError, match="DATA records would go unchecked"):
        Reader(channel)
    older = Recording(False)
    older.sent += preamble((2, 0), SEALED)
    with pytest.raises(StreamFormatError, match="stream flags 0x1"):
        Reader(older)


def test_a_tls_peer_without_the_sealed_layer_is_refused_by_name(tmp_path: Path) -> None:
    """A receiver that admits the sender and then waits for its stream, as a devmig before the layer did."""
    key = psk_file(tmp_path / "psk")
    server, client = TlsConfig.from_psk_file("server", key), TlsConfig.from_psk_file("client", key)
    listener = transport.listen(transport.Address("127.0.0.1", 0))

    def old_receiver() -> None:
        with listener:
            sock, _ = listener.accept()
            sock.settimeout(10)
            tls = server.server(sock, "the sender")
            tls.recv(1 << 16)  # the new sender's offer, read as if it were a stream, then refused
            tls.close()

    thread = threading.Thread(target=old_receiver)
    thread.start()
    with pytest.raises(HandshakeError, match="did not key the sealed records: it did not offer"):
        transport.connect(transport.Address("127.0.0.1", listener.getsockname()[1]), 10, tls=client)
    thread.join()
