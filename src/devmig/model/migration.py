"""How a device migrates on its host: the driver's VFIO migration flags and who tracks the pages its DMA dirties.

Part of a capability and of a descriptor (`migration`), absent where it is not known. The flags are the
VFIO_MIGRATION_* bits of VFIO_DEVICE_FEATURE_MIGRATION by name; a driver without mig_ops has none. Dirty tracking is
how the host learns which guest pages the device wrote while the VM runs during pre-copy: the device's own DMA
logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*), the host IOMMU's dirty bits through iommufd, or neither, in which case
QEMU blocks the VM's live migration ("VFIO device doesn't support device dirty tracking").
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The VFIO_MIGRATION_* flag names of the format and their bits (include/uapi/linux/vfio.h; the values are checked
#: against devmig.migrate.uapi by tests/unit/test_vfio_abi.py).
MigrationFlag = Literal["stop_copy", "p2p", "pre_copy"]
FLAG_BITS: dict[MigrationFlag, int] = {"stop_copy": 1, "p2p": 2, "pre_copy": 4}

#: device: the driver logs its own DMA; iommu: the host IOMMU tracks it (iommufd dirty tracking); none: neither;
#: not-needed: the device does no DMA into guest memory (mtty).
DirtyTracking = Literal["device", "iommu", "none", "not-needed"]


class MigrationSupport(BaseModel):
    """A device's VFIO migration on its host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flags: list[MigrationFlag] | None = Field(
        default=None,
        description="the driver's VFIO_MIGRATION_* flags; empty: the driver implements no VFIO migration; absent: "
        "not known",
    )
    dirty_tracking: DirtyTracking | None = Field(
        default=None,
        description="who tracks the guest pages the device's DMA dirties on this host: device (DMA logging), iommu "
        "(the host IOMMU through iommufd), none, or not-needed (the device does no DMA); absent: not known",
    )

    @property
    def bits(self) -> int:
        return sum(FLAG_BITS[name] for name in set(self.flags or ()))


def flag_names(bits: int) -> list[MigrationFlag]:
    """The format's names of the VFIO_MIGRATION_* bits set in `bits`, in the uAPI's order."""
    return [name for name, bit in FLAG_BITS.items() if bits & bit]
