"""The baseline: which values go everywhere, and who excludes what."""

from __future__ import annotations

import pytest

from devmig.compat import baseline
from devmig.errors import InputError
from tests.builders import MODEL, cap, param, with_params


def test_one_capability_is_its_own_baseline() -> None:
    result = baseline({"a": cap()})
    assert result.usable and result.conflicts == []
    assert str(result.software_version) == "1.1.0"
    params = result.models[MODEL].params
    assert params["num-resources"].allowed_values == [64]
    assert params["new-feature"].allowed_values == [False, True] and params["new-feature"].off_value is False


def test_version_floor_and_major_conflict() -> None:
    result = baseline({"a": cap(software_version="1.4.2"), "b": cap(software_version="1.2.7")})
    assert str(result.software_version) == "1.2.7"
    split = baseline({"a": cap(), "b": cap(), "c": cap(software_version="2.0.0")})
    assert not split.usable and split.software_version is None
    (conflict,) = split.conflicts
    assert (conflict.code, conflict.excluded_by) == ("major-mismatch", ["c"])


def test_ranges_intersect_and_the_narrowing_host_is_named() -> None:
    a = with_params({"q": param("int", 4, allowed_values=["1-16"])})
    b = with_params({"q": param("int", 4, allowed_values=["4-32", 64])})
    result = baseline({"a": a, "b": b})
    assert result.models[MODEL].params["q"].allowed_values == ["4-16"]
    assert sorted(c.excluded_by[0] for c in result.conflicts if c.code == "param-values-narrowed") == ["a", "b"]


def test_empty_set_is_an_error_naming_each_side() -> None:
    a = with_params({"mode": param("str", "x", allowed_values=["x"])})
    b = with_params({"mode": param("str", "y", allowed_values=["y"])})
    result = baseline({"a": a, "b": b})
    assert not result.usable
    (empty,) = [c for c in result.conflicts if c.severity == "error"]
    assert empty.code == "param-no-common-value" and empty.excluded_by == ["a", "b"]
    assert "a accepts x; b accepts y" in empty.message
    assert "mode" not in result.models[MODEL].params


def test_a_parameter_on_some_hosts_must_be_off() -> None:
    a = with_params({"turbo": param("bool", True, off_value=False)})
    b = with_params({})
    result = baseline({"a": a, "b": b})
    turbo = result.models[MODEL].params["turbo"]
    assert result.usable and turbo.must_be_off and turbo.allowed_values == [False]
    stuck = baseline({"a": with_params({"n": param("int", 1)}), "b": b})
    assert not stuck.usable and stuck.conflicts[0].code == "param-cannot-be-off"
    assert stuck.conflicts[0].excluded_by == ["a", "b"]


def test_off_value_is_left_out_where_another_host_cannot_switch_off() -> None:
    a = with_params({"n": param("int", 1, off_value=0, allowed_values=["0-4"])})
    b = with_params({"n": param("int", 1, allowed_values=["0-4"])})
    result = baseline({"a": a, "b": b})
    assert result.models[MODEL].params["n"].allowed_values == ["1-4"]
    (excluded,) = result.conflicts
    assert (excluded.code, excluded.excluded_by) == ("param-off-value-excluded", ["b"])


def test_models_and_identity() -> None:
    other = cap(models={"vendor-b.com/x": {"params": {}}})
    result = baseline({"a": cap(), "b": other})
    assert not result.usable and result.conflicts[0].code == "model-mismatch"
    ids = baseline({"a": cap(), "b": cap(api={"pci_id": "1eaa:0102"})})
    assert [c.code for c in ids.conflicts] == ["api-mismatch"] and "pci_id" not in ids.api


def test_sequences_are_numbered_and_empty_input_is_refused() -> None:
    assert list(baseline([cap(), cap()]).types) == ["#0:my-nic-vf", "#1:my-nic-vf"]
    with pytest.raises(InputError):
        baseline([])
