"""Debian's packages for the lab: which 6.12 kernel to use (apt-cache), installing what is missing, fetching the
kernel image; and running the host commands that do it.

The image, the headers and linux-source-6.12 must be the same build: the modules are built from that source against
those headers and loaded into that image (`choose_kernel`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.kernel.lab.errors import LabUnavailable

KERNEL_SERIES = "6.12"
FLAVOUR = "amd64"
SOURCE_PACKAGE = f"linux-source-{KERNEL_SERIES}"

T = TypeVar("T")

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
_APT_OPTS = ("-o", "DPkg::Lock::Timeout=300", "-o", "APT::Sandbox::User=root")


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

    @property
    def common_headers(self) -> str:
        """The flavour-independent headers, with the uapi tree (include/uapi/linux/vfio.h) the ABI test reads."""
        return f"linux-headers-{self.abi}-common"


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


def parse_dpkg_versions(text: str) -> dict[str, str]:
    """{package: version} of the installed ones, from dpkg-query's `${Package} ${db:Status-Abbrev} ${Version}` lines."""
    versions = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("ii"):
            versions[parts[0].split(":")[0]] = parts[2]
    return versions


def installed_versions(packages: Sequence[str]) -> dict[str, str]:
    """The installed versions of `packages` (those not installed are absent); dpkg only, no apt."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev} ${Version}\\n", *packages],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return {}
    return parse_dpkg_versions(proc.stdout)


def run(argv: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
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


class Apt:
    """apt-cache and apt-get, with `apt-get update` run at most once, and only when a look-up or fetch needs it."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.updated = False
        if shutil.which("apt-get") is None or shutil.which("apt-cache") is None:
            raise LabUnavailable("no apt-get/apt-cache: the kernel lab needs Debian (bookworm) packages")

    def update(self, *, force: bool = False) -> None:
        """`apt-get update`, once (again with `force`: after a source was added)."""
        if self.updated and not force:
            return
        self._need_root("apt-get update")
        self.log("apt-get update")
        run(["apt-get", *_APT_OPTS, "update", "-qq"], what="apt-get update", env=_APT_ENV)
        self.updated = True

    @staticmethod
    def _need_root(action: str) -> None:
        if os.geteuid() != 0:
            raise LabUnavailable(f"not root: cannot {action}")

    def installed(self, packages: Sequence[str]) -> set[str]:
        return set(installed_versions(packages))

    def versions(self, packages: Sequence[str]) -> dict[str, str]:
        return installed_versions(packages)

    def policy_text(self, packages: Sequence[str]) -> str:
        return run(["apt-cache", "policy", *packages], what="apt-cache policy")

    def policy(self, packages: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        return parse_apt_policy(self.policy_text(packages))

    def search(self, pattern: str) -> list[str]:
        return parse_apt_search(run(["apt-cache", "search", "--names-only", pattern], what="apt-cache search"))

    def install(self, packages: Sequence[str], *, release: str = "") -> None:
        """apt-get install `packages`; from the suite `release` (apt-get -t) when given."""
        target = ["-t", release] if release else []
        command = " ".join(["apt-get install", *target, *packages])
        self._need_root(command)
        self.log(command)
        run(
            ["apt-get", *_APT_OPTS, "install", "-y", "-q", "--no-install-recommends", *target, *packages],
            what=command,
            env=_APT_ENV,
        )

    def download(self, package: str, version: str, dest: Path) -> Path:
        self.log(f"apt-get download {package}={version}")
        run(["apt-get", *_APT_OPTS, "download", f"{package}={version}"], what=f"apt-get download {package}", cwd=dest)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if not debs:
            raise LabUnavailable(f"apt-get download {package}: no .deb in {dest}")
        return debs[-1]


def _resolve_kernel(apt: Apt) -> KernelPackages:
    names = apt.search(rf"^linux-(image|headers)-{re.escape(KERNEL_SERIES)}\..*-{FLAVOUR}(-unsigned)?$")
    candidates = [n for n in names if _IMAGE_RE.match(n) or _HEADERS_RE.match(n)]
    return choose_kernel(candidates, apt.policy([SOURCE_PACKAGE, *candidates]))


def _host_packages(kp: KernelPackages) -> list[str]:
    packages = ["busybox-static", "xz-utils", kp.headers, kp.source]  # QEMU: see tools.ensure_tools
    packages += [tool for tool in ("gcc", "make") if shutil.which(tool) is None]
    return packages


def with_fresh_lists(apt: Apt, step: Callable[[], T]) -> T:
    """`step`, run again after one `apt-get update` if it failed on stale package lists."""
    while True:
        try:
            return step()
        except LabUnavailable as exc:
            # Old package lists: a package not offered yet, or a version the mirror no longer has (404).
            stale = any(s in str(exc) for s in ("apt offers no", "no 6.12 image", "404", "Unable to locate", "Failed"))
            if apt.updated or not stale or os.geteuid() != 0:
                raise
            apt.log(f"{exc}: refreshing the package lists")
            apt.update()


def _install_missing(apt: Apt, wanted: Sequence[str]) -> None:
    missing = [p for p in wanted if p not in apt.installed(wanted)]
    if missing:
        apt.install(missing)


def install_and_fetch(apt: Apt, work: Path) -> tuple[KernelPackages, Path]:
    """Resolve the kernel, install what is missing, download the image .deb; one `apt-get update` if stale."""

    def step() -> tuple[KernelPackages, Path]:
        kp = _resolve_kernel(apt)
        _install_missing(apt, _host_packages(kp))
        return kp, _fetch_image(apt, kp, work)

    return with_fresh_lists(apt, step)


def install_uapi_headers(apt: Apt) -> KernelPackages:
    """Install the lab kernel's common headers (its uapi tree) if missing, the kernel resolved as `prepare` does:
    scripts/setup runs this so tests/unit/test_vfio_abi.py has Linux 6.12's vfio.h before the kernel tier runs."""

    def step() -> KernelPackages:
        kp = _resolve_kernel(apt)
        _install_missing(apt, [kp.common_headers])
        return kp

    return with_fresh_lists(apt, step)


def _fetch_image(apt: Apt, kp: KernelPackages, work: Path) -> Path:
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
    run(["dpkg-deb", "-x", str(deb), str(root)], what=f"dpkg-deb -x {deb.name}")
    return root
