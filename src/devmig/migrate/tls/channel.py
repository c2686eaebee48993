"""One side of the migration channel: its credentials, the TLS 1.3 handshakes, and the receiver's admission.

Certificates follow libvirt's and QEMU's TLS migration: a directory (libvirt's `migrate_tls_x509_cert_dir`,
/etc/pki/qemu by default there; QEMU's `tls-creds-x509` `dir=`) holding `ca-cert.pem`, `server-cert.pem` and
`server-key.pem` (the receiver: QEMU's `endpoint=server`), `client-cert.pem` and `client-key.pem` (the sender). Both
sides verify the other (QEMU's `verify-peer=yes`): the receiver requires a sender certificate, the sender checks
the receiver's certificate against the host name it connects to, or against the name given as `peer` (QEMU's
`tls-hostname`, libvirt's `tls.destination`), and the receiver may restrict the sender names it admits (`allow`,
as QEMU's `tls-authz`), matched against the certificate's subject CN and DNS names. With a pre-shared key instead
(devmig.migrate.tls.psk), both sides trust the CA derived from the key.

After its handshake the receiver admits the sender in one line ("ok", or "refused: why"): in TLS 1.3 a client
completes its handshake before the server has judged the client's certificate, so without that line a refused
sender would learn of it only as a broken connection, after it had started to talk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from devmig.errors import DevmigError, InputError
from devmig.migrate.tls.psk import PSK_MIN, PSK_NAMES, load_chain, psk_ca, psk_leaf, read_psk

#: server: the receiver (it listens); client: the sender (it connects)
Role = Literal["server", "client"]

#: libvirt's file names in a TLS directory (QEMU's tls-creds-x509 dir=): the CA, and each role's certificate and key
CA_FILE: Final = "ca-cert.pem"
FILES: Final[dict[Role, tuple[str, str]]] = {
    "server": ("server-cert.pem", "server-key.pem"),
    "client": ("client-cert.pem", "client-key.pem"),
}
#: who each role's peer is, in messages
PEER: Final[dict[Role, str]] = {"server": "the sender", "client": "the receiver"}

#: the receiver's admission line: ADMITTED, or REFUSED and the reason
ADMITTED: Final = b"ok\n"
REFUSED: Final = b"refused: "
ADMISSION_MAX: Final = 1024


class HandshakeError(DevmigError):
    """The peer did not authenticate (or refused us) before any migration byte was exchanged."""


@dataclass(frozen=True)
class TlsConfig:
    """One side's TLS: its role, its context (its certificate, the CA it trusts, TLS 1.3 only, peer verified), the
    receiver name a sender expects, the sender names a receiver admits."""

    role: Role
    context: ssl.SSLContext
    #: what the credentials are, for messages: "the certificates in /etc/pki/qemu", "the pre-shared key in FILE"
    source: str
    #: the CA the peer must be signed by, for messages
    trust: str
    psk: bool = False
    #: client: the name the receiver's certificate must carry (default: the host connected to)
    peer: str | None = None
    #: server: the sender names admitted (subject CN or DNS names); empty: any sender the CA signed
    allow: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_files(
        cls,
        role: Role,
        ca: str | os.PathLike[str],
        cert: str | os.PathLike[str],
        key: str | os.PathLike[str],
        *,
        peer: str | None = None,
        allow: Iterable[str] = (),
        source: str | None = None,
    ) -> TlsConfig:
        """Certificates in PEM files: the CA to trust, this side's certificate and its unencrypted key."""
        context = _context(role)
        for path in (ca, cert, key):
            _readable(Path(path))
        try:
            context.load_verify_locations(cafile=os.fspath(ca))
        except ssl.SSLError as exc:
            raise InputError(f"CA certificate {ca}: not a PEM certificate ({ssl_detail(exc)})") from None
        try:
            context.load_cert_chain(os.fspath(cert), os.fspath(key))
        except ssl.SSLError as exc:
            raise InputError(_chain_problem(Path(cert), Path(key), exc)) from None
        where = source or f"the certificate {cert}"
        names = _allowed(role, allow, where)
        return cls(role, context, where, f"the CA in {ca}", peer=_peer(role, peer, where), allow=names)

    @classmethod
    def from_dir(
        cls, role: Role, directory: str | os.PathLike[str], *, peer: str | None = None, allow: Iterable[str] = ()
    ) -> TlsConfig:
        """libvirt's layout: DIR/ca-cert.pem and the role's DIR/{server,client}-{cert,key}.pem."""
        base = Path(directory)
        if not base.is_dir():
            raise InputError(f"TLS directory {base}: not a directory (expected {CA_FILE}, {', '.join(FILES[role])})")
        cert, key = FILES[role]
        return cls.from_files(
            role, base / CA_FILE, base / cert, base / key, peer=peer, allow=allow, source=f"the certificates in {base}"
        )

    @classmethod
    def from_psk(cls, role: Role, secret: bytes, *, source: str = "a pre-shared key") -> TlsConfig:
        """Mutual TLS against the CA derived from `secret` (at least 32 bytes), with an ephemeral certificate."""
        if len(secret) < PSK_MIN:
            raise InputError(f"{source}: {len(secret)} bytes, at least {PSK_MIN} bytes of secret expected")
        from cryptography.hazmat.primitives import serialization

        ca_key, ca_cert = psk_ca(secret)
        context = _context(role)
        context.load_verify_locations(cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode())
        load_chain(context, *psk_leaf(role, ca_key, ca_cert))
        trust = f"the CA derived from {source}: it does not hold the same key"
        return cls(role, context, source, trust, psk=True)

    @classmethod
    def from_psk_file(cls, role: Role, path: str | os.PathLike[str]) -> TlsConfig:
        return cls.from_psk(role, read_psk(path), source=f"the pre-shared key in {path}")

    def expected_name(self, host: str) -> str:
        """The name the receiver's certificate must carry when the sender connects to `host`."""
        return PSK_NAMES["server"] if self.psk else self.peer or host

    # -- the handshakes -------------------------------------------------------------------------------------------

    def client(self, sock: socket.socket, host: str, name: str) -> ssl.SSLSocket:
        """The sender's side on a connected socket: the handshake, then the receiver's admission. Closes the
        connection on failure; HandshakeError says why."""
        expected = self.expected_name(host)
        conn = sock
        try:
            conn = tls = self.context.wrap_socket(sock, server_hostname=expected, do_handshake_on_connect=False)
            tls.do_handshake()
            line = _admission(tls)
            if line != ADMITTED:
                reason = line.removeprefix(REFUSED).decode(errors="replace").strip() or "no reason given"
                raise HandshakeError(
                    f"{PEER['client']} at {name} refused this sender after the TLS handshake: {reason}"
                )
        except OSError as exc:
            conn.close()
            raise HandshakeError(
                f"TLS handshake with {PEER['client']} at {name} failed: {self._explain(exc, expected)}; "
                "nothing was sent"
            ) from None
        except BaseException:
            conn.close()
            raise
        return tls

    def server(self, sock: socket.socket, name: str) -> ssl.SSLSocket:
        """The receiver's side on an accepted socket: the handshake (a sender certificate required), the name check,
        the admission line. Closes the connection on failure; HandshakeError says why."""
        conn = sock
        try:
            conn = tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
        except OSError as exc:
            conn.close()
            raise HandshakeError(
                f"refused {PEER['server']} at {name} during the TLS handshake: {self._explain(exc, None)}; "
                "no byte of state was read"
            ) from None
        except BaseException:
            conn.close()
            raise
        refusal = self._refusal(tls.getpeercert())
        with contextlib.suppress(OSError):  # a sender gone already needs no answer
            tls.sendall(ADMITTED if refusal is None else REFUSED + refusal.encode()[: ADMISSION_MAX - 16] + b"\n")
        if refusal is not None:
            tls.close()
            raise HandshakeError(f"refused {PEER['server']} at {name} after the TLS handshake: {refusal}")
        return tls

    def _refusal(self, cert: dict[str, Any] | None) -> str | None:
        """Why the sender's (verified) certificate is not admitted, or None."""
        if not self.allow:
            return None
        names = certificate_names(cert)
        if {n.lower() for n in names} & self.allow:
            return None
        shown = ", ".join(names) or "none"
        return f"its certificate names ({shown}) are not among the admitted senders ({', '.join(sorted(self.allow))})"

    def _explain(self, exc: OSError, expected: str | None) -> str:
        """What a failed handshake means, in this setup's terms, then the library's own words."""
        peer = PEER[self.role]
        if isinstance(exc, TimeoutError | socket.timeout):
            return f"{peer} did not complete it in time (the socket's timeout)"
        if not isinstance(exc, ssl.SSLError):
            return f"{peer} hung up during it ({exc.strerror or exc}): it may not speak TLS, or refused us"
        if isinstance(exc, ssl.SSLCertVerificationError):
            what = _VERIFY.get(exc.verify_code, "certificate does not verify")
            return f"{peer}'s {what.format(trust=self.trust, name=expected)} ({exc.verify_message})"
        meaning = _REASONS.get("EOF" if isinstance(exc, ssl.SSLEOFError) else str(exc.reason))
        if meaning is None:
            return f"the TLS library refused it ({ssl_detail(exc)})"
        return f"{peer} {meaning.format(source=self.source, rejected=self.rejected)} ({ssl_detail(exc)})"

    @property
    def rejected(self) -> str:
        """Why a peer may reject our certificate, in this setup's terms."""
        if self.psk:
            return f"it does not hold {self.source}"
        return f"is ours ({self.source}) signed by the CA it trusts, for the name it expects?"


