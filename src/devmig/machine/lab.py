"""A simulated lab host: the simulated kernel's sysfs, its drivers' VFIO devices and its vdpa core.

`sim:LAB/HOST` names a host of a lab: LAB is a shipped lab's name (`default`) or a lab file's path, and `sim:HOST`
is short for `sim:default/HOST`. A simulated host is built from its lab file and then replays the changes earlier
commands made to it (devmig.sim.persist), kept in the state directory until `devmig lab --reset`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devmig.errors import InputError

if TYPE_CHECKING:
    from devmig.host.nvml import Nvml
    from devmig.migrate.device import MigrationDevice
    from devmig.sim.fs import SimSysfs
    from devmig.sim.lab import Lab, SimHost
    from devmig.sim.persist import HostLog
    from devmig.sim.uevent import UeventBus
    from devmig.vdpa.backend import VdpaBackend

SIM_PREFIX = "sim:"
_labs: dict[str, Lab] = {}
#: simulated hosts already replayed in this process, by state file
_attached: dict[str, HostLog] = {}


@dataclass
class LabHost:
    #: "sim:LAB/HOST" (or "sim:HOST" for the default lab), as the user named it
    name: str
    sim: SimHost
    #: the log of its changes this process follows (None: a lab this process started itself)
    log: HostLog | None = None

    def catch_up(self) -> int:
        """Make the changes other processes made to this host since (its simulated kernel announces each with its
        uevents); how many."""
        return 0 if self.log is None else self.log.catch_up(self.sysfs)

    def uevents(self) -> UeventBus:
        """The simulated kernel's uevents (devmig.sim.uevent)."""
        return self.sim.kernel.uevents

    @property
    def sysfs(self) -> SimSysfs:
        return self.sim.kernel.fs

    @property
    def key(self) -> str:
        return sim_host_key(*parse_sim(self.name))

    @property
    def hostname(self) -> str:
        return self.sim.name

    def in_use(self, device: str, group: int | None) -> bool | None:
        return self.sim.kernel.is_open(device)

    @contextmanager
    def vfio(self, device: str, path: str = "auto") -> Iterator[MigrationDevice]:
        """The simulated driver's device, opened and closed afterwards (a simulated device has one path)."""
        from devmig.migrate.device import VfioError

        try:
            sim = self.sim.kernel.vfio_device(device)
        except OSError:
            from devmig.host.inventory import Inventory

            Inventory.scan(self.sysfs, parts=("mdevs", "pci")).device(device)  # InputError when there is none
            raise VfioError(
                f"device {device}: not a VFIO device on {self.name} (an mdev UUID, or a PCI address "
                "bound to a VFIO driver)"
            ) from None
        sim.open()
        try:
            yield sim
        finally:
            sim.close()

    def vdpa(self) -> VdpaBackend:
        from devmig.vdpa.backend import VdpaUnavailableError

        if self.sim.vdpa is None:
            raise VdpaUnavailableError(f"host {self.name} has no vdpa family (its lab does not give it vdpa)")
        return self.sim.vdpa

    def vdpa_if_any(self) -> VdpaBackend | None:
        return self.sim.vdpa

    def nvml(self) -> Nvml | None:
        """The simulated NVML of the host's NVIDIA boards (None without one, as a host without the driver)."""
        return self.sim.nvml


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


def lab_key(lab_name: str) -> str:
    """A shipped lab by its name, a lab file by its absolute path (two files called lab.yaml stay apart)."""
    from devmig.sim.lab import is_shipped

    return lab_name if is_shipped(lab_name) else str(Path(lab_name).resolve())


def sim_host_key(lab_name: str, host: str) -> str:
    from devmig.state import safe_name

    return safe_name(f"sim-{lab_key(lab_name)}-{host}")


def sim_state_file(lab_name: str, host: str, state_dir: str | None = None) -> Path:
    from devmig.state import safe_name
    from devmig.state import state_dir as resolve

    return resolve(state_dir) / "sim" / safe_name(lab_key(lab_name)) / f"{safe_name(host)}.jsonl"


def open_lab_host(spec: str, state_dir: str | None = None) -> LabHost:
    """A lab host with the changes earlier commands made to it (replayed once per process)."""
    lab_name, host_name = parse_sim(spec)
    sim = lab(lab_name).host(host_name)
    log = sim_state_file(lab_name, host_name, state_dir)
    if str(log) not in _attached:
        from devmig.sim.persist import attach

        _attached[str(log)] = attach(sim.kernel.fs, log, spec)
    return LabHost(name=spec, sim=sim, log=_attached[str(log)])


def lab_host(lab: Lab, sim: SimHost) -> LabHost:
    """A host of a lab this process started itself (the lab's story): nothing replayed, nothing persisted."""
    return LabHost(name=f"{SIM_PREFIX}{lab.name}/{sim.name}", sim=sim)


def forget_labs() -> None:
    """Drop the labs this process started (tests, and `devmig lab --reset`)."""
    _labs.clear()
    _attached.clear()


def reset_lab(lab_name: str, state_dir: str | None = None) -> int:
    """Forget the changes made to a lab's simulated hosts, and their journals and prepare records; how many hosts
    had some."""
    import shutil

    from devmig.state import state_dir as resolve

    lab_dir = sim_state_file(lab_name, "_", state_dir).parent
    count = len(list(lab_dir.glob("*.jsonl"))) if lab_dir.is_dir() else 0
    shutil.rmtree(lab_dir, ignore_errors=True)
    for host in lab(lab_name).hosts:
        shutil.rmtree(resolve(state_dir) / "hosts" / sim_host_key(lab_name, host), ignore_errors=True)
    forget_labs()
    return count
