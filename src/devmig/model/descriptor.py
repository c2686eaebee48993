"""The two documents devmig reasons about.

* `TypeCapability`: what a destination can create, a device type's `migration_info.json` (Stefan Hajnoczi's RFC v3
  plus the 2020 thread's `device_api`, `type`, `software_version` and device-API identity).
* `DeviceDescriptor`: one source device instance, with its migration parameter list as the RFC defines it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt, model_validator
from pydantic.config import JsonDict

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

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_identity(self.device_api, self.api, self.confidence)
        for value in self.params.values():
            check_value_text(value)
        return self
