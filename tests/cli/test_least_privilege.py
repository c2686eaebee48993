"""Least privilege: the read-only commands work for any user the files let read; the commands that change a host
say, when the kernel refuses them for want of privilege, which object they were changing and that it needs root
(or CAP_NET_ADMIN for vdpa).

Two ways: through the seam (the kernel's EACCES simulated where the files are opened, and this process playing a
user that is not root), which runs anywhere; and for real, a child process run as `nobody` with setpriv, which
needs root to start it and a Python and a devmig that nobody can read."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from devmig.cli import main
from devmig.testing.sysfs_tree import SysfsTree
from devmig.vdpa.iproute2.run import vdpa_main
from devmig.vdpa.netlink import NetlinkVdpa
from tests.labs import MTTY, MTTY_UUID, build_lab
from tests.paths import ROOT

MTTY_TYPES = f"{MTTY}/mdev_supported_types"


def host(root: Path) -> SysfsTree:
    """The lab host, with the files the writing commands use (driver unbind files, drivers_probe, VFIO nodes)."""
    tree = build_lab(SysfsTree(root))
    for driver in ("mlx5_core", "mlx5_vfio_pci", "vfio-pci", "i915"):
        tree.write(f"sys/bus/pci/drivers/{driver}/unbind", "", newline=False)
        tree.write(f"sys/bus/pci/drivers/{driver}/bind", "", newline=False)
    tree.write("sys/bus/pci/drivers_probe", "", newline=False)
    for node in ("vfio", "9", "7", "3"):
        tree.write(f"dev/vfio/{node}", "", newline=False)
    return tree


# -- through the seam -----------------------------------------------------------------------------------------------


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


@pytest.fixture
def denied(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make opening files whose paths end so fail with EACCES, as the kernel answers a user without the right."""

    def deny(*suffixes: str, writes_only: bool = False) -> None:
        real_open = os.open

        def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            writing = flags & (os.O_WRONLY | os.O_RDWR)
            if str(path).endswith(suffixes) and (writing or not writes_only):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)

    return deny


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("not_root")
def test_reading_commands_need_no_write_to_anything(
    tmp_path: Path, denied: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every write refused, as for a user: list, types, describe, capabilities, plan and check still answer."""
    tree = host(tmp_path / "root")
    denied("", writes_only=True)
    root = ["--sysfs-root", str(tree.root)]
    assert run(capsys, "list", *root)[0] == 0
    assert run(capsys, "types", *root)[0] == 0
    code, described, _ = run(capsys, "describe", MTTY_UUID, *root)
    assert code == 0
    assert run(capsys, "capabilities", *root)[0] == 0
    source = tmp_path / "source.json"
    source.write_text(described)
    assert run(capsys, "plan", str(source), *root)[0] == 0
    assert run(capsys, "check", str(source), str(source))[0] == 2  # a descriptor is no capability: bad input


@pytest.mark.usefixtures("not_root")
def test_an_unreadable_attribute_is_a_warning_that_says_it_needs_root(
    tmp_path: Path, denied: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    tree = host(tmp_path / "root")
    denied(f"{MTTY_TYPES}/mtty-1/name", f"{MTTY_TYPES}/mtty-1/available_instances")
    code, out, err = run(capsys, "types", "--sysfs-root", str(tree.root))
    assert code == 0 and "mtty-2" in out
    assert "devmig: warning: mdev type mtty/mtty-1: cannot read: Permission denied (needs root)" in err.splitlines()


@pytest.mark.usefixtures("not_root")
@pytest.mark.parametrize(
    ("args", "denied_file", "expected"),
    [
        (
            ["mdev", "create", "mtty", "mtty-1", "-u", MTTY_UUID.replace("1001", "2002")],
            "mtty-1/create",
            f"creating mdev {MTTY_UUID.replace('1001', '2002')} of type mtty/mtty-1: {MTTY_TYPES}/mtty-1/create: "
            "cannot open for writing: Permission denied (needs root)",
        ),
        (
            ["mdev", "remove", MTTY_UUID],
            f"{MTTY_UUID}/remove",
            f"removing mdev {MTTY_UUID}: {MTTY}/{MTTY_UUID}/remove: cannot open for writing: Permission denied "
            "(needs root)",
        ),
        (
            ["pci", "bind", "0000:3b:00.3"],
            "mlx5_core/unbind",
            "binding PCI function 0000:3b:00.3 to vfio-pci: sys/bus/pci/drivers/mlx5_core/unbind: cannot open for "
            "writing: Permission denied (needs root)",
        ),
        (
            ["pci", "unbind", "0000:3b:00.2"],
            "mlx5_vfio_pci/unbind",
            "unbinding PCI function 0000:3b:00.2: sys/bus/pci/drivers/mlx5_vfio_pci/unbind: cannot open for writing: "
            "Permission denied (needs root)",
        ),
    ],
    ids=["mdev-create", "mdev-remove", "pci-bind", "pci-unbind"],
)
def test_changing_commands_say_they_need_root(
    tmp_path: Path,
    denied: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    denied_file: str,
    expected: str,
) -> None:
    tree = host(tmp_path / "root")
    denied(denied_file)
    code, _, err = run(capsys, *args, "--sysfs-root", str(tree.root))
    assert (code, err) == (1, f"devmig: error: {expected}\n")


@pytest.mark.usefixtures("not_root")
def test_prepare_says_it_needs_root_and_leaves_nothing(
    tmp_path: Path, denied: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    tree = host(tmp_path / "root")
    root = ["--sysfs-root", str(tree.root)]
    code, described, _ = run(capsys, "describe", MTTY_UUID, *root)
    source = tmp_path / "source.json"
    source.write_text(described)
    denied("/create")
    code, _, err = run(capsys, "prepare", str(source), *root)
    assert code == 1
    assert "creating mdev" in err and "of type mtty/mtty-2" in err and "Permission denied (needs root)" in err
    assert sorted(p.name for p in (tree.root / MTTY).iterdir() if p.is_dir()) == [MTTY_UUID, "mdev_supported_types"]


@pytest.mark.usefixtures("not_root")
def test_vfio_says_it_needs_root(
    tmp_path: Path, denied: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    tree = host(tmp_path / "root")
    denied("dev/vfio/vfio")
    for command in ("info", "probe"):
        code, _, err = run(capsys, "vfio", command, "0000:00:03.0", "--via", "group", "--sysfs-root", str(tree.root))
        assert (code, err) == (
            1,
            "devmig: error: cannot open the VFIO container /dev/vfio/vfio: Permission denied (needs root, or a "
            "user the file belongs to)\n",
        )


def test_root_refused_by_the_kernel_is_not_told_to_become_root(
    tmp_path: Path, denied: Callable[..., None], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root gets EACCES too, from an attribute nobody may write: no hint then."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    tree = host(tmp_path / "root")
    denied(f"{MTTY_UUID}/remove")
    code, _, err = run(capsys, "mdev", "remove", MTTY_UUID, "--sysfs-root", str(tree.root))
    assert code == 1 and "Permission denied" in err and "needs root" not in err


class AdminRefusingSocket:
    """The kernel's vdpa family for a caller without CAP_NET_ADMIN: dumps answer (empty), admin requests EPERM."""

    prid = 0x1B

    def nlm_request(self, msg: Any, msg_type: int, msg_flags: int) -> list[Any]:
        if msg["cmd"] in (3, 4, 7, 8):  # DEV_NEW, DEV_DEL, DEV_VSTATS_GET, DEV_ATTR_SET: GENL_ADMIN_PERM
            raise NetlinkError(errno.EPERM)
        return []

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("argv", "request_text"),
    [
        (["dev", "add", "name", "v0", "mgmtdev", "vdpasim_net"], "dev add v0"),
        (["dev", "del", "v0"], "dev del v0"),
        (["dev", "set", "name", "v0", "mac", "02:00:00:00:00:01"], "dev set v0"),
        (["dev", "vstats", "show", "v0", "qidx", "0"], "dev vstats show v0 qidx 0"),
    ],
)
def test_vdpa_changes_say_they_need_cap_net_admin(tmp_path: Path, argv: list[str], request_text: str) -> None:
    proc = tmp_path / "proc/self"
    proc.mkdir(parents=True)
    (proc / "status").write_text("Name:\tdevmig\nCapEff:\t0000000000000000\n")
    result = vdpa_main(argv, lambda: NetlinkVdpa(sock=AdminRefusingSocket(), root=tmp_path))
    assert result.code == 1
    assert result.err.splitlines()[0] == "kernel answers: Operation not permitted"
    assert result.err.splitlines()[1].startswith(f"devmig: hint: {request_text} needs CAP_NET_ADMIN")
    assert "run it as root" in result.err
    # what needs no privilege answers
    assert vdpa_main(["dev", "show"], lambda: NetlinkVdpa(sock=AdminRefusingSocket(), root=tmp_path)).code == 0
    assert vdpa_main(["mgmtdev", "show"], lambda: NetlinkVdpa(sock=AdminRefusingSocket(), root=tmp_path)).code == 0


