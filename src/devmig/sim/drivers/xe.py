"""xe-vfio-pci: an Intel Xe GPU (Battlemage) whose SR-IOV VFs migrate through the kernel's variant driver (Linux
6.19, drivers/vfio/pci/xe/main.c), as the driver and the PF's xe driver behave.

The PF is bound to `xe`; its VFs bind to `xe-vfio-pci` (hyphens; an earlier spelling was `xe_vfio_pci`) only through
driver_override. The variant driver registers migration (STOP_COPY | P2P, no PRE_COPY, no DMA logging) only when the
PF allows it: memory-based interrupts and a GuC of at least 70.54.0 (the lore series' minimum, unconfirmed), else
the VF has no mig_ops and VFIO answers ENOTTY. The stream starts with the PF's descriptor packet, whose KLVs carry
the PCI device ID (0xf001) and revision (0xf002); the destination's PF refuses a stream of another device ID or
revision with ENODEV (drivers/gpu/drm/xe/xe_sriov_packet.c), which this driver does in its own code.
"""

from __future__ import annotations

import errno
import zlib
from dataclasses import dataclass

from devmig.sim.drivers.common import add_vfs
from devmig.sim.kernel import PciDriver, SimKernel, SimPciFunction
from devmig.sim.vfio import DeviceState, SimVfioDevice, StreamHeader

PF_DRIVER = "xe"
VARIANT_NAMES = ("xe-vfio-pci", "xe_vfio_pci")
MODULE = "xe_vfio_pci"
#: VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P
FLAGS = 0x3
#: the PF's minimum GuC for VF migration (major, minor, patch)
MIN_GUC = (70, 54, 0)
#: the xe_sriov_packet descriptor's version: another one is EINVAL
PACKET_VERSION = 1


def _guc(text: str) -> tuple[int, ...]:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"GuC version {text!r}: expected major.minor.patch")
    return tuple(int(p) for p in parts)


def refusal(incoming: StreamHeader, own: StreamHeader) -> str | None:
    """The PF's check of the descriptor packet: its version, then the device ID and revision KLVs."""
    if incoming.model != own.model:
        return f"the stream is from {incoming.model!r}, not an xe VF's"
    if incoming.params.get("packet_version") != PACKET_VERSION:
        return f"descriptor packet version {incoming.params.get('packet_version')!r}, this PF reads {PACKET_VERSION}"
    for key, klv in (("device_id", "0xf001"), ("revision", "0xf002")):
        theirs, mine = incoming.params.get(key), own.params.get(key)
        if theirs != mine:
            return f"descriptor KLV {klv} ({key}) is {theirs!r}, this VF's is {mine!r}"
    return None


@dataclass
class XeGpu:
    device_id: int = 0xE20B
    revision: int = 0
    guc: str = "70.54.0"
    memirq: bool = True
    #: the variant driver's name on this kernel
    variant: str = "xe-vfio-pci"

    def __post_init__(self) -> None:
        _guc(self.guc)
        if self.variant not in VARIANT_NAMES:
            raise ValueError(f"xe variant driver {self.variant!r}: expected one of {', '.join(VARIANT_NAMES)}")

    @property
    def enables_migration(self) -> bool:
        """What the PF's xe driver decides (xe_sriov_vfio_migration_supported)."""
        return self.memirq and _guc(self.guc) >= MIN_GUC

    def make_device(self, fn: SimPciFunction) -> SimVfioDevice:
        state = DeviceState.create(registers=512, queues=256, memory=64 * 1024, seed=zlib.crc32(fn.address.encode()))
        if not self.enables_migration:
            return SimVfioDevice(fn.address, state, migration_flags=0, group=fn.group)
        header = StreamHeader(
            "intel.com/xe/sriov-vf",
            "1.0.0",
            {"packet_version": PACKET_VERSION, "device_id": fn.device, "revision": fn.revision},
        )
        return SimVfioDevice(
            fn.address,
            state,
            migration_flags=FLAGS,
            header=header,
            check_incoming=refusal,
            dma_logging=False,
            refusal_errno=errno.ENODEV,
            group=fn.group,
        )

    def install(self, kernel: SimKernel, pf_address: str, vfs: int, bound: list[str]) -> list[str]:
        """The PF on xe, `vfs` VFs after it (same device ID and revision), the `bound` ones on the variant driver."""
        pci_id = f"8086:{self.device_id:04x}"
        if PF_DRIVER not in kernel.pci_drivers:
            kernel.add_pci_driver(PciDriver(PF_DRIVER, ids=(pci_id,)))
            kernel.add_module(PF_DRIVER)
        if self.variant not in kernel.pci_drivers:
            kernel.add_pci_driver(PciDriver(self.variant, make_device=self.make_device))
            kernel.add_module(MODULE)
        pf = kernel.add_pci_function(
            SimPciFunction(
                pf_address, 0x8086, self.device_id, class_code=0x030000, revision=self.revision, driver=PF_DRIVER
            ),
            sriov_totalvfs=vfs,
        )
        return add_vfs(kernel, pf, vfs, bound, self.variant)
