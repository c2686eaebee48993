"""The sealed record layer: the device state in AES-256-GCM records of up to 4 MiB, keyed inside the TLS session.

Why not TLS itself for the bulk: a TLS record carries at most 16 KiB, and Python's `ssl` returns one record a read,
so a receiver makes 65,536 reads a GiB and spends most of its time per record, not in the cipher (measured in
docs/performance.md: the plain copy over the same TLS channel reaches under a third of a plain socket copy). QEMU's
answer is more TLS channels in parallel (multifd); on a host whose cores also run the guest that only spreads the
same per-record cost. Here the TLS 1.3 handshake still authenticates both sides (certificates or the lab's key) and
the receiver still admits the sender; then each side sends a fresh 32-byte share inside TLS, both close TLS with
close_notify (`SSLSocket.unwrap`, which leaves the TCP connection positioned after the peer's close_notify), and
every later byte travels in records sealed with keys derived from both shares.

A record is a 4-byte big-endian length (of the ciphertext with its 16-byte tag), then the ciphertext. Its nonce is
the direction's IV XOR the record's sequence number (TLS 1.3's construction, RFC 8446 section 5.3), and its length
is the additional data, so a record that is altered, replayed, reordered, dropped or cut fails to open. The keys:
HKDF-SHA256 (RFC 5869) over both shares, one key and IV each way; neither side alone chooses them, and only the two
authenticated ends know the shares. A stream cut between records is a clean end of the channel, as on TCP: the
devmig stream's END record (its byte and record counts) is what says a stream is whole.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from typing import Final, Literal

#: server: the receiver; client: the sender (as in devmig.migrate.tls.channel)
Side = Literal["server", "client"]

#: what each side sends inside TLS: this tag (the layer and its version), then its share
OFFER_TAG: Final = b"devmig-sealed-records/1\n"
SHARE_BYTES: Final = 32
OFFER_BYTES: Final = len(OFFER_TAG) + SHARE_BYTES
#: the most plaintext one record carries: a 1 MiB DATA payload with room to spare; a longer length is refused
#: before its bytes are read
MAX_PLAINTEXT: Final = 4 << 20
TAG_BYTES: Final = 16
LENGTH: Final = struct.Struct(">I")
KEY_BYTES, IV_BYTES = 32, 12


class RecordError(Exception):
    """A sealed record that does not open, or a peer that does not offer this layer; the caller names the peer."""


def new_share() -> bytes:
    return secrets.token_bytes(SHARE_BYTES)


def offer(share: bytes) -> bytes:
    return OFFER_TAG + share


def peer_share(received: bytes) -> bytes:
    """The peer's share from its offer; RecordError when it is not one."""
    if len(received) != OFFER_BYTES or not received.startswith(OFFER_TAG):
        if received.startswith(OFFER_TAG[:7]):
            theirs = received.split(b"\n", 1)[0].decode(errors="replace")
            raise RecordError(
                f"it offers another sealed record layer ({theirs!r}, this devmig speaks "
                f"{OFFER_TAG.strip().decode()!r}): run the same devmig version on both hosts"
            )
        raise RecordError(
            "it did not offer devmig's sealed record layer after the handshake (a devmig without it, or not "
            "devmig): run the same devmig version on both hosts"
        )
    return received[len(OFFER_TAG) :]


@dataclass(frozen=True)
class Direction:
    """One direction's key and IV."""

    key: bytes
    iv: bytes


def derive(server_share: bytes, client_share: bytes) -> dict[Side, Direction]:
    """Each side's sending direction, from both shares (the same on both ends)."""
    from cryptography.hazmat.primitives import hashes  # imported when a channel is made, as in tls.channel
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    material = HKDF(
        algorithm=hashes.SHA256(),
        length=2 * (KEY_BYTES + IV_BYTES),
        salt=OFFER_TAG,
        info=b"devmig sealed records: server to client, client to server",
    ).derive(server_share + client_share)
    cut = KEY_BYTES + IV_BYTES
    server, client = material[:cut], material[cut:]
    return {
        "server": Direction(server[:KEY_BYTES], server[KEY_BYTES:]),
        "client": Direction(client[:KEY_BYTES], client[KEY_BYTES:]),
    }


class _Nonces:
    """The direction's IV XOR a 64-bit sequence number, which never repeats under one key."""

    def __init__(self, direction: Direction) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.aead = AESGCM(direction.key)
        self._invalid: type[Exception] = InvalidTag
        self._iv = int.from_bytes(direction.iv, "big")
        self.seq = 0

    def next(self) -> bytes:
        if self.seq >= 1 << 64:
            raise RecordError("2^64 records under one key: the connection must end")
        nonce = (self._iv ^ self.seq).to_bytes(IV_BYTES, "big")
        self.seq += 1
        return nonce


class Sealer(_Nonces):
    """Seals this side's records, into one buffer it reuses."""

    def __init__(self, direction: Direction) -> None:
        super().__init__(direction)
        self._out = bytearray(LENGTH.size + MAX_PLAINTEXT + TAG_BYTES)

    def seal(self, plaintext: bytes | memoryview) -> memoryview:
        """The record (length and ciphertext) for `plaintext`, valid until the next call."""
        size = len(plaintext)
        if size > MAX_PLAINTEXT:
            raise ValueError(f"a sealed record carries at most {MAX_PLAINTEXT} bytes, not {size}")
        header = LENGTH.pack(size + TAG_BYTES)
        self._out[: LENGTH.size] = header
        end = LENGTH.size + size + TAG_BYTES
        self.aead.encrypt_into(self.next(), plaintext, header, memoryview(self._out)[LENGTH.size : end])
        return memoryview(self._out)[:end]


class Opener(_Nonces):
    """Opens the peer's records, in order."""

    @staticmethod
    def length(header: bytes | bytearray | memoryview) -> int:
        """The ciphertext length a record header announces; RecordError when no record can be that long."""
        size: int = LENGTH.unpack(header)[0]
        if not TAG_BYTES <= size <= MAX_PLAINTEXT + TAG_BYTES:
            raise RecordError(
                f"a sealed record announces {size} bytes, outside {TAG_BYTES}..{MAX_PLAINTEXT + TAG_BYTES}: "
                "corrupt or not devmig"
            )
        return size

    def open(self, header: bytes | bytearray | memoryview, sealed: memoryview, into: memoryview) -> int:
        """Decrypt and check one record into `into` (exactly its plaintext's size); its size."""
        try:
            self.aead.decrypt_into(self.next(), sealed, header, into)
        except self._invalid:
            raise RecordError(
                f"sealed record {self.seq - 1} failed its authentication: bytes were altered in flight (or "
                "replayed, reordered or dropped)"
            ) from None
        return len(sealed) - TAG_BYTES
