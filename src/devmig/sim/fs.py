"""An in-memory sysfs: the simulator's side of the sysfs seam.

`SimSysfs` answers the same calls as `devmig.host.sysfs.SysfsRoot` (reads, writes, listings, links) from a tree of
nodes, so discovery and provisioning run on it unchanged. Files may be *active*: their text is computed when read
(`available_instances` follows the devices that exist) and a write calls the driver, which accepts it or raises an
`OSError` with the errno the kernel would give (EEXIST, EINVAL, ENOSPC, EBUSY...). The errors reach the caller as
`SysfsError`s, exactly as from the real seam.
"""

from __future__ import annotations

import errno
import os
import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from devmig.host.sysfs import MAX_ATTRIBUTE_BYTES, PathEscapeError, SysfsBase, SysfsError, check_name

Reader = Callable[[], str]
Writer = Callable[[str], None]
#: Told of every change made through the seam: (operation, path, text); operation is write, write_file or
#: remove_file. A simulated host's persistence (devmig.sim.persist) records them.
Observer = Callable[[str, str, str | None], None]


@dataclass
class Dir:
    children: dict[str, Node] = field(default_factory=dict)


@dataclass
class File:
    read: Reader | None = None
    write: Writer | None = None
    #: the content of a plain file (made by write_file), None for an attribute
    stored: list[str] | None = None


@dataclass
class Link:
    target: str  # absolute in the simulated tree, without a leading slash ("sys/devices/...")


Node = Dir | File | Link


def static(text: str) -> Reader:
    """A file that reads `text` plus the newline the kernel prints."""
    return lambda: text + "\n"


