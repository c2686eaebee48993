"""The formats: JSON round-trip, the published schemas, and errors that name the file and the JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devmig.compat import baseline, check
from devmig.errors import InputError
from devmig.model import DeviceDescriptor, TypeCapability, parse_document
from devmig.model.schema import SCHEMAS, json_schema, schema_text
from tests.builders import cap_doc, desc_doc
from tests.paths import EXAMPLES
from tests.paths import SCHEMAS as SCHEMA_DIR

CAPABILITIES = sorted(EXAMPLES.glob("**/*.capability.json"))
DESCRIPTORS = sorted(EXAMPLES.glob("**/*.descriptor.json"))


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text()))


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schema_files_are_current(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.read_text() == schema_text(name), f"regenerate: devmig schema {name} > {path}"
    jsonschema.Draft202012Validator.check_schema(json_schema(name))


@pytest.mark.parametrize("path", CAPABILITIES, ids=lambda p: p.name)
def test_example_capabilities_validate_and_round_trip(path: Path) -> None:
    data = json.loads(path.read_text())
    validator("capability").validate(data)
    cap = TypeCapability.model_validate(data)
    assert cap.model_dump(mode="json", exclude_none=True) == {"confidence": "declared", **data}
    assert TypeCapability.model_validate_json(cap.model_dump_json()) == cap


@pytest.mark.parametrize("path", DESCRIPTORS, ids=lambda p: p.name)
def test_example_descriptors_validate_and_round_trip(path: Path) -> None:
    data = json.loads(path.read_text())
    validator("descriptor").validate(data)
    desc = DeviceDescriptor.model_validate(data)
    assert desc.model_dump(mode="json", exclude_none=True) == {"confidence": "declared", **data}


def test_verdicts_and_baselines_validate_against_their_schemas() -> None:
    caps = [TypeCapability.model_validate_json(p.read_text()) for p in CAPABILITIES]
    descs = [DeviceDescriptor.model_validate_json(p.read_text()) for p in DESCRIPTORS]
    for d in descs:
        for c in caps:
            validator("verdict").validate(check(d, c).model_dump(mode="json"))
    gvt = {p.name: TypeCapability.model_validate_json(p.read_text()) for p in EXAMPLES.glob("gvt-g/*.capability.json")}
    validator("baseline").validate(baseline(gvt).model_dump(mode="json"))
    validator("baseline").validate(baseline(caps).model_dump(mode="json"))


BAD_CAPABILITIES: list[tuple[Any, str]] = [
    (cap_doc(device_api="vfio-gpu"), "$.device_api: expected one of vfio-pci"),
    (cap_doc(software_version="1.x"), "$.software_version: expected a version"),
    (cap_doc(software_version=1), "$.software_version: expected a version string"),
    (cap_doc(api={}), "api.pci_id is required"),
    (cap_doc(api={"pci_id": "8086:591D"}), "api.pci_id must be 'vvvv:dddd' in lowercase hex"),
    (cap_doc(type="a b"), "$.type: expected text matching"),
    (cap_doc(type="x\n"), "$.type: expected text matching"),
    (cap_doc(models={"no-slash": {"params": {}}}), "$.models"),
    (cap_doc(models={"a/b": {"params": {"x=y": {"type": "int", "init_value": 1}}}}), "$.models"),
    (
        cap_doc(models={"a/b": {"params": {"x": {"type": "int", "init_value": "1"}}}}),
        "init_value must be of type int",
    ),
    (cap_doc(available_instances=-1), "$.available_instances"),
    (cap_doc(colour="red"), "$: unknown field 'colour'"),
    ({"device_api": "vfio-pci"}, "$: missing required field 'type'"),
    ([], "$: input should be a valid dictionary"),
]


@pytest.mark.parametrize(("doc", "message"), BAD_CAPABILITIES)
def test_bad_capabilities_name_the_path(doc: Any, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_document(TypeCapability, json.dumps(doc), "host.json")
    text = str(err.value)
    assert text.startswith("host.json: ") and message in text and "\n" not in text
    # The published schema refuses them too, except what only devmig's validators see. (Python's `re`, which
    # the jsonschema package uses, lets "$" match before a final newline, unlike ECMA-262 regexes.)
    if not any(s in message for s in ("must be of type", "lowercase hex")) and doc != cap_doc(type="x\n"):
        assert not validator("capability").is_valid(doc)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (desc_doc(params={"a": 1.5}), "$.params.a: expected a bool, an int or a string, found 1.5"),
        (desc_doc(params={"a": None}), "$.params.a: expected a bool, an int or a string, found null"),
        (desc_doc(params={"a": "x\ny"}), "newline"),
        (desc_doc(model="x"), "$.model: expected text matching"),
        (desc_doc(device_api="vfio-ccw", api={}), "api.subchannel_type is required"),
    ],
)
def test_bad_descriptors_name_the_path(doc: Any, message: str) -> None:
    with pytest.raises(InputError, match=None) as err:
        parse_document(DeviceDescriptor, json.dumps(doc), "vm.json")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"device_api": "vfio-pci", "type":', "vm.json: not valid JSON at line 1 column"),
        ("", "vm.json: empty"),
        (b"\xff\xfe{}", "vm.json: not UTF-8 text"),
        ('{"type": "a", "type": "b"}', "duplicate key 'type'"),
        ('{"x": NaN}', "NaN is not a JSON number"),
        ("[" * 100000 + "]" * 100000, "vm.json: not valid JSON"),
        # a lone surrogate escape decodes to a str that cannot be encoded again: read, it could never be written
        ('{"params": {"mode": "\\ud800"}}', "vm.json: $.params.mode: not UTF-8 text: a lone surrogate '\\ud800'"),
        ('{"api": {"\\udfff": "x"}}', 'vm.json: $.api["\\udfff"]: not UTF-8 text'),
    ],
)
def test_unparseable_text(text: str | bytes, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_document(DeviceDescriptor, text, "vm.json")
    assert message in str(err.value)


def test_a_surrogate_pair_is_text() -> None:
    """Both halves of a pair make one character: only a lone half is refused."""
    doc = desc_doc(params={"mode": "x"})
    text = json.dumps(doc).replace('"x"', '"\\ud83d\\ude00"')
    assert parse_document(DeviceDescriptor, text, "vm.json").params["mode"] == "\U0001f600"
