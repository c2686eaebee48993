"""The migration channel's authentication: mutual TLS 1.3 with certificates, or with a pre-shared key.

Certificates follow libvirt's and QEMU's TLS migration: a directory (libvirt's `migrate_tls_x509_cert_dir`,
/etc/pki/qemu by default there; QEMU's `tls-creds-x509` `dir=`) holding `ca-cert.pem`, `server-cert.pem` and
`server-key.pem` (the receiver: QEMU's `endpoint=server`), `client-cert.pem` and `client-key.pem` (the sender). Both
sides verify the other (QEMU's `verify-peer=yes`): the receiver requires a sender certificate, the sender checks
the receiver's certificate against the host name it connects to, or against the name given as `peer` (QEMU's
`tls-hostname`, libvirt's `tls.destination`), and the receiver may restrict the sender names it admits (`allow`,
as QEMU's `tls-authz`), matched against the certificate's subject CN and DNS names.

A pre-shared key (labs): Python 3.11's ssl has no TLS-PSK, so both sides derive the same private CA from the key
(HKDF-SHA256 -> an Ed25519 seed -> a self-signed certificate with fixed fields; Ed25519 signs deterministically, so
the certificate is identical on both sides), each signs an ephemeral certificate of its own with that CA, and the
two run ordinary mutual TLS trusting that CA alone: whoever lacks the key cannot present a certificate the other
accepts.

After its handshake the receiver admits the sender in one line ("ok", or "refused: why"): in TLS 1.3 a client
completes its handshake before the server has judged the client's certificate, so without that line a refused
sender would learn of it only as a broken connection, after it had started to talk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import re
import socket
import ssl
import stat
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from devmig.errors import DevmigError, InputError

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
#: read when no --config is given and it exists
CONFIG: Final = Path("/etc/devmig/migration.toml")

#: a pre-shared key is at least this many bytes of secret; a longer file is not a key
PSK_MIN: Final = 32
PSK_MAX: Final = 64 << 10
#: the names of the ephemeral certificates in PSK mode: the sender checks the receiver's, so a sender's certificate
#: cannot pose as a receiver's
PSK_NAMES: Final[dict[Role, str]] = {"server": "devmig-psk-receiver", "client": "devmig-psk-sender"}
#: fixed inputs of the PSK CA: any change makes a new CA, so they carry a version
PSK_SALT: Final = b"devmig migration channel"
PSK_INFO: Final = b"devmig psk ca ed25519 v1"
PSK_CA_NAME: Final = "devmig pre-shared-key CA"
PSK_VALID: Final = (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))

#: the receiver's admission line: ADMITTED, or REFUSED and the reason
ADMITTED: Final = b"ok\n"
REFUSED: Final = b"refused: "
ADMISSION_MAX: Final = 1024

NO_CHANNEL: Final = (
    "no authenticated channel is set up: give --tls-dir DIR (libvirt's layout, e.g. /etc/pki/qemu: ca-cert.pem, "
    "server-cert.pem and server-key.pem on the receiver, client-cert.pem and client-key.pem on the sender) or "
    "--tls-ca/--tls-cert/--tls-key, or for a lab --psk-file FILE (the same key on both hosts: "
    "head -c 32 /dev/urandom > FILE; chmod 600 FILE), or set them in "
    f"{CONFIG} (--config FILE); --insecure sends the device state in the clear"
)


class HandshakeError(DevmigError):
    """The peer did not authenticate (or refused us) before any migration byte was exchanged."""


# -- a channel's credentials ------------------------------------------------------------------------------------------


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
        _load_chain(context, *_psk_leaf(role, ca_key, ca_cert))
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


# -- the pre-shared key -----------------------------------------------------------------------------------------------


def read_psk(path: str | os.PathLike[str]) -> bytes:
    """A key file's bytes; refused when shorter than 32 bytes or open to group or others (as ssh refuses a private
    key that is)."""
    try:
        with Path(path).open("rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"pre-shared key {path}: not a regular file")
            if info.st_mode & 0o077:
                raise InputError(
                    f"pre-shared key {path} is open to group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
                    f"chmod 600 {path}"
                )
            secret = file.read(PSK_MAX + 1)
    except OSError as exc:
        raise InputError(f"cannot read pre-shared key {path}: {exc.strerror or exc}") from None
    if len(secret) < PSK_MIN:
        raise InputError(
            f"pre-shared key {path}: {len(secret)} bytes, at least {PSK_MIN} bytes of secret expected "
            f"(head -c {PSK_MIN} /dev/urandom > {path})"
        )
    if len(secret) > PSK_MAX:
        raise InputError(f"pre-shared key {path}: larger than {PSK_MAX} bytes: not a key file")
    return secret


def psk_ca(secret: bytes) -> tuple[Any, Any]:
    """The CA derived from a pre-shared key: (its Ed25519 key, its self-signed certificate), the same for every
    holder of the key. Every field is fixed, so the certificate is byte for byte the same on both hosts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.x509.oid import NameOID

    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=PSK_SALT, info=PSK_INFO).derive(secret)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devmig"), x509.NameAttribute(NameOID.COMMON_NAME, PSK_CA_NAME)]
    )
    public = key.public_key()
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # certificates and CRLs
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(PSK_VALID[0])
        .not_valid_after(PSK_VALID[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, None)
    )
    return key, cert


