"""Fuzzing the format documents: capability and descriptor JSON as `devmig check` and friends read them, and the
decisions taken on whatever parses (check, plan, baseline). What the parser promises is held too: a document that
parses reads back the same from the JSON devmig writes of it, and a document cut short is refused."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.cli import main
from devmig.cli.files import MAX_DOCUMENT_BYTES, load
from devmig.compat import baseline, check, plan_params
from devmig.errors import DevmigError, InputError
from devmig.model import DeviceDescriptor, TypeCapability, parse_document
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.strategies import damaged_text, example_documents, json_values, mutated

CAPABILITIES = example_documents(".capability.json")
DESCRIPTORS = example_documents(".descriptor.json")
FORMATS = st.just(TypeCapability) | st.just(DeviceDescriptor)


def _parse(cls: type[TypeCapability] | type[DeviceDescriptor], data: bytes) -> object:
    return outcome(cls.__name__, lambda: parse_document(cls, data, "fuzz.json"))


@fuzz(share=0.15)
@given(FORMATS, st.binary(max_size=300))
def test_random_bytes(cls: type[TypeCapability] | type[DeviceDescriptor], data: bytes) -> None:
    _parse(cls, data)


@fuzz(share=0.2)
@given(FORMATS, json_values)
def test_random_json(cls: type[TypeCapability] | type[DeviceDescriptor], value: Any) -> None:
    _parse(cls, json.dumps(value).encode())


@fuzz(share=0.15)
@given(FORMATS, st.data())
def test_damaged_examples(cls: type[TypeCapability] | type[DeviceDescriptor], data: st.DataObject) -> None:
    docs = CAPABILITIES if cls is TypeCapability else DESCRIPTORS
    text = json.dumps(data.draw(st.sampled_from(docs))).encode()
    _parse(cls, data.draw(damaged_text(text)))


@fuzz(share=0.5)
@given(
    mutated(CAPABILITIES) | st.sampled_from(CAPABILITIES),
    mutated(DESCRIPTORS, max_mutations=2) | st.sampled_from(DESCRIPTORS),
)
def test_mutated_examples_and_the_decisions_on_them(cap_doc: Any, source_doc: Any) -> None:
    """Near the schema, most documents reach the validators; those that pass go on to every decision."""
    cap = _parse(TypeCapability, json.dumps(cap_doc).encode())
    source = _parse(DeviceDescriptor, json.dumps(source_doc).encode())
    if isinstance(cap, TypeCapability) and isinstance(source, DeviceDescriptor):
        verdict = outcome("check", lambda: check(source, cap))
        outcome("plan", lambda: plan_params(source, cap))
        outcome(
            "baseline", lambda: baseline({"fuzzed": cap, "example": TypeCapability.model_validate(CAPABILITIES[0])})
        )
        if not isinstance(verdict, DevmigError):
            # what the CLI prints must be JSON
            json.loads(verdict.model_dump_json())


@fuzz(share=0.1)
@given(FORMATS, st.data())
def test_a_parsed_document_reads_back_the_same(
    cls: type[TypeCapability] | type[DeviceDescriptor], data: st.DataObject
) -> None:
    """parse(render(x)) == x, with render as the commands write a document (describe, capabilities)."""
    docs = CAPABILITIES if cls is TypeCapability else DESCRIPTORS
    doc = data.draw(mutated(docs, max_mutations=1) | st.sampled_from(docs))
    parsed = _parse(cls, json.dumps(doc).encode())
    if not isinstance(parsed, (TypeCapability, DeviceDescriptor)):
        return
    for rendered in (parsed.model_dump_json(), parsed.model_dump_json(exclude_none=True, indent=2)):
        assert parse_document(cls, rendered, "rendered.json") == parsed


@fuzz(share=0.1)
@given(FORMATS, st.data())
def test_a_document_cut_short_is_refused(
    cls: type[TypeCapability] | type[DeviceDescriptor], data: st.DataObject
) -> None:
    docs = CAPABILITIES if cls is TypeCapability else DESCRIPTORS
    text = json.dumps(data.draw(st.sampled_from(docs)), indent=data.draw(st.sampled_from([None, 2]))).encode()
    cut = data.draw(st.integers(0, len(text) - 1))
    got = _parse(cls, text[:cut])
    assert isinstance(got, InputError), f"{cls.__name__} cut at byte {cut} of {len(text)} was accepted"


# -- files, as the CLI reads them -----------------------------------------------------------------------------------


def test_a_huge_document_file_is_refused_unread(tmp_path: Path) -> None:
    """A file larger than any document (sparse here, so the test is cheap) is refused after reading the limit, not
    read whole into memory."""
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="larger than 16 MiB"):
            load(TypeCapability, str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_DOCUMENT_BYTES


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe{}",
        b"[" * 100_000,
        b'{"a": ' * 50_000,
        b"1" * 10_000,
        b'{"device_api": "vfio-pci", "device_api": 1}',
    ],
    ids=["empty", "not-utf8", "deep-array", "deep-object", "huge-int", "duplicate-key"],
)
def test_hostile_document_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load(DeviceDescriptor, str(path))
    assert str(err.value).startswith(f"{path}: ")


@fuzz(share=0.02)
@given(mutated(CAPABILITIES), mutated(DESCRIPTORS))
def test_devmig_check_answers_with_a_documented_exit_code(cap_doc: Any, source_doc: Any) -> None:
    """End to end through the CLI: 0, 1 or 2 and one line on stderr, never an internal error (3)."""
    with tempfile.TemporaryDirectory() as tmp:
        cap, src = Path(tmp) / "cap.json", Path(tmp) / "src.json"
        cap.write_text(json.dumps(cap_doc))
        src.write_text(json.dumps(source_doc))
        code = outcome("devmig check", lambda: main(["check", str(src), str(cap)]))
    assert code in (0, 1, 2)
