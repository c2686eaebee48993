"""The compatibility rules: one function per concern, each yielding findings.

The codes are stable (programs match on them); `CODES` is the catalogue, documented in docs/formats.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from devmig.compat import nvidia
from devmig.compat.migration import cannot_dirty_track, cannot_migrate, lacks_p2p
from devmig.model.descriptor import DeviceDescriptor, ModelSpec, TypeCapability
from devmig.model.migration import MigrationSupport
from devmig.model.params import ParamSpec, has_type, param_type_name
from devmig.model.verdict import Finding, Severity

#: code -> (severity, what it means). Errors block migration; warnings are differences that do not.
CODES: dict[str, tuple[Severity, str]] = {
    "unverified": (
        "warning",
        "a side was described without a driver interface or profile: only strict identity was compared",
    ),
    "device-api-mismatch": ("error", "the device APIs differ (vfio-pci, vfio-ccw, ...)"),
    "api-mismatch": ("error", "a device-API identity value differs, or is missing on one side"),
    "model-mismatch": ("error", "the source's model is not a model of the destination type"),
    "type-mismatch": ("error", "neither side declares a model and the types differ"),
    "type-differs": ("warning", "the model is the same but the type differs (as gfx-4GB and gfx-8GB)"),
    "major-mismatch": ("error", "the major versions differ"),
    "minor-older": ("error", "the destination's minor version is older than the source's"),
    "minor-newer": ("warning", "the destination's minor version is newer than the source's"),
    "bugfix-differs": ("warning", "only the bugfix numbers differ; this never blocks"),
    "param-unknown": ("error", "the source lists a parameter the destination does not know"),
    "param-type-mismatch": ("error", "the source's value is not of the destination parameter's type"),
    "param-value-not-allowed": ("error", "the source's value is not among the destination's allowed values"),
    "param-cannot-be-off": (
        "error",
        "the source does not list a parameter (it is off there) but the destination cannot switch it off",
    ),
    "param-not-writable": (
        "error",
        "an mdevctl definition writes a migration/<param> attribute the type's driver does not have (devmig knows the "
        "type from a profile: the parameter is fixed by the type)",
    ),
    "migration-unsupported": (
        "error",
        "a side's driver implements no VFIO migration (no migration flags; nvgrace_gpu_vfio_pci, or xe_vfio_pci on "
        "a PF that does not enable it)",
    ),
    "no-dirty-tracking": (
        "error",
        "the destination tracks no DMA for a device that does DMA: neither the driver's DMA logging nor the host "
        "IOMMU's dirty tracking (QEMU blocks the VM's migration there)",
    ),
    "no-p2p": (
        "error",
        "the VM has more than one VFIO device and a side's driver lacks P2P: QEMU migrates several only when all "
        "have it",
    ),
    "destination-not-prepared": (
        "error",
        "an existing destination device holds another value than the write plan's (check_device, at migration)",
    ),
    "vendor-rules-mismatch": ("error", "the sides' vendor facts are for different rule sets, or one side has none"),
    "vendor-fact-mismatch": ("error", "a vendor fact of a rule set devmig does not know differs (compared strictly)"),
    **nvidia.CODES,
}


@dataclass(frozen=True, slots=True)
class Context:
    source: DeviceDescriptor
    destination: TypeCapability
    #: the destination's parameter table for the source's model; None when the models do not match
    params: dict[str, ParamSpec] | None
    #: NVML's own verdict on the pair, when the caller could ask NVML (devmig.host.nvml)
    nvml: nvidia.NvmlAnswer | None = None
    #: the VFIO devices of the source's VM, this one included (1 when the VM is not known)
    devices: int = 1

    @classmethod
    def of(
        cls,
        source: DeviceDescriptor,
        destination: TypeCapability,
        nvml: nvidia.NvmlAnswer | None = None,
        devices: int = 1,
    ) -> Context:
        spec: ModelSpec | None
        if source.model is None:
            spec = ModelSpec() if not destination.models else None
        else:
            spec = destination.models.get(source.model)
        return cls(source, destination, None if spec is None else dict(spec.params), nvml, devices)


def show(value: object) -> str:
    """A parameter value in a message, spelled as JSON spells it (true, 64, 'ppgtt')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def finding(code: str, field: str, message: str, source: Any = None, destination: Any = None) -> Finding:
    return Finding(
        code=code,
        severity=CODES[code][0],
        field=field,
        source=source,
        destination=destination,
        message=message,
    )


