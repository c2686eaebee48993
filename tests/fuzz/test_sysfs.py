"""Fuzzing what discovery reads from sysfs: attribute files holding random bytes, NULs, non-UTF-8, odd white space
and huge contents; links that dangle, loop or lead outside the root; files where directories belong and the
reverse; FIFOs; names no kernel makes. `Inventory.scan` turns each bad entry into a warning; describing a device
or a type may fail, but only as a DevmigError naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.errors import DevmigError
from devmig.host.describe import Describer
from devmig.host.devices import Subchannel
from devmig.host.inventory import Inventory
from devmig.host.mdevctl import list_dumpjson, types_dumpjson
from devmig.host.profile import shipped_profiles
from devmig.host.sysfs import MAX_ATTRIBUTE_BYTES, SysfsError, SysfsRoot
from devmig.testing.sysfs_tree import SysfsTree
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.strategies import example_documents, mutated
from tests.paths import ROOT

PROFILES = shipped_profiles()
MTTY = "sys/devices/virtual/mtty/mtty"
GPU = "sys/devices/pci0000:00/0000:00:02.0"
DECLARED = "sys/devices/pci0000:00/0000:00:04.0"
MTTY_UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"
DECLARED_UUID = "5b6f3a9c-1111-4222-8333-944455556666"
CCW = "sys/devices/css0/0.0.0313"
NIC_VF = "sys/devices/pci0000:3b/0000:3b:00.2"
NIC_PF = "sys/devices/pci0000:3b/0000:3b:00.0"
VFIO_FN = "sys/devices/pci0000:00/0000:00:03.0"

DECLARED_CAPABILITY = {
    "device_api": "vfio-pci",
    "type": "dev-1",
    "software_version": "1.0.0",
    "api": {"pci_id": "1eaa:0101"},
    "models": {
        "vendor-a.com/dev": {
            "params": {
                "queues": {"type": "int", "init_value": 4, "allowed_values": ["1-8"]},
                "mode": {"type": "str", "init_value": "a", "off_value": "a"},
                "fast": {"type": "bool", "init_value": False, "off_value": False},
            }
        }
    },
}


def build_host(tree: SysfsTree) -> None:
    """Every kind of entry discovery reads: mdev parents with a profiled type (mtty), an unverified one (GVT-g) and
    a declared one (migration_info.json and migration/<param>), PCI functions (a PF with a VF on a variant driver,
    one on vfio-pci), a vfio-ccw subchannel, the AP matrix, module versions and the kernel release."""
    tree.module("mtty", version="0.1")
    tree.module("i915", version="1.6.0", srcversion="ABCDEF")
    tree.osrelease("6.12.57+deb12-amd64")
    tree.mkdir(MTTY)
    tree.mdev_parent("mtty", MTTY, subsystem="sys/class/mtty")
    tree.mdev_type(MTTY, "mtty-2", name="Dual port serial", available_instances=11)
    tree.mdev(MTTY, MTTY_UUID, "mtty-2", iommu_group=3, driver="mtty")
    gpu = tree.pci_function("0000:00:02.0", 0x8086, 0x5912, class_code=0x030000, driver="i915", iommu_group=1)
    tree.mdev_parent("0000:00:02.0", gpu)
    tree.mdev_type(gpu, "i915-GVTg_V5_4", name="GVTg_V5_4", available_instances=2, description="fence: 4\nx")
    declared = tree.pci_function("0000:00:04.0", 0x1EAA, 0x0100, driver="vendor_a", iommu_group=2)
    tree.mdev_parent("0000:00:04.0", declared)
    tree.mdev_type(declared, "dev-1", migration_info=DECLARED_CAPABILITY)
    tree.mdev(declared, DECLARED_UUID, "dev-1", iommu_group=4, params={"queues": 4, "mode": "b", "fast": True})
    tree.pci_function("0000:3b:00.0", 0x15B3, 0x101D, driver="mlx5_core", sriov_totalvfs=8, sriov_numvfs=1)
    tree.pci_function(
        "0000:3b:00.2", 0x15B3, 0x101E, driver="mlx5_vfio_pci", physfn="0000:3b:00.0", iommu_group=7, numa_node=1
    )
    tree.pci_function("0000:00:03.0", 0x1234, 0x11E8, driver="vfio-pci", iommu_group=9, driver_override="vfio-pci")
    tree.subchannel("0.0.0313", 0, driver="vfio_ccw", dev_busid="0.0.1234")
    tree.mdev_parent("0.0.0313", CCW, subsystem="sys/bus/css")
    tree.mdev_type(CCW, "vfio_ccw-io", device_api="vfio-ccw")
    tree.ap_matrix()
    tree.mdevctl_config("mtty", MTTY_UUID, {"mdev_type": "mtty-2", "start": "auto", "attrs": []})


#: attribute files, relative to the root
ATTRIBUTES = [
    *(f"{fn}/{a}" for fn in (GPU, NIC_VF, NIC_PF, VFIO_FN) for a in ("vendor", "device", "class", "driver_override")),
    f"{NIC_PF}/sriov_totalvfs",
    f"{NIC_PF}/sriov_numvfs",
    f"{NIC_VF}/numa_node",
    f"{NIC_VF}/subsystem_vendor",
    f"{NIC_VF}/revision",
    *(f"{MTTY}/mdev_supported_types/mtty-2/{a}" for a in ("device_api", "available_instances", "name", "description")),
    *(f"{GPU}/mdev_supported_types/i915-GVTg_V5_4/{a}" for a in ("device_api", "available_instances", "description")),
    f"{DECLARED}/mdev_supported_types/dev-1/device_api",
    f"{DECLARED}/mdev_supported_types/dev-1/migration_info.json",
    *(f"{DECLARED}/{DECLARED_UUID}/migration/{p}" for p in ("queues", "mode", "fast")),
    f"{CCW}/mdev_supported_types/vfio_ccw-io/device_api",
    *(f"{CCW}/{a}" for a in ("type", "driver_override", "dev_busid", "chpids")),
    "sys/bus/ap/apmask",
    "sys/module/mtty/version",
    "sys/module/i915/version",
    "proc/sys/kernel/osrelease",
    f"etc/mdevctl.d/mtty/{MTTY_UUID}",
]
#: links, relative to the root
LINKS = [f"{fn}/{link}" for fn in (GPU, NIC_VF, VFIO_FN) for link in ("driver", "iommu_group", "subsystem")] + [
    f"{NIC_VF}/physfn",
    f"{NIC_PF}/virtfn0",
    f"{MTTY}/{MTTY_UUID}/mdev_type",
    f"{MTTY}/{MTTY_UUID}/iommu_group",
    f"{DECLARED}/{DECLARED_UUID}/mdev_type",
    "sys/class/mdev_bus/mtty",
    "sys/class/mdev_bus/0000:00:02.0",
    f"sys/bus/mdev/devices/{MTTY_UUID}",
    "sys/bus/pci/devices/0000:3b:00.2",
    "sys/bus/css/devices/0.0.0313",
]
#: directories where entries are listed (a new entry with an odd name may appear in any of them)
LISTED = [
    "sys/bus/pci/devices",
    "sys/class/mdev_bus",
    "sys/bus/mdev/devices",
    "sys/bus/css/devices",
    f"{MTTY}/mdev_supported_types",
    NIC_PF,
    "sys/kernel/iommu_groups",
]

EDGE_CONTENTS = [
    b"",
    b"\n",
    b"\x00",
    b"0x8086\x00\n",
    b"\xff\xfe\n",
    b" \t0x8086 \r\n",
    b"0x" + b"f" * 5000,
    b"9" * 5000,
    b"-1\n",
    b"-2147483649\n",
    b"+7\n",
    "²\n".encode(),
    "١٢\n".encode(),
    b"(null)\n",
    b"vfio-pci\n",
    b"vfio-foo\n",
    b"a b\n",
    b"1\n2\n",
    b"\x85vfio-pci\xe2\x80\xa8\n",
    b"{}",
    b'{"device_api": "vfio-pci"}',
    b"[" * 5000,
]
#: link targets, relative to the link's directory, or absolute (as the OS would follow them, out of the root)
EDGE_TARGETS = [
    "/etc",
    "/dev/zero",
    "../../../../../../../../../../../etc/hostname",
    "missing",
    ".",
    "..",
    "²",
    "x" * 255,
    "../../../sys/kernel/iommu_groups/1",
    "../../../bus/pci/drivers/vfio-pci",
]
EDGE_NAMES = [
    "\n",
    " ",
    "²",
    "a b",
    "x" * 255,
    "0000:00:02.0\n",
    os.fsdecode(b"\xff\xfe"),
    "virtfn\u0661",
    "-",
    ".hidden",
]

contents = st.binary(max_size=200) | st.sampled_from(EDGE_CONTENTS)
capability_texts = mutated([DECLARED_CAPABILITY, *example_documents(".capability.json")]).map(
    lambda doc: json.dumps(doc).encode()
)


@st.composite
def damage(draw: st.DrawFn) -> list[tuple[str, str, object]]:
    """A few changes to the tree: (what, where, with what)."""
    changes: list[tuple[str, str, object]] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["content", "content", "content", "json", "link", "node", "entry"]))
        if kind == "content":
            changes.append(("content", draw(st.sampled_from(ATTRIBUTES)), draw(contents)))
        elif kind == "json":
            changes.append(
                ("content", f"{DECLARED}/mdev_supported_types/dev-1/migration_info.json", draw(capability_texts))
            )
        elif kind == "link":
            changes.append(
                (
                    "link",
                    draw(st.sampled_from(LINKS)),
                    draw(st.sampled_from(EDGE_TARGETS) | st.text(min_size=1, max_size=20)),
                )
            )
        elif kind == "node":
            where = draw(st.sampled_from(ATTRIBUTES + LINKS))
            changes.append((draw(st.sampled_from(["dir", "fifo", "remove", "self-loop", "outside"])), where, None))
        else:
            changes.append(
                (
                    "entry",
                    draw(st.sampled_from(LISTED)),
                    draw(st.sampled_from(EDGE_NAMES) | st.text(min_size=1, max_size=12)),
                )
            )
    return changes


Snapshot = tuple[str, bytes | str | None]


def _snapshot(path: Path) -> Snapshot:
    if path.is_symlink():
        return ("link", str(path.readlink()))
    if path.is_file():
        return ("file", path.read_bytes())
    return ("dir", None) if path.is_dir() else ("absent", None)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _restore(path: Path, snapshot: Snapshot) -> None:
    kind, value = snapshot
    if kind == "dir":
        return  # changes never replace a directory
    _remove(path)
    if kind == "link":
        assert isinstance(value, str)
        path.symlink_to(value)
    elif kind == "file":
        assert isinstance(value, bytes)
        path.write_bytes(value)


@contextmanager
def damaged(root: Path, changes: list[tuple[str, str, object]]) -> Iterator[None]:
    """The tree with `changes` made, put back as it was afterwards (copying a whole tree per case is 50x slower)."""
    undo: list[tuple[Path, Snapshot]] = []
    try:
        for kind, rel, value in changes:
            path = root / rel
            if kind == "entry":
                name = str(value).replace("/", "_").replace("\x00", "")
                if not path.is_dir() or path.is_symlink() or name in ("", ".", ".."):
                    continue  # an earlier change took the directory away, or the name is the directory itself
                path = path / name
            snapshot = _snapshot(path)
            if snapshot[0] == "dir":
                continue  # never a directory: one made by an earlier change stays, and the tree's own are kept
            undo.append((path, snapshot))
            _remove(path)  # a file, a link or a FIFO (which writing would block on)
            path.parent.mkdir(parents=True, exist_ok=True)
            _make(path, kind, value)
        yield
    finally:
        for path, snapshot in reversed(undo):
            _restore(path, snapshot)


def _make(path: Path, kind: str, value: object) -> None:
    try:
        if kind == "content":
            assert isinstance(value, bytes)
            path.write_bytes(value)
        elif kind == "link":
            assert isinstance(value, str)
            path.symlink_to(value.replace("\x00", ""))
        elif kind == "dir":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "self-loop":
            path.symlink_to(path.name)
        elif kind == "outside":
            path.symlink_to("/etc/hostname")
        elif kind == "entry":
            path.symlink_to("../../../devices/pci0000:00/0000:00:03.0")
    except (OSError, ValueError):
        pass  # a name the file system refuses (too long, empty): that case cannot exist on a host either


def discover(root: str) -> None:
    """Everything read-only commands do with a host: scan, describe each device and type, mdevctl's dumps, JSON."""
    sysfs = SysfsRoot(root)
    inv = outcome("sysfs scan", lambda: Inventory.scan(sysfs))
    if isinstance(inv, DevmigError):
        return
    json.dumps(inv.to_dict())
    describer = Describer(inv, PROFILES)
    for device in inv.assignable():
        descriptor = outcome("describe", lambda device=device: describer.descriptor(device))  # type: ignore[misc]
        if not isinstance(descriptor, DevmigError):
            descriptor.model_dump_json()
    outcome("capabilities", lambda: [c.model_dump_json() for c in describer.capabilities()[0]])
    outcome("mdevctl types", lambda: types_dumpjson(inv.parents))
    outcome("mdevctl list", lambda: list_dumpjson(sysfs, inv.mdevs))


