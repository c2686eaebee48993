"""A simulated kernel: the mdev core, the PCI core and the s390 buses, behind an in-memory sysfs.

It keeps the kernel's layout and semantics (drivers/vfio/mdev/mdev_sysfs.c, drivers/pci/pci-sysfs.c,
Documentation/driver-api/vfio-mediated-device.rst): writing a UUID to a type's `create` makes a device and lowers
`available_instances`; a duplicate UUID is EEXIST, a malformed one EINVAL, a full parent ENOSPC; `remove` takes the
device away (EBUSY while it is open); `driver_override` + `drivers_probe` bind a PCI function; `migration/<param>`
writes are validated by the vendor driver (EINVAL for a value the type does not allow, EBUSY while the device is
open). Vendor drivers (devmig.sim.drivers) supply the types, the capacity and the devices' VFIO behaviour.

Like the kernel it broadcasts a uevent for each device added or removed and each driver bound or unbound
(`uevents`, devmig.sim.uevent), from the code that makes the change.
"""

from __future__ import annotations

import errno
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from devmig.sim.fs import SimSysfs, kernel_error, static
from devmig.sim.params import DriverCapability, DriverParam
from devmig.sim.uevent import UeventBus
from devmig.sim.vfio import ParamValue, SimVfioDevice

PCI_DEVICES = "sys/bus/pci/devices"


class MdevDriver(Protocol):
    """A vendor driver for mdev parents: the types it offers and the devices it makes."""

    name: str

    def types(self) -> dict[str, SimType]: ...
    def capacity(self, type_id: str, used: list[SimMdev]) -> int: ...
    def make_device(self, mdev: SimMdev) -> SimVfioDevice: ...


@dataclass
class SimType:
    id: str
    name: str
    device_api: str = "vfio-pci"
    description: str | None = None
    #: the driver's migration_info.json (None: the driver does not implement the interface)
    capability: DriverCapability | None = None


@dataclass
class SimMdev:
    uuid: str
    parent: str
    type_id: str
    params: dict[str, ParamValue] = field(default_factory=dict)
    vfio: SimVfioDevice | None = None
    group: int = 0


@dataclass
class SimPciFunction:
    address: str
    vendor: int
    device: int
    class_code: int = 0x020000
    revision: int = 0
    subsystem_vendor: int = 0
    subsystem_device: int = 0
    driver: str | None = None
    override: str | None = None
    physfn: str | None = None
    virtfns: list[str] = field(default_factory=list)
    group: int = 0
    numa_node: int = -1
    #: values of the migration parameters, when the bound driver declares them
    params: dict[str, ParamValue] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"sys/devices/pci{self.address.rsplit(':', 1)[0]}/{self.address}"


@dataclass
class PciDriver:
    """A PCI driver: which functions it takes, and what it makes of them."""

    name: str
    #: "vvvv:dddd" IDs it probes without driver_override (a variant driver binds only through the override)
    ids: tuple[str, ...] = ()
    #: a VFIO driver: the device it makes of a bound function (None for a plain host driver)
    make_device: Callable[[SimPciFunction], SimVfioDevice] | None = None
    #: declared migration interface for the functions it binds (issue: the proposal, beyond mdev)
    capability: Callable[[SimPciFunction], DriverCapability | None] | None = None


#: Intel VT-d extended capabilities (drivers/iommu/intel/iommu.h): scalable mode (SMTS, bit 43), second-stage
#: accessed/dirty bits (SLADS, bit 45), plus the page-walk coherency and queued-invalidation bits every VT-d has.
ECAP_BASE, ECAP_SMTS, ECAP_SLADS = 0x0F0505E, 1 << 43, 1 << 45
IOMMU_DEVICES = "sys/devices/virtual/iommu"
#: VFIO's debugfs (drivers/vfio/debugfs.c): a directory per device, `migration/` in it when the driver has mig_ops
VFIO_DEBUGFS = "sys/kernel/debug/vfio"


@dataclass
class SimIommu:
    """The host's IOMMU (an Intel VT-d): whether it can track the pages devices' DMA dirties, for iommufd users."""

    name: str = "dmar0"
    dirty_tracking: bool = True
    #: /dev/iommu: the kernel has iommufd (QEMU tracks dirty pages through the IOMMU only with it)
    iommufd: bool = True

    @property
    def ecap(self) -> int:
        return ECAP_BASE | ECAP_SMTS | (ECAP_SLADS if self.dirty_tracking else 0)

    def hw_info_dirty_tracking(self) -> bool:
        """IOMMU_GET_HW_INFO's IOMMU_HW_CAP_DIRTY_TRACKING, as iommufd answers it (none without iommufd)."""
        return self.iommufd and self.dirty_tracking


