"""The sysfs seam: every read and write of the host's kernel files goes through a `SysfsRoot`.

As mdevctl's `Environment`, the filesystem root is a parameter (`/` by default; `--sysfs-root DIR` or
`DEVMIG_SYSFS_ROOT`), so discovery runs unchanged on a fixture tree, on the simulator's tree and on a real host.
Paths are relative to the root ("sys/bus/pci/devices"). A name that would leave the root (`..`, an absolute path,
NUL, a symlink resolving outside it) is refused.

Light on imports on purpose: `devmig list` and `devmig types` run on this module without pydantic.
"""

from __future__ import annotations

import errno
import os
import posixpath
from typing import Protocol

from devmig.errors import DevmigError, InputError

ENV_ROOT = "DEVMIG_SYSFS_ROOT"

#: An attribute file is one value (sysfs.rst); a PAGE_SIZE is the kernel's limit for a text attribute. Binary
#: attributes such as migration_info.json may be larger, never this large.
MAX_ATTRIBUTE_BYTES = 1024 * 1024


#: errnos of a refusal: open(2) says EACCES when the file's mode forbids it, a capability check says EPERM
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def needs_root(err: int | None) -> bool:
    """True when the kernel refused for want of privilege and this process is not root, so root would get further.
    (Root is refused too, by an attribute no one may write: that is not a privilege to ask for.)"""
    return err in DENIED_ERRNOS and os.geteuid() != 0


def why(exc: OSError) -> str:
    """An OSError's strerror, saying what it takes when the refusal is for want of privilege."""
    reason = exc.strerror or str(exc)
    return f"{reason} (needs root)" if needs_root(exc.errno) else reason


class SysfsError(DevmigError):
    """A kernel file could not be read or written. `errno` is kept so callers can tell EEXIST from ENOSPC."""

    def __init__(self, message: str, err: int | None = None) -> None:
        super().__init__(message)
        self.errno = err


class PathEscapeError(SysfsError, InputError):
    """A path or a link would leave the sysfs root: bad input when named by a user, odd sysfs contents (a warning
    on that entry) when met during a scan."""

    exit_code = InputError.exit_code

    def __init__(self, message: str) -> None:
        super().__init__(message, errno.EXDEV)


def check_name(rel: str) -> None:
    if "\x00" in rel:
        raise PathEscapeError(f"{rel!r}: a sysfs path may not contain NUL")
    if rel.startswith("/"):
        raise PathEscapeError(f"{rel}: expected a path relative to the sysfs root, found an absolute path")
    if ".." in rel and ".." in rel.split("/"):  # the split only when needed: this runs on every read of a scan
        raise PathEscapeError(f"{rel}: '..' would leave the sysfs root")


def decode_attribute(rel: str, data: bytes) -> str:
    """An attribute's text without its final newline; NUL bytes and invalid UTF-8 are errors."""
    if b"\x00" in data:
        raise SysfsError(f"{rel}: holds a NUL byte: expected one line of text", errno.EINVAL)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SysfsError(f"{rel}: not UTF-8 text", errno.EINVAL) from None
    return text[:-1] if text.endswith("\n") else text


class Sysfs(Protocol):
    """The sysfs seam: what discovery and provisioning need of a host's kernel files. `SysfsRoot` (a real root
    directory) and `devmig.sim.fs.SimSysfs` (a simulated host) implement it; code above cannot tell them apart.
    Paths are relative to the root ("sys/bus/pci/devices"); errors are `SysfsError`s keeping the errno.

    `write` writes an existing attribute; `write_file` and `remove_file` manage the few plain files beside sysfs
    under the same root (mdevctl's definitions in etc/mdevctl.d)."""

    #: what the root is, for messages ("/", a directory, "sim:LAB/HOST")
    root: str

    def read_bytes(self, rel: str, limit: int = MAX_ATTRIBUTE_BYTES) -> bytes: ...
    def read(self, rel: str) -> str: ...
    def read_optional(self, rel: str) -> str | None: ...
    def read_int(self, rel: str, base: int = 10) -> int: ...
    def listdir(self, rel: str) -> list[str]: ...
    def listdir_optional(self, rel: str) -> list[str]: ...
    def subdirs(self, rel: str) -> list[str]: ...
    def exists(self, rel: str) -> bool: ...
    def isdir(self, rel: str) -> bool: ...
    def islink(self, rel: str) -> bool: ...
    def readlink(self, rel: str) -> str: ...
    def link_name(self, rel: str) -> str | None: ...
    def write(self, rel: str, text: str) -> None: ...
    def write_file(self, rel: str, text: str) -> None: ...
    def remove_file(self, rel: str) -> bool: ...