@pytest.fixture(scope="module")
def host_tree() -> Iterator[Path]:
    """The host built once per test; each case damages it and puts it back."""
    with tempfile.TemporaryDirectory() as tmp:
        build_host(SysfsTree(Path(tmp) / "root"))
        yield Path(tmp) / "root"


@fuzz(share=0.6)
@given(damage())
def test_damaged_trees(host_tree: Path, changes: list[tuple[str, str, object]]) -> None:
    with damaged(host_tree, changes):
        discover(str(host_tree))


@fuzz(share=0.4)
@given(st.lists(st.tuples(st.sampled_from(ATTRIBUTES), contents), min_size=1, max_size=len(ATTRIBUTES)))
def test_random_attribute_contents(host_tree: Path, files: list[tuple[str, bytes]]) -> None:
    with damaged(host_tree, [("content", rel, data) for rel, data in files]):
        discover(str(host_tree))


# -- huge, endless and odd files --------------------------------------------------------------------------------------


def test_the_undamaged_host_is_described_whole(host_tree: Path) -> None:
    """The fuzzed tree, undamaged (and after every case above), describes every device and type: the cases start
    from something that works, and leave it so."""
    inv = Inventory.scan(host_tree)
    assert not inv.warnings
    describer = Describer(inv, PROFILES)
    described = {describer.descriptor(d).confidence for d in inv.assignable() if not isinstance(d, Subchannel)}
    assert described == {"declared", "profile", "unverified"}
    caps, problems = describer.capabilities()
    assert not problems, problems
    assert len(caps) == 6, [c.type for c in caps]


