"""NVML, the seam to NVIDIA's management library: ECC, the opaque migration metadata, and NVML's own verdict.

Optional (the `devmig[nvml]` extra installs nvidia-ml-py, imported only here, only when a host with NVIDIA vGPUs is
described). A host without it answers None (`devmig.machine`), and the check says NVML was not asked
(`nvml-not-checked`). The simulator offers the same protocol for its NVIDIA boards (devmig.sim.drivers.nvidia).

Metadata travel as base64 of the C structures' bytes (nvmlVgpuMetadata_t of a vGPU, nvmlVgpuPgpuMetadata_t of a
physical GPU): opaque to devmig, compared only by NVML's nvmlGetVgpuCompatibility.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
from typing import Any, Protocol

from devmig.model.descriptor import DeviceDescriptor, TypeCapability


class Nvml(Protocol):
    """What devmig asks NVML; a GPU is named by its physical function's PCI address."""

    def ecc_enabled(self, gpu: str) -> bool | None:
        """The GPU's current ECC mode, None when NVML cannot tell."""
        ...

    def pgpu_metadata(self, gpu: str) -> bytes | None:
        """nvmlDeviceGetVgpuMetadata: the physical GPU's migration metadata."""
        ...

    def vgpu_metadata(self, gpu: str, type_id: int) -> bytes | None:
        """nvmlVgpuInstanceGetMetadata of the GPU's one running vGPU of this type (None: none or several; NVML names
        vGPU instances, not VFs [U: how they map in SR-IOV mode])."""
        ...

    def compatibility(self, vgpu: bytes, pgpu: bytes) -> tuple[int, int]:
        """nvmlGetVgpuCompatibility: (vgpuVmCompatibility bits, compatibilityLimitCode bits)."""
        ...


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def ask(nvml: Nvml | None, source: DeviceDescriptor, destination: TypeCapability) -> tuple[int, int] | None:
    """NVML's answer (compatibility bits, limit bits) for a source vGPU and a destination physical GPU, when NVML is
    here and both carry metadata; devmig.compat.nvidia.NvmlAnswer.of makes it a check's input."""
    if nvml is None or source.vendor is None or destination.vendor is None:
        return None
    vgpu = _decode(source.vendor.facts.get("nvml_metadata"))
    pgpu = _decode(destination.vendor.facts.get("nvml_metadata"))
    if vgpu is None or pgpu is None:
        return None
    return nvml.compatibility(vgpu, pgpu)


class PyNvml:
    """NVML through the nvidia-ml-py binding (module pynvml)."""

    def __init__(self, module: Any) -> None:
        self.nv = module

    @classmethod
    def open(cls) -> PyNvml | None:
        """NVML when the binding is installed and the library initialises (a host with NVIDIA's driver), else None."""
        try:
            import pynvml  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no NVML on this host
            return None
        return cls(pynvml)

    def _handle(self, gpu: str) -> Any:
        return self.nv.nvmlDeviceGetHandleByPciBusId(gpu)

    def ecc_enabled(self, gpu: str) -> bool | None:
        try:
            return bool(self.nv.nvmlDeviceGetCurrentEccMode(self._handle(gpu)))
        except self.nv.NVMLError:
            return None

    def pgpu_metadata(self, gpu: str) -> bytes | None:
        try:
            return bytes(self.nv.nvmlDeviceGetVgpuMetadata(self._handle(gpu)))
        except self.nv.NVMLError:
            return None

    def vgpu_metadata(self, gpu: str, type_id: int) -> bytes | None:
        try:
            handle = self._handle(gpu)
            found = [
                v for v in self.nv.nvmlDeviceGetActiveVgpus(handle) if self.nv.nvmlVgpuInstanceGetType(v) == type_id
            ]
            return bytes(self.nv.nvmlVgpuInstanceGetMetadata(found[0])) if len(found) == 1 else None
        except self.nv.NVMLError:
            return None

    def compatibility(self, vgpu: bytes, pgpu: bytes) -> tuple[int, int]:
        vm = _struct(self.nv.c_nvmlVgpuMetadata_t, vgpu)
        pg = _struct(self.nv.c_nvmlVgpuPgpuMetadata_t, pgpu)
        answer = self.nv.nvmlGetVgpuCompatibility(vm, pg)
        return int(answer.vgpuVmCompatibility), int(answer.compatibilityLimitCode)


def _struct(kind: Any, data: bytes) -> Any:
    """The C structure from its bytes; metadata of another size (another driver's) is NVML's to judge, so it is
    padded or cut to the local structure's size rather than refused here."""
    size = ctypes.sizeof(kind)
    return kind.from_buffer_copy(data[:size].ljust(size, b"\0"))
