"""simgpu: a GPU with mdev types in the GVT-g / vGPU style, the reference for the proposed interface.

Types differ by memory (simgpu-1G, -2G, -4G: one model, the `memory` parameter fixed by the type, as the RFC's
gfx-4GB/gfx-8GB); `aggregator` merges 1, 2, 4 or 8 instances into one vGPU; `pv_mode` is the paravirtualised mode
the guest driver uses. Releases differ in what they accept, and the device checks an incoming stream's header
against itself while resuming (a mismatch fails the write), as hisi_acc and qat check theirs.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field, replace

from devmig.sim.drivers.common import make_device
from devmig.sim.fs import kernel_error
from devmig.sim.kernel import PciDriver, SimKernel, SimMdev, SimPciFunction, SimType
from devmig.sim.params import DriverCapability, DriverParam
from devmig.sim.vfio import ParamValue, SimVfioDevice

MODEL = "devmig.sim/gpu"
PCI_ID = "1af4:10f0"
TYPE_MEMORY = {"simgpu-1G": 1024, "simgpu-2G": 2048, "simgpu-4G": 4096}


@dataclass(frozen=True)
class Release:
    pv_modes: tuple[str, ...]
    #: a feature added in 1.3: on by default, switched off for older peers
    compression: bool = False
    description: str = ""


#: Driver releases: 1.1 added the context mode, 1.3 compression; 2.0 dropped ppgtt (so the major changed).
RELEASES: dict[str, Release] = {
    "1.0.0": Release(("none", "ppgtt"), description="first release"),
    "1.1.0": Release(("none", "ppgtt", "context"), description="adds pv_mode context"),
    "1.2.0": Release(("none", "ppgtt", "context"), description="bug fixes"),
    "1.2.3": Release(("none", "ppgtt", "context"), description="bug fixes"),
    "1.3.0": Release(("none", "ppgtt", "context"), compression=True, description="adds compression"),
    "2.0.0": Release(("none", "context"), compression=True, description="drops pv_mode ppgtt"),
}


def capability(type_id: str, version: str) -> DriverCapability:
    release = RELEASES[version]
    params = {
        "memory": DriverParam(
            "int",
            TYPE_MEMORY[type_id],
            allowed=(TYPE_MEMORY[type_id],),
            description="framebuffer in MiB, fixed by the type",
        ),
        "aggregator": DriverParam(
            "int",
            1,
            allowed=(1, 2, 4, 8),
            description="instances of the base type merged into this vGPU",
        ),
        "pv_mode": DriverParam(
            "str",
            "none",
            off="none",
            allowed=release.pv_modes,
            description="paravirtualised mode of the guest driver",
        ),
    }
    if release.compression:
        params["compression"] = DriverParam("bool", True, off=False, description="framebuffer compression (since 1.3)")
    return DriverCapability("vfio-pci", type_id, version, {"pci_id": PCI_ID}, MODEL, params)


@dataclass
class SimGpuDriver:
    """One GPU's mdev parent: a memory pool shared by its devices."""

    release: str = "1.2.0"
    memory_mb: int = 8192
    name: str = "simgpu"
    _types: dict[str, SimType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.release not in RELEASES:
            raise ValueError(f"simgpu release {self.release}: expected one of {', '.join(RELEASES)}")
        for type_id, memory in TYPE_MEMORY.items():
            self._types[type_id] = SimType(
                id=type_id,
                name=f"SimGPU {memory // 1024}G",
                description=f"framebuffer={memory}M, max_heads=2",
                capability=capability(type_id, self.release),
            )

    def install(self, kernel: SimKernel, address: str) -> None:
        """Add the GPU at `address`, bound to simgpu, as an mdev parent (as SimNic.install adds a NIC)."""
        if self.name not in kernel.pci_drivers:
            kernel.add_pci_driver(PciDriver(self.name))
            kernel.add_module(self.name, version=self.release)
        vendor, device = (int(x, 16) for x in PCI_ID.split(":"))
        fn = kernel.add_pci_function(
            SimPciFunction(address, vendor, device, class_code=0x030000, driver=self.name, group=kernel.group())
        )
        kernel.add_mdev_parent(address, fn.path, self)

    def types(self) -> dict[str, SimType]:
        return self._types

    def used(self, devices: list[SimMdev]) -> int:
        return sum(
            int(d.params.get("memory", TYPE_MEMORY[d.type_id])) * int(d.params.get("aggregator", 1)) for d in devices
        )

    def check_param(self, mdev: SimMdev, others: list[SimMdev], name: str, value: ParamValue) -> None:
        """A larger aggregator takes more of the pool: refused with ENOSPC when the pool cannot give it."""
        if name not in ("aggregator", "memory"):
            return
        trial = replace(mdev, params={**mdev.params, name: value}, vfio=None)
        if self.used([*others, trial]) > self.memory_mb:
            raise kernel_error(errno.ENOSPC)

    def capacity(self, type_id: str, used: list[SimMdev]) -> int:
        return max(0, (self.memory_mb - self.used(used)) // TYPE_MEMORY[type_id])

    def make_device(self, mdev: SimMdev) -> SimVfioDevice:
        return make_device(
            mdev.uuid,
            MODEL,
            self.release,
            lambda: dict(mdev.params),
            memory_kib=256 * TYPE_MEMORY[mdev.type_id] // 1024,
            group=mdev.group,
        )
