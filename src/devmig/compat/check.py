"""`check(source, destination) -> Verdict`: every rule, every finding; and `plan_params`, the writes it implies."""

from __future__ import annotations

from devmig.compat.nvidia import NvmlAnswer
from devmig.compat.plan import write_plan
from devmig.compat.rules import RULES, Context, finding, show
from devmig.errors import IncompatibleError
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.params import ParamValue
from devmig.model.verdict import Level, Verdict


def check(
    source: DeviceDescriptor, destination: TypeCapability, *, nvml: NvmlAnswer | None = None, devices: int = 1
) -> Verdict:
    """Can `source` migrate to a new device of type `destination`, in a VM with `devices` VFIO devices (1 when the
    VM is not known)? Pure: no I/O. `nvml` is NVML's own answer on the pair, when the caller could ask it
    (devmig.host.nvml): it adds NVML's verdict to NVIDIA's documented rules."""
    ctx = Context.of(source, destination, nvml, devices)
    findings = [f for rule in RULES for f in rule(ctx)]
    compatible = not any(f.severity == "error" for f in findings)
    level: Level = "incompatible" if not compatible else ("compatible" if findings else "identical")
    plan = write_plan(ctx.params, source.params) if compatible and ctx.params is not None else None
    return Verdict(compatible=compatible, level=level, findings=findings, plan=plan)


def check_device(source: DeviceDescriptor, destination: TypeCapability, device: DeviceDescriptor) -> Verdict:
    """Can `source`'s state load into the existing destination `device` of type `destination`? The type must be
    compatible and every parameter of the write plan must already hold its planned value on the device (devmig
    prepare wrote them); a parameter that does not is an error naming both values. Pure: no I/O."""
    verdict = check(source, destination)
    if not verdict.compatible or verdict.plan is None:
        return verdict
    unprepared = [
        finding(
            "destination-not-prepared",
            f"params.{name}",
            f"the destination device has {name}={show(device.params.get(name))}, the source needs {show(value)} "
            "(devmig prepare writes it)",
            value,
            device.params.get(name),
        )
        for name, value in verdict.plan.items()
        if name in device.params and device.params[name] != value
    ]
    if not unprepared:
        return verdict
    findings = verdict.findings + unprepared
    return Verdict(compatible=False, level="incompatible", findings=findings, plan=None)


def plan_params(source: DeviceDescriptor, destination: TypeCapability) -> dict[str, ParamValue]:
    """The value to write to each destination parameter, in the destination's declaration order.

    Raises IncompatibleError, carrying the verdict, when the source cannot migrate to the destination.
    """
    verdict = check(source, destination)
    if not verdict.compatible or verdict.plan is None:
        reasons = "; ".join(f.message for f in verdict.errors)
        raise IncompatibleError(f"no parameter plan for {destination.type}: {reasons}", verdict)
    return verdict.plan
