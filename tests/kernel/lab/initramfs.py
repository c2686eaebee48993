"""The guest's initramfs: busybox, the modules and the /init, packed as the cpio archive the kernel unpacks."""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.kernel.lab.errors import LabUnavailable


def newc_archive(entries: Sequence[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A cpio "newc" archive (what the kernel unpacks as initramfs) of (path, mode, data, (rdev major, minor)).

    Written here rather than with cpio(1): no extra package, no dependence on the builder's uid or umask, and
    device nodes (/dev/console) need no root.
    """
    out = bytearray()

    def add(ino: int, name: str, mode: int, data: bytes, rdev: tuple[int, int]) -> None:
        raw_name = name.encode() + b"\0"
        nlink = 2 if mode & 0o170000 == 0o040000 else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw_name), 0)
        out.extend(b"070701" + "".join(f"{f:08X}" for f in fields).encode() + raw_name)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        add(ino, name, mode, data, rdev)
    add(0, "TRAILER!!!", 0, b"", (0, 0))
    return bytes(out)


def _busybox() -> Path:
    for path in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if path.is_file():
            return path
    raise LabUnavailable("busybox not found although busybox-static is installed")


def build_initramfs(dest: Path, order: Sequence[str], blobs: Mapping[str, bytes], init: str) -> None:
    dirs = ["bin", "dev", "proc", "sys", "host", "lib", "lib/modules", "tmp"]
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [(d, 0o040755, b"", (0, 0)) for d in dirs]
    entries.append(("dev/console", 0o020600, b"", (5, 1)))
    entries.append(("bin/busybox", 0o100755, _busybox().read_bytes(), (0, 0)))
    entries.append(("init", 0o100755, init.encode(), (0, 0)))
    entries += [(f"lib/modules/{name}.ko", 0o100644, blobs[name], (0, 0)) for name in order]
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(gzip.compress(newc_archive(entries), compresslevel=6, mtime=0))
    tmp.replace(dest)
