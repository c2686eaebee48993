"""From what discovery found to the formats: a source descriptor per device, a destination capability per type.

Three ways, in order of trust:
1. the driver's own migration interface (a type's `migration_info.json`, an instance's `migration/<param>`):
   confidence "declared";
2. a profile (devmig's data files on today's drivers): confidence "profile";
3. neither: a conservative document holding strict identity of everything known (type, drivers, module versions,
   kernel release), confidence "unverified". Never a guess.
"""

from __future__ import annotations

import errno
import posixpath
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from devmig.errors import DevmigError, InputError
from devmig.host.devices import MdevDevice, MdevType, PciFunction, Subchannel, driver_key
from devmig.host.inventory import Device, Inventory
from devmig.host.iommu import iommu_dirty_tracking, vfio_registers_migration
from devmig.host.nvml import Nvml, encode
from devmig.host.sysfs import SysfsError
from devmig.model.descriptor import DeviceAddress, DeviceDescriptor, ModelSpec, TypeCapability, VendorFacts
from devmig.model.load import parse_document, problem
from devmig.model.migration import DirtyTracking, MigrationFlag, MigrationSupport
from devmig.model.params import ParamSpec, ParamValue, value_from_text
from devmig.model.version import SoftwareVersion

if TYPE_CHECKING:  # types only: a declared type is described without the profile models (the mdevctl callout)
    from devmig.host.profile import MigrationRule, Profile, ValueSource

_NUMBERS_RE = re.compile(r"[0-9]+")
#: facts a profile reads in one spelling whatever the kernel's (xe-vfio-pci and xe_vfio_pci are one driver)
_NORMALISED_FACTS = {"driver": driver_key, "parent_driver": driver_key}
#: a profile's device_dirty_tracking -> what tracks the device's DMA: the device, or (None) the host IOMMU if it can
_DEVICE_TRACKS: dict[str, DirtyTracking | None] = {"yes": "device", "not-needed": "not-needed", "no": None}
UNVERIFIED_VERSION = "0.0.0"


def version_from_text(text: str) -> SoftwareVersion | None:
    """The first three numbers of a driver or kernel version: "0.1" -> 0.1.0, "6.12.57+deb12-amd64" -> 6.12.57."""
    found = _NUMBERS_RE.findall(text.split("+", 1)[0].split("-", 1)[0])[:3]
    if not found or any(len(n) > 18 for n in found):  # not a version a driver prints (and int() has a limit)
        return None
    numbers = [int(n) for n in found]
    numbers += [0] * (3 - len(numbers))
    return SoftwareVersion(*numbers)


def parse_param_text(spec: ParamSpec, text: str, where: str) -> ParamValue:
    """A `migration/<param>` attribute's text as a value of the parameter's type."""
    try:
        return value_from_text(spec.type, text)
    except ValueError as exc:
        raise SysfsError(f"{where}: {exc}") from None


def _free(mtype: MdevType) -> int | None:
    """The type's free instances; a negative count (the scan warned about it) is not known."""
    count = mtype.available_instances
    return count if count is None or count >= 0 else None


@contextmanager
def _as_found(what: str) -> Iterator[None]:
    """Documents are built from what sysfs and the profiles show, which the formats may refuse (a device_api no
    kernel has, a negative count, a newline in a value): that is an error on the object, not a crash."""
    try:
        yield
    except ValidationError as exc:
        raise SysfsError(f"{what}: cannot be described: {problem(exc)}", errno.EINVAL) from None


def _descriptor_of(
    cap: TypeCapability,
    params: dict[str, ParamValue],
    what: str,
    address: dict[str, str],
    vendor: VendorFacts | None = None,
) -> DeviceDescriptor:
    """The device at `address` (its kind and its name in sysfs), of type `cap` (one model at most), with these migration
    parameters, as trusted as `cap`."""
    with _as_found(what):
        return DeviceDescriptor(
            device_api=cap.device_api,
            type=cap.type,
            model=next(iter(cap.models), None),
            software_version=cap.software_version,
            api=cap.api,
            params=params,
            confidence=cap.confidence,
            address=DeviceAddress.model_validate(address),
            vendor=vendor if vendor is not None else cap.vendor,
            migration=cap.migration,
        )


