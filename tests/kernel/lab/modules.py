"""The kernel modules the guest loads: the out-of-tree build (mtty, vringh, vdpa_sim*), reading each .ko's
`depends=` from its .modinfo section, and the load order (each module after what it depends on).
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.kernel.lab.errors import LabUnavailable
from tests.kernel.lab.packages import SOURCE_PACKAGE, KernelPackages, run

# In-tree modules the guest loads (their `depends=` closure is added); then the ones built out of tree.
IN_TREE_MODULES = (
    "vfio",
    "vfio_iommu_type1",
    "irqbypass",
    "vfio_pci_core",
    "vfio_pci",
    "mdev",
    "netfs",
    "9pnet",
    "9p",
    "9pnet_virtio",
    "vdpa",
    "vhost_iotlb",
)
BUILT_MODULES = ("vringh", "vdpa_sim", "vdpa_sim_net", "vdpa_sim_blk", "mtty")
# Members of the source tarball the built modules need (tar wildcards, any top-level directory).
SOURCE_MEMBERS = ("*/samples/vfio-mdev/mtty.c", "*/drivers/vdpa/vdpa_sim/*", "*/drivers/vhost/vringh.c")


def module_name(name: str) -> str:
    """The kernel's name for a module: file stem or `depends=` entry, with "-" as "_"."""
    for suffix in (".xz", ".zst", ".gz", ".ko"):
        name = name.removesuffix(suffix)
    return name.replace("-", "_")


def parse_depends(value: str) -> list[str]:
    return [module_name(d) for d in value.split(",") if d.strip()]


def elf_modinfo(data: bytes) -> dict[str, list[str]]:
    """The key=value strings of a (decompressed, ELF64 little-endian) .ko's .modinfo section."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(index: int) -> tuple[int, bytes]:
        base = shoff + index * shentsize
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, base)
        return name, data[offset : offset + size]

    _, strtab = section(shstrndx)
    for index in range(shnum):
        name_offset, body = section(index)
        if strtab[name_offset : strtab.index(b"\0", name_offset)] == b".modinfo":
            info: dict[str, list[str]] = {}
            for item in body.split(b"\0"):
                key, sep, value = item.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
            return info
    raise ValueError("no .modinfo section")


def order_modules(roots: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """Every module of `roots` and their `depends` closure, each after what it depends on (roots' order kept)."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise LabUnavailable(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in depends:
            needed = f" (needed by {chain[-1]})" if chain else ""
            raise LabUnavailable(f"module {name}{needed} not found")
        state[name] = "visiting"
        for dep in depends[name]:
            visit(dep, (*chain, name))
        state[name] = "done"
        order.append(name)

    for root in roots:
        visit(root, ())
    return order


def build_modules(kp: KernelPackages, work: Path, log: Callable[[str], None]) -> Path:
    """mtty.ko and vringh/vdpa_sim/vdpa_sim_net/vdpa_sim_blk.ko, built out of tree against the headers."""
    tarball = Path(f"/usr/src/{SOURCE_PACKAGE}.tar.xz")
    if not tarball.is_file():
        raise LabUnavailable(f"{tarball} missing although {SOURCE_PACKAGE} is installed")
    headers = Path(f"/usr/src/linux-headers-{kp.kernel_version}")
    if not (headers / "Makefile").is_file():
        raise LabUnavailable(f"{headers}/Makefile missing although {kp.headers} is installed")
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    log(f"extracting {', '.join(m.removeprefix('*/') for m in SOURCE_MEMBERS)} from {tarball}")
    run(["tar", "-xJf", str(tarball), "-C", str(src), "--wildcards", *SOURCE_MEMBERS], what=f"tar -x {tarball}")
    build = work / "build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    wanted = ["mtty.c", "vringh.c", "vdpa_sim.c", "vdpa_sim.h", "vdpa_sim_net.c", "vdpa_sim_blk.c"]
    found = {p.name: p for p in src.rglob("*") if p.name in wanted and p.is_file()}
    for name in wanted:
        if name not in found:
            raise LabUnavailable(f"{name} not found in {tarball}")
        shutil.copy2(found[name], build / name)
    (build / "Kbuild").write_text("obj-m := " + " ".join(f"{m}.o" for m in BUILT_MODULES) + "\n")
    log(f"building {', '.join(BUILT_MODULES)} against {headers}")
    jobs = str(os.cpu_count() or 1)
    run(["make", "-C", str(headers), f"M={build}", f"-j{jobs}", "modules"], what="building the out-of-tree modules")
    for name in BUILT_MODULES:
        if not (build / f"{name}.ko").is_file():
            raise LabUnavailable(f"building the out-of-tree modules: {name}.ko not produced")
    return build


def _load_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise LabUnavailable(f"{path.name}: zstd-compressed modules are not supported")
    return data


def collect_modules(image_root: Path, kernel_version: str, build: Path) -> tuple[list[str], dict[str, bytes]]:
    """The load order and the decompressed .ko of every module the guest needs (built ones win over in-tree)."""
    tree = image_root / "lib" / "modules" / kernel_version / "kernel"
    if not tree.is_dir():
        tree = image_root / "usr" / "lib" / "modules" / kernel_version / "kernel"
    if not tree.is_dir():
        raise LabUnavailable(f"no lib/modules/{kernel_version}/kernel in the image package")
    index = {module_name(p.name): p for p in tree.rglob("*.ko*")}
    index.update({name: build / f"{name}.ko" for name in BUILT_MODULES})
    blobs: dict[str, bytes] = {}
    depends: dict[str, list[str]] = {}
    pending = [*IN_TREE_MODULES, *BUILT_MODULES]
    while pending:
        name = pending.pop()
        if name in depends:
            continue
        if name not in index:
            continue  # order_modules names the module that needed it
        blobs[name] = _load_module(index[name])
        try:
            info = elf_modinfo(blobs[name])
        except ValueError as exc:
            raise LabUnavailable(f"{index[name]}: {exc}") from exc
        depends[name] = parse_depends(",".join(info.get("depends", [])))
        pending.extend(depends[name])
    order = order_modules([*IN_TREE_MODULES, *BUILT_MODULES], depends)
    return order, {name: blobs[name] for name in order}
