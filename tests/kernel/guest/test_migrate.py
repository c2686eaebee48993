"""devmig's migration sessions on the real kernel's mtty: a register set through the VFIO region arrives at a new
device, and `devmig check` predicts exactly the pairs of mtty types whose state the kernel accepts."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devmig.compat import check
from devmig.errors import DevmigError, IncompatibleError
from devmig.host.sysfs import SysfsRoot
from devmig.migrate import transport
from devmig.migrate.fsm import RUNNING, STOP
from devmig.migrate.identity import describe_destination, judge_for, source_hello
from devmig.migrate.session import Destination, MigrationError, Outcome, Source, accept_all
from devmig.migrate.uapi import VFIO_PCI_BAR0_REGION_INDEX as BAR0
from devmig.migrate.vfio import VfioDevice, open_device
from devmig.model import DeviceDescriptor, TypeCapability
from tests.kernel.guest.conftest import devmig

pytestmark = pytest.mark.kernel

ROOT = SysfsRoot("/")
UART_SCR = 7  # the 16550 scratch register, in BAR0
TYPES = ("mtty-1", "mtty-2")


def create(mtype: str, cleanup: list[str]) -> str:
    made = devmig("mdev", "create", "mtty", mtype)
    assert made.code == 0, made.err
    cleanup.append(made.out.strip())
    return made.out.strip()


@contextmanager
def opened(uuid: str) -> Iterator[VfioDevice]:
    with open_device(ROOT, uuid) as device:
        yield device


def scratch(device: VfioDevice) -> int:
    return device.region_read(BAR0, UART_SCR, 1)[0]


def test_a_register_set_through_vfio_arrives_at_a_new_device_over_tcp(cleanup: list[str]) -> None:
    source_uuid, dest_uuid = create("mtty-2", cleanup), create("mtty-2", cleanup)
    judge = judge_for(*describe_destination(ROOT, dest_uuid))
    with opened(source_uuid) as source, opened(dest_uuid) as dest:
        source.region_write(BAR0, UART_SCR, b"\xa5")
        assert scratch(source) == 0xA5 and scratch(dest) != 0xA5
        with transport.listen(transport.Address("127.0.0.1", 0)) as listener:
            address = transport.Address(*listener.getsockname()[:2])
            received: list[Outcome] = []
            thread = threading.Thread(
                target=lambda: received.append(
                    transport.receive(Destination(dest, judge=judge), transport.accept(listener, 30, tls=None))
                )
            )
            thread.start()
            sent = transport.send(
                Source(source, identity=source_hello(ROOT, source_uuid)), transport.connect(address, 30, tls=None)
            )
            thread.join()
        assert sent.ok and received[0].ok
        assert sent.bytes == 24 + 2 * 36 and sent.rounds == 1 and sent.precopy_bytes == 24  # mtty's header
        assert (source.get_state(), dest.get_state()) == (STOP, RUNNING)
        assert scratch(dest) == 0xA5
        source.reset()


def test_the_commands_migrate_a_register_between_processes(cleanup: list[str], tmp_path: Path) -> None:
    """Over mutual TLS with a lab's pre-shared key (the commands refuse plain TCP unless told --insecure)."""
    source_uuid, dest_uuid = create("mtty-2", cleanup), create("mtty-2", cleanup)
    key = tmp_path / "migration.psk"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    with opened(source_uuid) as source:
        source.region_write(BAR0, UART_SCR, b"\x3c")
    with opened(source_uuid) as source:
        if scratch(source) != 0x3C:
            pytest.fail("mtty forgot its scratch register between two opens: the processes cannot share it")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "devmig", "receive", dest_uuid, "--listen", "0", "--psk-file", str(key), "-j"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        address = json.loads(receiver.stdout.readline())["address"]
        assert address.startswith("127.0.0.1:")  # loopback unless told otherwise
        sent = devmig("migrate", source_uuid, "--to", address, "--psk-file", str(key), "-j")
        out, err = receiver.communicate(timeout=120)
    finally:
        if receiver.poll() is None:
            receiver.kill()
    assert sent.code == 0, sent.err
    assert receiver.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["state"] == "RUNNING"
    with opened(dest_uuid) as dest:
        assert scratch(dest) == 0x3C


