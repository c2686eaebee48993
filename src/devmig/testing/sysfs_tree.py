"""Build sysfs trees in the kernel's documented layout, links where the kernel has links.

For tests (devmig's and its users'), benchmarks and the mdevctl comparison: a directory that `SysfsRoot` (or, bind
mounted over /sys, mdevctl) reads as it would read a real host. Attribute files end in a newline, as the kernel
prints them; links are relative, as sysfs makes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class SysfsTree:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "sys").mkdir(parents=True, exist_ok=True)

    # -- primitives ----------------------------------------------------------------------------------------------

    def write(self, rel: str, text: str | bytes, newline: bool = True) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text if isinstance(text, bytes) else (text + ("\n" if newline else "")).encode()
        path.write_bytes(data)
        return path

    def link(self, rel: str, target_rel: str) -> None:
        """A relative symlink at `rel` pointing to `target_rel` (both relative to the root)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(os.path.relpath(self.root / target_rel, path.parent))

    def mkdir(self, rel: str) -> Path:
        path = self.root / rel
        path.mkdir(parents=True, exist_ok=True)
        return path

    def attrs(self, rel: str, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            if value is not None:
                self.write(f"{rel}/{name}", str(value))

    def driver(self, bus: str, name: str, device_rel: str) -> None:
        drv = f"sys/bus/{bus}/drivers/{name}"
        self.mkdir(drv)
        self.link(f"{device_rel}/driver", drv)
        self.link(f"{drv}/{Path(device_rel).name}", device_rel)

    def iommu_group(self, device_rel: str, group: int) -> None:
        grp = f"sys/kernel/iommu_groups/{group}"
        self.link(f"{grp}/devices/{Path(device_rel).name}", device_rel)
        self.link(f"{device_rel}/iommu_group", grp)

    # -- PCI -----------------------------------------------------------------------------------------------------

    def pci_function(
        self,
        address: str,
        vendor: int,
        device: int,
        *,
        subsystem_vendor: int = 0,
        subsystem_device: int = 0,
        class_code: int = 0x020000,
        revision: int = 0,
        driver: str | None = None,
        driver_override: str | None = None,
        iommu_group: int | None = None,
        numa_node: int = -1,
        physfn: str | None = None,
        sriov_totalvfs: int | None = None,
        sriov_numvfs: int = 0,
    ) -> str:
        domain_bus = address.rsplit(":", 1)[0]
        rel = f"sys/devices/pci{domain_bus}/{address}"
        self.attrs(
            rel,
            {
                "vendor": f"0x{vendor:04x}",
                "device": f"0x{device:04x}",
                "subsystem_vendor": f"0x{subsystem_vendor:04x}",
                "subsystem_device": f"0x{subsystem_device:04x}",
                "class": f"0x{class_code:06x}",
                "revision": f"0x{revision:02x}",
                "driver_override": driver_override or "(null)",
                "numa_node": numa_node,
            },
        )
        self.link(f"{rel}/subsystem", "sys/bus/pci")
        self.link(f"sys/bus/pci/devices/{address}", rel)
        if driver:
            self.driver("pci", driver, rel)
        if iommu_group is not None:
            self.iommu_group(rel, iommu_group)
        if sriov_totalvfs is not None:
            self.attrs(rel, {"sriov_totalvfs": sriov_totalvfs, "sriov_numvfs": sriov_numvfs})
        if physfn is not None:
            pf_rel = f"sys/devices/pci{physfn.rsplit(':', 1)[0]}/{physfn}"
            self.link(f"{rel}/physfn", pf_rel)
            index = len([p for p in (self.root / pf_rel).iterdir() if p.name.startswith("virtfn")])
            self.link(f"{pf_rel}/virtfn{index}", rel)
        return rel

    # -- mdev ----------------------------------------------------------------------------------------------------

    def mdev_parent(self, name: str, device_rel: str, subsystem: str = "sys/bus/pci") -> str:
        """Make `device_rel` an mdev parent listed in /sys/class/mdev_bus."""
        self.mkdir(f"{device_rel}/mdev_supported_types")
        if not (self.root / device_rel / "subsystem").exists():
            self.link(f"{device_rel}/subsystem", subsystem)
        self.link(f"sys/class/mdev_bus/{name}", device_rel)
        return device_rel

    def mdev_type(
        self,
        parent_rel: str,
        type_id: str,
        *,
        device_api: str | None = "vfio-pci",
        available_instances: int | str | None = 1,
        name: str | None = None,
        description: str | None = None,
        migration_info: Mapping[str, Any] | str | None = None,
    ) -> str:
        rel = f"{parent_rel}/mdev_supported_types/{type_id}"
        self.attrs(
            rel,
            {
                "device_api": device_api,
                "available_instances": available_instances,
                "name": name,
                "description": description,
            },
        )
        self.write(f"{rel}/create", "", newline=False)
        self.mkdir(f"{rel}/devices")
        if migration_info is not None:
            text = migration_info if isinstance(migration_info, str) else json.dumps(migration_info, indent=2)
            self.write(f"{rel}/migration_info.json", text)
        return rel

    def mdev(
        self,
        parent_rel: str,
        uuid: str,
        type_id: str,
        *,
        iommu_group: int | None = None,
        driver: str | None = "vfio_mdev",
        params: Mapping[str, Any] | None = None,
    ) -> str:
        rel = f"{parent_rel}/{uuid}"
        type_rel = f"{parent_rel}/mdev_supported_types/{type_id}"
        self.mkdir(rel)
        self.link(f"{rel}/mdev_type", type_rel)
        self.link(f"{type_rel}/devices/{uuid}", rel)
        self.link(f"{rel}/subsystem", "sys/bus/mdev")
        self.link(f"sys/bus/mdev/devices/{uuid}", rel)
        self.write(f"{rel}/remove", "", newline=False)
        if driver:
            self.driver("mdev", driver, rel)
        if iommu_group is not None:
            self.iommu_group(rel, iommu_group)
        for name, value in (params or {}).items():
            text = ("1" if value else "0") if isinstance(value, bool) else str(value)
            self.write(f"{rel}/migration/{name}", text)
        return rel

    def mdevctl_config(self, parent: str, uuid: str, config: Mapping[str, Any]) -> None:
        self.write(f"etc/mdevctl.d/{parent}/{uuid}", json.dumps(config))

    # -- s390 ----------------------------------------------------------------------------------------------------

    def subchannel(
        self, busid: str, subchannel_type: int = 0, *, driver: str | None = None, dev_busid: str | None = None
    ) -> str:
        rel = f"sys/devices/css0/{busid}"
        self.attrs(
            rel,
            {
                "type": f"{subchannel_type:x}",
                "driver_override": "(null)",
                "dev_busid": dev_busid or "none",
                "chpids": "11 00 00 00 00 00 00 00",
            },
        )
        self.link(f"{rel}/subsystem", "sys/bus/css")
        self.link(f"sys/bus/css/devices/{busid}", rel)
        if driver:
            self.driver("css", driver, rel)
        return rel

    def ap_matrix(self, apmask: str = "0x" + "0" * 64, aqmask: str = "0x" + "0" * 64) -> str:
        rel = "sys/devices/vfio_ap/matrix"
        self.mkdir(rel)
        self.link(f"{rel}/subsystem", "sys/class/vfio_ap")
        self.attrs("sys/bus/ap", {"apmask": apmask, "aqmask": aqmask})
        return rel

    # -- modules and kernel --------------------------------------------------------------------------------------

    def module(self, name: str, version: str | None = None, srcversion: str | None = None) -> None:
        self.mkdir(f"sys/module/{name}")
        self.attrs(f"sys/module/{name}", {"version": version, "srcversion": srcversion})

    def osrelease(self, release: str) -> None:
        self.write("proc/sys/kernel/osrelease", release)
