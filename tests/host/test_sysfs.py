"""The sysfs seam: reads, writes, links, and refusing every way out of the root."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from devmig.errors import InputError
from devmig.host import PathEscapeError, SysfsError, SysfsRoot
from devmig.testing.sysfs_tree import SysfsTree


def test_reads_strip_one_newline_and_keep_the_rest(tree: SysfsTree) -> None:
    tree.write("sys/a", "two\nlines")
    tree.write("sys/b", "x", newline=False)
    root = SysfsRoot(tree.root)
    assert root.read("sys/a") == "two\nlines"
    assert root.read("sys/b") == "x"
    assert root.read_optional("sys/missing") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"a\x00b\n", "NUL"), (b"\xff\xfe\n", "not UTF-8"), (b"x" * (1024 * 1024 + 10), "larger than")],
)
def test_odd_contents_are_clear_errors(tree: SysfsTree, content: bytes, message: str) -> None:
    tree.write("sys/odd", content)
    with pytest.raises(SysfsError, match=message) as err:
        SysfsRoot(tree.root).read("sys/odd")
    assert str(err.value).startswith("sys/odd: ")


def test_read_int(tree: SysfsTree) -> None:
    tree.write("sys/n", " 42 ")
    tree.write("sys/h", "0x1f")
    tree.write("sys/bad", "4x2")
    root = SysfsRoot(tree.root)
    assert root.read_int("sys/n") == 42
    assert root.read_int("sys/h", 16) == 31
    with pytest.raises(SysfsError, match="expected a decimal integer, found '4x2'"):
        root.read_int("sys/bad")


@pytest.mark.parametrize("name", ["../etc/passwd", "sys/../../x", "/etc/passwd", "sys/a\x00b", "sys/.."])
def test_names_that_leave_the_root_are_refused(tree: SysfsTree, name: str) -> None:
    root = SysfsRoot(tree.root)
    for call in (root.read, root.listdir, root.readlink, lambda n: root.write(n, "1")):
        with pytest.raises(PathEscapeError):
            call(name)


def test_symlinks_out_of_the_root_are_refused(tree: SysfsTree, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s\n")
    (tree.root / "sys/evil").symlink_to(outside)
    (tree.root / "sys/evil_abs").symlink_to("/etc")
    (tree.root / "sys/file_link").symlink_to(outside / "secret")
    root = SysfsRoot(tree.root)
    with pytest.raises(PathEscapeError, match="outside the sysfs root"):
        root.read("sys/evil/secret")
    with pytest.raises(PathEscapeError):
        root.read("sys/file_link")
    with pytest.raises(PathEscapeError):
        root.listdir("sys/evil")
    with pytest.raises(PathEscapeError):
        root.readlink("sys/evil")
    with pytest.raises(PathEscapeError):
        root.write("sys/file_link", "x")
    with pytest.raises(PathEscapeError, match="link to /etc leaves the sysfs root"):
        root.readlink("sys/evil_abs")
    assert (outside / "secret").read_text() == "s\n"


def test_links_resolve_relative_to_the_root(tree: SysfsTree) -> None:
    tree.mkdir("sys/devices/x")
    tree.link("sys/bus/foo/devices/x", "sys/devices/x")
    root = SysfsRoot(tree.root)
    assert root.readlink("sys/bus/foo/devices/x") == "sys/devices/x"
    assert root.link_name("sys/bus/foo/devices/x") == "x"
    assert root.link_name("sys/bus/foo/devices/none") is None


def test_writes_keep_the_errno(tree: SysfsTree) -> None:
    tree.write("sys/attr", "0")
    root = SysfsRoot(tree.root)
    root.write("sys/attr", "1")
    assert root.read("sys/attr") == "1"
    with pytest.raises(SysfsError) as err:
        root.write("sys/nope/attr", "1")
    assert err.value.errno == errno.ENOENT


def test_permission_errors_name_the_file(tree: SysfsTree, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.write("sys/private", "x")
    real_open = os.open

    def deny(path: str, flags: int, *args: int) -> int:
        if path.endswith("sys/private"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", deny)  # tests run as root, which no mode bit stops
    with pytest.raises(SysfsError, match="sys/private: cannot read: Permission denied") as err:
        SysfsRoot(tree.root).read("sys/private")
    assert err.value.errno == errno.EACCES


def test_root_from_environment(tree: SysfsTree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMIG_SYSFS_ROOT", str(tree.root))
    assert SysfsRoot.from_env().root == str(tree.root.resolve())
    assert SysfsRoot.from_env("/").root == "/"
    with pytest.raises(InputError, match="not a directory"):
        SysfsRoot(tree.root / "nope")


def test_plain_files_beside_sysfs_are_written_atomically_and_removed(tree: SysfsTree, tmp_path: Path) -> None:
    root = SysfsRoot(tree.root)
    root.write_file("etc/mdevctl.d/mtty/u1", '{"mdev_type": "mtty-1"}\n')
    assert root.read("etc/mdevctl.d/mtty/u1") == '{"mdev_type": "mtty-1"}'
    assert (tree.root / "etc/mdevctl.d/mtty/u1").stat().st_mode & 0o777 == 0o644
    root.write_file("etc/mdevctl.d/mtty/u1", "{}\n")
    assert sorted(p.name for p in (tree.root / "etc/mdevctl.d/mtty").iterdir()) == ["u1"]  # no temporary left
    assert root.remove_file("etc/mdevctl.d/mtty/u1") is True
    assert root.remove_file("etc/mdevctl.d/mtty/u1") is False
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree.root / "etc/escape").symlink_to(outside)
    with pytest.raises(PathEscapeError):
        root.write_file("etc/escape/x", "no")
    assert list(outside.iterdir()) == []
    with pytest.raises(PathEscapeError):
        root.write_file("../x", "no")
