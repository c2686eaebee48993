"""The VFIO and iommufd uAPI as data: ioctl numbers, flag bits, `enum vfio_device_mig_state` and the structures.

The facts of include/uapi/linux/vfio.h and iommufd.h (Linux 6.12): every VFIO and iommufd ioctl is `_IO(';', nr)`, so
its number carries no size or direction; structures are plain little-endian C layouts, given here as ctypes classes
named exactly as the kernel names them (class and fields), so tests/unit/test_vfio_abi.py can compile a C program from
`UAPI_STRUCTS` and `uapi_constants()` and compare every size, offset and number with the kernel's headers.

Pure data: no system call, importable by the simulator and the state machine alike.
"""

from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Final


class MigState(IntEnum):
    """`enum vfio_device_mig_state` (include/uapi/linux/vfio.h)."""

    ERROR = 0
    STOP = 1
    RUNNING = 2
    STOP_COPY = 3
    RESUMING = 4
    RUNNING_P2P = 5
    PRE_COPY = 6
    PRE_COPY_P2P = 7


# -- numbers --------------------------------------------------------------------------------------------------------


def _io(kind: int, nr: int) -> int:
    """_IO(type, nr): direction _IOC_NONE and size 0, so only the type and the number remain."""
    return (kind << 8) | nr


VFIO_TYPE: Final = ord(";")
VFIO_BASE: Final = 100


def vfio_ioctl(n: int) -> int:
    """_IO(VFIO_TYPE, VFIO_BASE + n)."""
    return _io(VFIO_TYPE, VFIO_BASE + n)


VFIO_GET_API_VERSION: Final = vfio_ioctl(0)
VFIO_CHECK_EXTENSION: Final = vfio_ioctl(1)
VFIO_SET_IOMMU: Final = vfio_ioctl(2)
VFIO_GROUP_GET_STATUS: Final = vfio_ioctl(3)
VFIO_GROUP_SET_CONTAINER: Final = vfio_ioctl(4)
VFIO_GROUP_GET_DEVICE_FD: Final = vfio_ioctl(6)
VFIO_DEVICE_GET_INFO: Final = vfio_ioctl(7)
VFIO_DEVICE_GET_REGION_INFO: Final = vfio_ioctl(8)
VFIO_DEVICE_RESET: Final = vfio_ioctl(11)
VFIO_DEVICE_FEATURE: Final = vfio_ioctl(17)
VFIO_DEVICE_BIND_IOMMUFD: Final = vfio_ioctl(18)
VFIO_DEVICE_ATTACH_IOMMUFD_PT: Final = vfio_ioctl(19)
VFIO_DEVICE_DETACH_IOMMUFD_PT: Final = vfio_ioctl(20)
#: on the data_fd, not on the device fd
VFIO_MIG_GET_PRECOPY_INFO: Final = vfio_ioctl(21)

IOMMUFD_TYPE: Final = ord(";")
IOMMUFD_CMD_DESTROY: Final = 0x80
IOMMUFD_CMD_IOAS_ALLOC: Final = 0x81
IOMMU_DESTROY: Final = _io(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY)
IOMMU_IOAS_ALLOC: Final = _io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)

VFIO_API_VERSION: Final = 0
VFIO_TYPE1v2_IOMMU: Final = 3
VFIO_GROUP_FLAGS_VIABLE: Final = 1 << 0

VFIO_DEVICE_FEATURE_MASK: Final = 0xFFFF
VFIO_DEVICE_FEATURE_GET: Final = 1 << 16
VFIO_DEVICE_FEATURE_SET: Final = 1 << 17
VFIO_DEVICE_FEATURE_PROBE: Final = 1 << 18
VFIO_DEVICE_FEATURE_MIGRATION: Final = 1
VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: Final = 2
VFIO_DEVICE_FEATURE_DMA_LOGGING_START: Final = 6
VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: Final = 7
VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: Final = 8
VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: Final = 9

#: vfio-pci's fixed region indexes (an enum in the header)
VFIO_PCI_BAR0_REGION_INDEX: Final = 0
VFIO_PCI_CONFIG_REGION_INDEX: Final = 7
VFIO_PCI_NUM_REGIONS: Final = 9

#: VFIO_MIGRATION_* bits of the MIGRATION feature
VFIO_MIGRATION_STOP_COPY: Final = 1 << 0
VFIO_MIGRATION_P2P: Final = 1 << 1
VFIO_MIGRATION_PRE_COPY: Final = 1 << 2
MIGRATION_FLAGS: dict[int, str] = {
    VFIO_MIGRATION_STOP_COPY: "STOP_COPY",
    VFIO_MIGRATION_P2P: "P2P",
    VFIO_MIGRATION_PRE_COPY: "PRE_COPY",
}
#: VFIO_DEVICE_FLAGS_* bits of VFIO_DEVICE_GET_INFO
DEVICE_FLAGS: dict[int, str] = {
    1 << 0: "RESET",
    1 << 1: "PCI",
    1 << 2: "PLATFORM",
    1 << 3: "AMBA",
    1 << 4: "CCW",
    1 << 5: "AP",
    1 << 6: "FSL_MC",
    1 << 7: "CAPS",
    1 << 8: "CDX",
}
#: VFIO_REGION_INFO_FLAG_* bits of VFIO_DEVICE_GET_REGION_INFO
REGION_FLAGS: dict[int, str] = {1 << 0: "READ", 1 << 1: "WRITE", 1 << 2: "MMAP", 1 << 3: "CAPS"}
#: the kernel's prefix of each flag table's names, and of MigState's (enum vfio_device_mig_state)
FLAG_PREFIXES: dict[str, dict[int, str]] = {
    "VFIO_MIGRATION_": MIGRATION_FLAGS,
    "VFIO_DEVICE_FLAGS_": DEVICE_FLAGS,
    "VFIO_REGION_INFO_FLAG_": REGION_FLAGS,
}
STATE_PREFIX: Final = "VFIO_DEVICE_STATE_"