class SysfsBase:
    """What every seam derives from its primitives (read_bytes, listdir, readlink); an implementation may give
    faster versions of its own."""

    def read_bytes(self, rel: str, limit: int = MAX_ATTRIBUTE_BYTES) -> bytes:
        raise NotImplementedError

    def listdir(self, rel: str) -> list[str]:
        raise NotImplementedError

    def readlink(self, rel: str) -> str:
        raise NotImplementedError

    def read(self, rel: str) -> str:
        """An attribute's text without its final newline; NUL bytes and invalid UTF-8 are errors."""
        return decode_attribute(rel, self.read_bytes(rel))

    def read_optional(self, rel: str) -> str | None:
        """The attribute, or None when the file does not exist."""
        try:
            return self.read(rel)
        except SysfsError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def read_int(self, rel: str, base: int = 10) -> int:
        text = self.read(rel).strip()
        try:
            return int(text, base)
        except ValueError:
            kind = "a decimal" if base == 10 else "a hexadecimal" if base == 16 else "an"
            raise SysfsError(f"{rel}: expected {kind} integer, found {text[:40]!r}", errno.EINVAL) from None

    def listdir_optional(self, rel: str) -> list[str]:
        try:
            return self.listdir(rel)
        except SysfsError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return []
            raise

    def link_name(self, rel: str) -> str | None:
        """The last component of a link's target (a driver's or a group's name), or None when absent."""
        try:
            return posixpath.basename(self.readlink(rel))
        except SysfsError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):
                return None
            raise