#: a verification failure of the peer's certificate (OpenSSL's X509_V_ERR_*) -> what it means here
_VERIFY: Final[dict[int, str]] = {
    **dict.fromkeys((2, 7, 18, 19, 20, 21, 30), "certificate is not signed by {trust}"),
    9: "certificate is not valid yet (are both hosts' clocks right?)",
    10: "certificate has expired",
    26: "certificate is not meant for this role (a receiver needs serverAuth, a sender clientAuth)",
    **dict.fromkeys(
        (62, 64),
        "certificate is not issued to {name} (give the name it carries with --tls-peer when connecting by address)",
    ),
}
#: OpenSSL's reason for a failed handshake -> what the peer did, after "the sender" / "the receiver"
_REASONS: Final[dict[str, str]] = {
    **dict.fromkeys(
        ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN"),
        "does not accept our certificate: {rejected}",
    ),
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "finds our certificate unfit for its role ({source})",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "finds our certificate expired ({source})",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "requires a certificate and we presented none",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "presented no certificate (a receiver requires one)",
    **dict.fromkeys(
        (
            "WRONG_VERSION_NUMBER",
            "HTTP_REQUEST",
            "UNEXPECTED_MESSAGE",
            "PACKET_LENGTH_TOO_LONG",
            "RECORD_LAYER_FAILURE",
        ),
        "does not speak TLS (is it running with --insecure?)",
    ),
    **dict.fromkeys(
        ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"),
        "does not offer TLS 1.3",
    ),
    **dict.fromkeys(
        ("UNEXPECTED_EOF_WHILE_READING", "EOF"),
        "hung up during the handshake (it may have refused our certificate, or not speak TLS)",
    ),
}


