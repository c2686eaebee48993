"""The pre-shared key (labs): the key file, the CA both sides derive from it, and each side's certificate.

Python 3.11's ssl has no TLS-PSK, so both sides derive the same private CA from the key (HKDF-SHA256 -> an Ed25519
seed -> a self-signed certificate with fixed fields; Ed25519 signs deterministically, so the certificate is
identical on both sides), each signs an ephemeral certificate of its own with that CA, and the two run ordinary
mutual TLS trusting that CA alone: whoever lacks the key cannot present a certificate the other accepts.

cryptography is imported where it is used: it is slow to import, and `devmig --help` needs none of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import ssl
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from devmig.errors import InputError

if TYPE_CHECKING:  # for types only: channel imports this module
    from devmig.migrate.tls.channel import Role

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


def psk_leaf(role: Role, ca_key: Any, ca_cert: Any) -> tuple[bytes, bytes]:
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


def load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
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