class SysfsRoot(SysfsBase):
    """A filesystem root holding `sys/` (and `proc/sys/kernel/osrelease`, `etc/mdevctl.d`, ...)."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        path = os.path.abspath(os.fspath(root))
        if not os.path.isdir(path):
            raise InputError(f"sysfs root {path}: not a directory")
        self.root = os.path.realpath(path)
        self.confined = self.root != "/"
        self._prefix = self.root.rstrip("/") + "/"

    @classmethod
    def from_env(cls, override: str | None = None) -> SysfsRoot:
        """The root given on the command line, else $DEVMIG_SYSFS_ROOT, else /."""
        return cls(override or os.environ.get(ENV_ROOT) or "/")

    def __repr__(self) -> str:
        return f"SysfsRoot({self.root!r})"

    # -- paths ---------------------------------------------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The host path of `rel`, after refusing names that leave the root."""
        check_name(rel)
        return self._prefix + rel if rel else self.root

    def _inside(self, real: str) -> bool:
        return not self.confined or real == self.root or real.startswith(self._prefix)

    def _check_fd(self, rel: str, fd: int) -> None:
        """What was opened, not what the name says: catches links anywhere along the path, in one syscall."""
        if not self._inside(os.readlink(f"/proc/self/fd/{fd}")):
            raise PathEscapeError(f"{rel}: resolves outside the sysfs root {self.root}")

    def _guard(self, rel: str, host_path: str) -> None:
        """Refuse `rel` when symlinks along it lead outside the root (only checked under a confined root)."""
        if self.confined and not self._inside(os.path.realpath(host_path)):
            raise PathEscapeError(f"{rel}: resolves outside the sysfs root {self.root}")

    def relative(self, host_path: str) -> str:
        if host_path == self.root:
            return ""
        if not host_path.startswith(self._prefix) and self.confined:
            raise PathEscapeError(f"{host_path}: outside the sysfs root {self.root}")
        return host_path[len(self._prefix) :] if self.confined else host_path.lstrip("/")

    # -- reads ---------------------------------------------------------------------------------------------------

    def _read(self, rel: str, limit: int, missing_ok: bool) -> bytes | None:
        host = self.path(rel)
        try:
            # O_NONBLOCK: a FIFO planted in a tree must not hang the scan (no effect on files and sysfs)
            fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise SysfsError(f"{rel}: cannot read: No such file or directory", errno.ENOENT) from None
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot read: {why(exc)}", exc.errno) from None
        try:
            if self.confined:
                self._check_fd(rel, fd)
            chunk = os.read(fd, 65536)
            if len(chunk) < 65536:
                return chunk  # a short read is the end of a file or of a sysfs attribute
            chunks, size = [chunk], len(chunk)
            while chunk:
                chunk = os.read(fd, 65536)
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise SysfsError(f"{rel}: larger than {limit} bytes: expected a sysfs attribute", errno.EFBIG)
            return b"".join(chunks)
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot read: {why(exc)}", exc.errno) from None
        finally:
            os.close(fd)

    def read_bytes(self, rel: str, limit: int = MAX_ATTRIBUTE_BYTES) -> bytes:
        data = self._read(rel, limit, missing_ok=False)
        assert data is not None
        return data

    def read_optional(self, rel: str) -> str | None:
        """The attribute, or None when the file does not exist."""
        data = self._read(rel, MAX_ATTRIBUTE_BYTES, missing_ok=True)
        return None if data is None else decode_attribute(rel, data)

    def listdir(self, rel: str) -> list[str]:
        host = self.path(rel)
        try:
            if not self.confined:
                return sorted(os.listdir(host))
            fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._check_fd(rel, fd)
                return sorted(os.listdir(fd))
            finally:
                os.close(fd)
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot list: {why(exc)}", exc.errno) from None

    def subdirs(self, rel: str) -> list[str]:
        """Names of the real directories in `rel`, sorted; symlinks and files are left out."""
        host = self.path(rel)
        try:
            if self.confined:
                self._guard(rel, host)
            with os.scandir(host) as entries:
                return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot list: {why(exc)}", exc.errno) from None

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))

    def isdir(self, rel: str) -> bool:
        return os.path.isdir(self.path(rel))

    def islink(self, rel: str) -> bool:
        return os.path.islink(self.path(rel))

    def readlink(self, rel: str) -> str:
        """The target of the link `rel`, as a root-relative canonical path.

        Sysfs links are relative (`../../devices/...`); they are resolved lexically against the link's directory,
        which discovery only ever reaches by canonical paths, so no extra lstat per component is needed.
        """
        host = self.path(rel)
        try:
            target = os.readlink(host)
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot read link: {why(exc)}", exc.errno) from None
        if target.startswith("/"):
            # sysfs makes relative links only; an absolute one is followed as the OS would, out of a fixture root
            resolved = posixpath.normpath(target)
        else:
            # the link's directory is what precedes its last slash: normpath folds any "//" that leaves
            resolved = posixpath.normpath(f"{host.rpartition('/')[0]}/{target}")
        if not self._inside(resolved):
            raise PathEscapeError(f"{rel}: link to {target} leaves the sysfs root {self.root}")
        return self.relative(resolved)

    def link_name(self, rel: str) -> str | None:
        """The last component of a link's target (a driver's, a type's or a group's name), or None when absent.

        Only a name is taken and nothing is opened through it, so no resolution is needed: this is the hot path
        of a 10,000-device scan."""
        try:
            target = os.readlink(self.path(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return None  # not a link
            raise SysfsError(f"{rel}: cannot read link: {why(exc)}", exc.errno) from None
        name = target.rstrip("/").rpartition("/")[2]  # posixpath.basename, without its call overhead
        if name in ("", ".", ".."):
            return posixpath.basename(self.readlink(rel))
        return name

    # -- writes --------------------------------------------------------------------------------------------------

    def write(self, rel: str, text: str) -> None:
        """Write an attribute in one write(2), as the kernel expects; errors keep their errno."""
        host = self.path(rel)
        if self.confined:
            self._guard(rel, host)
        try:
            # O_TRUNC as a shell redirection does: harmless on sysfs, and a fixture file keeps only what was written
            fd = os.open(host, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot open for writing: {why(exc)}", exc.errno) from None
        try:
            os.write(fd, text.encode("utf-8"))
        except OSError as exc:
            raise SysfsError(f"{rel}: writing {text.strip()!r} failed: {why(exc)}", exc.errno) from None
        finally:
            os.close(fd)

    def write_file(self, rel: str, text: str) -> None:
        """Create or replace a plain file (not an attribute) atomically: written beside it, synced, renamed over it.
        Missing parent directories are made; the file gets mode 0644, as mdevctl's definitions have."""
        host = self.path(rel)
        parent = posixpath.dirname(host)
        if self.confined:
            self._guard(rel, parent)  # realpath resolves the part that exists: no directory is made outside
        try:
            os.makedirs(parent, mode=0o755, exist_ok=True)
            tmp = f"{parent}/.{posixpath.basename(host)}.devmig-tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, host)
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot write: {why(exc)}", exc.errno) from None

    def remove_file(self, rel: str) -> bool:
        """Remove a plain file; False when there was none."""
        host = self.path(rel)
        if self.confined:
            self._guard(rel, posixpath.dirname(host))
        try:
            os.unlink(host)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise SysfsError(f"{rel}: cannot remove: {why(exc)}", exc.errno) from None
        return True
