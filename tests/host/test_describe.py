"""Descriptors and capabilities from the migration interface, from profiles, and strict identity otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devmig.compat import check
from devmig.errors import InputError
from devmig.host import Inventory, Sysfs, SysfsError
from devmig.host.describe import Describer, version_from_text
from devmig.host.profile import load_profiles, parse_profiles, shipped_profiles
from devmig.model import SoftwareVersion
from devmig.testing.sysfs_tree import SysfsTree
from tests.builders import cap_doc
from tests.labs import GPU, MTTY_UUID


def describer(tree: SysfsTree, profiles_dir: Path | None = None) -> Describer:
    return Describer(Inventory.scan(tree.root), load_profiles(profiles_dir or tree.root / "no-profiles"))


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("0.1", "0.1.0"),
        ("550.54.14", "550.54.14"),
        ("6.12.57+deb12-amd64", "6.12.57"),
        ("6.12.0-rc3", "6.12.0"),
        ("v2", "2.0.0"),
        ("4.19.1.7", "4.19.1"),
    ],
)
def test_version_from_driver_text(text: str, version: str) -> None:
    assert version_from_text(text) == SoftwareVersion.parse(version)
    assert version_from_text("none") is None


def test_shipped_profiles_load_and_cover_the_named_drivers() -> None:
    ids = {p.id for p in shipped_profiles()}
    assert {
        "mtty",
        "i915-gvt-g",
        "nvidia-vgpu",
        "mlx5-vfio-pci",
        "hisi-acc-vfio-pci",
        "pds-vfio-pci",
        "virtio-vfio-pci",
        "qat-vfio-pci",
    } <= ids


def test_mtty_profile_matches_the_kernels_verdict(lab_host: Sysfs, tmp_path: Path) -> None:
    """mtty refuses to resume an mtty-2 stream into an mtty-1 device (nr_ports differs): the check agrees."""
    d = Describer(Inventory.scan(lab_host), load_profiles(tmp_path / "no-profiles"))
    inv = d.inv
    source = d.descriptor(inv.device(MTTY_UUID))
    assert source.model_dump(exclude_none=True, mode="json") == {
        "device_api": "vfio-pci",
        "type": "mtty-2",
        "model": "kernel.org/samples/mtty",
        "software_version": "0.1.0",
        "api": {"pci_id": "4348:3253"},
        "params": {"nr_ports": 2},
        "confidence": "profile",
        "address": {"kind": "mdev", "id": MTTY_UUID},
    }
    caps = {c.type: c for c in d.capabilities()[0]}
    assert caps["mtty-2"].available_instances == 11 and caps["mtty-2"].confidence == "profile"
    assert check(source, caps["mtty-2"]).level == "identical"
    refused = check(source, caps["mtty-1"])
    assert not refused.compatible
    assert [f.code for f in refused.errors] == ["param-value-not-allowed"]


def test_gvt_nvidia_and_variant_profiles(lab: SysfsTree) -> None:
    nv = lab.pci_function("0000:af:00.0", 0x10DE, 0x1EB8, class_code=0x030200, driver="nvidia")
    lab.module("nvidia", version="550.54.14")
    lab.mdev_parent("0000:af:00.0", nv)
    lab.mdev_type(nv, "nvidia-222", name="GRID T4-1B", available_instances=16)
    caps = {c.type: c for c in describer(lab).capabilities()[0]}
    gvt = caps["i915-GVTg_V5_4"]
    assert (str(gvt.software_version), gvt.api, list(gvt.models)) == (
        "6.12.57",
        {"pci_id": "8086:5912"},
        ["intel.com/gvt-g/i915-GVTg_V5_4"],
    )
    grid = caps["nvidia-222"]
    assert grid.api == {"pci_id": "10de:1eb8", "driver_version": "550.54.14"}
    assert list(grid.models) == ["nvidia.com/vgpu/nvidia-222"]
    mlx = caps["mlx5_vfio_pci:15b3:101e"]
    assert mlx.api == {"pci_id": "15b3:101e", "subsystem_id": "15b3:0026", "driver": "mlx5_vfio_pci"}
    assert mlx.confidence == "profile"
    # A host with another NVIDIA driver release is refused: vGPU needs identical manager versions.
    other = grid.model_copy(update={"api": {**grid.api, "driver_version": "550.90.07"}})
    source = describer(lab).descriptor(Inventory.scan(lab.root).device("0000:3b:00.2"))
    assert source.model == "kernel.org/vfio/mlx5"
    from devmig.model import DeviceDescriptor

    vgpu = DeviceDescriptor(
        device_api="vfio-pci",
        type="nvidia-222",
        model="nvidia.com/vgpu/nvidia-222",
        software_version=grid.software_version,
        api=grid.api,
        confidence="profile",
    )
    assert [f.code for f in check(vgpu, other).errors] == ["api-mismatch"]


def test_unverified_is_strict_identity(lab: SysfsTree) -> None:
    d = describer(lab)
    edu = d.descriptor(d.inv.device("0000:00:03.0"))
    assert edu.confidence == "unverified" and edu.model is None
    assert edu.api == {
        "pci_id": "1234:11e8",
        "subsystem_id": "0000:0000",
        "driver": "vfio-pci",
        "kernel": "6.12.57+deb12-amd64",
    }
    verdict = check(edu, d.function_capability(d.inv.device("0000:00:03.0")))  # type: ignore[arg-type]
    assert verdict.compatible and [f.code for f in verdict.findings] == ["unverified", "unverified"]


def test_unknown_mdev_driver_gets_a_conservative_descriptor(tree: SysfsTree) -> None:
    tree.osrelease("6.12.57")
    tree.module("acme_gpu", version="3.1", srcversion="0123456789ABCDEF0123456")
    gpu = tree.pci_function("0000:00:02.0", 0xABCD, 0x0001, driver="acme_gpu")
    tree.mdev_parent("0000:00:02.0", gpu)
    tree.mdev_type(gpu, "acme_gpu-small")
    tree.mdev(gpu, MTTY_UUID, "acme_gpu-small")
    d = describer(tree)
    desc = d.descriptor(d.inv.device(MTTY_UUID))
    assert desc.confidence == "unverified" and desc.software_version == SoftwareVersion(0, 0, 0)
    assert desc.api == {
        "parent_pci_id": "abcd:0001",
        "parent_driver": "acme_gpu",
        "parent_module_version": "3.1",
        "parent_module_srcversion": "0123456789ABCDEF0123456",
        "kernel": "6.12.57",
    }


def nic_tree(tree: SysfsTree, info: Any, params: dict[str, Any] | None = None) -> Describer:
    nic = tree.pci_function("0000:05:00.0", 0x1EAA, 0x0101, driver="vendor_a")
    tree.mdev_parent("0000:05:00.0", nic)
    tree.mdev_type(nic, "my-nic-vf", migration_info=info, available_instances=4)
    tree.mdev(nic, MTTY_UUID, "my-nic-vf", params=params)
    return describer(tree)


def test_declared_interface(tree: SysfsTree) -> None:
    d = nic_tree(tree, cap_doc(), {"new-feature": False, "num-resources": 64})
    cap = d.capabilities()[0][0]
    assert cap.confidence == "declared" and cap.available_instances == 4
    desc = d.descriptor(d.inv.device(MTTY_UUID))
    # new-feature is at its off_value: left out of the list (RFC v3)
    assert desc.params == {"num-resources": 64} and desc.confidence == "declared"
    assert check(desc, cap).level == "identical"


@pytest.mark.parametrize(
    ("info", "params", "message"),
    [
        ('{"device_api": "vfio-pci", ', None, "migration_info.json: not valid JSON"),
        (cap_doc(type="other"), None, "declares vfio-pci type other, but sysfs shows vfio-pci type my-nic-vf"),
        (cap_doc(), {"new-feature": "maybe", "num-resources": 64}, "expected a boolean"),
        (cap_doc(), {"new-feature": True}, "migration/num-resources is missing"),
    ],
)
def test_declared_interface_errors_name_the_file(
    tree: SysfsTree, info: Any, params: dict[str, Any] | None, message: str
) -> None:
    d = nic_tree(tree, info, params)
    with pytest.raises((SysfsError, InputError), match=message):
        d.descriptor(d.inv.device(MTTY_UUID))


def test_operator_profiles_take_precedence(lab: SysfsTree, tmp_path: Path) -> None:
    local = tmp_path / "profiles.d"
    local.mkdir()
    (local / "mtty.toml").write_text(
        '[[profile]]\nid = "site-mtty"\ndescription = "pinned"\nmatch = { types = ["mtty-*"] }\n'
        'model = "example.org/mtty"\nsoftware_version = { fixed = "2.0.0" }\n'
        'api = { pci_id = { fixed = "4348:3253" } }\n'
    )
    d = describer(lab, local)
    desc = d.descriptor(d.inv.device(MTTY_UUID))
    assert (desc.model, str(desc.software_version), desc.params) == ("example.org/mtty", "2.0.0", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[profile]\n", "x.toml: not valid TOML"),
        ('[[profile]]\nid = "a"\n', "x.toml: $.profile[0]: missing required field 'description'"),
        (
            '[[profile]]\nid="a"\ndescription="d"\nmatch={}\nmodel="a/b"\nsoftware_version={fixed="1"}\n',
            "a profile must match mdev types or PCI drivers",
        ),
        (
            '[[profile]]\nid="a"\ndescription="d"\nmatch={types=["x"]}\nmodel="a/b"\nsoftware_version={}\n',
            "expected exactly one of fixed, module, kernel, device",
        ),
    ],
)
def test_malformed_profiles(text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_profiles(text, "x.toml")
    assert message in str(err.value)


def test_profile_with_a_missing_module_says_which(lab: SysfsTree) -> None:
    (lab.root / "sys/module/mtty/version").unlink()
    d = describer(lab)
    with pytest.raises(SysfsError, match=r"sys/module/mtty/version is missing \(is the mtty module loaded\?\)"):
        d.descriptor(d.inv.device(MTTY_UUID))
    caps, problems = d.capabilities()
    assert "mtty-1" not in {c.type for c in caps} and len(problems) == 2
    assert GPU  # the GVT-g type is still described
    assert "i915-GVTg_V5_4" in {c.type for c in caps}
