"""simnvidia: an NVIDIA board in vGPU-on-SR-IOV mode (vGPU 17+), as nvidia.ko shows it, with its NVML.

The PF and its VFs are bound to `nvidia`. Each VF has `nvidia/creatable_vgpu_types` (a header, then `ID : name` for
each type the VF can be made now: the list shrinks as the board's framebuffer fills and, without heterogeneous mode,
keeps only the size already in use; a full card shows the header only), `nvidia/current_vgpu_type` (the type ID, 0
for none) and `nvidia/vgpu_params`. Writing a creatable ID makes the vGPU and its VFIO device; writing 0 destroys
it. Refusals as NVIDIA's source has them: a type on a VF that has one, or 0 on a VF with none, is EPERM; a
non-numeric write is EINVAL; an ID not creatable now is EINVAL [U: NVIDIA's errno for it is not documented]; 0 on a
vGPU a VM has open is EBUSY [U]. The vGPU migrates with STOP_COPY only (no pre-copy, no P2P, no DMA logging).

The device refuses an incoming stream by the simulated driver's own reading of NVIDIA's documented migration rules
(driver versions per platform, ECC, the board, the type); its NVML answers nvmlGetVgpuCompatibility the same way.
This is the simulator's own code: it never calls devmig's rules (devmig.compat.nvidia), so a lab test can see both
agree.
"""

from __future__ import annotations

import errno
import json
import zlib
from dataclasses import dataclass, field
from functools import partial

from devmig.sim.fs import kernel_error, static
from devmig.sim.kernel import PciDriver, SimKernel, SimPciFunction
from devmig.sim.vfio import DeviceState, SimVfioDevice, StreamHeader

DRIVER = "nvidia"
STOP_COPY = 1


@dataclass(frozen=True)
class SimBoard:
    """A simulated board: PF and VF IDs, framebuffer, vGPU types (ID -> name, framebuffer GiB). The IDs of the
    physical boards are pci.ids'; the type IDs and names are the simulator's own, in NVIDIA's style."""

    pf_device: int
    subsystem: tuple[int, int]
    vf_device: int
    memory_gib: int
    types: dict[int, tuple[str, int]]


BOARDS: dict[str, SimBoard] = {
    "h100-pcie": SimBoard(
        0x2331,
        (0x10DE, 0x1626),
        0x2331,
        80,
        {1001: ("NVIDIA H100-10C", 10), 1002: ("NVIDIA H100-20C", 20), 1003: ("NVIDIA H100-40C", 40)},
    ),
    "h100-nvl": SimBoard(
        0x2321,
        (0x10DE, 0x1839),
        0x2321,
        94,
        {1001: ("NVIDIA H100-10C", 10), 1002: ("NVIDIA H100-20C", 20), 1003: ("NVIDIA H100-40C", 40)},
    ),
}

#: the platforms whose NVIDIA documentation lets the vGPU Manager versions differ (within a branch, as the simulator
#: reads "the guest driver must suit both"); any other platform needs identical versions
VERSIONS_MAY_DIFFER = ("rhel-9.6", "rhel-10.0")
UNSUPPORTED_PAIRS = (frozenset({"rhel-10.0", "rhel-9.4"}),)
#: nvmlGetVgpuCompatibility's bits
NVML_LIVE, NVML_COLD = 8, 1
LIMIT_HOST_DRIVER, LIMIT_GPU, LIMIT_OTHER = 1, 4, 0x80000000