def confidence(ctx: Context) -> Iterator[Finding]:
    for side, doc in (("source", ctx.source), ("destination", ctx.destination)):
        if doc.confidence == "unverified":
            yield finding(
                "unverified",
                "confidence",
                f"the {side} was described without a migration interface or a devmig profile; only strict "
                "identity of what is known was compared, and the driver may still refuse the state",
                ctx.source.confidence,
                ctx.destination.confidence,
            )


def device_api(ctx: Context) -> Iterator[Finding]:
    src, dst = ctx.source.device_api, ctx.destination.device_api
    if src != dst:
        yield finding(
            "device-api-mismatch",
            "device_api",
            f"the source is a {src} device, the destination type is {dst}",
            src,
            dst,
        )


def api_identity(ctx: Context) -> Iterator[Finding]:
    src, dst = ctx.source.api, ctx.destination.api
    for key in sorted(src.keys() | dst.keys()):
        a, b = src.get(key), dst.get(key)
        if a == b:
            continue
        if a is None or b is None:
            where = "source" if a is None else "destination"
            message = f"api.{key} is missing on the {where}; the identities must be the same"
        else:
            message = f"api.{key} differs: source {a}, destination {b}"
        yield finding("api-mismatch", f"api.{key}", message, a, b)


def model_and_type(ctx: Context) -> Iterator[Finding]:
    src, dst = ctx.source, ctx.destination
    models = list(dst.models)
    if src.model is None:
        if models:
            yield finding(
                "model-mismatch",
                "model",
                f"the source declares no model; destination type {dst.type} declares {', '.join(models)}",
                None,
                models,
            )
        if src.type != dst.type:
            yield finding(
                "type-mismatch",
                "type",
                f"no model is declared, so the types must be equal: source {src.type}, destination {dst.type}",
                src.type,
                dst.type,
            )
        return
    if src.model not in dst.models:
        declared = f"declares {', '.join(models)}" if models else "declares no model"
        yield finding(
            "model-mismatch",
            "model",
            f"the source is model {src.model}; destination type {dst.type} {declared}",
            src.model,
            models,
        )
    elif src.type != dst.type:
        yield finding(
            "type-differs",
            "type",
            f"the type differs (source {src.type}, destination {dst.type}) but both are model {src.model}",
            src.type,
            dst.type,
        )


def version(ctx: Context) -> Iterator[Finding]:
    src, dst = ctx.source.software_version, ctx.destination.software_version
    a, b = str(src), str(dst)
    if src.major != dst.major:
        yield finding(
            "major-mismatch",
            "software_version",
            f"major versions differ: source {a}, destination {b}; no migration across majors",
            a,
            b,
        )
    elif dst.minor < src.minor:
        yield finding(
            "minor-older",
            "software_version",
            f"the destination {b} is older than the source {a}; minor versions migrate forward only",
            a,
            b,
        )
    elif dst.minor > src.minor:
        yield finding("minor-newer", "software_version", f"the destination {b} is newer than the source {a}", a, b)
    elif dst.bugfix != src.bugfix:
        yield finding(
            "bugfix-differs", "software_version", f"bugfix versions differ: source {a}, destination {b}", a, b
        )


def source_params(ctx: Context) -> Iterator[Finding]:
    if ctx.params is None:
        return  # the model rule already reported why the parameters cannot be compared
    for name, value in ctx.source.params.items():
        field = f"params.{name}"
        spec = ctx.params.get(name)
        if spec is None:
            yield finding(
                "param-unknown",
                field,
                f"the source has parameter {name}={show(value)}; the destination does not know {name}",
                value,
            )
        elif not has_type(spec.type, value):
            yield finding(
                "param-type-mismatch",
                field,
                f"parameter {name} is {param_type_name(value)} {show(value)} on the source, "
                f"{spec.type} on the destination",
                value,
                spec.type,
            )
        elif not spec.allows(value):
            # ranges ("1-8") and strings as written; booleans as JSON spells them
            allowed = ", ".join(show(v) if isinstance(v, bool) else str(v) for v in spec.allowed_values or [])
            yield finding(
                "param-value-not-allowed",
                field,
                f"parameter {name}={show(value)} is not allowed at the destination (allowed: {allowed})",
                value,
                spec.allowed_values,
            )