# -- for real: a child process as nobody ----------------------------------------------------------------------------

SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
SRC = ROOT / "src"


def _readable_by_anyone(path: Path) -> bool:
    """Every directory from / down to `path` lets others in, and the file lets them read."""
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & (stat.S_IXOTH if part.is_dir() else stat.S_IROTH):
            return False
    return True


def _unprivileged_ready() -> str | None:
    if os.geteuid() != 0:
        return "starting a process as nobody needs root"
    if shutil.which("setpriv") is None:
        return "no setpriv"
    for needed in (SYSTEM_PYTHON, SITE_PACKAGES / "pydantic", SRC / "devmig"):
        if not needed.exists() or not _readable_by_anyone(needed):
            return f"{needed} cannot be read by nobody"
    return None


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """A directory nobody can read (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="devmig-lp-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def as_nobody(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(SYSTEM_PYTHON), "-m", "devmig", *args],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONPATH": f"{SRC}:{SITE_PACKAGES}", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.prerequisite(_unprivileged_ready())
def test_as_nobody_for_real(shared_dir: Path) -> None:
    """The same commands as a real unprivileged user on a tree root owns: the kernel's own EACCES, no seam."""
    tree = host(shared_dir / "root")
    for path in (tree.root / "dev/vfio").iterdir():
        path.chmod(0o600)  # as udev makes them: root's, or a VM user's
    (tree.root / MTTY_TYPES / "mtty-1/name").chmod(0o400)  # an attribute only root may read
    state = shared_dir / "state"
    state.mkdir()
    shutil.chown(state, "nobody")
    for path in [shared_dir, *shared_dir.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o755)
    env = {"DEVMIG_SYSFS_ROOT": str(tree.root), "DEVMIG_STATE_DIR": str(state)}

    listed = as_nobody("list", env=env)
    assert listed.returncode == 0 and MTTY_UUID in listed.stdout, listed.stderr
    types = as_nobody("types", env=env)
    assert types.returncode == 0 and "mtty-2" in types.stdout
    assert "mdev type mtty/mtty-1: cannot read: Permission denied (needs root)" in types.stderr
    described = as_nobody("describe", MTTY_UUID, env=env)
    assert described.returncode == 0, described.stderr
    source = shared_dir / "source.json"
    source.write_text(described.stdout)
    source.chmod(0o644)
    assert as_nobody("capabilities", env=env).returncode == 0
    assert as_nobody("check", str(source), str(source), env=env).returncode == 2  # a descriptor is no capability
    assert as_nobody("plan", str(source), env=env).returncode == 0

    refused = {
        ("mdev", "create", "mtty", "mtty-1"): "of type mtty/mtty-1: " + f"{MTTY_TYPES}/mtty-1/create",
        ("mdev", "remove", MTTY_UUID): f"removing mdev {MTTY_UUID}: ",
        ("pci", "bind", "0000:3b:00.3"): "binding PCI function 0000:3b:00.3 to vfio-pci: ",
        ("pci", "unbind", "0000:3b:00.2"): "unbinding PCI function 0000:3b:00.2: ",
        ("prepare", str(source)): "creating mdev ",
        ("vfio", "info", "0000:00:03.0"): "cannot open the VFIO container /dev/vfio/vfio: ",
    }
    for args, names in refused.items():
        done = as_nobody(*args, env=env)
        assert done.returncode == 1, (args, done.stderr)
        assert names in done.stderr and "needs root" in done.stderr, (args, done.stderr)


