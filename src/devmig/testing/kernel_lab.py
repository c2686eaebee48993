"""Kernel lab: run one command inside a real Linux 6.12 kernel booted under QEMU, with mtty, vdpa_sim and vfio-pci.

For tests that need a real kernel's verdict (VFIO migration on mtty, vDPA on vdpa_sim, vfio-pci on QEMU's `edu`
device behind an emulated intel-iommu) on a host that cannot or must not load those modules itself.

    assets = prepare()                                   # as root, once; later calls return in milliseconds
    run = run_in_guest(assets, [".venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider", "tests/kernel/guest"],
                       cwd=str(checkout), results_dir=tmp_path)
    assert run.returncode == 0, run.console

`prepare()` installs (apt-get, only what is missing) qemu-system-x86, busybox-static, xz-utils, gcc/make and
Debian's 6.12 headers and source, resolved at run time with apt-cache; downloads the matching kernel image package
and unpacks it into the cache (not installed: see `_fetch_image`), builds mtty.ko and vringh/vdpa_sim*.ko out of
tree, and packs an initramfs (busybox-static, the modules, a generated /init). Everything goes to the cache
(`default_cache_dir()`: $DEVMIG_KERNEL_LAB_CACHE or ~/.cache/devmig/kernel-lab), under `<cache>/<kernel_version>/`.
It raises `LabUnavailable` with a one-line reason when it cannot (not root, no apt, package missing, build failed).

What the command sees (`run_in_guest`):
- It runs as root in `chroot /host`, where /host is the HOST's root file system shared over virtio-9p READ-ONLY:
  the host's Python, the project's checkout and venv, Debian's tools (mdevctl, iproute2 `vdpa`), unchanged.
  The kernel is Debian's 6.12 with these modules loaded (in dependency order): vfio, vfio_iommu_type1, irqbypass,
  vfio_pci_core, vfio_pci, mdev, vhost_iotlb, vdpa, vringh, vdpa_sim, vdpa_sim_net, vdpa_sim_blk, mtty (and the
  9p ones). Nothing else: no modprobe (the host's /lib/modules has no 6.12 tree), no vhost_vdpa/virtio_vdpa (a vDPA
  device stays unbound), no network but `lo`. QEMU's `edu` PCI device (1234:11e8) sits behind intel-iommu.
- Writable: tmpfs on /tmp, /run, /var/tmp, /dev/shm, /root/.cache and /var/lib/devmig (each only if it exists on
  the host), /etc/mdevctl.d (if it exists on the host; refilled with the empty scripts.d/callouts and
  scripts.d/notifiers that Debian's mdevctl insists on); /proc, /sys, /dev are the guest's own. Everything else is
  read-only (EROFS), tmpfs contents vanish with the guest.
- `results_dir` (host) is the guest's /tmp/devmig-results (writable, shared both ways): put files there to get them
  back. The harness keeps its own files in `results_dir/.kernel-lab/` (run.sh: the command; exit-code).
- Environment: `env -i` plus PATH, HOME=/root, LANG=C.UTF-8, PYTHONDONTWRITEBYTECODE=1 (no __pycache__ writes on
  the read-only root), HYPOTHESIS_STORAGE_DIRECTORY=/tmp/hypothesis, XDG_CACHE_HOME=/tmp/xdg-cache, then `env`.
  pytest must be given `-p no:cacheprovider` (it would try to write .pytest_cache in the read-only checkout).
- stdin is /dev/null; stdout/stderr go to the serial console, returned in `GuestRun.console` (`GuestRun.output`:
  only what the command printed). The guest's exit code also lands in `results_dir/.kernel-lab/exit-code`.
- The host root is mounted with cache=loose (fast, read-only anyway): host files changed while the guest runs may
  look stale in it. results_dir is not cached. One results_dir per concurrent run; what the guest writes there is
  owned by root.
- TCG (no KVM; `-cpu max`, qboot when Debian ships it): boot to power-off with `true` takes ~3.5 s; CPU-bound
  Python is ~15x slower than on the host (`import devmig.cli` ~1.5 s, tests/unit 89 s instead of 5.5 s), so keep
  guest suites small, and mind hypothesis' 200 ms deadline there (settings(deadline=None)).

Command line: `python -m devmig.testing.kernel_lab prepare` / `... run [--env K=V] [--cwd D] -- CMD...` (see
scripts/kernel-lab).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GuestRun",
    "LabAssets",
    "LabUnavailable",
    "default_cache_dir",
    "main",
    "prepare",
    "run_in_guest",
]

KERNEL_SERIES = "6.12"
FLAVOUR = "amd64"
SOURCE_PACKAGE = f"linux-source-{KERNEL_SERIES}"

# In-tree modules the guest loads (their `depends=` closure is added); then the ones built out of tree.
IN_TREE_MODULES = (
    "vfio",
    "vfio_iommu_type1",
    "irqbypass",
    "vfio_pci_core",
    "vfio_pci",
    "mdev",
    "netfs",
    "9pnet",
    "9p",
    "9pnet_virtio",
    "vdpa",
    "vhost_iotlb",
)
BUILT_MODULES = ("vringh", "vdpa_sim", "vdpa_sim_net", "vdpa_sim_blk", "mtty")
# Members of the source tarball the built modules need (tar wildcards, any top-level directory).
SOURCE_MEMBERS = ("*/samples/vfio-mdev/mtty.c", "*/drivers/vdpa/vdpa_sim/*", "*/drivers/vhost/vringh.c")

GUEST_RESULTS = "/tmp/devmig-results"  # results_dir as the command sees it (inside the chroot)
LAB_DIR = ".kernel-lab"  # the harness's files inside results_dir
EXIT_MARKER = "DEVMIG-GUEST-EXIT="
BEGIN_MARKER = "DEVMIG-GUEST-BEGIN"
SETUP_FAILED_MARKER = "DEVMIG-GUEST-SETUP-FAILED:"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GUEST_BASE_ENV: Mapping[str, str] = {
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "HYPOTHESIS_STORAGE_DIRECTORY": "/tmp/hypothesis",
    "XDG_CACHE_HOME": "/tmp/xdg-cache",
}
# Bump when the build recipe changes in a way the stamp cannot see (the init script is hashed separately).
_RECIPE = 1
_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
_APT_OPTS = ("-o", "DPkg::Lock::Timeout=300", "-o", "APT::Sandbox::User=root")


class LabUnavailable(Exception):  # noqa: N818 - the name callers catch
    """The kernel lab cannot be prepared or run here; the message says why in one line."""


@dataclass(frozen=True)
class LabAssets:
    kernel_version: str  # Debian's ABI name, e.g. "6.12.117+deb12-amd64"
    vmlinuz: Path
    initramfs: Path
    cache_dir: Path  # <cache>/<kernel_version>


@dataclass(frozen=True)
class GuestRun:
    returncode: int | None  # None: the guest never reported one (timeout, panic, setup failure)
    console: str  # the whole serial console, "\n" line ends
    timed_out: bool
    seconds: float

    @property
    def output(self) -> str:
        """What the command printed: the console between the harness's begin and exit markers."""
        return command_output(self.console)


