"""Fuzzing mdevctl-format input: the definitions in etc/mdevctl.d that `devmig list --format mdevctl` reads back as
mdevctl does. A definition mdevctl cannot parse is ignored, never a crash; a valid one is shown as it was written."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.host.inventory import Inventory
from devmig.host.mdevctl import list_dumpjson
from devmig.host.sysfs import SysfsRoot
from devmig.testing.sysfs_tree import SysfsTree
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.strategies import damaged_text, json_values, mutated

MTTY = "sys/devices/virtual/mtty/mtty"
UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"
CONFIG = f"etc/mdevctl.d/mtty/{UUID}"
DEFINITIONS: list[dict[str, Any]] = [
    {"mdev_type": "mtty-2", "start": "auto", "attrs": []},
    {"mdev_type": "mtty-2", "start": "manual", "attrs": [{"migration/nr_ports": "2"}, {"a": "b"}]},
]
#: what serde_json and Python's json disagree on: huge numbers, lone surrogates, NaN, deep nesting
SERDE_EDGES = [
    b"1e309",
    b"-1e309",
    b"18446744073709551616",
    b"1" * 5000,
    b'"\\ud800"',
    b"NaN",
    b"-Infinity",
    b"[" * 200 + b"]" * 200,
]


@pytest.fixture(scope="module")
def tree() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        built = SysfsTree(Path(tmp) / "root")
        built.mkdir(MTTY)
        built.mdev_parent("mtty", MTTY, subsystem="sys/class/mtty")
        built.mdev_type(MTTY, "mtty-2", available_instances=1)
        built.mdev(MTTY, UUID, "mtty-2")
        built.mdevctl_config("mtty", UUID, DEFINITIONS[0])
        yield built.root


def _list(root: Path, config: bytes) -> Any:
    (root / CONFIG).write_bytes(config)
    sysfs = SysfsRoot(root)
    inv = Inventory.scan(sysfs, parts=("mdevs",))
    text = outcome("mdevctl definition", lambda: list_dumpjson(sysfs, inv.mdevs))
    if isinstance(text, str):
        printed = json.loads(text)  # what it prints is JSON, whatever the definition held
        # ... laid out exactly as json.dumps lays it out (list_dumpjson writes the devices itself, for speed)
        assert text == json.dumps(printed, indent=2, ensure_ascii=False) + "\n"
        return printed
    return None


@fuzz(share=0.25)
@given(st.binary(max_size=200))
def test_random_bytes(tree: Path, data: bytes) -> None:
    _list(tree, data)


@fuzz(share=0.25)
@given(json_values)
def test_random_json(tree: Path, value: Any) -> None:
    _list(tree, json.dumps(value).encode())


@fuzz(share=0.35)
@given(mutated(DEFINITIONS))
def test_mutated_definitions(tree: Path, doc: Any) -> None:
    _list(tree, json.dumps(doc).encode())


@fuzz(share=0.15)
@given(st.data())
def test_damaged_definitions_and_serde_edges(tree: Path, data: st.DataObject) -> None:
    text = json.dumps(data.draw(st.sampled_from(DEFINITIONS))).encode()
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.sampled_from(SERDE_EDGES)) + text[at:]
    _list(tree, data.draw(damaged_text(text)))


#: attribute names and values as mdevctl writes them: text, no NUL (a sysfs path component and a write)
ATTR_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\0/"), min_size=1, max_size=12)
DEFINITIONS_VALID = st.fixed_dictionaries(
    {
        "mdev_type": st.just("mtty-2"),
        "start": st.sampled_from(["auto", "manual"]),
        "attrs": st.lists(st.dictionaries(ATTR_TEXT, ATTR_TEXT, min_size=1, max_size=1), max_size=4),
    }
)


@fuzz(share=0.1)
@given(DEFINITIONS_VALID)
def test_a_valid_definition_is_listed_as_written(tree: Path, definition: dict[str, Any]) -> None:
    printed = _list(tree, json.dumps(definition).encode())
    assert printed == [{"mtty": [{UUID: definition}]}]
