"""virtio_vfio_pci: virtio-net VFs migrating through the kernel's variant driver (drivers/vfio/pci/virtio), a NIC
whose driver has no DMA logging.

The PF is bound to virtio-pci; its VFs (1af4:1041) bind to `virtio_vfio_pci` only through driver_override. The
driver registers STOP_COPY | P2P, and PRE_COPY when the device has the admin "dev parts" commands; it has no log_ops,
so the pages the device writes are tracked only by the host IOMMU (iommufd) or not at all. The device validates the
state in its admin command DEV_PARTS_SET; here, that the stream is a virtio-net device's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from devmig.sim.drivers.common import add_vfs
from devmig.sim.kernel import PciDriver, SimKernel, SimPciFunction
from devmig.sim.vfio import DeviceState, SimVfioDevice, StreamHeader

PF_DRIVER, VARIANT = "virtio-pci", "virtio_vfio_pci"
VIRTIO_NET = (0x1AF4, 0x1041)
#: VIRTIO_ID_NET, the device type DEV_PARTS_SET checks
VIRTIO_ID_NET = 1


def refusal(incoming: StreamHeader, own: StreamHeader) -> str | None:
    if incoming.model != own.model or incoming.params.get("virtio_id") != own.params.get("virtio_id"):
        return f"DEV_PARTS_SET: the parts are a {incoming.model!r} device's, this is a {own.model!r}"
    return None


@dataclass
class VirtioNic:
    #: the device has the admin "dev parts" commands: the driver adds PRE_COPY
    dev_parts: bool = True

    def make_device(self, fn: SimPciFunction) -> SimVfioDevice:
        state = DeviceState.create(memory=32 * 1024, seed=zlib.crc32(fn.address.encode()))
        return SimVfioDevice(
            fn.address,
            state,
            migration_flags=0x7 if self.dev_parts else 0x3,
            header=StreamHeader("virtio-net", "1.0.0", {"virtio_id": VIRTIO_ID_NET}),
            check_incoming=refusal,
            dma_logging=False,
            group=fn.group,
        )

    def install(self, kernel: SimKernel, pf_address: str, vfs: int, bound: list[str]) -> list[str]:
        if PF_DRIVER not in kernel.pci_drivers:
            kernel.add_pci_driver(PciDriver(PF_DRIVER, ids=("1af4:1041",)))
        if VARIANT not in kernel.pci_drivers:
            kernel.add_pci_driver(PciDriver(VARIANT, make_device=self.make_device))
            kernel.add_module(VARIANT)
        pf = kernel.add_pci_function(SimPciFunction(pf_address, *VIRTIO_NET, driver=PF_DRIVER), sriov_totalvfs=vfs)
        return add_vfs(kernel, pf, vfs, bound, VARIANT)