def refusal_reason(src: dict[str, object], dst: dict[str, object]) -> tuple[str, int] | None:
    """Why a vGPU described by `src` cannot run on the GPU described by `dst` (the reason and NVML's limit code)."""
    if "vgpu_type" in src and "vgpu_type" in dst and src["vgpu_type"] != dst["vgpu_type"]:
        return f"vGPU type {src['vgpu_type']} cannot load into type {dst['vgpu_type']}", LIMIT_OTHER
    if src["board"] != dst["board"]:
        return f"board {src['board']} cannot migrate to board {dst['board']}", LIMIT_GPU
    if src["ecc"] != dst["ecc"]:
        return "the GPUs' ECC modes differ", LIMIT_GPU
    a, b = str(src["platform"]), str(dst["platform"])
    if frozenset({a, b}) in UNSUPPORTED_PAIRS or a.split("-")[0] != b.split("-")[0]:
        return f"no vGPU migration between {a} and {b}", LIMIT_OTHER
    va, vb = str(src["driver"]), str(dst["driver"])
    if va != vb:
        if a not in VERSIONS_MAY_DIFFER or b not in VERSIONS_MAY_DIFFER:
            return f"vGPU Manager {va} and {vb} differ on {a}/{b}", LIMIT_HOST_DRIVER
        if va.split(".")[0] != vb.split(".")[0]:
            return f"vGPU Manager {va} and {vb} are different branches", LIMIT_HOST_DRIVER
    return None


@dataclass
class SimNvidiaBoard:
    """One board on a host: its VFs' vGPUs and the host facts its driver and NVML report."""

    board: str
    driver: str
    platform: str
    ecc: bool = True
    #: VF address -> its vGPU's type ID (absent: none)
    vgpus: dict[str, int] = field(default_factory=dict)
    pf: str = ""
    vfs: list[str] = field(default_factory=list)

    @property
    def spec(self) -> SimBoard:
        return BOARDS[self.board]

    def facts(self) -> dict[str, object]:
        sub = self.spec.subsystem
        board = f"10de:{self.spec.pf_device:04x}/{sub[0]:04x}:{sub[1]:04x}"
        return {"board": board, "ecc": self.ecc, "platform": self.platform, "driver": self.driver}

    # -- the sysfs files ---------------------------------------------------------------------------------------------

    def creatable(self, vf: str) -> dict[int, str]:
        if vf in self.vgpus:
            return {}  # [U]: what a VF with a vGPU lists; the simulator lists nothing
        used = [self.spec.types[t][1] for t in self.vgpus.values()]
        free = self.spec.memory_gib - sum(used)
        return {
            type_id: name
            for type_id, (name, size) in self.spec.types.items()
            if size <= free and (not used or size == used[0])
        }

    def _creatable_text(self, vf: str) -> str:
        return "ID    : vGPU Name\n" + "".join(f"{t:<5} : {n}\n" for t, n in self.creatable(vf).items())

    def _current_text(self, vf: str) -> str:
        return f"{self.vgpus.get(vf, 0)}\n"

    def _write_type(self, kernel: SimKernel, vf: str, text: str) -> None:
        raw = text.strip()
        if not raw.isascii() or not raw.isdigit():
            raise kernel_error(errno.EINVAL)
        number = int(raw)
        if number == 0:
            if vf not in self.vgpus:
                raise kernel_error(errno.EPERM)
            if kernel.is_open(vf):
                raise kernel_error(errno.EBUSY)
            del self.vgpus[vf]
            kernel.pci_devices.pop(vf, None)
            return
        if vf in self.vgpus:
            raise kernel_error(errno.EPERM)
        if number not in self.creatable(vf):
            raise kernel_error(errno.EINVAL)
        self.vgpus[vf] = number
        kernel.pci_devices[vf] = self.make_device(kernel.pci[vf])

    def set_type(self, kernel: SimKernel, vf: str, number: int) -> None:
        """What a write of `number` to the VF's current_vgpu_type does (a lab's starting state)."""
        self._write_type(kernel, vf, str(number))

    # -- the VFIO device -----------------------------------------------------------------------------------------

    def header(self, vf: str) -> StreamHeader:
        params: dict[str, bool | int | str] = {"vgpu_type": self.vgpus.get(vf, 0)}
        params.update({k: v for k, v in self.facts().items() if isinstance(v, bool | int | str)})
        return StreamHeader(f"nvidia.com/vgpu/nvidia-{self.vgpus.get(vf, 0)}", "1.0.0", params)

    def make_device(self, fn: SimPciFunction) -> SimVfioDevice:
        size = self.spec.types[self.vgpus[fn.address]][1]
        state = DeviceState.create(memory=64 * 1024 * size, seed=zlib.crc32(fn.address.encode()))
        return SimVfioDevice(
            fn.address,
            state,
            migration_flags=STOP_COPY,
            header=partial(self.header, fn.address),
            check_incoming=_incoming,
            group=fn.group,
            dma_logging=False,
        )

    def _function(self, address: str, device: int, physfn: str | None = None, group: int = 0) -> SimPciFunction:
        """A function of the board (a 3D controller, the board's subsystem ID), bound to nvidia."""
        sub = self.spec.subsystem
        return SimPciFunction(
            address,
            0x10DE,
            device,
            class_code=0x030200,
            subsystem_vendor=sub[0],
            subsystem_device=sub[1],
            driver=DRIVER,
            physfn=physfn,
            group=group,
            numa_node=0,
        )

    def install(self, kernel: SimKernel, pf_address: str, vfs: int) -> list[str]:
        spec = self.spec
        if DRIVER not in kernel.pci_drivers:
            kernel.add_pci_driver(PciDriver(DRIVER, ids=(f"10de:{spec.pf_device:04x}", f"10de:{spec.vf_device:04x}")))
            kernel.add_module(DRIVER, version=self.driver)
        kernel.add_pci_function(self._function(pf_address, spec.pf_device), sriov_totalvfs=16)
        self.pf = pf_address
        domain_bus = pf_address.rsplit(":", 1)[0]
        bus = int(domain_bus.rsplit(":", 1)[1], 16)
        for index in range(vfs):
            address = f"{domain_bus.rsplit(':', 1)[0]}:{bus:02x}:{(index + 1) // 8:02x}.{(index + 1) % 8}"
            fn = kernel.add_pci_function(
                self._function(address, spec.vf_device, physfn=pf_address, group=kernel.group())
            )
            base = f"{fn.path}/nvidia"
            kernel.fs.add_file(f"{base}/creatable_vgpu_types", partial(self._creatable_text, address))
            kernel.fs.add_file(
                f"{base}/current_vgpu_type",
                partial(self._current_text, address),
                partial(self._write_type, kernel, address),
            )
            kernel.fs.add_file(f"{base}/vgpu_params", static(""))
            self.vfs.append(address)
        return list(self.vfs)


