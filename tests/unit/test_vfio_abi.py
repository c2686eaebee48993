"""The VFIO numbers and layouts devmig uses, against the uAPI (include/uapi/linux/vfio.h, Linux 6.12)."""

from __future__ import annotations

import ctypes

from devmig.migrate import vfio


def test_ioctl_numbers() -> None:
    assert vfio.VFIO_GET_API_VERSION == 0x3B64
    assert vfio.VFIO_CHECK_EXTENSION == 0x3B65
    assert vfio.VFIO_SET_IOMMU == 0x3B66
    assert vfio.VFIO_GROUP_GET_STATUS == 0x3B67
    assert vfio.VFIO_GROUP_SET_CONTAINER == 0x3B68
    assert vfio.VFIO_GROUP_GET_DEVICE_FD == 0x3B6A
    assert vfio.VFIO_DEVICE_GET_INFO == 0x3B6B
    assert vfio.VFIO_DEVICE_FEATURE == 0x3B75


def test_layouts() -> None:
    assert ctypes.sizeof(vfio.vfio_group_status) == 8
    assert ctypes.sizeof(vfio.vfio_device_info) == 24
    assert ctypes.sizeof(vfio.vfio_device_feature_migration) == 16
    assert vfio.vfio_device_feature_migration.migration_flags.offset == 8


def test_flag_names() -> None:
    assert vfio.flag_names(7, vfio.MIGRATION_FLAGS) == ["STOP_COPY", "P2P", "PRE_COPY"]
    assert vfio.flag_names(0x83, vfio.DEVICE_FLAGS) == ["RESET", "PCI", "CAPS"]
