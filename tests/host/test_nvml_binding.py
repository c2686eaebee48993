"""devmig's NVML seam against the real nvidia-ml-py binding (no NVIDIA GPU here): every function and structure
devmig calls exists with the shape devmig uses, a host without NVIDIA's library has no NVML (None, not an error),
and metadata moves between bytes and the binding's own C structures unchanged."""

from __future__ import annotations

import ctypes
import inspect

import pytest

from devmig.host.nvml import PyNvml, _struct

pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is in the test extra")

CALLED = {  # what PyNvml calls -> its parameters in the binding
    "nvmlInit": [],
    "nvmlDeviceGetHandleByPciBusId": ["pciBusId"],
    "nvmlDeviceGetCurrentEccMode": ["handle"],
    "nvmlDeviceGetVgpuMetadata": ["handle"],
    "nvmlDeviceGetActiveVgpus": ["handle"],
    "nvmlVgpuInstanceGetType": ["vgpuInstance"],
    "nvmlVgpuInstanceGetMetadata": ["vgpuInstance"],
    "nvmlGetVgpuCompatibility": ["vgpuMetadata", "pgpuMetadata"],
}


def test_every_call_devmig_makes_is_in_the_binding() -> None:
    for name, parameters in CALLED.items():
        assert list(inspect.signature(getattr(pynvml, name)).parameters) == parameters, name
    assert issubclass(pynvml.NVMLError, Exception)
    fields = [f[0] for f in pynvml.c_nvmlVgpuPgpuCompatibility_t._fields_]
    assert fields == ["vgpuVmCompatibility", "compatibilityLimitCode"]


def test_a_host_without_nvidias_library_has_no_nvml() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        assert PyNvml.open() is None
    else:  # pragma: no cover - a host with NVIDIA's driver
        pynvml.nvmlShutdown()
        assert PyNvml.open() is not None


@pytest.mark.parametrize("kind", ["c_nvmlVgpuMetadata_t", "c_nvmlVgpuPgpuMetadata_t"])
def test_metadata_bytes_round_trip_through_the_bindings_structures(kind: str) -> None:
    struct = getattr(pynvml, kind)
    size = ctypes.sizeof(struct)
    data = bytes(range(256)) * (size // 256 + 1)
    exact = _struct(struct, data[:size])
    assert bytes(exact) == data[:size]
    # another driver's metadata of another size is NVML's to judge: cut or padded to the local structure
    assert bytes(_struct(struct, data[: size + 7])) == data[:size]
    assert bytes(_struct(struct, data[: size - 5])) == data[: size - 5] + b"\0" * 5
