"""VFIO on the real kernel: QEMU's edu device on vfio-pci (no migration) and mtty (migration v2), through devmig's
ctypes bindings (devmig.migrate.vfio) and its driver test bench (`devmig vfio probe`)."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devmig.host import Inventory
from devmig.host.sysfs import SysfsRoot
from devmig.migrate.device import VfioError
from devmig.migrate.fsm import PRE_COPY, RESUMING, RUNNING, STOP, STOP_COPY
from devmig.migrate.uapi import VFIO_PCI_BAR0_REGION_INDEX
from devmig.migrate.vfio import VfioDataFd, VfioDevice, open_device
from tests.kernel.guest.conftest import devmig, devmig_process

pytestmark = pytest.mark.kernel

EDU_ID = "1234:11e8"
#: mtty's saved state: a 24-byte header (magic, version, nr_ports, flags), then 36 bytes per port
MTTY_HEADER, MTTY_PORT = 24, 36
PORTS = {"mtty-1": 1, "mtty-2": 2}
UART_SCR = 7  # the 16550 scratch register, in BAR0


def edu_address() -> str:
    (edu,) = [f for f in Inventory.scan("/", parts=("pci",)).pci if f.pci_id == EDU_ID]
    return edu.address


def test_edu_binds_to_vfio_pci_and_is_not_migratable() -> None:
    address = edu_address()
    driver = Path(f"/sys/bus/pci/devices/{address}/driver")
    assert not driver.exists()  # edu has no in-kernel driver
    bound = devmig("pci", "bind", address, "vfio-pci")
    assert bound.code == 0, bound.err
    try:
        assert driver.resolve().name == "vfio-pci"
        listed = json.loads(devmig("list", "-j").out)["devices"]
        (entry,) = [d for d in listed if d["kind"] == "pci" and d["address"] == address]
        assert entry["pci_id"] == EDU_ID and entry["iommu_group"] is not None and not entry["migration_driver"]
        info = devmig("vfio", "info", address, "-j")
        assert info.code == 0, info.err
        data = json.loads(info.out)
        assert "PCI" in data["flags"] and data["migration"] is None and "ENOTTY" in data["migration_error"]
        text = devmig("vfio", "info", address).out
        assert "migration:  none (the driver implements no VFIO migration (ENOTTY))" in text
        described = json.loads(devmig("describe", address).out)
        assert described["confidence"] == "unverified" and described["api"]["pci_id"] == EDU_ID
    finally:
        unbound = devmig("pci", "unbind", address)
    assert unbound.code == 0, unbound.err
    assert not driver.exists()
    assert Path(f"/sys/bus/pci/devices/{address}/driver_override").read_text() == "(null)\n"


def test_mtty_reports_migration_v2_flags(cleanup: list[str]) -> None:
    made = devmig("mdev", "create", "mtty", "mtty-2")
    assert made.code == 0, made.err
    uuid = made.out.strip()
    cleanup.append(uuid)
    info = devmig("vfio", "info", uuid, "-j")
    assert info.code == 0, info.err
    data = json.loads(info.out)
    assert data["migration"] == ["STOP_COPY", "P2P", "PRE_COPY"]
    assert "PCI" in data["flags"]


def test_vfio_errors_are_one_line() -> None:
    address = edu_address()
    unbound = devmig_process("vfio", "info", address)
    assert unbound.code == 1 and "not to a VFIO driver" in unbound.err and unbound.err.count("\n") == 1


def create_mtty(mtype: str, cleanup: list[str]) -> str:
    made = devmig("mdev", "create", "mtty", mtype)
    assert made.code == 0, made.err
    cleanup.append(made.out.strip())
    return made.out.strip()


def session(data_fd: VfioDataFd | None) -> VfioDataFd:
    assert data_fd is not None, "the arc opens a session: a data_fd was expected"
    return data_fd


@contextmanager
def opened(uuid: str, path: str = "auto") -> Iterator[VfioDevice]:
    with open_device(SysfsRoot("/"), uuid, path) as device:
        yield device


def test_probe_agrees_with_the_table_on_every_arc(cleanup: list[str]) -> None:
    uuid = create_mtty("mtty-2", cleanup)
    probed = devmig("vfio", "probe", uuid, "-j")
    assert probed.code == 0, probed.out + probed.err
    report = json.loads(probed.out)
    assert report["agrees"], report["disagreements"]
    assert report["migration"] == ["STOP_COPY", "P2P", "PRE_COPY"] and report["requests"] == 7 * 8
    assert report["saved_bytes"] == MTTY_HEADER + 2 * MTTY_PORT and report["left_state"] == "RUNNING"
    states = {c["state"]: c for c in report["states"]}
    assert {c["mig_data_size"] for c in states.values()} == {MTTY_HEADER + 2 * MTTY_PORT}
    assert states["PRE_COPY"]["precopy_info"] == [MTTY_HEADER, 0]  # only the header is ready in pre-copy
    assert states["STOP_COPY"]["precopy_info"] == "EINVAL"
    text = devmig("vfio", "probe", uuid)
    assert text.code == 0 and "result:     the driver agrees with the table on every request" in text.out
    with opened(uuid) as device:
        assert device.get_state() is RUNNING


@pytest.mark.parametrize("mtype", ["mtty-1", "mtty-2"])
def test_mig_data_size_and_precopy_info(mtype: str, cleanup: list[str]) -> None:
    size = MTTY_HEADER + MTTY_PORT * PORTS[mtype]
    with opened(create_mtty(mtype, cleanup)) as device:
        assert device.mig_data_size() == size
        with session(device.set_state(PRE_COPY)) as saving:
            assert saving.precopy_info() == (MTTY_HEADER, 0)
            header = saving.read(4096)
            assert len(header) == MTTY_HEADER and saving.precopy_info() == (0, 0)
            assert device.set_state(STOP_COPY) is None  # PRE_COPY_P2P -> STOP_COPY keeps the session
            with pytest.raises(VfioError) as refused:
                saving.precopy_info()
            assert refused.value.errno == errno.EINVAL
            buffer, rest = bytearray(16), 0
            while count := saving.readinto(buffer):  # one reused buffer
                rest += count
            assert rest == size - MTTY_HEADER
        assert device.mig_data_size() == size
        device.reset()
        assert device.get_state() is RUNNING


def kernel_config() -> dict[str, str]:
    """The running kernel's build options, from its headers package (the guest sees the host's /usr/src)."""
    release = os.uname().release
    lines = Path(f"/usr/src/linux-headers-{release}/.config").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.startswith("CONFIG_"))


def test_dma_logging_start_report_stop(cleanup: list[str]) -> None:
    with opened(create_mtty("mtty-1", cleanup)) as device:
        page = device.dma_logging_start([(0, 1 << 20), (4 << 20, 64 << 10)], 4096)
        assert page == 4096  # mtty's log ops are no-ops: the page size comes back unchanged
        if kernel_config().get("CONFIG_IOMMUFD_DRIVER") == "y":
            assert device.dma_logging_report(0, 1 << 20, 4096) == bytes(32)  # 256 pages, nothing dirty
        else:
            # Debian's 6.12: the VFIO core's iova_bitmap is a stub, so every report fails before reaching mtty.
            with pytest.raises(VfioError, match="built without CONFIG_IOMMUFD_DRIVER") as unsupported:
                device.dma_logging_report(0, 1 << 20, 4096)
            assert unsupported.value.errno == errno.EOPNOTSUPP
        device.dma_logging_stop()
        with pytest.raises(VfioError) as refused:
            device.dma_logging_start([], 4096)
        assert refused.value.errno == errno.EINVAL


def test_uart_scratch_register_through_the_vfio_region_and_a_raw_migration(cleanup: list[str]) -> None:
    source_uuid, dest_uuid = create_mtty("mtty-2", cleanup), create_mtty("mtty-2", cleanup)
    with opened(source_uuid) as source, opened(dest_uuid) as dest:
        region = source.region_info(VFIO_PCI_BAR0_REGION_INDEX)
        assert region.size == 8 and {"READ", "WRITE"} <= set(region.flags)
        source.region_write(VFIO_PCI_BAR0_REGION_INDEX, UART_SCR, b"\x5a")
        assert source.region_read(VFIO_PCI_BAR0_REGION_INDEX, UART_SCR, 1) == b"\x5a"
        assert dest.region_read(VFIO_PCI_BAR0_REGION_INDEX, UART_SCR, 1) != b"\x5a"
        with session(source.set_state(STOP_COPY)) as saving:
            stream = b""
            while chunk := saving.read(7):  # small reads: the stream may be cut anywhere
                stream += chunk
        with session(dest.set_state(RESUMING)) as resuming:
            assert resuming.write(stream) == len(stream) == MTTY_HEADER + 2 * MTTY_PORT
            assert dest.set_state(STOP) is None  # RESUMING -> STOP loads the state
        assert dest.set_state(RUNNING) is None
        assert dest.region_read(VFIO_PCI_BAR0_REGION_INDEX, UART_SCR, 1) == b"\x5a"
        with pytest.raises(VfioError, match="outside the region's 8 bytes"):
            dest.region_read(VFIO_PCI_BAR0_REGION_INDEX, 7, 2)
        source.reset()


def test_the_iommufd_cdev_path(cleanup: list[str]) -> None:
    """Debian's 6.12 is built without CONFIG_IOMMUFD (so without VFIO_DEVICE_CDEV): then asking for the cdev is
    one clear error and auto takes the group; a kernel with both opens the device through /dev/iommu."""
    uuid = create_mtty("mtty-1", cleanup)
    built = kernel_config().get("CONFIG_VFIO_DEVICE_CDEV") == "y"
    (node,) = Path(f"/sys/bus/mdev/devices/{uuid}/vfio-dev").iterdir()  # every VFIO device has one
    assert (node / "dev").exists() == built == Path(f"/dev/vfio/devices/{node.name}").exists()
    has_cdev = built and Path("/dev/iommu").exists()
    auto = json.loads(devmig("vfio", "info", uuid, "-j").out)
    assert auto["via"] == ("cdev" if has_cdev else "group")
    cdev = devmig("vfio", "info", uuid, "--via", "cdev", "-j")
    if has_cdev:
        assert cdev.code == 0, cdev.err
        assert json.loads(cdev.out)["via"] == "cdev"
        with opened(uuid, "cdev") as device:
            assert device.migration_flags() == 7 and device.get_state() is RUNNING
    else:
        assert cdev.code == 1 and cdev.out == ""
        assert cdev.err.startswith(f"devmig: error: device {uuid}: no VFIO cdev (") and cdev.err.count("\n") == 1
        assert "vfio-dev/vfioN has no device number: the kernel is built without CONFIG_VFIO_DEVICE_CDEV" in cdev.err
    group = devmig("vfio", "info", uuid, "--via", "group")
    assert group.code == 0 and "opened via: group" in group.out
