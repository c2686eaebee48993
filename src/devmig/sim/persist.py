"""A simulated host that keeps its changes between commands: `devmig prepare --host sim:beta` and then
`devmig release --host sim:beta` see the same host, as they would on a real one.

The host is rebuilt from its lab file and then the changes made through the seam since (sysfs writes, plain files
written or removed) are replayed from a log, one JSON line each, in the state directory. Only what the kernel
accepted is logged, so a replay makes the same kernel calls with the same results. What a VM does to a running
device is not kept: a simulated VM lives in its process.

Two processes changing the same simulated host at once would each hold a stale copy: a process appends only while
the log is as long as when it replayed it, and otherwise says so (run the command again).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from devmig.errors import DevmigError, InputError
from devmig.host.sysfs import SysfsError
from devmig.sim.fs import SimSysfs


class StaleSimHostError(DevmigError):
    """Another process changed the simulated host since this one opened it."""


class HostLog:
    def __init__(self, path: Path, host: str) -> None:
        self.path, self.host = path, host
        self.offset = 0

    def replay(self, fs: SimSysfs) -> int:
        """Apply the logged changes to a freshly built host; the number applied."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise InputError(f"simulated host {self.host}: cannot read {self.path}: {exc.strerror}") from None
        count = 0
        for number, line in enumerate(data.splitlines(keepends=True), 1):
            if not line.endswith(b"\n"):
                break  # a torn last line: that change was never acknowledged
            try:
                entry = json.loads(line)
                op, rel, text = entry["op"], entry["path"], entry.get("text")
                if op == "write":
                    fs.write(rel, text)
                elif op == "write_file":
                    fs.write_file(rel, text)
                elif op == "remove_file":
                    fs.remove_file(rel)
                else:
                    raise ValueError(f"unknown operation {op!r}")
            except (ValueError, KeyError, TypeError, SysfsError) as exc:
                raise InputError(
                    f"simulated host {self.host}: change {number} in {self.path} no longer applies ({exc}); the lab "
                    "file changed since: run `devmig lab --reset` to start the lab afresh"
                ) from None
            count += 1
            self.offset += len(line)
        return count

    def record(self, op: str, rel: str, text: str | None) -> None:
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
        finally:
            os.close(fd)


def attach(fs: SimSysfs, path: Path, host: str) -> HostLog:
    """Replay `path` onto `fs` and record every later change there."""
    log = HostLog(path, host)
    log.replay(fs)
    fs.observers.append(log.record)
    return log
