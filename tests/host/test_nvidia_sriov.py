"""Discovery of NVIDIA vGPU on SR-IOV on sysfs trees in the documented layout (devices-2026.md section 1): VFs bound
to nvidia with a nvidia/ directory; a full card, an unknown type ID, a VF on the wrong driver; describe, capabilities
and the create/destroy writes (a plain tree: the writes land in files, the driver's refusals are not there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devmig.errors import InputError
from devmig.host.describe import Describer, os_platform
from devmig.host.devices import PciFunction
from devmig.host.inventory import Inventory
from devmig.host.nvidia import parse_creatable, parse_vgpu_params
from devmig.host.ops import NoCapacityError, UndoStep, create_vgpu
from devmig.host.profile import load_profiles
from devmig.host.sysfs import SysfsError, SysfsRoot
from devmig.testing.sysfs_tree import SysfsTree

PF = "0000:41:00.0"
VFS = ["0000:41:00.4", "0000:41:00.5", "0000:41:00.6"]
HEADER = "ID    : vGPU Name\n"


def creatable(*types: tuple[int, str]) -> str:
    return HEADER + "".join(f"{t:<5} : {n}\n" for t, n in types)


def board(tree: SysfsTree, vfs: dict[str, tuple[int, str]], *, driver: str = "nvidia") -> None:
    """An L40S-like board (IDs as written: the test needs only that they are read back), VFs with (current, list)."""
    tree.module("nvidia", version="570.124.06")
    tree.write("etc/os-release", 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.6"\n')
    tree.pci_function(
        PF,
        0x10DE,
        0x26B9,
        subsystem_vendor=0x10DE,
        subsystem_device=0x1851,
        driver="nvidia",
        class_code=0x030200,
        sriov_totalvfs=16,
        sriov_numvfs=len(vfs),
    )
    for index, (address, (current, listing)) in enumerate(vfs.items()):
        rel = tree.pci_function(
            address,
            0x10DE,
            0x26B9,
            driver=driver if index == 0 else "nvidia",
            physfn=PF,
            iommu_group=40 + index,
            class_code=0x030200,
        )
        tree.write(f"{rel}/nvidia/current_vgpu_type", str(current))
        tree.write(f"{rel}/nvidia/creatable_vgpu_types", listing, newline=False)
        tree.write(f"{rel}/nvidia/vgpu_params", "frame_rate_limiter=0, disable_vnc=1")


def function(inv: Inventory, address: str) -> PciFunction:
    fn = inv.device(address)
    assert isinstance(fn, PciFunction)
    return fn


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return SysfsTree(tmp_path)


def test_parsers_read_the_documented_layout() -> None:
    assert parse_creatable(creatable((1155, "NVIDIA L40S-1B"), (1160, "NVIDIA L40S-2Q"))) == {
        1155: "NVIDIA L40S-1B",
        1160: "NVIDIA L40S-2Q",
    }
    assert parse_creatable(HEADER) == {}
    assert parse_vgpu_params("frame_rate_limiter=0, disable_vnc=1\n") == {"frame_rate_limiter": "0", "disable_vnc": "1"}
    assert parse_vgpu_params("") == {}
    with pytest.raises(ValueError, match="ID : vGPU Name"):
        parse_creatable(HEADER + "L40S-1B\n")
    assert os_platform('ID="rhel"\nVERSION_ID="9.6"\n') == "rhel-9.6"
    assert os_platform("ID=debian\n") is None


def test_types_named_from_a_sibling_list_and_creatable(tree: SysfsTree) -> None:
    listing = creatable((1160, "NVIDIA L40S-2Q"), (1161, "NVIDIA L40S-4Q"))
    board(tree, {VFS[0]: (1160, HEADER), VFS[1]: (0, listing), VFS[2]: (0, listing)})
    inv = Inventory.scan(tree.root)
    vf = function(inv, VFS[0])
    assert vf.vgpu is not None and vf.vgpu.current == 1160 and vf.vgpu.current_name == "NVIDIA L40S-2Q"
    assert vf.vgpu.params == {"frame_rate_limiter": "0", "disable_vnc": "1"}
    assert vf.vfio and vf.migration_driver
    free = function(inv, VFS[1])
    assert (
        not free.vfio
        and free.vgpu is not None
        and free.vgpu.creatable == {1160: "NVIDIA L40S-2Q", 1161: "NVIDIA L40S-4Q"}
    )
    assert [f.address for f in inv.assignable() if isinstance(f, PciFunction)] == [VFS[0]]
    assert function(inv, PF).vgpu is None
    assert inv.warnings == []
    data = vf.to_dict()["vgpu"]
    assert data["type"] == "nvidia-1160" and data["current_name"] == "NVIDIA L40S-2Q"


def test_full_card_keeps_the_id_and_says_the_name_is_unknown(tree: SysfsTree) -> None:
    board(tree, {VFS[0]: (1161, HEADER), VFS[1]: (1161, HEADER), VFS[2]: (0, HEADER)})
    inv = Inventory.scan(tree.root)
    vf = function(inv, VFS[0])
    assert vf.vgpu is not None and vf.vgpu.current == 1161 and vf.vgpu.current_name is None
    describer = Describer(inv, load_profiles())
    caps, problems = describer.capabilities()
    assert problems == []
    # the two vGPUs are types of their VFs; the full board offers nothing to create
    assert sorted((c.type, c.available_instances) for c in caps) == [("nvidia-1161", 1), ("nvidia-1161", 1)]


def test_unknown_type_id_is_described_by_its_id(tree: SysfsTree) -> None:
    board(tree, {VFS[0]: (4242, HEADER), VFS[1]: (0, creatable((1160, "NVIDIA L40S-2Q")))})
    inv = Inventory.scan(tree.root)
    vf = function(inv, VFS[0])
    assert vf.vgpu is not None and vf.vgpu.current_name is None
    desc = Describer(inv, load_profiles()).descriptor(vf)
    assert desc.type == "nvidia-4242" and desc.model == "nvidia.com/vgpu/nvidia-4242"
    assert desc.api == {"pci_id": "10de:26b9", "vgpu_mode": "sriov"}
    assert desc.vendor is not None and desc.vendor.rules == "nvidia-vgpu"
    assert desc.vendor.facts == {
        "host_driver": "570.124.06",
        "platform": "rhel-9.6",
        "board_pci_id": "10de:26b9",
        "board_subsystem_id": "10de:1851",
    }  # no NVML on a tree: no ECC, no metadata (the check says so)


def test_vf_on_the_wrong_driver_is_not_a_vgpu(tree: SysfsTree) -> None:
    board(tree, {VFS[0]: (1160, HEADER), VFS[1]: (0, HEADER)}, driver="vfio-pci")
    inv = Inventory.scan(tree.root)
    vf = function(inv, VFS[0])
    assert vf.vgpu is None and vf.driver == "vfio-pci"
    assert [w.message for w in inv.warnings] == ["has a nvidia/ directory but is bound to vfio-pci, not nvidia"]
    desc = Describer(inv, load_profiles()).descriptor(vf)
    assert desc.type == "vfio-pci:10de:26b9" and desc.vendor is None


def test_a_vf_without_a_type_cannot_be_described(tree: SysfsTree) -> None:
    board(tree, {VFS[0]: (0, creatable((1160, "NVIDIA L40S-2Q")))})
    inv = Inventory.scan(tree.root)
    with pytest.raises(InputError, match="not to vfio-pci"):
        Describer(inv, load_profiles()).descriptor(function(inv, VFS[0]))
    with pytest.raises(SysfsError, match="carries no vGPU"):
        Describer(inv, load_profiles()).function_capability(function(inv, VFS[0]))


def test_create_writes_the_id_and_the_undo_writes_0(tree: SysfsTree) -> None:
    board(tree, {VFS[0]: (0, creatable((1160, "NVIDIA L40S-2Q"))), VFS[1]: (0, HEADER)})
    root = SysfsRoot(tree.root)
    rel = f"sys/bus/pci/devices/{VFS[0]}/nvidia/current_vgpu_type"
    change = create_vgpu(root, VFS[0], 1160)
    assert root.read(rel).strip() == "1160"
    step = UndoStep.from_json(change.undo_step.to_json())
    assert step.describe() == f"destroy vGPU type 1160 on VF {VFS[0]} (write 0)"
    step.run(root)
    assert root.read(rel).strip() == "0"
    step.run(root)  # idempotent: nothing of ours to destroy
    with pytest.raises(NoCapacityError, match=r"not creatable now .*none, the board is full"):
        create_vgpu(root, VFS[1], 1160)
    with pytest.raises(InputError, match="no nvidia/current_vgpu_type"):
        create_vgpu(root, PF, 1160)
