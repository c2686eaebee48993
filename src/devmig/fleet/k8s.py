"""Kubernetes node labels and the node affinity that selects them (docs/fleet.md, "Kubernetes").

The labels hold the facts of devmig.fleet.export's table, each under its type, except where node affinity's Gt and
Lt can compare a number: there one numeric label replaces a ladder of booleans.

- A boolean parameter is `<type>.bool.<name>` = `true`, `false` or `any`: a source asks `In [its value, any]`.
- A type's version is `<type>.minor.<major>` = its minor: a source of minor n asks `Gt n-1` (`Exists` for 0).
- An integer parameter's allowed values are bounds, `<type>.int.<name>.min`/`max` for its values >= 0 and
  `nmin`/`nmax` for the magnitudes of its negative ones (a label value cannot start with "-", and a Gt/Lt value is
  validated as a label value, so no number here is negative), and `<type>.gap.<name>.<bucket>` for each bucket of
  export's integer buckets that lies wholly between two allowed ranges: a source of value v asks `min Lt v+1`,
  `max Gt v-1` and `DoesNotExist` on the gap label of v's bucket.

So a node matches the affinity of a source exactly when the facts say so or more precisely (the bounds are exact
where the buckets were not), with the export's documented exceptions, which only admit too much: an integer outside
0..63 that lies within the bounds in a bucket holding an allowed value; numbers past 2**63-1 (Gt/Lt parse int64)
are clamped to it; and the pooling of models, and of types of one name on a host. Pure: no I/O.
"""

from __future__ import annotations

import math
import shlex
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import pairwise, product
from typing import Any

from devmig.fleet.export import (
    DEFAULT_PREFIX,
    LABEL_VALUE,
    Fact,
    buckets_within,
    check_prefix,
    int_token,
    label_name,
    requirement,
    type_facts,
)
from devmig.fleet.records import HostRecord
from devmig.model.descriptor import DeviceDescriptor, TypeCapability
from devmig.model.params import ParamSpec

#: the largest number Gt and Lt compare: both sides must parse as a 64-bit integer (strconv.ParseInt(v, 10, 64))
INT_MAX = 2**63 - 1

#: a span of allowed integers, inclusive; an unbounded end is an infinity
Span = tuple[float, float]
#: one matchExpressions entry, as the Kubernetes API writes it
Expression = dict[str, Any]


#: the value of a boolean parameter's label when the type takes both values
ANY_BOOL = "any"


def _replaced(fact: Fact) -> bool:
    """The facts one label per parameter or major replaces: the version ladder, the integer buckets, the booleans."""
    return fact.kind == "accepts" or (fact.kind == "param" and fact.parts[1] in ("int", "bool"))


def _number(value: float) -> str:
    return str(int(min(value, INT_MAX)))


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _params(caps: Iterable[TypeCapability], ptype: str) -> Iterator[tuple[str, ParamSpec]]:
    for cap in caps:
        for spec in cap.models.values():
            yield from ((name, param) for name, param in spec.params.items() if param.type == ptype)


def _int_params(caps: Sequence[TypeCapability]) -> dict[str, list[Span]]:
    """Each integer parameter's allowed values, pooled over the models and the capabilities given."""
    spans: dict[str, list[Span]] = defaultdict(list)
    for name, param in _params(caps, "int"):
        include = param.value_set().include
        ranges = include if isinstance(include, tuple) else None
        spans[name] += [(-math.inf, math.inf)] if ranges is None else [(r.lo, r.hi) for r in ranges]
    return {name: _merge(found) for name, found in spans.items()}


def _bool_labels(caps: Sequence[TypeCapability]) -> Iterator[tuple[Fact, str]]:
    """One label per boolean parameter: the value it takes, or `any` (a source asks `In [its value, any]`)."""
    values: dict[str, set[bool]] = defaultdict(set)
    for name, param in _params(caps, "bool"):
        include = param.value_set().include
        values[name] |= {True, False} if include is None else {v for v in include if isinstance(v, bool)}
    for name, taken in values.items():
        yield Fact("bool", (name,)), ANY_BOOL if len(taken) == 2 else ("true" if True in taken else "false")


def _int_labels(name: str, spans: list[Span]) -> Iterator[tuple[Fact, str]]:
    """The bounds of each sign's part and the buckets wholly inside its holes."""
    plus = [(max(lo, 0), hi) for lo, hi in spans if hi >= 0]
    minus = [(lo, min(hi, -1)) for lo, hi in spans if lo <= -1]
    if plus:
        yield Fact("int", (name, "min")), _number(plus[0][0])
        yield Fact("int", (name, "max")), _number(plus[-1][1])
    if minus:  # magnitudes: the one nearest zero is the least
        yield Fact("int", (name, "nmin")), _number(-minus[-1][1])
        yield Fact("int", (name, "nmax")), _number(-minus[0][0])
    for part in (plus, minus):
        for (_, below), (above, _) in pairwise(part):
            for token in buckets_within(int(below) + 1, int(above) - 1):
                yield Fact("gap", (name, token)), LABEL_VALUE