# -- structures -----------------------------------------------------------------------------------------------------
# The kernel's names, lower case: N801 is off for each. __aligned_u64 is c_uint64, whose alignment is 8 on x86-64.

u32, s32, u64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class vfio_group_status(ctypes.Structure):  # noqa: N801
    _fields_ = (("argsz", u32), ("flags", u32))


class vfio_device_info(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("argsz", u32),
        ("flags", u32),
        ("num_regions", u32),
        ("num_irqs", u32),
        ("cap_offset", u32),
        ("pad", u32),
    )


class vfio_region_info(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("argsz", u32),
        ("flags", u32),
        ("index", u32),
        ("cap_offset", u32),
        ("size", u64),
        ("offset", u64),
    )


class vfio_device_feature(ctypes.Structure):  # noqa: N801 - the header; the payload follows it (data[])
    _fields_ = (("argsz", u32), ("flags", u32), ("data", ctypes.c_uint8 * 0))


class vfio_device_feature_migration(ctypes.Structure):  # noqa: N801
    _fields_ = (("flags", u64),)


class vfio_device_feature_mig_state(ctypes.Structure):  # noqa: N801
    _fields_ = (("device_state", u32), ("data_fd", s32))


class vfio_device_feature_mig_data_size(ctypes.Structure):  # noqa: N801
    _fields_ = (("stop_copy_length", u64),)


class vfio_device_feature_dma_logging_control(ctypes.Structure):  # noqa: N801
    _fields_ = (("page_size", u64), ("num_ranges", u32), ("__reserved", u32), ("ranges", u64))


class vfio_device_feature_dma_logging_range(ctypes.Structure):  # noqa: N801
    _fields_ = (("iova", u64), ("length", u64))


class vfio_device_feature_dma_logging_report(ctypes.Structure):  # noqa: N801
    _fields_ = (("iova", u64), ("length", u64), ("page_size", u64), ("bitmap", u64))


class vfio_precopy_info(ctypes.Structure):  # noqa: N801
    _fields_ = (("argsz", u32), ("flags", u32), ("initial_bytes", u64), ("dirty_bytes", u64))


class vfio_device_bind_iommufd(ctypes.Structure):  # noqa: N801
    _fields_ = (("argsz", u32), ("flags", u32), ("iommufd", s32), ("out_devid", u32))


class vfio_device_attach_iommufd_pt(ctypes.Structure):  # noqa: N801
    _fields_ = (("argsz", u32), ("flags", u32), ("pt_id", u32))


class vfio_device_detach_iommufd_pt(ctypes.Structure):  # noqa: N801
    _fields_ = (("argsz", u32), ("flags", u32))


class iommu_ioas_alloc(ctypes.Structure):  # noqa: N801
    _fields_ = (("size", u32), ("flags", u32), ("out_ioas_id", u32))


class iommu_destroy(ctypes.Structure):  # noqa: N801
    _fields_ = (("size", u32), ("id", u32))


#: Every uAPI structure devmig lays out (the ABI test checks each size and field offset against the headers).
UAPI_STRUCTS: Final[tuple[type[ctypes.Structure], ...]] = (
    vfio_group_status,
    vfio_device_info,
    vfio_region_info,
    vfio_device_feature,
    vfio_device_feature_migration,
    vfio_device_feature_mig_state,
    vfio_device_feature_mig_data_size,
    vfio_device_feature_dma_logging_control,
    vfio_device_feature_dma_logging_range,
    vfio_device_feature_dma_logging_report,
    vfio_precopy_info,
    vfio_device_bind_iommufd,
    vfio_device_attach_iommufd_pt,
    vfio_device_detach_iommufd_pt,
    iommu_ioas_alloc,
    iommu_destroy,
)


def uapi_constants() -> dict[str, int]:
    """Every number devmig takes from the uAPI, by the kernel's name: the module's VFIO_*/IOMMU* constants, the
    flag tables with their prefixes and `enum vfio_device_mig_state`."""
    found = {
        name: value
        for name, value in globals().items()
        if name.startswith(("VFIO_", "IOMMU")) and isinstance(value, int) and not isinstance(value, bool)
    }
    for prefix, table in FLAG_PREFIXES.items():
        found.update({prefix + flag: bit for bit, flag in table.items()})
    found.update({STATE_PREFIX + state.name: int(state) for state in MigState})
    return found
