"""The kernel lab's pure parts: package resolution, module order, generated scripts, archive, console.

No boot, no apt: these run everywhere in about a second.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.kernel.lab import assets as lab_assets
from tests.kernel.lab.assets import LabAssets, default_cache_dir, prepare
from tests.kernel.lab.console import ConsoleStream, clean_console, command_output, parse_exit_marker
from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.guest import render_command_script, render_init
from tests.kernel.lab.initramfs import newc_archive
from tests.kernel.lab.modules import (
    BUILT_MODULES,
    IN_TREE_MODULES,
    elf_modinfo,
    module_name,
    order_modules,
    parse_depends,
)
from tests.kernel.lab.packages import (
    Apt,
    KernelPackages,
    choose_kernel,
    install_uapi_headers,
    kernel_abis,
    parse_apt_policy,
    parse_apt_search,
    parse_dpkg_versions,
)
from tests.kernel.lab.qemu import qemu_argv

# `apt-cache search --names-only '^linux-(image|headers)-6\.12\..*-amd64(-unsigned)?$'` as bookworm offered it.
SEARCH = """\
linux-headers-6.12.115+deb12-amd64 - Header files for Linux 6.12.115+deb12-amd64
linux-headers-6.12.115+deb12-cloud-amd64 - Header files for Linux 6.12.115+deb12-cloud-amd64
linux-headers-6.12.115+deb12-rt-amd64 - Header files for Linux 6.12.115+deb12-rt-amd64
linux-headers-6.12.117+deb12-amd64 - Header files for Linux 6.12.117+deb12-amd64
linux-headers-6.12.117+deb12-cloud-amd64 - Header files for Linux 6.12.117+deb12-cloud-amd64
linux-headers-6.12.9+deb12-amd64 - Header files for Linux 6.12.9+deb12-amd64
linux-image-6.12.115+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.115+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64-dbg - Debug symbols for linux-image-6.12.117+deb12-amd64
linux-image-6.12.117+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.9+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.120+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
"""


def policy_text(source: str | None, versions: dict[str, str | None], installed: dict[str, str] | None = None) -> str:
    """`apt-cache policy` output for linux-source-6.12 and `versions` ({package: candidate})."""
    blocks = []
    for name, candidate in {"linux-source-6.12": source, **versions}.items():
        inst = (installed or {}).get(name, "(none)")
        cand = candidate or "(none)"
        mirror = "http://mirror.invalid/debian-security bookworm-security/main amd64 Packages"
        table = f"     {cand} 500\n        500 {mirror}\n"
        blocks.append(
            f"{name}:\n  Installed: {inst}\n  Candidate: {cand}\n  Version table:\n{table if candidate else ''}"
        )
    return "".join(blocks)


def test_apt_search_names() -> None:
    names = parse_apt_search(SEARCH + "garbage without separator\n")
    assert names[0] == "linux-headers-6.12.115+deb12-amd64"
    assert len(names) == 13


def test_apt_policy() -> None:
    text = policy_text("6.12.117-1~deb12u1", {"linux-headers-6.12.117+deb12-amd64": None}, {"linux-source-6.12": "1.0"})
    text += "qemu-system-x86:amd64:\n  Installed: (none)\n  Candidate: 1:7.2+dfsg-7+deb12u18+b3\n"
    policy = parse_apt_policy(text)
    assert policy["linux-source-6.12"] == ("1.0", "6.12.117-1~deb12u1")
    assert policy["linux-headers-6.12.117+deb12-amd64"] == (None, None)
    assert policy["qemu-system-x86"] == (None, "1:7.2+dfsg-7+deb12u18+b3")


def test_kernel_abis_pairs_unsigned_images_with_headers_newest_first() -> None:
    # cloud/rt/dbg/signed ignored; 6.12.120 has no headers; 6.12.9 sorts numerically, not as text.
    assert kernel_abis(parse_apt_search(SEARCH)) == ["6.12.117+deb12", "6.12.115+deb12", "6.12.9+deb12"]


def test_choose_kernel_takes_the_abi_at_linux_sources_version() -> None:
    names = parse_apt_search(SEARCH)
    v117, v115 = "6.12.117-1~deb12u1", "6.12.115-2~deb12u1"
    versions: dict[str, str | None] = {
        "linux-image-6.12.117+deb12-amd64-unsigned": v117,
        "linux-headers-6.12.117+deb12-amd64": v117,
        "linux-image-6.12.115+deb12-amd64-unsigned": v115,
        "linux-headers-6.12.115+deb12-amd64": v115,
    }
    kp = choose_kernel(names, parse_apt_policy(policy_text(v117, versions)))
    assert kp == KernelPackages("6.12.117+deb12", v117)
    assert kp.image == "linux-image-6.12.117+deb12-amd64-unsigned"
    assert kp.headers == "linux-headers-6.12.117+deb12-amd64"
    assert kp.kernel_version == "6.12.117+deb12-amd64"
    # linux-source one update behind the newest image: the three must be the same build.
    assert choose_kernel(names, parse_apt_policy(policy_text(v115, versions))).abi == "6.12.115+deb12"


def test_choose_kernel_refusals() -> None:
    names = parse_apt_search(SEARCH)
    with pytest.raises(LabUnavailable, match=r"apt offers no linux-source-6\.12"):
        choose_kernel(names, parse_apt_policy(policy_text(None, {})))
    with pytest.raises(LabUnavailable, match=r"apt offers no linux-image-6\.12\.N"):
        choose_kernel([], parse_apt_policy(policy_text("6.12.117-1~deb12u1", {})))
    versions: dict[str, str | None] = {"linux-image-6.12.117+deb12-amd64-unsigned": "6.12.117-1~deb12u1"}
    with pytest.raises(LabUnavailable, match=r"no 6.12 image/headers at linux-source-6.12's version 6.12.118-1"):
        choose_kernel(names, parse_apt_policy(policy_text("6.12.118-1", versions)))


class RecordingApt(Apt):
    """apt answering from SEARCH and a policy at 6.12.117, recording what it is asked to install."""

    def __init__(self, installed: set[str]) -> None:
        self.log = lambda message: None
        self.updated = False
        self.present = installed
        self.installs: list[list[str]] = []

    def search(self, pattern: str) -> list[str]:
        return parse_apt_search(SEARCH)

    def policy(self, packages: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        v117 = "6.12.117-1~deb12u1"
        versions: dict[str, str | None] = {
            "linux-image-6.12.117+deb12-amd64-unsigned": v117,
            "linux-headers-6.12.117+deb12-amd64": v117,
        }
        return parse_apt_policy(policy_text(v117, versions))

    def installed(self, packages: Sequence[str]) -> set[str]:
        return self.present & set(packages)

    def install(self, packages: Sequence[str], *, release: str = "") -> None:
        self.installs.append(list(packages))


def test_the_uapi_headers_of_the_lab_kernel_are_installed_once() -> None:
    """scripts/setup's `kernel-lab headers`: the common headers of the kernel the lab would boot, nothing else."""
    apt = RecordingApt(set())
    kp = install_uapi_headers(apt)
    assert kp.common_headers == "linux-headers-6.12.117+deb12-common"
    assert apt.installs == [["linux-headers-6.12.117+deb12-common"]]
    apt = RecordingApt({"linux-headers-6.12.117+deb12-common"})
    install_uapi_headers(apt)
    assert apt.installs == []