def _psk_leaf(role: Role, ca_key: Any, ca_cert: Any) -> tuple[bytes, bytes]:
    """This process's certificate (PEM) and key (PEM), signed by the PSK CA; the key lives only in memory."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    purpose = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}[role]
    key = Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    name = PSK_NAMES[role]
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)  # signatures only
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))  # a peer whose clock is behind still accepts it
        .not_valid_after(now + dt.timedelta(days=365))  # a receiver may wait long for its sender
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, None)
    )
    pem = serialization.Encoding.PEM
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(pem), private


def _load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads a certificate and key only from a path: an anonymous memory file, so the key never reaches a
    filesystem (a private temporary directory where memfd or /proc is missing)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.memfd_create("devmig-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, cert + key)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
            return
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory(prefix="devmig-tls-") as private:  # mode 0700
        path = Path(private) / "chain.pem"
        path.touch(0o600)
        path.write_bytes(cert + key)
        context.load_cert_chain(path)


# -- settings: the command line's options or a config file's keys -----------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How to set up the channel, by the command line's option names (a config file uses the same names, with
    dashes: `tls-dir = "/etc/pki/qemu"`)."""

    tls_dir: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    psk_file: Path | None = None
    insecure: bool = False
    tls_peer: str | None = None
    tls_allow: tuple[str, ...] = ()
    #: where they came from, for messages
    origin: str = "the command line"

    #: the options that choose the channel's mode; the rest name peers
    CREDENTIALS: ClassVar[tuple[str, ...]] = ("tls_dir", "tls_ca", "tls_cert", "tls_key", "psk_file", "insecure")
    NAMES: ClassVar[tuple[str, ...]] = ("tls_peer", "tls_allow")

    @classmethod
    def from_options(cls, **options: Any) -> Settings:
        """From the CLI's keyword arguments (tls_dir=..., tls_allow=(...), insecure=...; None when not given)."""
        known = {f.name for f in fields(cls)} - {"origin"}
        values: dict[str, Any] = {
            k: (Path(v) if k in cls.CREDENTIALS and isinstance(v, str) else v) for k, v in options.items()
        }
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Settings:
        """A TOML file with the options' names as keys; relative paths are taken from the file's directory."""
        where = Path(path)
        try:
            document = tomllib.loads(where.read_text())
        except OSError as exc:
            raise InputError(f"cannot read config file {where}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"config file {where}: not TOML ({exc})") from None
        values: dict[str, Any] = {}
        for key, value in document.items():
            name = key.replace("-", "_")
            kind = _KEYS.get(name)
            if kind is None:
                known = ", ".join(k.replace("_", "-") for k in _KEYS)
                raise InputError(f"config file {where}: unknown key {key!r} (known: {known})")
            if not _fits(value, kind):
                raise InputError(f"config file {where}: {key} must be {_KINDS[kind]}, not {value!r}")
            values[name] = where.parent / value if kind == "path" else tuple(value) if kind == "names" else value
        return cls(**values, origin=f"config file {where}")

    def given(self, names: Iterable[str]) -> bool:
        return any(getattr(self, name) for name in names)

    def over(self, base: Settings) -> Settings:
        """These settings, with `base` (a config file) for what they leave out: the credentials as a whole (naming
        any of them on the command line replaces the file's choice), the peer names one by one where they apply."""
        if not self.given(self.CREDENTIALS):
            creds = {name: getattr(base, name) for name in self.CREDENTIALS}
            merged = replace(self, **creds, origin=base.origin)
        else:
            merged = self
        if merged.mode() == "certificates":
            names = {name: getattr(self, name) or getattr(base, name) for name in self.NAMES}
            merged = replace(merged, **names)
        return merged

    def mode(self) -> str | None:
        """certificates, psk or insecure; None when nothing is chosen. Several: refused."""
        chosen = [mode for mode, names in _MODES.items() if self.given(names)]
        if len(chosen) > 1:
            raise InputError(
                f"{self.origin}: {' and '.join(_MODE_OPTIONS[m] for m in chosen)} exclude each other: choose "
                "certificates, a pre-shared key or --insecure"
            )
        return chosen[0] if chosen else None

    def config(self, role: Role) -> TlsConfig | None:
        """The channel for `role`; None for plain TCP (--insecure). InputError when nothing or too much is set."""
        mode = self.mode()
        if mode is None:
            raise InputError(NO_CHANNEL)
        if mode != "certificates" and self.given(self.NAMES):
            raise InputError(
                f"{self.origin}: --tls-peer and --tls-allow name certificate holders; they do not apply to "
                f"{_MODE_OPTIONS[mode]}"
            )
        if mode == "insecure":
            return None
        if mode == "psk":
            assert self.psk_file is not None
            return TlsConfig.from_psk_file(role, self.psk_file)
        # each role takes the names meant for it: one config file can serve a host that sends and receives
        peer = self.tls_peer if role == "client" else None
        allow = self.tls_allow if role == "server" else ()
        if self.tls_dir is not None and not (self.tls_ca or self.tls_cert or self.tls_key):
            return TlsConfig.from_dir(role, self.tls_dir, peer=peer, allow=allow)
        base = self.tls_dir
        cert_name, key_name = FILES[role]
        files = {
            "--tls-ca": self.tls_ca or (base / CA_FILE if base else None),
            "--tls-cert": self.tls_cert or (base / cert_name if base else None),
            "--tls-key": self.tls_key or (base / key_name if base else None),
        }
        missing = [option for option, path in files.items() if path is None]
        if missing:
            raise InputError(
                f"{self.origin}: --tls-ca, --tls-cert and --tls-key go together (or --tls-dir DIR with libvirt's "
                f"file names): {' and '.join(missing)} missing"
            )
        ca, cert, key = (path for path in files.values() if path is not None)
        return TlsConfig.from_files(role, ca, cert, key, peer=peer, allow=allow)


#: a config file's keys -> their kind
_KEYS: Final = {
    "tls_dir": "path",
    "tls_ca": "path",
    "tls_cert": "path",
    "tls_key": "path",
    "psk_file": "path",
    "insecure": "bool",
    "tls_peer": "str",
    "tls_allow": "names",
}
_KINDS: Final = {"path": "a path (a string)", "bool": "true or false", "str": "a string", "names": "a list of names"}
_MODES: Final = {
    "certificates": ("tls_dir", "tls_ca", "tls_cert", "tls_key"),
    "psk": ("psk_file",),
    "insecure": ("insecure",),
}
_MODE_OPTIONS: Final = {
    "certificates": "certificates (--tls-*)",
    "psk": "a pre-shared key (--psk-file)",
    "insecure": "--insecure",
}


def _fits(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "names":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    return isinstance(value, str) and bool(value)


def settings(given: Settings, config: str | os.PathLike[str] | None) -> Settings:
    """The command line's settings over the config file's: `config`, or CONFIG when it exists."""
    path = Path(config) if config is not None else CONFIG if CONFIG.exists() else None
    return given if path is None else given.over(Settings.read(path))