def destination_params(ctx: Context) -> Iterator[Finding]:
    if ctx.params is None:
        return
    for name, spec in ctx.params.items():
        if name not in ctx.source.params and not spec.can_be_off:
            yield finding(
                "param-cannot-be-off",
                f"params.{name}",
                f"the source does not list {name} (it is off there) and the destination cannot switch {name} off",
                None,
                spec.init_value,
            )


def _strict_facts(src: dict[str, str], dst: dict[str, str]) -> Iterator[Finding]:
    for key in sorted(src.keys() | dst.keys()):
        a, b = src.get(key), dst.get(key)
        if a != b:
            message = f"vendor fact {key}: source {a or '(missing)'}, destination {b or '(missing)'}"
            yield finding("vendor-fact-mismatch", f"vendor.facts.{key}", message, a, b)


#: rule set -> its rules over (source facts, destination facts, NVML's answer)
VENDOR_RULES: dict[str, Callable[[dict[str, str], dict[str, str], nvidia.NvmlAnswer | None], Iterator[Finding]]] = {
    nvidia.RULES_ID: nvidia.rules,
}


def vendor(ctx: Context) -> Iterator[Finding]:
    src, dst = ctx.source.vendor, ctx.destination.vendor
    if src is None and dst is None:
        return
    if src is None or dst is None or src.rules != dst.rules:
        a, b = src.rules if src else None, dst.rules if dst else None
        yield finding(
            "vendor-rules-mismatch",
            "vendor.rules",
            f"the source's vendor facts are for {a or 'no rule set'}, the destination's for {b or 'no rule set'}",
            a,
            b,
        )
        return
    rules = VENDOR_RULES.get(src.rules)
    yield from (
        _strict_facts(dict(src.facts), dict(dst.facts))
        if rules is None
        else rules(dict(src.facts), dict(dst.facts), ctx.nvml)
    )


def _sides(ctx: Context) -> tuple[tuple[str, MigrationSupport | None], ...]:
    return (("source", ctx.source.migration), ("destination", ctx.destination.migration))


def migration_support(ctx: Context) -> Iterator[Finding]:
    for side, support in _sides(ctx):
        if cannot_migrate(support):
            yield finding(
                "migration-unsupported",
                "migration.flags",
                f"the {side}'s driver implements no VFIO migration (it has no migration flags)",
                ctx.source.migration.flags if ctx.source.migration else None,
                ctx.destination.migration.flags if ctx.destination.migration else None,
            )


def dirty_tracking(ctx: Context) -> Iterator[Finding]:
    src, dst = ctx.source.migration, ctx.destination.migration
    if cannot_dirty_track(src, dst):
        yield finding(
            "no-dirty-tracking",
            "migration.dirty_tracking",
            f"the destination cannot track the pages the device's DMA dirties (its driver has no DMA logging and "
            f"the host IOMMU has no dirty tracking), but the device does DMA (source: "
            f"{src.dirty_tracking if src and src.dirty_tracking else 'not known'})",
            src.dirty_tracking if src else None,
            "none",
        )


def p2p(ctx: Context) -> Iterator[Finding]:
    for side, support in _sides(ctx):
        if support is not None and support.flags and lacks_p2p(support.bits, ctx.devices):
            yield finding(
                "no-p2p",
                "migration.flags",
                f"the VM has {ctx.devices} VFIO devices and the {side}'s driver lacks P2P (flags: "
                f"{', '.join(support.flags)}): QEMU migrates several only when all have it",
                ctx.source.migration.flags if ctx.source.migration else None,
                ctx.destination.migration.flags if ctx.destination.migration else None,
            )


Rule = Callable[[Context], Iterator[Finding]]

#: Every rule runs; all findings are reported, not only the first.
RULES: tuple[Rule, ...] = (
    confidence,
    device_api,
    api_identity,
    model_and_type,
    version,
    source_params,
    destination_params,
    vendor,
    migration_support,
    dirty_tracking,
    p2p,
)
