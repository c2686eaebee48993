"""The migration channel between hosts: mutual TLS with certificates or a pre-shared key, plain TCP only when asked.

A peer that does not authenticate is refused during the handshake, before a byte of state: the destination device
keeps its state and stays RUNNING, the source stays RUNNING with its state intact. A byte altered in flight is
caught: by the stream's CRC32C on plain TCP, by TLS's record authentication otherwise.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devmig.errors import DevmigError, IncompatibleError, InputError
from devmig.migrate import transport
from devmig.migrate.fsm import RUNNING, STOP
from devmig.migrate.session import Destination, Outcome, Source, accept_all
from devmig.migrate.tls.channel import HandshakeError, Role, TlsConfig
from devmig.migrate.tls.psk import PSK_MIN, psk_ca, read_psk
from devmig.migrate.tls.settings import Settings
from devmig.migrate.transport import Address
from devmig.sim.vfio import DeviceState, SimVfioDevice, StreamHeader
from tests.cli.conftest import run_devmig
from tests.paths import ROOT

MiB = 1 << 20
LOCAL = "127.0.0.1"

# -- a test PKI, in libvirt's layout ---------------------------------------------------------------------------------


@dataclass
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def make_ca(name: str) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Ca(key, cert)


def issue(ca: Ca, cn: str, names: list[str], server: bool, directory: Path, stem: str) -> None:
    """STEM-cert.pem and STEM-key.pem in `directory`, signed by `ca`; names that parse as addresses are IP SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}-cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = directory / f"{stem}-key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)


def pki_dir(directory: Path, ca: Ca, *, server_names: list[str], client_cn: str = "alpha.example") -> Path:
    """A directory as libvirt's /etc/pki/qemu: ca-cert.pem, server-{cert,key}.pem, client-{cert,key}.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca-cert.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    issue(ca, server_names[0], server_names, True, directory, "server")
    issue(ca, client_cn, [client_cn], False, directory, "client")
    return directory


@dataclass
class Pki:
    good: Path  # the receiver "beta.example" (also 127.0.0.1, localhost), the sender "alpha.example"
    rogue: Path  # the same names, signed by another CA
    misnamed: Path  # the deployment's CA, but the receiver's certificate names only elsewhere.example
    intruder: Path  # the deployment's CA, the sender "mallory.example"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, other = make_ca("devmig test CA"), make_ca("another CA")
    names = ["beta.example", "localhost", LOCAL]
    return Pki(
        good=pki_dir(base / "good", ca, server_names=names),
        rogue=pki_dir(base / "rogue", other, server_names=names),
        misnamed=pki_dir(base / "misnamed", ca, server_names=["elsewhere.example"]),
        intruder=pki_dir(base / "intruder", ca, server_names=names, client_cn="mallory.example"),
    )


def psk_file(path: Path, secret: bytes | None = None, mode: int = 0o600) -> Path:
    path.write_bytes(os.urandom(PSK_MIN) if secret is None else secret)
    path.chmod(mode)
    return path


# -- two devices and a session over TCP ------------------------------------------------------------------------------


def device(name: str, *, seed: int | None) -> SimVfioDevice:
    dev = SimVfioDevice(name, DeviceState.create(memory=2 * MiB, seed=seed), header=StreamHeader("m", "1.0.0"))
    dev.open()
    return dev


Result = Outcome | BaseException


def session(
    server: TlsConfig | None,
    client: TlsConfig | None,
    src: SimVfioDevice,
    dst: SimVfioDevice,
    *,
    host: str = LOCAL,
    via: Address | None = None,
) -> tuple[Result, Result]:
    """One migration over TCP (through `via`, a proxy, when given); each side's outcome or error."""
    with transport.listen(Address(LOCAL, 0)) as listener:
        port = listener.getsockname()[1]
        got: list[Result] = []

        def serve() -> None:
            try:
                channel = transport.accept(listener, 10, 10, tls=server)
                got.append(transport.receive(Destination(dst, judge=accept_all), channel))
            except BaseException as exc:
                got.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        sent: Result
        try:
            sent = transport.send(Source(src), transport.connect(via or Address(host, port), 10, tls=client))
        except BaseException as exc:
            sent = exc
        thread.join(30)
    return sent, got[0]


