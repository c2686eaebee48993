"""NVIDIA vGPU on SR-IOV (vGPU 17+): a VF bound to `nvidia` with a `nvidia/` directory, instead of mdev.

The files (shared reference devices-2026.md section 1; NVIDIA's `creatable_vgpu_types_show`, vgpu-device-manager's
`pkg/vgpu/vfio`, the kubevirt-gpu-device-plugin README):

    <VF>/nvidia/creatable_vgpu_types   header "ID    : vGPU Name", then "<ID, left-aligned width 5> : <name>" per type
                                       creatable now; header only on a full card
    <VF>/nvidia/current_vgpu_type      decimal type ID and a newline; 0: no vGPU
    <VF>/nvidia/vgpu_params            comma-separated key=value plugin options [U: applied while not open]
    <VF>/nvidia/gpu_instance_id        MIG GPU instance [semantics U]
    <VF>/nvidia/placement_id           placement slot [semantics U]

No file names the current type: its name is looked up in the creatable lists of the board's VFs, and stays unknown
(None) when none lists it (a full card lists nothing), rather than guessed.
"""

from __future__ import annotations

from devmig.host.devices import NvidiaVgpu, PciFunction
from devmig.host.scan import Scan, parse_uint

DRIVER = "nvidia"
HEADER = "ID"


def parse_creatable(text: str) -> dict[int, str]:
    """creatable_vgpu_types: {ID: name}; the header line is skipped, any other line must be `ID : name`."""
    out: dict[int, str] = {}
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].split(":", 1)[0].strip() == HEADER:
        lines = lines[1:]
    for line in lines:
        number, sep, name = line.partition(":")
        number = number.strip()
        if not sep or not number.isascii() or not number.isdigit() or not name.strip():
            raise ValueError(f"expected lines 'ID : vGPU Name' after the header, found {line[:60]!r}")
        out[int(number)] = name.strip()
    return out


def parse_vgpu_params(text: str) -> dict[str, str]:
    """vgpu_params: `key=value` pairs separated by commas (empty: none)."""
    out: dict[str, str] = {}
    for item in text.strip().split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected comma-separated key=value pairs, found {item.strip()[:40]!r}")
        out[key.strip()] = value.strip()
    return out


def read_vgpu(scan: Scan, fn: PciFunction) -> NvidiaVgpu | None:
    """The VF's vGPU files, when it is in NVIDIA's SR-IOV mode (bound to nvidia, a nvidia/ directory)."""
    base = f"{fn.path}/{DRIVER}"
    if not scan.root.isdir(base):
        return None
    obj = f"PCI function {fn.address}"
    if fn.driver != DRIVER:
        scan.warn(obj, base, f"has a nvidia/ directory but is bound to {fn.driver or 'no driver'}, not nvidia")
        return None
    current = scan.attr(obj, f"{base}/current_vgpu_type", parse_uint, required=True)
    vgpu = NvidiaVgpu(current=current or 0)
    vgpu.creatable = scan.attr(obj, f"{base}/creatable_vgpu_types", parse_creatable) or {}
    vgpu.params = scan.attr(obj, f"{base}/vgpu_params", parse_vgpu_params) or {}
    vgpu.gpu_instance_id = scan.attr(obj, f"{base}/gpu_instance_id", parse_uint)
    vgpu.placement_id = scan.attr(obj, f"{base}/placement_id", parse_uint)
    return vgpu


def name_types(functions: list[PciFunction]) -> None:
    """Give each vGPU its type's name from a creatable list of a VF of the same board (the lists list only what
    can still be made, so a name may stay unknown)."""
    names: dict[tuple[str | None, int], str] = {}
    for fn in functions:
        if fn.vgpu is not None:
            for type_id, name in fn.vgpu.creatable.items():
                names.setdefault((fn.physfn, type_id), name)
    for fn in functions:
        if fn.vgpu is not None and fn.vgpu.current:
            fn.vgpu.current_name = fn.vgpu.creatable.get(fn.vgpu.current) or names.get((fn.physfn, fn.vgpu.current))
