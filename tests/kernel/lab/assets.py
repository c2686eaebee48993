"""What a boot needs (kernel, initramfs), built once into the cache by `prepare()`; a stamp says whether the cache
still matches this recipe, so later calls return at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.guest import render_init
from tests.kernel.lab.initramfs import build_initramfs
from tests.kernel.lab.modules import BUILT_MODULES, IN_TREE_MODULES, build_modules, collect_modules
from tests.kernel.lab.packages import Apt, install_and_fetch
from tests.kernel.lab.tools import ensure_tools, tools_ready

# Bump when the build recipe changes in a way the stamp cannot see (the init script is hashed separately).
_RECIPE = 1


@dataclass(frozen=True)
class LabAssets:
    kernel_version: str  # Debian's ABI name, e.g. "6.12.117+deb12-amd64"
    vmlinuz: Path
    initramfs: Path
    cache_dir: Path  # <cache>/<kernel_version>


def _log_stderr(message: str) -> None:
    print(f"kernel-lab: {message}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    env = os.environ.get("DEVMIG_KERNEL_LAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "devmig" / "kernel-lab"


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
    if not refresh and (assets := _cached(cache)) is not None and tools_ready():
        return assets
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabUnavailable(f"cannot create the cache {cache}: {exc.strerror}") from exc
    with _locked(cache):
        if not refresh and (assets := _cached(cache)) is not None and tools_ready():
            return assets  # another process prepared it while this one waited
        started = time.monotonic()
        apt = Apt(log)
        # QEMU (the outer hypervisor, and the guest's own through the shared root) and iproute2 at the versions
        # the tests need; the kernel's assets are built only when the cache lacks them.
        ensure_tools(apt)
        if not refresh and (assets := _cached(cache)) is not None:
            return assets
        work = cache / "work"
        kp, image_root = install_and_fetch(apt, work)
        log(f"kernel {kp.kernel_version} ({kp.version})")
        base = cache / kp.kernel_version
        base.mkdir(parents=True, exist_ok=True)
        build = build_modules(kp, work, log)
        order, blobs = collect_modules(image_root, kp.kernel_version, build)
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
        build_initramfs(base / "initramfs.cpio.gz", order, blobs, init)
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
