"""Labs: simulated hosts described in a file (YAML or JSON), built into simulated kernels.

A lab names its hosts and, for each, the kernel release, the devices and driver releases it has, how much free
capacity, and which devices are running (open by a VM whose guest keeps changing their state). The format is
documented in docs/simulator.md; `devmig.sim.labs/default.yaml` is the lab `devmig lab` starts.
"""

from __future__ import annotations

import errno
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from devmig.errors import InputError
from devmig.model.load import json_path, validate_document
from devmig.sim.drivers import gpu as gpu_driver
from devmig.sim.drivers.nic import SimNic
from devmig.sim.drivers.nvidia import BOARDS as NVIDIA_BOARDS
from devmig.sim.drivers.nvidia import SimNvidiaBoard, SimNvml
from devmig.sim.drivers.s390 import vfio_ap, vfio_ccw
from devmig.sim.drivers.virtio_net import VirtioNic
from devmig.sim.drivers.xe import XeGpu
from devmig.sim.fs import kernel_error, static
from devmig.sim.kernel import SimIommu, SimKernel
from devmig.sim.persist import PersistentVdpa, extend

DEFAULT_LAB = "default"


class MdevSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uuid: str
    type: str
    params: dict[str, StrictBool | StrictInt | StrictStr] = Field(default_factory=dict)
    running: bool = Field(default=True, description="open by a VM: its state changes, its parameters are frozen")


class GpuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
    release: str = "1.2.0"
    memory_mb: int = Field(default=8192, ge=0, description="the framebuffer pool the GPU's vGPUs share")
    devices: list[MdevSpec] = Field(default_factory=list)


class NicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.0$", description="the physical function")
    release: str = "1.0.0"
    vfs: int = Field(default=4, ge=0, le=6)
    bound: list[str] = Field(default_factory=list, description="VFs bound to the variant driver")
    running: list[str] = Field(default_factory=list, description="bound VFs open by a VM")


class VgpuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vf: int = Field(ge=0, description="the VF's index on its board (0 is the first VF)")
    type: int = Field(gt=0, description="the vGPU type ID written to its nvidia/current_vgpu_type")
    running: bool = Field(default=True, description="open by a VM")


class NvidiaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{2}:00\.0$", description="the physical function")
    board: str = Field(description="a simulated board: " + ", ".join(NVIDIA_BOARDS))
    driver: str = Field(default="570.124.06", description="the vGPU Manager's version (sys/module/nvidia/version)")
    ecc: bool = True
    vfs: int = Field(default=4, ge=0, le=15)
    vgpus: list[VgpuSpec] = Field(default_factory=list)


PfAddress = Annotated[
    str, Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.0$", description="the physical function")
]


class XeSpec(BaseModel):
    """An Intel Xe GPU whose VFs migrate through xe-vfio-pci (devmig.sim.drivers.xe)."""

    model_config = ConfigDict(extra="forbid")

    address: PfAddress
    device_id: str = Field(default="e20b", pattern=r"^[0-9a-f]{4}$", description="the PCI device ID (Battlemage)")
    revision: int = Field(default=0, ge=0, le=255)
    guc: str = Field(default="70.54.0", description="the PF's GuC firmware: 70.54.0 or later enables VF migration")
    memirq: bool = Field(default=True, description="memory-based interrupts, which VF migration needs")
    driver: Literal["xe-vfio-pci", "xe_vfio_pci"] = "xe-vfio-pci"
    vfs: int = Field(default=2, ge=0, le=7)
    bound: list[str] = Field(default_factory=list, description="VFs bound to the variant driver")
    running: list[str] = Field(default_factory=list, description="bound VFs open by a VM")


class VirtioNicSpec(BaseModel):
    """A virtio-net NIC whose VFs migrate through virtio_vfio_pci, without DMA logging."""

    model_config = ConfigDict(extra="forbid")

    address: PfAddress
    dev_parts: bool = Field(default=True, description="the device has the admin dev-parts commands (PRE_COPY)")
    vfs: int = Field(default=2, ge=0, le=7)
    bound: list[str] = Field(default_factory=list)
    running: list[str] = Field(default_factory=list)


class IommuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dirty_tracking: bool = Field(default=True, description="second-stage dirty bits in scalable mode (SLADS)")
    iommufd: bool = Field(default=True, description="/dev/iommu exists")


class HostSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    kernel: str = "6.12.57+deb12-amd64"
    gpus: list[GpuSpec] = Field(default_factory=list)
    nics: list[NicSpec] = Field(default_factory=list)
    ccw: list[str] = Field(default_factory=list, description="subchannel bus ids bound to vfio_ccw")
    ap: bool = Field(default=False, description="a vfio_ap matrix device")
    vdpa: bool = Field(default=False, description="vdpa_sim's management devices vdpasim_net and vdpasim_blk")
    os: str | None = Field(
        default=None, pattern=r"^[a-z]+-[0-9.]+$", description="/etc/os-release as ID-VERSION_ID (rhel-9.6)"
    )
    nvidia: list[NvidiaSpec] = Field(default_factory=list, description="NVIDIA boards in vGPU-on-SR-IOV mode")
    iommu: IommuSpec | None = Field(default=None, description="an Intel IOMMU shown in sysfs (None: none shown)")
    xe: list[XeSpec] = Field(default_factory=list)
    virtio_nics: list[VirtioNicSpec] = Field(default_factory=list)


class LabSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    hosts: list[HostSpec] = Field(min_length=1)


class SimHost:
    """One simulated host: its kernel, and the devices its VMs are running."""

    def __init__(self, lab: str, spec: HostSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.kernel = SimKernel(f"{lab}/{spec.name}", osrelease=spec.kernel)
        self.running: list[str] = []
        #: the simulated NVML of its NVIDIA boards (None without one)
        self.nvml: SimNvml | None = None
        # its changes are logged with the sysfs changes, for the next command on this host (devmig.sim.persist)
        self.vdpa = PersistentVdpa(self.kernel.fs, uevents=self.kernel.uevents) if spec.vdpa else None
        extend(self.kernel.fs, "module", self._reload)
        if spec.iommu is not None:
            self.kernel.add_iommu(SimIommu(dirty_tracking=spec.iommu.dirty_tracking, iommufd=spec.iommu.iommufd))
        for gpu in spec.gpus:
            self._add_gpu(gpu)
        for nic in spec.nics:
            self._add_nic(nic)
        for xe in spec.xe:
            try:
                xe_gpu = XeGpu(int(xe.device_id, 16), xe.revision, xe.guc, xe.memirq, xe.driver)
            except ValueError as exc:
                raise InputError(f"lab host {self.name}: Xe GPU {xe.address}: {exc}") from None
            made = xe_gpu.install(self.kernel, xe.address, xe.vfs, xe.bound)
            self._run_vfs(f"Xe GPU {xe.address}", made, xe.bound, xe.running)
        for vnic in spec.virtio_nics:
            made = VirtioNic(vnic.dev_parts).install(self.kernel, vnic.address, vnic.vfs, vnic.bound)
            self._run_vfs(f"virtio NIC {vnic.address}", made, vnic.bound, vnic.running)
        for busid in spec.ccw:
            path = self.kernel.add_subchannel(busid, 0, driver="vfio_ccw")
            self.kernel.add_mdev_parent(busid, path, vfio_ccw(), subsystem="sys/bus/css")
        if spec.ap:
            self.kernel.add_mdev_parent("matrix", self.kernel.add_ap_matrix(), vfio_ap(), subsystem="sys/class/vfio_ap")
        if spec.os is not None:
            os_id, version = spec.os.split("-", 1)
            self.kernel.fs.add_file("etc/os-release", static(f'ID="{os_id}"\nVERSION_ID="{version}"\n'))
        if spec.nvidia:
            self.nvml = SimNvml([self._add_nvidia(board) for board in spec.nvidia])

    def _add_nvidia(self, spec: NvidiaSpec) -> SimNvidiaBoard:
        if spec.board not in NVIDIA_BOARDS:
            raise InputError(f"lab host {self.name}: board {spec.address}: expected one of {', '.join(NVIDIA_BOARDS)}")
        drivers = {b.driver for b in self.spec.nvidia}
        if len(drivers) > 1:
            raise InputError(f"lab host {self.name}: one nvidia module, one version (found {', '.join(drivers)})")
        board = SimNvidiaBoard(spec.board, spec.driver, self.spec.os or "", spec.ecc)
        vfs = board.install(self.kernel, spec.address, spec.vfs)
        for vgpu in spec.vgpus:
            if vgpu.vf >= len(vfs):
                raise InputError(f"lab host {self.name}: board {spec.address} has {len(vfs)} VFs, no VF {vgpu.vf}")
            try:
                board.set_type(self.kernel, vfs[vgpu.vf], vgpu.type)
            except OSError as exc:
                raise InputError(
                    f"lab host {self.name}: VF {vfs[vgpu.vf]}: the driver refused type {vgpu.type} ({exc})"
                ) from None
            if vgpu.running:
                self.start(vfs[vgpu.vf])
        return board

    def _add_gpu(self, gpu: GpuSpec) -> None:
        try:
            driver = gpu_driver.SimGpuDriver(release=gpu.release, memory_mb=gpu.memory_mb)
        except ValueError as exc:
            raise InputError(f"lab host {self.name}: GPU {gpu.address}: {exc}") from None
        kernel = self.kernel
        driver.install(kernel, gpu.address)
        for dev in gpu.devices:
            if dev.type not in driver.types():
                raise InputError(f"lab host {self.name}: device {dev.uuid}: simgpu has no type {dev.type}")
            if driver.capacity(dev.type, [m for m in kernel.mdevs.values() if m.parent == gpu.address]) <= 0:
                raise InputError(f"lab host {self.name}: device {dev.uuid}: GPU {gpu.address} is full")
            kernel.create_mdev(gpu.address, dev.type, dev.uuid, dict(dev.params))
            if dev.running:
                self.start(dev.uuid)

    def _add_nic(self, nic: NicSpec) -> None:
        try:
            driver = SimNic(release=nic.release)
        except ValueError as exc:
            raise InputError(f"lab host {self.name}: NIC {nic.address}: {exc}") from None
        made = driver.install(self.kernel, nic.address, nic.vfs, nic.bound)
        self._run_vfs(f"NIC {nic.address}", made, nic.bound, nic.running)

    def _run_vfs(self, what: str, made: list[str], bound: list[str], running: list[str]) -> None:
        """Check that the bound VFs exist and the running ones are bound; start the running ones."""
        for address in bound:
            if address not in made:
                raise InputError(
                    f"lab host {self.name}: VF {address} is bound, but {what} has no such VF "
                    f"(its VFs: {', '.join(made) or 'none'})"
                )
        for address in running:
            if address not in bound:
                raise InputError(f"lab host {self.name}: VF {address} runs but is not bound to the variant driver")
            self.start(address)

    def start(self, device: str) -> None:
        """A VM opens the device and runs: its guest changes the state from now on."""
        self.kernel.vfio_device(device).open()
        self.running.append(device)

    def reload_driver(self, name: str, release: str) -> None:
        """A driver upgrade: `modprobe -r NAME; modprobe NAME` with `release` installed, kept in the host's log like
        its other changes. Only simgpu: each GPU's mdevs are removed (EBUSY, as rmmod's "in use", while one is
        open), the GPUs unbound, the module replaced, and the GPUs bound again with the new release's types."""
        with self.kernel.fs.lock:
            self._reload(name, release)
            for observer in self.kernel.fs.observers:
                observer("module", name, release)

    def _reload(self, name: str, release: str) -> None:
        kernel = self.kernel
        if name != gpu_driver.SimGpuDriver.name:
            raise InputError(f"lab host {self.name}: the simulator reloads simgpu only, not {name}")
        gpus = {
            address: driver
            for address, (_, driver) in kernel.parents.items()
            if isinstance(driver, gpu_driver.SimGpuDriver)
        }
        if not gpus:
            raise InputError(f"lab host {self.name}: has no simgpu GPU whose driver could be reloaded")
        if any(kernel.is_open(m.uuid) for m in kernel.mdevs.values() if m.parent in gpus):
            raise kernel_error(errno.EBUSY)
        try:
            new = {a: gpu_driver.SimGpuDriver(release=release, memory_mb=d.memory_mb) for a, d in gpus.items()}
        except ValueError as exc:
            raise InputError(f"lab host {self.name}: {exc}") from None
        for address in gpus:
            kernel.remove_mdev_parent(address)
            kernel.unbind_pci(address)
        kernel.remove_module(name)
        kernel.add_module(name, version=release)
        for address, driver in new.items():
            kernel.bind_pci(address, name)
            kernel.add_mdev_parent(address, kernel.pci[address].path, driver)


class Lab:
    def __init__(self, spec: LabSpec, origin: str) -> None:
        self.spec, self.origin, self.name = spec, origin, spec.name
        self.hosts = {h.name: SimHost(spec.name, h) for h in spec.hosts}
        if len(self.hosts) != len(spec.hosts):
            raise InputError(f"{origin}: two hosts have the same name")

    def host(self, name: str) -> SimHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise InputError(f"lab {self.name}: no host {name} (hosts: {', '.join(self.hosts)})") from None


#: A lab is written by hand: a thousand hosts take about 100 KiB. A larger file is a mistake (or hostile) and is
#: refused unread; PyYAML reads about a megabyte in 2 to 10 s, so this also bounds the time a lab file can take.
MAX_LAB_BYTES = 1024 * 1024
#: YAML nodes a lab may hold once its aliases are expanded: a lab of a thousand hosts has a few tens of thousands.
#: Aliases can make a few lines stand for billions of nodes ("billion laughs"); counting them as they are composed
#: refuses such a file before anything walks the expanded document.
MAX_LAB_NODES = 1_000_000
#: How deep a lab's collections may nest (the format needs 6 levels). PyYAML's scanner does work in proportion to
#: the depth for every token of a flow collection ("[[[[..."), so an unbounded depth is quadratic time.
MAX_LAB_DEPTH = 64


@cache
def _bounded_loader() -> type[Any]:
    import yaml
    from yaml.composer import ComposerError
    from yaml.scanner import ScannerError

    class BoundedLoader(yaml.SafeLoader):
        """yaml.safe_load's loader, counting every node as often as aliases repeat it, and refusing deep nesting."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._sizes: dict[int, int] = {}
            self._depth = 0

        def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
            if self.flow_level >= MAX_LAB_DEPTH:
                raise ScannerError(None, None, f"collections nested more than {MAX_LAB_DEPTH} deep", self.get_mark())
            super().fetch_flow_collection_start(TokenClass)

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self._depth >= MAX_LAB_DEPTH:
                raise ComposerError(None, None, f"collections nested more than {MAX_LAB_DEPTH} deep", self.get_mark())
            self._depth += 1
            try:
                return self._compose_counted(parent, index)
            finally:
                self._depth -= 1

        def _compose_counted(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                node: Any = super().compose_node(parent, index)
                if id(node) not in self._sizes:  # a node still being composed: the alias is inside its anchor
                    raise ComposerError(None, None, "an alias refers to a node that contains it", node.start_mark)
                return node
            node = super().compose_node(parent, index)
            children: list[Any] = []
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            size = 1 + sum(self._sizes[id(child)] for child in children)
            if size > MAX_LAB_NODES:
                raise ComposerError(
                    None, None, f"more than {MAX_LAB_NODES} nodes once its aliases are expanded", node.start_mark
                )
            self._sizes[id(node)] = size
            return node

    return BoundedLoader


def _parse(text: str, origin: str) -> Any:
    if origin.endswith(".json"):
        from devmig.model.load import parse_json

        return parse_json(text, origin)
    import yaml

    loader = None
    try:
        loader = _bounded_loader()(text)  # the reader checks the characters here already
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{origin}: not valid YAML{where}: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _refuse_unencodable(document: Any, origin: str) -> None:
    """Refuse a string that is not text: a lone surrogate ("\\ud800" in JSON or a YAML double-quoted string) decodes
    to a str that cannot be encoded again, so the simulated kernel could never show it in a sysfs file."""
    todo: list[tuple[Any, tuple[int | str, ...]]] = [(document, ())]
    seen: set[int] = set()  # YAML aliases share nodes: walk each once (the node count is bounded, see above)
    while todo:
        value, loc = todo.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(
                    f"{origin}: {json_path(loc)}: not UTF-8 text: a lone surrogate "
                    f"{value[exc.start]!r} at character {exc.start}"
                ) from None
        elif isinstance(value, (dict, list)) and id(value) not in seen:
            seen.add(id(value))
            children: list[tuple[Any, tuple[int | str, ...]]] = []
            if isinstance(value, list):
                children = [(item, (*loc, index)) for index, item in enumerate(value)]
            for key, item in value.items() if isinstance(value, dict) else ():
                name = key if isinstance(key, str) else str(key)
                children += [(key, (*loc, name)), (item, (*loc, name))]
            todo += reversed(children)  # the first in document order is reported


def is_shipped(name_or_path: str) -> bool:
    """A shipped lab's name rather than a lab file's path."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml", ".json")):
        return False
    return (resources.files("devmig.sim.labs") / f"{name_or_path}.yaml").is_file()


def load_lab(name_or_path: str = DEFAULT_LAB) -> Lab:
    """A shipped lab by name ("default") or a lab file (.yaml, .yml or .json)."""
    shipped = resources.files("devmig.sim.labs") / f"{name_or_path}.yaml"
    if is_shipped(name_or_path):
        text, origin = shipped.read_text(encoding="utf-8"), f"lab {name_or_path}"
    else:
        path = Path(name_or_path)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_LAB_BYTES + 1)
            text, origin = data.decode("utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"lab {name_or_path}: cannot read: {getattr(exc, 'strerror', None) or exc} "
                f"(expected a lab file or the name of a shipped lab: {DEFAULT_LAB})"
            ) from None
        if len(data) > MAX_LAB_BYTES:
            raise InputError(
                f"lab {name_or_path}: larger than {MAX_LAB_BYTES // (1024 * 1024)} MiB: expected a lab file"
            )
    document = _parse(text, origin)
    _refuse_unencodable(document, origin)
    return Lab(validate_document(LabSpec, document, origin), origin)


def lab_schema() -> str:
    return json.dumps(LabSpec.model_json_schema(), indent=2) + "\n"
