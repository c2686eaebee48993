"""The journal: every host change of a prepare records its undo step on disk before it is made.

A journal is a file of JSON lines, `hosts/<host>/journal/<id>.jsonl`: a header, then one line per change, each
synced before the change is made. Its writer holds an exclusive lock on it for as long as it runs, so a journal
nobody holds is one whose process died: `devmig recover` undoes it. A torn last line is a change that was never
made (the line is synced before the change).

When the prepare succeeds, a record of it (`prepared/<id>.json`: the mapping and the same undo steps) replaces the
journal, and `devmig release` undoes it later. Undo steps are idempotent (devmig.host.ops.UNDO), so undoing a
change that never happened, or undoing twice after a crash during an undo, is harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devmig.errors import DevmigError, InputError
from devmig.host.ops import RefusedError, UndoStep
from devmig.host.sysfs import Sysfs
from devmig.state import ensure_dir, replace_file, safe_name, state_dir, sync_dir

JOURNAL_FORMAT = "devmig-journal/1"
RECORD_FORMAT = "devmig-prepared/1"


class UnwindError(RefusedError):
    """Undoing failed part way: the host is not as it was, and the journal (or record) is kept for a retry."""


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON document so that a crash leaves the old one or the new one, never half of either."""
    replace_file(path, (json.dumps(data, indent=2) + "\n").encode(), 0o600)


def undo_all(root: Sysfs, steps: list[UndoStep]) -> list[str]:
    """Carry out `steps` last first; every step is tried, and the ones that failed are returned as messages."""
    failures: list[str] = []
    for step in reversed(steps):
        try:
            step.run(root)
        except DevmigError as exc:
            failures.append(f"{step.describe()}: {exc}")
    return failures


@dataclass
class HostState:
    """One host's part of the state directory."""

    base: Path

    @classmethod
    def of(cls, host_key: str, override: str | None = None) -> HostState:
        return cls(state_dir(override) / "hosts" / safe_name(host_key))

    @property
    def journals(self) -> Path:
        return ensure_dir(self.base / "journal")

    @property
    def prepared(self) -> Path:
        return ensure_dir(self.base / "prepared")

    @property
    def locks(self) -> Path:
        return ensure_dir(self.base / "locks")

    def record_path(self, prepare_id: str) -> Path:
        return self.prepared / f"{safe_name(prepare_id)}.json"

    def records(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.prepared.glob("*.json")):
            out.append(read_record(path))
        return out

    def record(self, prepare_id: str) -> dict[str, Any] | None:
        path = self.record_path(prepare_id)
        return read_record(path) if path.exists() else None

    def claimed(self) -> dict[str, str]:
        """PCI functions that finished prepares hold: address -> prepare id (not free for another prepare)."""
        return {str(r["device"]): str(r["id"]) for r in self.records() if r.get("kind") == "function"}

    def find(self, device: str) -> dict[str, Any] | None:
        """The record of a prepare by its id, its device's UUID or its device's address."""
        wanted = device.lower()
        return next((r for r in self.records() if wanted in (r["id"].lower(), str(r["device"]).lower())), None)


def read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"prepare record {path}: unreadable ({exc}); expected {RECORD_FORMAT} JSON") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or "id" not in data:
        raise InputError(f"prepare record {path}: expected a {RECORD_FORMAT} document")
    return data


class Journal:
    """A prepare's write-ahead log of undo steps, held locked while its process runs."""

    def __init__(self, state: HostState, prepare_id: str, header: dict[str, Any]) -> None:
        self.state, self.id = state, prepare_id
        self.path = state.journals / f"{safe_name(prepare_id)}.jsonl"
        self.steps: list[UndoStep] = []
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise RefusedError(
                f"prepare {prepare_id}: a journal for it exists ({self.path}): another prepare with this id is "
                "running, or one crashed (devmig recover undoes it)"
            ) from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self._append({"format": JOURNAL_FORMAT, "id": prepare_id, "pid": os.getpid(), "time": time.time(), **header})
        sync_dir(self.path.parent)

    def _append(self, entry: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
        os.fsync(self.fd)

    def record(self, what: str, undo: UndoStep) -> None:
        """Before a change: what it is and how to take it back, on disk."""
        self._append({"what": what, "undo": undo.to_json()})
        self.steps.append(undo)

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing releases the lock
            self.fd = -1

    def commit(self, record: dict[str, Any]) -> Path:
        """The prepare succeeded: its record (with the undo steps) replaces the journal."""
        path = self.state.record_path(self.id)
        write_atomic(path, {"format": RECORD_FORMAT, **record, "undo": [s.to_json() for s in self.steps]})
        self.path.unlink()
        self._close()
        return path

    def unwind(self, root: Sysfs) -> None:
        """Undo every recorded step; the journal goes only when all of them worked."""
        failures = undo_all(root, self.steps)
        if failures:
            self._close()
            raise UnwindError(
                f"prepare {self.id}: the host could not be put back ({'; '.join(failures)}); the journal "
                f"{self.path} is kept: run `devmig recover` once the cause is gone"
            )
        self.path.unlink()
        self._close()


@dataclass
class Recovered:
    id: str
    outcome: str  # undone | committed | running | failed; a claim: released | running | failed
    steps: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "steps": self.steps, "errors": self.errors}


def _journal_steps(path: Path) -> tuple[dict[str, Any], list[UndoStep]]:
    header: dict[str, Any] = {}
    steps: list[UndoStep] = []
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True)):
        if not line.endswith(b"\n"):
            break  # torn: that change was never made
        try:
            entry = json.loads(line)
        except ValueError:
            raise InputError(f"journal {path}: line {number + 1} is not JSON") from None
        if number == 0:
            if not isinstance(entry, dict) or entry.get("format") != JOURNAL_FORMAT:
                raise InputError(f"journal {path}: expected a {JOURNAL_FORMAT} header")
            header = entry
        else:
            steps.append(UndoStep.from_json(entry.get("undo") if isinstance(entry, dict) else None))
    return header, steps


def recover(root: Sysfs, state: HostState) -> list[Recovered]:
    """Undo every journal whose process is gone; leave the ones still held by a running prepare."""
    results: list[Recovered] = []
    for path in sorted(state.journals.glob("*.jsonl")):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                results.append(Recovered(path.stem, "running"))
                continue
            try:
                header, steps = _journal_steps(path)
            except InputError as exc:
                results.append(Recovered(path.stem, "failed", 0, [str(exc)]))
                continue
            prepare_id = str(header.get("id", path.stem))
            if state.record_path(prepare_id).exists():
                path.unlink()  # the crash came after the record was written: the prepare had succeeded
                results.append(Recovered(prepare_id, "committed"))
                continue
            failures = undo_all(root, steps)
            if failures:
                results.append(Recovered(prepare_id, "failed", len(steps), failures))
            else:
                path.unlink()
                results.append(Recovered(prepare_id, "undone", len(steps)))
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
    return results
