"""`devmig types|list --format mdevctl` against Debian's mdevctl 1.2.0 itself, byte for byte, on the same trees.

Debian's mdevctl reads only the real /sys and /etc/mdevctl.d, so each comparison runs it in a private mount namespace
with the tree bind mounted over both (root, `unshare` from util-linux, and mdevctl 1.2.0 are needed; scripts/setup
installs the packages when run as root). Without them the peer tests are skipped with the reason; the tests of
devmig's own behaviour on trees mdevctl refuses run everywhere, and so does the comparison with what mdevctl printed
for each tree, recorded in tests/golden/mdevctl (the peer tests hold those files to mdevctl's own output, so
regenerate them where the peer runs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from devmig.testing.sysfs_tree import SysfsTree
from tests.golden import assert_golden, regenerating

MDEVCTL_VERSION = "mdevctl 1.2.0"
#: $1 is the tree; the rest is the mdevctl command line
NAMESPACE_SCRIPT = 'mount --bind "$1/sys" /sys && mount --bind "$1/etc/mdevctl.d" /etc/mdevctl.d && shift && exec "$@"'


def _peer_missing() -> str | None:
    """Why mdevctl cannot be run on a tree here, or None."""
    if os.geteuid() != 0:
        return "needs root (mdevctl runs in a private mount namespace with the tree bind mounted over /sys)"
    for tool, package in (("unshare", "util-linux"), ("mdevctl", "mdevctl")):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (Debian package {package}; scripts/setup installs it when run as root)"
    if not Path("/etc/mdevctl.d").is_dir():
        return "/etc/mdevctl.d is missing (the mount point; the mdevctl package creates it)"
    version = subprocess.run(["mdevctl", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if version != MDEVCTL_VERSION:
        return f"devmig matches {MDEVCTL_VERSION} (Debian bookworm), found {version or 'no version'}"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.strip() or f'unshare exited {probe.returncode}'}"
    return None


PEER_MISSING = _peer_missing()
peer = pytest.mark.prerequisite(PEER_MISSING and f"mdevctl peer comparison: {PEER_MISSING}")


@cache
def run(argv: tuple[str, ...]) -> subprocess.CompletedProcess[bytes]:
    """Run once per command line: trees are built once and never change, so neither do the outputs."""
    return subprocess.run(argv, capture_output=True, timeout=30, check=False)


def mdevctl(tree: SysfsTree, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run(("unshare", "-m", "sh", "-c", NAMESPACE_SCRIPT, "sh", str(tree.root), "mdevctl", *args))


def devmig(tree: SysfsTree, command: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run((sys.executable, "-m", "devmig", command, "--format", "mdevctl", "--sysfs-root", str(tree.root), *args))


def new_tree(path: Path) -> SysfsTree:
    """An empty host as mdevctl expects it: its scripts.d directories, an empty mdev_bus and mdev bus."""
    tree = SysfsTree(path)
    for rel in ("etc/mdevctl.d/scripts.d/callouts", "etc/mdevctl.d/scripts.d/notifiers"):
        tree.mkdir(rel)
    tree.mkdir("sys/class/mdev_bus")
    tree.mkdir("sys/bus/mdev/devices")
    return tree


class Trees:
    """Each tree built once per module (several tests read the same one; none writes)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.built: dict[str, SysfsTree] = {}

    def get(self, name: str, build: Callable[[SysfsTree], None]) -> SysfsTree:
        if name not in self.built:
            tree = new_tree(self.base / name)
            build(tree)
            self.built[name] = tree
        return self.built[name]


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trees]:
    yield Trees(tmp_path_factory.mktemp("mdevctl-peer"))
    run.cache_clear()


def uuid_n(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012x}"


# -- parents ----------------------------------------------------------------------------------------------------


def pci_parent(tree: SysfsTree, address: str, device: int = 0x1234) -> str:
    rel = tree.pci_function(address, 0x10DE, device, class_code=0x030000, driver="nvidia")
    return tree.mdev_parent(address, rel)


def ccw_parent(tree: SysfsTree) -> str:
    rel = tree.subchannel("0.0.0313", driver="vfio_ccw", dev_busid="0.0.2b09")
    tree.mdev_parent("0.0.0313", rel, subsystem="sys/bus/css")
    tree.mdev_type(rel, "vfio_ccw-io", device_api="vfio-ccw", name="I/O subchannel (Non-QDIO)", available_instances=1)
    return rel


