"""A host's node labels as Node Feature Discovery's local feature file (docs/fleet.md, "Node Feature Discovery").

nfd-worker reads every file of its `features.d` directory: one `<namespace>/<name>=<value>` a line, `#` comments,
`# +expiry-time=<RFC3339>` for the lines after it; it ignores dot-files and files over 64 KiB. devmig writes one file,
`FEATURE_FILE`, as a whole: a dot-file in the same directory, synced, renamed over the old one, then the directory
synced, so nfd-worker never reads half a file. `feature_text` builds the text (pure); `write_features` writes it
when the labels changed or the expiry is more than half gone, so a caller may call it every few seconds.
"""

from __future__ import annotations

import contextlib
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devmig.errors import DevmigError, InputError
from devmig.fleet.export import DEFAULT_PREFIX, check_prefix
from devmig.fleet.freshness import STALE_AFTER
from devmig.fleet.k8s import host_labels
from devmig.fleet.records import HostRecord
from devmig.state import replace_file

#: the file devmig writes in features.d: one per node, whatever the host's name (a renamed host leaves none behind)
FEATURE_FILE = "devmig"
#: nfd-worker skips a feature file larger than this (source/local: MaxFeatureFileSize)
MAX_BYTES = 65536
#: the expiry when the caller gives none: the fleet's TTL, so a node's labels go when its host would be stale
DEFAULT_EXPIRY = STALE_AFTER
#: the directive nfd-worker reads; it applies to the lines after it
EXPIRY_DIRECTIVE = "# +expiry-time="
#: namespaces Kubernetes keeps for itself (and nfd-master denies)
_RESERVED = re.compile(r"(^|\.)(kubernetes\.io|k8s\.io)$")


def check_namespace(prefix: str) -> str:
    """A label prefix nfd-worker may publish: a DNS subdomain outside kubernetes.io and k8s.io."""
    check_prefix(prefix)
    if _RESERVED.search(prefix):
        raise InputError(
            f"label prefix {prefix!r}: Kubernetes reserves kubernetes.io and k8s.io and their subdomains, and "
            "nfd-master drops such labels from feature files; expected a domain of your own, e.g. devmig.io"
        )
    return prefix


def _utc(moment: datetime) -> datetime:
    """A moment in UTC; a naive one is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _rfc3339(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _printable(text: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", text)


def feature_text(host: HostRecord, *, prefix: str = DEFAULT_PREFIX, expiry: datetime | None, now: datetime) -> str:
    """The feature file of `host`: a header naming devmig and the host, the expiry directive (none when `expiry`
    is None) and one `key=value` line per label, sorted. Refuses an expiry not after `now`, and a text nfd-worker
    would skip (over MAX_BYTES)."""
    labels = host_labels(host, check_namespace(prefix))
    lines = [
        f"# Kubernetes node labels of host {_printable(host.name)}, written by devmig for nfd-worker's local source.",
        "# devmig replaces this file as a whole when the host's devices change: edits are lost (docs/fleet.md).",
    ]
    if expiry is not None:
        if _utc(expiry) <= _utc(now):
            raise InputError(f"feature file expiry {_rfc3339(expiry)}: expected a time after now ({_rfc3339(now)})")
        lines.append(EXPIRY_DIRECTIVE + _rfc3339(expiry))
    lines += [f"{key}={value}" for key, value in labels.items()]
    text = "\n".join(lines) + "\n"
    size = len(text.encode())
    if size > MAX_BYTES:
        raise DevmigError(
            f"feature file of host {host.name}: {len(labels)} labels take {size} bytes, more than the {MAX_BYTES} "
            "nfd-worker reads (it would skip the whole file); use a shorter --prefix or label fewer types"
        )
    return text


def _expiry_of(text: str) -> datetime | None:
    for line in text.splitlines():
        if line.startswith(EXPIRY_DIRECTIVE):
            with contextlib.suppress(ValueError):
                return _utc(datetime.fromisoformat(line.removeprefix(EXPIRY_DIRECTIVE).strip()))
    return None


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(EXPIRY_DIRECTIVE)]


def due(old: str | None, new: str, now: datetime, expiry_seconds: float | None) -> bool:
    """Whether `new` must replace `old`: the lines other than the expiry changed, or the expiry is missing where it
    is wanted (or the reverse), or more than half of `expiry_seconds` is gone."""
    if old is None or _body(old) != _body(new):
        return True
    expires = _expiry_of(old)
    if expiry_seconds is None or expires is None:
        return (expiry_seconds is None) != (expires is None)
    return (expires - _utc(now)).total_seconds() < expiry_seconds / 2


def _check_expiry(seconds: float | None) -> float | None:
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"feature file expiry {seconds!r}: expected seconds > 0, or none")
    return seconds


def write_atomically(path: Path, text: str) -> None:
    """`text` into `path` whole (devmig.state.replace_file: a dot-file beside it, which nfd-worker skips, synced and
    renamed over `path`), readable by all: mkstemp's 0600 would hide the labels from an unprivileged reader."""
    directory = path.parent
    try:
        replace_file(path, text.encode("utf-8"), 0o644)
    except FileNotFoundError:
        raise InputError(f"{directory}: no such directory (nfd-worker's features.d: create it first)") from None
    except PermissionError as exc:
        raise DevmigError(f"{directory}: cannot write a feature file there: {exc.strerror}") from None
    except OSError as exc:
        raise DevmigError(f"{path}: cannot write the feature file: {exc.strerror}") from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DevmigError(f"{path}: cannot read the feature file: {exc.strerror}") from None


def write_file(
    path: Path,
    host: HostRecord,
    *,
    prefix: str = DEFAULT_PREFIX,
    expiry_seconds: float | None = DEFAULT_EXPIRY,
    now: datetime | None = None,
) -> bool:
    """Write `host`'s feature file at `path` when it is `due`; True when it was written."""
    now = _utc(now or datetime.now(UTC))
    seconds = _check_expiry(expiry_seconds)
    expiry = None if seconds is None else now + timedelta(seconds=seconds)
    text = feature_text(host, prefix=prefix, expiry=expiry, now=now)
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such directory (nfd-worker's features.d: create it first)")
    if not due(_read(path), text, now, seconds):
        return False
    write_atomically(path, text)
    return True


def write_features(
    directory: Path,
    host: HostRecord,
    *,
    prefix: str = DEFAULT_PREFIX,
    expiry_seconds: float | None = DEFAULT_EXPIRY,
    now: datetime | None = None,
) -> Path:
    """Keep `directory`/FEATURE_FILE current for `host` (see `write_file`: written only when the labels changed or
    more than half of the expiry is gone); returns its path. Errors name the directory: InputError (exit 2) when it
    does not exist, DevmigError (exit 1) when it cannot be written."""
    path = Path(directory) / FEATURE_FILE
    write_file(path, host, prefix=prefix, expiry_seconds=expiry_seconds, now=now)
    return path