def predicted(source_uuid: str, dest_type: str) -> bool:
    described = devmig("describe", source_uuid)
    assert described.code == 0, described.err
    caps = devmig("capabilities", "--type", dest_type, "-j")
    assert caps.code == 0, caps.err
    verdict = check(DeviceDescriptor.model_validate_json(described.out), TypeCapability.model_validate_json(caps.out))
    return verdict.compatible


@pytest.mark.parametrize(("source_type", "dest_type"), list(itertools.product(TYPES, TYPES)))
def test_check_predicts_what_the_kernel_accepts(source_type: str, dest_type: str, cleanup: list[str]) -> None:
    source_uuid, dest_uuid = create(source_type, cleanup), create(dest_type, cleanup)
    expected = predicted(source_uuid, dest_type)
    with opened(source_uuid) as source, opened(dest_uuid) as dest:
        try:
            # no devmig check here: mtty itself judges the incoming state
            transport.migrate_local(source, dest, judge=accept_all, timeout=30)
            accepted = True
        except MigrationError as exc:
            accepted = False
            assert "the destination failed to load the state" in str(exc)
        assert accepted == expected, (source_type, dest_type)
        assert dest.get_state() is RUNNING
        assert source.get_state() is (STOP if accepted else RUNNING)
        source.reset()
        # with the check, the incompatible pairs are refused before a byte of state moves
        judge = judge_for(*describe_destination(ROOT, dest_uuid))
        if not expected:
            with pytest.raises(IncompatibleError, match="nr_ports"):
                transport.migrate_local(source, dest, identity=source_hello(ROOT, source_uuid), judge=judge)
            assert source.get_state() is RUNNING and dest.get_state() is RUNNING


def test_a_refused_stream_leaves_the_real_source_running_with_its_register(cleanup: list[str]) -> None:
    source_uuid, dest_uuid = create("mtty-2", cleanup), create("mtty-1", cleanup)
    with opened(source_uuid) as source, opened(dest_uuid) as dest:
        source.region_write(BAR0, UART_SCR, b"\x77")
        with pytest.raises(DevmigError):
            transport.migrate_local(source, dest, judge=accept_all, timeout=30)
        assert source.get_state() is RUNNING and scratch(source) == 0x77
        assert dest.get_state() is RUNNING


def test_a_refused_stream_leaves_a_stopped_source_stopped_with_its_register(cleanup: list[str]) -> None:
    """A VM paused before its migration: the failed migration must not start its device (issue 16)."""
    source_uuid, dest_uuid = create("mtty-2", cleanup), create("mtty-1", cleanup)
    with opened(source_uuid) as source, opened(dest_uuid) as dest:
        source.region_write(BAR0, UART_SCR, b"\x5a")
        source.set_state(STOP)
        with pytest.raises(DevmigError):
            transport.migrate_local(source, dest, judge=accept_all, timeout=30)
        assert source.get_state() is STOP
        source.set_state(RUNNING)
        assert scratch(source) == 0x5A
        assert dest.get_state() is RUNNING


def test_a_lost_reply_after_commit_leaves_exactly_the_destination_running(cleanup: list[str]) -> None:
    """The fork issue 16 found, on the real mtty: RESULT is lost after the destination started. The source must not
    resume: it stays stopped and says the outcome is undecided (exit 4)."""
    from tests.sim.test_commit import RECEIVER_SENDS, session

    source_uuid, dest_uuid = create("mtty-2", cleanup), create("mtty-2", cleanup)
    with opened(source_uuid) as source, opened(dest_uuid) as dest:
        source.region_write(BAR0, UART_SCR, b"\x3c")
        run = session(source, dest, None, RECEIVER_SENDS - 1)
        assert run.dest_error is None and dest.get_state() is RUNNING and scratch(dest) == 0x3C
        assert isinstance(run.source_error, MigrationError) and run.source_error.exit_code == 4
        assert source.get_state() is STOP
