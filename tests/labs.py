"""Fixture hosts built in the kernel's sysfs layout."""

from __future__ import annotations

from devmig.host.sysfs import Sysfs
from devmig.testing.sysfs_tree import SysfsTree

MTTY = "sys/devices/virtual/mtty/mtty"
GPU = "sys/devices/pci0000:00/0000:00:02.0"
MTTY_UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"


def build_lab(tree: SysfsTree) -> SysfsTree:
    """A host like the kernel tier's guest: mtty with one mtty-2 device, a GVT-g GPU, an mlx5 VF on its variant
    driver, QEMU's edu device on vfio-pci."""
    tree.module("mtty", version="0.1")
    tree.osrelease("6.12.57+deb12-amd64")
    tree.mkdir(MTTY)
    tree.mdev_parent("mtty", MTTY, subsystem="sys/class/mtty")
    tree.mdev_type(MTTY, "mtty-1", name="Single port serial", available_instances=22)
    tree.mdev_type(MTTY, "mtty-2", name="Dual port serial", available_instances=11)
    tree.mdev(MTTY, MTTY_UUID, "mtty-2", iommu_group=3, driver="mtty")
    gpu = tree.pci_function("0000:00:02.0", 0x8086, 0x5912, class_code=0x030000, driver="i915", iommu_group=1)
    tree.mdev_parent("0000:00:02.0", gpu)
    tree.mdev_type(
        gpu,
        "i915-GVTg_V5_4",
        name="GVTg_V5_4",
        available_instances=2,
        description="low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4",
    )
    tree.pci_function("0000:3b:00.0", 0x15B3, 0x101D, driver="mlx5_core", sriov_totalvfs=8, sriov_numvfs=2, numa_node=1)
    tree.pci_function(
        "0000:3b:00.2",
        0x15B3,
        0x101E,
        driver="mlx5_vfio_pci",
        physfn="0000:3b:00.0",
        iommu_group=7,
        subsystem_vendor=0x15B3,
        subsystem_device=0x0026,
        numa_node=1,
    )
    tree.pci_function("0000:3b:00.3", 0x15B3, 0x101E, driver="mlx5_core", physfn="0000:3b:00.0", numa_node=1)
    tree.pci_function("0000:00:03.0", 0x1234, 0x11E8, driver="vfio-pci", iommu_group=9, driver_override="vfio-pci")
    return tree


def build_sim_lab() -> Sysfs:
    """The same host as build_lab, on the simulator's seam: the discovery tests run unchanged on both."""
    from devmig.sim.drivers.mtty import MttyDriver
    from devmig.sim.drivers.s390 import FixedTypeDriver
    from devmig.sim.kernel import PciDriver, SimKernel, SimPciFunction

    kernel = SimKernel("tests/lab", osrelease="6.12.57+deb12-amd64")
    kernel.add_module("mtty", version="0.1")
    for name in ("i915", "mlx5_core", "mlx5_vfio_pci", "vfio-pci"):
        kernel.add_pci_driver(PciDriver(name))
    kernel.fs.mkdir(MTTY)
    kernel.add_mdev_parent("mtty", MTTY, MttyDriver(), subsystem="sys/class/mtty")
    kernel.create_mdev("mtty", "mtty-2", MTTY_UUID, group=3)
    gpu = kernel.add_pci_function(
        SimPciFunction("0000:00:02.0", 0x8086, 0x5912, class_code=0x030000, driver="i915", group=1)
    )
    kernel.add_mdev_parent(
        "0000:00:02.0",
        gpu.path,
        FixedTypeDriver(
            "i915",
            "i915-GVTg_V5_4",
            "GVTg_V5_4",
            "vfio-pci",
            instances=2,
            description="low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4",
        ),
    )
    kernel.add_pci_function(
        SimPciFunction("0000:3b:00.0", 0x15B3, 0x101D, driver="mlx5_core", numa_node=1), sriov_totalvfs=8
    )
    kernel.add_pci_function(
        SimPciFunction(
            "0000:3b:00.2",
            0x15B3,
            0x101E,
            driver="mlx5_vfio_pci",
            physfn="0000:3b:00.0",
            group=7,
            subsystem_vendor=0x15B3,
            subsystem_device=0x0026,
            numa_node=1,
        )
    )
    kernel.add_pci_function(
        SimPciFunction("0000:3b:00.3", 0x15B3, 0x101E, driver="mlx5_core", physfn="0000:3b:00.0", numa_node=1)
    )
    kernel.add_pci_function(
        SimPciFunction("0000:00:03.0", 0x1234, 0x11E8, driver="vfio-pci", group=9, override="vfio-pci")
    )
    return kernel.fs
