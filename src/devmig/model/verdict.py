"""The answer of a compatibility check, in the vocabulary of libvirt's CPU compare."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from devmig.model.params import ParamValue

Severity = Literal["error", "warning"]
Level = Literal["identical", "compatible", "incompatible"]


class Finding(BaseModel):
    """One rule that failed (error) or noticed a difference that does not block migration (warning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(description="stable identifier of the rule outcome, e.g. param-value-not-allowed")
    severity: Severity
    field: str = Field(description="the field concerned, e.g. software_version or params.pv_mode")
    source: JsonValue = Field(default=None, description="the source's value, when it has one")
    destination: JsonValue = Field(default=None, description="the destination's value or allowed values")
    message: str = Field(description="one sentence for people")


class Verdict(BaseModel):
    """Whether a source device can migrate to a destination type, with every reason."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Verdict")

    compatible: bool
    level: Level = Field(
        description="identical: no difference at all; compatible: differences that do not block; "
        "incompatible: at least one error"
    )
    findings: list[Finding] = Field(default_factory=list)
    plan: dict[str, ParamValue] | None = Field(
        default=None,
        description="when compatible: the value to write to each destination parameter, once each, in order",
    )

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]
