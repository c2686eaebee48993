"""Hypothesis strategies for the formats."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from devmig.model import DeviceDescriptor, TypeCapability

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=8)
small_ints = st.integers(-50, 50)


@st.composite
def param_specs(draw: st.DrawFn) -> dict[str, Any]:
    ptype = draw(st.sampled_from(["bool", "int", "str"]))
    allowed: list[Any] | None
    pool: list[Any]
    if ptype == "bool":
        allowed = draw(st.none() | st.lists(st.booleans(), min_size=1, max_size=2, unique=True))
        pool = allowed if allowed is not None else [True, False]
    elif ptype == "int":
        if draw(st.booleans()):
            allowed, pool = None, draw(st.lists(small_ints, min_size=1, max_size=3))
        else:
            items: list[Any] = []
            pool = []
            for lo, width in draw(st.lists(st.tuples(small_ints, st.integers(0, 5)), min_size=1, max_size=4)):
                items.append(lo if width == 0 else f"{lo}-{lo + width}")
                pool += list(range(lo, lo + width + 1))
            allowed = items
    else:
        allowed = draw(st.none() | st.lists(names, min_size=1, max_size=4, unique=True))
        pool = allowed if allowed is not None else draw(st.lists(names, min_size=1, max_size=3))
    spec: dict[str, Any] = {"type": ptype, "init_value": draw(st.sampled_from(pool))}
    if draw(st.booleans()):
        spec["off_value"] = draw(st.sampled_from(pool))
    if allowed is not None:
        spec["allowed_values"] = allowed
    return spec


@st.composite
def capability_docs(draw: st.DrawFn, model: str = "vendor-a.com/dev") -> dict[str, Any]:
    params = draw(st.dictionaries(names, param_specs(), max_size=5))
    major, minor, bugfix = draw(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 5)))
    return {
        "device_api": "vfio-pci",
        "type": draw(names),
        "software_version": f"{major}.{minor}.{bugfix}",
        "api": {"pci_id": "1eaa:0101"},
        "models": {model: {"params": params}},
    }


def source_from_init_values(cap: TypeCapability) -> DeviceDescriptor:
    """A device just created from this type: every parameter at its init value, off ones left out (RFC v3)."""
    ((model, spec),) = cap.models.items()
    params = {n: p.init_value for n, p in spec.params.items() if p.off_value is None or p.init_value != p.off_value}
    return DeviceDescriptor(
        device_api=cap.device_api,
        type=cap.type,
        model=model,
        software_version=cap.software_version,
        api=dict(cap.api),
        params=params,
    )
