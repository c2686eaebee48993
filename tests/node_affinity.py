"""Kubernetes' node affinity, evaluated as the scheduler does, to test devmig's labels and affinities against: the
semantics of k8s.io/component-helpers/scheduling/corev1/nodeaffinity and k8s.io/apimachinery/pkg/labels
(Requirement.Matches), written from their documentation, independent of devmig's code.

- nodeSelectorTerms are ORed; the matchExpressions of a term ANDed; a term without expressions matches nothing.
- In: the label exists and its value is one of `values`; NotIn: it does not exist, or its value is none of them.
- Exists / DoesNotExist: the key is there or not (`values` must be empty).
- Gt / Lt: `values` holds one element; it and the label's value must parse as a base-10 int64 (strconv.ParseInt);
  a label that does not parse never matches.
- Every value of an expression must be a valid label value (labels.NewRequirement): a term with an invalid one is
  a parse error, and the term matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INT = re.compile(r"^[+-]?[0-9]+$")
INT64 = (-(2**63), 2**63 - 1)


class InvalidExpressionError(ValueError):
    """An expression the API server or the scheduler would refuse."""


def valid_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not (DNS_SUBDOMAIN.fullmatch(prefix) and len(prefix) <= 253):
        return False
    return bool(LABEL_NAME.fullmatch(name)) and len(name) <= 63


def valid_value(value: str) -> bool:
    return bool(LABEL_VALUE.fullmatch(value)) and len(value) <= 63


def parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), None where it fails."""
    if not _INT.fullmatch(text):
        return None
    number = int(text)
    return number if INT64[0] <= number <= INT64[1] else None


def _check(expression: Mapping[str, Any]) -> None:
    key, operator, values = expression["key"], expression["operator"], list(expression.get("values") or [])
    if not valid_key(key):
        raise InvalidExpressionError(f"key {key!r}")
    if operator in ("In", "NotIn") and not values:
        raise InvalidExpressionError(f"{operator} without values")
    if operator in ("Exists", "DoesNotExist") and values:
        raise InvalidExpressionError(f"{operator} with values")
    if operator in ("Gt", "Lt") and (len(values) != 1 or parse_int64(values[0]) is None):
        raise InvalidExpressionError(f"{operator} needs one integer, got {values}")
    if operator not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
        raise InvalidExpressionError(f"operator {operator!r}")
    if not all(valid_value(v) for v in values):
        raise InvalidExpressionError(f"values {values}")


def expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    _check(expression)
    key, operator, values = expression["key"], expression["operator"], list(expression.get("values") or [])
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if not present:
        return False
    have, want = parse_int64(labels[key]), parse_int64(values[0])
    if have is None or want is None:
        return False
    return have > want if operator == "Gt" else have < want


def term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    if not expressions:
        return False
    try:
        return all(expression_matches(e, labels) for e in expressions)
    except InvalidExpressionError:
        return False


def node_matches(affinity: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a node with `labels` passes `affinity` ({"nodeAffinity": {...}}), its labels all valid."""
    assert all(valid_key(k) and valid_value(v) for k, v in labels.items()), labels
    required = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return any(term_matches(term, labels) for term in required["nodeSelectorTerms"])


def all_valid(affinity: Mapping[str, Any]) -> bool:
    """Every expression of every term is one the API server accepts."""
    required = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    try:
        for term in required["nodeSelectorTerms"]:
            for expression in term["matchExpressions"]:
                _check(expression)
    except InvalidExpressionError:
        return False
    return True