def ap_parent(tree: SysfsTree) -> str:
    rel = tree.ap_matrix()
    tree.mdev_parent("matrix", rel, subsystem="sys/class/vfio_ap")
    tree.mdev_type(
        rel, "vfio_ap-passthrough", device_api="vfio-ap", name="VFIO AP Passthrough Device", available_instances=65534
    )
    return rel


def mtty_parent(tree: SysfsTree) -> str:
    rel = tree.mkdir("sys/devices/virtual/mtty/mtty").relative_to(tree.root).as_posix()
    tree.mdev_parent("mtty", rel, subsystem="sys/class/mtty")
    tree.mdev_type(rel, "mtty-2", name="Dual port serial", available_instances=11)
    tree.mdev_type(rel, "mtty-1", name="Single port serial", available_instances=24)
    return rel


# -- cases mdevctl accepts ----------------------------------------------------------------------------------------


def no_mdev_bus(tree: SysfsTree) -> None:
    (tree.root / "sys/class/mdev_bus").rmdir()
    (tree.root / "sys/bus/mdev/devices").rmdir()


def empty_mdev_bus(tree: SysfsTree) -> None:
    pass


def one_pci_parent(tree: SysfsTree) -> None:
    gpu = pci_parent(tree, "0000:00:02.0", device=0x1912)
    tree.mdev_type(
        gpu,
        "i915-GVTg_V5_8",
        name="GVTg_V5_8",
        description="low_gm_size: 64MB\nhigh_gm_size: 384MB\nfence: 4\nresolution: 1024x768\nweight: 2",
        available_instances=2,
    )
    tree.mdev_type(gpu, "i915-GVTg_V5_4", description="low_gm_size: 128MB\nhigh_gm_size: 512MB\n", name=None)


def mixed_parents(tree: SysfsTree) -> dict[str, str]:
    """Parents of every kind, created out of order, with type names that sort differently by number or case."""
    parents = {"matrix": ap_parent(tree), "0000:0a:00.0": pci_parent(tree, "0000:0a:00.0", device=0x13F2)}
    for type_id, name in (("nvidia-22", "GRID M60-0B"), ("nvidia-100", "GRID M60-8Q"), ("nvidia-9", "GRID M60-1Q")):
        tree.mdev_type(parents["0000:0a:00.0"], type_id, name=name, description="num_heads=4, frl_config=60")
    parents["mtty"] = mtty_parent(tree)
    parents["0000:00:1f.0"] = pci_parent(tree, "0000:00:1f.0")
    for type_id in ("zeta-1", "alpha-2", "Mid-3", "10-x", "9-x", "\u00fc-1", "_u-1", "Zeta-0"):
        tree.mdev_type(parents["0000:00:1f.0"], type_id, name=type_id.upper(), description=f"d {type_id}")
    parents["0.0.0313"] = ccw_parent(tree)
    parents["0000:00:02.0"] = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(parents["0000:00:02.0"], "t", available_instances=0)
    return parents


def mixed_parents_case(tree: SysfsTree) -> None:
    mixed_parents(tree)


def active_devices(tree: SysfsTree) -> None:
    """Devices on every kind of parent, created out of UUID order (and a type link's devices/ entry for each)."""
    parents = mixed_parents(tree)
    for parent, uuid, type_id in (
        ("0000:00:1f.0", "ffffffff-ffff-ffff-ffff-ffffffffffff", "zeta-1"),
        ("0000:0a:00.0", "a0000000-0000-4000-8000-000000000000", "nvidia-22"),
        ("0000:00:1f.0", "00000000-0000-0000-0000-000000000000", "alpha-2"),
        ("0000:00:1f.0", "9fffffff-ffff-4fff-bfff-ffffffffffff", "9-x"),
        ("0000:00:1f.0", "0a0b0c0d-0e0f-4000-8000-0a0b0c0d0e0f", "zeta-1"),
        ("0000:00:1f.0", "0a0b0c0d-0e0f-4000-8000-0a0b0c0d0e0e", "\u00fc-1"),
        ("0.0.0313", "5a1c9f2e-1111-4222-8333-944455556666", "vfio_ccw-io"),
        ("matrix", "b28ef4d3-1f77-4b1a-9c0e-9a3e2b6c4d11", "vfio_ap-passthrough"),
        ("matrix", "1e9fa2f0-7a3b-4c5d-8e6f-70a1b2c3d4e5", "vfio_ap-passthrough"),
        ("mtty", "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", "mtty-2"),
        ("0000:0a:00.0", "0a000000-0000-4000-8000-000000000000", "nvidia-100"),
    ):
        tree.mdev(parents[parent], uuid, type_id)


