"""The golden-file helper (tests/golden.py): byte-for-byte comparison, a readable diff, a missing file is a failure,
one switch regenerates, and CI never regenerates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import golden
from tests.paths import ROOT


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A golden directory of its own, the switch off and no CI, whatever the session was started with."""
    monkeypatch.setattr(golden, "GOLDEN", tmp_path)
    monkeypatch.setattr(golden, "_option", False)
    monkeypatch.setattr(golden, "written", [])
    monkeypatch.delenv(golden.ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    return tmp_path


def test_equal_bytes_pass_and_any_difference_fails_with_a_diff(store: Path) -> None:
    (store / "out.txt").write_bytes(b"name: \n  a 1\n")
    golden.assert_golden("out.txt", "name: \n  a 1\n")
    golden.assert_golden("out.txt", b"name: \n  a 1\n")
    with pytest.raises(AssertionError) as failed:
        golden.assert_golden("out.txt", "name:\n  a 1\n")  # only a trailing space less
    message = str(failed.value)
    assert "--regen-golden" in message
    assert "-'name: \\n'" in message and "+'name:\\n'" in message
    with pytest.raises(AssertionError):
        golden.assert_golden("out.txt", "name: \n  a 1")  # the last newline


def test_a_missing_golden_file_fails_and_is_not_created(store: Path) -> None:
    with pytest.raises(AssertionError, match="missing"):
        golden.assert_golden("sub/new.json", "{}\n")
    assert not (store / "sub").exists()


@pytest.mark.parametrize("how", ["option", "env"])
def test_regenerating_writes_what_the_test_produced(store: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "option":
        golden.configure(True)
    else:
        monkeypatch.setenv(golden.ENV, "1")
    (store / "old.txt").write_bytes(b"old\n")
    golden.assert_golden("old.txt", "new\n")
    golden.assert_golden("sub/new.json", "{}\n")
    golden.assert_golden("same.txt", "x")
    golden.assert_golden("same.txt", "x")
    assert (store / "old.txt").read_bytes() == b"new\n" and (store / "sub/new.json").read_bytes() == b"{}\n"
    assert golden.written == ["old.txt", "sub/new.json", "same.txt"]


def test_ci_refuses_to_regenerate(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(golden.GoldenRefusedError):
        golden.configure(True)
    golden.configure(False)
    monkeypatch.setenv(golden.ENV, "1")
    with pytest.raises(golden.GoldenRefusedError):
        golden.assert_golden("x.txt", "x")
    assert not (store / "x.txt").exists()


def test_ci_refuses_the_switch_before_any_test_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--regen-golden", "-p", "no:cacheprovider", "--co", "-q", __file__],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != golden.ENV}, "CI": "true"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "not regenerated under CI" in proc.stderr


def test_names_stay_below_the_golden_directory(store: Path) -> None:
    for name in ("../escape.txt", "/etc/passwd", "a/../../b"):
        with pytest.raises(ValueError, match="below tests/golden"):
            golden.path_of(name)