def type_labels(type_id: str, caps: Sequence[TypeCapability], prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """The labels of the capabilities a host has under one type name (one, unless parents differ), pooled."""
    labels = {
        f"{prefix}/{label_name(type_id, f.kind, f.parts)}": LABEL_VALUE
        for cap in caps
        for f in type_facts(cap)
        if not _replaced(f)
    }
    minors: dict[int, int] = {}
    for cap in caps:
        version = cap.software_version
        minors[version.major] = max(minors.get(version.major, 0), version.minor)
    numbers = [(Fact("minor", (str(major),)), _number(minor)) for major, minor in minors.items()]
    numbers += _bool_labels(caps)
    for name, spans in _int_params(caps).items():
        numbers += _int_labels(name, spans)
    labels.update((f"{prefix}/{label_name(type_id, f.kind, f.parts)}", value) for f, value in numbers)
    return labels


def host_labels(host: HostRecord, prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """A host's node labels: the labels of all its types, each under its type, sorted by key."""
    check_prefix(prefix)  # once, not per label
    by_type: dict[str, dict[str, TypeCapability]] = defaultdict(dict)
    for record in host.types:
        by_type[record.type_id].setdefault(record.capability.model_dump_json(), record.capability)
    labels: dict[str, str] = {}
    for type_id, caps in by_type.items():
        labels.update(type_labels(type_id, list(caps.values()), prefix))
    return dict(sorted(labels.items()))


def k8s_labels(hosts: Iterable[HostRecord], prefix: str = DEFAULT_PREFIX) -> dict[str, dict[str, str]]:
    """node (the host's name) -> its labels."""
    return {host.name: host_labels(host, prefix) for host in sorted(hosts, key=lambda h: h.name)}


def kubectl_lines(labels: Mapping[str, Mapping[str, str]]) -> Iterator[str]:
    """One `kubectl label node` command per node that has labels, ready for a shell."""
    for node, pairs in labels.items():
        if pairs:
            assignments = " ".join(shlex.quote(f"{key}={value}") for key, value in pairs.items())
            yield f"kubectl label node {shlex.quote(node)} --overwrite {assignments}"


# -- what a source asks ----------------------------------------------------------------------------------------------


def _at_least(key: str, value: int) -> Expression:
    """The label's number is >= value (value >= 0)."""
    if value == 0:
        return {"key": key, "operator": "Exists"}
    return {"key": key, "operator": "Gt", "values": [str(min(value, INT_MAX) - 1)]}


def _at_most(key: str, value: int) -> Expression:
    """The label's number is <= value (value >= 0)."""
    if value >= INT_MAX:
        return {"key": key, "operator": "Exists"}
    return {"key": key, "operator": "Lt", "values": [str(value + 1)]}


def _int_needs(key: Callable[[Fact], str], name: str, value: int) -> list[Expression]:
    sign = "" if value >= 0 else "n"
    size = abs(value)
    return [
        _at_most(key(Fact("int", (name, sign + "min"))), size),
        _at_least(key(Fact("int", (name, sign + "max"))), size),
        {"key": key(Fact("gap", (name, int_token(value)))), "operator": "DoesNotExist"},
    ]


def _choices(source: DeviceDescriptor, type_id: str, prefix: str) -> list[list[list[Expression]]]:
    """For each group of the source's requirement, its alternatives, each a list of expressions (ANDed)."""

    def key(fact: Fact) -> str:
        return f"{prefix}/{label_name(type_id, fact.kind, fact.parts)}"

    groups: list[list[list[Expression]]] = []
    for group in requirement(source):
        (first, *_) = sorted(group)
        if first.kind == "accepts":
            version = source.software_version
            groups.append([[_at_least(key(Fact("minor", (str(version.major),))), version.minor)]])
        elif _replaced(first) and first.parts[1] == "bool":
            name, _, text = first.parts
            groups.append([[{"key": key(Fact("bool", (name,))), "operator": "In", "values": [text, ANY_BOOL]}]])
        elif _replaced(first):
            name = first.parts[0]
            value = source.params[name]
            assert isinstance(value, int)  # an "int" fact is made of an int
            groups.append([_int_needs(key, name, value)])
        else:
            groups.append([[{"key": key(f), "operator": "In", "values": [LABEL_VALUE]}] for f in sorted(group)])
    return groups


def _copy(expression: Expression) -> Expression:
    return {key: list(value) if isinstance(value, list) else value for key, value in expression.items()}


def node_affinity(source: DeviceDescriptor, types: Iterable[str] = (), prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The `nodeAffinity` that keeps the nodes with a type of `types` (default: the source's own, as KubeVirt keeps
    a VM's device resource) able to take `source`: one term per type and choice of alternatives (terms are ORed,
    the expressions of a term ANDed)."""
    check_prefix(prefix)
    terms: list[dict[str, Any]] = []
    for type_id in dict.fromkeys(types or [source.type]):
        for choice in product(*_choices(source, type_id, prefix)):
            # fresh objects in every term: shared ones would print as YAML anchors and aliases
            expressions = [_copy(expression) for alternative in choice for expression in alternative]
            terms.append({"matchExpressions": expressions})
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
