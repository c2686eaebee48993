"""Fuzzing profile files (TOML), as an operator drops them in /etc/devmig/profiles.d: parsed, validated, then used
to describe devices. A profile that parses but says something the formats refuse (a model that is no model name,
a value with a newline) must fail as a DevmigError on the device it describes, not as a crash."""

from __future__ import annotations

import json
import math
import tempfile
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.errors import InputError
from devmig.host.describe import Describer
from devmig.host.devices import Subchannel
from devmig.host.inventory import Inventory
from devmig.host.profile import MAX_PROFILE_BYTES, Profile, load_profiles, parse_profiles
from devmig.testing.sysfs_tree import SysfsTree
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.strategies import damaged_text, json_values, mutated
from tests.labs import build_lab

SHIPPED_TEXTS = [
    entry.read_text(encoding="utf-8")
    for entry in sorted(resources.files("devmig.host.profiles").iterdir(), key=lambda e: e.name)
    if entry.name.endswith(".toml")
]
SHIPPED = [tomllib.loads(text) for text in SHIPPED_TEXTS]
TOML_SNIPPETS = [
    "[[profile]]\n",
    "[profile.params.x]\n",
    "id = ",
    '"',
    "'''",
    "{",
    "}",
    "[",
    "]",
    " = ",
    "\n",
    "1979-05-27",
    "inf",
    "0x1f",
]


def toml_value(value: Any) -> str:
    """A JSON value as a TOML inline value (None has no TOML form: the caller leaves such keys out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else "inf")
    if isinstance(value, str):
        return json.dumps(value)  # TOML's basic strings take JSON's escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items() if v is not None) + "}"


def toml_document(doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"value = {toml_value(doc)}\n" if doc is not None else ""
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items() if v is not None)


@pytest.fixture(scope="module")
def lab_inventory() -> Iterator[Inventory]:
    """The discovery tests' lab host (mtty, GVT-g, an mlx5 VF on its variant driver, vfio-pci), scanned once."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = build_lab(SysfsTree(Path(tmp) / "root"))
        tree.subchannel("0.0.0313", 0, driver="vfio_ccw")
        yield Inventory.scan(tree.root)


def _parse(text: str) -> list[Profile] | None:
    parsed = outcome("profile", lambda: parse_profiles(text, "fuzz.toml"))
    return parsed if isinstance(parsed, list) else None


def _describe_with(inventory: Inventory, profiles: list[Profile]) -> None:
    describer = Describer(inventory, profiles)
    outcome("profile: capabilities", lambda: [c.model_dump_json() for c in describer.capabilities()[0]])
    for device in inventory.assignable():
        if not isinstance(device, Subchannel):
            outcome("profile: describe", lambda device=device: describer.descriptor(device).model_dump_json())  # type: ignore[misc]


@fuzz(share=0.15)
@given(st.lists(st.sampled_from(TOML_SNIPPETS) | st.text(max_size=10), max_size=30))
def test_random_toml_text(parts: list[str]) -> None:
    _parse("".join(parts))


@fuzz(share=0.1)
@given(json_values)
def test_random_documents(value: Any) -> None:
    _parse(toml_document(value))


@fuzz(share=0.15)
@given(st.data())
def test_damaged_shipped_profiles(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(SHIPPED_TEXTS)).encode()
    damaged = data.draw(damaged_text(text))
    try:
        decoded = damaged.decode("utf-8")
    except UnicodeDecodeError:
        return  # files are decoded before parsing (the test below checks that path)
    _parse(decoded)


@fuzz(share=0.6)
@given(mutated(SHIPPED))
def test_mutated_profiles_then_describing_with_them(lab_inventory: Inventory, doc: Any) -> None:
    profiles = _parse(toml_document(doc))
    if profiles:
        _describe_with(lab_inventory, profiles)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
        (b"\xff\xfe[[profile]]", "cannot read profile"),
        (b"[[profile]]\nid = 1\n", "profile"),
    ],
    ids=["deep-array", "deep-table", "not-utf8", "wrong-type"],
)
def test_hostile_profile_files(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "local.toml").write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_profiles(tmp_path)


def test_a_huge_profile_file_is_refused_unread(tmp_path: Path) -> None:
    with (tmp_path / "huge.toml").open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)
    with pytest.raises(InputError, match=f"larger than {MAX_PROFILE_BYTES // 1024} KiB"):
        load_profiles(tmp_path)