@pytest.mark.parametrize(
    "rel", [f"{MTTY}/mdev_supported_types/mtty-2/name", f"{DECLARED}/mdev_supported_types/dev-1/migration_info.json"]
)
def test_a_100_mb_attribute_is_refused_after_reading_the_cap(tmp_path: Path, rel: str) -> None:
    tree = SysfsTree(tmp_path / "root")
    build_host(tree)
    with (tree.root / rel).open("r+b") as handle:
        handle.truncate(100 * 1024 * 1024)  # sparse: cheap to make, 100 MB to read
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SysfsError, match=f"larger than {MAX_ATTRIBUTE_BYTES} bytes"):
            SysfsRoot(tree.root).read(rel)
        inv = Inventory.scan(tree.root)
        Describer(inv, PROFILES).capabilities()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_ATTRIBUTE_BYTES
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("limit", [MAX_ATTRIBUTE_BYTES, 70_000])
def test_an_endless_attribute_is_read_to_the_cap(limit: int) -> None:
    """/dev/zero never ends (as a misbehaving driver's attribute would not): reading stops at the cap."""
    tracemalloc.start()
    try:
        with pytest.raises(SysfsError, match=f"dev/zero: larger than {limit} bytes"):
            SysfsRoot("/").read_bytes("dev/zero", limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit + 1024 * 1024


def test_a_fifo_does_not_hang_the_scan(tmp_path: Path) -> None:
    tree = SysfsTree(tmp_path / "root")
    build_host(tree)
    attr = tree.root / MTTY / "mdev_supported_types/mtty-2/available_instances"
    attr.unlink()
    os.mkfifo(attr)
    started = time.monotonic()
    inv = Inventory.scan(tree.root)
    assert time.monotonic() - started < 5
    assert any("available_instances" in w.path for w in inv.warnings)


def test_names_no_kernel_makes_do_not_break_the_commands(tmp_path: Path) -> None:
    """Entries whose names are not UTF-8, hold a newline or are not ASCII digits: the read-only commands print
    something and exit 0, 1 or 2, never an internal error (3), whatever stdout's encoding accepts."""
    tree = SysfsTree(tmp_path / "root")
    build_host(tree)
    devices = tree.root / "sys/bus/pci/devices"
    for name in (b"\xff\xfe", b"0000:00:09.0\n", "virtfn\u0661".encode()):
        (devices / os.fsdecode(name)).symlink_to("../../../devices/pci0000:00/0000:00:03.0")
    group = tree.root / MTTY / MTTY_UUID / "iommu_group"
    group.unlink()
    group.symlink_to(os.fsdecode(b"../../../../../kernel/iommu_groups/\xff"))
    (tree.root / NIC_PF / "virtfn\u0661").symlink_to("../0000:3b:00.2")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "DEVMIG_SYSFS_ROOT": str(tree.root)}
    for args in (
        ["list"],
        ["-j", "list"],
        ["types"],
        ["capabilities"],
        ["-j", "capabilities"],
        ["list", "--format", "mdevctl"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "devmig", *args], env=env, capture_output=True, cwd=ROOT, timeout=60, check=False
        )
        assert done.returncode in (0, 1, 2), (args, done.stderr.decode(errors="replace"))
