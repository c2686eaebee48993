"""Where devmig keeps what must outlive a process: journals, prepare records, locks, simulated hosts' changes.

`--state-dir DIR`, else `$DEVMIG_STATE_DIR`, else /var/lib/devmig for root (the issue's place for journals, which
survives a crash but not a reinstall) and `$XDG_STATE_HOME/devmig` (~/.local/state/devmig) for anyone else, who
can only change simulated hosts anyway.

Layout (docs/provisioning.md):
    hosts/<host>/journal/<id>.jsonl   a prepare in progress (its writer holds a lock on it)
    hosts/<host>/prepared/<id>.json   a finished prepare: the mapping and the steps that undo it
    hosts/<host>/locks/<parent>.lock  one lock per parent device (capacity is counted per parent)
    sim/<lab>/<host>.jsonl            the changes made to a simulated host, replayed when it is opened again
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from devmig.errors import InputError

ENV_STATE_DIR = "DEVMIG_STATE_DIR"
ROOT_STATE_DIR = "/var/lib/devmig"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def state_dir(override: str | None = None) -> Path:
    """The state directory (not created here)."""
    chosen = override or os.environ.get(ENV_STATE_DIR)
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path(ROOT_STATE_DIR)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "devmig"


def safe_name(text: str) -> str:
    """A file name for `text` (a host, a parent, a lab): readable, and unique even when characters are replaced."""
    cleaned = _SAFE.sub("_", text).strip("._") or "_"
    if cleaned == text:
        return text
    return f"{cleaned[:60]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def ensure_dir(path: Path) -> Path:
    """Make `path` (mode 0700: journals name devices and parameters) or say clearly why it cannot be made."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(
            f"state directory {path}: cannot create: {exc.strerror or exc} (set --state-dir or ${ENV_STATE_DIR} "
            "to a writable directory)"
        ) from None
    return path


def sync_dir(path: Path) -> None:
    """Sync a directory, so a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """`data` at `path` as a whole, with `mode`: written to a dot-file beside it, synced, renamed over `path`, and
    the directory synced, so a crash leaves the old file or the new one, never half of either (and readers that
    skip dot-files never see the temporary one). The OSError as the system gave it; no temporary file is left."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    sync_dir(path.parent)
