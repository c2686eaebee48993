"""Discovery on sysfs trees in the kernel's layout, including broken entries."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from devmig.errors import InputError
from devmig.host import Inventory, MdevDevice, PciFunction, Sysfs
from devmig.testing.sysfs_tree import SysfsTree
from tests.labs import GPU, MTTY, MTTY_UUID


def test_pci_functions_and_sriov(lab_host: Sysfs) -> None:
    inv = Inventory.scan(lab_host)
    by_addr = {f.address: f for f in inv.pci}
    pf, vf = by_addr["0000:3b:00.0"], by_addr["0000:3b:00.2"]
    assert (pf.sriov_totalvfs, pf.sriov_numvfs, pf.virtfns) == (8, 2, ["0000:3b:00.2", "0000:3b:00.3"])
    assert (vf.pci_id, vf.driver, vf.physfn, vf.iommu_group, vf.numa_node) == (
        "15b3:101e",
        "mlx5_vfio_pci",
        "0000:3b:00.0",
        7,
        1,
    )
    assert (vf.subsystem_vendor, vf.subsystem_device, vf.class_code, vf.revision) == ("15b3", "0026", "020000", "00")
    assert vf.vfio and vf.migration_driver and not pf.vfio
    edu = by_addr["0000:00:03.0"]
    assert edu.vfio and not edu.migration_driver and edu.driver_override == "vfio-pci"
    assert by_addr["0000:00:02.0"].driver_override is None  # "(null)"
    assert by_addr["0000:00:02.0"].numa_node is None  # -1
    assert inv.warnings == []


def test_mdev_parents_types_and_instances(lab_host: Sysfs) -> None:
    inv = Inventory.scan(lab_host)
    parents = {p.name: p for p in inv.parents}
    assert list(parents) == ["0000:00:02.0", "mtty"]
    mtty = parents["mtty"]
    assert (mtty.path, mtty.subsystem, mtty.driver) == (MTTY, "mtty", None)
    assert [(t.id, t.name, t.device_api, t.available_instances, t.devices) for t in mtty.types] == [
        ("mtty-1", "Single port serial", "vfio-pci", 22, []),
        ("mtty-2", "Dual port serial", "vfio-pci", 11, [MTTY_UUID]),
    ]
    gvt = parents["0000:00:02.0"].types[0]
    assert gvt.description == "low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4"
    assert parents["0000:00:02.0"].driver == "i915" and parents["0000:00:02.0"].subsystem == "pci"
    (device,) = inv.mdevs
    assert (device.uuid, device.parent, device.type, device.driver, device.iommu_group) == (
        MTTY_UUID,
        "mtty",
        "mtty-2",
        "mtty",
        3,
    )
    assert inv.find_type("mtty-2")[0].parent == "mtty"


def test_device_lookup(lab_host: Sysfs) -> None:
    inv = Inventory.scan(lab_host)
    assert isinstance(inv.device(MTTY_UUID.upper()), MdevDevice)
    fn = inv.device("3b:00.2")
    assert isinstance(fn, PciFunction) and fn.address == "0000:3b:00.2"
    assert [d.uuid if isinstance(d, MdevDevice) else d.address for d in inv.assignable()] == [  # type: ignore[union-attr]
        MTTY_UUID,
        "0000:00:03.0",
        "0000:3b:00.2",
    ]
    with pytest.raises(InputError, match="device nothing: not found"):
        inv.device("nothing")


def test_ccw_and_ap(tree: SysfsTree) -> None:
    sch = tree.subchannel("0.0.0313", 0, driver="vfio_ccw", dev_busid="0.0.2b09")
    tree.subchannel("0.0.0001", 1)
    tree.mdev_parent("0.0.0313", sch, subsystem="sys/bus/css")
    tree.mdev_type(sch, "vfio_ccw-io", device_api="vfio-ccw", name="I/O subchannel (Non-QDIO)")
    matrix = tree.ap_matrix(apmask="0x" + "f" * 64)
    tree.mdev_parent("matrix", matrix, subsystem="sys/class/vfio_ap")
    tree.mdev_type(matrix, "vfio_ap-passthrough", device_api="vfio-ap", name="VFIO AP Passthrough Device")
    inv = Inventory.scan(tree.root)
    assert [(s.busid, s.subchannel_type, s.driver, s.dev_busid, s.vfio) for s in inv.subchannels] == [
        ("0.0.0001", "1", None, "none", False),
        ("0.0.0313", "0", "vfio_ccw", "0.0.2b09", True),
    ]
    assert inv.ap_matrix is not None and inv.ap_matrix.apmask == "0x" + "f" * 64
    assert {t.id: t.device_api for t in inv.types()} == {"vfio_ccw-io": "vfio-ccw", "vfio_ap-passthrough": "vfio-ap"}
    assert inv.warnings == []


def _messages(inv: Inventory) -> list[str]:
    return [str(w) for w in inv.warnings]


def test_one_bad_type_does_not_spoil_the_scan(tree: SysfsTree) -> None:
    """mdevctl fails the whole `types` command on any of these; devmig warns on the entry and goes on."""
    gpu = tree.pci_function("0000:00:02.0", 0x8086, 0x5912)
    tree.mdev_parent("0000:00:02.0", gpu)
    tree.mdev_type(gpu, "good", available_instances=3)
    tree.mdev_type(gpu, "no-api", device_api=None)
    tree.mdev_type(gpu, "not-a-number", available_instances="abc")
    tree.mdev_type(gpu, "no-count", available_instances=None)
    other = tree.pci_function("0000:00:04.0", 0x8086, 0x1234)
    tree.link("sys/class/mdev_bus/0000:00:04.0", other)  # a parent without mdev_supported_types
    tree.link("sys/class/mdev_bus/gone", "sys/devices/nowhere")  # a dangling parent link
    inv = Inventory.scan(tree.root, parts=("mdev_types",))
    types = {t.id: t for t in inv.types()}
    assert types["good"].available_instances == 3 and types["good"].device_api == "vfio-pci"
    assert types["no-api"].device_api is None and types["not-a-number"].available_instances is None
    assert _messages(inv) == [
        "mdev type 0000:00:02.0/no-api: missing device_api",
        "mdev type 0000:00:02.0/no-count: missing available_instances",
        "mdev type 0000:00:02.0/not-a-number: available_instances: expected a whole number, found 'abc'",
        "mdev parent 0000:00:04.0: missing mdev_supported_types: the parent offers no types",
        "mdev parent gone: dangling link to sys/devices/nowhere",
    ]
    assert [p.name for p in inv.parents] == ["0000:00:02.0", "0000:00:04.0"]


def test_broken_devices_and_links(tree: SysfsTree) -> None:
    gpu = tree.pci_function("0000:00:02.0", 0x8086, 0x5912, driver="i915")
    tree.mdev_parent("0000:00:02.0", gpu)
    tree.mdev_type(gpu, "t")
    uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01"
    rel = tree.mdev(gpu, uuid, "t")
    (tree.root / rel / "mdev_type").unlink()
    tree.write(f"{gpu}/vendor", "8086")  # no 0x: not what the kernel prints
    tree.write(f"{gpu}/numa_node", "node0")
    inv = Inventory.scan(tree.root)
    (device,) = inv.mdevs
    assert device.type is None
    assert _messages(inv) == [
        "PCI function 0000:00:02.0: vendor: expected a hexadecimal value such as 0x0000, found '8086'",
        "PCI function 0000:00:02.0: numa_node: invalid literal for int() with base 10: 'node0'",
        f"mdev {uuid}: missing mdev_type link: the device's type is unknown",
    ]


def test_escaping_links_are_warnings_not_reads(tree: SysfsTree, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tree.root / "sys/bus/pci/devices").mkdir(parents=True)
    (tree.root / "sys/bus/pci/devices/0000:00:09.0").symlink_to(outside)
    inv = Inventory.scan(tree.root)
    assert inv.pci == []
    assert "leaves the sysfs root" in _messages(inv)[0]


def test_unreadable_attribute_is_a_warning(lab: SysfsTree, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def deny(path: str, flags: int, *args: int) -> int:
        if path.endswith("mtty-1/available_instances"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", deny)
    inv = Inventory.scan(lab.root)
    assert _messages(inv) == ["mdev type mtty/mtty-1: cannot read: Permission denied"]
    assert len(inv.types()) == 3


def test_missing_buses_are_just_empty(tree: SysfsTree) -> None:
    inv = Inventory.scan(tree.root)
    assert (inv.pci, inv.parents, inv.mdevs, inv.subchannels, inv.ap_matrix, inv.warnings) == ([], [], [], [], None, [])


def test_to_dict_is_plain_json(lab: SysfsTree) -> None:
    import json

    data = json.loads(json.dumps(Inventory.scan(lab.root).to_dict()))
    assert data["mdevs"][0]["type"] == "mtty-2"
    assert data["mdev_parents"][1]["types"][1]["devices"] == [MTTY_UUID]
    assert GPU in {f["path"] for f in data["pci"]}
    assert {f["address"]: f["migration_driver"] for f in data["pci"]}["0000:3b:00.2"] is True
