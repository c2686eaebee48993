"""The simulated kernel through the same seam and the same host operations as a real one: what it accepts, and
each error path the kernel has (no instance, duplicate UUID, malformed UUID, bad parameter value, busy device)."""

from __future__ import annotations

import errno

import pytest

from devmig.errors import InputError
from devmig.host import Inventory, Sysfs, SysfsError
from devmig.host.describe import Describer
from devmig.host.ops import RefusedError, bind_pci, create_mdev, remove_mdev, unbind_pci
from devmig.host.profile import load_profiles
from devmig.machine import open_host
from devmig.machine.lab import parse_sim
from devmig.sim.lab import SimHost, load_lab

GPU_TYPES = "sys/devices/pci0000:00/0000:00:02.0/mdev_supported_types"
RUNNING = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"
NEW = "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001"


@pytest.fixture
def alpha() -> SimHost:
    return load_lab().host("alpha")


def free(fs: Sysfs, type_id: str) -> int:
    return int(fs.read(f"{GPU_TYPES}/{type_id}/available_instances"))


def test_create_and_remove_through_host_ops(alpha: SimHost) -> None:
    fs = alpha.kernel.fs
    assert free(fs, "simgpu-2G") == 2  # 8 GiB pool, the running 2G device aggregates 2
    uuid, change = create_mdev(fs, "0000:00:02.0", "simgpu-2G", NEW)
    assert uuid == NEW and free(fs, "simgpu-2G") == 1 and free(fs, "simgpu-4G") == 0
    assert NEW in [m.uuid for m in Inventory.scan(fs).mdevs]
    assert fs.read(f"sys/bus/mdev/devices/{NEW}/migration/pv_mode") == "none"
    change.undo(fs)
    assert free(fs, "simgpu-2G") == 2 and not fs.exists(f"sys/bus/mdev/devices/{NEW}")


@pytest.mark.parametrize(
    ("text", "code"),
    [(RUNNING, errno.EEXIST), ("not-a-uuid", errno.EINVAL), (NEW[:-1], errno.EINVAL)],
)
def test_create_errors_are_the_kernels(alpha: SimHost, text: str, code: int) -> None:
    with pytest.raises(SysfsError) as err:
        alpha.kernel.fs.write(f"{GPU_TYPES}/simgpu-1G/create", text)
    assert err.value.errno == code


def test_no_free_instance(alpha: SimHost) -> None:
    fs = alpha.kernel.fs
    fs.write(f"{GPU_TYPES}/simgpu-4G/create", NEW)  # 8 GiB pool - 4 GiB of the running 2G x2 device: room for one
    assert free(fs, "simgpu-4G") == 0 and free(fs, "simgpu-1G") == 0
    with pytest.raises(SysfsError) as err:
        fs.write(f"{GPU_TYPES}/simgpu-1G/create", "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f002")
    assert err.value.errno == errno.ENOSPC
    with pytest.raises(RefusedError, match="no free instance"):
        create_mdev(fs, "0000:00:02.0", "simgpu-4G")


def test_parameters_are_validated_and_frozen_while_open(alpha: SimHost) -> None:
    fs = alpha.kernel.fs
    create_mdev(fs, "0000:00:02.0", "simgpu-1G", NEW)
    param = f"sys/bus/mdev/devices/{NEW}/migration"
    fs.write(f"{param}/aggregator", "2")
    fs.write(f"{param}/pv_mode", "context")
    assert (fs.read(f"{param}/aggregator"), fs.read(f"{param}/pv_mode")) == ("2", "context")
    for name, bad in (("aggregator", "3"), ("aggregator", "two"), ("pv_mode", "turbo"), ("memory", "2048")):
        with pytest.raises(SysfsError) as err:
            fs.write(f"{param}/{name}", bad)
        assert err.value.errno == errno.EINVAL, (name, bad)
    with pytest.raises(SysfsError) as busy:
        fs.write(f"sys/bus/mdev/devices/{RUNNING}/migration/pv_mode", "none")  # a VM has it open
    assert busy.value.errno == errno.EBUSY


def test_busy_devices_cannot_be_removed(alpha: SimHost) -> None:
    with pytest.raises(RefusedError, match="it is in use"):
        remove_mdev(alpha.kernel.fs, RUNNING)
    with pytest.raises(SysfsError) as err:
        alpha.kernel.fs.write(f"sys/bus/mdev/devices/{RUNNING}/remove", "1")
    assert err.value.errno == errno.EBUSY


def test_vf_binding_and_its_declared_interface(alpha: SimHost) -> None:
    fs = alpha.kernel.fs
    free_vf = "0000:3b:00.4"
    assert Inventory.scan(fs).device(free_vf).driver is None
    change = bind_pci(fs, free_vf, "simnic_vfio_pci")
    inv = Inventory.scan(fs)
    describer = Describer(inv, load_profiles("/nonexistent"))
    desc = describer.descriptor(inv.device(free_vf))
    assert desc.confidence == "declared" and desc.params == {"queues": 4, "tso": True}
    fs.write(f"sys/bus/pci/devices/{free_vf}/migration/tso", "0")
    assert describer.descriptor(Inventory.scan(fs).device(free_vf)).params == {"queues": 4}  # tso off: left out
    change.undo(fs)
    assert Inventory.scan(fs).device(free_vf).driver is None
    with pytest.raises(RefusedError):
        unbind_pci(fs, "0000:3b:00.2")  # open by a VM: the simulator refuses (EBUSY)


def test_s390_devices_have_no_migration() -> None:
    eta = open_host("sim:eta")
    inv = Inventory.scan(eta.sysfs)
    assert {t.id: t.device_api for t in inv.types()} == {"vfio_ccw-io": "vfio-ccw", "vfio_ap-passthrough": "vfio-ap"}
    uuid, _ = create_mdev(eta.sysfs, "0.0.0313", "vfio_ccw-io")
    with eta.vfio(uuid) as device:
        info = device.describe()
    assert info.migration is None and "ENOTTY" in (info.migration_error or "")
    assert [s.subchannel_type for s in inv.subchannels] == ["0"]


def test_host_addresses() -> None:
    assert parse_sim("sim:alpha") == ("default", "alpha")
    assert parse_sim("sim:labs/mine.yaml/h1") == ("labs/mine.yaml", "h1")
    with pytest.raises(InputError, match="expected sim:LAB/HOST"):
        open_host("sim:")
    with pytest.raises(InputError, match="no host nope"):
        open_host("sim:default/nope")
    with pytest.raises(InputError, match="expected local, sim:HOST or sim:LAB/HOST"):
        open_host("alpha")
