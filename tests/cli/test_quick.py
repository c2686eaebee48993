"""The read-only command lines devmig runs without click (devmig.cli.quick) print what click's commands print: the
same stdout, stderr and exit status, byte for byte, for every command line it takes; every other line goes to
click."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import devmig.cli.quick
from devmig.cli import main
from devmig.cli.discovery import NOTHING_LISTED
from devmig.cli.quick import run_quick
from devmig.testing.sysfs_tree import SysfsTree
from tests.labs import MTTY, MTTY_UUID, build_lab
from tests.paths import ROOT

ESC_NAME = "\x1b[31mred"


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A lab host with a config and a subchannel; a host whose odd entries are warnings (one named with an ANSI
    escape, which click strips when stderr is not a terminal); an empty host."""
    base = tmp_path_factory.mktemp("quick")
    lab = build_lab(SysfsTree(base / "lab"))
    lab.mdevctl_config("mtty", MTTY_UUID, {"mdev_type": "mtty-2", "start": "auto", "attrs": [{"k": {"n": [1, 2.5]}}]})
    lab.subchannel("0.0.0313", driver="vfio_ccw", dev_busid="0.0.0042")
    odd = build_lab(SysfsTree(base / "odd"))
    odd.write(f"{MTTY}/mdev_supported_types/mtty-1/available_instances", "many")
    odd.link(f"sys/bus/mdev/devices/{ESC_NAME}", "sys/devices/nowhere")
    odd.write("sys/bus/pci/devices/0000:00:09.0", "a file, not a link")
    empty = SysfsTree(base / "empty")
    empty.mkdir("sys")
    return {"lab": lab.root, "odd": odd.root, "empty": empty.root}


def _lines(root: str) -> list[list[str]]:
    """The command lines the quick path takes, on one root."""
    at = ["--sysfs-root", root]
    return [
        ["list", *at],
        ["list", "-j", *at],
        ["-j", "list", *at],
        ["list", "-p", *at],
        ["-p", "list", f"--sysfs-root={root}"],
        ["--debug", "-j", "list", *at, "-p"],
        ["list", *at, "--format", "mdevctl"],
        ["list", "--format=mdevctl", *at],
        ["list", "--format", "devmig", "--json", *at],
        ["types", *at],
        ["types", "-j", *at],
        ["--pretty", "types", *at],
        ["types", "--format", "mdevctl", *at],
        ["types", "-P", "mtty", "-j", *at],
        ["types", "--parent", "0000:00:02.0", *at],
        ["types", "--parent=nosuch", "-j", *at],
        ["types", "--format", "mdevctl", "-P", "mtty", *at],
    ]


#: command lines the quick path leaves to click
TO_CLICK = [
    [],
    ["--version"],
    ["list", "-h"],
    ["list", "--help"],
    ["-h", "list"],
    ["list", "-jp"],
    ["list", "-j", "-j"],
    ["list", "-j", "--json"],
    ["list", "--format", "xml"],
    ["list", "--format"],
    ["list", "--sysfs-root="],
    ["list", "--sysfs-root", "-j"],
    ["list", "extra"],
    ["list", "--host", "sim:x"],
    ["list", "--", "-j"],
    ["types", "-Pmtty"],
    ["types", "-P=mtty"],
    ["types", "--json=1"],
    ["lis"],
    ["describe", "x"],
    ["--json", "--help"],
    ["--help", "list"],
    ["", "list"],
]


