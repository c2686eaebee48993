"""`devmig migrate | receive | save | restore`: move a device's state with the VFIO migration protocol.

    devmig receive DEVICE --listen [ADDR:]PORT --tls-dir DIR    on the destination, first (ADDR: 127.0.0.1)
    devmig migrate DEVICE --to HOST:PORT --tls-dir DIR          on the source
    devmig save DEVICE FILE / devmig restore DEVICE FILE

The channel between hosts is mutual TLS (certificates, or a pre-shared key for labs; devmig.migrate.tls) unless
--insecure asks for plain TCP, with a warning; with none of them, receive and migrate refuse (exit 2).

Exit codes: 0 moved; 1 refused (incompatible, a driver or the peer failed, the peer did not authenticate; the
source is back in RUNNING); 2 bad input (an address, no channel set up, a file that is not a devmig stream, a
corrupt record); 4 undecided (`devmig migrate`: the channel was lost or a signal came after COMMIT); 130 a signal
(after recovering; a signal once the destination runs changes nothing: exit 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from devmig.cli.options import F, Options, emit_json, output_options, profiles_dir_option, resolve, sysfs_root_option
from devmig.cli.progress import ProgressView, result_json, summary
from devmig.errors import DevmigError, ExitCode, InputError, SignalledError
from devmig.migrate.device import MigrationDevice
from devmig.migrate.session import Budget, Destination, Judge, Outcome, Source, accept_all

if TYPE_CHECKING:
    from pathlib import Path

    from devmig.migrate.tls.channel import Role, TlsConfig


#: where `--listen PORT` listens: this host only; other hosts need an explicit address
LOOPBACK = "127.0.0.1"
#: the warning --insecure prints (on standard error, whatever the output format)
INSECURE_WARNING = (
    "devmig: warning: --insecure: the migration channel is plain TCP, neither authenticated nor encrypted: whoever "
    "can reach it can read the device's state (the guest's data) or write a state into the device"
)


def budget_options(func: F) -> F:
    func = click.option(
        "--downtime-ms",
        type=click.FloatRange(min=0),
        default=Budget.downtime * 1000,
        show_default=True,
        help="Switch to stop-copy once what is left would take no longer than this at the measured rate.",
    )(func)
    return click.option(
        "--max-rounds",
        type=click.IntRange(min=0),
        default=Budget.max_rounds,
        show_default=True,
        help="Pre-copy rounds at most (0: go to stop-copy at once).",
    )(func)


def timeout_option(func: F) -> F:
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=60.0,
        show_default=True,
        help="Seconds of silence from the peer after which it is taken for gone.",
    )(func)


def no_check_option(func: F) -> F:
    return click.option(
        "--no-check",
        is_flag=True,
        help="Accept any sender's state and let the driver judge it (a driver test bench; not for production).",
    )(func)


def channel_options(role: Role) -> Callable[[F], F]:
    """The channel's options: certificates (libvirt's directory or three files), a pre-shared key, or --insecure;
    the same names as keys of the config file."""
    path = click.Path(dir_okay=False)
    common = [
        click.option(
            "--tls-dir",
            type=click.Path(file_okay=False),
            metavar="DIR",
            help="Certificates in libvirt's layout (e.g. /etc/pki/qemu): ca-cert.pem, server-cert.pem and "
            "server-key.pem for the receiver, client-cert.pem and client-key.pem for the sender.",
        ),
        click.option("--tls-ca", type=path, metavar="FILE", help="The CA certificate the peer must be signed by."),
        click.option("--tls-cert", type=path, metavar="FILE", help="This side's certificate."),
        click.option("--tls-key", type=path, metavar="FILE", help="This side's private key (unencrypted)."),
        click.option(
            "--psk-file",
            type=path,
            metavar="FILE",
            help="A pre-shared key for labs (at least 32 bytes, mode 600, the same file on both hosts): mutual TLS "
            "without certificates to manage.",
        ),
        click.option(
            "--insecure", is_flag=True, help="Plain TCP: neither authenticated nor encrypted (prints a warning)."
        ),
        click.option(
            "--config",
            type=path,
            metavar="FILE",
            help="The channel's settings in TOML, keys named as these options [default: /etc/devmig/migration.toml "
            "when it exists].",
        ),
    ]
    names = {
        "client": click.option(
            "--tls-peer",
            metavar="NAME",
            help="The name the receiver's certificate must carry [default: the host in --to].",
        ),
        "server": click.option(
            "--tls-allow",
            metavar="NAME",
            multiple=True,
            help="Admit only senders whose certificate carries NAME (subject CN or DNS name); repeatable.",
        ),
    }

    def decorate(func: F) -> F:
        for option in reversed([*common[:4], names[role], *common[4:]]):
            func = option(func)
        return func

    return decorate


def _channel(role: Role, channel: dict[str, Any]) -> TlsConfig | None:
    """The channel the options and the config file set up; None for plain TCP, after its warning."""
    from devmig.migrate.tls.settings import Settings, settings

    config = channel.pop("config", None)
    resolved = settings(Settings.from_options(**channel), config).config(role)
    if resolved is None:
        click.echo(INSECURE_WARNING, err=True)
    return resolved


@contextmanager
def _device(host: str | None, sysfs_root: str, name: str) -> Iterator[tuple[Any, MigrationDevice]]:
    from devmig.machine import open_host
    from devmig.signals import signals_raise

    opened = open_host(host, sysfs_root)
    with signals_raise(), opened.vfio(name) as device:
        yield opened, device


def _judge(opened: Any, name: str, no_check: bool, profiles_dir: str | None) -> Judge:
    if no_check:
        return accept_all
    from devmig.migrate.identity import describe_destination, judge_for

    return judge_for(*describe_destination(opened.sysfs, name, profiles_dir))


def _source(
    opened: Any, device: MigrationDevice, name: str, profiles_dir: str | None, budget: Budget, view: ProgressView
) -> Source:
    from devmig.migrate.identity import source_hello

    return Source(device, identity=source_hello(opened.sysfs, name, profiles_dir), budget=budget, progress=view)


def _report(opts: Options, verb: str, outcome: Outcome, where: str, **extra: Any) -> int:
    if opts.json:
        emit_json(result_json(outcome, **extra), opts)
    else:
        click.echo(summary(verb, outcome, where))
    return ExitCode.OK


def _report_decided(opts: Options, verb: str, outcome: Outcome, where: str) -> int:
    """The report of a migration that succeeded: the destination runs the state. A signal that came after the
    session decided (the callers let it pass) or comes now undoes nothing, so it must not turn the exit code into
    130: an undecided source's operator reads `devmig receive`'s exit 0 as "the destination runs"."""
    from devmig.signals import uninterrupted

    with uninterrupted():
        return _report(opts, verb, outcome, where)


#: how an undecided migration is settled (`devmig migrate DEVICE --resolve ...`)
RESOLUTIONS = ("destination-runs", "destination-reset")


def _undecided_record(opened: Any, device: str) -> Path:
    """Where an undecided source's start state is kept until `--resolve` (the state directory, per host)."""
    from devmig.state import safe_name, state_dir

    return state_dir() / "migrations" / safe_name(f"{opened.key}-{device}.json")


