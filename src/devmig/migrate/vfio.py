"""VFIO from Python: open a device, ask what it can do, and drive its migration (the real ioctls).

The uAPI's numbers and structures are in devmig.migrate.uapi; the seam's types (`VfioError`, `DeviceInfo`) in
devmig.migrate.device. This module makes the system calls.

Two ways to a device fd:
- the group path: the container /dev/vfio/vfio (type1v2 IOMMU) + the IOMMU group /dev/vfio/<group>, then
  VFIO_GROUP_GET_DEVICE_FD; every kernel with VFIO has it;
- the iommufd cdev path: /dev/vfio/devices/vfioN (N from sysfs: <device>/vfio-dev/vfioN) bound to /dev/iommu with
  VFIO_DEVICE_BIND_IOMMUFD, then attached to a fresh IOAS (IOMMU_IOAS_ALLOC, VFIO_DEVICE_ATTACH_IOMMUFD_PT); it needs
  a kernel built with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV (Debian's 6.12 has neither).

`VfioDevice` satisfies devmig.migrate.device.MigrationDevice, `VfioDataFd` satisfies DataFd. Every failed system
call becomes a `VfioError` naming the device and the ioctl, with the kernel's errno in `.errno`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final

from devmig.errors import InputError
from devmig.host.sysfs import Sysfs, SysfsRoot, needs_root
from devmig.migrate.device import DeviceInfo, RegionInfo, VfioError, flag_names
from devmig.migrate.uapi import (
    DEVICE_FLAGS,
    IOMMU_DESTROY,
    IOMMU_IOAS_ALLOC,
    MIGRATION_FLAGS,
    REGION_FLAGS,
    VFIO_API_VERSION,
    VFIO_CHECK_EXTENSION,
    VFIO_DEVICE_ATTACH_IOMMUFD_PT,
    VFIO_DEVICE_BIND_IOMMUFD,
    VFIO_DEVICE_FEATURE,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
    VFIO_DEVICE_FEATURE_GET,
    VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
    VFIO_DEVICE_FEATURE_MIGRATION,
    VFIO_DEVICE_FEATURE_SET,
    VFIO_DEVICE_GET_INFO,
    VFIO_DEVICE_GET_REGION_INFO,
    VFIO_DEVICE_RESET,
    VFIO_GET_API_VERSION,
    VFIO_GROUP_FLAGS_VIABLE,
    VFIO_GROUP_GET_DEVICE_FD,
    VFIO_GROUP_GET_STATUS,
    VFIO_GROUP_SET_CONTAINER,
    VFIO_MIG_GET_PRECOPY_INFO,
    VFIO_SET_IOMMU,
    MigState,
    VFIO_TYPE1v2_IOMMU,
    iommu_destroy,
    iommu_ioas_alloc,
    vfio_device_attach_iommufd_pt,
    vfio_device_bind_iommufd,
    vfio_device_feature,
    vfio_device_feature_dma_logging_control,
    vfio_device_feature_dma_logging_range,
    vfio_device_feature_dma_logging_report,
    vfio_device_feature_mig_data_size,
    vfio_device_feature_mig_state,
    vfio_device_feature_migration,
    vfio_device_info,
    vfio_group_status,
    vfio_precopy_info,
    vfio_region_info,
)

# -- small helpers ---------------------------------------------------------------------------------------


def _os_error(what: str, exc: OSError) -> VfioError:
    code = exc.errno or errno.EIO
    return VfioError(f"{what}: {os.strerror(code)} ({errno.errorcode.get(code, code)})", code)


IoctlArg = int | ctypes.Structure | ctypes.Array[ctypes.c_char] | ctypes.c_int


def _ioctl(fd: int, request: int, arg: IoctlArg, what: str) -> int:
    """ioctl with an int argument or a ctypes object the kernel reads and fills in place."""
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise _os_error(what, exc) from None


def _state_name(value: int) -> str:
    try:
        return MigState(value).name
    except ValueError:
        return str(value)


# -- the data_fd ----------------------------------------------------------------------------------------------------


class VfioDataFd:
    """The migration session's file, as SET MIG_DEVICE_STATE returned it (closed by `close()` or a with-block)."""

    def __init__(self, fd: int, device: str) -> None:
        self._fd: int | None = fd
        self.device = device

    def __repr__(self) -> str:
        return f"VfioDataFd({self._fd}, {self.device!r})"

    def fileno(self) -> int:
        if self._fd is None:
            raise VfioError(f"{self.device}: data_fd: the file is closed", errno.EBADF)
        return self._fd

    def read(self, size: int = 1 << 20) -> bytes:
        """Up to `size` bytes; b"" at the end of the stream. ENOMSG (pre-copy's temporary end) is a VfioError."""
        try:
            return os.read(self.fileno(), size)
        except OSError as exc:
            raise _os_error(f"{self.device}: data_fd read", exc) from None

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into `buffer` (reused between reads): the number of bytes, 0 at the end of the stream."""
        try:
            return os.readv(self.fileno(), [buffer])
        except OSError as exc:
            raise _os_error(f"{self.device}: data_fd read", exc) from None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of `data` (a driver may take it in parts); returns len(data)."""
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):
            try:
                written = os.write(self.fileno(), view[done:])
            except OSError as exc:
                raise _os_error(f"{self.device}: data_fd write at byte {done}", exc) from None
            if written <= 0:  # a file that takes nothing would loop for ever
                raise VfioError(f"{self.device}: data_fd write at byte {done}: the driver took 0 bytes", errno.EIO)
            done += written
        return done

    def precopy_info(self) -> tuple[int, int]:
        """VFIO_MIG_GET_PRECOPY_INFO: (initial_bytes, dirty_bytes); EINVAL outside PRE_COPY and PRE_COPY_P2P."""
        info = vfio_precopy_info(argsz=ctypes.sizeof(vfio_precopy_info))
        _ioctl(self.fileno(), VFIO_MIG_GET_PRECOPY_INFO, info, f"{self.device}: data_fd VFIO_MIG_GET_PRECOPY_INFO")
        return int(info.initial_bytes), int(info.dirty_bytes)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> VfioDataFd:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


