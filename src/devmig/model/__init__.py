"""The formats of devmig: plain data, JSON round-trip, JSON Schema. No I/O here."""

from devmig.model.baseline import Baseline, BaselineModel, BaselineParam, Conflict
from devmig.model.descriptor import DEVICE_APIS, DeviceDescriptor, ModelSpec, TypeCapability
from devmig.model.load import parse_document, parse_json, validate_document
from devmig.model.params import IntRange, ParamSpec, ParamType, ParamValue, ValueSet
from devmig.model.verdict import Finding, Level, Severity, Verdict
from devmig.model.version import SoftwareVersion

__all__ = [
    "DEVICE_APIS",
    "Baseline",
    "BaselineModel",
    "BaselineParam",
    "Conflict",
    "DeviceDescriptor",
    "Finding",
    "IntRange",
    "Level",
    "ModelSpec",
    "ParamSpec",
    "ParamType",
    "ParamValue",
    "Severity",
    "SoftwareVersion",
    "TypeCapability",
    "ValueSet",
    "Verdict",
    "parse_document",
    "parse_json",
    "validate_document",
]
