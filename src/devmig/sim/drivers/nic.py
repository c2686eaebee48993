"""simnic: an SR-IOV NIC whose virtual functions migrate through a VFIO variant driver (no mdev).

The physical function is bound to `simnic`; its VFs bind to `simnic_vfio_pci` only through driver_override, as the
kernel's variant drivers do. The variant driver declares the proposed interface beside each VF
(`migration_info.json`, `migration/<param>`): the non-mdev form Alex Williamson asked the proposal to have.
"""

from __future__ import annotations

from dataclasses import dataclass

from devmig.sim.drivers.common import make_device
from devmig.sim.kernel import PciDriver, SimKernel, SimPciFunction
from devmig.sim.params import DriverCapability, DriverParam

MODEL = "devmig.sim/nic"
PF_ID, VF_ID = (0x1AF4, 0x10F1), (0x1AF4, 0x10F2)
VARIANT = "simnic_vfio_pci"

#: release -> parameter specs of a VF: 1.1 adds receive-side scaling
RELEASES: dict[str, dict[str, DriverParam]] = {
    "1.0.0": {
        "queues": DriverParam("int", 4, allowed=((1, 16),), description="queue pairs"),
        "tso": DriverParam("bool", True, off=False, description="TCP segmentation offload"),
    },
}
RELEASES["1.1.0"] = {
    **RELEASES["1.0.0"],
    "rss": DriverParam("bool", True, off=False, description="receive-side scaling (1.1)"),
}


def vf_type(fn: SimPciFunction) -> str:
    return f"{VARIANT}:{fn.vendor:04x}:{fn.device:04x}"


@dataclass
class SimNic:
    release: str = "1.0.0"

    def __post_init__(self) -> None:
        if self.release not in RELEASES:
            raise ValueError(f"simnic release {self.release}: expected one of {', '.join(RELEASES)}")

    def capability(self, fn: SimPciFunction) -> DriverCapability:
        pci_id = f"{fn.vendor:04x}:{fn.device:04x}"
        return DriverCapability(
            "vfio-pci", vf_type(fn), self.release, {"pci_id": pci_id}, MODEL, RELEASES[self.release]
        )

    def install(self, kernel: SimKernel, pf_address: str, vfs: int, bound: list[str]) -> list[str]:
        """Add the PF, `vfs` VFs after it, and bind the `bound` ones to the variant driver."""
        if "simnic" not in kernel.pci_drivers:
            kernel.add_pci_driver(PciDriver("simnic", ids=(f"{PF_ID[0]:04x}:{PF_ID[1]:04x}",)))
            kernel.add_module("simnic", version=self.release)
        if VARIANT not in kernel.pci_drivers:
            kernel.add_pci_driver(
                PciDriver(
                    VARIANT,
                    make_device=lambda fn: make_device(
                        fn.address, MODEL, self.release, lambda: dict(fn.params), memory_kib=64, group=fn.group
                    ),
                    capability=self.capability,
                )
            )
        kernel.add_pci_function(SimPciFunction(pf_address, *PF_ID, driver="simnic", numa_node=0), sriov_totalvfs=8)
        domain_bus, slot = pf_address.rsplit(":", 1)
        device = slot.split(".")[0]
        addresses = []
        for index in range(vfs):
            address = f"{domain_bus}:{device}.{index + 2}"
            kernel.add_pci_function(
                SimPciFunction(
                    address,
                    *VF_ID,
                    physfn=pf_address,
                    group=kernel.group(),
                    numa_node=0,
                    driver=VARIANT if address in bound else None,
                    override=VARIANT if address in bound else None,
                )
            )
            addresses.append(address)
        return addresses