@dataclass
class Pair:
    src: SimVfioDevice
    dst: SimVfioDevice
    src_digest: str
    dst_digest: str

    def untouched(self) -> None:
        """Both devices as they were: running, the state unchanged."""
        assert self.src.get_state() is RUNNING and self.src.state.digest() == self.src_digest
        assert self.dst.get_state() is RUNNING and self.dst.state.digest() == self.dst_digest


@pytest.fixture
def pair() -> Pair:
    src, dst = device("src", seed=1), device("dst", seed=2)
    return Pair(src, dst, src.state.digest(), dst.state.digest())


def certs(directory: Path, role: Role, *, peer: str | None = None, allow: tuple[str, ...] = ()) -> TlsConfig:
    return TlsConfig.from_dir(role, directory, peer=peer, allow=allow)


# -- the state arrives ------------------------------------------------------------------------------------------------


def test_a_migration_over_mutual_tls_arrives_byte_for_byte(pki: Pki, pair: Pair) -> None:
    server = certs(pki.good, "server", allow=("alpha.example",))
    sent, got = session(server, certs(pki.good, "client"), pair.src, pair.dst)
    assert isinstance(sent, Outcome) and isinstance(got, Outcome), (sent, got)
    assert sent.ok and got.ok and sent.bytes == got.bytes >= 2 * MiB
    assert pair.dst.state.digest() == pair.src_digest
    assert (pair.src.get_state(), pair.dst.get_state()) == (STOP, RUNNING)


def test_a_migration_over_a_pre_shared_key_arrives_byte_for_byte(tmp_path: Path, pair: Pair) -> None:
    key = psk_file(tmp_path / "psk")
    sent, got = session(
        TlsConfig.from_psk_file("server", key), TlsConfig.from_psk_file("client", key), pair.src, pair.dst
    )
    assert isinstance(sent, Outcome) and isinstance(got, Outcome), (sent, got)
    assert pair.dst.state.digest() == pair.src_digest and sent.bytes == got.bytes


def test_the_sender_checks_the_name_it_connects_to_or_the_one_it_is_told(pki: Pki, pair: Pair) -> None:
    sent, _ = session(certs(pki.good, "server"), certs(pki.good, "client"), pair.src, pair.dst, host="localhost")
    assert isinstance(sent, Outcome)  # the certificate names localhost
    src, dst = device("src2", seed=3), device("dst2", seed=None)
    told = certs(pki.misnamed, "client", peer="elsewhere.example")
    sent, got = session(certs(pki.misnamed, "server"), told, src, dst)
    assert isinstance(sent, Outcome) and isinstance(got, Outcome), (sent, got)


def test_the_pre_shared_key_ca_is_the_same_on_both_hosts_and_differs_by_key() -> None:
    key = bytes(range(PSK_MIN))
    first, second = psk_ca(key)[1], psk_ca(bytes(key))[1]
    pem = serialization.Encoding.PEM
    assert first.public_bytes(pem) == second.public_bytes(pem)  # Ed25519 signs deterministically
    assert psk_ca(key[::-1])[1].public_bytes(pem) != first.public_bytes(pem)


# -- peers that do not authenticate are refused during the handshake --------------------------------------------------


def refused(sent: Result, got: Result, sender: str, receiver: str) -> None:
    assert isinstance(sent, DevmigError) and sender in str(sent), sent
    assert isinstance(got, HandshakeError) and receiver in str(got), got
    assert "\n" not in str(sent) + str(got)


