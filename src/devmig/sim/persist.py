"""A simulated host that keeps its changes between commands: `devmig prepare --host sim:beta` and then
`devmig release --host sim:beta` see the same host, as they would on a real one.

The host is rebuilt from its lab file and then the changes made through the seam since (sysfs writes, plain files
written or removed, and the vdpa family's `dev add`, `dev del` and `dev set`) are replayed from a log, one JSON line
each, in the state directory. Only what the kernel accepted is logged, so a replay makes the same kernel calls with
the same results. What a VM does to a running device is not kept: a simulated VM lives in its process (nor is a
vDPA device's feature negotiation, which its guest driver does).

Two processes changing the same simulated host at once would each hold a stale copy: a process appends only while
the log is as long as when it replayed it, and otherwise says so (run the command again).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from devmig.errors import DevmigError, InputError
from devmig.host.sysfs import SysfsError
from devmig.sim.fs import SimSysfs
from devmig.sim.uevent import UeventBus
from devmig.sim.vdpa import SimMgmtDevSpec, SimVdpa
from devmig.vdpa.records import VdpaDev

#: Replays one logged change: (path, text) of a log line
Apply = Callable[[str, Any], object]
#: Operations beyond the sysfs seam's that a host's log holds (its vdpa family's), by simulated sysfs
_extensions: WeakKeyDictionary[SimSysfs, dict[str, Apply]] = WeakKeyDictionary()


def extend(fs: SimSysfs, op: str, apply: Apply) -> None:
    """Let `fs`'s log replay `op` lines with `apply`; the changes are recorded by calling `fs.observers`."""
    _extensions.setdefault(fs, {})[op] = apply


def _appliers(fs: SimSysfs) -> dict[str, Apply]:
    return {
        "write": fs.write,
        "write_file": fs.write_file,
        "remove_file": lambda rel, _: fs.remove_file(rel),
        **_extensions.get(fs, {}),
    }


class StaleSimHostError(DevmigError):
    """Another process changed the simulated host since this one opened it."""


class HostLog:
    def __init__(self, path: Path, host: str) -> None:
        self.path, self.host = path, host
        self.offset = 0
        #: the lines applied or written so far
        self.lines = 0
        self._applying = False

    def replay(self, fs: SimSysfs) -> int:
        """Apply the logged changes to a freshly built host; the number applied."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise InputError(f"simulated host {self.host}: cannot read {self.path}: {exc.strerror}") from None
        return self._apply(fs, data)

    def catch_up(self, fs: SimSysfs) -> int:
        """Apply the changes other processes logged since this one last read the log: how a process that only
        watches a host (the agent) sees what `devmig mdev create --host sim:...` did elsewhere. Its simulated kernel
        makes each change again, uevents and all. The number applied; a stat when there is none."""
        # under the host's lock: a change this process makes is written and counted (record) under it too, so a
        # line is never taken for another process's while it is being written here
        with fs.lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return 0
            if size <= self.offset:
                return 0
            try:
                with self.path.open("rb") as handle:
                    handle.seek(self.offset)
                    data = handle.read(size - self.offset)
            except OSError as exc:
                raise InputError(f"simulated host {self.host}: cannot read {self.path}: {exc.strerror}") from None
            return self._apply(fs, data)

    def _apply(self, fs: SimSysfs, data: bytes) -> int:
        count = 0
        appliers = _appliers(fs)
        self._applying = True  # the changes replayed are not logged again
        try:
            for line in data.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break  # a torn last line: that change was never acknowledged (or is being written)
                try:
                    entry = json.loads(line)
                    op, rel, text = entry["op"], entry["path"], entry.get("text")
                    if op not in appliers:
                        raise ValueError(f"unknown operation {op!r}")
                    appliers[op](rel, text)
                except (ValueError, KeyError, TypeError, OSError, SysfsError, DevmigError) as exc:
                    raise InputError(
                        f"simulated host {self.host}: change {self.lines + 1} in {self.path} no longer applies "
                        f"({exc}); the lab file changed since: run `devmig lab --reset` to start the lab "
                        "afresh"
                    ) from None
                count += 1
                self.lines += 1
                self.offset += len(line)
        finally:
            self._applying = False
        return count

    def record(self, op: str, rel: str, text: str | None) -> None:
        if self._applying:
            return
        line = json.dumps({"op": op, "path": rel, "text": text}, separators=(",", ":")).encode() + b"\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise InputError(
                f"simulated host {self.host}: cannot keep its changes in {self.path}: {exc.strerror} (set "
                "--state-dir or $DEVMIG_STATE_DIR to a writable directory)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size != self.offset:
                raise StaleSimHostError(
                    f"simulated host {self.host}: changed by another devmig process since this one opened it "
                    "(the change just made is kept in this process only): run the command again"
                )
            os.write(fd, line)
            self.offset += len(line)
            self.lines += 1
        finally:
            os.close(fd)


def attach(fs: SimSysfs, path: Path, host: str) -> HostLog:
    """Replay `path` onto `fs` and record every later change there."""
    log = HostLog(path, host)
    log.replay(fs)
    fs.observers.append(log.record)
    return log


class PersistentVdpa(SimVdpa):
    """A simulated host's vdpa family whose accepted changes go into the host's log: its state lives in memory
    (there is no tree to replay), so `dev add`, `dev del` and `dev set` are logged as requests ("vdpa" lines whose
    path is the request and text its arguments) and replayed as the same requests."""

    def __init__(
        self, fs: SimSysfs, mgmtdevs: list[SimMgmtDevSpec] | None = None, *, uevents: UeventBus | None = None
    ) -> None:
        super().__init__(mgmtdevs, uevents=uevents)
        self._fs = fs
        extend(fs, "vdpa", self._replay)

    def add(
        self,
        name: str,
        mgmtdev: str,
        *,
        device_features: int | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        max_vqp: int | None = None,
    ) -> VdpaDev:
        options: dict[str, Any] = {"device_features": device_features, "mac": mac, "mtu": mtu, "max_vqp": max_vqp}
        dev = super().add(name, mgmtdev, **options)
        self._record("add", {"name": name, "mgmtdev": mgmtdev, **options})
        return dev

    def delete(self, name: str) -> None:
        super().delete(name)
        self._record("delete", {"name": name})

    def set(self, name: str, *, mac: str | None = None) -> str | None:
        warning = super().set(name, mac=mac)
        self._record("set", {"name": name, "mac": mac})
        return warning

    def _record(self, request: str, args: dict[str, Any]) -> None:
        with self._fs.lock:
            for observer in self._fs.observers:
                observer("vdpa", request, json.dumps(args, separators=(",", ":")))

    def _replay(self, request: str, text: Any) -> None:
        # SimVdpa's own methods: a replay is not logged again (nor observed: attach listens only after it)
        replays: dict[str, Callable[..., object]] = {"add": SimVdpa.add, "delete": SimVdpa.delete, "set": SimVdpa.set}
        if request not in replays:
            raise ValueError(f"unknown vdpa request {request!r}")
        replays[request](self, **json.loads(text))
