"""Small builders for format documents in tests: a valid default, changed by keyword."""

from __future__ import annotations

from typing import Any

from devmig.model import DeviceDescriptor, TypeCapability

MODEL = "vendor-a.com/my-nic"


def param(ptype: str = "int", init: Any = 64, **extra: Any) -> dict[str, Any]:
    return {"type": ptype, "init_value": init, **extra}


def cap_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "device_api": "vfio-pci",
        "type": "my-nic-vf",
        "software_version": "1.1.0",
        "api": {"pci_id": "1eaa:0101"},
        "models": {
            MODEL: {
                "params": {
                    "new-feature": param("bool", True, off_value=False),
                    "num-resources": param("int", 64, allowed_values=[64]),
                }
            }
        },
    }
    doc.update(overrides)
    return doc


def desc_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "device_api": "vfio-pci",
        "type": "my-nic-vf",
        "model": MODEL,
        "software_version": "1.1.0",
        "api": {"pci_id": "1eaa:0101"},
        "params": {"new-feature": True, "num-resources": 64},
    }
    doc.update(overrides)
    return doc


def cap(**overrides: Any) -> TypeCapability:
    return TypeCapability.model_validate(cap_doc(**overrides))


def desc(**overrides: Any) -> DeviceDescriptor:
    return DeviceDescriptor.model_validate(desc_doc(**overrides))


def with_params(params: dict[str, Any], model: str = MODEL, **overrides: Any) -> TypeCapability:
    return cap(models={model: {"params": params}}, **overrides)
