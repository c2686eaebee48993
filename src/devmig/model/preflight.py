"""The answer of `devmig libvirt preflight`: every reason a domain's migration to a destination would fail, before
it starts (devmig.libvirt.preflight makes it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from devmig.model.descriptor import AddressKind, DeviceDescriptor
from devmig.model.params import ParamValue
from devmig.model.verdict import Finding, Level

#: error: the migration would fail; warning: it would not, but something is off; not-checked: devmig could not
#: tell, and the item says why
ItemSeverity = Literal["error", "warning", "not-checked"]
SEVERITIES: tuple[ItemSeverity, ...] = ("error", "warning", "not-checked")
#: where a device's descriptor came from: described on the source host now, or the domain's devmig metadata
DescriptorOrigin = Literal["live", "metadata"]


class PreflightItem(BaseModel):
    """One reason the migration would fail (error), a difference that does not block (warning), or something
    devmig could not check (not-checked)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(description="stable identifier of the check's outcome, e.g. viommu or qemu-blocker")
    severity: ItemSeverity
    object: str = Field(description="what it is about: the domain, a hostdev, libvirt, QEMU, a host's kernel")
    message: str = Field(description="one sentence for people")


class Candidate(BaseModel):
    """A type the destination publishes that can take the device, with its free instances."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    version: str
    level: Level
    free: int | None = Field(description="free instances (less the fleet's claims); null when not known")
    plan: dict[str, ParamValue] | None = Field(description="the value to write to each destination parameter")
    warnings: list[str] = Field(default_factory=list, description="codes of the check's warnings")


class Refusal(BaseModel):
    """A type the destination publishes that cannot take the device: each of the check's errors, or
    no-free-instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    version: str
    findings: list[Finding]


class DeviceReport(BaseModel):
    """One mdev or PCI hostdev of the domain, against the destination's types."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AddressKind
    address: str = Field(description="the hostdev's source address: the mdev's UUID or the function's dddd:bb:ss.f")
    alias: str | None
    descriptor: DeviceDescriptor | None = Field(description="null when the device could not be described")
    origin: DescriptorOrigin | None = Field(description="where the descriptor came from")
    target: str | None = Field(
        description="the type the device would take on the destination, every device of the domain counted "
        "against the free instances; null when none is left for it"
    )
    candidates: list[Candidate] = Field(default_factory=list, description="compatible types with room, best first")
    refused: list[Refusal] = Field(default_factory=list)


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    origin: str = Field(description="where its types were read: the fleet store, or a capabilities file")
    types: int = Field(description="how many distinct types it publishes (host types with one capability are one)")
    kernel: str | None = Field(description="its kernel release, when its inventory carries it")


class Preflight(BaseModel):
    """Whether a libvirt domain can migrate to a destination, with every reason it cannot."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Preflight")

    domain: str
    uuid: str | None
    uri: str = Field(description="the source's libvirt URI")
    host: str = Field(description="the source host the devices were read on (local, or sim:LAB/HOST)")
    destination: Destination
    blocking: bool = Field(description="true when an item is an error: the migration would fail")
    counts: dict[ItemSeverity, int] = Field(description="items by severity")
    items: list[PreflightItem] = Field(default_factory=list, description="errors first, then warnings, not-checked")
    devices: list[DeviceReport] = Field(default_factory=list)
