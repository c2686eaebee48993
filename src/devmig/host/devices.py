"""What discovery finds, as plain objects: no pydantic, no I/O, cheap to build by the ten thousand.

These are the Python API's return values (`Inventory.scan`), usable from Nova or KubeVirt code, and the rows of
`devmig list` and `devmig types`. `to_dict()` gives the documented JSON shape (docs/discovery.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

#: VFIO PCI drivers by `driver_key`: plain vfio-pci (no migration) and the variant drivers that implement migration v2
#: (xe_vfio_pci only on a PF that enables it; devmig.host.iommu reads that).
VFIO_PCI_DRIVERS: dict[str, bool] = {
    "vfio_pci": False,
    "mlx5_vfio_pci": True,
    "hisi_acc_vfio_pci": True,
    "pds_vfio_pci": True,
    "virtio_vfio_pci": True,
    "qat_vfio_pci": True,
    "xe_vfio_pci": True,
    "nvgrace_gpu_vfio_pci": False,
    "ism_vfio_pci": False,
}


def driver_key(name: str) -> str:
    """A driver's name as one spelling: the kernel names some with hyphens (vfio-pci, xe-vfio-pci) and their modules
    with underscores (vfio_pci, xe_vfio_pci); both are the same driver."""
    return name.replace("-", "_")


#: each dataclass's field names, in order, read once (dataclasses.fields() is slow on 10,000 devices)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(obj: object) -> dict[str, Any]:
    """A dataclass's fields as a dict, lists copied shallowly (dataclasses.asdict deep-copies: 25x slower)."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))  # type: ignore[arg-type]
    return {name: (list(v) if isinstance(v := getattr(obj, name), list) else v) for name in names}


@dataclass(slots=True)
class ScanWarning:
    """One entry that could not be read completely; the rest of the scan went on."""

    object: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.message}"


@dataclass(slots=True)
class NvidiaVgpu:
    """A VF's vGPU in NVIDIA's SR-IOV mode (vGPU 17+): its `nvidia/` directory (devmig.host.nvidia)."""

    #: current_vgpu_type: the type ID, 0 when the VF carries no vGPU
    current: int = 0
    #: the current type's name from a creatable list of the board; None when no list shows it (a full card)
    current_name: str | None = None
    #: creatable_vgpu_types: ID -> name, what this VF can be made now (empty on a full card)
    creatable: dict[int, str] = field(default_factory=dict)
    #: vgpu_params: the plugin options, key -> value as written
    params: dict[str, str] = field(default_factory=dict)
    gpu_instance_id: int | None = None
    placement_id: int | None = None

    @property
    def type_id(self) -> str | None:
        """The type as devmig names it, as the mdev driver names the same vGPU type: nvidia-<ID> [U: same IDs]."""
        return f"nvidia-{self.current}" if self.current else None

    def to_dict(self) -> dict[str, Any]:
        out = _plain(self)
        out["creatable"] = {str(k): v for k, v in self.creatable.items()}
        out["params"] = dict(self.params)
        out["type"] = self.type_id
        return out


@dataclass(slots=True)
class PciFunction:
    """A PCI function under /sys/bus/pci/devices: IDs as lspci spells them, its driver, group and SR-IOV links."""

    address: str
    path: str
    vendor: str | None = None
    device: str | None = None
    subsystem_vendor: str | None = None
    subsystem_device: str | None = None
    class_code: str | None = None
    revision: str | None = None
    driver: str | None = None
    driver_override: str | None = None
    iommu_group: int | None = None
    numa_node: int | None = None
    physfn: str | None = None
    virtfns: list[str] = field(default_factory=list)
    sriov_numvfs: int | None = None
    sriov_totalvfs: int | None = None
    #: NVIDIA's SR-IOV vGPU: a VF bound to nvidia with a nvidia/ directory (None for any other function)
    vgpu: NvidiaVgpu | None = None

    @property
    def pci_id(self) -> str | None:
        return f"{self.vendor}:{self.device}" if self.vendor and self.device else None

    @property
    def vfio(self) -> bool:
        """Bound to vfio-pci or a VFIO variant driver (*_vfio_pci or *-vfio-pci by kernel convention), or a VF
        carrying an NVIDIA vGPU (nvidia.ko registers it with vfio-pci-core): assignable."""
        if self.vgpu is not None:
            return self.vgpu.current != 0  # with no type, opening the VFIO device is ENODEV
        key = driver_key(self.driver or "")
        return self.driver is not None and (key in VFIO_PCI_DRIVERS or key.endswith("_vfio_pci"))

    @property
    def migration_driver(self) -> bool:
        """Bound to a variant driver that implements VFIO migration (nvidia.ko for its vGPU VFs: stop-copy)."""
        return self.vgpu is not None or VFIO_PCI_DRIVERS.get(driver_key(self.driver or ""), False)

    def to_dict(self) -> dict[str, Any]:
        out = _plain(self)
        out["pci_id"] = self.pci_id
        out["migration_driver"] = self.migration_driver
        out["vgpu"] = self.vgpu.to_dict() if self.vgpu is not None else None
        return out


@dataclass(slots=True)
class MdevType:
    """An mdev type a parent can create, with its free instances and the devices made of it."""

    parent: str
    id: str
    path: str
    device_api: str | None = None
    available_instances: int | None = None
    name: str | None = None
    description: str | None = None
    devices: list[str] = field(default_factory=list)
    #: the type exposes the proposed migration interface (a migration_info.json attribute)
    migration_info: bool = False

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(slots=True)
class MdevParent:
    """A device that creates mdevs (listed in /sys/class/mdev_bus), with its types."""

    name: str
    path: str
    #: the subsystem the parent belongs to: its bus (pci, css) or class (mtty, vfio_ap)
    subsystem: str | None = None
    driver: str | None = None
    types: list[MdevType] = field(default_factory=list)
    #: False when the parent has no mdev_supported_types directory (a warning was given)
    types_dir: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "subsystem": self.subsystem,
            "driver": self.driver,
            "types": [t.to_dict() for t in self.types],
        }


@dataclass(slots=True)
class MdevDevice:
    """An active mediated device (/sys/bus/mdev/devices/UUID)."""

    uuid: str
    parent: str
    path: str
    type: str | None = None
    driver: str | None = None
    iommu_group: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(slots=True)
class Subchannel:
    """A channel subsystem subchannel (s390), as vfio-ccw sees it."""

    busid: str
    path: str
    subchannel_type: str | None = None
    driver: str | None = None
    driver_override: str | None = None
    dev_busid: str | None = None
    chpids: str | None = None

    @property
    def vfio(self) -> bool:
        return self.driver == "vfio_ccw"

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(slots=True)
class ApMatrix:
    """The vfio_ap matrix device (s390 crypto adapters) and the host's AP masks."""

    path: str
    apmask: str | None = None
    aqmask: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)
