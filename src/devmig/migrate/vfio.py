"""VFIO from Python: open a device through its IOMMU group and ask what it can do.

The uAPI facts (include/uapi/linux/vfio.h): every VFIO ioctl is `_IO(';', 100 + n)`, so its number carries no size;
structures are plain little-endian C layouts, given here as ctypes. The group/container path is used
(`/dev/vfio/vfio` + `/dev/vfio/<group>`), which every kernel with VFIO has.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from dataclasses import dataclass
from types import TracebackType

from devmig.errors import DevmigError
from devmig.host.sysfs import Sysfs, SysfsRoot

VFIO_TYPE = ord(";")
VFIO_BASE = 100


def vfio_ioctl(n: int) -> int:
    """_IO(VFIO_TYPE, VFIO_BASE + n): no direction, no size."""
    return (VFIO_TYPE << 8) | (VFIO_BASE + n)


VFIO_GET_API_VERSION = vfio_ioctl(0)
VFIO_CHECK_EXTENSION = vfio_ioctl(1)
VFIO_SET_IOMMU = vfio_ioctl(2)
VFIO_GROUP_GET_STATUS = vfio_ioctl(3)
VFIO_GROUP_SET_CONTAINER = vfio_ioctl(4)
VFIO_GROUP_GET_DEVICE_FD = vfio_ioctl(6)
VFIO_DEVICE_GET_INFO = vfio_ioctl(7)
VFIO_DEVICE_FEATURE = vfio_ioctl(17)

VFIO_API_VERSION = 0
VFIO_TYPE1v2_IOMMU = 3
VFIO_GROUP_FLAGS_VIABLE = 1 << 0

VFIO_DEVICE_FEATURE_GET = 1 << 16
VFIO_DEVICE_FEATURE_SET = 1 << 17
VFIO_DEVICE_FEATURE_PROBE = 1 << 18
VFIO_DEVICE_FEATURE_MIGRATION = 1

#: VFIO_MIGRATION_* bits of the MIGRATION feature
MIGRATION_FLAGS: dict[int, str] = {1 << 0: "STOP_COPY", 1 << 1: "P2P", 1 << 2: "PRE_COPY"}
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


class vfio_group_status(ctypes.Structure):  # noqa: N801 - the kernel's name
    _fields_ = (("argsz", ctypes.c_uint32), ("flags", ctypes.c_uint32))


class vfio_device_info(ctypes.Structure):  # noqa: N801
    _fields_ = (
        ("argsz", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("num_regions", ctypes.c_uint32),
        ("num_irqs", ctypes.c_uint32),
        ("cap_offset", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    )


class vfio_device_feature_migration(ctypes.Structure):  # noqa: N801 - header + payload in one
    _fields_ = (("argsz", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("migration_flags", ctypes.c_uint64))


class VfioError(DevmigError):
    def __init__(self, message: str, err: int | None = None) -> None:
        super().__init__(message)
        self.errno = err


def flag_names(value: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in table.items() if value & bit]


@dataclass
class DeviceInfo:
    name: str
    group: int
    flags: list[str]
    num_regions: int
    num_irqs: int
    #: VFIO_MIGRATION_* names, or None when the device has no migration support (ENOTTY)
    migration: list[str] | None
    migration_error: str | None = None


def _ioctl(
    fd: int, request: int, arg: int | ctypes.Structure | ctypes.Array[ctypes.c_char] | ctypes.c_int, what: str
) -> int:
    """ioctl with an int argument or a ctypes object the kernel reads and fills in place."""
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise VfioError(f"{what}: {exc.strerror}", exc.errno) from None


class VfioDevice:
    """An open VFIO device (container, group and device fds), closed by `close()` or a with-block."""

    def __init__(self, root: SysfsRoot, name: str, group: int) -> None:
        self.name, self.group = name, group
        dev = root.path("dev/vfio")
        self._fds: list[int] = []
        try:
            self.container = self._open(f"{dev}/vfio", "the VFIO container /dev/vfio/vfio")
            version = _ioctl(self.container, VFIO_GET_API_VERSION, 0, "VFIO_GET_API_VERSION")
            if version != VFIO_API_VERSION:
                raise VfioError(f"VFIO API version {version}, expected {VFIO_API_VERSION}")
            if not _ioctl(self.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU, "VFIO_CHECK_EXTENSION"):
                raise VfioError("the VFIO container does not offer the type1v2 IOMMU")
            self.group_fd = self._open(f"{dev}/{group}", f"IOMMU group {group} (/dev/vfio/{group})")
            status = vfio_group_status(argsz=ctypes.sizeof(vfio_group_status))
            _ioctl(self.group_fd, VFIO_GROUP_GET_STATUS, status, "VFIO_GROUP_GET_STATUS")
            if not status.flags & VFIO_GROUP_FLAGS_VIABLE:
                raise VfioError(
                    f"IOMMU group {group} is not viable: every device in it must be bound to a VFIO driver or none"
                )
            _ioctl(self.group_fd, VFIO_GROUP_SET_CONTAINER, ctypes.c_int(self.container), "VFIO_GROUP_SET_CONTAINER")
            _ioctl(self.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU, "VFIO_SET_IOMMU")
            buf = ctypes.create_string_buffer(name.encode())
            self.fd = _ioctl(self.group_fd, VFIO_GROUP_GET_DEVICE_FD, buf, f"VFIO_GROUP_GET_DEVICE_FD {name}")
            self._fds.append(self.fd)
        except BaseException:
            self.close()
            raise

    def _open(self, path: str, what: str) -> int:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            hint = (
                " (is the vfio module loaded, and are you root?)" if exc.errno in (errno.ENOENT, errno.EACCES) else ""
            )
            raise VfioError(f"cannot open {what}: {exc.strerror}{hint}", exc.errno) from None
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self) -> VfioDevice:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def info(self) -> vfio_device_info:
        info = vfio_device_info(argsz=ctypes.sizeof(vfio_device_info))
        _ioctl(self.fd, VFIO_DEVICE_GET_INFO, info, "VFIO_DEVICE_GET_INFO")
        return info

    def migration_flags(self) -> int:
        """VFIO_DEVICE_FEATURE GET MIGRATION; raises VfioError with errno ENOTTY when the driver has none."""
        feature = vfio_device_feature_migration(
            argsz=ctypes.sizeof(vfio_device_feature_migration),
            flags=VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
        )
        _ioctl(self.fd, VFIO_DEVICE_FEATURE, feature, "VFIO_DEVICE_FEATURE GET MIGRATION")
        return int(feature.migration_flags)

    def describe(self) -> DeviceInfo:
        info = self.info()
        try:
            migration: list[str] | None = flag_names(self.migration_flags(), MIGRATION_FLAGS)
            error = None
        except VfioError as exc:
            if exc.errno != errno.ENOTTY:
                raise
            migration, error = None, "the driver implements no VFIO migration (ENOTTY)"
        return DeviceInfo(
            name=self.name,
            group=self.group,
            flags=flag_names(info.flags, DEVICE_FLAGS),
            num_regions=info.num_regions,
            num_irqs=info.num_irqs,
            migration=migration,
            migration_error=error,
        )


def open_device(root: Sysfs, name: str) -> VfioDevice:
    """Open an mdev (by UUID) or a PCI function (by address) bound to a VFIO driver."""
    from devmig.host.devices import MdevDevice, PciFunction
    from devmig.host.inventory import Inventory

    device = Inventory.scan(root, parts=("mdevs", "pci")).device(name)
    if isinstance(device, MdevDevice):
        key, group = device.uuid, device.iommu_group
    elif isinstance(device, PciFunction):
        if not device.vfio:
            raise VfioError(
                f"PCI function {device.address}: bound to {device.driver or 'no driver'}, not to a VFIO "
                "driver (devmig pci bind ADDRESS vfio-pci)"
            )
        key, group = device.address, device.iommu_group
    else:
        raise VfioError(f"device {name}: a subchannel is opened through its mdev")
    if group is None:
        raise VfioError(f"device {name}: it has no IOMMU group (is an IOMMU enabled, and is the device bound?)")
    if not isinstance(root, SysfsRoot):
        raise VfioError(f"device {name}: {root.root} is not a real host; open its devices through devmig.host.hosts")
    return VfioDevice(root, key, group)


def group_in_use(group: int) -> bool | None:
    """Is IOMMU group `group` open (by a VM)? The kernel lets one process open a VFIO group at a time, and refuses
    it with EBUSY while any of its devices is open through its iommufd cdev (drivers/vfio/group.c), so an open that
    succeeds and is closed at once tells the group is free. None when it cannot be told (no permission, no node)."""
    try:
        fd = os.open(f"/dev/vfio/{group}", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return True if exc.errno == errno.EBUSY else None
    os.close(fd)
    return False
