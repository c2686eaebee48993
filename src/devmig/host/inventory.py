"""`Inventory.scan(root)`: everything assignable on a host, as plain objects (the Python API of discovery)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from devmig.errors import InputError
from devmig.host.devices import ApMatrix, MdevDevice, MdevParent, MdevType, PciFunction, ScanWarning, Subchannel
from devmig.host.scan import Scan
from devmig.host.sysfs import Sysfs, SysfsRoot

Part = Literal["pci", "mdev_types", "mdevs", "ccw", "ap"]
ALL_PARTS: tuple[Part, ...] = ("pci", "mdev_types", "mdevs", "ccw", "ap")

Device = MdevDevice | PciFunction | Subchannel


@dataclass
class Inventory:
    root: Sysfs
    pci: list[PciFunction] = field(default_factory=list)
    parents: list[MdevParent] = field(default_factory=list)
    mdevs: list[MdevDevice] = field(default_factory=list)
    subchannels: list[Subchannel] = field(default_factory=list)
    ap_matrix: ApMatrix | None = None
    warnings: list[ScanWarning] = field(default_factory=list)

    @classmethod
    def scan(cls, root: str | os.PathLike[str] | Sysfs = "/", parts: Iterable[Part] = ALL_PARTS) -> Inventory:
        """Read the host under `root` (a directory holding sys/, / by default). Never fails on one bad entry:
        such entries become `warnings`."""
        sysfs = SysfsRoot(root) if isinstance(root, str | os.PathLike) else root
        scan = Scan(sysfs)
        wanted = set(parts)
        inv = cls(root=sysfs)
        # Scanners are imported per part: `devmig types` loads only the mdev one.
        if "pci" in wanted:
            from devmig.host.pci import scan_pci

            inv.pci = scan_pci(scan)
        if "mdev_types" in wanted or "mdevs" in wanted:
            from devmig.host.mdev import scan_mdevs, scan_parents

            if "mdev_types" in wanted:
                inv.parents = scan_parents(scan)
            if "mdevs" in wanted:
                inv.mdevs = scan_mdevs(scan)
        if "ccw" in wanted:
            from devmig.host.ccw import scan_subchannels

            inv.subchannels = scan_subchannels(scan)
        if "ap" in wanted:
            from devmig.host.ap import scan_ap_matrix

            inv.ap_matrix = scan_ap_matrix(scan)
        inv.warnings = scan.warnings
        return inv

    # -- lookups -------------------------------------------------------------------------------------------------

    def types(self) -> list[MdevType]:
        return [t for p in self.parents for t in p.types]

    def find_type(self, type_id: str, parent: str | None = None) -> list[MdevType]:
        return [t for t in self.types() if t.id == type_id and (parent is None or t.parent == parent)]

    def assignable(self) -> list[Device]:
        """The devices a VM can be given: mdevs, PCI functions bound to a VFIO driver, vfio-ccw subchannels."""
        out: list[Device] = list(self.mdevs)
        out += [f for f in self.pci if f.vfio]
        out += [s for s in self.subchannels if s.vfio]
        return out

    def device(self, name: str) -> Device:
        """An mdev by UUID, a PCI function by address (0000:3b:00.2 or 3b:00.2), or a subchannel by bus id."""
        key = name.strip().lower()
        for mdev in self.mdevs:
            if mdev.uuid == key:
                return mdev
        for fn in self.pci:
            if key in (fn.address, fn.address.removeprefix("0000:")):
                return fn
        for sch in self.subchannels:
            if sch.busid == key:
                return sch
        raise InputError(
            f"device {name}: not found under {self.root.root} (expected an mdev UUID, a PCI address "
            "such as 0000:3b:00.2, or a subchannel bus id such as 0.0.0313)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pci": [f.to_dict() for f in self.pci],
            "mdev_parents": [p.to_dict() for p in self.parents],
            "mdevs": [m.to_dict() for m in self.mdevs],
            "subchannels": [s.to_dict() for s in self.subchannels],
            "ap_matrix": self.ap_matrix.to_dict() if self.ap_matrix else None,
            "warnings": [{"object": w.object, "path": w.path, "message": w.message} for w in self.warnings],
        }
