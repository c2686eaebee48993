"""Node Feature Discovery's feature file (devmig.fleet.nfd): the text nfd-worker reads, read back as its local source
reads features.d, and the atomic writer that rewrites it only when the labels changed or half the expiry is gone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devmig.errors import DevmigError, InputError
from devmig.fleet.k8s import host_labels
from devmig.fleet.nfd import (
    FEATURE_FILE,
    MAX_BYTES,
    check_namespace,
    due,
    feature_text,
    write_features,
)
from devmig.fleet.records import HostRecord, TypeRecord
from tests.unit.test_export import lab_records

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def nfd_read(directory: Path, now: datetime) -> dict[str, str]:
    """features.d as nfd-worker's local source reads it (source/local/local.go): dot-files and files over 64 KiB
    skipped; `# +expiry-time=` applies to the lines after it, which are dropped once it is past; `key[=value]`."""
    labels: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.stat().st_size > MAX_BYTES:
            continue
        expiry = now
        for raw in path.read_text().split("\n"):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                if line.startswith("# +expiry-time="):
                    expiry = datetime.fromisoformat(line.split("=", 1)[1].strip())
                elif line.startswith("# +"):
                    raise AssertionError(f"unknown directive {line!r}")
                continue
            if expiry < now:
                continue
            key, _, value = line.partition("=")
            labels[key] = value or "true"
    return labels


def alpha() -> HostRecord:
    return lab_records()[0]


def test_the_text_holds_a_header_the_expiry_and_the_sorted_labels() -> None:
    text = feature_text(alpha(), expiry=NOW + timedelta(minutes=10), now=NOW)
    lines = text.splitlines()
    assert lines[0].startswith("# Kubernetes node labels of host alpha, written by devmig")
    assert lines[2] == "# +expiry-time=2026-03-01T12:10:00Z"
    body = lines[3:]
    assert body == sorted(body) and body == [f"{k}={v}" for k, v in host_labels(alpha()).items()]
    assert text.endswith("\n") and len(text.encode()) <= MAX_BYTES
    assert "# +expiry-time" not in feature_text(alpha(), expiry=None, now=NOW)
    with pytest.raises(InputError, match="expected a time after now"):
        feature_text(alpha(), expiry=NOW, now=NOW)


def test_nfd_worker_reads_the_labels_until_they_expire(tmp_path: Path) -> None:
    path = write_features(tmp_path, alpha(), expiry_seconds=600, now=NOW)
    assert path == tmp_path / FEATURE_FILE and oct(path.stat().st_mode & 0o777) == "0o644"
    assert nfd_read(tmp_path, NOW + timedelta(seconds=599)) == host_labels(alpha())
    assert nfd_read(tmp_path, NOW + timedelta(seconds=601)) == {}
    assert [p.name for p in tmp_path.iterdir()] == [FEATURE_FILE]  # no dot-file left behind


def test_written_only_when_the_labels_change_or_half_the_expiry_is_gone(tmp_path: Path) -> None:
    path = write_features(tmp_path, alpha(), expiry_seconds=600, now=NOW)
    first = path.stat().st_ino, path.read_text()
    write_features(tmp_path, alpha(), expiry_seconds=600, now=NOW + timedelta(seconds=299))
    assert (path.stat().st_ino, path.read_text()) == first  # a rename makes a new inode: none happened
    write_features(tmp_path, alpha(), expiry_seconds=600, now=NOW + timedelta(seconds=301))
    assert "# +expiry-time=2026-03-01T12:15:01Z" in path.read_text()
    beta = lab_records()[1]
    write_features(tmp_path, HostRecord("alpha", beta.types[:1]), expiry_seconds=600, now=NOW + timedelta(seconds=302))
    assert nfd_read(tmp_path, NOW + timedelta(seconds=302)) == host_labels(HostRecord("alpha", beta.types[:1]))
    write_features(tmp_path, HostRecord("alpha", beta.types[:1]), expiry_seconds=None, now=NOW)
    assert "+expiry-time" not in path.read_text()  # an expiry dropped is a change


def test_due() -> None:
    text = feature_text(alpha(), expiry=NOW + timedelta(seconds=100), now=NOW)
    again = feature_text(alpha(), expiry=NOW + timedelta(seconds=160), now=NOW + timedelta(seconds=60))
    assert not due(text, again, NOW + timedelta(seconds=40), 100)
    assert due(text, again, NOW + timedelta(seconds=60), 100)
    assert due(None, text, NOW, 100)
    assert due(text, feature_text(alpha(), expiry=None, now=NOW), NOW, None)


def test_directory_problems_name_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "features.d"
    with pytest.raises(InputError, match=re.escape(f"{missing}: no such directory")):
        write_features(missing, alpha(), now=NOW)

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("devmig.state.tempfile.mkstemp", refuse)
    with pytest.raises(DevmigError, match=re.escape(f"{tmp_path}: cannot write a feature file there: Permission")):
        write_features(tmp_path, alpha(), now=NOW)


def test_a_failed_rename_leaves_the_old_file_and_no_dot_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_features(tmp_path, alpha(), expiry_seconds=None, now=NOW)
    before = path.read_text()

    def broken(self: Path, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", broken)
    with pytest.raises(DevmigError, match="cannot write the feature file: No space left"):
        write_features(tmp_path, HostRecord("alpha", lab_records()[1].types[:1]), expiry_seconds=None, now=NOW)
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == [FEATURE_FILE]


def test_too_big_a_file_is_refused_with_its_count_and_size() -> None:
    cap = alpha().types[0].capability
    many = HostRecord("big", tuple(TypeRecord("p", f"t{i:04d}", cap, None) for i in range(400)))
    with pytest.raises(DevmigError, match=r"feature file of host big: \d+ labels take \d+ bytes, more than the 65536"):
        feature_text(many, expiry=None, now=NOW)


def test_kubernetes_namespaces_are_refused() -> None:
    for reserved in ("kubernetes.io", "feature.node.kubernetes.io", "k8s.io", "x.k8s.io"):
        with pytest.raises(InputError, match="Kubernetes reserves"):
            check_namespace(reserved)
    assert check_namespace("gpu.example.com") == "gpu.example.com"
    assert check_namespace("notkubernetes.io") == "notkubernetes.io"
    with pytest.raises(InputError, match="Kubernetes reserves"):
        feature_text(alpha(), prefix="feature.node.kubernetes.io", expiry=None, now=NOW)
