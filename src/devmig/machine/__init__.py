"""The composition root: the host a command works on, assembled from the seams.

`open_host(None)` is this machine (under a sysfs root, / by default): `KernelHost`, with the real sysfs, VFIO ioctls
and vdpa netlink. `open_host("sim:LAB/HOST")` (or `DEVMIG_HOST`) is a simulated lab host: `LabHost`, with the
simulated kernel, its drivers and its vdpa core. Both satisfy devmig.host.access.Host (discovery, provisioning,
the fleet) and devmig.migrate.device.VfioHost (migration); nothing below this package knows which it holds.
"""

from __future__ import annotations

from devmig.errors import InputError
from devmig.host.sysfs import SysfsRoot
from devmig.machine.kernel import KernelHost
from devmig.machine.lab import SIM_PREFIX, LabHost, open_lab_host

#: either kind of host, for the commands that need its concrete type
AnyHost = KernelHost | LabHost


def open_host(spec: str | None = None, sysfs_root: str = "/", state_dir: str | None = None) -> AnyHost:
    """This machine (under `sysfs_root`) or a simulated host, with the changes earlier commands made to it."""
    if spec is None or spec in ("", "local"):
        return KernelHost(SysfsRoot(sysfs_root))
    if not spec.startswith(SIM_PREFIX):
        raise InputError(f"host {spec!r}: expected local, sim:HOST or sim:LAB/HOST")
    return open_lab_host(spec, state_dir)


__all__ = ["AnyHost", "KernelHost", "LabHost", "open_host"]
