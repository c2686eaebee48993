"""What the host shows of a VFIO device's migration beyond its driver: the IOMMU's dirty tracking, and whether the
driver registered migration at all (VFIO's debugfs).

IOMMU dirty tracking (Documentation/ABI/testing/sysfs-class-iommu*): a device's `iommu` link names the IOMMU that
translates its DMA. Intel VT-d tracks dirty pages in its second-stage tables when the extended capability register
has SLADS (bit 45) in scalable mode (SMTS, bit 43): drivers/iommu/intel/iommu.h `ecap_slads`, `ecap_smts`, and
`ssads_supported()` for IOMMU_CAP_DIRTY_TRACKING; sysfs prints the register in hex
(`/sys/class/iommu/dmarN/intel-iommu/ecap`). QEMU uses it only through iommufd, so `/dev/iommu` must exist too.
Not read: whether scalable mode is switched on (intel_iommu=sm_on, the default only with
CONFIG_INTEL_IOMMU_SCALABLE_MODE_DEFAULT_ON) [unconfirmed from sysfs], and AMD's and Arm's IOMMUs (their dirty
capabilities are not in a documented sysfs attribute): those answer None, not known.

VFIO debugfs (drivers/vfio/debugfs.c, Linux 6.8): `/sys/kernel/debug/vfio/<vfioN>/migration/` exists for a device
whose driver registered mig_ops; xe_vfio_pci registers them only when the PF's xe driver enables VF migration.
"""

from __future__ import annotations

from devmig.host.sysfs import Sysfs, SysfsError

INTEL_ECAP_SMTS = 1 << 43
INTEL_ECAP_SLADS = 1 << 45
IOMMUFD = "dev/iommu"
VFIO_DEBUGFS = "sys/kernel/debug/vfio"


def _intel_dirty_tracking(root: Sysfs, iommu: str) -> bool | None:
    text = root.read_optional(f"{iommu}/intel-iommu/ecap")
    if text is None:
        return None
    try:
        ecap = int(text.strip(), 16)
    except ValueError:
        raise SysfsError(f"{iommu}/intel-iommu/ecap: expected a hexadecimal register, found {text[:40]!r}") from None
    return ecap & INTEL_ECAP_SMTS != 0 and ecap & INTEL_ECAP_SLADS != 0


#: one reader per IOMMU driver, by the attribute directory its sysfs group adds
_READERS = (("intel-iommu", _intel_dirty_tracking),)


def iommu_dirty_tracking(root: Sysfs, device_path: str) -> bool | None:
    """Can the host IOMMU behind the device at `device_path` track the pages its DMA dirties, for QEMU (iommufd)?
    None when devmig cannot tell (no `iommu` link, an IOMMU without a known attribute)."""
    link = f"{device_path}/iommu"
    if not root.islink(link):
        return None
    iommu = root.readlink(link)  # root-relative, resolved
    for group, reader in _READERS:
        if root.isdir(f"{iommu}/{group}"):
            hardware = reader(root, iommu)
            if hardware is None:
                return None
            return hardware and root.exists(IOMMUFD)
    return None


def vfio_registers_migration(root: Sysfs, device_path: str) -> bool | None:
    """Did the device's VFIO driver register migration (mig_ops)? None when VFIO's debugfs cannot be read."""
    names = [n for n in root.listdir_optional(f"{device_path}/vfio-dev") if n.startswith("vfio")]
    if len(names) != 1 or not root.isdir(VFIO_DEBUGFS):
        return None
    return root.isdir(f"{VFIO_DEBUGFS}/{names[0]}/migration")
