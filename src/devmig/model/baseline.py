"""The result of a baseline across several destination types, as libvirt's CPU baseline."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from devmig.model.params import ParamType, ParamValue
from devmig.model.verdict import Severity
from devmig.model.version import VersionField


class BaselineParam(BaseModel):
    """The values of one parameter that every capability accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ParamType
    allowed_values: list[ParamValue] | None = Field(
        description="values every capability accepts (int ranges 'lo-hi'); null: any value of the type"
    )
    excluded_values: list[ParamValue] = Field(default_factory=list, description="values taken out of an unbounded set")
    off_value: ParamValue | None = Field(
        default=None, description="the off value, when every capability that has the parameter agrees on one"
    )
    must_be_off: bool = Field(
        default=False,
        description="the parameter exists on only some capabilities: a device must keep it switched off",
    )


class BaselineModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[str, BaselineParam] = Field(default_factory=dict)


class Conflict(BaseModel):
    """Why the baseline is narrower than one capability, or empty: which capabilities exclude what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    severity: Severity = Field(description="error: no device can migrate across all; warning: values removed")
    field: str
    excluded_by: list[str] = Field(description="labels of the capabilities that exclude it")
    message: str


class Baseline(BaseModel):
    """A device configuration that keeps a VM migratable across all the given destination types."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Baseline")

    usable: bool = Field(description="true when a device configuration exists that every capability accepts")
    device_api: str | None = None
    api: dict[str, str] = Field(default_factory=dict)
    software_version: VersionField | None = Field(
        default=None,
        description="the version floor: a device must not be newer in minor than this to go everywhere",
    )
    types: dict[str, str] = Field(default_factory=dict, description="label -> type of each capability")
    models: dict[str, BaselineModel] = Field(default_factory=dict)
    conflicts: list[Conflict] = Field(default_factory=list)