def test_a_plain_tcp_sender_is_refused_and_told_why(pki: Pki, pair: Pair) -> None:
    sent, got = session(certs(pki.good, "server"), None, pair.src, pair.dst)
    assert isinstance(sent, IncompatibleError)  # the receiver's VERDICT, before any state
    refused(sent, got, "takes only TLS-authenticated senders", "speaks plain TCP")
    assert "before any state was sent" in str(sent) and "no byte of state was read" in str(got)
    pair.untouched()


def test_a_tls_sender_is_refused_by_a_plain_receiver(pki: Pki, pair: Pair) -> None:
    sent, got = session(None, certs(pki.good, "client"), pair.src, pair.dst)
    refused(sent, got, "TLS handshake with the receiver", "it opened a TLS handshake")
    pair.untouched()


def test_a_sender_certificate_from_another_ca_is_refused(pki: Pki, pair: Pair) -> None:
    rogue = TlsConfig.from_files(  # it trusts the deployment's (public) CA; its own certificate is from another
        "client", pki.good / "ca-cert.pem", pki.rogue / "client-cert.pem", pki.rogue / "client-key.pem"
    )
    sent, got = session(certs(pki.good, "server"), rogue, pair.src, pair.dst)
    refused(sent, got, "the receiver does not accept our certificate", "certificate is not signed by the CA in")
    assert "unknown ca" in str(sent) and "nothing was sent" in str(sent)
    pair.untouched()


def test_a_receiver_certificate_from_another_ca_is_refused(pki: Pki, pair: Pair) -> None:
    rogue = TlsConfig.from_files(
        "server", pki.good / "ca-cert.pem", pki.rogue / "server-cert.pem", pki.rogue / "server-key.pem"
    )
    sent, got = session(rogue, certs(pki.good, "client"), pair.src, pair.dst)
    refused(sent, got, "the receiver's certificate is not signed by the CA in", "does not accept our certificate")
    pair.untouched()


def test_a_sender_whose_name_is_not_admitted_is_refused(pki: Pki, pair: Pair) -> None:
    server = certs(pki.good, "server", allow=("alpha.example", "gamma.example"))
    sent, got = session(server, certs(pki.intruder, "client"), pair.src, pair.dst)
    refused(sent, got, "refused this sender after the TLS handshake", "(mallory.example) are not among the admitted")
    pair.untouched()


def test_a_receiver_certificate_for_another_name_is_refused(pki: Pki, pair: Pair) -> None:
    sent, got = session(certs(pki.misnamed, "server"), certs(pki.misnamed, "client"), pair.src, pair.dst)
    refused(sent, got, f"certificate is not issued to {LOCAL}", "does not accept our certificate")
    assert "--tls-peer" in str(sent)
    pair.untouched()


def test_a_wrong_pre_shared_key_is_refused(tmp_path: Path, pair: Pair) -> None:
    server = TlsConfig.from_psk_file("server", psk_file(tmp_path / "a"))
    client = TlsConfig.from_psk_file("client", psk_file(tmp_path / "b"))
    sent, got = session(server, client, pair.src, pair.dst)
    refused(sent, got, "it does not hold the same key", "it does not hold the pre-shared key in")
    pair.untouched()


def test_a_sender_certificate_cannot_pose_as_a_receiver(pki: Pki, pair: Pair) -> None:
    """A receiver must hold a serverAuth certificate: a sender's own (clientAuth) one is refused."""
    client_as_server = TlsConfig.from_files(
        "server", pki.good / "ca-cert.pem", pki.good / "client-cert.pem", pki.good / "client-key.pem"
    )
    sent, got = session(client_as_server, certs(pki.good, "client", peer="alpha.example"), pair.src, pair.dst)
    refused(sent, got, "not meant for this role", "unfit for its role")
    pair.untouched()


