"""Variant drivers on fixture trees in the kernel's layout: an Intel Xe VF on xe-vfio-pci (PF enablement read from
VFIO's debugfs, device ID and revision as identity), the IOMMU's dirty tracking, hyphen and underscore spellings of
one driver, and a variant driver devmig has no profile for."""

from __future__ import annotations

from pathlib import Path

import pytest

from devmig.compat import check
from devmig.host import Inventory
from devmig.host.describe import Describer
from devmig.host.devices import PciFunction, driver_key
from devmig.host.profile import load_profiles
from devmig.model import DeviceDescriptor, TypeCapability
from devmig.model.migration import MigrationSupport
from devmig.testing.sysfs_tree import SysfsTree

PF, VF = "0000:03:00.0", "0000:03:00.1"
XE_ID = 0xE20B
SMTS_SLADS = (1 << 43) | (1 << 45)
DMAR = "sys/devices/virtual/iommu/dmar0"


def xe_host(
    root: Path,
    *,
    driver: str = "xe-vfio-pci",
    revision: int = 0,
    debugfs: bool | None = True,
    ecap: int | None = SMTS_SLADS,
    iommufd: bool = True,
) -> SysfsTree:
    """A Battlemage PF on xe with one VF bound to `driver`. debugfs: True, the VF's migration/ directory is there
    (the PF enabled migration); False, VFIO's debugfs is mounted without it; None, not mounted. ecap: the Intel
    IOMMU's extended capabilities (None: no iommu link)."""
    tree = SysfsTree(root)
    tree.osrelease("6.19.0")
    tree.pci_function(
        PF, 0x8086, XE_ID, class_code=0x030000, revision=revision, driver="xe", sriov_totalvfs=2, sriov_numvfs=1
    )
    vf = tree.pci_function(
        VF,
        0x8086,
        XE_ID,
        class_code=0x030000,
        revision=revision,
        driver=driver,
        physfn=PF,
        iommu_group=11,
        driver_override=driver,
    )
    tree.mkdir(f"{vf}/vfio-dev/vfio3")
    if debugfs is not None:
        tree.mkdir("sys/kernel/debug/vfio/vfio3")
        if debugfs:
            tree.write("sys/kernel/debug/vfio/vfio3/migration/state", "RUNNING")
    if ecap is not None:
        tree.write(f"{DMAR}/intel-iommu/ecap", f"{ecap:x}")
        tree.link("sys/class/iommu/dmar0", DMAR)
        tree.link(f"{vf}/iommu", DMAR)
    if iommufd:
        tree.write("dev/iommu", "", newline=False)
    return tree


def describe(tree: SysfsTree) -> Describer:
    return Describer(Inventory.scan(tree.root), load_profiles(tree.root / "no-profiles"))


def vf_docs(tree: SysfsTree, address: str = VF) -> tuple[DeviceDescriptor, TypeCapability]:
    d = describe(tree)
    fn = d.inv.device(address)
    assert isinstance(fn, PciFunction)
    return d.function_descriptor(fn), d.function_capability(fn)


def test_xe_vf_on_its_variant_driver(tmp_path: Path) -> None:
    tree = xe_host(tmp_path, revision=4)
    fn = describe(tree).inv.device(VF)
    assert isinstance(fn, PciFunction) and fn.vfio and fn.migration_driver
    desc, cap = vf_docs(tree)
    assert desc.confidence == cap.confidence == "profile"
    assert desc.model == "kernel.org/vfio/xe"
    assert desc.api == {"pci_id": "8086:e20b", "revision": "04", "driver": "xe_vfio_pci"}
    assert desc.migration == MigrationSupport(flags=["stop_copy", "p2p"], dirty_tracking="iommu")
    assert cap.migration == desc.migration
    assert check(desc, cap, devices=2).level == "identical"


def test_revision_and_device_id_are_identity(tmp_path: Path) -> None:
    source, _ = vf_docs(xe_host(tmp_path / "a", revision=4))
    _, other_rev = vf_docs(xe_host(tmp_path / "b", revision=5))
    assert [f.field for f in check(source, other_rev).errors] == ["api.revision"]