def _resolve(host: str | None, sysfs_root: str, name: str, resolution: str) -> int:
    """Settle an undecided migration on its source: idempotent, and a no-op (said so) where none is recorded."""
    from devmig.migrate.fsm import RUNNING, STOP
    from devmig.migrate.uapi import MigState

    with _device(host, sysfs_root, name) as (opened, device):
        record = _undecided_record(opened, name)
        if not record.exists():
            click.echo(f"{name}: no undecided migration recorded on this host: nothing to settle")
            return ExitCode.OK
        start = MigState[json.loads(record.read_text())["start"]]
        state = device.get_state()
        if state is RUNNING:
            raise DevmigError(
                f"{name} runs ({state.name}): an undecided source is stopped; nothing was changed (is this the "
                "destination?)"
            )
        if resolution == "destination-reset":
            device.set_state(start)
            said = f"{name} is back in {start.name}: the destination never ran the state"
        else:
            if state is not STOP:
                device.set_state(STOP)
            said = f"{name} stays stopped: the state runs at the destination"
        record.unlink()
    click.echo(f"settled: {said}")
    return ExitCode.OK


@click.command(name="migrate")
@click.argument("device")
@click.option("--to", "to", metavar="HOST:PORT", help="Where `devmig receive` listens.")
@click.option(
    "--resolve",
    "resolution",
    type=click.Choice(RESOLUTIONS),
    help="Settle a migration that ended undecided (exit 4): destination-runs (its devmig receive ended with exit "
    "0) keeps DEVICE stopped, destination-reset puts it back as it was. Idempotent; a no-op where none is recorded.",
)
@channel_options("client")
@budget_options
@timeout_option
@sysfs_root_option
@profiles_dir_option
@output_options
def migrate(
    device: str,
    to: str | None,
    resolution: str | None,
    max_rounds: int,
    downtime_ms: float,
    timeout: float,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    json_output: bool,
    pretty: bool,
    **channel: Any,
) -> int:
    """Send DEVICE's state to `devmig receive` on another host: pre-copy while it runs, then stop-copy.

    Both hosts authenticate each other by mutual TLS before anything is sent (--tls-dir, --tls-ca/--tls-cert/
    --tls-key, or --psk-file; the receiver's certificate must name the host in --to, or --tls-peer). The receiver
    checks DEVICE's descriptor before any state is sent and refuses an incompatible device with every reason. On any
    failure DEVICE is put back to RUNNING with its state intact; on success it is left in STOP.
    """
    from devmig.migrate import transport
    from devmig.migrate.session import UndecidedError

    if (to is None) == (resolution is None):
        raise InputError("devmig migrate: give --to HOST:PORT (migrate) or --resolve (settle an undecided one)")
    if resolution is not None:
        return _resolve(host, sysfs_root, device, resolution)
    assert to is not None
    opts = resolve(json_output, pretty)
    address = transport.parse_address(to)
    tls = _channel("client", channel)
    source: Source | None = None
    try:
        with _device(host, sysfs_root, device) as (opened, dev), ProgressView(opts, f"migrate {device}") as view:
            source = _source(opened, dev, device, profiles_dir, Budget(max_rounds, downtime_ms / 1000), view)
            try:
                transport.send(source, transport.connect(address, timeout, tls=tls))
            except UndecidedError as exc:
                record = _undecided_record(opened, device)
                record.parent.mkdir(parents=True, exist_ok=True)
                record.write_text(json.dumps({"device": device, "start": exc.start.name, "to": str(address)}))
                raise
    except (KeyboardInterrupt, SignalledError):
        if source is None or not source.outcome.ok:
            raise
        # decided before the signal (it came as the channel closed): the destination runs, this is a success
    return _report_decided(opts, "migrated", source.outcome, f"to {address}")


