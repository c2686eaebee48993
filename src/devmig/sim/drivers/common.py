"""What the reference drivers share: devices whose state is real data, with the driver's stream header."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from devmig.sim.vfio import DeviceState, ParamValue, SimVfioDevice, StreamHeader


def make_device(
    name: str,
    model: str,
    version: str,
    params: Callable[[], dict[str, ParamValue]],
    *,
    memory_kib: int,
    migration: bool = True,
    device_api: str = "vfio-pci",
    group: int = 0,
) -> SimVfioDevice:
    """A device whose registers, queues and memory start from bytes seeded by its name (so two labs started from
    the same file hold the same data), whose stream header carries the driver's model, version and the device's
    current parameters, and which checks an incoming header while resuming (devmig.sim.vfio.default_compatible)."""
    state = DeviceState.create(memory=memory_kib * 1024, seed=zlib.crc32(name.encode()))
    if not migration:
        return SimVfioDevice(name, state, migration_flags=0, device_api=device_api, group=group)
    return SimVfioDevice(
        name,
        state,
        migration_flags=7,
        header=lambda: StreamHeader(model, version, params()),
        device_api=device_api,
        group=group,
    )
