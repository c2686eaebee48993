"""Discovery: a host's assignable devices read from the real kernel (or any root holding sys/).

Names are imported on first use, so `devmig types` loads only the scanners it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from devmig.host.devices import ApMatrix as ApMatrix
    from devmig.host.devices import MdevDevice as MdevDevice
    from devmig.host.devices import MdevParent as MdevParent
    from devmig.host.devices import MdevType as MdevType
    from devmig.host.devices import PciFunction as PciFunction
    from devmig.host.devices import ScanWarning as ScanWarning
    from devmig.host.devices import Subchannel as Subchannel
    from devmig.host.inventory import Inventory as Inventory
    from devmig.host.sysfs import PathEscapeError as PathEscapeError
    from devmig.host.sysfs import Sysfs as Sysfs
    from devmig.host.sysfs import SysfsError as SysfsError
    from devmig.host.sysfs import SysfsRoot as SysfsRoot

_WHERE = {
    "ApMatrix": "devices",
    "MdevDevice": "devices",
    "MdevParent": "devices",
    "MdevType": "devices",
    "PciFunction": "devices",
    "ScanWarning": "devices",
    "Subchannel": "devices",
    "Inventory": "inventory",
    "PathEscapeError": "sysfs",
    "Sysfs": "sysfs",
    "SysfsError": "sysfs",
    "SysfsRoot": "sysfs",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'devmig.host' has no attribute {name!r}")
    return getattr(importlib.import_module(f"devmig.host.{_WHERE[name]}"), name)
