"""Hypothesis strategies for the formats."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from devmig.model import DeviceDescriptor, TypeCapability
from devmig.model.descriptor import API_KEY_PATTERNS, DeviceAddress

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


#: where a device is: an mdev by UUID (canonical lowercase), a PCI function by address (domain %04x, as Linux prints)
device_addresses = st.builds(DeviceAddress, kind=st.just("mdev"), id=st.uuids().map(str)) | st.builds(
    DeviceAddress,
    kind=st.just("pci"),
    id=st.builds(
        lambda d, b, s, f: f"{d:04x}:{b:02x}:{s:02x}.{f}",
        st.integers(0, 0xFFFF) | st.integers(0x10000, 0xFFFFFFFF),
        st.integers(0, 0xFF),
        st.integers(0, 0x1F),
        st.integers(0, 7),
    ),
)
#: any text a parameter value may hold: one sysfs attribute, so no newline or NUL; no lone surrogate (not text).
#: Code point ranges rather than categories or a codec: those make hypothesis build its Unicode tables first, a
#: second on a fresh checkout, which its too-slow health check counts against the first test that draws them.
value_texts = st.text(
    st.characters(max_codepoint=0xD7FF, exclude_characters="\n\x00") | st.characters(min_codepoint=0xE000),
    max_size=12,
)
free_api_keys = st.builds(
    str.__add__,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_", max_size=6),
).filter(lambda k: k not in API_KEY_PATTERNS)


@st.composite
def descriptors(draw: st.DrawFn) -> DeviceDescriptor:
    """Any valid descriptor of a vfio-pci device, with or without an address, values of every kind and text."""
    major, minor, bugfix = draw(st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)))
    return DeviceDescriptor(
        device_api="vfio-pci",
        type=draw(names),
        model=draw(st.none() | st.just("vendor-a.com/dev")),
        software_version=f"{major}.{minor}.{bugfix}",
        api={"pci_id": "1eaa:0101", **draw(st.dictionaries(free_api_keys, value_texts, max_size=2))},
        params=draw(st.dictionaries(names, st.booleans() | st.integers() | value_texts, max_size=4)),
        confidence=draw(st.sampled_from(["declared", "profile", "unverified"])),
        address=draw(st.none() | device_addresses),
    )