def test_dpkg_installed() -> None:
    text = "busybox-static ii  1:1.35.0-4+b7\nqemu-system-x86 un  \nxz-utils:amd64 ii  5.4.1-1\n"
    text += "linux-source-6.12 rc  6.12.117-1\n"
    assert parse_dpkg_versions(text) == {"busybox-static": "1:1.35.0-4+b7", "xz-utils": "5.4.1-1"}


def test_module_names() -> None:
    assert module_name("vfio-pci-core.ko.xz") == "vfio_pci_core"
    assert module_name("9pnet_virtio.ko") == "9pnet_virtio"
    assert parse_depends("vfio-pci-core,vfio") == ["vfio_pci_core", "vfio"]
    assert parse_depends("") == []


def elf_with_modinfo(strings: list[str]) -> bytes:
    """A minimal ELF64 LE object: a null section, .modinfo and .shstrtab."""
    modinfo = b"".join(s.encode() + b"\0" for s in strings)
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    header_size = 64
    modinfo_off = header_size
    shstrtab_off = modinfo_off + len(modinfo)
    shoff = shstrtab_off + len(shstrtab)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)

    def sh(name: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, 1 if size else 0, 0, 0, offset, size, 0, 0, 1, 0)

    sections = sh(0, 0, 0) + sh(1, modinfo_off, len(modinfo)) + sh(10, shstrtab_off, len(shstrtab))
    return header + modinfo + shstrtab + sections


def test_elf_modinfo() -> None:
    data = elf_with_modinfo(["license=GPL", "depends=vfio-pci-core,vfio", "name=vfio_pci", "alias=a", "alias=b"])
    info = elf_modinfo(data)
    assert info["depends"] == ["vfio-pci-core,vfio"]
    assert info["alias"] == ["a", "b"]
    with pytest.raises(ValueError, match="ELF64"):
        elf_modinfo(b"not an elf")