@dataclass
class Facts:
    """What is known of one device or type, for profiles and for strict identity."""

    type: str
    device_api: str
    pci_id: str | None = None
    subsystem_id: str | None = None
    revision: str | None = None
    driver: str | None = None
    parent_pci_id: str | None = None
    parent_driver: str | None = None
    subchannel_type: str | None = None

    def get(self, name: str) -> str | None:
        value = getattr(self, name, None)
        return value if isinstance(value, str) else None


def os_platform(text: str | None) -> str | None:
    """/etc/os-release as `<ID>-<VERSION_ID>` (rhel-9.6, ubuntu-24.04): the platform NVIDIA's rules name."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("\"'")
    return f"{values['ID']}-{values['VERSION_ID']}" if values.get("ID") and values.get("VERSION_ID") else None


class Describer:
    def __init__(self, inventory: Inventory, profiles: Sequence[Profile], nvml: Nvml | None = None) -> None:
        self.inv = inventory
        self.root = inventory.root
        self.profiles = list(profiles)
        #: NVML, for NVIDIA vGPUs' ECC mode and migration metadata (None: not on this host)
        self.nvml = nvml
        self._pci = {f.path: f for f in inventory.pci}
        self._by_address = {f.address: f for f in inventory.pci}
        self._sch = {s.path: s for s in inventory.subchannels}

    # -- facts ---------------------------------------------------------------------------------------------------

    def _parent_facts(self, facts: Facts, parent_path: str) -> None:
        parent = next((p for p in self.inv.parents if p.path == parent_path), None)
        facts.parent_driver = parent.driver if parent else None
        fn = self._pci.get(parent_path)
        if fn is not None:
            facts.parent_pci_id = fn.pci_id
            facts.parent_driver = fn.driver
        sch = self._sch.get(parent_path)
        if sch is not None:
            facts.subchannel_type = sch.subchannel_type
        elif facts.device_api == "vfio-ccw":
            facts.subchannel_type = self.root.read_optional(f"{parent_path}/type")

    def type_facts(self, mtype: MdevType) -> Facts:
        facts = Facts(type=mtype.id, device_api=mtype.device_api or "")
        self._parent_facts(facts, posixpath.dirname(posixpath.dirname(mtype.path)))
        return facts

    def function_facts(self, fn: PciFunction) -> Facts:
        sub = f"{fn.subsystem_vendor}:{fn.subsystem_device}" if fn.subsystem_vendor and fn.subsystem_device else None
        return Facts(
            type=(fn.vgpu.type_id if fn.vgpu is not None else None) or f"{fn.driver}:{fn.pci_id}",
            device_api="vfio-pci",
            pci_id=fn.pci_id,
            subsystem_id=sub,
            revision=fn.revision,
            driver=fn.driver,
        )

    def _source(self, src: ValueSource, facts: Facts, what: str) -> str:
        if src.fixed is not None:
            return src.fixed
        if src.module is not None:
            rel = f"sys/module/{src.module}/{src.attribute}"
            text = self.root.read_optional(rel)
            if text is None:
                raise SysfsError(f"{what}: {rel} is missing (is the {src.module} module loaded?)")
            return text.strip()
        if src.kernel is not None:
            text = self.root.read_optional("proc/sys/kernel/osrelease")
            if text is None:
                raise SysfsError(f"{what}: the kernel release (proc/sys/kernel/osrelease) cannot be read")
            return text.strip()
        assert src.device is not None
        value = facts.get(src.device)
        if value is None:
            raise SysfsError(f"{what}: the device's {src.device} is not known")
        normalise = _NORMALISED_FACTS.get(src.device)
        return normalise(value) if normalise else value

    def _module_identity(self, driver: str | None, prefix: str, api: dict[str, str]) -> None:
        if driver is None:
            return
        api[f"{prefix}driver"] = driver
        for attr in ("version", "srcversion"):
            text = self.root.read_optional(f"sys/module/{driver}/{attr}")
            if text:
                api[f"{prefix}module_{attr}"] = text.strip()

    def _strict_identity(self, facts: Facts) -> dict[str, str]:
        api: dict[str, str] = {}
        for key in ("pci_id", "subsystem_id", "parent_pci_id", "subchannel_type"):
            value = facts.get(key)
            if value is not None:
                api[key] = value
        self._module_identity(facts.driver, "", api)
        self._module_identity(facts.parent_driver, "parent_", api)
        release = self.root.read_optional("proc/sys/kernel/osrelease")
        if release:
            api["kernel"] = release.strip()
        return api

    # -- profiles ------------------------------------------------------------------------------------------------

    def profile_for_type(self, type_id: str) -> Profile | None:
        return next((p for p in self.profiles if p.match.types and p.matches_type(type_id)), None)

    def profile_for_function(self, fn: PciFunction) -> Profile | None:
        return next((p for p in self.profiles if p.matches_function(fn.driver, fn.pci_id)), None)

    def _profile_parts(
        self, profile: Profile, facts: Facts, what: str
    ) -> tuple[str, SoftwareVersion, dict[str, str], dict[str, ParamValue]]:
        text = self._source(profile.software_version, facts, f"{what} (profile {profile.id})")
        version = version_from_text(text)
        if version is None:
            raise SysfsError(f"{what} (profile {profile.id}): no version number in {text!r}")
        api = {key: self._source(src, facts, f"{what} (profile {profile.id})") for key, src in profile.api.items()}
        params: dict[str, ParamValue] = {}
        for name, rule in profile.params.items():
            if facts.type not in rule.by_type:
                raise InputError(
                    f"{what}: profile {profile.id} ({profile.origin}) gives no {name} for type {facts.type}"
                )
            params[name] = rule.by_type[facts.type]
        model = profile.model_for(type=facts.type, driver=driver_key(facts.driver or ""), pci_id=facts.pci_id or "")
        return model, version, api, params

    def function_migration(self, rule: MigrationRule | None, fn: PciFunction) -> MigrationSupport | None:
        """The function's migration on this host, from its profile's rule and what the host shows: the PF's
        enablement (VFIO's debugfs), the IOMMU's dirty tracking. A part devmig cannot read is None (not known)."""
        if rule is None:
            return None
        flags: list[MigrationFlag] | None = list(rule.flags)
        if rule.pf_enables and flags:
            registered = vfio_registers_migration(self.root, fn.path)
            flags = None if registered is None else (flags if registered else [])
        tracking = _DEVICE_TRACKS.get(rule.device_dirty_tracking)
        if tracking is None and flags != []:
            iommu = iommu_dirty_tracking(self.root, fn.path)
            if iommu:
                tracking = "iommu"
            elif iommu is False and rule.device_dirty_tracking == "no":
                tracking = "none"  # with "firmware", the device may still log its DMA: not known
        return MigrationSupport(flags=flags, dirty_tracking=tracking)

    # -- capabilities --------------------------------------------------------------------------------------------

    def type_capability(self, mtype: MdevType) -> TypeCapability:
        what = f"mdev type {mtype.parent}/{mtype.id}"
        if mtype.device_api is None:
            raise SysfsError(f"{what}: device_api is unreadable, so the type cannot be described")
        if mtype.migration_info:
            return self._declared_capability(mtype, what)
        with _as_found(what):
            return self._found_capability(mtype, what)

    def _found_capability(self, mtype: MdevType, what: str) -> TypeCapability:
        """A type without the migration interface: from a profile, else unverified."""
        assert mtype.device_api is not None
        facts = self.type_facts(mtype)
        profile = self.profile_for_type(mtype.id)
        if profile is not None:
            model, version, api, params = self._profile_parts(profile, facts, what)
            specs = {
                n: ParamSpec(type=r.type, init_value=params[n], allowed_values=[params[n]], description=r.description)
                for n, r in profile.params.items()
            }
            return TypeCapability(
                device_api=mtype.device_api,
                type=mtype.id,
                software_version=version,
                api=api,
                models={model: ModelSpec(params=specs)},
                available_instances=_free(mtype),
                confidence="profile",
            )
        return TypeCapability(
            device_api=mtype.device_api,
            type=mtype.id,
            software_version=UNVERIFIED_VERSION,
            api=self._strict_identity(facts),
            available_instances=_free(mtype),
            confidence="unverified",
        )

    def _declared_capability(self, mtype: MdevType, what: str) -> TypeCapability:
        rel = f"{mtype.path}/migration_info.json"
        cap = parse_document(TypeCapability, self.root.read_bytes(rel), rel)
        if cap.type != mtype.id or cap.device_api != mtype.device_api:
            raise SysfsError(
                f"{what}: migration_info.json declares {cap.device_api} type {cap.type}, but sysfs shows "
                f"{mtype.device_api} type {mtype.id}"
            )
        return cap.model_copy(update={"available_instances": _free(mtype)})

    def function_capability(self, fn: PciFunction) -> TypeCapability:
        what = f"PCI function {fn.address}"
        with _as_found(what):
            return self._function_capability(fn, what)

    # -- NVIDIA vGPU on SR-IOV ------------------------------------------------------------------------------------

    def _vgpu_vendor(self, fn: PciFunction, metadata: bytes | None) -> VendorFacts:
        """The facts NVIDIA's rules compare (devmig.compat.nvidia), from sysfs, /etc/os-release and NVML."""
        facts: dict[str, str] = {}
        version = self.root.read_optional("sys/module/nvidia/version")
        if version and version.strip():
            facts["host_driver"] = version.strip()
        platform = os_platform(self.root.read_optional("etc/os-release"))
        if platform is not None:
            facts["platform"] = platform
        board = self._by_address.get(fn.physfn or "")
        if board is not None and board.pci_id is not None:
            facts["board_pci_id"] = board.pci_id
            if board.subsystem_vendor and board.subsystem_device:
                facts["board_subsystem_id"] = f"{board.subsystem_vendor}:{board.subsystem_device}"
        ecc = self.nvml.ecc_enabled(fn.physfn) if self.nvml is not None and fn.physfn else None
        if ecc is not None:
            facts["ecc"] = "enabled" if ecc else "disabled"
        if metadata is not None:
            facts["nvml_metadata"] = encode(metadata)
        return VendorFacts(rules="nvidia-vgpu", facts=facts)

    def vgpu_capability(self, fn: PciFunction, type_number: int, free: int = 1) -> TypeCapability:
        """The capability of vGPU type `type_number` made on the VF `fn` (NVIDIA's SR-IOV mode)."""
        what = f"PCI function {fn.address} (vGPU type {type_number})"
        facts = Facts(type=f"nvidia-{type_number}", device_api="vfio-pci", pci_id=fn.pci_id, driver=fn.driver)
        profile = self.profile_for_function(fn)
        if profile is None:
            raise SysfsError(f"{what}: no profile describes NVIDIA SR-IOV vGPUs (devmig's nvidia-vgpu-sriov)")
        pgpu = self.nvml.pgpu_metadata(fn.physfn) if self.nvml is not None and fn.physfn else None
        with _as_found(what):
            return self._profile_function(profile, facts, what, free, self._vgpu_vendor(fn, pgpu))

    def _profile_function(
        self,
        profile: Profile,
        facts: Facts,
        what: str,
        free: int,
        vendor: VendorFacts | None = None,
        migration: MigrationSupport | None = None,
    ) -> TypeCapability:
        """A PCI function's type as a profile describes it: one model, no parameters (the driver checks none)."""
        model, version, api, _ = self._profile_parts(profile, facts, what)
        return TypeCapability(
            device_api="vfio-pci",
            type=facts.type,
            software_version=version,
            api=api,
            models={model: ModelSpec()},
            available_instances=free,
            confidence="profile",
            vendor=vendor,
            migration=migration,
        )

    def vgpu_types(self) -> list[tuple[PciFunction, int, int]]:
        """Per board (the VFs' PF) and creatable type: (a VF that can take it, the type ID, how many VFs can)."""
        found: dict[tuple[str | None, int], list[PciFunction]] = {}
        for fn in self.inv.pci:
            if fn.vgpu is not None and not fn.vgpu.current:
                for type_number in fn.vgpu.creatable:
                    found.setdefault((fn.physfn, type_number), []).append(fn)
        return [(vfs[0], type_number, len(vfs)) for (_, type_number), vfs in found.items()]

    def _function_capability(self, fn: PciFunction, what: str) -> TypeCapability:
        if fn.vgpu is not None:
            if not fn.vgpu.current:
                raise SysfsError(
                    f"{what}: carries no vGPU (nvidia/current_vgpu_type is 0); `devmig capabilities` lists the "
                    "types it can be made"
                )
            return self.vgpu_capability(fn, fn.vgpu.current)
        facts = self.function_facts(fn)
        rel = f"{fn.path}/migration_info.json"
        if self.root.exists(rel):
            # The proposal beyond mdev: a variant driver declaring the interface beside the function.
            cap = parse_document(TypeCapability, self.root.read_bytes(rel), rel)
            if cap.type != facts.type or cap.device_api != "vfio-pci":
                raise SysfsError(
                    f"{what}: migration_info.json declares {cap.device_api} type {cap.type}, but the "
                    f"function is vfio-pci type {facts.type}"
                )
            return cap.model_copy(update={"available_instances": 1})
        profile = self.profile_for_function(fn)
        if profile is not None:
            return self._profile_function(
                profile, facts, what, 1, migration=self.function_migration(profile.migration, fn)
            )
        return TypeCapability(
            device_api="vfio-pci",
            type=facts.type,
            software_version=UNVERIFIED_VERSION,
            api=self._strict_identity(facts),
            available_instances=1,
            confidence="unverified",
        )

    def capabilities(self, type_id: str | None = None) -> tuple[list[TypeCapability], list[str]]:
        """Every type this host can create (one per mdev type, one per VFIO PCI function), and the problems."""
        caps: list[TypeCapability] = []
        problems: list[str] = []
        for mtype in self.inv.types():
            if type_id is None or mtype.id == type_id:
                try:
                    caps.append(self.type_capability(mtype))
                except DevmigError as exc:
                    problems.append(str(exc))
        for fn in self.inv.pci:
            if fn.vfio and (type_id is None or type_id == self.function_facts(fn).type):
                try:
                    caps.append(self.function_capability(fn))
                except DevmigError as exc:
                    problems.append(str(exc))
        for fn, type_number, free in self.vgpu_types():
            if type_id is None or type_id == f"nvidia-{type_number}":
                try:
                    caps.append(self.vgpu_capability(fn, type_number, free))
                except DevmigError as exc:
                    problems.append(str(exc))
        return caps, problems

    # -- descriptors ---------------------------------------------------------------------------------------------

    def descriptor(self, device: Device) -> DeviceDescriptor:
        if isinstance(device, MdevDevice):
            return self.mdev_descriptor(device)
        if isinstance(device, PciFunction):
            return self.function_descriptor(device)
        assert isinstance(device, Subchannel)
        raise InputError(
            f"subchannel {device.busid}: a subchannel is a parent; describe the mdev created on it "
            "(devmig list shows its UUID)"
        )

    def mdev_type(self, device: MdevDevice) -> MdevType:
        found = self.inv.find_type(device.type or "", device.parent)
        if device.type is None or not found:
            raise SysfsError(f"mdev {device.uuid}: its type {device.type or '(unknown)'} is not readable")
        return found[0]

    def mdev_descriptor(self, device: MdevDevice) -> DeviceDescriptor:
        mtype = self.mdev_type(device)
        cap = self.type_capability(mtype)
        what, address = f"mdev {device.uuid}", {"kind": "mdev", "id": device.uuid}
        if cap.confidence == "declared":
            return self._declared_descriptor(what, device.path, cap, address)
        # A profile fixes each parameter by type (its init value); unverified documents have none.
        return _descriptor_of(cap, {n: p.init_value for n, p in cap.param_specs().items()}, what, address)

    def _declared_descriptor(
        self, what: str, path: str, cap: TypeCapability, address: dict[str, str]
    ) -> DeviceDescriptor:
        """A device whose driver declares the interface: its `migration/<param>` values, off ones left out."""
        if len(cap.models) != 1:
            raise SysfsError(f"{what}: type {cap.type} declares {len(cap.models)} models; expected one per type")
        ((_, spec),) = cap.models.items()
        params: dict[str, ParamValue] = {}
        for name, pspec in spec.params.items():
            rel = f"{path}/migration/{name}"
            text = self.root.read_optional(rel)
            if text is None:
                raise SysfsError(f"{what}: {rel} is missing, but the type declares parameter {name}")
            value = parse_param_text(pspec, text, rel)
            if pspec.off_value is None or value != pspec.off_value:
                params[name] = value
        return _descriptor_of(cap, params, what, address)

    def function_descriptor(self, fn: PciFunction) -> DeviceDescriptor:
        if not fn.vfio:
            raise InputError(
                f"PCI function {fn.address}: bound to {fn.driver or 'no driver'}, not to vfio-pci or a VFIO "
                "variant driver: it is not assignable"
            )
        cap = self.function_capability(fn)
        what, address = f"PCI function {fn.address}", {"kind": "pci", "id": fn.address}
        if cap.confidence == "declared":
            return self._declared_descriptor(what, fn.path, cap, address)
        if fn.vgpu is not None:
            # the vGPU's own NVML metadata, not the physical GPU's its type's capability carries
            vgpu = self.nvml.vgpu_metadata(fn.physfn, fn.vgpu.current) if self.nvml and fn.physfn else None
            return _descriptor_of(cap, {}, what, address, self._vgpu_vendor(fn, vgpu))
        return _descriptor_of(cap, {}, what, address)