def configs(tree: SysfsTree) -> None:
    """Active devices with mdevctl config files (start auto, attrs, another type), one defined only."""
    parents = mixed_parents(tree)
    ap_uuid, ccw_uuid, gpu_uuid = (
        "b28ef4d3-1f77-4b1a-9c0e-9a3e2b6c4d11",
        "5a1c9f2e-1111-4222-8333-944455556666",
        "0a0b0c0d-0e0f-4000-8000-0a0b0c0d0e0f",
    )
    tree.mdev(parents["matrix"], ap_uuid, "vfio_ap-passthrough")
    tree.mdevctl_config(
        "matrix",
        ap_uuid,
        {
            "mdev_type": "vfio_ap-passthrough",
            "start": "auto",
            "attrs": [
                {"assign_adapter": "5"},
                {"assign_domain": "0x47"},
                {"assign_control_domain": "0x47"},
                {"assign_adapter": "6"},
            ],
        },
    )
    tree.mdev(parents["0.0.0313"], ccw_uuid, "vfio_ccw-io")
    tree.mdevctl_config("0.0.0313", ccw_uuid, {"mdev_type": "vfio_ccw-io", "start": "manual", "attrs": []})
    tree.mdev(parents["0000:00:1f.0"], gpu_uuid, "zeta-1")  # the config names another type: mdevctl shows it
    tree.mdevctl_config("0000:00:1f.0", gpu_uuid, {"mdev_type": "alpha-2", "start": "auto", "attrs": [{"k": "v"}]})
    tree.mdev(parents["0000:00:1f.0"], uuid_n(1), "Mid-3")  # active, no config
    tree.mdevctl_config("0000:00:1f.0", uuid_n(2), {"mdev_type": "Mid-3", "start": "auto", "attrs": []})  # defined
    tree.mdevctl_config("0000:00:07.0", uuid_n(3), {"mdev_type": "x", "start": "auto", "attrs": []})  # no parent
    tree.write("etc/mdevctl.d/README", "not a parent")


def defined_only(tree: SysfsTree) -> None:
    parents = mixed_parents(tree)
    tree.mdevctl_config("0000:00:1f.0", uuid_n(7), {"mdev_type": "zeta-1", "start": "auto", "attrs": [{"a": "1"}]})
    tree.mdevctl_config("matrix", uuid_n(8), {"mdev_type": "vfio_ap-passthrough", "start": "manual", "attrs": []})
    tree.mdev(parents["0000:00:1f.0"], uuid_n(9), "zeta-1")  # a config for another UUID does not apply to it


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


#: Config files mdevctl 1.2.0 reads partly or not at all for an active device (it never fails `list` on them).
CONFIG_TRAPS: tuple[str, ...] = (
    '{"mdev_type": "T2", "start": "AUTO", "attrs": [{"a": "1"}]}',
    '{"mdev_type": "T2"}',  # no start: the whole file is ignored
    '{"mdev_type": null, "start": "auto"}',
    '{"start": "auto", "attrs": []}',
    "[1, 2]",
    "{not json",
    '{"mdev_type": "T2", "start": "auto", "attrs": [{"a": "1"}]} trailing',
    '\ufeff{"mdev_type": "T2", "start": "auto"}',
    '{"mdev_type": "T2", "start": "auto", "attrs": [{"a": "1"}, {"b": "2", "c": "3"}, {"d": "4"}]}',
    '{"mdev_type": "T2", "start": "auto", "attrs": [{"a": "1"}, 7, {"b": "2"}]}',
    '{"mdev_type": "T2", "start": "auto", "attrs": [{}, {"a": "b"}]}',  # {} ends the attributes too
    '{"mdev_type": "T2", "start": "auto", "attrs": "notalist"}',
    '{"mdev_type": "T2", "start": "auto", "attrs": [{"a": "1"}, {"a": "2"}]}',  # duplicates kept
    '{"mdev_type": "", "start": "auto", "attrs": []}',  # an empty type still replaces the sysfs one
    '{"mdev_type": "T2", "start": "auto", "start": "manual"}',  # the last duplicate key wins
    '{"mdev_type": "T2", "start": true}',
    '  {"mdev_type": "T\\n2", "start": "auto", "attrs": [{"k": "\\u00e9\\u0001\\"q\\ud83d\\ude00"}]}  \n\n',
    # what Python's json accepts and serde_json refuses: mdevctl ignores the file
    '{"mdev_type": "T2", "start": "auto", "x": NaN}',
    '{"mdev_type": "T2", "start": "auto", "x": -Infinity}',
    '{"mdev_type": "T2", "start": "auto", "x": 1e309}',
    '{"mdev_type": "T2", "start": "auto", "x": 1' + "0" * 309 + "}",
    '{"mdev_type": "T2", "start": "auto", "attrs": [{"a": "\\ud800"}]}',
    '{"mdev_type": "T2", "start": "auto", "attrs": [{"a": "\\udc00x"}]}',
    '{"mdev_type": "T2", "start": "auto", "x": ' + nested(127) + "}",
    '{"mdev_type": "T2", "start": "auto", "x": ' + nested(3000) + "}",
    # ... and their neighbours it accepts
    '{"mdev_type": "T2", "start": "auto", "x": 1e308, "y": 1e-400, "z": 18446744073709551616}',
    '{"mdev_type": "T2", "start": "auto", "x": ' + nested(126) + "}",
)


