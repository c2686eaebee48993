"""Exports for schedulers: the fleet's facts as OpenStack Placement resource providers with CUSTOM_* traits, and as
Kubernetes node labels, so a scheduler can prefilter hosts without calling devmig (docs/fleet.md, "Exports for
schedulers").

One table of facts per destination type (`type_facts`) and one requirement per source device (`requirement`); two
encoders render them (`trait` for Placement, `label_key` for Kubernetes, where devmig.fleet.k8s turns the version and
integer ladders into numbers node affinity compares). A type meets a source's requirement when
every group of the requirement has a fact of the type (`satisfies`): exactly when `devmig check` finds no error of
the rules in ENCODED_RULES, with three documented exceptions that can only admit too much, never too little:
integers outside 0..63 are compared by bucket, the parameters of a type with several models are pooled, and
`param-cannot-be-off` is left to the exact check.

Names are deterministic and collision-free: a fact whose parts are all "plain" is written as is (it can be read
back); any other is written as a readable part plus 40 bits of hash of the exact fact, under its kind's code with an
"h", so it never equals a plain name (two hashed names meet only if the readable parts and the hashes do). Pure: no
I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from devmig.errors import InputError
from devmig.fleet.records import HostRecord, TypeRecord
from devmig.model.descriptor import API_KEY_PATTERNS, DEVICE_APIS, DeviceDescriptor, TypeCapability
from devmig.model.params import IntRange, ParamSpec, ParamValue, param_type_name


@dataclass(frozen=True, order=True, slots=True)
class Fact:
    """Something a destination type accepts: a kind of KINDS and its parts, each a string."""

    kind: str
    parts: tuple[str, ...] = ()


#: kind -> (its parts, what a type with the fact accepts). The kind is also the code in every name (upper case in
#: Placement); "type" names resource classes, not traits.
KINDS: dict[str, tuple[str, str]] = {
    "api": ("device API", "devices of this device API (vfio-pci, vfio-ccw, vdpa, ...)"),
    "id": ("key, value, ... of `api`", "devices of exactly this device-API identity (every `api` key and value)"),
    "model": ("model", "devices of this model"),
    "nomodel": ("type", "devices of this type, when neither side declares a model"),
    "accepts": ("major, minor bucket", "devices of this major version and a minor in this bucket"),
    "param": ("name, type, value bucket", "the parameter with a value of this type in this bucket"),
    "any": ("name, type", "the parameter with any value of this type (a string parameter without allowed_values)"),
    "type": ("type", "resource class: one instance of this type"),
    # Kubernetes only (devmig.fleet.k8s): numbers node affinity's Gt and Lt compare, where Placement needs ladders
    "minor": ("major", "(a number) devices of this major version and a minor up to the label's value"),
    "int": ("name, bound", "(a number) a bound of the parameter's allowed integers: min, max, nmin, nmax"),
    "gap": ("name, value bucket", "no allowed integer of the parameter in this bucket, inside its bounds"),
    "bool": ("name", "(a value) the parameter's allowed booleans: true, false or any"),
}
#: marks a name that carries a hash: appended to the kind's code
HASHED = "h"

#: the check rules whose errors the facts encode (docs/formats.md)
ENCODED_RULES = frozenset(
    {
        "device-api-mismatch",
        "api-mismatch",
        "model-mismatch",
        "type-mismatch",
        "major-mismatch",
        "minor-older",
        "param-unknown",
        "param-type-mismatch",
        "param-value-not-allowed",
    }
)

# -- integer buckets -------------------------------------------------------------------------------------------------

#: 0..EXACT_INTS-1 each have a bucket of their own: the values parameters and minor versions usually take (a
#: power of two, where the buckets by bit length start)
EXACT_INTS = 64
#: other integers share a bucket per sign and bit length, up to this many bits; beyond, one bucket per sign
CAP_BITS = 64


def _buckets() -> list[tuple[float, str]]:
    """(lowest member, token) of every bucket, ascending; together they hold every integer."""
    top = 2**CAP_BITS
    out: list[tuple[float, str]] = [(float("-inf"), f"n{top}_up")]
    out += [(-(2**b - 1), f"n{2 ** (b - 1)}_{2**b - 1}") for b in range(CAP_BITS, 0, -1)]
    out += [(v, str(v)) for v in range(EXACT_INTS)]
    out += [(2 ** (b - 1), f"{2 ** (b - 1)}_{2**b - 1}") for b in range(EXACT_INTS.bit_length(), CAP_BITS + 1)]
    out.append((top, f"{top}_up"))
    return out


_BUCKETS = _buckets()
_LOWS = [low for low, _ in _BUCKETS]
_TOKENS = [token for _, token in _BUCKETS]


def _bucket(value: int) -> int:
    return bisect_right(_LOWS, value) - 1


def int_token(value: int) -> str:
    """The bucket of an integer: itself for 0..63, else `LO_HI` (`n` for negatives: n4_7 holds -7..-4)."""
    return _TOKENS[_bucket(value)]


def buckets_within(lo: int, hi: int) -> list[str]:
    """Every bucket whose members all lie in lo..hi, ascending (the two unbounded ones never do)."""
    if lo > hi:
        return []
    first, last = _bucket(lo), _bucket(hi)
    if _LOWS[first] < lo:  # the bucket holding lo starts below it
        first += 1
    if last + 1 == len(_LOWS) or _LOWS[last + 1] - 1 > hi:  # the one holding hi ends above it, or never
        last -= 1
    return _TOKENS[first : last + 1]


def int_tokens(ranges: Iterable[IntRange] | None) -> list[str]:
    """Every bucket holding a value of the ranges (None: any integer), ascending."""
    if ranges is None:
        return list(_TOKENS)
    indices = {i for rng in ranges for i in range(_bucket(rng.lo), _bucket(rng.hi) + 1)}
    return [_TOKENS[i] for i in sorted(indices)]


# -- the facts -------------------------------------------------------------------------------------------------------

#: identity values of a fixed format (devmig.model validates them), written without the characters names cannot
#: hold; injective on that format, so no hash is needed
_ID_FORMS: dict[str, Callable[[str], str]] = {"pci_id": lambda value: value.replace(":", "_")}
_ID_RES = {key: re.compile(API_KEY_PATTERNS[key]) for key in _ID_FORMS}


def _api_token(device_api: str) -> str:
    # the device APIs are a closed set without "_": one spelling each
    return device_api.replace("-", "_") if device_api in DEVICE_APIS else device_api


def _identity(api: Mapping[str, str]) -> Fact:
    parts: list[str] = []
    for key in sorted(api):
        value = api[key]
        if key in _ID_FORMS and _ID_RES[key].fullmatch(value):
            value = _ID_FORMS[key](value)
        parts += [key, value]
    return Fact("id", tuple(parts))


def _value_text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int_token(value)
    return value


def _param_facts(name: str, spec: ParamSpec) -> set[Fact]:
    values = spec.value_set().include
    if values is None:  # any value of the type: every int bucket, or one "any" fact for a string
        if spec.type == "int":
            return {Fact("param", (name, "int", t)) for t in int_tokens(None)}
        return {Fact("any", (name, spec.type))}
    if isinstance(values, tuple):
        return {Fact("param", (name, "int", t)) for t in int_tokens(values)}
    return {Fact("param", (name, spec.type, _value_text(v))) for v in values}


def type_facts(cap: TypeCapability) -> frozenset[Fact]:
    """What a destination type accepts, as facts: the one table both exports render."""
    version = cap.software_version
    facts = {Fact("api", (_api_token(cap.device_api),)), _identity(cap.api)}
    facts |= {Fact("model", (model,)) for model in cap.models} or {Fact("nomodel", (cap.type,))}
    # a destination of minor m takes every minor up to m: one fact per accepted bucket
    facts |= {Fact("accepts", (str(version.major), t)) for t in int_tokens([IntRange(0, version.minor)])}
    for spec in cap.models.values():  # pooled over the models: the RFC expects one
        for name, param in spec.params.items():
            facts |= _param_facts(name, param)
    return frozenset(facts)


#: a source's needs: every group must meet a fact of the destination type (a group holds alternatives)
Requirement = tuple[frozenset[Fact], ...]


def requirement(source: DeviceDescriptor) -> Requirement:
    """What a destination type must have to take `source`."""
    version = source.software_version
    model = Fact("model", (source.model,)) if source.model is not None else Fact("nomodel", (source.type,))
    groups = [
        {Fact("api", (_api_token(source.device_api),))},
        {_identity(source.api)},
        {model},
        {Fact("accepts", (str(version.major), int_token(version.minor)))},
    ]
    for name, value in source.params.items():
        ptype = param_type_name(value)
        exact = Fact("param", (name, ptype, _value_text(value)))
        # a string parameter that takes any value cannot list them: it has an "any" fact instead
        groups.append({exact, Fact("any", (name, ptype))} if ptype == "str" else {exact})
    return tuple(frozenset(group) for group in groups)


def satisfies(facts: frozenset[Fact] | set[Fact], needs: Requirement) -> bool:
    return all(group & facts for group in needs)


# -- names -----------------------------------------------------------------------------------------------------------


def _digest(code: str, parts: tuple[str, ...]) -> str:
    """40 bits of SHA-256 over the exact fact, in base32 (A-Z, 2-7)."""
    raw = hashlib.sha256(json.dumps([code, *parts], ensure_ascii=False).encode()).digest()
    return base64.b32encode(raw)[:8].decode()


PLACEMENT_PREFIX = "CUSTOM_DEVMIG_"
#: Placement's limit on trait and resource class names (placement/schemas: CUSTOM_[A-Z0-9_]+, maxLength 255)
PLACEMENT_MAX = 255
PLACEMENT_NAME = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
#: a part written as is: lower case snake_case, so upper-casing it loses nothing and "__" can separate parts
_PLAIN_PART = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


@lru_cache(maxsize=65536)
def _placement_name(code: str, parts: tuple[str, ...]) -> str:
    head = PLACEMENT_PREFIX + code.upper()
    if all(_PLAIN_PART.fullmatch(p) for p in parts):
        name = "_".join([head, "__".join(parts).upper()]) if parts else head
        if len(name) <= PLACEMENT_MAX:
            return name
    head += HASHED.upper()
    digest = _digest(code, parts)
    room = PLACEMENT_MAX - len(head) - len(digest) - 2
    readable = re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")[:room].rstrip("_")
    return "_".join(x for x in (head, readable, digest) if x)


def trait(fact: Fact) -> str:
    """The fact as a Placement custom trait: CUSTOM_DEVMIG_<KIND>_<PART>__<PART>..., or with a hash."""
    return _placement_name(fact.kind, fact.parts)


def resource_class(type_id: str) -> str:
    """The Placement custom resource class of a devmig type: one instance of it."""
    return _placement_name("type", (type_id,))


DEFAULT_PREFIX = "devmig.io"
#: the value of every label: it says the fact holds (node-feature-discovery's convention)
LABEL_VALUE = "true"
#: Kubernetes' limits (k8s.io/apimachinery validation: IsQualifiedName, IsDNS1123Subdomain, IsValidLabelValue)
LABEL_NAME_MAX = 63
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_PREFIX_MAX = 253
LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: a segment written as is: Kubernetes keeps case, "-" and "_", so "." can separate the segments
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
#: how much of a lossy type a hashed label name keeps readable
_SCOPE_KEEP = 24


def _k8s_readable(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-")


@lru_cache(maxsize=65536)
def label_name(scope: str, code: str, parts: tuple[str, ...]) -> str:
    """The name part of a label key (after PREFIX/): <scope>.<code>.<part>..., or with a hash."""
    segments = (scope, *parts)
    if all(_PLAIN_SEGMENT.fullmatch(s) for s in segments):
        name = ".".join([scope, code, *parts])
        if len(name) <= LABEL_NAME_MAX:
            return name
    digest = _digest(code, segments).lower()
    head = f"{_k8s_readable(scope.replace('.', '_'))[:_SCOPE_KEEP].rstrip('_.-') or 'x'}.{code}{HASHED}"
    room = LABEL_NAME_MAX - len(head) - len(digest) - 2
    readable = _k8s_readable(".".join(parts))[:room].rstrip("_.-")
    return ".".join(x for x in (head, readable, digest) if x)


def check_prefix(prefix: str) -> str:
    if len(prefix) > LABEL_PREFIX_MAX or not LABEL_PREFIX.fullmatch(prefix):
        raise InputError(
            f"label prefix {prefix!r}: expected a DNS subdomain of at most {LABEL_PREFIX_MAX} characters "
            "(lower case letters, digits, '-' and '.'), e.g. devmig.io"
        )
    return prefix


def label_key(type_id: str, fact: Fact, prefix: str = DEFAULT_PREFIX) -> str:
    """The fact of type `type_id` as a Kubernetes node label key: PREFIX/<type>.<kind>.<part>..., or with a hash.

    The type is part of the key because a node holds the facts of all its types."""
    return f"{check_prefix(prefix)}/{label_name(type_id, fact.kind, fact.parts)}"


# -- OpenStack Placement ---------------------------------------------------------------------------------------------

#: Placement's limit on a resource provider's name
PROVIDER_NAME_MAX = 200
#: devmig's provider UUIDs are uuid5 in this namespace: the same fleet exports the same UUIDs every time
PROVIDER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "placement.devmig.io")
#: the inventory fields besides total and max_unit: Placement's defaults, written out
INVENTORY_DEFAULTS: dict[str, int | float] = {"reserved": 0, "min_unit": 1, "step_size": 1, "allocation_ratio": 1.0}


def _unique(types: Iterable[TypeRecord]) -> list[TypeRecord]:
    seen: dict[tuple[str, str], TypeRecord] = {}
    for record in types:
        seen.setdefault((record.parent, record.type_id), record)
    return [seen[key] for key in sorted(seen)]


def total(host: HostRecord, record: TypeRecord) -> int | None:
    """Instances of a type on a host as Placement counts them (as Nova does for vGPUs): free ones plus the devices
    made of it; 1 for a VFIO PCI function (it is its own one instance); None when the free count is unknown."""
    if any(device.kind == "pci" and device.name == record.parent for device in host.devices):
        return 1
    if record.available is None:
        return None
    made = sum(1 for d in host.devices if d.parent == record.parent and d.type_id == record.type_id)
    return record.available + made


def _provider_name(*path: str) -> str:
    name = "/".join(path)
    if len(name) <= PROVIDER_NAME_MAX:
        return name
    digest = _digest("provider", path)
    return f"{name[: PROVIDER_NAME_MAX - len(digest) - 1]}~{digest}"


def _provider(path: tuple[str, ...], root: str | None) -> dict[str, Any]:
    own = str(uuid.uuid5(PROVIDER_NAMESPACE, json.dumps(list(path))))
    return {
        "uuid": own,
        "name": _provider_name(*path),
        "parent_provider_uuid": root,
        "root_provider_uuid": root or own,
        "inventories": {},
        "traits": [],
    }


def freshness(hosts: Iterable[HostRecord], now: float) -> list[dict[str, Any]]:
    """Each host's last sign of life, its age at `now` in whole seconds and its inventory's generation (None for a
    host read directly rather than from a store). Kept beside the facts, never in them: a fact that changed with
    every heartbeat would rewrite every node and provider each time."""
    return [
        {
            "name": host.name,
            "last_seen": host.last_seen,
            "age": None if host.last_seen is None else max(0, int(now - host.last_seen)),
            "generation": host.generation,
        }
        for host in sorted(hosts, key=lambda h: h.name)
    ]


def placement(hosts: Iterable[HostRecord], now: float | None = None) -> dict[str, Any]:
    """The fleet as Placement resource providers: one per host (the compute node, the root) and one nested child
    per type of each parent device, holding the type's resource class and its facts as traits. Each provider holds
    the fields of GET /resource_providers/{uuid}, `inventories` as GET .../inventories and `traits` as GET
    .../traits show them; `resource_classes` and `traits` list the custom names to create first. With `now`,
    `hosts` holds each host's freshness (see `freshness`), for the loader to skip stale hosts; Placement has no
    field for it."""
    hosts = sorted(hosts, key=lambda h: h.name)
    providers: list[dict[str, Any]] = []
    for host in hosts:
        root = _provider((host.name,), None)
        providers.append(root)
        for record in _unique(host.types):
            child = _provider((host.name, record.parent, record.type_id), root["uuid"])
            count = total(host, record)
            if count is not None and count > 0:  # Placement refuses a total below 1
                rc = resource_class(record.type_id)
                child["inventories"] = {rc: {"total": count, "max_unit": count, **INVENTORY_DEFAULTS}}
            child["traits"] = sorted(trait(f) for f in type_facts(record.capability))
            providers.append(child)
    doc: dict[str, Any] = {
        "resource_classes": sorted({rc for p in providers for rc in p["inventories"]}),
        "traits": sorted({t for p in providers for t in p["traits"]}),
        "resource_providers": providers,
    }
    if now is not None:
        doc["hosts"] = freshness(hosts, now)
    return doc


def placement_query(source: DeviceDescriptor) -> dict[str, Any]:
    """The `required` query parameters that find the providers able to take `source` (GET /resource_providers, or
    a granular group of GET /allocation_candidates): alternatives need `in:` (microversion 1.39)."""
    groups = [sorted(trait(f) for f in group) for group in requirement(source)]
    required = sorted(g[0] for g in groups if len(g) == 1)
    any_of = [g for g in groups if len(g) > 1]
    params = [f"required={','.join(required)}", *(f"required=in:{','.join(g)}" for g in any_of)]
    return {
        "microversion": "1.39" if any_of else "1.18",
        "resource_class": resource_class(source.type),
        "required": required,
        "required_any": any_of,
        "query": "&".join(params),
    }
