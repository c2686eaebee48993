"""The real VFIO bindings away from a kernel: choosing the way to a device fd on fixture trees, the errors when a way
is missing, closing what was opened on failure, and the data_fd over a pipe.

The ioctls themselves run against the real kernel in the kernel tier (tests/kernel/guest/test_vfio.py); the
structures and numbers are checked against the kernel's headers in tests/unit/test_vfio_abi.py.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmig.errors import InputError
from devmig.host import SysfsRoot
from devmig.migrate.device import VfioError
from devmig.migrate.vfio import VfioDataFd, cdev_name, open_device
from devmig.testing.sysfs_tree import SysfsTree
from tests.labs import MTTY, MTTY_UUID

DEVICE = f"{MTTY}/{MTTY_UUID}"


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def with_cdev(lab: SysfsTree, *, number: bool = True, iommu: bool = True) -> SysfsTree:
    """<device>/vfio-dev/vfio3 (with its `dev` attribute when the kernel gave it a device number), the node and
    /dev/iommu as plain files: enough to choose a path, not to bind (a plain file has no ioctls)."""
    lab.mkdir(f"{DEVICE}/vfio-dev/vfio3")
    if number:
        lab.write(f"{DEVICE}/vfio-dev/vfio3/dev", "511:3")
        lab.write("dev/vfio/devices/vfio3", "", newline=False)
    if iommu:
        lab.write("dev/iommu", "", newline=False)
    return lab


def test_the_cdev_needs_a_device_number(lab: SysfsTree) -> None:
    root = SysfsRoot(lab.root)
    assert cdev_name(root, DEVICE) is None  # no vfio-dev: a kernel before 6.6
    with_cdev(lab, number=False)
    assert cdev_name(root, DEVICE) is None  # vfio-dev without `dev`: built without CONFIG_VFIO_DEVICE_CDEV
    lab.write(f"{DEVICE}/vfio-dev/vfio3/dev", "511:3")
    assert cdev_name(root, DEVICE) == "vfio3"


def test_asking_for_a_missing_cdev_is_one_clear_error(lab: SysfsTree) -> None:
    root = SysfsRoot(lab.root)
    with pytest.raises(
        VfioError, match=r"no VFIO cdev .*built without CONFIG_VFIO_DEVICE_CDEV.*use the group path"
    ) as e:
        open_device(root, MTTY_UUID, "cdev")
    assert e.value.errno == errno.ENOENT
    with_cdev(lab, iommu=False)
    with pytest.raises(VfioError, match=r"/dev/iommu is missing .*iommufd module is not loaded") as e:
        open_device(root, MTTY_UUID, "cdev")
    assert e.value.errno == errno.ENOENT


def test_a_path_name_is_checked() -> None:
    with pytest.raises(InputError, match="VFIO path 'tunnel': expected one of auto, group, cdev"):
        open_device(SysfsRoot("/"), MTTY_UUID, "tunnel")


def test_auto_takes_the_group_without_the_cdev(lab: SysfsTree) -> None:
    with pytest.raises(VfioError, match="cannot open the VFIO container /dev/vfio/vfio"):
        open_device(SysfsRoot(lab.root), MTTY_UUID)


def test_auto_prefers_the_cdev_and_closes_everything_when_binding_fails(lab: SysfsTree) -> None:
    root = SysfsRoot(with_cdev(lab).root)
    before = open_fds()
    with pytest.raises(VfioError, match=f"{MTTY_UUID}: VFIO_DEVICE_BIND_IOMMUFD: .*ENOTTY") as e:
        open_device(root, MTTY_UUID)
    assert e.value.errno == errno.ENOTTY
    assert open_fds() == before
    with pytest.raises(VfioError, match="cannot open the VFIO container"):
        open_device(root, MTTY_UUID, "group")  # asked for: the group, though the cdev is there


@pytest.fixture
def pipe() -> Iterator[tuple[VfioDataFd, VfioDataFd]]:
    r, w = os.pipe()
    reader, writer = VfioDataFd(r, "dev0"), VfioDataFd(w, "dev0")
    yield reader, writer
    reader.close()
    writer.close()


def test_data_fd_reads_and_writes_everything(pipe: tuple[VfioDataFd, VfioDataFd]) -> None:
    reader, writer = pipe
    data = os.urandom(1 << 20)  # more than a pipe holds: write() loops over partial writes
    received = bytearray()

    def drain() -> None:
        buffer = bytearray(64 << 10)
        while count := reader.readinto(buffer):
            received.extend(buffer[:count])

    thread = threading.Thread(target=drain)
    thread.start()
    assert writer.write(memoryview(data)) == len(data)
    writer.close()
    thread.join(timeout=30)
    assert bytes(received) == data
    assert reader.read() == b""


def test_data_fd_errors_name_the_device_and_the_call(pipe: tuple[VfioDataFd, VfioDataFd]) -> None:
    reader, writer = pipe
    with pytest.raises(VfioError, match=r"dev0: data_fd VFIO_MIG_GET_PRECOPY_INFO: .* \(ENOTTY\)") as e:
        reader.precopy_info()  # a pipe is not a migration file
    assert e.value.errno == errno.ENOTTY
    with pytest.raises(VfioError, match=r"dev0: data_fd read: .* \(EBADF\)"):
        writer.read()
    writer.close()
    writer.close()  # closing twice is harmless
    with pytest.raises(VfioError, match="dev0: data_fd: the file is closed") as e:
        writer.write(b"x")
    assert e.value.errno == errno.EBADF


def test_enomsg_is_the_temporary_end_of_a_precopy_stream(
    pipe: tuple[VfioDataFd, VfioDataFd], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_message(fd: int, size: int) -> bytes:
        raise OSError(errno.ENOMSG, os.strerror(errno.ENOMSG))

    monkeypatch.setattr(os, "read", no_message)
    with pytest.raises(VfioError) as e:
        pipe[0].read()
    assert e.value.errno == errno.ENOMSG