# The depends= strings of Debian's 6.12.117 modules and of the ones built out of tree (seen).
DEPENDS = {
    "vfio": "",
    "vfio_iommu_type1": "vfio",
    "irqbypass": "",
    "vfio_pci_core": "vfio,irqbypass",
    "vfio_pci": "vfio-pci-core,vfio",
    "mdev": "",
    "netfs": "",
    "9pnet": "netfs",
    "9p": "netfs,9pnet",
    "9pnet_virtio": "9pnet",
    "vdpa": "",
    "vhost_iotlb": "",
    "vringh": "vhost_iotlb",
    "vdpa_sim": "vringh,vhost_iotlb,vdpa",
    "vdpa_sim_net": "vdpa_sim,vringh,vdpa",
    "vdpa_sim_blk": "vdpa_sim,vringh,vdpa",
    "mtty": "mdev,vfio",
}


def test_order_modules_puts_each_after_its_dependencies() -> None:
    depends = {name: parse_depends(value) for name, value in DEPENDS.items()}
    roots = list(reversed([*IN_TREE_MODULES, *BUILT_MODULES]))  # worst case: dependents first
    order = order_modules(roots, depends)
    assert sorted(order) == sorted(DEPENDS)
    for name in order:
        for dep in depends[name]:
            assert order.index(dep) < order.index(name), (dep, name)
    assert order_modules(["vfio_pci"], depends) == ["vfio", "irqbypass", "vfio_pci_core", "vfio_pci"]


def test_order_modules_refusals() -> None:
    with pytest.raises(LabUnavailable, match=r"module iommufd \(needed by vfio\) not found"):
        order_modules(["vfio_pci"], {"vfio_pci": ["vfio"], "vfio": ["iommufd"]})
    with pytest.raises(LabUnavailable, match="cycle: a -> b -> a"):
        order_modules(["a"], {"a": ["b"], "b": ["a"]})


def test_init_script() -> None:
    init = render_init(["vfio", "vfio_pci", "mtty"])
    assert init.startswith("#!/bin/busybox sh\n")
    assert "for m in vfio vfio_pci mtty; do" in init
    assert "mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose host /host" in init
    assert "mount -t 9p -o trans=virtio,version=9p2000.L results /results" in init
    for target in ("/host/proc", "/host/sys", "/host/dev", "/host/tmp", "/host/run", "/host/var/tmp"):
        assert f" {target} ||" in init, target
    assert "mkdir -p /host/etc/mdevctl.d/scripts.d/callouts /host/etc/mdevctl.d/scripts.d/notifiers" in init
    assert "/usr/bin/env -i PATH=" in init and "PYTHONDONTWRITEBYTECODE=1" in init
    assert 'echo "DEVMIG-GUEST-EXIT=$rc"' in init and "poweroff -f" in init
    # The results export is mounted first (it lists the paths to keep visible), the kept paths are bound aside
    # before the tmpfs mounts and moved back after them, and the results dir is moved under /host/tmp last.
    assert init.index("results /results") < init.index('mount -o bind "/host$p"') < init.index("tmpfs /host/tmp ")
    assert init.index("tmpfs /host/tmp ") < init.index('mount -o move "${f%.path}" "/host$p"')
    assert init.index('"/host$p"', init.index("tmpfs /host/tmp ")) < init.index(
        "mount -o move /results /host/tmp/devmig-results"
    )
    sh = shutil.which("sh")
    assert sh is not None
    subprocess.run([sh, "-n"], input=init, text=True, check=True)


def test_command_script_quotes_everything(tmp_path: Path) -> None:
    argv = ["a b", "'q'", "$HOME", "", "*", 'x"y', "line\nbreak"]
    env = {"X": 'it\'s "$(false)"\n2', "EMPTY": ""}
    script = render_command_script(["printf", "[%s]\\n", *argv], cwd=str(tmp_path), env=env)
    done = subprocess.run(["sh", "-c", script + 'printf "unreachable"'], capture_output=True, text=True, check=True)
    assert done.stdout == "".join(f"[{a}]\n" for a in argv)
    script = render_command_script(["sh", "-c", 'printf "%s|%s|%s" "$X" "$EMPTY" "$PWD"'], cwd=str(tmp_path), env=env)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == f"{env['X']}||{tmp_path}"
    script = render_command_script(["true"], cwd=str(tmp_path / "missing"), env={})
    assert subprocess.run(["sh", "-c", script], capture_output=True, check=False).returncode == 125