@dataclass(frozen=True)
class KernelPackages:
    abi: str  # "6.12.117+deb12"
    version: str  # Debian package version shared by the three packages, e.g. "6.12.117-1~deb12u1"

    @property
    def kernel_version(self) -> str:
        return f"{self.abi}-{FLAVOUR}"

    @property
    def image(self) -> str:
        return f"linux-image-{self.abi}-{FLAVOUR}-unsigned"

    @property
    def headers(self) -> str:
        return f"linux-headers-{self.abi}-{FLAVOUR}"

    @property
    def source(self) -> str:
        return SOURCE_PACKAGE


def _log_stderr(message: str) -> None:
    print(f"kernel-lab: {message}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    env = os.environ.get("DEVMIG_KERNEL_LAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "devmig" / "kernel-lab"


# -- pure helpers (unit tested) --------------------------------------------------------------------------------------

_IMAGE_RE = re.compile(rf"^linux-image-({re.escape(KERNEL_SERIES)}\.\d+\+deb12[\w.~+]*)-{FLAVOUR}-unsigned$")
_HEADERS_RE = re.compile(rf"^linux-headers-({re.escape(KERNEL_SERIES)}\.\d+\+deb12[\w.~+]*)-{FLAVOUR}$")


def parse_apt_search(text: str) -> list[str]:
    """Package names from `apt-cache search --names-only` output ("name - description" lines)."""
    names = []
    for line in text.splitlines():
        name, sep, _ = line.partition(" - ")
        if sep and name.strip():
            names.append(name.strip())
    return names


def parse_apt_policy(text: str) -> dict[str, tuple[str | None, str | None]]:
    """{package: (installed, candidate)} from `apt-cache policy PKG...` output; "(none)" becomes None."""
    result: dict[str, tuple[str | None, str | None]] = {}
    name: str | None = None
    installed: str | None = None
    candidate: str | None = None

    def flush() -> None:
        if name is not None:
            result[name] = (installed, candidate)

    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            flush()
            name = line.rstrip()[:-1]
            if name.endswith(":amd64"):
                name = name[: -len(":amd64")]
            installed = candidate = None
            continue
        key, sep, value = line.strip().partition(":")
        if not sep or name is None:
            continue
        value = value.strip()
        if key == "Installed":
            installed = None if value == "(none)" else value
        elif key == "Candidate":
            candidate = None if value == "(none)" else value
    flush()
    return result


def _abi_sort_key(abi: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", abi))


def kernel_abis(names: Sequence[str]) -> list[str]:
    """ABIs that have both an unsigned image and a headers package among `names`, newest first."""
    images = {m.group(1) for n in names if (m := _IMAGE_RE.match(n))}
    headers = {m.group(1) for n in names if (m := _HEADERS_RE.match(n))}
    return sorted(images & headers, key=_abi_sort_key, reverse=True)


def choose_kernel(names: Sequence[str], policy: Mapping[str, tuple[str | None, str | None]]) -> KernelPackages:
    """The 6.12 kernel whose image, headers and linux-source-6.12 apt would all install at the same version.

    linux-source-6.12 has one candidate version; the modules are built from that source against those headers,
    and loaded into that image, so the three must be the same build.
    """
    source_candidate = policy.get(SOURCE_PACKAGE, (None, None))[1]
    if source_candidate is None:
        raise LabUnavailable(f"apt offers no {SOURCE_PACKAGE} (is bookworm-security in the apt sources?)")
    abis = kernel_abis(names)
    if not abis:
        raise LabUnavailable(
            f"apt offers no linux-image-{KERNEL_SERIES}.N+deb12-{FLAVOUR}-unsigned with matching linux-headers"
        )
    for abi in abis:
        kp = KernelPackages(abi, source_candidate)
        if policy.get(kp.image, (None, None))[1] == source_candidate == policy.get(kp.headers, (None, None))[1]:
            return kp
    offered = ", ".join(f"{abi}={policy.get(KernelPackages(abi, '').image, (None, None))[1]}" for abi in abis)
    raise LabUnavailable(f"no 6.12 image/headers at {SOURCE_PACKAGE}'s version {source_candidate} (offered: {offered})")


def parse_dpkg_installed(text: str) -> set[str]:
    """Installed packages from `dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n'` output."""
    installed = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("ii"):
            installed.add(parts[0].split(":")[0])
    return installed


def module_name(name: str) -> str:
    """The kernel's name for a module: file stem or `depends=` entry, with "-" as "_"."""
    for suffix in (".xz", ".zst", ".gz", ".ko"):
        name = name.removesuffix(suffix)
    return name.replace("-", "_")


def parse_depends(value: str) -> list[str]:
    return [module_name(d) for d in value.split(",") if d.strip()]


def elf_modinfo(data: bytes) -> dict[str, list[str]]:
    """The key=value strings of a (decompressed, ELF64 little-endian) .ko's .modinfo section."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, bytes]:
        base = shoff + index * shentsize
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, base)
        return name, data[offset : offset + size]

    _, strtab = section(shstrndx)
    for index in range(shnum):
        name_offset, body = section(index)
        if strtab[name_offset : strtab.index(b"\0", name_offset)] == b".modinfo":
            info: dict[str, list[str]] = {}
            for item in body.split(b"\0"):
                key, sep, value = item.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
            return info
    raise ValueError("no .modinfo section")


def order_modules(roots: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Every module of `roots` and their `depends` closure, each after what it depends on (roots' order kept)."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise LabUnavailable(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in depends:
            needed = f" (needed by {chain[-1]})" if chain else ""
            raise LabUnavailable(f"module {name}{needed} not found")
        state[name] = "visiting"
        for dep in depends[name]:
            visit(dep, (*chain, name))
        state[name] = "done"
        order.append(name)

    for root in roots:
        visit(root, ())
    return order


def _sh(value: str) -> str:
    return shlex.quote(value)


def render_init(modules: Sequence[str]) -> str:
    """The guest's /init (busybox sh): load `modules`, mount the host root, run results_dir's run.sh, power off."""
    host_results = f"/host{GUEST_RESULTS}"
    lab = f"{host_results}/{LAB_DIR}"
    guest_env = " ".join(_sh(f"{k}={v}") for k, v in {"PATH": GUEST_PATH, **GUEST_BASE_ENV}.items())
    module_list = " ".join(_sh(m) for m in modules)
    return f"""#!/bin/busybox sh
# devmig kernel-lab guest init, generated by devmig.testing.kernel_lab (do not edit).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

die() {{
    echo "{SETUP_FAILED_MARKER} $*"
    sync
    poweroff -f
    sleep 60
}}

for m in {module_list}; do
    insmod "/lib/modules/$m.ko" || die "insmod $m"
done
ip link set lo up 2>/dev/null

mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose host /host || die "mount the host root (9p tag host)"
mkdir -p /results
mount -t 9p -o trans=virtio,version=9p2000.L results /results || die "mount the results dir (9p tag results)"
[ -r /results/{LAB_DIR}/run.sh ] || die "no {GUEST_RESULTS}/{LAB_DIR}/run.sh"
# Paths the command needs that the tmpfs mounts below would hide (a checkout under /tmp): bind them aside now,
# move them back on top of the tmpfs afterwards.
i=0
if [ -r /results/{LAB_DIR}/keep ]; then
    while read -r p; do
        case "$p" in
            /tmp/*|/run/*|/var/tmp/*|/root/.cache/*|/var/lib/devmig/*|/etc/mdevctl.d/*) ;;
            *) continue ;;
        esac
        [ -d "/host$p" ] || continue
        i=$((i+1))
        mkdir -p "/keep/$i"
        mount -o bind "/host$p" "/keep/$i" || die "keep $p visible"
        echo "$p" > "/keep/$i.path"
    done < /results/{LAB_DIR}/keep
fi
mount -t proc proc /host/proc || die "mount /host/proc"
mount -t sysfs sysfs /host/sys || die "mount /host/sys"
mount -t devtmpfs devtmpfs /host/dev || die "mount /host/dev"
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /host/dev/pts || die "mount /host/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm || die "mount /host/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || die "tmpfs on /host/tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run || die "tmpfs on /host/run"
mount -t tmpfs -o mode=1777 tmpfs /host/var/tmp || die "tmpfs on /host/var/tmp"
for d in /host/root/.cache /host/var/lib/devmig; do
    if [ -d "$d" ]; then mount -t tmpfs -o mode=755 tmpfs "$d" || die "tmpfs on $d"; fi
done
if [ -d /host/etc/mdevctl.d ]; then
    mount -t tmpfs -o mode=755 tmpfs /host/etc/mdevctl.d || die "tmpfs on /host/etc/mdevctl.d"
    mkdir -p /host/etc/mdevctl.d/scripts.d/callouts /host/etc/mdevctl.d/scripts.d/notifiers
fi
for f in /keep/*.path; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    mkdir -p "/host$p"
    mount -o move "${{f%.path}}" "/host$p" || die "put $p back over the tmpfs"
done
mkdir -p {host_results}
mount -o move /results {host_results} || die "move the results dir to {GUEST_RESULTS}"

echo "{BEGIN_MARKER}"
chroot /host /usr/bin/env -i {guest_env} /bin/sh {GUEST_RESULTS}/{LAB_DIR}/run.sh </dev/null
rc=$?
echo ""
echo "{EXIT_MARKER}$rc"
echo "$rc" > {lab}/exit-code
sync
umount {host_results}
poweroff -f
sleep 60
"""


_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def render_command_script(command: Sequence[str], *, cwd: str, env: Mapping[str, str]) -> str:
    """results_dir/.kernel-lab/run.sh: set `env`, cd to `cwd` (125 if impossible), exec `command` (quoted)."""
    if not command:
        raise ValueError("empty command")
    if not cwd.startswith("/"):
        raise ValueError(f"cwd must be absolute (as the guest sees it): {cwd!r}")
    lines = ["# generated by devmig.testing.kernel_lab: the command the guest runs, in chroot /host"]
    for key, value in env.items():
        if not _ENV_NAME_RE.match(key):
            raise ValueError(f"bad environment variable name: {key!r}")
        if "\0" in value:
            raise ValueError(f"NUL in the value of {key}")
        lines.append(f"export {key}={_sh(value)}")
    lines.append(f'cd -- {_sh(cwd)} || {{ echo "kernel-lab: cannot cd to {_sh(cwd)}" >&2; exit 125; }}')
    lines.append("exec " + " ".join(_sh(arg) for arg in command))
    return "\n".join(lines) + "\n"


_EXIT_RE = re.compile(rf"^{re.escape(EXIT_MARKER)}(\d+)\s*$", re.MULTILINE)


def parse_exit_marker(console: str) -> int | None:
    found = _EXIT_RE.findall(console)
    return int(found[-1]) if found else None


def command_output(console: str) -> str:
    start = console.find(BEGIN_MARKER + "\n")
    if start < 0:
        return ""
    start += len(BEGIN_MARKER) + 1
    matches = list(_EXIT_RE.finditer(console, start))
    if not matches:
        return console[start:]
    # /init prints a newline before the marker, in case the command's output did not end with one.
    return console[start : matches[-1].start()].removesuffix("\n")


_ANSI_RE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")


def clean_console(raw: bytes) -> str:
    """Serial console bytes as text: CRLF/CR to LF, terminal escapes (SeaBIOS clears the screen) removed."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
    return _ANSI_RE.sub("", text)


class ConsoleStream:
    """`clean_console` for a console read in chunks: holds back a split UTF-8 character, CRLF or escape sequence."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> str:
        text = self._pending + self._decoder.decode(chunk)
        cut = len(text)
        escape = text.rfind("\x1b")
        if escape >= 0 and not _ANSI_RE.match(text, escape) and len(text) - escape < 32:
            cut = escape
        if text[:cut].endswith("\r"):
            cut -= 1
        self._pending = text[cut:]
        return self._clean(text[:cut])

    def flush(self) -> str:
        text, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        return self._clean(text)

    @staticmethod
    def _clean(text: str) -> str:
        return _ANSI_RE.sub("", text.replace("\r\n", "\n").replace("\r", ""))


def _qemu_path(path: Path) -> str:
    return str(path).replace(",", ",,")  # QEMU option syntax: a comma in a value is written twice


QBOOT = Path("/usr/share/qemu/qboot.rom")  # Debian's qemu-system-data


def qemu_argv(
    assets: LabAssets,
    results_dir: Path,
    *,
    memory_mb: int,
    qemu: str = "qemu-system-x86_64",
    bios: Path | None = None,
) -> list[str]:
    """The QEMU command line: q35 under TCG, intel-iommu, edu, the host root (read-only) and results_dir over 9p.

    `-device intel-iommu` works as is under TCG (no `kernel-irqchip=split` needed: that is for KVM's irqchip);
    `bios`: qboot (when given) boots ~0.4 s faster than the default SeaBIOS and prints nothing on the console.
    """
    return [
        qemu,
        *(["-bios", _qemu_path(bios)] if bios is not None else []),
        "-M",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        str(memory_mb),
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
        _qemu_path(assets.vmlinuz),
        "-initrd",
        _qemu_path(assets.initramfs),
        "-append",
        "console=ttyS0 quiet intel_iommu=on panic=-1",
        "-device",
        "intel-iommu",
        "-device",
        "edu",
        "-virtfs",
        "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        "-virtfs",
        f"local,path={_qemu_path(results_dir)},mount_tag=results,security_model=none,multidevs=remap",
    ]


def newc_archive(entries: Sequence[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A cpio "newc" archive (what the kernel unpacks as initramfs) of (path, mode, data, (rdev major, minor)).

    Written here rather than with cpio(1): no extra package, no dependence on the builder's uid or umask, and
    device nodes (/dev/console) need no root.
    """
    out = bytearray()

    def add(ino: int, name: str, mode: int, data: bytes, rdev: tuple[int, int]) -> None:
        raw_name = name.encode() + b"\0"
        nlink = 2 if mode & 0o170000 == 0o040000 else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw_name), 0)
        out.extend(b"070701" + "".join(f"{f:08X}" for f in fields).encode() + raw_name)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        add(ino, name, mode, data, rdev)
    add(0, "TRAILER!!!", 0, b"", (0, 0))
    return bytes(out)


# -- prepare -------------------------------------------------------------------------------------------------------


def _run(argv: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a host command; LabUnavailable naming `what` and the command's last error line on failure."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabUnavailable(f"{what}: {argv[0]} not found") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "error", "Error", "ERROR")) or ": error:" in ln]
        detail = (errors or lines or [f"exit status {proc.returncode}"])[-1]
        raise LabUnavailable(f"{what} failed: {detail}")
    return proc.stdout


class _Apt:
    """apt-cache and apt-get, with `apt-get update` run at most once, and only when a look-up or fetch needs it."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.updated = False
        if shutil.which("apt-get") is None or shutil.which("apt-cache") is None:
            raise LabUnavailable("no apt-get/apt-cache: the kernel lab needs Debian (bookworm) packages")

    def update(self) -> None:
        if self.updated:
            return
        self._need_root("apt-get update")
        self.log("apt-get update")
        _run(["apt-get", *_APT_OPTS, "update", "-qq"], what="apt-get update", env=_APT_ENV)
        self.updated = True

    @staticmethod
    def _need_root(action: str) -> None:
        if os.geteuid() != 0:
            raise LabUnavailable(f"not root: cannot {action}")

    def installed(self, packages: Sequence[str]) -> set[str]:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *packages],
            capture_output=True,
            text=True,
            check=False,
        )
        return parse_dpkg_installed(proc.stdout)

    def policy(self, packages: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        return parse_apt_policy(_run(["apt-cache", "policy", *packages], what="apt-cache policy"))

    def search(self, pattern: str) -> list[str]:
        return parse_apt_search(_run(["apt-cache", "search", "--names-only", pattern], what="apt-cache search"))

    def install(self, packages: Sequence[str]) -> None:
        self._need_root(f"apt-get install {' '.join(packages)}")
        self.log(f"apt-get install {' '.join(packages)}")
        _run(
            ["apt-get", *_APT_OPTS, "install", "-y", "-q", "--no-install-recommends", *packages],
            what=f"apt-get install {' '.join(packages)}",
            env=_APT_ENV,
        )

    def download(self, package: str, version: str, dest: Path) -> Path:
        self.log(f"apt-get download {package}={version}")
        _run(["apt-get", *_APT_OPTS, "download", f"{package}={version}"], what=f"apt-get download {package}", cwd=dest)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if not debs:
            raise LabUnavailable(f"apt-get download {package}: no .deb in {dest}")
        return debs[-1]


def _resolve_kernel(apt: _Apt) -> KernelPackages:
    names = apt.search(rf"^linux-(image|headers)-{re.escape(KERNEL_SERIES)}\..*-{FLAVOUR}(-unsigned)?$")
    candidates = [n for n in names if _IMAGE_RE.match(n) or _HEADERS_RE.match(n)]
    return choose_kernel(candidates, apt.policy([SOURCE_PACKAGE, *candidates]))


def _host_packages(kp: KernelPackages) -> list[str]:
    packages = ["qemu-system-x86", "busybox-static", "xz-utils", kp.headers, kp.source]
    packages += [tool for tool in ("gcc", "make") if shutil.which(tool) is None]
    return packages


def _install_and_fetch(apt: _Apt, work: Path) -> tuple[KernelPackages, Path]:
    """Resolve the kernel, install what is missing, download the image .deb; one `apt-get update` if stale."""
    while True:
        try:
            kp = _resolve_kernel(apt)
            wanted = _host_packages(kp)
            missing = [p for p in wanted if p not in apt.installed(wanted)]
            if missing:
                apt.install(missing)
            return kp, _fetch_image(apt, kp, work)
        except LabUnavailable as exc:
            # Old package lists: a package not offered yet, or a version the mirror no longer has (404).
            stale = any(s in str(exc) for s in ("apt offers no", "no 6.12 image", "404", "Unable to locate", "Failed"))
            if apt.updated or not stale or os.geteuid() != 0:
                raise
            apt.log(f"{exc}: refreshing the package lists")
            apt.update()


def _fetch_image(apt: _Apt, kp: KernelPackages, work: Path) -> Path:
    """The image package unpacked under `work`; returns the unpacked root.

    `apt-get download` + `dpkg-deb -x` rather than installing it: installing linux-image-*-unsigned pulls
    initramfs-tools (and kmod, klibc...) and its postinst runs /etc/kernel/postinst.d hooks that build a
    /boot/initrd.img for a kernel this host never boots (tens of seconds, and update-grub where grub is present).
    The guest needs only vmlinuz and a dozen modules: unpacking into the cache has no side effects on the host.
    """
    downloads = work / "download"
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir(parents=True)
    deb = apt.download(kp.image, kp.version, downloads)
    root = work / "image"
    shutil.rmtree(root, ignore_errors=True)
    apt.log(f"dpkg-deb -x {deb.name}")
    _run(["dpkg-deb", "-x", str(deb), str(root)], what=f"dpkg-deb -x {deb.name}")
    return root


def _build_modules(kp: KernelPackages, work: Path, log: Callable[[str], None]) -> Path:
    """mtty.ko and vringh/vdpa_sim/vdpa_sim_net/vdpa_sim_blk.ko, built out of tree against the headers."""
    tarball = Path(f"/usr/src/{SOURCE_PACKAGE}.tar.xz")
    if not tarball.is_file():
        raise LabUnavailable(f"{tarball} missing although {SOURCE_PACKAGE} is installed")
    headers = Path(f"/usr/src/linux-headers-{kp.kernel_version}")
    if not (headers / "Makefile").is_file():
        raise LabUnavailable(f"{headers}/Makefile missing although {kp.headers} is installed")
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    log(f"extracting {', '.join(m.removeprefix('*/') for m in SOURCE_MEMBERS)} from {tarball}")
    _run(["tar", "-xJf", str(tarball), "-C", str(src), "--wildcards", *SOURCE_MEMBERS], what=f"tar -x {tarball}")
    build = work / "build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    wanted = ["mtty.c", "vringh.c", "vdpa_sim.c", "vdpa_sim.h", "vdpa_sim_net.c", "vdpa_sim_blk.c"]
    found = {p.name: p for p in src.rglob("*") if p.name in wanted and p.is_file()}
    for name in wanted:
        if name not in found:
            raise LabUnavailable(f"{name} not found in {tarball}")
        shutil.copy2(found[name], build / name)
    (build / "Kbuild").write_text("obj-m := " + " ".join(f"{m}.o" for m in BUILT_MODULES) + "\n")
    log(f"building {', '.join(BUILT_MODULES)} against {headers}")
    jobs = str(os.cpu_count() or 1)
    _run(["make", "-C", str(headers), f"M={build}", f"-j{jobs}", "modules"], what="building the out-of-tree modules")
    for name in BUILT_MODULES:
        if not (build / f"{name}.ko").is_file():
            raise LabUnavailable(f"building the out-of-tree modules: {name}.ko not produced")
    return build


def _load_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise LabUnavailable(f"{path.name}: zstd-compressed modules are not supported")
    return data


def _collect_modules(image_root: Path, kernel_version: str, build: Path) -> tuple[list[str], dict[str, bytes]]:
    """The load order and the decompressed .ko of every module the guest needs (built ones win over in-tree)."""
    tree = image_root / "lib" / "modules" / kernel_version / "kernel"
    if not tree.is_dir():
        tree = image_root / "usr" / "lib" / "modules" / kernel_version / "kernel"
    if not tree.is_dir():
        raise LabUnavailable(f"no lib/modules/{kernel_version}/kernel in the image package")
    index = {module_name(p.name): p for p in tree.rglob("*.ko*")}
    index.update({name: build / f"{name}.ko" for name in BUILT_MODULES})
    blobs: dict[str, bytes] = {}
    depends: dict[str, list[str]] = {}
    pending = [*IN_TREE_MODULES, *BUILT_MODULES]
    while pending:
        name = pending.pop()
        if name in depends:
            continue
        if name not in index:
            continue  # order_modules names the module that needed it
        blobs[name] = _load_module(index[name])
        try:
            info = elf_modinfo(blobs[name])
        except ValueError as exc:
            raise LabUnavailable(f"{index[name]}: {exc}") from exc
        depends[name] = parse_depends(",".join(info.get("depends", [])))
        pending.extend(depends[name])
    order = order_modules([*IN_TREE_MODULES, *BUILT_MODULES], depends)
    return order, {name: blobs[name] for name in order}


def _busybox() -> Path:
    for path in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if path.is_file():
            return path
    raise LabUnavailable("busybox not found although busybox-static is installed")


def _build_initramfs(dest: Path, order: Sequence[str], blobs: Mapping[str, bytes], init: str) -> None:
    dirs = ["bin", "dev", "proc", "sys", "host", "lib", "lib/modules", "tmp"]
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [(d, 0o040755, b"", (0, 0)) for d in dirs]
    entries.append(("dev/console", 0o020600, b"", (5, 1)))
    entries.append(("bin/busybox", 0o100755, _busybox().read_bytes(), (0, 0)))
    entries.append(("init", 0o100755, init.encode(), (0, 0)))
    entries += [(f"lib/modules/{name}.ko", 0o100644, blobs[name], (0, 0)) for name in order]
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(gzip.compress(newc_archive(entries), compresslevel=6, mtime=0))
    tmp.replace(dest)


def _fingerprint(order: Sequence[str]) -> str:
    text = json.dumps([_RECIPE, IN_TREE_MODULES, BUILT_MODULES, render_init(order)])
    return hashlib.sha256(text.encode()).hexdigest()


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _cached(cache: Path) -> LabAssets | None:
    """The assets of the last complete prepare() in `cache`, if its stamp still matches this recipe."""
    try:
        current = json.loads((cache / "current.json").read_text())
        version = str(current["kernel_version"])
        base = cache / version
        stamp = json.loads((base / "stamp.json").read_text())
        order = [str(m) for m in stamp["modules"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    assets = LabAssets(version, base / "vmlinuz", base / "initramfs.cpio.gz", base)
    if stamp.get("fingerprint") != _fingerprint(order):
        return None
    if not (assets.vmlinuz.is_file() and assets.initramfs.is_file()):
        return None
    if shutil.which("qemu-system-x86_64") is None:
        return None
    return assets


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    with (cache / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(
    cache_dir: Path | None = None, *, log: Callable[[str], None] = _log_stderr, refresh: bool = False
) -> LabAssets:
    """Everything `run_in_guest` needs, built once into the cache; later calls return the cached assets at once.

    refresh=True ignores the stamp: re-resolves the newest 6.12 with apt-cache and rebuilds.
    """
    cache = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser().absolute()
    if not refresh and (assets := _cached(cache)) is not None:
        return assets
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabUnavailable(f"cannot create the cache {cache}: {exc.strerror}") from exc
    with _locked(cache):
        if not refresh and (assets := _cached(cache)) is not None:
            return assets  # another process prepared it while this one waited
        started = time.monotonic()
        apt = _Apt(log)
        work = cache / "work"
        kp, image_root = _install_and_fetch(apt, work)
        log(f"kernel {kp.kernel_version} ({kp.version})")
        base = cache / kp.kernel_version
        base.mkdir(parents=True, exist_ok=True)
        build = _build_modules(kp, work, log)
        order, blobs = _collect_modules(image_root, kp.kernel_version, build)
        log(f"modules, in load order: {' '.join(order)}")
        vmlinuz = image_root / "boot" / f"vmlinuz-{kp.kernel_version}"
        if not vmlinuz.is_file():
            raise LabUnavailable(f"no boot/vmlinuz-{kp.kernel_version} in {kp.image}")
        shutil.copyfile(vmlinuz, base / "vmlinuz")
        modules_dir = base / "modules"
        shutil.rmtree(modules_dir, ignore_errors=True)
        modules_dir.mkdir()
        for name in order:
            (modules_dir / f"{name}.ko").write_bytes(blobs[name])
        init = render_init(order)
        (base / "init").write_text(init)
        _build_initramfs(base / "initramfs.cpio.gz", order, blobs, init)
        _write_json(
            base / "stamp.json",
            {
                "kernel_version": kp.kernel_version,
                "package_version": kp.version,
                "packages": [kp.image, kp.headers, kp.source],
                "modules": order,
                "fingerprint": _fingerprint(order),
            },
        )
        _write_json(cache / "current.json", {"kernel_version": kp.kernel_version})
        shutil.rmtree(work, ignore_errors=True)  # the unpacked image (~115 MB), sources and build tree
        log(f"prepared {base} in {time.monotonic() - started:.1f} s")
        assets = _cached(cache)
        if assets is None:
            raise LabUnavailable(f"prepare: {base} incomplete after building it")
        return assets


# -- run -----------------------------------------------------------------------------------------------------------


def run_in_guest(
    assets: LabAssets,
    command: Sequence[str],
    *,
    cwd: str,
    results_dir: Path,
    timeout: float = 300,
    env: Mapping[str, str] = {},  # never mutated
    memory_mb: int = 2048,
    echo: Callable[[str], None] | None = None,
) -> GuestRun:
    """Boot the lab kernel, run `command` in `chroot /host` from `cwd`, power off; the command's exit code.

    `results_dir` (created if missing; one per concurrent run) is the guest's /tmp/devmig-results. `echo`, if given,
    receives the console text as it arrives. After `timeout` seconds QEMU is killed: timed_out=True, returncode None.
    """
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise LabUnavailable("qemu-system-x86_64 not found: run prepare() (as root) first")
    for path in (assets.vmlinuz, assets.initramfs):
        if not path.is_file():
            raise LabUnavailable(f"{path} missing: run prepare() again")
    results = results_dir.expanduser().absolute()
    lab = results / LAB_DIR
    lab.mkdir(parents=True, exist_ok=True)
    (lab / "exit-code").unlink(missing_ok=True)
    (lab / "run.sh").write_text(render_command_script(command, cwd=cwd, env=env))
    # The guest's tmpfs mounts would hide a checkout under /tmp (CI clones anywhere): the init keeps these visible.
    (lab / "keep").write_text(f"{cwd}\n")

    argv = qemu_argv(assets, results, memory_mb=memory_mb, qemu=qemu, bios=QBOOT if QBOOT.is_file() else None)
    chunks: list[bytes] = []
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def pump() -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        stream = ConsoleStream()
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if echo is not None and (text := stream.feed(chunk)):
                echo(text)
        if echo is not None and (text := stream.flush()):
            echo(text)

    reader = threading.Thread(target=pump, name="kernel-lab-console", daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    seconds = time.monotonic() - started
    console = clean_console(b"".join(chunks))
    returncode = None if timed_out else parse_exit_marker(console)
    if returncode is None and not timed_out:
        with contextlib.suppress(OSError, ValueError):
            returncode = int((lab / "exit-code").read_text().strip())
    return GuestRun(returncode=returncode, console=console, timed_out=timed_out, seconds=seconds)


# -- command line --------------------------------------------------------------------------------------------------


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not _ENV_NAME_RE.match(key):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kernel-lab",
        description="Boot Debian's Linux 6.12 under QEMU (mtty, vdpa_sim, vfio-pci) and run a command",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache directory (default: $DEVMIG_KERNEL_LAB_CACHE or ~/.cache/devmig/kernel-lab)",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p_prepare = sub.add_parser("prepare", help="install packages, build modules and the initramfs (as root)")
    p_prepare.add_argument("--refresh", action="store_true", help="ignore the stamp: re-resolve and rebuild")
    p_run = sub.add_parser("run", help="run CMD in the guest (after `--`); exits with its exit code")
    p_run.add_argument("--cwd", default=None, help="working directory in the guest (default: the current one)")
    p_run.add_argument("--results", type=Path, default=None, help="host dir seen as /tmp/devmig-results (default: new)")
    p_run.add_argument("--timeout", type=float, default=300.0)
    p_run.add_argument("--memory", type=int, default=2048, help="guest memory in MiB")
    p_run.add_argument("--env", type=_env_pair, action="append", default=[], metavar="NAME=VALUE")
    p_run.add_argument("--quiet", action="store_true", help="print the command's output only, after the run")
    p_run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.action == "prepare":
            started = time.monotonic()
            assets = prepare(args.cache, refresh=args.refresh)
            print(f"{assets.kernel_version} {assets.cache_dir} ({time.monotonic() - started:.2f} s)")
            return 0
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            parser.error("run: no command (give it after `--`)")
        assets = prepare(args.cache)
        results = args.results or Path(tempfile.mkdtemp(prefix="devmig-kernel-lab-"))

        def echo(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        run = run_in_guest(
            assets,
            command,
            cwd=args.cwd or str(Path.cwd()),
            results_dir=results,
            timeout=args.timeout,
            env=dict(args.env),
            memory_mb=args.memory,
            echo=None if args.quiet else echo,
        )
        if args.quiet:
            sys.stdout.write(run.output)
        state = "timed out" if run.timed_out else f"exit code {run.returncode}"
        print(f"kernel-lab: {state} after {run.seconds:.1f} s; results in {results}", file=sys.stderr)
        if run.timed_out:
            return 124
        return 125 if run.returncode is None else run.returncode
    except LabUnavailable as exc:
        print(f"kernel-lab: unavailable: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