def ssl_detail(exc: ssl.SSLError) -> str:
    """OpenSSL's words without their decoration: "[SSL: X] words (_ssl.c:123)" -> "words"."""
    text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
    return re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", text) or str(exc.reason)


def _admission(tls: ssl.SSLSocket) -> bytes:
    """The receiver's one line (bounded): "ok", or "refused: why"."""
    line = b""
    while not line.endswith(b"\n") and len(line) < ADMISSION_MAX:
        got = tls.recv(ADMISSION_MAX - len(line))
        if not got:
            raise ConnectionAbortedError(errno.ECONNABORTED, "the connection closed before the admission line")
        line += got
    return line


def _context(role: Role) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if role == "server" else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED  # the receiver too: a sender without a certificate is refused
    if role == "server":
        context.num_tickets = 0  # one connection per migration: nothing to resume
    return context


def _readable(path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _chain_problem(cert: Path, key: Path, exc: ssl.SSLError) -> str:
    """Which of the two files is wrong, when OpenSSL only says "PEM lib" or "key values mismatch"."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError:
        return f"certificate {cert}: not a PEM certificate"
    try:
        serialization.load_pem_private_key(key.read_bytes(), password=None)
    except TypeError:
        return f"key {key}: encrypted; devmig needs an unencrypted key readable only by the user running it"
    except Exception:  # ValueError, or cryptography's UnsupportedAlgorithm
        return f"key {key}: not a PEM private key"
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"key {key} does not belong to certificate {cert}"
    return f"certificate {cert} with key {key}: {ssl_detail(exc)}"


def _peer(role: Role, peer: str | None, where: str) -> str | None:
    if peer is not None and role != "client":
        raise InputError(f"{where}: the expected peer name (--tls-peer) is for the sender (devmig migrate)")
    return peer


def _allowed(role: Role, allow: Iterable[str], where: str) -> frozenset[str]:
    names = frozenset(name.lower() for name in allow)
    if names and role != "server":
        raise InputError(f"{where}: admitted sender names (--tls-allow) are for the receiver (devmig receive)")
    return names


def certificate_names(cert: dict[str, Any] | None) -> list[str]:
    """A certificate's subject CNs and DNS names, as ssl's getpeercert() reports them."""
    if not cert:
        return []
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    names += [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    return list(dict.fromkeys(names))
