"""What the reference drivers share: devices whose state is real data, with the driver's stream header."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from devmig.sim.kernel import SimKernel, SimPciFunction
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


def add_vfs(kernel: SimKernel, pf: SimPciFunction, count: int, bound: list[str], variant: str) -> list[str]:
    """`count` VFs of the PF at functions .1, .2, ... with its IDs, each in its own IOMMU group; the `bound` ones on
    the variant driver through driver_override (the only way a variant driver binds). Returns their addresses."""
    domain_bus, slot = pf.address.rsplit(":", 1)
    device = slot.split(".")[0]
    addresses = []
    for index in range(count):
        address = f"{domain_bus}:{device}.{index + 1}"
        on = address in bound
        kernel.add_pci_function(
            SimPciFunction(
                address,
                pf.vendor,
                pf.device,
                class_code=pf.class_code,
                revision=pf.revision,
                physfn=pf.address,
                group=kernel.group(),
                driver=variant if on else None,
                override=variant if on else None,
            )
        )
        addresses.append(address)
    return addresses
