"""The host seam: what a host offers the code that discovers and provisions its devices.

A host is this machine (or a sysfs tree under a root) or a simulated lab host; devmig.machine builds either behind
this one protocol, so discovery, provisioning and the fleet's collector never ask which kind they hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from devmig.host.nvml import Nvml
    from devmig.host.sysfs import Sysfs
    from devmig.vdpa.backend import VdpaBackend


class Host(Protocol):
    @property
    def name(self) -> str:
        """How the user named it: "local" or "sim:LAB/HOST"."""
        ...

    @property
    def sysfs(self) -> Sysfs: ...

    @property
    def key(self) -> str:
        """A name for this host's state (journals, records, locks): "local", "root-<dir>" or "sim-<lab>-<host>"."""
        ...

    @property
    def hostname(self) -> str:
        """The name the host gives itself (the kernel's hostname; a lab host's name): a fleet's default."""
        ...

    def in_use(self, device: str, group: int | None) -> bool | None:
        """Is the VFIO device open (by a VM)? None when that cannot be told (a fixture tree, no permission)."""
        ...

    def vdpa(self) -> VdpaBackend:
        """This host's vdpa family; VdpaUnavailableError says what is missing when there is none."""
        ...

    def vdpa_if_any(self) -> VdpaBackend | None:
        """The vdpa family when this host has one, else None (most hosts have none)."""
        ...

    def nvml(self) -> Nvml | None:
        """NVIDIA's management library for this host's GPUs, or None (not installed, no NVIDIA driver, a tree)."""
        ...