@pytest.mark.parametrize(
    ("debugfs", "flags", "codes"),
    [(True, ["stop_copy", "p2p"], []), (False, [], ["migration-unsupported"]), (None, None, [])],
    ids=["pf-enables", "pf-does-not", "debugfs-not-mounted"],
)
def test_pf_enablement(tmp_path: Path, debugfs: bool | None, flags: list[str] | None, codes: list[str]) -> None:
    source, _ = vf_docs(xe_host(tmp_path / "src"))
    _, dest = vf_docs(xe_host(tmp_path / "dst", debugfs=debugfs))
    assert dest.migration is not None and dest.migration.flags == flags
    assert [f.code for f in check(source, dest).errors] == codes


@pytest.mark.parametrize(
    ("ecap", "iommufd", "tracking"),
    [
        (SMTS_SLADS, True, "iommu"),
        (SMTS_SLADS, False, "none"),  # QEMU tracks through the IOMMU only with iommufd
        (1 << 43, True, "none"),  # scalable mode without second-stage A/D bits
        (1 << 45, True, "none"),  # A/D bits, but legacy mode
        (None, True, None),  # no iommu link: not known
    ],
)
def test_iommu_dirty_tracking(tmp_path: Path, ecap: int | None, iommufd: bool, tracking: str | None) -> None:
    source, _ = vf_docs(xe_host(tmp_path / "src"))
    _, dest = vf_docs(xe_host(tmp_path / "dst", ecap=ecap, iommufd=iommufd))
    assert dest.migration is not None and dest.migration.dirty_tracking == tracking
    codes = [f.code for f in check(source, dest).errors]
    assert codes == (["no-dirty-tracking"] if tracking == "none" else [])


def test_a_damaged_ecap_names_the_file(tmp_path: Path) -> None:
    tree = xe_host(tmp_path)
    tree.write(f"{DMAR}/intel-iommu/ecap", "zz")
    d = describe(tree)
    caps, problems = d.capabilities()
    assert not caps
    assert problems == [f"{DMAR}/intel-iommu/ecap: expected a hexadecimal register, found 'zz'"]


def test_hyphen_and_underscore_are_one_driver(tmp_path: Path) -> None:
    assert driver_key("xe-vfio-pci") == driver_key("xe_vfio_pci") == "xe_vfio_pci"
    hyphen, hcap = vf_docs(xe_host(tmp_path / "h", driver="xe-vfio-pci"))
    underscore, ucap = vf_docs(xe_host(tmp_path / "u", driver="xe_vfio_pci"))
    assert hyphen.api == underscore.api and hyphen.model == underscore.model
    assert hyphen.type == "xe-vfio-pci:8086:e20b" and underscore.type == "xe_vfio_pci:8086:e20b"
    for src, dst in ((hyphen, ucap), (underscore, hcap)):
        verdict = check(src, dst)
        assert verdict.compatible and [f.code for f in verdict.findings] == ["type-differs"]


@pytest.mark.parametrize("driver", ["acme_vfio_pci", "acme-vfio-pci"])
def test_an_unknown_variant_driver_is_assignable_and_unverified(tmp_path: Path, driver: str) -> None:
    tree = SysfsTree(tmp_path)
    tree.osrelease("6.19.0")
    tree.pci_function("0000:05:00.1", 0x1D0F, 0x7777, driver=driver, iommu_group=4)
    d = describe(tree)
    fn = d.inv.device("0000:05:00.1")
    assert isinstance(fn, PciFunction) and fn.vfio and not fn.migration_driver
    desc = d.function_descriptor(fn)
    assert desc.confidence == "unverified" and desc.migration is None
    assert desc.api["driver"] == driver


def test_nvgrace_is_assignable_but_not_migratable(tmp_path: Path) -> None:
    tree = SysfsTree(tmp_path)
    tree.osrelease("6.19.0")
    tree.pci_function("0009:01:00.0", 0x10DE, 0x2342, class_code=0x030200, driver="nvgrace_gpu_vfio_pci")
    desc, cap = vf_docs(tree, "0009:01:00.0")
    assert desc.migration == MigrationSupport(flags=[], dirty_tracking=None)
    assert [f.code for f in check(desc, cap).errors] == ["migration-unsupported", "migration-unsupported"]
