"""vDPA devices over the kernel's "vdpa" generic-netlink family: the data it returns and the backend seam.

`devmig.vdpa.backend.VdpaBackend` is the one interface: the netlink client (real hosts) and
`devmig.sim.vdpa.SimVdpa` (the simulator) both implement it, so `devmig vdpa` and discovery cannot tell them apart.
The family's vocabulary is in `family` (commands, attributes) and `virtio` (device IDs, feature bits and names), its
replies in `records`; `iproute2` is iproute2's `vdpa` command language over the seam.
"""

from devmig.vdpa.backend import VdpaBackend, VdpaError, VdpaUnavailableError
from devmig.vdpa.family import Attr, Cmd
from devmig.vdpa.records import BlkConfig, DevConfig, MgmtDev, NetConfig, VdpaDev, VqStats
from devmig.vdpa.virtio import VirtioId, feature_names, feature_names_json

__all__ = [
    "Attr",
    "BlkConfig",
    "Cmd",
    "DevConfig",
    "MgmtDev",
    "NetConfig",
    "VdpaBackend",
    "VdpaDev",
    "VdpaError",
    "VdpaUnavailableError",
    "VirtioId",
    "VqStats",
    "feature_names",
    "feature_names_json",
]
