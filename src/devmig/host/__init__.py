"""Discovery: a host's assignable devices read from the real kernel (or any root holding sys/)."""

from devmig.host.devices import ApMatrix, MdevDevice, MdevParent, MdevType, PciFunction, ScanWarning, Subchannel
from devmig.host.inventory import Inventory
from devmig.host.sysfs import PathEscapeError, SysfsError, SysfsRoot

__all__ = [
    "ApMatrix",
    "Inventory",
    "MdevDevice",
    "MdevParent",
    "MdevType",
    "PathEscapeError",
    "PciFunction",
    "ScanWarning",
    "Subchannel",
    "SysfsError",
    "SysfsRoot",
]