class SimKernel:
    def __init__(self, host: str, osrelease: str = "6.12.57+deb12-amd64") -> None:
        self.fs = SimSysfs(host)
        self.host = host
        self.parents: dict[str, tuple[str, MdevDriver]] = {}
        self.mdevs: dict[str, SimMdev] = {}
        self.pci: dict[str, SimPciFunction] = {}
        self.pci_drivers: dict[str, PciDriver] = {}
        self.pci_devices: dict[str, SimVfioDevice] = {}
        self._next_group = 1
        self._next_vfio = 0
        #: the IOMMU that translates every PCI function's DMA (None: none shown in sysfs)
        self.iommu: SimIommu | None = None
        #: the kernel's uevents, as its netlink socket broadcasts them
        self.uevents = UeventBus()
        self.fs.add_file("proc/sys/kernel/osrelease", static(osrelease))
        for rel in ("sys/class/mdev_bus", "sys/bus/mdev/devices", PCI_DEVICES, "sys/bus/pci/drivers", "etc/mdevctl.d"):
            self.fs.mkdir(rel)
        self.fs.add_file("sys/bus/pci/drivers_probe", write=self._drivers_probe)

    def add_iommu(self, iommu: SimIommu) -> None:
        """The IOMMU in sysfs's layout (sysfs-class-iommu-intel-iommu); PCI functions added later link to it."""
        self.iommu = iommu
        path = f"{IOMMU_DEVICES}/{iommu.name}"
        self.fs.add_file(f"{path}/intel-iommu/ecap", static(f"{iommu.ecap:x}"))
        self.fs.add_link(f"sys/class/iommu/{iommu.name}", path)
        if iommu.iommufd:
            self.fs.add_file("dev/iommu", static(""))

    def group(self) -> int:
        self._next_group += 1
        return self._next_group - 1

    def add_module(self, name: str, version: str | None = None, srcversion: str | None = None) -> None:
        self.fs.mkdir(f"sys/module/{name}")
        if version is not None:
            self.fs.add_file(f"sys/module/{name}/version", static(version))
        if srcversion is not None:
            self.fs.add_file(f"sys/module/{name}/srcversion", static(srcversion))
        self.uevents.emit("add", "module", f"sys/module/{name}")

    def remove_module(self, name: str) -> None:
        self.fs.remove(f"sys/module/{name}")
        self.uevents.emit("remove", "module", f"sys/module/{name}")

    # -- PCI -----------------------------------------------------------------------------------------------------

    def add_pci_driver(self, driver: PciDriver) -> None:
        self.pci_drivers[driver.name] = driver
        base = f"sys/bus/pci/drivers/{driver.name}"
        self.fs.mkdir(base)
        self.fs.add_file(f"{base}/unbind", write=partial(self._unbind, driver.name))
        self.fs.add_file(f"{base}/bind", write=partial(self._bind, driver.name))

    def add_pci_function(self, fn: SimPciFunction, *, sriov_totalvfs: int | None = None) -> SimPciFunction:
        self.pci[fn.address] = fn
        path, fs = fn.path, self.fs
        for attr, fmt in (
            ("vendor", "0x{:04x}"),
            ("device", "0x{:04x}"),
            ("subsystem_vendor", "0x{:04x}"),
            ("subsystem_device", "0x{:04x}"),
        ):
            fs.add_file(f"{path}/{attr}", static(fmt.format(getattr(fn, attr))))
        fs.add_file(f"{path}/class", static(f"0x{fn.class_code:06x}"))
        fs.add_file(f"{path}/revision", static(f"0x{fn.revision:02x}"))
        fs.add_file(f"{path}/numa_node", static(str(fn.numa_node)))
        fs.add_file(
            f"{path}/driver_override",
            lambda: f"{fn.override or '(null)'}\n",
            lambda text: setattr(fn, "override", text.strip() or None),
        )
        fs.add_link(f"{path}/subsystem", "sys/bus/pci")
        fs.add_link(f"{PCI_DEVICES}/{fn.address}", path)
        if fn.group:
            fs.add_link(f"{path}/iommu_group", f"sys/kernel/iommu_groups/{fn.group}")
            fs.mkdir(f"sys/kernel/iommu_groups/{fn.group}/devices")
            if self.iommu is not None:
                fs.add_link(f"{path}/iommu", f"{IOMMU_DEVICES}/{self.iommu.name}")
        if sriov_totalvfs is not None:
            fs.add_file(f"{path}/sriov_totalvfs", static(str(sriov_totalvfs)))
            fs.add_file(f"{path}/sriov_numvfs", lambda: f"{len(fn.virtfns)}\n")
        if fn.physfn is not None:
            pf = self.pci[fn.physfn]
            fs.add_link(f"{path}/physfn", pf.path)
            fs.add_link(f"{pf.path}/virtfn{len(pf.virtfns)}", path)
            pf.virtfns.append(fn.address)
        if fn.driver is not None:
            driver, fn.driver = fn.driver, None
            self._attach(fn, driver)
        return fn

    def _attach(self, fn: SimPciFunction, name: str) -> None:
        driver = self.pci_drivers.get(name)
        if driver is None:
            raise kernel_error(errno.ENODEV)
        fn.driver = name
        self.fs.add_link(f"{fn.path}/driver", f"sys/bus/pci/drivers/{name}")
        self.fs.add_link(f"sys/bus/pci/drivers/{name}/{fn.address}", fn.path)
        if driver.make_device is not None:
            device = self.pci_devices[fn.address] = driver.make_device(fn)
            self._vfio_dev(fn, device)
        capability = driver.capability(fn) if driver.capability is not None else None
        if capability is not None:
            self.fs.add_file(f"{fn.path}/migration_info.json", static(capability.document()))
            self._param_files(f"{fn.path}/migration", capability, fn.params, fn.address)
        self.uevents.emit("bind", "pci", fn.path, DRIVER=name, PCI_SLOT_NAME=fn.address)

    def _vfio_dev(self, fn: SimPciFunction, device: SimVfioDevice) -> None:
        """The VFIO device's sysfs node (<device>/vfio-dev/vfioN) and its debugfs directory, with `migration/` when
        the driver registered migration."""
        name = f"vfio{self._next_vfio}"
        self._next_vfio += 1
        self.fs.mkdir(f"{fn.path}/vfio-dev/{name}")
        self.fs.mkdir(f"{VFIO_DEBUGFS}/{name}")
        if device.describe().migration:
            self.fs.add_file(f"{VFIO_DEBUGFS}/{name}/migration/state", lambda: f"{device.current_state().name}\n")

    def _unbind(self, driver: str, text: str) -> None:
        address = text.strip()
        fn = self.pci.get(address)
        if fn is None or fn.driver != driver:
            raise kernel_error(errno.ENODEV)
        if self.is_open(address):
            raise kernel_error(errno.EBUSY)  # the kernel waits for the user; failing is the simulator's choice
        fn.driver = None
        self.pci_devices.pop(address, None)
        for name in self.fs.listdir_optional(f"{fn.path}/vfio-dev"):
            self.fs.remove(f"{VFIO_DEBUGFS}/{name}")
        self.fs.remove(f"{fn.path}/vfio-dev")
        self.fs.remove(f"{fn.path}/driver")
        self.fs.remove(f"{fn.path}/migration_info.json")
        self.fs.remove(f"{fn.path}/migration")
        self.fs.remove(f"sys/bus/pci/drivers/{driver}/{address}")
        self.uevents.emit("unbind", "pci", fn.path, DRIVER=driver, PCI_SLOT_NAME=fn.address)

    def _bind(self, driver: str, text: str) -> None:
        fn = self.pci.get(text.strip())
        if fn is None:
            raise kernel_error(errno.ENODEV)
        if fn.driver is not None:
            raise kernel_error(errno.EBUSY)
        self._attach(fn, driver)

    def bind_pci(self, address: str, driver: str) -> None:
        self._bind(driver, address)

    def unbind_pci(self, address: str) -> None:
        fn = self.pci[address]
        if fn.driver is not None:
            self._unbind(fn.driver, address)

    def _drivers_probe(self, text: str) -> None:
        fn = self.pci.get(text.strip())
        if fn is None:
            raise kernel_error(errno.EINVAL)
        if fn.driver is not None:
            return
        pci_id = f"{fn.vendor:04x}:{fn.device:04x}"
        for driver in self.pci_drivers.values():
            if (fn.override == driver.name) or (fn.override is None and pci_id in driver.ids):
                self._attach(fn, driver.name)
                return

    # -- mdev ----------------------------------------------------------------------------------------------------

    def add_mdev_parent(self, name: str, path: str, driver: MdevDriver, subsystem: str = "sys/bus/pci") -> None:
        self.parents[name] = (path, driver)
        fs = self.fs
        fs.add_link(f"sys/class/mdev_bus/{name}", path)
        if not fs.exists(f"{path}/subsystem"):
            fs.add_link(f"{path}/subsystem", subsystem)
        for type_id, stype in driver.types().items():
            tdir = f"{path}/mdev_supported_types/{type_id}"
            fs.mkdir(f"{tdir}/devices")
            fs.add_file(f"{tdir}/name", static(stype.name))
            fs.add_file(f"{tdir}/device_api", static(stype.device_api))
            if stype.description is not None:
                fs.add_file(f"{tdir}/description", static(stype.description))
            fs.add_file(f"{tdir}/available_instances", partial(self._available_text, name, type_id))
            fs.add_file(f"{tdir}/create", write=partial(self._create, name, type_id))
            if stype.capability is not None:
                fs.add_file(f"{tdir}/migration_info.json", static(stype.capability.document()))

    def remove_mdev_parent(self, name: str) -> None:
        """The parent's driver goes (mdev_unregister_parent): its devices are removed, then its types."""
        path, _ = self.parents[name]
        for uuid in [m.uuid for m in self.mdevs.values() if m.parent == name]:
            self.remove_mdev(uuid)
        del self.parents[name]
        self.fs.remove(f"{path}/mdev_supported_types")
        self.fs.remove(f"sys/class/mdev_bus/{name}")

    def _available_text(self, parent: str, type_id: str) -> str:
        return f"{self.available(parent, type_id)}\n"

    def available(self, parent: str, type_id: str) -> int:
        _, driver = self.parents[parent]
        return driver.capacity(type_id, [m for m in self.mdevs.values() if m.parent == parent])

    def _create(self, parent: str, type_id: str, text: str) -> None:
        raw = text.strip()
        if len(text.rstrip("\n")) != 36:
            raise kernel_error(errno.EINVAL)  # mdev_sysfs.c: 36 characters, a trailing newline allowed
        try:
            uuid = str(uuidlib.UUID(raw))
        except ValueError:
            raise kernel_error(errno.EINVAL) from None
        if uuid in self.mdevs:
            raise kernel_error(errno.EEXIST)
        if self.available(parent, type_id) <= 0:
            raise kernel_error(errno.ENOSPC)
        self.create_mdev(parent, type_id, uuid)

    def create_mdev(
        self, parent: str, type_id: str, uuid: str, params: dict[str, ParamValue] | None = None, group: int = 0
    ) -> SimMdev:
        path, driver = self.parents[parent]
        stype = driver.types()[type_id]
        mdev = SimMdev(uuid=uuid, parent=parent, type_id=type_id, group=group or self.group())
        mdev.params.update(params or {})
        self.mdevs[uuid] = mdev
        if stype.capability is not None:
            for name, param in stype.capability.params.items():
                mdev.params.setdefault(name, param.init)
        mdev.vfio = driver.make_device(mdev)
        fs, dev = self.fs, f"{path}/{uuid}"
        tdir = f"{path}/mdev_supported_types/{type_id}"
        fs.mkdir(dev)
        fs.add_link(f"{dev}/mdev_type", tdir)
        fs.add_link(f"{dev}/subsystem", "sys/bus/mdev")
        fs.add_link(f"{dev}/driver", f"sys/bus/mdev/drivers/{driver.name}")
        fs.mkdir(f"sys/bus/mdev/drivers/{driver.name}")
        fs.add_link(f"{dev}/iommu_group", f"sys/kernel/iommu_groups/{mdev.group}")
        fs.mkdir(f"sys/kernel/iommu_groups/{mdev.group}/devices")
        fs.add_file(f"{dev}/remove", write=partial(self._remove, uuid))
        fs.add_link(f"{tdir}/devices/{uuid}", dev)
        fs.add_link(f"sys/bus/mdev/devices/{uuid}", dev)
        if stype.capability is not None:
            check = getattr(driver, "check_param", None)
            self._param_files(
                f"{dev}/migration",
                stype.capability,
                mdev.params,
                uuid,
                None if check is None else partial(self._check_mdev_param, check, mdev),
            )
        self.uevents.emit("add", "mdev", dev, MDEV_TYPE=type_id)
        self.uevents.emit("bind", "mdev", dev, DRIVER=driver.name)
        return mdev

    def _check_mdev_param(self, check: Callable[..., None], mdev: SimMdev, name: str, value: ParamValue) -> None:
        others = [m for m in self.mdevs.values() if m.parent == mdev.parent and m.uuid != mdev.uuid]
        check(mdev, others, name, value)

    def _param_files(
        self,
        directory: str,
        capability: DriverCapability,
        values: dict[str, ParamValue],
        key: str,
        check: Callable[[str, ParamValue], None] | None = None,
    ) -> None:
        """migration/<param>: one value per file, starting at init_value, validated on write, frozen while open;
        `check` is the vendor driver's own say (a resource it cannot give: ENOSPC)."""
        for name, param in capability.params.items():
            values.setdefault(name, param.init)

            def write(text: str, name: str = name, param: DriverParam = param) -> None:
                if self.is_open(key):
                    raise kernel_error(errno.EBUSY)  # parameters are frozen once the device is open (RFC v3)
                try:
                    value = param.parse(text)
                except OverflowError:
                    raise kernel_error(errno.ERANGE) from None
                except ValueError:
                    raise kernel_error(errno.EINVAL) from None
                if not param.accepts(value):
                    raise kernel_error(errno.EINVAL)
                if check is not None:
                    check(name, value)
                values[name] = value

            def read(name: str = name, param: DriverParam = param) -> str:
                return param.show(values[name])

            self.fs.add_file(f"{directory}/{name}", read, write)

    def _remove(self, uuid: str, text: str) -> None:
        try:
            flag = int(text.strip())
        except ValueError:
            raise kernel_error(errno.EINVAL) from None
        if not flag:
            return
        if self.is_open(uuid):
            raise kernel_error(errno.EBUSY)
        self.remove_mdev(uuid)

    def remove_mdev(self, uuid: str) -> None:
        mdev = self.mdevs.pop(uuid)
        path, driver = self.parents[mdev.parent]
        self.uevents.emit("unbind", "mdev", f"{path}/{uuid}", DRIVER=driver.name)
        self.fs.remove(f"{path}/{uuid}")
        self.fs.remove(f"{path}/mdev_supported_types/{mdev.type_id}/devices/{uuid}")
        self.fs.remove(f"sys/bus/mdev/devices/{uuid}")
        self.uevents.emit("remove", "mdev", f"{path}/{uuid}", MDEV_TYPE=mdev.type_id)

    # -- s390 ----------------------------------------------------------------------------------------------------

    def add_subchannel(self, busid: str, subchannel_type: int, driver: str | None = None) -> str:
        path = f"sys/devices/css0/{busid}"
        self.fs.add_file(f"{path}/type", static(f"{subchannel_type:x}"))
        self.fs.add_file(f"{path}/driver_override", static("(null)"))
        self.fs.add_file(f"{path}/dev_busid", static("none"))
        self.fs.add_file(f"{path}/chpids", static("11 00 00 00 00 00 00 00 "))
        self.fs.add_link(f"{path}/subsystem", "sys/bus/css")
        self.fs.add_link(f"sys/bus/css/devices/{busid}", path)
        if driver is not None:
            self.fs.mkdir(f"sys/bus/css/drivers/{driver}")
            self.fs.add_link(f"{path}/driver", f"sys/bus/css/drivers/{driver}")
        return path

    def add_ap_matrix(self) -> str:
        path = "sys/devices/vfio_ap/matrix"
        self.fs.mkdir(path)
        self.fs.add_link(f"{path}/subsystem", "sys/class/vfio_ap")
        self.fs.add_file("sys/bus/ap/apmask", static("0x" + "f" * 4 + "0" * 60))
        self.fs.add_file("sys/bus/ap/aqmask", static("0x" + "f" * 4 + "0" * 60))
        return path

    # -- VFIO ----------------------------------------------------------------------------------------------------

    def is_open(self, name: str) -> bool:
        """Open by a user (a VM): removal and parameter writes are refused (EBUSY)."""
        mdev = self.mdevs.get(name)
        device = mdev.vfio if mdev is not None else self.pci_devices.get(name)
        return device is not None and device.open_count > 0

    def vfio_device(self, name: str) -> SimVfioDevice:
        """The VFIO device of an mdev (by UUID) or a bound PCI function (by address)."""
        mdev = self.mdevs.get(name)
        if mdev is not None and mdev.vfio is not None:
            return mdev.vfio
        device = self.pci_devices.get(name)
        if device is None:
            raise kernel_error(errno.ENODEV)
        return device
