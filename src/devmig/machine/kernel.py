"""This machine: the running kernel's sysfs (or a tree under a root), VFIO through ioctls, vdpa over netlink."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devmig.host.nvml import Nvml
    from devmig.host.sysfs import Sysfs
    from devmig.migrate.device import MigrationDevice
    from devmig.vdpa.backend import VdpaBackend


@dataclass
class KernelHost:
    #: the real root, or any Sysfs standing in for it (a fixture tree, a fault injector in tests)
    sysfs: Sysfs
    name: str = "local"

    @property
    def key(self) -> str:
        from devmig.state import safe_name

        root = self.sysfs.root
        return "local" if root == "/" else safe_name(f"root-{root}")

    @property
    def hostname(self) -> str:
        return socket.gethostname()

    def in_use(self, device: str, group: int | None) -> bool | None:
        # A fixture tree has no /dev/vfio of its own: whether its devices are open cannot be told.
        if self.sysfs.root != "/" or group is None:
            return None
        from devmig.migrate.vfio import group_in_use

        return group_in_use(group)

    @contextmanager
    def vfio(self, device: str, path: str = "auto") -> Iterator[MigrationDevice]:
        """The device opened through the real ioctls by `path` (devmig.migrate.vfio.PATHS), closed afterwards."""
        from devmig.migrate.vfio import open_device

        with open_device(self.sysfs, device, path) as real:
            yield real

    def vdpa(self) -> VdpaBackend:
        from devmig.vdpa.backend import VdpaUnavailableError

        if self.sysfs.root != "/":
            raise VdpaUnavailableError(
                f"--sysfs-root {self.sysfs.root}: the vdpa family is netlink, spoken only by the running kernel"
            )
        from devmig.vdpa.netlink import NetlinkVdpa

        return NetlinkVdpa()

    def vdpa_if_any(self) -> VdpaBackend | None:
        # Said without loading the netlink client where the answer is known: under a root vdpa() would refuse,
        # and most hosts have no vdpa family (pyroute2's import was most of `devmig list`'s time).
        if self.sysfs.root != "/":
            return None
        from devmig.vdpa.genl import family_registered

        if family_registered("vdpa") is False:
            return None
        from devmig.vdpa.backend import VdpaUnavailableError

        try:
            return self.vdpa()
        except VdpaUnavailableError:
            return None

    def nvml(self) -> Nvml | None:
        # Only the running kernel's GPUs are NVML's; without nvidia.ko loaded the binding is not even imported.
        if self.sysfs.root != "/" or not self.sysfs.exists("sys/module/nvidia"):
            return None
        from devmig.host.nvml import PyNvml

        return PyNvml.open()