class SimSysfs(SysfsBase):
    """A simulated host's sysfs (and the few files beside it: proc/sys/kernel/osrelease, etc/mdevctl.d)."""

    def __init__(self, name: str) -> None:
        self.root = f"sim:{name}"
        self._top = Dir()
        #: The kernel serialises each sysfs operation against the others; so does the simulator (the race tests
        #: run prepares in threads).
        self.lock = threading.RLock()
        self.observers: list[Observer] = []

    def __repr__(self) -> str:
        return f"SimSysfs({self.root!r})"

    # -- building (the simulated kernel's side) -----------------------------------------------------------------

    def mkdir(self, rel: str) -> Dir:
        node = self._top
        for part in (p for p in rel.split("/") if p):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = Dir()
            if not isinstance(child, Dir):
                raise ValueError(f"sim: {rel}: {part} is not a directory")
            node = child
        return node

    def add_file(self, rel: str, read: Reader | None = None, write: Writer | None = None) -> None:
        parent, name = posixpath.split(rel)
        self.mkdir(parent).children[name] = File(read, write)

    def add_link(self, rel: str, target: str) -> None:
        parent, name = posixpath.split(rel)
        self.mkdir(parent).children[name] = Link(target)

    def remove(self, rel: str) -> None:
        parent, name = posixpath.split(rel)
        node = self._lookup(parent, follow=False)
        if isinstance(node, Dir):
            node.children.pop(name, None)

    # -- lookups -------------------------------------------------------------------------------------------------

    def _lookup(self, rel: str, *, follow: bool = True, depth: int = 0) -> Node | None:
        """The node at `rel`, following links along the way (and at the end when `follow`)."""
        if depth > 40:
            raise SysfsError(f"{rel}: too many levels of symbolic links", errno.ELOOP)
        node: Node = self._top
        parts = [p for p in rel.split("/") if p]
        for i, part in enumerate(parts):
            if not isinstance(node, Dir):
                return None
            child = node.children.get(part)
            if child is None:
                return None
            if isinstance(child, Link) and (follow or i < len(parts) - 1):
                rest = "/".join(parts[i + 1 :])
                return self._lookup(
                    posixpath.join(self._target(rel, parts[: i + 1], child), rest), follow=follow, depth=depth + 1
                )
            node = child
        return node

    def _target(self, rel: str, parts: list[str], link: Link) -> str:
        target = posixpath.normpath(link.target)
        if target.startswith("..") or target.startswith("/"):
            raise PathEscapeError(f"{'/'.join(parts)}: link to {link.target} leaves the simulated sysfs")
        return target

    def _node(self, rel: str) -> Node:
        check_name(rel)
        node = self._lookup(rel)
        if node is None:
            raise SysfsError(f"{rel}: cannot read: No such file or directory", errno.ENOENT)
        return node

    # -- the seam ------------------------------------------------------------------------------------------------

    def _read_bytes(self, rel: str, limit: int = MAX_ATTRIBUTE_BYTES) -> bytes:
        node = self._node(rel)
        if isinstance(node, Dir):
            raise SysfsError(f"{rel}: cannot read: Is a directory", errno.EISDIR)
        assert isinstance(node, File)
        if node.read is None:
            raise SysfsError(f"{rel}: cannot read: Permission denied", errno.EACCES)  # a write-only attribute
        data = node.read().encode()
        if len(data) > limit:
            raise SysfsError(f"{rel}: larger than {limit} bytes: expected a sysfs attribute", errno.EFBIG)
        return data

    def _listdir(self, rel: str) -> list[str]:
        check_name(rel)
        node = self._lookup(rel)
        if node is None:
            raise SysfsError(f"{rel}: cannot list: No such file or directory", errno.ENOENT)
        if not isinstance(node, Dir):
            raise SysfsError(f"{rel}: cannot list: Not a directory", errno.ENOTDIR)
        return sorted(node.children)

    def _subdirs(self, rel: str) -> list[str]:
        check_name(rel)
        node = self._lookup(rel)
        if not isinstance(node, Dir):
            raise SysfsError(f"{rel}: cannot list: No such file or directory", errno.ENOENT)
        return sorted(name for name, child in node.children.items() if isinstance(child, Dir))

    def _exists(self, rel: str) -> bool:
        check_name(rel)
        return self._lookup(rel, follow=False) is not None

    def _isdir(self, rel: str) -> bool:
        check_name(rel)
        return isinstance(self._lookup(rel), Dir)

    def _islink(self, rel: str) -> bool:
        check_name(rel)
        return isinstance(self._lookup(rel, follow=False), Link)

    def _readlink(self, rel: str) -> str:
        check_name(rel)
        node = self._lookup(rel, follow=False)
        if node is None:
            raise SysfsError(f"{rel}: cannot read link: No such file or directory", errno.ENOENT)
        if not isinstance(node, Link):
            raise SysfsError(f"{rel}: cannot read link: Invalid argument", errno.EINVAL)
        return self._target(rel, rel.split("/"), node)

    def _write(self, rel: str, text: str) -> None:
        node = self._node(rel)
        if not isinstance(node, File) or node.write is None:
            raise SysfsError(f"{rel}: cannot open for writing: Permission denied", errno.EACCES)
        try:
            node.write(text)
        except OSError as exc:
            reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
            raise SysfsError(f"{rel}: writing {text.strip()!r} failed: {reason}", exc.errno) from None

    def _changed(self, op: str, rel: str, text: str | None) -> None:
        for observer in self.observers:
            observer(op, rel, text)

    # Each seam call holds the lock: the simulated kernel's operations are atomic to each other, as the real
    # kernel's are.

    def read_bytes(self, rel: str, limit: int = MAX_ATTRIBUTE_BYTES) -> bytes:
        with self.lock:
            return self._read_bytes(rel, limit)

    def listdir(self, rel: str) -> list[str]:
        with self.lock:
            return self._listdir(rel)

    def subdirs(self, rel: str) -> list[str]:
        with self.lock:
            return self._subdirs(rel)

    def exists(self, rel: str) -> bool:
        with self.lock:
            return self._exists(rel)

    def isdir(self, rel: str) -> bool:
        with self.lock:
            return self._isdir(rel)

    def islink(self, rel: str) -> bool:
        with self.lock:
            return self._islink(rel)

    def readlink(self, rel: str) -> str:
        with self.lock:
            return self._readlink(rel)

    def write(self, rel: str, text: str) -> None:
        with self.lock:
            self._write(rel, text)
            self._changed("write", rel, text)

    def write_file(self, rel: str, text: str) -> None:
        """A plain file beside sysfs (etc/mdevctl.d/...): stored, read back, rewritten, removed."""
        check_name(rel)
        with self.lock:
            existing = self._lookup(rel, follow=False)
            if existing is not None and not (isinstance(existing, File) and existing.stored is not None):
                raise SysfsError(f"{rel}: cannot write: not a plain file", errno.EISDIR)
            parent, name = posixpath.split(rel)
            box = [text]
            node = File(read=lambda: box[0], write=lambda new: box.__setitem__(0, new), stored=box)
            try:
                self.mkdir(parent).children[name] = node
            except ValueError:
                raise SysfsError(f"{rel}: cannot write: a parent is not a directory", errno.ENOTDIR) from None
            self._changed("write_file", rel, text)

    def remove_file(self, rel: str) -> bool:
        check_name(rel)
        with self.lock:
            node = self._lookup(rel, follow=False)
            if node is None:
                return False
            if not (isinstance(node, File) and node.stored is not None):
                raise SysfsError(f"{rel}: cannot remove: not a plain file", errno.EPERM)
            self.remove(rel)
            self._changed("remove_file", rel, None)
            return True


def kernel_error(code: int) -> OSError:
    """The OSError a simulated attribute raises for the kernel's -`code`."""
    return OSError(code, os.strerror(code))
