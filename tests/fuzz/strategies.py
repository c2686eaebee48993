"""Hostile inputs: random JSON, values chosen to sit on the formats' edges, and mutations of valid documents."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from tests.paths import EXAMPLES

#: strings on the edges of the formats' patterns (names, versions, ranges, identities) and of text itself
EDGE_TEXT = [
    "",
    " ",
    "\n",
    "a\nb",
    "\x00",
    "a\x00",
    "a/b",
    "a b",
    "/",
    "vfio-pci",
    "vfio-ccw",
    "vfio-ap",
    "vdpa",
    "net",
    "block",
    "1.2.3",
    "01.2.3",
    "1.2",
    "1.2.3.4",
    "0-5",
    "5-0",
    "-3--1",
    "0-" + "9" * 25,
    "9" * 5000,
    "8086:5912",
    "8086:591G",
    "ppgtt",
    "\ud800",
    "\u2028",
    "é",
    "declared",
    "unverified",
    "profile",
    # pydantic's names for the members of a union, which show in error locations beside real keys
    "int",
    "str",
    "bool",
    "none",
]
EDGE_INTS = [0, 1, -1, 2, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63), 2**64, 10**30]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(EDGE_INTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(EDGE_TEXT)
)
#: any JSON value, small: a few dozen leaves at most
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=12) | st.sampled_from(EDGE_TEXT), inner, max_size=5)
    ),
    max_leaves=30,
)


def example_documents(suffix: str) -> list[dict[str, Any]]:
    """The valid documents of examples/ whose file name ends in `suffix` (capability.json, descriptor.json)."""
    return [json.loads(path.read_text()) for path in sorted(EXAMPLES.rglob(f"*{suffix}"))]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the empty path is the value itself)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


ACTIONS = st.sampled_from(["replace", "edge", "delete", "add", "retype", "double"])
EDGE_VALUES = st.sampled_from(EDGE_TEXT) | st.sampled_from(EDGE_INTS) | st.booleans() | st.none()
KEYS = st.text(max_size=12) | st.sampled_from(EDGE_TEXT)


@st.composite
def mutated(draw: st.DrawFn, documents: list[dict[str, Any]], max_mutations: int = 4) -> Any:
    """A valid document with a few changes: a value replaced (by an edge value or random JSON), a key removed or
    added, a container emptied or repeated. Most results stay close to the schema, so they reach the validators."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(ACTIONS)
        if not path:
            if action in ("replace", "retype"):
                doc = draw(json_values)
            continue
        parent, key = _parent(doc, path), path[-1]
        current = parent[key]
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "edge":
            parent[key] = draw(EDGE_VALUES)
        elif action == "delete":
            del parent[key]
        elif action == "add" and isinstance(current, dict):
            current[draw(KEYS)] = draw(json_values)
        elif action == "add" and isinstance(current, list):
            current.append(draw(json_values))
        elif action == "retype":
            parent[key] = (
                str(current)
                if not isinstance(current, str)
                else draw(st.sampled_from([[current], {current: current}, len(current)]))
            )
        elif action == "double" and isinstance(current, dict | list):
            parent[key] = (
                [current, copy.deepcopy(current)]
                if isinstance(current, list)
                else {**current, **copy.deepcopy(current)}
            )
    return doc


@st.composite
def damaged_text(draw: st.DrawFn, text: bytes) -> bytes:
    """Bytes of a document with a few bytes flipped, cut, inserted or removed."""
    data = bytearray(text)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "remove"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"{", b"[", b'"', b"\\u", b"\xff"]))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)