@pytest.mark.prerequisite(_unprivileged_ready())
def test_a_store_nobody_may_write_is_still_read(shared_dir: Path) -> None:
    """place and inventory show read a store its owner publishes to; writing to it (a claim) is refused plainly."""
    tree = host(shared_dir / "store-host")
    store = shared_dir / "store" / "fleet.db"
    env = {**os.environ, "DEVMIG_STORE": str(store), "DEVMIG_SYSFS_ROOT": str(tree.root)}
    subprocess.run(
        [sys.executable, "-m", "devmig", "inventory", "publish", "--name", "a"], env=env, check=True, cwd=ROOT
    )
    described = subprocess.run(
        [sys.executable, "-m", "devmig", "describe", MTTY_UUID],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    source = shared_dir / "store-source.json"
    source.write_text(described.stdout)
    for path in (store.parent, store, source):
        path.chmod(0o755 if path.is_dir() else 0o644)
    nobody_env = {"DEVMIG_STORE": str(store)}
    shown = as_nobody("inventory", "show", env=nobody_env)
    assert shown.returncode == 0 and "a " in shown.stdout, shown.stderr
    placed = as_nobody("place", str(source), env=nobody_env)
    assert placed.returncode == 0 and "mtty-2" in placed.stdout, placed.stderr
    claimed = as_nobody("place", "--claim", "60", str(source), env=nobody_env)
    assert claimed.returncode == 1
    assert claimed.stderr == f"devmig: error: store sqlite:///{store}: write: attempt to write a readonly database\n"