def test_a_silent_or_garbage_peer_is_refused_without_touching_the_device(pki: Pki, pair: Pair) -> None:
    server = certs(pki.good, "server")
    with transport.listen(Address(LOCAL, 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection((LOCAL, port)) as raw:
            raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with pytest.raises(HandshakeError, match="does not speak TLS"):
                transport.accept(listener, 5, 5, tls=server)
        with (
            socket.create_connection((LOCAL, port)),
            pytest.raises(HandshakeError, match="said nothing: no answer in time"),
        ):
            transport.accept(listener, 5, 0.3, tls=server)
    pair.untouched()


# -- a byte altered in flight ------------------------------------------------------------------------------------------


class Flipper:
    """A TCP proxy that flips one byte of what the sender sends, at `offset`. Once the receiver has hung up it
    keeps reading the sender (and drops it), so the sender reaches the receiver's answer rather than a reset."""

    def __init__(self, target: int, offset: int) -> None:
        self.target, self.offset = target, offset
        self.listener = socket.create_server((LOCAL, 0))
        self.address = Address(LOCAL, self.listener.getsockname()[1])
        self.flipped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection((LOCAL, self.target))
        back = threading.Thread(target=self.back, args=(server, client), daemon=True)
        back.start()
        seen = 0
        server_gone = False
        while data := client.recv(1 << 16):
            buffer = bytearray(data)
            if seen <= self.offset < seen + len(buffer):
                buffer[self.offset - seen] ^= 0x40
                self.flipped = True
            seen += len(buffer)
            if not server_gone:
                try:
                    server.sendall(buffer)
                except OSError:
                    server_gone = True
        back.join(10)
        client.close()
        server.close()

    @staticmethod
    def back(server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(1 << 16):
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.thread.join(30)
        self.listener.close()


def flipped_session(server: TlsConfig | None, client: TlsConfig | None, pair: Pair) -> tuple[Result, Result]:
    """A session whose receiver is reached through a Flipper (the proxy learns the receiver's port first)."""
    with transport.listen(Address(LOCAL, 0)) as listener:
        proxy = Flipper(listener.getsockname()[1], offset=300_000)  # inside the first DATA record
        got: list[Result] = []

        def serve() -> None:
            try:
                got.append(
                    transport.receive(
                        Destination(pair.dst, judge=accept_all), transport.accept(listener, 10, 10, tls=server)
                    )
                )
            except BaseException as exc:
                got.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        sent: Result
        try:
            sent = transport.send(Source(pair.src), transport.connect(proxy.address, 10, tls=client))
        except BaseException as exc:
            sent = exc
        thread.join(30)
        proxy.close()
    assert proxy.flipped
    return sent, got[0]


def test_plain_tcp_a_flipped_byte_fails_the_crc_and_the_source_runs_on(pair: Pair) -> None:
    sent, got = flipped_session(None, None, pair)
    assert isinstance(got, DevmigError) and "fails its CRC32C" in str(got), got
    assert isinstance(sent, DevmigError) and "fails its CRC32C" in str(sent), sent  # the receiver's RESULT
    assert pair.src.get_state() is RUNNING and pair.src.state.digest() == pair.src_digest
    assert pair.dst.get_state() is RUNNING  # reset: nothing half-loaded runs


def test_tls_a_flipped_byte_kills_the_connection_and_the_source_runs_on(tmp_path: Path, pair: Pair) -> None:
    key = psk_file(tmp_path / "psk")
    server, client = TlsConfig.from_psk_file("server", key), TlsConfig.from_psk_file("client", key)
    sent, got = flipped_session(server, client, pair)
    assert isinstance(got, DevmigError) and "altered in flight" in str(got), got
    assert isinstance(sent, DevmigError), sent
    assert pair.src.get_state() is RUNNING and pair.src.state.digest() == pair.src_digest
    assert pair.dst.get_state() is RUNNING


# -- credentials and settings -----------------------------------------------------------------------------------------


def test_a_short_or_exposed_pre_shared_key_is_refused(tmp_path: Path) -> None:
    short = psk_file(tmp_path / "short", b"x" * (PSK_MIN - 1))
    with pytest.raises(InputError, match=r"31 bytes, at least 32 bytes of secret expected \(head -c 32"):
        read_psk(short)
    exposed = psk_file(tmp_path / "exposed", mode=0o644)
    with pytest.raises(InputError, match=rf"open to group or others \(mode 0644\): chmod 600 {exposed}$"):
        read_psk(exposed)
    with pytest.raises(InputError, match="cannot read pre-shared key"):
        read_psk(tmp_path / "missing")
    assert len(read_psk(psk_file(tmp_path / "ok"))) == PSK_MIN


def test_bad_certificate_files_are_named(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(InputError, match=r"TLS directory .*: not a directory"):
        TlsConfig.from_dir("server", tmp_path / "none")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    good = pki.good
    with pytest.raises(InputError, match=f"certificate {garbage}: not a PEM certificate"):
        TlsConfig.from_files("server", good / "ca-cert.pem", garbage, good / "server-key.pem")
    with pytest.raises(InputError, match="does not belong to certificate"):
        TlsConfig.from_files("server", good / "ca-cert.pem", good / "server-cert.pem", good / "client-key.pem")
    with pytest.raises(InputError, match=f"CA certificate {garbage}: not a PEM certificate"):
        TlsConfig.from_files("server", garbage, good / "server-cert.pem", good / "server-key.pem")
    with pytest.raises(InputError, match=r"cannot read .*nothing\.pem: No such file"):
        TlsConfig.from_files("client", tmp_path / "nothing.pem", good / "client-cert.pem", good / "client-key.pem")


def test_settings_choose_one_mode_and_a_config_file_fills_in(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(InputError, match="no authenticated channel is set up: give --tls-dir"):
        Settings().config("server")
    with pytest.raises(InputError, match=r"a pre-shared key \(--psk-file\) and --insecure exclude each other"):
        Settings(psk_file=tmp_path / "k", insecure=True).config("client")
    with pytest.raises(InputError, match=r"--tls-ca, --tls-cert and --tls-key go together.*--tls-key missing"):
        Settings(tls_ca=pki.good / "ca-cert.pem", tls_cert=pki.good / "client-cert.pem").config("client")
    with pytest.raises(InputError, match="do not apply to --insecure"):
        Settings(insecure=True, tls_allow=("x",)).config("server")
    assert Settings(insecure=True).config("client") is None
    config = tmp_path / "migration.toml"
    config.write_text(f'tls-dir = "{os.path.relpath(pki.good, tmp_path)}"\ntls-allow = ["alpha.example"]\n')
    from_file = Settings.from_options(tls_peer="beta.example").over(Settings.read(config))
    assert from_file.tls_dir is not None and from_file.tls_dir.resolve() == pki.good.resolve()
    assert from_file.tls_allow == ("alpha.example",)
    made = from_file.config("client")  # a sender takes the names that apply to it: tls-allow is the receiver's
    assert made is not None and made.peer == "beta.example" and made.role == "client"
    insecure = Settings.from_options(insecure=True).over(Settings.read(config))
    assert insecure.config("server") is None  # the command line's mode replaces the file's, names and all
    config.write_text('tls-dir = "x"\nlisten = "0.0.0.0:7000"\n')
    with pytest.raises(InputError, match=r"config file .*: unknown key 'listen' \(known: tls-dir, "):
        Settings.read(config)
    config.write_text("insecure = 1\n")
    with pytest.raises(InputError, match="insecure = 1; expected true or false"):
        Settings.read(config)


def test_a_receiver_listens_on_loopback_unless_given_an_address() -> None:
    from devmig.cli.migrate import LOOPBACK

    assert transport.parse_address("7000", default_host=LOOPBACK) == Address(LOCAL, 7000)
    assert transport.parse_address(":7000", default_host=LOOPBACK) == Address(LOCAL, 7000)
    assert transport.parse_address("0.0.0.0:7000", default_host=LOOPBACK) == Address("0.0.0.0", 7000)
    assert transport.parse_address("[::]:7000", default_host=LOOPBACK) == Address("::", 7000)
    with transport.listen(Address("::", 0)) as v6:
        assert v6.family == socket.AF_INET6


# -- the commands -----------------------------------------------------------------------------------------------------

SOURCE = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"  # alpha's running simgpu-2G 1.2.0
TARGET = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def receiver_process() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def start_receiver(started: list[subprocess.Popen[str]], *args: str) -> tuple[str, subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devmig", "receive", TARGET, "--host", "sim:beta", "-j", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    started.append(proc)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first, proc.stderr.read() if proc.stderr else ""
    event = json.loads(first)
    assert event["event"] == "listening"
    return str(event["address"]), proc


def prepared() -> None:
    described = run_devmig("describe", SOURCE, "--host", "sim:alpha")
    assert described.code == 0, described.err
    made = run_devmig("prepare", "-", "--host", "sim:beta", "-u", TARGET, stdin=described.out)
    assert made.code == 0, made.err


def test_the_commands_refuse_without_a_channel_and_name_the_ways_to_set_one_up() -> None:
    for command in (["receive", TARGET, "--listen", "0"], ["migrate", SOURCE, "--to", f"{LOCAL}:9"]):
        result = run_devmig(*command, "--host", "sim:alpha", "--config", os.devnull)
        assert result.code == 2, result.err
        assert result.err.count("\n") == 1 and "no authenticated channel is set up" in result.err
        assert "--tls-dir" in result.err and "--psk-file" in result.err and "--insecure" in result.err
    missing = run_devmig("migrate", SOURCE, "--to", f"{LOCAL}:9", "--config", "/nonexistent/migration.toml")
    assert missing.code == 2 and "cannot read config file /nonexistent/migration.toml" in missing.err


def test_insecure_warns_and_the_default_address_is_loopback(receiver_process: list[subprocess.Popen[str]]) -> None:
    prepared()
    address, proc = start_receiver(receiver_process, "--listen", "0", "--insecure")
    assert address.startswith(f"{LOCAL}:")
    proc.kill()
    _, err = proc.communicate(timeout=30)
    assert err.startswith("devmig: warning: --insecure: the migration channel is plain TCP")
    nobody = run_devmig("migrate", SOURCE, "--to", f"{LOCAL}:9", "--host", "sim:alpha", "--insecure")
    assert nobody.code == 1 and nobody.err.startswith("devmig: warning: --insecure")


def test_the_commands_migrate_over_certificates_and_refuse_a_sender_not_admitted(
    pki: Pki, receiver_process: list[subprocess.Popen[str]]
) -> None:
    prepared()
    address, proc = start_receiver(
        receiver_process, "--listen", "0", "--tls-dir", str(pki.good), "--tls-allow", "alpha.example"
    )
    sent = run_devmig("migrate", SOURCE, "--to", address, "--host", "sim:alpha", "--tls-dir", str(pki.good), "-j")
    out, err = proc.communicate(timeout=60)
    assert sent.code == 0 and proc.returncode == 0, (sent.err, err)
    assert json.loads(sent.out.splitlines()[-1])["state"] == "STOP"
    assert json.loads(out.splitlines()[-1])["state"] == "RUNNING"

    address, proc = start_receiver(
        receiver_process, "--listen", "0", "--tls-dir", str(pki.good), "--tls-allow", "alpha.example"
    )
    intruder = run_devmig("migrate", SOURCE, "--to", address, "--host", "sim:alpha", "--tls-dir", str(pki.intruder))
    _, err = proc.communicate(timeout=60)
    assert (intruder.code, proc.returncode) == (1, 1), (intruder.err, err)
    assert intruder.err.count("\n") == 1 and "refused this sender after the TLS handshake" in intruder.err
    assert err.count("\n") == 1 and "(mallory.example) are not among the admitted senders" in err
    assert "Traceback" not in intruder.err + err


def test_a_port_of_non_ascii_digits_is_bad_input() -> None:
    from devmig.errors import InputError
    from devmig.migrate.transport import parse_address

    with pytest.raises(InputError, match="the port must be a number"):
        parse_address("127.0.0.1:\u00b2")
