"""The two documents devmig reasons about.

* `TypeCapability`: what a destination can create, a device type's `migration_info.json` (Stefan Hajnoczi's RFC v3
  plus the 2020 thread's `device_api`, `type`, `software_version` and device-API identity).
* `DeviceDescriptor`: one source device instance, with its migration parameter list as the RFC defines it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from devmig.model.migration import MigrationSupport
from devmig.model.params import ParamName, ParamSpec, ParamValue, check_value_text
from devmig.model.version import VersionField

#: The kernel's VFIO_DEVICE_API_*_STRING values, with the `api` identity keys each requires.
DEVICE_APIS: dict[str, tuple[str, ...]] = {
    "vfio-pci": ("pci_id",),
    "vfio-ccw": ("subchannel_type",),
    "vfio-ap": (),
    "vfio-platform": (),
    "vfio-amba": (),
    # not VFIO: a vDPA device reaches the guest as a virtio device of this class (devmig.host.vdpa)
    "vdpa": ("class",),
}

#: Identity keys with a known spelling (as sysfs shows them); other keys are free strings.
API_KEY_PATTERNS: dict[str, str] = {
    "pci_id": r"^[0-9a-f]{4}:[0-9a-f]{4}$",
    "subchannel_type": r"^[0-9a-f]{1,2}$",
    "class": r"^(net|block)$",
}
_API_KEY_RES = {key: re.compile(pattern) for key, pattern in API_KEY_PATTERNS.items()}
_API_KEY_EXPECTED = {
    "pci_id": "'vvvv:dddd' in lowercase hex (vendor:device)",
    "subchannel_type": "the subchannel type in lowercase hex, as sysfs shows it (0 for I/O)",
    "class": "a vdpa class as iproute2's vdpa names it: net or block",
}


def _known_device_api(value: str) -> str:
    if value not in DEVICE_APIS:
        raise ValueError(f"expected one of {', '.join(DEVICE_APIS)}, found {value!r}")
    return value


#: A device's own address on the host that described it, by kind, as the kernel names it in sysfs: an mdev's UUID
#: in canonical lowercase form, a PCI function's `domain:bus:slot.function` in lowercase hex (the domain `%04x`, so
#: more digits only above ffff, as VMD domains have).
ADDRESS_PATTERNS: dict[str, str] = {
    "mdev": r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "pci": r"^([0-9a-f]{4}|[1-9a-f][0-9a-f]{4,7}):[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$",
}
_ADDRESS_RES = {kind: re.compile(pattern) for kind, pattern in ADDRESS_PATTERNS.items()}
_ADDRESS_EXPECTED = {
    "mdev": "a UUID in canonical lowercase form (8-4-4-4-12 hex digits, as 6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6)",
    "pci": "a PCI address dddd:bb:ss.f in lowercase hex (as 0000:3b:00.2; slot 00-1f, function 0-7)",
}
AddressKind = Literal["mdev", "pci"]
_ADDRESS_KINDS: tuple[AddressKind, ...] = ("mdev", "pci")


def address_kind(text: str) -> AddressKind | None:
    """Which kind of device address `text` is in its canonical form (the two forms never overlap), or None."""
    return next((kind for kind in _ADDRESS_KINDS if _ADDRESS_RES[kind].fullmatch(text)), None)


def _address_schema_extra(schema: JsonDict) -> None:
    schema["allOf"] = [
        {"if": {"properties": {"kind": {"const": kind}}}, "then": {"properties": {"id": {"pattern": pattern}}}}
        for kind, pattern in ADDRESS_PATTERNS.items()
    ]


class DeviceAddress(BaseModel):
    """Where the described device is on the host that described it: what libvirt's `<hostdev><source><address>`
    names, and the source id of Nova's mapping. Never part of a compatibility decision."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_address_schema_extra)

    kind: AddressKind = Field(description="mdev: a mediated device, by UUID; pci: a PCI function, by address")
    id: str = Field(description="the mdev's UUID or the function's dddd:bb:ss.f, canonical lowercase")

    @field_validator("id")
    @classmethod
    def _canonical(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind in _ADDRESS_RES and not _ADDRESS_RES[kind].fullmatch(value):
            raise ValueError(f"expected {_ADDRESS_EXPECTED[kind]} for kind {kind}, found {value[:60]!r}")
        return value


MODEL_PATTERN = r"^[^\s/]+(/[^\s/]+)+$"
TYPE_PATTERN = r"^[^\s/]+$"

ModelName = Annotated[str, Field(pattern=MODEL_PATTERN, description="'<domain>/<path>', e.g. vendor-a.com/my-nic")]
TypeName = Annotated[str, Field(pattern=TYPE_PATTERN, description="the mdev type id, or a device signature")]
DeviceApi = Annotated[
    str,
    AfterValidator(_known_device_api),
    Field(
        json_schema_extra={"enum": list(DEVICE_APIS)},
        description="the kernel's VFIO_DEVICE_API_*_STRING, or vdpa for a vDPA device",
    ),
]
ApiKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


#: How much a document can be trusted. "declared": the driver's own migration interface; "profile": devmig's
#: shipped knowledge of a driver; "unverified": neither, so only strict identity of everything known is compared.
Confidence = Literal["declared", "profile", "unverified"]


def _check_identity(device_api: str, api: dict[str, str], confidence: Confidence) -> None:
    for key in DEVICE_APIS[device_api] if confidence != "unverified" else ():
        if key not in api:
            raise ValueError(f"api.{key} is required for device_api {device_api} ({_API_KEY_EXPECTED[key]})")
    for key, value in api.items():
        pattern = _API_KEY_RES.get(key)
        if pattern is not None and not pattern.fullmatch(value):
            raise ValueError(f"api.{key} must be {_API_KEY_EXPECTED[key]}, found {value!r}")


def _api_schema_extra(schema: JsonDict) -> None:
    props = schema.get("properties")
    api = props.get("api") if isinstance(props, dict) else None
    if isinstance(api, dict):
        api["properties"] = {key: {"type": "string", "pattern": p} for key, p in API_KEY_PATTERNS.items()}
    schema["allOf"] = [
        {
            "if": {"properties": {"device_api": {"const": api}, "confidence": {"not": {"const": "unverified"}}}},
            "then": {"properties": {"api": {"required": list(keys)}}, "required": ["api"]},
        }
        for api, keys in DEVICE_APIS.items()
        if keys
    ]


class VendorFacts(BaseModel):
    """Facts a vendor's own migration rules compare, each by that vendor's documented rule (NVIDIA: driver versions
    per platform, ECC, the board), rather than by strict identity as `api` is. `rules` names the rule set
    (devmig.compat.vendor); a rule set devmig does not know compares every fact for equality."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="the rule set that compares the facts: nvidia-vgpu")
    facts: dict[ApiKey, str] = Field(default_factory=dict, description="fact -> value, as the host showed it")


class ModelSpec(BaseModel):
    """One device model of a type, with its migration parameters in declaration order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[ParamName, ParamSpec] = Field(default_factory=dict)


class TypeCapability(BaseModel):
    """A destination device type: its `migration_info.json`."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_api_schema_extra, title="TypeCapability")

    device_api: DeviceApi
    type: TypeName
    software_version: VersionField
    api: dict[ApiKey, str] = Field(default_factory=dict, description="device-API identity, as sysfs shows it")
    models: dict[ModelName, ModelSpec] = Field(
        default_factory=dict, description="one entry per model; the RFC expects one model per type"
    )
    available_instances: NonNegativeInt | None = Field(
        default=None, description="free instances of this type at the time of reading, when known"
    )
    confidence: Confidence = Field(
        default="declared",
        description="declared: the driver's migration_info.json; profile: devmig's knowledge of the driver; "
        "unverified: neither (strict identity only, identity keys may be missing)",
    )
    vendor: VendorFacts | None = Field(
        default=None, description="facts the vendor's own rules compare (absent: none); see VendorFacts"
    )
    migration: MigrationSupport | None = Field(
        default=None, description="the driver's VFIO migration flags and dirty tracking on this host, when known"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_identity(self.device_api, self.api, self.confidence)
        return self

    def param_specs(self) -> dict[str, ParamSpec]:
        """The parameters of its models by name, in declaration order (the RFC expects one model per type)."""
        return {name: spec for model in self.models.values() for name, spec in model.params.items()}


class DeviceDescriptor(BaseModel):
    """One source device instance and its migration parameter list.

    `params` holds every parameter whose value differs from its `off_value` in the source type's own capability,
    plus every parameter that has no `off_value`; parameters that are off are left out (RFC v3).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra=_api_schema_extra, title="DeviceDescriptor"
    )

    device_api: DeviceApi
    type: TypeName
    model: ModelName | None = Field(default=None, description="absent when the type declares no model")
    software_version: VersionField
    api: dict[ApiKey, str] = Field(default_factory=dict, description="device-API identity, as sysfs shows it")
    params: dict[ParamName, ParamValue] = Field(default_factory=dict)
    confidence: Confidence = Field(
        default="declared",
        description="declared: the driver's migration interface; profile: devmig's knowledge of the driver; "
        "unverified: neither (strict identity only, identity keys may be missing)",
    )
    vendor: VendorFacts | None = Field(
        default=None, description="facts the vendor's own rules compare (absent: none); see VendorFacts"
    )
    address: DeviceAddress | None = Field(
        default=None,
        description="the device's own address on the host that described it (absent: not known); where it is, "
        "never what it is: compatibility ignores it",
    )
    migration: MigrationSupport | None = Field(
        default=None, description="the driver's VFIO migration flags and dirty tracking on its host, when known"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_identity(self.device_api, self.api, self.confidence)
        for value in self.params.values():
            check_value_text(value)
        return self
