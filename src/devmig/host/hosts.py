"""Which host a command works on: this machine (a sysfs root, / by default) or a simulated lab host.

`--host sim:LAB/HOST` (or `DEVMIG_HOST`) names a host of a lab: LAB is a shipped lab's name (`default`) or a lab
file's path, and `sim:HOST` is short for `sim:default/HOST`. Every command that reads or changes a host takes it, so
discovery, provisioning and migration run on a lab host exactly as on the real one. A simulated host lives in the
process that opened it: each command starts the lab afresh from its file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from devmig.errors import InputError
from devmig.host.sysfs import Sysfs, SysfsRoot

if TYPE_CHECKING:
    from devmig.migrate.vfio import DeviceInfo
    from devmig.sim.lab import Lab, SimHost

SIM_PREFIX = "sim:"
_labs: dict[str, Lab] = {}


@dataclass
class Host:
    name: str
    sysfs: Sysfs
    #: the simulated host behind `sysfs`, or None for a real one
    sim: SimHost | None = None

    @contextmanager
    def vfio(self, device: str) -> Iterator[VfioDeviceInfoSource]:
        """The device opened through VFIO (the real ioctls, or the simulated driver), closed afterwards."""
        if self.sim is None:
            from devmig.migrate.vfio import open_device

            with open_device(self.sysfs, device) as real:
                yield real
            return
        from devmig.migrate.vfio import VfioError

        try:
            sim = self.sim.kernel.vfio_device(device)
        except OSError:
            raise VfioError(
                f"device {device}: not a VFIO device on {self.name} (an mdev UUID, or a PCI address "
                "bound to a VFIO driver)"
            ) from None
        sim.open()
        try:
            yield sim
        finally:
            sim.close()


class VfioDeviceInfoSource(Protocol):
    def describe(self) -> DeviceInfo: ...


def lab(name_or_path: str) -> Lab:
    """A lab, started once per process (all its hosts share it)."""
    from devmig.sim.lab import load_lab

    if name_or_path not in _labs:
        _labs[name_or_path] = load_lab(name_or_path)
    return _labs[name_or_path]


def parse_sim(spec: str) -> tuple[str, str]:
    """ "sim:LAB/HOST" -> (LAB, HOST); "sim:HOST" -> ("default", HOST)."""
    rest = spec[len(SIM_PREFIX) :]
    lab_name, _, host = rest.rpartition("/")
    if not host:
        raise InputError(f"host {spec!r}: expected sim:LAB/HOST or sim:HOST (a host of the default lab)")
    return lab_name or "default", host


def open_host(spec: str | None = None, sysfs_root: str = "/") -> Host:
    if spec is None or spec in ("", "local"):
        return Host(name="local", sysfs=SysfsRoot(sysfs_root))
    if not spec.startswith(SIM_PREFIX):
        raise InputError(f"host {spec!r}: expected local, sim:HOST or sim:LAB/HOST")
    lab_name, host_name = parse_sim(spec)
    sim = lab(lab_name).host(host_name)
    return Host(name=spec, sysfs=sim.kernel.fs, sim=sim)
