"""mdevctl's JSON, byte for byte: `mdevctl types --dumpjson` and `mdevctl list --dumpjson` (Debian's 1.2.0).

Tools that parse mdevctl (libvirt does) can run devmig instead. The shapes and rules were taken from mdevctl
1.2.0's own output on the same trees (tests/host/test_mdevctl_peer.py compares them): one object of all parents
in a list, parents and types sorted by name, devices sorted by UUID, pretty JSON with two-space indents and a final
newline, `name` and `description` only when not empty after trimming, newlines in a description turned into ", ".

Where mdevctl fails the whole command on one bad entry, devmig leaves that entry out (and warns on stderr).
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Iterable
from typing import Any

from devmig.host.devices import MdevDevice, MdevParent
from devmig.host.sysfs import Sysfs, SysfsError

#: Rust's char::is_whitespace, which mdevctl's trim() uses (Python's strip() also drops \x1c-\x1f).
_RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
MDEVCTL_CONFIG_DIR = "etc/mdevctl.d"
#: serde_json's nesting limit (arrays and objects together): mdevctl cannot parse a config nested any deeper
_SERDE_MAX_DEPTH = 127
#: Left in a str only by a lone surrogate escape such as \ud800 (json.loads joins pairs); serde_json refuses it
_SURROGATE = re.compile("[\ud800-\udfff]")
_CANONICAL_UUID = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


#: a str as _dump writes it (json's own encoder for ensure_ascii=False)
_string = json.encoder.encode_basestring


def _trim(text: str) -> str:
    return text.strip(_RUST_WHITESPACE)


def types_dumpjson(parents: Iterable[MdevParent]) -> str:
    out: dict[str, list[dict[str, Any]]] = {}
    for parent in parents:
        if not parent.types_dir:
            continue
        entries = []
        for mtype in sorted(parent.types, key=lambda t: t.id):
            if mtype.available_instances is None or mtype.device_api is None:
                continue  # mdevctl would fail the whole command here; devmig warned and goes on
            obj: dict[str, Any] = {
                "available_instances": mtype.available_instances,
                "device_api": _trim(mtype.device_api),
            }
            name = _trim(mtype.name) if mtype.name is not None else ""
            if name:
                obj["name"] = name
            description = _trim(mtype.description).replace("\n", ", ") if mtype.description is not None else ""
            if description:
                obj["description"] = description
            entries.append({mtype.id: obj})
        out[parent.name] = entries
    return _dump([dict(sorted(out.items()))] if out else [])


def _serde_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")  # serde_json: 1e309 is an error, not infinity
    return value


def _serde_int(text: str) -> int:
    if math.isinf(float(text)):
        raise ValueError("number out of range")  # beyond u64/i64 serde_json reads an f64, which overflows here
    return int(text)


def _serde_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity: Python extensions serde_json refuses


def _serde_accepts(value: Any, depth: int = 1) -> bool:
    """What json.loads takes but serde_json refuses: a lone surrogate escape, nesting deeper than 127."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is None
    if isinstance(value, dict):
        return depth <= _SERDE_MAX_DEPTH and all(
            _serde_accepts(k) and _serde_accepts(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return depth <= _SERDE_MAX_DEPTH and all(_serde_accepts(v, depth + 1) for v in value)
    return True


def _load_config(text: str) -> Any:
    """The config as serde_json reads it (Python's json is more lenient), or ValueError."""
    try:
        cfg = json.loads(text, parse_float=_serde_float, parse_int=_serde_int, parse_constant=_serde_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not _serde_accepts(cfg):
        raise ValueError("not JSON serde_json reads")
    return cfg


def _config(
    root: Sysfs, parent: str, uuid: str, present: frozenset[str] | None = None
) -> tuple[str | None, str, list[dict[str, Any]]]:
    """(mdev_type, start, attrs) from mdevctl's config file for an active device, applied as mdevctl 1.2.0 does:
    field by field, keeping what was applied before an error. A config mdevctl cannot parse is ignored.
    `present` is the parent's config directory listed beforehand, when it could be: a name not in it has none."""
    mdev_type: str | None = None
    start = "manual"
    attrs: list[dict[str, Any]] = []
    if present is not None and uuid not in present:
        return mdev_type, start, attrs
    try:
        text = root.read_optional(f"{MDEVCTL_CONFIG_DIR}/{parent}/{uuid}")
    except SysfsError:
        return mdev_type, start, attrs
    if text is None:
        return mdev_type, start, attrs
    try:
        cfg = _load_config(text)
    except ValueError:
        return mdev_type, start, attrs
    if not isinstance(cfg, dict) or cfg.get("mdev_type") is None or cfg.get("start") is None:
        return mdev_type, start, attrs
    mdev_type = cfg["mdev_type"] if isinstance(cfg["mdev_type"], str) else json.dumps(cfg["mdev_type"])
    start = "auto" if cfg["start"] == "auto" else "manual"
    raw = cfg.get("attrs")
    if isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict) or len(item) != 1:
                break  # mdevctl stops at the first attribute that is not a one-key object, {} included
            attrs += [{key: value} for key, value in item.items()]
    return mdev_type, start, attrs


def _configs_present(root: Sysfs, parent: str) -> frozenset[str] | None:
    """The names in a parent's config directory: one listing instead of a failed open per device (most active
    devices have no config). None when it cannot be listed (each config is then tried, as mdevctl does)."""
    try:
        return frozenset(root.listdir_optional(f"{MDEVCTL_CONFIG_DIR}/{parent}"))
    except SysfsError:
        return None


def _canonical_uuid(name: str) -> str:
    """The UUID as mdevctl prints it (lowercase, hyphenated), or ValueError when `name` is not a UUID."""
    if _CANONICAL_UUID.fullmatch(name):
        return name  # what the kernel names every mdev: uuid.UUID would give it back unchanged
    import uuid as uuidlib  # only other spellings need it

    return str(uuidlib.UUID(name))


def list_dumpjson(root: Sysfs, devices: Iterable[MdevDevice]) -> str:
    grouped: dict[str, list[tuple[str, str]]] = {}
    present: dict[str, frozenset[str] | None] = {}
    for device in devices:
        try:
            uuid = _canonical_uuid(device.uuid)
        except ValueError:
            continue  # mdevctl skips bus entries that are not UUIDs
        if device.type is None:
            continue  # as mdevctl: a device whose type link cannot be resolved is left out
        parent = posixpath.basename(posixpath.dirname(device.path))
        if parent not in present:
            present[parent] = _configs_present(root, parent)
        cfg_type, start, attrs = _config(root, parent, uuid, present[parent])
        # an empty mdev_type in the config still overrides the sysfs type, as in mdevctl
        mdev_type = device.type if cfg_type is None else cfg_type
        grouped.setdefault(parent, []).append((uuid, _device_text(uuid, mdev_type, start, attrs)))
    if not grouped:
        return _dump([])
    blocks = []
    for parent in sorted(grouped):
        entries = [text for _, text in sorted(grouped[parent], key=lambda e: e[0])]
        blocks.append(f"    {_string(parent)}: [\n" + ",\n".join(entries) + "\n    ]")
    return "[\n  {\n" + ",\n".join(blocks) + "\n  }\n]\n"


def _device_text(uuid: str, mdev_type: str, start: str, attrs: list[dict[str, Any]]) -> str:
    """One device of the list, `{uuid: {"mdev_type", "start", "attrs"}}`, as `_dump` writes it at its depth (the
    third level of the document): json.dumps(indent=2) is Python code, 10,000 devices take it a tenth of a second."""
    # attrs (rare, and any JSON) by json.dumps itself: its lines shifted to their depth
    attrs_text = json.dumps(attrs, indent=2, ensure_ascii=False).replace("\n", "\n" + " " * 10) if attrs else "[]"
    return (
        f"      {{\n        {_string(uuid)}: {{\n"
        f'          "mdev_type": {_string(mdev_type)},\n'
        f'          "start": {_string(start)},\n'
        f'          "attrs": {attrs_text}\n'
        "        }\n      }"
    )


def definition(mdev_type: str, attrs: Iterable[tuple[str, str]], start: str = "auto") -> str:
    """An mdevctl definition (`/etc/mdevctl.d/<parent>/<uuid>`): mdevctl writes `attrs` to the device's sysfs
    directory in this order when it starts the device, so the parameters come back in their write order."""
    body = {"mdev_type": mdev_type, "start": start, "attrs": [{name: value} for name, value in attrs]}
    return _dump(body)
