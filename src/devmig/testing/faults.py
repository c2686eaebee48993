"""Fault injection for the tests of everything that changes a host: a sysfs seam that fails its N-th change, and a
picture of the host state a change could touch, to prove a failed operation left the host as it was.

Used by the simulator's tests and, on the real /sys, by the kernel tier.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devmig.host.sysfs import MAX_ATTRIBUTE_BYTES, Sysfs, SysfsError

if TYPE_CHECKING:
    from devmig.host.access import Host
    from devmig.host.nvml import Nvml
    from devmig.vdpa.backend import VdpaBackend

MUTATIONS = ("write", "write_file", "remove_file")


def eio(rel: str) -> BaseException:
    return SysfsError(f"{rel}: injected fault: Input/output error", errno.EIO)


@dataclass
class FaultySysfs:
    """Passes every call to `inner`, except that its `fail_at`-th change (1-based; 0 never) raises `fault(path)`
    instead of being made. `changes` counts the changes asked for, `made` lists those that were made."""

    inner: Sysfs
    fail_at: int = 0
    fault: Callable[[str], BaseException] = eio
    changes: int = 0
    made: list[tuple[str, str]] = field(default_factory=list)
    hit: bool = False
    #: more changes to fail the same way (an undo that fails too)
    also: tuple[int, ...] = ()
    root: str = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.inner.root

    def _change(self, op: str, rel: str) -> None:
        self.changes += 1
        if self.changes == self.fail_at or self.changes in self.also:
            self.hit = True
            raise self.fault(rel)

    def write(self, rel: str, text: str) -> None:
        self._change("write", rel)
        self.inner.write(rel, text)
        self.made.append(("write", rel))

    def write_file(self, rel: str, text: str) -> None:
        self._change("write_file", rel)
        self.inner.write_file(rel, text)
        self.made.append(("write_file", rel))

    def remove_file(self, rel: str) -> bool:
        self._change("remove_file", rel)
        removed = self.inner.remove_file(rel)
        self.made.append(("remove_file", rel))
        return removed

    def read_bytes(self, rel: str, limit: int = MAX_ATTRIBUTE_BYTES) -> bytes:
        return self.inner.read_bytes(rel, limit)

    def read(self, rel: str) -> str:
        return self.inner.read(rel)

    def read_optional(self, rel: str) -> str | None:
        return self.inner.read_optional(rel)

    def read_int(self, rel: str, base: int = 10) -> int:
        return self.inner.read_int(rel, base)

    def listdir(self, rel: str) -> list[str]:
        return self.inner.listdir(rel)

    def listdir_optional(self, rel: str) -> list[str]:
        return self.inner.listdir_optional(rel)

    def subdirs(self, rel: str) -> list[str]:
        return self.inner.subdirs(rel)

    def exists(self, rel: str) -> bool:
        return self.inner.exists(rel)

    def isdir(self, rel: str) -> bool:
        return self.inner.isdir(rel)

    def islink(self, rel: str) -> bool:
        return self.inner.islink(rel)

    def readlink(self, rel: str) -> str:
        return self.inner.readlink(rel)

    def link_name(self, rel: str) -> str | None:
        return self.inner.link_name(rel)


def exit_now(rel: str) -> BaseException:
    """A fault that is a crash: the process dies on the spot, as on a power cut (for the recover tests)."""
    os._exit(70)


def host_state(root: Sysfs) -> dict[str, str]:
    """Everything a prepare could change, as path -> text: the mdevs and their parameters, every type's free
    instances, every PCI function's driver, override and parameters, and the mdevctl definitions."""
    state: dict[str, str] = {}
    for uuid in root.listdir_optional("sys/bus/mdev/devices"):
        base = f"sys/bus/mdev/devices/{uuid}"
        state[base] = root.link_name(f"{base}/mdev_type") or ""
        for name in root.listdir_optional(f"{base}/migration"):
            state[f"{base}/migration/{name}"] = root.read(f"{base}/migration/{name}")
    for parent in root.listdir_optional("sys/class/mdev_bus"):
        types = f"sys/class/mdev_bus/{parent}/mdev_supported_types"
        for type_id in root.listdir_optional(types):
            state[f"{types}/{type_id}"] = root.read_optional(f"{types}/{type_id}/available_instances") or ""
    for address in root.listdir_optional("sys/bus/pci/devices"):
        base = f"sys/bus/pci/devices/{address}"
        state[f"{base}/driver"] = root.link_name(f"{base}/driver") or ""
        state[f"{base}/driver_override"] = root.read_optional(f"{base}/driver_override") or ""
        for name in root.listdir_optional(f"{base}/migration"):
            state[f"{base}/migration/{name}"] = root.read(f"{base}/migration/{name}")
    for parent in root.listdir_optional("etc/mdevctl.d"):
        if root.isdir(f"etc/mdevctl.d/{parent}"):
            for uuid in root.listdir_optional(f"etc/mdevctl.d/{parent}"):
                rel = f"etc/mdevctl.d/{parent}/{uuid}"
                if not root.isdir(rel):  # scripts.d/ holds mdevctl's callouts, not definitions
                    state[rel] = root.read_optional(rel) or ""
    return state


@dataclass
class SysfsSwapped:
    """`host` seen through another sysfs (a FaultySysfs over its own): every other answer is the host's."""

    host: Host
    sysfs: Sysfs

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def key(self) -> str:
        return self.host.key

    @property
    def hostname(self) -> str:
        return self.host.hostname

    def in_use(self, device: str, group: int | None) -> bool | None:
        return self.host.in_use(device, group)

    def vdpa(self) -> VdpaBackend:
        return self.host.vdpa()

    def vdpa_if_any(self) -> VdpaBackend | None:
        return self.host.vdpa_if_any()

    def nvml(self) -> Nvml | None:
        return self.host.nvml()
