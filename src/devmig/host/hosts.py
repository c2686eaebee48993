"""Which host a command works on: this machine (a sysfs root, / by default) or a simulated lab host.

`--host sim:LAB/HOST` (or `DEVMIG_HOST`) names a host of a lab: LAB is a shipped lab's name (`default`) or a lab
file's path, and `sim:HOST` is short for `sim:default/HOST`. Every command that reads or changes a host takes it, so
discovery, provisioning and migration run on a lab host exactly as on the real one. A simulated host is built from
its lab file and then replays the changes earlier commands made to it (devmig.sim.persist), kept in the state
directory until `devmig lab --reset`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devmig.errors import InputError
from devmig.host.sysfs import Sysfs, SysfsRoot

if TYPE_CHECKING:
    from devmig.migrate.device import MigrationDevice
    from devmig.sim.lab import Lab, SimHost
    from devmig.vdpa.backend import VdpaBackend

SIM_PREFIX = "sim:"
_labs: dict[str, Lab] = {}
#: simulated hosts already replayed in this process, by state file
_attached: set[str] = set()


@dataclass
class Host:
    name: str
    sysfs: Sysfs
    #: the simulated host behind `sysfs`, or None for a real one
    sim: SimHost | None = None

    @property
    def key(self) -> str:
        """A name for this host's state (journals, records, locks): "local", "root-<dir>" or "sim-<lab>-<host>"."""
        from devmig.state import safe_name

        if self.sim is not None:
            return sim_host_key(*parse_sim(self.name))
        root = self.sysfs.root
        return "local" if root == "/" else safe_name(f"root-{root}")

    def in_use(self, device: str, group: int | None) -> bool | None:
        """Is the VFIO device open (by a VM)? None when that cannot be told (a fixture tree, no permission)."""
        if self.sim is not None:
            return self.sim.kernel.is_open(device)
        if self.sysfs.root != "/" or group is None:
            return None
        from devmig.migrate.vfio import group_in_use

        return group_in_use(group)

    @contextmanager
    def vfio(self, device: str, path: str = "auto") -> Iterator[MigrationDevice]:
        """The device opened through VFIO (the real ioctls, or the simulated driver), closed afterwards.

        `path` picks the way to a real device fd (devmig.migrate.vfio.PATHS); a simulated device has only one."""
        if self.sim is None:
            from devmig.migrate.vfio import open_device

            with open_device(self.sysfs, device, path) as real:
                yield real
            return
        from devmig.migrate.vfio import VfioError

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
        """This host's vdpa family: the netlink client on this machine, the simulated vdpa core on a lab host.
        VdpaUnavailableError says what is missing when there is none."""
        from devmig.vdpa.backend import VdpaUnavailableError

        if self.sim is not None:
            if self.sim.vdpa is None:
                raise VdpaUnavailableError(f"host {self.name} has no vdpa family (its lab does not give it vdpa)")
            return self.sim.vdpa
        if self.sysfs.root != "/":
            raise VdpaUnavailableError(
                f"--sysfs-root {self.sysfs.root}: the vdpa family is netlink, spoken only by the running kernel"
            )
        from devmig.vdpa.netlink import NetlinkVdpa

        return NetlinkVdpa()

    def vdpa_if_any(self) -> VdpaBackend | None:
        """The vdpa family when this host has one, else None: most hosts have none, and discovery lists vDPA
        devices only where there are some."""
        # Where vdpa() would refuse, said without loading the netlink client (most of `devmig list`'s time).
        if self.sim is None and self.sysfs.root != "/":
            return None
        if self.sim is None:
            from devmig.host.genl import family_registered

            if family_registered("vdpa") is False:
                return None
        from devmig.vdpa.backend import VdpaUnavailableError

        try:
            return self.vdpa()
        except VdpaUnavailableError:
            return None


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


def open_host(spec: str | None = None, sysfs_root: str = "/", state_dir: str | None = None) -> Host:
    """This machine (under `sysfs_root`) or a simulated host, with the changes earlier commands made to it."""
    if spec is None or spec in ("", "local"):
        return Host(name="local", sysfs=SysfsRoot(sysfs_root))
    if not spec.startswith(SIM_PREFIX):
        raise InputError(f"host {spec!r}: expected local, sim:HOST or sim:LAB/HOST")
    lab_name, host_name = parse_sim(spec)
    sim = lab(lab_name).host(host_name)
    log = sim_state_file(lab_name, host_name, state_dir)
    if str(log) not in _attached:
        from devmig.sim.persist import attach

        attach(sim.kernel.fs, log, spec)
        _attached.add(str(log))
    return Host(name=spec, sysfs=sim.kernel.fs, sim=sim)


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
