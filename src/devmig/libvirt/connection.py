"""The libvirt binding, imported only when a libvirt command runs, and its failures as devmig's errors.

The binding (libvirt-python) is an optional extra: it compiles against the system's libvirt, which most of devmig's
users (a fleet's store, a simulated lab) never need. `Connection` and `Domain` name the few calls devmig makes, so
the rest of the package is typed without the binding.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Protocol

from devmig.errors import DevmigError, InputError

#: how to get the binding, in every message that says it is missing
INSTALL = "pip install 'devmig[libvirt]' (it builds against the system's libvirt: Debian's libvirt-dev, pkg-config)"


class LibvirtError(DevmigError):
    """libvirt refused: the connection, a domain's state, or a change (exit 1)."""


class Domain(Protocol):
    def name(self) -> str: ...
    def isActive(self) -> int: ...  # noqa: N802 - the binding's names
    def isPersistent(self) -> int: ...  # noqa: N802
    def XMLDesc(self, flags: int = 0) -> str: ...  # noqa: N802
    def setMetadata(self, kind: int, metadata: str | None, key: str | None, uri: str | None, flags: int = 0) -> int: ...  # noqa: N802
    def metadata(self, kind: int, uri: str | None, flags: int = 0) -> str: ...
    def migrateToURI3(self, dconnuri: str, params: dict[str, Any], flags: int = 0) -> int: ...  # noqa: N802
    def jobStats(self, flags: int = 0) -> dict[str, Any]: ...  # noqa: N802
    def abortJob(self) -> int: ...  # noqa: N802


class Connection(Protocol):
    def getURI(self) -> str: ...  # noqa: N802
    def lookupByName(self, name: str) -> Domain: ...  # noqa: N802
    def getLibVersion(self) -> int: ...  # noqa: N802
    def getType(self) -> str: ...  # noqa: N802
    def getVersion(self) -> int: ...  # noqa: N802


def binding() -> ModuleType:
    """The `libvirt` module, or one clear error saying how to install it."""
    try:
        module = importlib.import_module("libvirt")
    except ImportError as exc:
        raise LibvirtError(f"the libvirt Python binding is not installed ({exc}): {INSTALL}") from None
    return module


def _quiet(_context: Any, _error: Any) -> None:
    """libvirt's default handler prints every error on stderr; devmig reports each once, as its own."""


def connect(uri: str | None) -> Connection:
    """A connection to libvirt at `uri` (None: libvirt's default, $LIBVIRT_DEFAULT_URI or its own choice)."""
    libvirt = binding()
    libvirt.registerErrorHandler(_quiet, None)
    try:
        conn: Connection = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"libvirt at {uri or 'the default URI'}: cannot connect: {message(exc)}") from None
    return conn


def message(exc: Exception) -> str:
    """libvirt's own message of a libvirtError (without the name of the C function that failed)."""
    text = getattr(exc, "get_error_message", lambda: None)()
    return str(text if text else exc)


def domain(conn: Connection, name: str) -> Domain:
    """The domain `name` on `conn`: InputError when there is none (a wrong name), LibvirtError otherwise."""
    libvirt = binding()
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise InputError(f"domain {name}: not found at {conn.getURI()}: expected a domain's name") from None
        raise LibvirtError(f"domain {name} at {conn.getURI()}: {message(exc)}") from None
