"""The variants lab: for every running device of `src` and every other host, `check` predicts, then a real
migration through devmig's session (with no judge, so the simulated driver decides) and the destination's own
dirty tracking give the simulator's outcome; both must agree, and a refusal must be the driver's own (its errno).

The simulator is the oracle: its xe and virtio drivers check the stream in their own code, and whether the
destination can track the device's DMA is asked of the simulated device (DMA logging) and IOMMU (iommufd's
hw_info), never of devmig's parsing of sysfs."""

from __future__ import annotations

import errno
import os

import pytest

from devmig.compat import check
from devmig.errors import DevmigError
from devmig.host import Inventory
from devmig.host.describe import Describer
from devmig.host.devices import PciFunction
from devmig.host.profile import load_profiles
from devmig.migrate.device import VfioError
from devmig.migrate.session import accept_all
from devmig.migrate.transport import migrate_local
from devmig.model import DeviceDescriptor, TypeCapability, Verdict
from devmig.sim.lab import Lab, SimHost, load_lab

XE_VF, NIC_VF = "0000:03:00.1", "0000:5e:00.1"
DEVICES = (XE_VF, NIC_VF)
DESTINATIONS = ("twin", "underscore", "stepping", "other-id", "old-guc", "no-dirty")

#: what the simulated drivers do, per (device, host): None, the state loaded; else words of the driver's refusal as
#: the session reports it (xe's PF: ENODEV on a descriptor KLV; a VF without mig_ops: VFIO's ENOTTY)
DRIVER_REFUSAL: dict[tuple[str, str], str | None] = {
    (XE_VF, "twin"): None,
    (XE_VF, "underscore"): None,
    (XE_VF, "stepping"): f"{os.strerror(errno.ENODEV)}: refusing the incoming stream: descriptor KLV 0xf002 (revision)",
    (
        XE_VF,
        "other-id",
    ): f"{os.strerror(errno.ENODEV)}: refusing the incoming stream: descriptor KLV 0xf001 (device_id)",
    (XE_VF, "old-guc"): "its driver implements no VFIO migration",
    (XE_VF, "no-dirty"): None,  # the stream loads; the destination then cannot track the device's DMA
    (NIC_VF, "twin"): None,
    (NIC_VF, "no-dirty"): None,
}


def _describer(host: SimHost) -> Describer:
    return Describer(Inventory.scan(host.kernel.fs), load_profiles("/nonexistent"))


def _documents(lab: Lab, device: str, dest: str) -> tuple[DeviceDescriptor, TypeCapability]:
    src = _describer(lab.host("src"))
    source = src.descriptor(src.inv.device(device))
    d = _describer(lab.host(dest))
    fn = d.inv.device(device)
    assert isinstance(fn, PciFunction)
    return source, d.function_capability(fn)


def _can_track(host: SimHost, device: str) -> bool:
    """The simulator's own answer: the device logs its DMA, or the host IOMMU tracks dirty pages (iommufd)."""
    try:
        host.kernel.vfio_device(device).dma_logging_start([(0, 4096)], 4096)
    except VfioError as exc:
        assert exc.errno == errno.ENOTTY
    else:
        host.kernel.vfio_device(device).dma_logging_stop()
        return True
    return host.kernel.iommu is not None and host.kernel.iommu.hw_info_dirty_tracking()


def _migrate(lab: Lab, device: str, dest: str) -> str | None:
    """A migration through devmig's session that lets the driver judge: None when the state loaded, else why not."""
    source, target = lab.host("src").kernel.vfio_device(device), lab.host(dest).kernel.vfio_device(device)
    target.open()
    try:
        migrate_local(source, target, judge=accept_all)
    except DevmigError as exc:
        return str(exc)
    finally:
        target.close()
        source.reset()
    assert source.state.digest() == target.state.digest()
    return None


@pytest.mark.parametrize(("device", "dest"), list(DRIVER_REFUSAL), ids=[f"{d[-4:]}-{h}" for d, h in DRIVER_REFUSAL])
def test_check_predicts_what_the_simulated_drivers_do(device: str, dest: str) -> None:
    lab = load_lab("variants")
    source, capability = _documents(lab, device, dest)
    verdict: Verdict = check(source, capability)
    refused = _migrate(lab, device, dest)
    expected = DRIVER_REFUSAL[(device, dest)]
    assert (refused is None) == (expected is None), refused
    assert expected is None or expected in (refused or ""), refused
    accepted = refused is None and _can_track(lab.host(dest), device)
    assert accepted == verdict.compatible, (dest, [f.message for f in verdict.findings])


def test_each_host_breaks_one_rule() -> None:
    lab = load_lab("variants")
    codes = {dest: [f.code for f in check(*_documents(lab, XE_VF, dest)).errors] for dest in DESTINATIONS}
    assert codes == {
        "twin": [],
        "underscore": [],
        "stepping": ["api-mismatch"],
        "other-id": ["api-mismatch"],
        "old-guc": ["migration-unsupported"],
        "no-dirty": ["no-dirty-tracking"],
    }
    nic = {dest: [f.code for f in check(*_documents(lab, NIC_VF, dest)).errors] for dest in ("twin", "no-dirty")}
    assert nic == {"twin": [], "no-dirty": ["no-dirty-tracking"]}


def test_two_devices_need_p2p_and_both_drivers_have_it() -> None:
    """The VM on src has two VFIO devices: check with devices=2 finds P2P on both drivers (xe, virtio), and the
    simulated devices take RUNNING_P2P, as QEMU asks of every device before it stops any."""
    from devmig.migrate.uapi import MigState

    lab = load_lab("variants")
    for device in DEVICES:
        source, capability = _documents(lab, device, "twin")
        assert check(source, capability, devices=2).compatible
        sim = lab.host("twin").kernel.vfio_device(device)
        sim.open()
        sim.set_state(MigState.RUNNING_P2P)
        sim.set_state(MigState.RUNNING)
        sim.close()