def config_traps(tree: SysfsTree) -> None:
    parent = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(parent, "T")
    tree.mdev_type(parent, "T2")
    for n, text in enumerate(CONFIG_TRAPS, start=1):
        tree.mdev(parent, uuid_n(n), "T")
        tree.write(f"etc/mdevctl.d/0000:00:02.0/{uuid_n(n)}", text, newline=False)


def strings(tree: SysfsTree) -> None:
    """Names and descriptions JSON must escape, and the whitespace Rust's trim() removes (not Python's strip())."""
    parent = pci_parent(tree, "0000:00:02.0")
    for type_id, name, description in (
        ("quotes", 'say "hi"', "back\\slash \\n \\u0041 and 'single' quotes"),
        ("unicode", "caf\u00e9 \u2603 \U0001f600", "\u00e9\u2028\u00e9 \u65e5\u672c / <a&b>"),
        ("controls", "a\x01b\x1bc\x7fd\te", "\x1cfile separators kept\x1f\nsecond\x0bline\r\nthird"),
        ("rust-trim", "\u3000\xa0 N \u2028\u2029\x85", "\u2000 D \u205f\u202f\t"),
        ("blank-lines", "inner\nnewline", "one\n\n\ntwo\n \n"),
        ("empty", "", " \n\t \n"),
        ("only-space-name", " \u3000 ", "x"),
    ):
        tree.mdev_type(parent, type_id, name=name, description=description)


def available_instances(tree: SysfsTree) -> None:
    parent = pci_parent(tree, "0000:00:02.0")
    for type_id, value in (("zero", "0"), ("plus", "+5"), ("spaces", "  7  "), ("max", "2147483647")):
        tree.mdev_type(parent, type_id, available_instances=value)
    tree.mdev_type(parent, "no-newline", available_instances=None)
    tree.write(f"{parent}/mdev_supported_types/no-newline/available_instances", "9", newline=False)


def negative_available_instances(tree: SysfsTree) -> None:
    parent = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(parent, "minus-one", available_instances="-1")
    tree.mdev_type(parent, "min", available_instances="-2147483648")


def stray_entries(tree: SysfsTree) -> None:
    """A file among the types, a bus entry that is no UUID, a device without its type link: mdevctl skips them."""
    parent = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(parent, "t")
    tree.write(f"{parent}/mdev_supported_types/README", "not a type")
    device = tree.mdev(parent, uuid_n(1), "t")
    tree.link("sys/bus/mdev/devices/not-a-uuid", device)
    untyped = tree.mdev(parent, uuid_n(2), "t")
    (tree.root / untyped / "mdev_type").unlink()


def device_api_control_chars(tree: SysfsTree) -> None:
    parent = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(parent, "t", device_api="\x1cvfio-pci\x1f")


def description_with_nul(tree: SysfsTree) -> None:
    parent = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(parent, "t", description="a\x00b")


def type_dir_symlink(tree: SysfsTree) -> None:
    parent = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(parent, "real")
    tree.link(f"{parent}/mdev_supported_types/alias", f"{parent}/mdev_supported_types/real")


@dataclass(frozen=True)
class Case:
    build: Callable[[SysfsTree], None]
    #: devmig warns on nothing (False where mdevctl silently skips what devmig reports)
    quiet: bool = True