def _run(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    code = main(list(args))
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def _both(
    args: Sequence[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[Outcome, Outcome, bool]:
    """(quick, click, whether the quick path ran it)."""
    taken: list[bool] = []

    def recording(argv: Sequence[str]) -> int | None:
        try:
            result = run_quick(argv)
        except Exception:
            taken.append(True)  # it ran the command, which failed
            raise
        taken.append(result is not None)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(devmig.cli.quick, "run_quick", recording)
        quick = _run(args, capsys)
    with monkeypatch.context() as patch:
        patch.setattr(devmig.cli.quick, "run_quick", lambda argv: None)
        slow = _run(args, capsys)
    return quick, slow, taken == [True]


@pytest.mark.parametrize("host", ["lab", "odd", "empty"])
def test_same_output_as_the_click_commands(
    trees: dict[str, Path], host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for args in _lines(str(trees[host])):
        quick, slow, taken = _both(args, capsys, monkeypatch)
        assert taken, args
        assert quick == slow, args


def test_warnings_with_an_escape_are_stripped_as_click_strips_them(
    trees: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    quick, slow, _ = _both(["list", "--sysfs-root", str(trees["odd"])], capsys, monkeypatch)
    assert quick == slow
    assert "mdev red: missing mdev_type" in quick.err and "\x1b" not in quick.err


def test_the_root_from_the_environment_and_a_missing_root(
    trees: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVMIG_SYSFS_ROOT", str(trees["lab"]))
    monkeypatch.setenv("DEVMIG_HOST", "")  # empty: unset, for click as for the quick path
    for args in (["list", "-j"], ["types"], ["list", "-j", "--sysfs-root", str(trees["empty"])]):
        quick, slow, taken = _both(args, capsys, monkeypatch)
        assert taken and quick == slow, args
    monkeypatch.setenv("DEVMIG_SYSFS_ROOT", str(trees["lab"] / "missing"))
    for args in (["list", "-j"], ["types", "--format", "mdevctl"]):
        quick, slow, taken = _both(args, capsys, monkeypatch)
        assert taken and quick == slow and quick.code == 2 and "not a directory" in quick.err, args


@pytest.mark.parametrize("args", TO_CLICK, ids=lambda a: " ".join(a) or "(none)")
def test_other_command_lines_go_to_click(args: list[str]) -> None:
    assert run_quick(args) is None


def test_a_simulated_host_or_completion_goes_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMIG_HOST", "sim:x")
    assert run_quick(["list", "-j"]) is None
    monkeypatch.delenv("DEVMIG_HOST")
    monkeypatch.setenv("_DEVMIG_COMPLETE", "bash_complete")
    assert run_quick(["types"]) is None


@pytest.mark.parametrize("columns", [None, "", "0", "-3", "abc", *map(str, range(40, 83)), "200"])
def test_help_is_the_page_click_prints(
    columns: str | None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    for args in (["--help"], ["-h"]):
        quick, slow, taken = _both(args, capsys, monkeypatch)
        assert taken and quick == slow and quick.code == 0, args


def _piped(argv: Sequence[str], root: Path, keep: Callable[[subprocess.Popen[bytes]], None]) -> tuple[int, bytes]:
    # unbuffered, a text stream drops the rest of a partial write instead of meeting EPIPE: buffered, as by default
    env = {k: v for k, v in os.environ.items() if k not in ("DEVMIG_SYSFS_ROOT", "DEVMIG_HOST", "PYTHONUNBUFFERED")}
    with subprocess.Popen(
        [sys.executable, "-m", "devmig", *argv, "--sysfs-root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    ) as proc:
        keep(proc)
        _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_a_reader_that_goes_away_ends_both_paths_alike(tmp_path: Path) -> None:
    """`devmig list -j | head -c 1`: the output no longer fits the pipe, the reader closes it (click's way: exit
    status 1, nothing on stderr)."""
    tree = SysfsTree(tmp_path / "root")
    parent = tree.pci_function("0000:00:02.0", 0x8086, 0x5912, driver="i915")
    tree.mdev_parent("0000:00:02.0", parent)
    tree.mdev_type(parent, "t", available_instances=1)
    for n in range(600):
        tree.mdev(parent, f"00000000-0000-4000-8000-{n:012x}", "t", iommu_group=n)

    def read_one_byte_and_go(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        proc.stdout.read(1)
        proc.stdout.close()

    quick = _piped(["list", "-j"], tree.root, read_one_byte_and_go)
    slow = _piped(["list", "-j", "-j"], tree.root, read_one_byte_and_go)  # a repeated flag: click runs it
    assert quick == slow == (1, b"")


def test_an_empty_host_says_so_on_stderr_and_keeps_stdout(
    trees: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing to list: both paths say so on stderr; -j stays parseable, --format mdevctl stays mdevctl's `[]`."""
    root = str(trees["empty"])
    said = NOTHING_LISTED + "\n"
    expected = {
        ("list", "--sysfs-root", root): ("", said),
        ("list", "-j", "--sysfs-root", root): ('{"devices":[],"warnings":[]}\n', said),
        ("list", "--format", "mdevctl", "--sysfs-root", root): ("[]\n", ""),
    }
    for args, (out, err) in expected.items():
        quick, slow, taken = _both(args, capsys, monkeypatch)
        assert taken and quick == slow == Outcome(0, out, err), args
    assert (trees["empty"] / "sys").is_dir()
    quick, _, _ = _both(["list", "--sysfs-root", str(trees["lab"])], capsys, monkeypatch)
    assert NOTHING_LISTED not in quick.err
