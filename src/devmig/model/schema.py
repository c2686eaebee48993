"""JSON Schema export of the formats (`devmig schema NAME`, and the files in schemas/)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from devmig.model.baseline import Baseline
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.preflight import Preflight
from devmig.model.verdict import Verdict

FORMAT_VERSION = "1"
#: what devmig writes (their schemas describe its output), as opposed to the documents it reads
OUTPUTS = ("verdict", "baseline", "preflight")

SCHEMAS: dict[str, type[BaseModel]] = {
    "capability": TypeCapability,
    "descriptor": DeviceDescriptor,
    "verdict": Verdict,
    "baseline": Baseline,
    "preflight": Preflight,
}


def json_schema(name: str) -> dict[str, Any]:
    model = SCHEMAS[name]
    schema = model.model_json_schema(mode="serialization" if name in OUTPUTS else "validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:devmig:schema:v{FORMAT_VERSION}:{name}",
        **_closed_maps(schema),
    }


def _closed_maps(node: Any) -> Any:
    """pydantic writes a map with constrained keys as patternProperties, which alone lets other keys through;
    devmig refuses them, so the schema says so too."""
    if isinstance(node, dict):
        out = {key: _closed_maps(value) for key, value in node.items()}
        if "patternProperties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed_maps(item) for item in node]
    return node


def schema_text(name: str) -> str:
    return json.dumps(json_schema(name), indent=2, sort_keys=False) + "\n"