CASES: dict[str, Case] = {
    "no_mdev_bus": Case(no_mdev_bus),
    "empty_mdev_bus": Case(empty_mdev_bus),
    "one_pci_parent": Case(one_pci_parent),
    "mixed_parents": Case(mixed_parents_case),
    "active_devices": Case(active_devices),
    "configs": Case(configs),
    "defined_only": Case(defined_only),
    "config_traps": Case(config_traps),
    "strings": Case(strings),
    "available_instances": Case(available_instances),
    "negative_available_instances": Case(negative_available_instances, quiet=False),
    "stray_entries": Case(stray_entries, quiet=False),
    "device_api_control_chars": Case(device_api_control_chars),
    "type_dir_symlink": Case(type_dir_symlink),
}

#: Trees mdevctl accepts where `devmig types` still differs; the fixes are outside devmig.host.mdevctl.
KNOWN_TYPES_DIFFERENCES = {
    "description_with_nul": (
        description_with_nul,
        "SysfsRoot.read refuses a NUL byte; mdevctl prints it as \\u0000",
    ),
}

SAME_PARAMS = [
    pytest.param(command, name, case, id=f"{command}-{name}")
    for command in ("types", "list")
    for name, case in CASES.items()
]
PEER_PARAMS = SAME_PARAMS + [
    pytest.param("types", name, Case(build), id=f"types-{name}", marks=pytest.mark.xfail(strict=True, reason=reason))
    for name, (build, reason) in KNOWN_TYPES_DIFFERENCES.items()
]


@peer
@pytest.mark.parametrize(("command", "name", "case"), PEER_PARAMS)
def test_same_output_as_mdevctl(trees: Trees, command: str, name: str, case: Case) -> None:
    tree = trees.get(name, case.build)
    theirs = mdevctl(tree, command, "--dumpjson")
    assert theirs.returncode == 0, theirs.stderr.decode(errors="replace")
    if name not in KNOWN_TYPES_DIFFERENCES:
        assert_golden(f"mdevctl/{command}-{name}.json", theirs.stdout)
    ours = devmig(tree, command)
    assert ours.returncode == 0, ours.stderr.decode(errors="replace")
    assert ours.stdout.decode() == theirs.stdout.decode()  # str first: a readable diff
    assert ours.stdout == theirs.stdout
    if case.quiet:
        assert ours.stderr == b""


#: `types --parent` of the mixed parents: each kind, and one that is no parent
PARENTS = ["0000:00:1f.0", "matrix", "0.0.0313", "0000:00:09.0"]


def parent_golden(parent: str) -> str:
    # no ':' in a file name, for checkouts on file systems that refuse it
    return f"mdevctl/types-mixed_parents-parent-{parent.replace(':', '_')}.json"


@peer
@pytest.mark.parametrize("parent", PARENTS)
def test_types_of_one_parent_as_mdevctl(trees: Trees, parent: str) -> None:
    tree = trees.get("mixed_parents", mixed_parents_case)
    theirs = mdevctl(tree, "types", "--parent", parent, "--dumpjson")
    assert theirs.returncode == 0, theirs.stderr.decode(errors="replace")
    assert_golden(parent_golden(parent), theirs.stdout)
    assert devmig(tree, "types", "--parent", parent).stdout == theirs.stdout


def assert_printed_by_mdevctl(name: str, ours: bytes) -> None:
    if regenerating():
        # these files are mdevctl's output: only the peer tests write them, from mdevctl itself
        pytest.skip("golden files of mdevctl's output are regenerated by the peer tests")
    assert_golden(name, ours)


@pytest.mark.parametrize(("command", "name", "case"), SAME_PARAMS)
def test_same_output_as_mdevctl_printed(trees: Trees, command: str, name: str, case: Case) -> None:
    """Where mdevctl cannot run, devmig is held to what mdevctl 1.2.0 printed for the same tree."""
    ours = devmig(trees.get(name, case.build), command)
    assert ours.returncode == 0, ours.stderr.decode(errors="replace")
    assert_printed_by_mdevctl(f"mdevctl/{command}-{name}.json", ours.stdout)


@pytest.mark.parametrize("parent", PARENTS)
def test_types_of_one_parent_as_mdevctl_printed(trees: Trees, parent: str) -> None:
    ours = devmig(trees.get("mixed_parents", mixed_parents_case), "types", "--parent", parent)
    assert ours.returncode == 0, ours.stderr.decode(errors="replace")
    assert_printed_by_mdevctl(parent_golden(parent), ours.stdout)