@click.command(name="receive")
@click.argument("device")
@click.option(
    "--listen",
    "listen",
    required=True,
    metavar="[ADDR:]PORT",
    help="Where to wait: PORT alone is 127.0.0.1:PORT; other hosts need an address (0.0.0.0:PORT, [::]:PORT).",
)
@channel_options("server")
@no_check_option
@timeout_option
@sysfs_root_option
@profiles_dir_option
@output_options
def receive(
    device: str,
    listen: str,
    no_check: bool,
    timeout: float,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    json_output: bool,
    pretty: bool,
    **channel: Any,
) -> int:
    """Wait for one `devmig migrate` and load its state into DEVICE (a new device, e.g. made by devmig prepare).

    The sender must authenticate by mutual TLS (--tls-dir, --tls-ca/--tls-cert/--tls-key, or --psk-file; only the
    names in --tls-allow when given) before a byte of its stream is read; a sender that does not is refused and
    DEVICE is not touched. The sender's descriptor is then checked against DEVICE; an incompatible sender is refused
    before it sends any state. On a failure DEVICE is reset. Prints "listening on ADDR:PORT" (or a JSON event) once
    ready.
    """
    from devmig.migrate import transport

    opts = resolve(json_output, pretty)
    address = transport.parse_address(listen, default_host=LOOPBACK)
    tls = _channel("server", channel)
    destination: Destination | None = None
    try:
        with _device(host, sysfs_root, device) as (opened, dev):
            judge = _judge(opened, device, no_check, profiles_dir)
            with transport.listen(address) as listener:
                bound = transport.Address(*listener.getsockname()[:2])
                if opts.json:
                    emit_json({"event": "listening", "address": str(bound)}, opts)
                else:
                    click.echo(f"listening on {bound}", err=True)
                connection = transport.accept(listener, idle=timeout, tls=tls)
            with ProgressView(opts, f"receive {device}") as view:
                destination = Destination(dev, judge=judge, progress=view)
                transport.receive(destination, connection)
    except (KeyboardInterrupt, SignalledError):
        if destination is None or not destination.outcome.ok:
            raise
        # the device ran the state before the signal (it came as the channel closed): a success, exit 0
    return _report_decided(opts, "received", destination.outcome, f"from {connection.name}")


@click.command(name="save")
@click.argument("device")
@click.argument("file", type=click.Path(dir_okay=False))
@budget_options
@sysfs_root_option
@profiles_dir_option
@output_options
def save(
    device: str,
    file: str,
    max_rounds: int,
    downtime_ms: float,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Write DEVICE's state to FILE (a devmig stream), then put DEVICE back to RUNNING: a checkpoint.

    FILE appears only once whole; a failed save leaves no file behind.
    """
    from devmig.migrate import transport

    opts = resolve(json_output, pretty)
    with _device(host, sysfs_root, device) as (opened, dev), ProgressView(opts, f"save {device}") as view:
        source = _source(opened, dev, device, profiles_dir, Budget(max_rounds, downtime_ms / 1000), view)
        outcome = transport.save(source, file)
    return _report(opts, "saved", outcome, f"to {file}")


@click.command(name="restore")
@click.argument("device")
@click.argument("file", type=click.Path(dir_okay=False))
@no_check_option
@sysfs_root_option
@profiles_dir_option
@output_options
def restore(
    device: str,
    file: str,
    no_check: bool,
    sysfs_root: str,
    host: str | None,
    profiles_dir: str | None,
    json_output: bool,
    pretty: bool,
) -> int:
    """Load the state in FILE (written by devmig save) into DEVICE, after checking FILE's descriptor against it."""
    from devmig.migrate import transport

    opts = resolve(json_output, pretty)
    with _device(host, sysfs_root, device) as (opened, dev):
        judge = _judge(opened, device, no_check, profiles_dir)
        with ProgressView(opts, f"restore {device}") as view:
            outcome = transport.restore(Destination(dev, judge=judge, progress=view), file)
    return _report(opts, "restored", outcome, f"from {file}")
