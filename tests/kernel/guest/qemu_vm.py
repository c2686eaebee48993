"""A QEMU VM with one mdev, driven over QMP with QEMU's own client (qemu.qmp, asyncio), and one migration between two
of them: what the guest's QEMU tests need, and no more.

Each VM is `qemu-system-x86_64 -machine q35 -accel tcg -m 64 -nodefaults -display none` with the mdev as a vfio-pci
device. Two properties make QEMU migrate it on Debian's 6.12, which is built without IOMMUFD, so the VFIO core cannot
report device dirty pages (DMA logging report fails with EOPNOTSUPP): `x-device-dirty-page-tracking=off` (else
QEMU fails at once with "ram_save_setup failed: Operation not supported") and `enable-migration=on` (with the
default `auto`, having no dirty tracking is a migration blocker). `migration-events=on` makes QEMU report each
device state change (VFIO_MIGRATION), so a test can say which state the device was left in.

The test is the QMP server: QEMU connects to a socket the test listens on, so there is no polling for a socket to
appear, and a QEMU that exits before connecting is seen at once (its stderr is the error).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient, QMPError

QEMU = "qemu-system-x86_64"
#: bounded waits (seconds); under TCG inside TCG a VM starts in about a second and a migration takes a few
START_TIMEOUT = 60.0
COMMAND_TIMEOUT = 30.0
MIGRATION_TIMEOUT = 180.0
STOP_TIMEOUT = 10.0
POLL = 0.1
#: query-migrate states after which nothing more happens
FINAL_STATES = frozenset({"completed", "failed", "cancelled"})


def vfio_device(uuid: str) -> str:
    return (
        f"vfio-pci,sysfsdev=/sys/bus/mdev/devices/{uuid},id=hostdev0,"
        "x-device-dirty-page-tracking=off,enable-migration=on,migration-events=on"
    )


def qemu_argv(name: str, uuid: str, qmp_socket: Path, *, incoming: str | None) -> list[str]:
    return [
        QEMU,
        "-name",
        name,
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "64",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
        f"unix:{qmp_socket}",
        "-device",
        vfio_device(uuid),
        *(["-incoming", incoming] if incoming is not None else []),
    ]


@dataclass
class Vm:
    name: str
    process: asyncio.subprocess.Process
    qmp: QMPClient
    log: Path  # QEMU's stdout and stderr

    async def execute(self, command: str, arguments: dict[str, object] | None = None) -> Any:
        return await asyncio.wait_for(self.qmp.execute(command, arguments), COMMAND_TIMEOUT)

    async def status(self) -> str:
        return str((await self.execute("query-status"))["status"])

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def device_states(self) -> list[str]:
        """The vfio device's migration states QEMU reported (VFIO_MIGRATION events), oldest first."""
        states = []
        for event in self.qmp.events.history:
            data = event.get("data")
            if event.get("event") == "VFIO_MIGRATION" and isinstance(data, dict):
                states.append(str(data["device-state"]))
        return states


class VmFailed(Exception):  # noqa: N818 - what the test reports
    """A VM did not start: the message is QEMU's own stderr."""


async def _stop(vm: Vm) -> None:
    """Quit, then kill if QEMU does not exit within STOP_TIMEOUT: never an orphan process."""
    if vm.process.returncode is None:
        with contextlib.suppress(QMPError, OSError, EOFError, TimeoutError):
            await asyncio.wait_for(vm.qmp.execute("quit"), STOP_TIMEOUT)
    with contextlib.suppress(QMPError, OSError, EOFError, TimeoutError):
        await asyncio.wait_for(vm.qmp.disconnect(), STOP_TIMEOUT)
    try:
        await asyncio.wait_for(vm.process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        vm.process.kill()
        await vm.process.wait()


@contextlib.asynccontextmanager
async def running_vm(name: str, uuid: str, workdir: Path, *, incoming: str | None = None) -> AsyncIterator[Vm]:
    """A QEMU process with the mdev `uuid`, its QMP session open; stopped on leaving, whatever happened."""
    qmp_socket = workdir / f"{name}.qmp"
    log = workdir / f"{name}.log"
    qmp = QMPClient(name)
    await qmp.start_server(str(qmp_socket))
    process: asyncio.subprocess.Process | None = None
    try:
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *qemu_argv(name, uuid, qmp_socket, incoming=incoming),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        vm = Vm(name, process, qmp, log)
        accepted = asyncio.ensure_future(qmp.accept())
        exited = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait({accepted, exited}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            if not accepted.done():
                accepted.cancel()
                with contextlib.suppress(asyncio.CancelledError, QMPError):
                    await accepted
        if not accepted.done() or accepted.cancelled() or accepted.exception() is not None:
            why = f"exited with {process.returncode}" if process.returncode is not None else "did not connect"
            raise VmFailed(f"QEMU {name} {why} within {START_TIMEOUT:.0f} s: {vm.stderr().strip()}")
        try:
            yield vm
        finally:
            await _stop(vm)
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        with contextlib.suppress(QMPError, OSError, EOFError):
            await qmp.disconnect()
        qmp_socket.unlink(missing_ok=True)


@dataclass
class Migration:
    status: str  # the source's final query-migrate status: completed, failed, cancelled (or "timeout")
    seconds: float  # from `migrate` to that status
    error: str  # the source's error-desc ("" when none)
    destination_status: str  # the destination's query-status after the migration ("exited" if QEMU is gone)
    destination_stderr: str
    source_status: str  # the source's query-status after the migration
    source_device_states: list[str] = field(default_factory=list)
    destination_device_states: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "completed" and self.destination_status == "running"


async def _destination_settles(dest: Vm, deadline: float) -> str:
    """The destination's run state once the incoming migration is over: running, or "exited" (a failed load
    makes QEMU exit), or the last state seen at the deadline."""
    state = "inmigrate"
    while time.monotonic() < deadline:
        if dest.process.returncode is not None:
            return "exited"
        try:
            state = await dest.status()
        except (QMPError, OSError, EOFError):
            await asyncio.wait_for(dest.process.wait(), STOP_TIMEOUT)
            return "exited"
        if state not in ("inmigrate", "paused", "finish-migrate", "postmigrate"):
            return state
        await asyncio.sleep(POLL)
    return state


async def migrate(source: Vm, dest: Vm, uri: str) -> Migration:
    """`migrate` on the source to `uri`, then `query-migrate` every POLL seconds until a final state (at most
    MIGRATION_TIMEOUT), and the destination's state after it."""
    started = time.monotonic()
    deadline = started + MIGRATION_TIMEOUT
    await source.execute("migrate", {"uri": uri})
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        info = await source.execute("query-migrate")
        if info.get("status") in FINAL_STATES:
            break
        await asyncio.sleep(POLL)
    seconds = time.monotonic() - started
    status = str(info.get("status", "none")) if info.get("status") in FINAL_STATES else "timeout"
    if status == "timeout":
        with contextlib.suppress(QMPError, TimeoutError):
            await source.execute("migrate_cancel")
    dest_status = await _destination_settles(dest, time.monotonic() + STOP_TIMEOUT * 3)
    source_status = await source.status()
    return Migration(
        status=status,
        seconds=seconds,
        error=str(info.get("error-desc", "")),
        destination_status=dest_status,
        destination_stderr=dest.stderr(),
        source_status=source_status,
        source_device_states=source.device_states(),
        destination_device_states=dest.device_states(),
    )