# -- trees mdevctl refuses ----------------------------------------------------------------------------------------


def bad_host(tree: SysfsTree, bad: Callable[[SysfsTree, str], None] | None) -> None:
    """Three parents (two PCI, one ccw) with good types and two devices, then (if given) one bad entry."""
    first = pci_parent(tree, "0000:00:02.0")
    tree.mdev_type(first, "good-1", name="Good one", description="line 1\nline 2")
    tree.mdev(first, uuid_n(1), "good-1")
    ccw = ccw_parent(tree)
    tree.mdev(ccw, uuid_n(2), "vfio_ccw-io")
    second = pci_parent(tree, "0000:00:03.0")
    tree.mdev_type(second, "good-2", available_instances=3)
    if bad is not None:
        bad(tree, second)


def no_device_api(tree: SysfsTree, parent: str) -> None:
    tree.mdev_type(parent, "broken", device_api=None)


def no_available_instances(tree: SysfsTree, parent: str) -> None:
    tree.mdev_type(parent, "broken", available_instances=None)


def available_instances_text(text: str) -> Callable[[SysfsTree, str], None]:
    def bad(tree: SysfsTree, parent: str) -> None:
        tree.mdev_type(parent, "broken", available_instances=text)

    return bad


def parent_without_types(tree: SysfsTree, parent: str) -> None:
    rel = tree.pci_function("0000:00:04.0", 0x8086, 0x1234)
    tree.link("sys/class/mdev_bus/0000:00:04.0", rel)


def dangling_parent_link(tree: SysfsTree, parent: str) -> None:
    tree.link("sys/class/mdev_bus/0000:00:05.0", "sys/devices/pci0000:00/0000:00:05.0")


BAD_PARAMS = [
    pytest.param(name, bad, entry, id=name)
    for name, bad, entry in (
        ("type_without_device_api", no_device_api, "0000:00:03.0/broken"),
        ("type_without_available_instances", no_available_instances, "0000:00:03.0/broken"),
        ("available_instances_abc", available_instances_text("abc"), "0000:00:03.0/broken"),
        ("available_instances_empty", available_instances_text(""), "0000:00:03.0/broken"),
        ("parent_without_mdev_supported_types", parent_without_types, "0000:00:04.0"),
        ("dangling_mdev_bus_link", dangling_parent_link, "0000:00:05.0"),
        ("available_instances_arabic_digit", available_instances_text("\u0663"), "0000:00:03.0/broken"),
        ("available_instances_x1c", available_instances_text("\x1c5"), "0000:00:03.0/broken"),
        ("available_instances_above_i32", available_instances_text("2147483648"), "0000:00:03.0/broken"),
    )
]


def good_and_bad(trees: Trees, name: str, bad: Callable[[SysfsTree, str], None]) -> tuple[SysfsTree, SysfsTree]:
    return trees.get("good_host", lambda tree: bad_host(tree, None)), trees.get(name, lambda tree: bad_host(tree, bad))


@pytest.mark.parametrize(("name", "bad", "entry"), BAD_PARAMS)
def test_bad_entry_is_left_out_with_a_warning(
    trees: Trees, name: str, bad: Callable[[SysfsTree, str], None], entry: str
) -> None:
    good, broken = good_and_bad(trees, name, bad)
    ours = devmig(broken, "types")
    assert ours.returncode == 0
    assert ours.stdout == devmig(good, "types").stdout
    assert {"0000:00:02.0", "0.0.0313", "0000:00:03.0"} <= set(json.loads(ours.stdout)[0])
    lines = ours.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("devmig: warning: ") and entry in lines[0]


@peer
@pytest.mark.parametrize(("name", "bad", "entry"), BAD_PARAMS)
def test_mdevctl_fails_where_devmig_prints_the_rest(
    trees: Trees, name: str, bad: Callable[[SysfsTree, str], None], entry: str
) -> None:
    good, broken = good_and_bad(trees, name, bad)
    theirs = mdevctl(broken, "types", "--dumpjson")
    assert (theirs.returncode, theirs.stdout) == (1, b"")
    assert theirs.stderr.startswith(b"Error: ")
    assert devmig(broken, "types").stdout == mdevctl(good, "types", "--dumpjson").stdout
    # `list` reads no types: both list the devices
    theirs_list = mdevctl(broken, "list", "--dumpjson")
    assert theirs_list.returncode == 0
    assert devmig(broken, "list").stdout == theirs_list.stdout