@pytest.mark.parametrize(
    ("command", "cwd", "env", "message"),
    [([], "/", {}, "empty command"), (["true"], "rel", {}, "absolute"), (["true"], "/", {"A-B": "1"}, "A-B")],
)
def test_command_script_refusals(command: list[str], cwd: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_command_script(command, cwd=cwd, env=env)


def test_exit_marker_and_command_output() -> None:
    console = (
        "SeaBIOS\nDEVMIG-GUEST-BEGIN\nhello\nno newline at the end\nDEVMIG-GUEST-EXIT=3\n[    3.9] reboot: Power down\n"
    )
    assert parse_exit_marker(console) == 3
    assert command_output(console) == "hello\nno newline at the end"
    # The command printing the marker itself: the last one (the init's) wins.
    console = "DEVMIG-GUEST-BEGIN\nDEVMIG-GUEST-EXIT=0\n\nDEVMIG-GUEST-EXIT=7\n"
    assert parse_exit_marker(console) == 7
    assert parse_exit_marker("DEVMIG-GUEST-BEGIN\nKernel panic\n") is None
    assert command_output("DEVMIG-GUEST-BEGIN\npartial") == "partial"
    assert command_output("no begin") == ""


def test_console_cleaning_is_the_same_in_chunks() -> None:
    raw = "\x1bc\x1b[?7l\x1b[2JSeaBIOS\r\nBooting \u00e9t\u00e9\r\nDEVMIG-GUEST-BEGIN\r\nok\r\n".encode()
    expected = "SeaBIOS\nBooting \u00e9t\u00e9\nDEVMIG-GUEST-BEGIN\nok\n"
    assert clean_console(raw) == expected
    for size in (1, 2, 3, 5, 7):
        stream = ConsoleStream()
        text = "".join(stream.feed(raw[i : i + size]) for i in range(0, len(raw), size)) + stream.flush()
        assert text == expected, size


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + filesize]
        pos += filesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert pos == len(data)
            return entries
        entries[name] = (fields[1], body, (fields[9], fields[10]))


def test_newc_archive_round_trip() -> None:
    archive = newc_archive(
        [
            ("bin", 0o040755, b"", (0, 0)),
            ("dev/console", 0o020600, b"", (5, 1)),
            ("init", 0o100755, b"#!/bin/busybox sh\n", (0, 0)),
            ("lib/modules/odd.ko", 0o100644, b"12345", (0, 0)),
        ]
    )
    assert len(archive) % 4 == 0
    entries = parse_newc(archive)
    assert entries["dev/console"] == (0o020600, b"", (5, 1))
    assert entries["init"][1] == b"#!/bin/busybox sh\n"
    assert entries["lib/modules/odd.ko"] == (0o100644, b"12345", (0, 0))


def test_qemu_argv(tmp_path: Path) -> None:
    assets = LabAssets("6.12.117+deb12-amd64", tmp_path / "vmlinuz", tmp_path / "initramfs.cpio.gz", tmp_path)
    argv = qemu_argv(assets, Path("/tmp/a,b"), memory_mb=1024, bios=Path("/usr/share/qemu/qboot.rom"))
    joined = " ".join(argv)
    assert "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap" in argv
    assert "local,path=/tmp/a,,b,mount_tag=results,security_model=none,multidevs=remap" in argv
    assert "-device intel-iommu -device edu" in joined and "-m 1024" in joined and "-no-reboot" in joined
    assert "intel_iommu=on" in argv[argv.index("-append") + 1]


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEVMIG_KERNEL_LAB_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DEVMIG_KERNEL_LAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "devmig" / "kernel-lab"


def test_warm_prepare_uses_the_stamp_without_apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    version = "6.12.117+deb12-amd64"
    base = tmp_path / version
    base.mkdir()
    (base / "vmlinuz").write_bytes(b"k")
    (base / "initramfs.cpio.gz").write_bytes(b"i")
    order = ["vfio", "mtty"]
    stamp = {"kernel_version": version, "modules": order, "fingerprint": lab_assets._fingerprint(order)}
    (base / "stamp.json").write_text(json.dumps(stamp))
    (tmp_path / "current.json").write_text(json.dumps({"kernel_version": version}))
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(lab_assets, "tools_ready", lambda: True)  # QEMU and iproute2 installed at their minimums

    def no_apt(log: object) -> None:
        raise AssertionError("apt used on a warm prepare")

    monkeypatch.setattr(lab_assets, "Apt", no_apt)  # the warm path's promise: no apt at all (its speed: benchmarks)
    assets = prepare(tmp_path, log=lambda message: None)
    assert assets == LabAssets(version, base / "vmlinuz", base / "initramfs.cpio.gz", base)
    # A stamp from another recipe (here: another init) is not trusted.
    stamp["fingerprint"] = "old"
    (base / "stamp.json").write_text(json.dumps(stamp))
    with pytest.raises(AssertionError, match="apt used"):
        prepare(tmp_path, log=lambda message: None)
