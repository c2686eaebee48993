"""vDPA devices over the kernel's "vdpa" generic-netlink family: the data it returns and the backend seam.

`devmig.vdpa.backend.VdpaBackend` is the one interface: the netlink client (real hosts) and
`devmig.sim.vdpa.SimVdpa` (the simulator) both implement it, so `devmig vdpa` and discovery cannot tell them apart.
"""

from devmig.vdpa.backend import (
    Attr,
    BlkConfig,
    Cmd,
    DevConfig,
    MgmtDev,
    NetConfig,
    VdpaBackend,
    VdpaDev,
    VdpaError,
    VdpaUnavailableError,
    VirtioId,
    VqStats,
    feature_names,
    feature_names_json,
)

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