# -- the device -----------------------------------------------------------------------------------------------------


def _open(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        code = exc.errno or errno.EIO
        if needs_root(code):
            # libvirt gives a VM's user its group's file instead: either will do
            hint = " (needs root, or a user the file belongs to)"
        else:
            hint = " (is the vfio module loaded?)" if code == errno.ENOENT else ""
        raise VfioError(f"cannot open {what}: {os.strerror(code)}{hint}", code) from None


class VfioDevice:
    """An open VFIO device. `open_group` and `open_cdev` make one; `close()` or a with-block releases every fd."""

    def __init__(self, name: str, group: int | None, via: str) -> None:
        self.name, self.group, self.via = name, group, via
        self.fd = -1
        #: what close() undoes, last first
        self._undo: list[Callable[[], None]] = []

    @classmethod
    def open_group(cls, root: SysfsRoot, name: str, group: int) -> VfioDevice:
        """The group path: container + IOMMU group (type1v2), then VFIO_GROUP_GET_DEVICE_FD by name."""
        self = cls(name, group, "group")
        dev = root.path("dev/vfio")
        try:
            container = self._own(_open(f"{dev}/vfio", "the VFIO container /dev/vfio/vfio"))
            version = _ioctl(container, VFIO_GET_API_VERSION, 0, f"{name}: the VFIO container: VFIO_GET_API_VERSION")
            if version != VFIO_API_VERSION:
                raise VfioError(f"the VFIO container: API version {version}, expected {VFIO_API_VERSION}")
            if not _ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU, f"{name}: VFIO_CHECK_EXTENSION"):
                raise VfioError("the VFIO container does not offer the type1v2 IOMMU")
            group_fd = self._own(_open(f"{dev}/{group}", f"IOMMU group {group} (/dev/vfio/{group})"))
            status = vfio_group_status(argsz=ctypes.sizeof(vfio_group_status))
            _ioctl(group_fd, VFIO_GROUP_GET_STATUS, status, f"IOMMU group {group}: VFIO_GROUP_GET_STATUS")
            if not status.flags & VFIO_GROUP_FLAGS_VIABLE:
                raise VfioError(
                    f"IOMMU group {group} is not viable: every device in it must be bound to a VFIO driver or none"
                )
            _ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, ctypes.c_int(container), f"{name}: VFIO_GROUP_SET_CONTAINER")
            _ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU, f"{name}: VFIO_SET_IOMMU")
            buf = ctypes.create_string_buffer(name.encode())
            self.fd = self._own(_ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, buf, f"{name}: VFIO_GROUP_GET_DEVICE_FD"))
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def open_cdev(cls, root: SysfsRoot, name: str, cdev: str, group: int | None = None) -> VfioDevice:
        """The iommufd path: /dev/vfio/devices/<cdev> bound to /dev/iommu and attached to a new IOAS."""
        self = cls(name, group, "cdev")
        try:
            iommufd = self._own(_open(root.path("dev/iommu"), "/dev/iommu"))
            self.fd = self._own(_open(root.path(f"dev/vfio/devices/{cdev}"), f"{name}'s cdev /dev/vfio/devices/{cdev}"))
            bind = vfio_device_bind_iommufd(argsz=ctypes.sizeof(vfio_device_bind_iommufd), iommufd=iommufd)
            _ioctl(self.fd, VFIO_DEVICE_BIND_IOMMUFD, bind, f"{name}: VFIO_DEVICE_BIND_IOMMUFD")
            ioas = iommu_ioas_alloc(size=ctypes.sizeof(iommu_ioas_alloc))
            _ioctl(iommufd, IOMMU_IOAS_ALLOC, ioas, f"{name}: /dev/iommu: IOMMU_IOAS_ALLOC")
            # close() runs this list backwards: the device fd closes (detaching it), then the IOAS goes, then iommufd.
            self._undo.insert(1, lambda: _destroy(iommufd, int(ioas.out_ioas_id)))
            attach = vfio_device_attach_iommufd_pt(argsz=ctypes.sizeof(vfio_device_attach_iommufd_pt))
            attach.pt_id = ioas.out_ioas_id
            _ioctl(self.fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach, f"{name}: VFIO_DEVICE_ATTACH_IOMMUFD_PT")
        except BaseException:
            self.close()
            raise
        return self

    def _own(self, fd: int) -> int:
        self._undo.append(lambda: os.close(fd))
        return fd

    def close(self) -> None:
        while self._undo:
            self._undo.pop()()
        self.fd = -1

    def __enter__(self) -> VfioDevice:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VfioDevice({self.name!r}, via={self.via})"

    # -- what it is --------------------------------------------------------------------------------------------------

    def _ioctl(self, request: int, arg: IoctlArg, what: str) -> int:
        if self.fd < 0:
            raise VfioError(f"{self.name}: {what}: the device is closed", errno.EBADF)
        return _ioctl(self.fd, request, arg, f"{self.name}: {what}")

    def info(self) -> vfio_device_info:
        info = vfio_device_info(argsz=ctypes.sizeof(vfio_device_info))
        self._ioctl(VFIO_DEVICE_GET_INFO, info, "VFIO_DEVICE_GET_INFO")
        return info

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
            via=self.via,
        )

    def reset(self) -> None:
        """VFIO_DEVICE_RESET: back to RUNNING, any migration session closed."""
        self._ioctl(VFIO_DEVICE_RESET, 0, "VFIO_DEVICE_RESET")

    # -- regions -----------------------------------------------------------------------------------------------------

    def region_info(self, index: int) -> RegionInfo:
        info = vfio_region_info(argsz=ctypes.sizeof(vfio_region_info), index=index)
        self._ioctl(VFIO_DEVICE_GET_REGION_INFO, info, f"VFIO_DEVICE_GET_REGION_INFO region {index}")
        return RegionInfo(index, flag_names(info.flags, REGION_FLAGS), int(info.size), int(info.offset))

    def _region(self, index: int, offset: int, size: int, access: str) -> tuple[RegionInfo, str]:
        region = self.region_info(index)
        what = f"{self.name}: region {index} {access.lower()} of {size} bytes at {offset:#x}"
        if access not in region.flags:
            raise VfioError(f"{what}: the region is not {access.lower()}able (flags {region.flags})", errno.EINVAL)
        if offset < 0 or offset + size > region.size:
            raise VfioError(f"{what}: outside the region's {region.size} bytes", errno.EINVAL)
        return region, what

    def region_read(self, index: int, offset: int, size: int) -> bytes:
        """pread from region `index` at `offset` (the driver emulates registers: read exactly what is asked)."""
        region, what = self._region(index, offset, size, "READ")
        try:
            data = os.pread(self.fd, size, region.offset + offset)
        except OSError as exc:
            raise _os_error(what, exc) from None
        if len(data) != size:
            raise VfioError(f"{what}: the driver gave {len(data)} bytes", errno.EIO)
        return data

    def region_write(self, index: int, offset: int, data: bytes) -> None:
        region, what = self._region(index, offset, len(data), "WRITE")
        try:
            written = os.pwrite(self.fd, data, region.offset + offset)
        except OSError as exc:
            raise _os_error(what, exc) from None
        if written != len(data):
            raise VfioError(f"{what}: the driver took {written} bytes", errno.EIO)

    # -- VFIO_DEVICE_FEATURE -----------------------------------------------------------------------------------------

    def _feature(self, flags: int, payload: ctypes.Structure | None, what: str) -> None:
        """VFIO_DEVICE_FEATURE with the header followed by `payload`, which receives what the kernel wrote back."""
        head = ctypes.sizeof(vfio_device_feature)
        size = head + (ctypes.sizeof(payload) if payload is not None else 0)
        buf = ctypes.create_string_buffer(size)
        header = vfio_device_feature.from_buffer(buf)
        header.argsz, header.flags = size, flags
        if payload is not None:
            ctypes.memmove(ctypes.addressof(buf) + head, ctypes.addressof(payload), ctypes.sizeof(payload))
        self._ioctl(VFIO_DEVICE_FEATURE, buf, f"VFIO_DEVICE_FEATURE {what}")
        if payload is not None:
            ctypes.memmove(ctypes.addressof(payload), ctypes.addressof(buf) + head, ctypes.sizeof(payload))

    def migration_flags(self) -> int:
        """GET MIGRATION (VFIO_MIGRATION_* bits); VfioError with errno ENOTTY when the driver has none."""
        payload = vfio_device_feature_migration()
        self._feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, payload, "GET MIGRATION")
        return int(payload.flags)

    def get_state(self) -> MigState:
        payload = vfio_device_feature_mig_state(data_fd=-1)
        self._feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, payload, "GET MIG_DEVICE_STATE")
        try:
            return MigState(payload.device_state)
        except ValueError:
            raise VfioError(
                f"{self.name}: GET MIG_DEVICE_STATE: the driver answered state {payload.device_state}, "
                "expected a VFIO migration state (0-7)",
                errno.EINVAL,
            ) from None

    def set_state(self, target: int) -> VfioDataFd | None:
        """SET MIG_DEVICE_STATE: the new data_fd when the final arc opens a session (the kernel answers -1 when
        none opens), else None. The caller closes the data_fd."""
        payload = vfio_device_feature_mig_state(device_state=target, data_fd=-1)
        self._feature(
            VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
            payload,
            f"SET MIG_DEVICE_STATE {_state_name(target)}",
        )
        return VfioDataFd(payload.data_fd, self.name) if payload.data_fd >= 0 else None

    def mig_data_size(self) -> int:
        """GET MIG_DATA_SIZE: the bytes STOP_COPY would still produce (an estimate); any state."""
        payload = vfio_device_feature_mig_data_size()
        self._feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, payload, "GET MIG_DATA_SIZE")
        return int(payload.stop_copy_length)

    # -- DMA logging -------------------------------------------------------------------------------------------------

    def dma_logging_start(self, ranges: Sequence[tuple[int, int]], page_size: int) -> int:
        """SET DMA_LOGGING_START over (iova, length) ranges; returns the page size the driver chose."""
        array = (vfio_device_feature_dma_logging_range * len(ranges))(
            *(vfio_device_feature_dma_logging_range(iova, length) for iova, length in ranges)
        )
        control = vfio_device_feature_dma_logging_control(
            page_size=page_size, num_ranges=len(ranges), ranges=ctypes.addressof(array)
        )
        self._feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, control, "SET DMA_LOGGING_START")
        return int(control.page_size)

    def dma_logging_report(self, iova: int, length: int, page_size: int) -> bytes:
        """GET DMA_LOGGING_REPORT: the bitmap (u64 words; bit i is the page at iova + i * page_size) of the pages
        written since the last report."""
        pages = -(-length // page_size) if page_size > 0 else 0
        bitmap = ctypes.create_string_buffer(-(-pages // 64) * 8)
        report = vfio_device_feature_dma_logging_report(
            iova=iova, length=length, page_size=page_size, bitmap=ctypes.addressof(bitmap)
        )
        try:
            self._feature(
                VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, report, "GET DMA_LOGGING_REPORT"
            )
        except VfioError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            # The core's iova_bitmap is a stub answering EOPNOTSUPP without CONFIG_IOMMUFD_DRIVER (Debian's 6.12).
            raise VfioError(
                f"{exc.message}: the kernel's VFIO core cannot report dirty pages (built without "
                "CONFIG_IOMMUFD_DRIVER), or the driver cannot",
                exc.errno,
            ) from None
        return bitmap.raw

    def dma_logging_stop(self) -> None:
        self._feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, None, "SET DMA_LOGGING_STOP")


def _destroy(iommufd: int, object_id: int) -> None:
    """IOMMU_DESTROY, best effort: closing /dev/iommu right after frees the object anyway."""
    request = iommu_destroy(size=ctypes.sizeof(iommu_destroy), id=object_id)
    with contextlib.suppress(OSError):
        fcntl.ioctl(iommufd, IOMMU_DESTROY, request)


# -- finding a device -----------------------------------------------------------------------------------------------

#: The ways to a device fd `open_device` takes ("auto": the cdev when /dev/iommu and the cdev exist, else the group).
PATHS: Final = ("auto", "group", "cdev")


def cdev_name(root: Sysfs, device_path: str) -> str | None:
    """The device's VFIO cdev ("vfioN"), or None when the kernel made none. Every VFIO device has
    <device>/vfio-dev/vfioN in sysfs; only a kernel with CONFIG_VFIO_DEVICE_CDEV gives it a device number (its
    `dev` attribute) and so /dev/vfio/devices/vfioN."""
    names = [n for n in root.listdir_optional(f"{device_path}/vfio-dev") if n.startswith("vfio")]
    if len(names) != 1 or not root.exists(f"{device_path}/vfio-dev/{names[0]}/dev"):
        return None
    return names[0]


def open_device(root: Sysfs, name: str, path: str = "auto") -> VfioDevice:
    """Open an mdev (by UUID) or a PCI function (by address) bound to a VFIO driver, by `path` (one of PATHS)."""
    from devmig.host.devices import MdevDevice, PciFunction
    from devmig.host.inventory import Inventory

    if path not in PATHS:
        raise InputError(f"VFIO path {path!r}: expected one of {', '.join(PATHS)}")
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
    if not isinstance(root, SysfsRoot):
        raise VfioError(f"device {name}: {root.root} is not a real host; open its devices through devmig.machine")
    cdev = cdev_name(root, device.path)
    iommu = root.exists("dev/iommu")
    if path == "auto":
        path = "cdev" if cdev is not None and iommu else "group"
    if path == "cdev":
        if cdev is None:
            raise VfioError(
                f"device {key}: no VFIO cdev ({device.path}/vfio-dev/vfioN has no device number: the kernel is "
                "built without CONFIG_VFIO_DEVICE_CDEV); use the group path",
                errno.ENOENT,
            )
        if not iommu:
            raise VfioError(
                f"device {key}: /dev/iommu is missing (the iommufd module is not loaded, or the kernel is built "
                "without CONFIG_IOMMUFD); use the group path",
                errno.ENOENT,
            )
        return VfioDevice.open_cdev(root, key, cdev, group)
    if group is None:
        raise VfioError(f"device {name}: it has no IOMMU group (is an IOMMU enabled, and is the device bound?)")
    return VfioDevice.open_group(root, key, group)


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
