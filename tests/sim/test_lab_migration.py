"""The default lab's drivers check the incoming state themselves, as vendor drivers do: devmig's prediction and
the driver's own verdict agree on every host (the simulator's twin of the kernel tier's mtty matrix)."""

from __future__ import annotations

import contextlib

import pytest

from devmig.compat import check
from devmig.host import Inventory, SysfsError
from devmig.host.describe import Describer
from devmig.host.ops import create_mdev
from devmig.host.profile import load_profiles
from devmig.migrate.device import VfioError
from devmig.migrate.uapi import MigState
from devmig.sim.lab import load_lab
from devmig.sim.vfio import SimDataFd

SOURCE = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"
TARGET = "0e2bd5f3-7d6b-4c4e-9d57-4d27a1c1f001"


def _drain(fd: SimDataFd) -> bytes:
    chunks = []
    while chunk := fd.read(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("host", ["beta", "gamma", "delta", "epsilon"])
def test_prediction_matches_the_drivers_verdict(host: str) -> None:
    lab = load_lab()
    alpha, dest = lab.host("alpha"), lab.host(host)
    inventory = Inventory.scan(alpha.kernel.fs)
    source = Describer(inventory, load_profiles("/nonexistent")).descriptor(inventory.device(SOURCE))
    dest_caps, _ = Describer(Inventory.scan(dest.kernel.fs), load_profiles("/nonexistent")).capabilities("simgpu-2G")
    verdict = check(source, dest_caps[0])

    # prepare the destination as the RFC says: create, then write each parameter once (the source's value where
    # the destination allows it, else leave its init value: the driver will judge)
    create_mdev(dest.kernel.fs, "0000:00:02.0", "simgpu-2G", TARGET)
    for name, value in (verdict.plan or source.params).items():
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        with contextlib.suppress(SysfsError):  # a value the destination does not allow: the kernel refuses it
            dest.kernel.fs.write(f"sys/bus/mdev/devices/{TARGET}/migration/{name}", text)

    src_dev = alpha.kernel.vfio_device(SOURCE)
    fd = src_dev.set_state(MigState.STOP_COPY)
    assert fd is not None
    stream = _drain(fd)
    dst_dev = dest.kernel.vfio_device(TARGET)
    dst_dev.open()
    resuming = dst_dev.set_state(MigState.RESUMING)
    assert resuming is not None
    try:
        resuming.write(stream)
        dst_dev.set_state(MigState.STOP)
        accepted = True
    except VfioError:
        accepted = False
    assert accepted == verdict.compatible, (host, verdict.findings)
    if accepted:
        dst_dev.set_state(MigState.RUNNING)
        assert dst_dev.state.digest() == src_dev.state.digest()
