"""`devmig receive`, `migrate`, `save` and `restore` as processes, between hosts of the simulated lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli.conftest import Result, run_devmig
from tests.paths import ROOT

SOURCE = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"  # alpha's running simgpu-2G 1.2.0
TARGET = "11111111-2222-3333-4444-555555555555"
#: plain TCP, for the tests about something else than the channel (tests/sim/test_tls.py is about the channel)
INSECURE = "--insecure"


@pytest.fixture
def psk(tmp_path: Path) -> tuple[str, str]:
    """--psk-file FILE: a lab's pre-shared key, the same file for both hosts."""
    path = tmp_path / "migration.psk"
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    return "--psk-file", str(path)


def prepared(host: str = "sim:beta") -> str:
    described = run_devmig("describe", SOURCE, "--host", "sim:alpha")
    assert described.code == 0, described.err
    made = run_devmig("prepare", "-", "--host", host, "-u", TARGET, stdin=described.out)
    assert made.code == 0, made.err
    return TARGET


@contextmanager
def receiver(device: str, host: str, *extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`devmig receive -j` on an ephemeral port; yields the address it listens on."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devmig", "receive", device, "--listen", "127.0.0.1:0", "--host", host, "-j", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        event = json.loads(first)
        assert event["event"] == "listening"
        yield event["address"], proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def finish(proc: subprocess.Popen[str]) -> Result:
    out, err = proc.communicate(timeout=60)
    return Result(proc.returncode, out, err)


def test_a_device_migrates_between_lab_hosts_over_tcp(psk: tuple[str, str]) -> None:
    target = prepared()
    with receiver(target, "sim:beta", *psk) as (address, proc):
        sent = run_devmig("migrate", SOURCE, "--to", address, "--host", "sim:alpha", "-j", *psk)
        got = finish(proc)
    assert sent.code == 0, sent.err
    assert got.code == 0, got.err
    events = [json.loads(line) for line in sent.out.splitlines()]
    phases = [e.get("phase") for e in events if e["event"] == "progress"]
    assert phases[:2] == ["hello", "verdict"] and "pre-copy" in phases and "stop-copy" in phases
    result = events[-1]
    assert result["event"] == "result" and result["ok"] and result["state"] == "STOP"
    assert result["peer"]["device"] == target and result["bytes"] > 512 * 1024
    received = json.loads(got.out.splitlines()[-1])
    assert received["ok"] and received["state"] == "RUNNING" and received["bytes"] == result["bytes"]


def test_text_output_is_one_summary_line(psk: tuple[str, str]) -> None:
    target = prepared()
    with receiver(target, "sim:beta", *psk) as (address, proc):
        sent = run_devmig("migrate", SOURCE, "--to", address, "--host", "sim:alpha", *psk)
        finish(proc)
    assert sent.code == 0, sent.err
    (line,) = sent.out.splitlines()
    assert line.startswith(f"migrated {SOURCE} to {address}: ") and "downtime" in line and "device now STOP" in line


def test_an_incompatible_receiver_refuses_up_front_and_both_sides_say_why() -> None:
    made = run_devmig("mdev", "create", "--host", "sim:delta", "0000:00:02.0", "simgpu-2G")  # simgpu 1.1.0 there
    assert made.code == 0, made.err
    target = made.out.strip()
    with receiver(target, "sim:delta", INSECURE) as (address, proc):
        sent = run_devmig("migrate", SOURCE, "--to", address, "--host", "sim:alpha", INSECURE)
        got = finish(proc)
    assert (sent.code, got.code) == (1, 1)
    warning, error = sent.err.split("\n", 1)  # --insecure warns first
    assert warning.startswith("devmig: warning: --insecure")
    assert error.count("\n") == 1 and "refused device" in error and "before any state was sent" in error
    assert "older than the source 1.2.0" in error and "older than the source 1.2.0" in got.err


def test_without_the_check_the_driver_refuses_the_stream_itself() -> None:
    made = run_devmig("mdev", "create", "--host", "sim:delta", "0000:00:02.0", "simgpu-2G")
    target = made.out.strip()
    with receiver(target, "sim:delta", "--no-check", INSECURE) as (address, proc):
        sent = run_devmig("migrate", SOURCE, "--to", address, "--host", "sim:alpha", INSECURE)
        got = finish(proc)
    assert (sent.code, got.code) == (1, 1), (sent.err, got.err)
    assert "the destination failed to load the state" in sent.err and "newer than this device's" in sent.err
    assert "Traceback" not in sent.err + got.err


def test_save_and_restore_through_a_file(tmp_path: Path) -> None:
    target = prepared()
    path = tmp_path / "gpu.devmig"
    saved = run_devmig("save", SOURCE, str(path), "--host", "sim:alpha", "-j")
    assert saved.code == 0, saved.err
    result = json.loads(saved.out.splitlines()[-1])
    assert result["state"] == "RUNNING" and path.stat().st_size > result["bytes"]
    restored = run_devmig("restore", target, str(path), "--host", "sim:beta")
    assert restored.code == 0, restored.err
    assert restored.out.startswith(f"restored {target} from {path}: ") and "device now RUNNING" in restored.out


def test_a_file_that_is_not_a_stream_is_bad_input(tmp_path: Path) -> None:
    target = prepared()
    path = tmp_path / "not-a-stream"
    path.write_text("hello\n" * 10)
    restored = run_devmig("restore", target, str(path), "--host", "sim:beta")
    assert restored.code == 2 and "not a devmig stream" in restored.err and restored.err.count("\n") == 1
    missing = run_devmig("restore", target, str(tmp_path / "nothing"), "--host", "sim:beta")
    assert missing.code == 2 and "cannot read" in missing.err


def test_bad_addresses_and_nobody_listening() -> None:
    bad = run_devmig("migrate", SOURCE, "--to", "somewhere", "--host", "sim:alpha", INSECURE)
    assert bad.code == 2 and "expected HOST:PORT" in bad.err
    port = run_devmig("migrate", SOURCE, "--to", "127.0.0.1:99999", "--host", "sim:alpha", INSECURE)
    assert port.code == 2 and "1 to 65535" in port.err
    refused = run_devmig("migrate", SOURCE, "--to", "127.0.0.1:9", "--host", "sim:alpha", INSECURE)
    assert refused.code == 1 and "is `devmig receive` listening there?" in refused.err


def test_a_device_that_is_not_there_is_named() -> None:
    missing = run_devmig("migrate", "0000:99:00.0", "--to", "127.0.0.1:9", "--host", "sim:alpha", INSECURE)
    warning, error = missing.err.split("\n", 1)
    assert missing.code == 2 and warning.startswith("devmig: warning: --insecure")
    assert "0000:99:00.0: not found" in error and error.count("\n") == 1


def _undecided(device: str, start: str) -> Path:
    """What `devmig migrate` records when it ends undecided (exit 4), as it records it."""
    from devmig.machine import open_host
    from devmig.state import safe_name, state_dir

    record = state_dir() / "migrations" / safe_name(f"{open_host('sim:alpha').key}-{device}.json")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"device": device, "start": start, "to": "127.0.0.1:1"}))
    return record