def _incoming(incoming: StreamHeader, own: StreamHeader) -> str | None:
    """The simulated driver's resume check: NVIDIA's documented rules on the two headers' facts."""
    found = refusal_reason(dict(incoming.params), dict(own.params))
    return None if found is None else found[0]


class SimNvml:
    """The NVML of a host's simulated boards: ECC, metadata (the simulator's own JSON, opaque to devmig) and
    nvmlGetVgpuCompatibility by the same reading of NVIDIA's rules as the driver."""

    def __init__(self, boards: list[SimNvidiaBoard]) -> None:
        self.boards = {b.pf: b for b in boards}

    def ecc_enabled(self, gpu: str) -> bool | None:
        board = self.boards.get(gpu)
        return None if board is None else board.ecc

    def pgpu_metadata(self, gpu: str) -> bytes | None:
        board = self.boards.get(gpu)
        return None if board is None else json.dumps(board.facts(), sort_keys=True).encode()

    def vgpu_metadata(self, gpu: str, type_id: int) -> bytes | None:
        board = self.boards.get(gpu)
        if board is None or list(board.vgpus.values()).count(type_id) != 1:
            return None
        return json.dumps({**board.facts(), "vgpu_type": type_id}, sort_keys=True).encode()

    def compatibility(self, vgpu: bytes, pgpu: bytes) -> tuple[int, int]:
        try:
            src, dst = json.loads(vgpu), json.loads(pgpu)
            found = refusal_reason(src, dst)
        except (ValueError, KeyError, TypeError):
            return 0, LIMIT_OTHER
        return (NVML_LIVE | NVML_COLD, 0) if found is None else (0, found[1])
