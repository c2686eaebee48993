"""`baseline(capabilities)`: a device configuration every destination type accepts, as libvirt's CPU baseline.

Given the capability of one type per host (labelled, e.g. by host or file name), it finds the version floor, the
models all declare and, per parameter, the values every capability accepts, so that a VM's device created with
those values can migrate between any two of them. Whatever narrows or empties a set is reported as a conflict
naming the capabilities that exclude it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from devmig.errors import InputError
from devmig.model.baseline import Baseline, BaselineModel, BaselineParam, Conflict
from devmig.model.descriptor import TypeCapability
from devmig.model.params import ParamSpec, ParamValue, ValueSet
from devmig.model.verdict import Severity
from devmig.model.version import SoftwareVersion

#: conflict code -> severity. Errors leave no configuration that goes everywhere; warnings only narrow it.
CONFLICT_CODES: dict[str, Severity] = {
    "device-api-mismatch": "error",
    "api-mismatch": "error",
    "major-mismatch": "error",
    "type-mismatch": "error",
    "model-mismatch": "error",
    "param-type-mismatch": "error",
    "param-no-common-value": "error",
    "param-cannot-be-off": "error",
    "param-values-narrowed": "warning",
    "param-off-value-excluded": "warning",
    "param-must-be-off": "warning",
}


def _fmt(values: Iterable[ParamValue] | None) -> str:
    return (
        "any value" if values is None else ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    )


def _set_text(values: ValueSet) -> str:
    text = _fmt(values.allowed_values())
    if values.exclude:
        text += f" except {_fmt(values.excluded_values())}"
    return text


@dataclass
class _Builder:
    caps: dict[str, TypeCapability]
    conflicts: list[Conflict] = field(default_factory=list)

    def conflict(self, code: str, fld: str, excluded_by: Iterable[str], message: str) -> None:
        severity = CONFLICT_CODES[code]
        self.conflicts.append(
            Conflict(code=code, severity=severity, field=fld, excluded_by=list(excluded_by), message=message)
        )

    def agree(self, code: str, fld: str, values: Mapping[str, str | None]) -> str | None:
        """The value all labels share; otherwise an error naming who differs from the most common value."""
        groups: dict[str | None, list[str]] = {}
        for label, value in values.items():
            groups.setdefault(value, []).append(label)
        if len(groups) == 1:
            return next(iter(groups))
        common = max(groups, key=lambda v: len(groups[v]))
        dissent = [label for v, labels in groups.items() if v != common for label in labels]
        detail = "; ".join(f"{v if v is not None else 'missing'} on {', '.join(ls)}" for v, ls in groups.items())
        self.conflict(code, fld, dissent, f"{fld} differs: {detail}")
        return None

    def version_floor(self) -> SoftwareVersion | None:
        majors = {label: str(cap.software_version.major) for label, cap in self.caps.items()}
        if self.agree("major-mismatch", "software_version", majors) is None:
            return None
        return min(cap.software_version for cap in self.caps.values())

    def common_models(self) -> list[str]:
        declaring = {label for label, cap in self.caps.items() if cap.models}
        if not declaring:
            self.agree("type-mismatch", "type", {label: cap.type for label, cap in self.caps.items()})
            return []  # no model anywhere: nothing more to compare
        if declaring != set(self.caps):
            missing = [label for label in self.caps if label not in declaring]
            self.conflict(
                "model-mismatch",
                "model",
                missing,
                f"{', '.join(missing)} declare no model while {', '.join(sorted(declaring))} do",
            )
            return []
        first = next(iter(self.caps.values()))
        common = [m for m in first.models if all(m in cap.models for cap in self.caps.values())]
        if not common:
            every = dict.fromkeys(m for cap in self.caps.values() for m in cap.models)
            detail = "; ".join(
                f"{m} lacking on {', '.join(lb for lb, cap in self.caps.items() if m not in cap.models)}" for m in every
            )
            self.conflict("model-mismatch", "model", list(self.caps), f"no model is common to all: {detail}")
        return common

    def param(self, model: str, name: str) -> BaselineParam | None:
        specs: dict[str, ParamSpec] = {}
        for label, cap in self.caps.items():
            spec = cap.models[model].params.get(name)
            if spec is not None:
                specs[label] = spec
        fld = f"models[{model}].params.{name}"
        ptype = self.agree("param-type-mismatch", fld, {label: s.type for label, s in specs.items()})
        if ptype is None:
            return None
        offs = {label: s.off_value for label, s in specs.items()}
        common_off = next(iter(offs.values())) if len(set(offs.values())) == 1 else None
        if len(specs) < len(self.caps):
            return self._partial(fld, specs, offs, common_off)
        return self._everywhere(fld, name, specs, offs, common_off)

    def _partial(
        self,
        fld: str,
        specs: dict[str, ParamSpec],
        offs: dict[str, ParamValue | None],
        common_off: ParamValue | None,
    ) -> BaselineParam | None:
        """A parameter only some types have: a device may migrate everywhere only with it switched off."""
        absent = [label for label in self.caps if label not in specs]
        stuck = [label for label, off in offs.items() if off is None]
        if stuck:
            self.conflict(
                "param-cannot-be-off",
                fld,
                stuck + absent,
                f"{fld} is absent on {', '.join(absent)}, so it must be off, "
                f"but {', '.join(stuck)} cannot switch it off",
            )
            return None
        self.conflict(
            "param-must-be-off",
            fld,
            absent,
            f"{fld} is absent on {', '.join(absent)}: a device must keep it switched off",
        )
        spec = next(iter(specs.values()))
        off_values = sorted({off for off in offs.values() if off is not None}, key=str)
        return BaselineParam(type=spec.type, allowed_values=off_values, off_value=common_off, must_be_off=True)

    def _everywhere(
        self,
        fld: str,
        name: str,
        specs: dict[str, ParamSpec],
        offs: dict[str, ParamValue | None],
        common_off: ParamValue | None,
    ) -> BaselineParam | None:
        sets = {label: spec.value_set() for label, spec in specs.items()}
        result = _intersect(sets.values())
        for label, own in sets.items() if len(sets) > 1 else ():
            others = _intersect(s for lb, s in sets.items() if lb != label)
            if others.intersect(own) != others:
                self.conflict(
                    "param-values-narrowed",
                    fld,
                    [label],
                    f"{label} narrows {name} to {_set_text(own)} (the others accept {_set_text(others)})",
                )
        # A value that is the off value somewhere is left out of a device's list; then every type must be able
        # to switch the parameter off, or that value cannot go everywhere.
        stuck = [label for label, off in offs.items() if off is None]
        if stuck:
            off_values = [off for off in offs.values() if off is not None and off in result]
            if off_values:
                result = result.without(off_values)
                self.conflict(
                    "param-off-value-excluded",
                    fld,
                    stuck,
                    f"{name}={_fmt(off_values)} means 'off' on some types but {', '.join(stuck)} cannot switch "
                    f"{name} off, so that value is left out",
                )
        if result.is_empty:
            detail = "; ".join(f"{label} accepts {_set_text(s)}" for label, s in sets.items())
            self.conflict(
                "param-no-common-value",
                fld,
                list(sets),
                f"no value of {name} is accepted everywhere: {detail}",
            )
            return None
        spec = next(iter(specs.values()))
        return BaselineParam(
            type=spec.type,
            allowed_values=result.allowed_values(),
            excluded_values=result.excluded_values(),
            off_value=common_off,
        )


def _intersect(sets: Iterable[ValueSet]) -> ValueSet:
    out: ValueSet | None = None
    for s in sets:
        out = s if out is None else out.intersect(s)
    assert out is not None, "intersection of no sets"
    return out


def _labelled(
    capabilities: Mapping[str, TypeCapability] | Sequence[TypeCapability],
) -> dict[str, TypeCapability]:
    if isinstance(capabilities, Mapping):
        return dict(capabilities)
    return {f"#{i}:{cap.type}": cap for i, cap in enumerate(capabilities)}


def baseline(capabilities: Mapping[str, TypeCapability] | Sequence[TypeCapability]) -> Baseline:
    """The common ground of several destination types (labelled by a mapping, or numbered when a sequence)."""
    caps = _labelled(capabilities)
    if not caps:
        raise InputError("baseline: expected at least one capability, found none")
    b = _Builder(caps)
    device_api = b.agree("device-api-mismatch", "device_api", {lb: c.device_api for lb, c in caps.items()})
    keys = sorted({key for cap in caps.values() for key in cap.api})
    api = {key: b.agree("api-mismatch", f"api.{key}", {lb: c.api.get(key) for lb, c in caps.items()}) for key in keys}
    floor = b.version_floor()
    models: dict[str, BaselineModel] = {}
    for model in b.common_models():
        names = dict.fromkeys(n for cap in caps.values() for n in cap.models[model].params)
        models[model] = BaselineModel(params={n: p for n in names if (p := b.param(model, n)) is not None})
    return Baseline(
        usable=not any(c.severity == "error" for c in b.conflicts),
        device_api=device_api,
        api={k: v for k, v in api.items() if v is not None},
        software_version=floor,
        types={label: cap.type for label, cap in caps.items()},
        models=models,
        conflicts=b.conflicts,
    )