def test_resolve_settles_an_undecided_source_once_and_only_where_one_is_recorded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from devmig.cli import main
    from devmig.machine import open_host
    from devmig.machine.lab import LabHost, forget_labs
    from devmig.migrate.fsm import RUNNING, STOP

    forget_labs()
    alpha = open_host("sim:alpha")
    assert isinstance(alpha, LabHost)
    gpu = alpha.sim.kernel.vfio_device(SOURCE)
    resolve = ["migrate", SOURCE, "--host", "sim:alpha", "--resolve"]
    # nothing recorded (the wrong host, or settled already): said, nothing changed
    assert main([*resolve, "destination-reset"]) == 0
    assert "nothing to settle" in capsys.readouterr().out and gpu.get_state() is RUNNING
    # recorded, but the device runs: this is not an undecided source (the destination?): refused, kept
    record = _undecided(SOURCE, "RUNNING")
    assert main([*resolve, "destination-runs"]) == 1
    assert "is this the destination?" in capsys.readouterr().err and record.exists()
    # the undecided source: stopped; the destination reset, so it goes back to RUNNING, once
    gpu.set_state(STOP)
    assert main([*resolve, "destination-reset"]) == 0
    assert "back in RUNNING" in capsys.readouterr().out and gpu.get_state() is RUNNING and not record.exists()
    assert main([*resolve, "destination-reset"]) == 0 and "nothing to settle" in capsys.readouterr().out
    # a source paused before its migration stays paused when the destination ran
    _undecided(SOURCE, "STOP")
    gpu.set_state(STOP)
    assert main([*resolve, "destination-runs"]) == 0
    assert "stays stopped" in capsys.readouterr().out and gpu.get_state() is STOP
    gpu.set_state(RUNNING)
    forget_labs()


def test_migrate_needs_to_or_resolve() -> None:
    result = run_devmig("migrate", SOURCE, "--host", "sim:alpha")
    assert result.code == 2 and "--to HOST:PORT" in result.err


class _Channel:
    name = "127.0.0.1:1"

    def close(self) -> None:
        pass


@pytest.mark.parametrize("decided", [True, False])
@pytest.mark.parametrize("signal", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", ["migrate", "receive"])
def test_a_signal_after_the_session_decided_keeps_the_exit_code_of_a_success(
    command: str, signal: str, decided: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signal that comes after the session succeeded, as the channel closes (here: as `transport.send`/`receive`
    returns), undoes nothing: the command still reports the success, exit 0, which is what an undecided source's
    operator reads as "the destination runs". Before the session decided, it is the usual exit 130."""
    from devmig.cli import main
    from devmig.errors import SignalledError
    from devmig.machine.lab import forget_labs
    from devmig.migrate import transport
    from devmig.migrate.session import Destination, Source

    def session(side: Source | Destination, channel: object) -> None:
        side.outcome.ok, side.outcome.state = decided, "STOP" if isinstance(side, Source) else "RUNNING"
        if signal == "SIGINT":
            raise KeyboardInterrupt
        raise SignalledError(f"stopped by {signal}; the changes made so far were undone", signal)

    monkeypatch.setattr(transport, "connect", lambda *args, **kwargs: _Channel())
    monkeypatch.setattr(transport, "accept", lambda *args, **kwargs: _Channel())
    monkeypatch.setattr(transport, "send" if command == "migrate" else "receive", session)
    forget_labs()
    where = ["--to", "127.0.0.1:1"] if command == "migrate" else ["--listen", "0", "--no-check"]
    code = main([command, SOURCE, *where, "--host", "sim:alpha", INSECURE])
    out, err = capsys.readouterr()
    if decided:
        assert code == 0 and out.startswith(f"{command}d {SOURCE}"), err
    else:
        assert code == 130 and not out, out
