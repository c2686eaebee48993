"""Kernel lab: run one command inside a real Linux 6.12 kernel booted under QEMU, with mtty, vdpa_sim and vfio-pci.

For tests that need a real kernel's verdict (VFIO migration on mtty, vDPA on vdpa_sim, vfio-pci on QEMU's `edu`
device behind an emulated intel-iommu) on a host that cannot or must not load those modules itself.

    assets = prepare()                                   # as root, once; later calls return in milliseconds
    run = run_in_guest(assets, [".venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider", "tests/kernel/guest"],
                       cwd=str(checkout), results_dir=tmp_path)
    assert run.returncode == 0, run.console

`prepare()` installs (apt-get, only what is missing) busybox-static, xz-utils, gcc/make and Debian's 6.12 headers
and source, resolved at run time with apt-cache; QEMU >= 8.0 (VFIO migration v2) and iproute2 >= 6.15 from the
release's own suite where it has them (Debian 13+), else from its backports, which it adds to the apt sources when
missing (`tools.ensure_tools`; Debian 12: bookworm-backports, QEMU 10.0 and iproute2 6.15); downloads the matching
kernel image package and unpacks it into the cache (not installed: see `packages._fetch_image`), builds mtty.ko
and vringh/vdpa_sim*.ko out of tree, and packs an initramfs (busybox-static, the modules, a generated /init).
Everything goes to the cache (`default_cache_dir()`: $DEVMIG_KERNEL_LAB_CACHE or ~/.cache/devmig/kernel-lab), under
`<cache>/<kernel_version>/`.
It raises `LabUnavailable` with a one-line reason when it cannot (not root, no apt, package missing, no QEMU >= 8.0
to be had, build failed); an iproute2 older than 6.15 that cannot be upgraded is left as it is (the vdpa tests
compare with whichever the machine has). A warm call checks the tools with one dpkg-query.

What the command sees (`run_in_guest`):
- It runs as root in `chroot /host`, where /host is the HOST's root file system shared over virtio-9p READ-ONLY:
  the host's Python, the project's checkout and venv, Debian's tools (mdevctl, iproute2 `vdpa`, QEMU: the guest
  can run QEMU VMs of its own, under TCG), unchanged.
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

Command line: scripts/kernel-lab `prepare` / `run [--env K=V] [--cwd D] -- CMD...` (`python -m tests.kernel.lab`
from the checkout's root).

The parts: packages.py (which 6.12 build, apt), debversion.py (Debian version order), suites.py (which suite has a
tool at the version needed; the backports entry), tools.py (QEMU and iproute2: check, install), modules.py (the
out-of-tree build, the load order), guest.py (the /init and the command's run.sh), initramfs.py (the cpio archive),
assets.py (`prepare`, the cache and its stamp), qemu.py (`run_in_guest`), console.py (the serial console as text),
errors.py (`LabUnavailable`), __main__.py (the command line). The lab lives with the tests, not in the installed
package: nothing but the tests and scripts/kernel-lab uses it.
"""

from tests.kernel.lab.assets import LabAssets, default_cache_dir, prepare
from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.guest import GUEST_RESULTS
from tests.kernel.lab.qemu import GuestRun, run_in_guest

__all__ = [
    "GUEST_RESULTS",
    "GuestRun",
    "LabAssets",
    "LabUnavailable",
    "default_cache_dir",
    "prepare",
    "run_in_guest",
]
