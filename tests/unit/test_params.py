from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from devmig.model import IntRange, ParamSpec, ValueSet

ints = st.integers(-(2**40), 2**40)


@given(ints, ints)
def test_range_text_round_trips(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    rng = IntRange(lo, hi)
    assert IntRange.parse(rng.to_item()) == rng
    if lo < hi:
        assert IntRange.parse(str(rng)) == rng
    else:  # a single value is written as an int; "5" is not an int
        assert rng.to_item() == lo


@pytest.mark.parametrize("item", ["5-1", "a-b", "1-", "-", "1..5", "1 - 5", True, 1.5])
def test_bad_ranges(item: object) -> None:
    with pytest.raises(ValueError):
        IntRange.parse(item)  # type: ignore[arg-type]


def test_negative_ranges_and_membership() -> None:
    spec = ParamSpec(type="int", init_value=-3, allowed_values=["-5--1", 7, "10-12"])
    assert [spec.allows(v) for v in (-5, -1, 0, 7, 8, 11, 13)] == [
        True,
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert not spec.allows(True)  # a bool is not an int
    assert not spec.allows("7")


def test_absent_allowed_values_means_any_value_of_the_type() -> None:
    spec = ParamSpec(type="str", init_value="x")
    assert spec.allows("anything") and not spec.allows(3)
    flag = ParamSpec(type="bool", init_value=True, off_value=False)
    assert flag.allows(False) and flag.allows(True) and not flag.allows(0)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "int", "init_value": True}, "init_value must be of type int"),
        ({"type": "bool", "init_value": 1}, "init_value must be of type bool"),
        ({"type": "int", "init_value": 3, "allowed_values": [1, 2]}, "init_value 3 is not among"),
        (
            {"type": "int", "init_value": 1, "off_value": 0, "allowed_values": [1, 2]},
            "off_value 0 is not among",
        ),
        (
            {"type": "int", "init_value": 1, "allowed_values": [1, "x"]},
            "expected an int or an inclusive range",
        ),
        ({"type": "int", "init_value": 1, "allowed_values": [1, False]}, "expected an int or 'lo-hi'"),
        ({"type": "str", "init_value": "a", "allowed_values": ["a", 1]}, "found int 1"),
        ({"type": "str", "init_value": "a\nb"}, "newline"),
        ({"type": "float", "init_value": 1}, "type"),
        ({"type": "int", "init_value": 1, "unit": "MB"}, "Extra inputs"),
    ],
)
def test_inconsistent_specs_are_refused(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ParamSpec.model_validate(doc)


def test_value_set_intersection_and_exclusion() -> None:
    a = ValueSet.of("int", [1, "3-10"])
    b = ValueSet.of("int", ["5-20"])
    both = a.intersect(b)
    assert both.allowed_values() == ["5-10"]
    assert both.without([7]).allowed_values() == ["5-6", "8-10"]
    anything = ValueSet.of("int", None)
    assert anything.intersect(a) == a
    minus = anything.without([4])
    assert 4 not in minus and 5 in minus and minus.allowed_values() is None and minus.excluded_values() == [4]
    assert minus.intersect(a).allowed_values() == [1, 3, "5-10"]
    assert ValueSet.of("str", ["x"]).intersect(ValueSet.of("str", ["y"])).is_empty
    assert ValueSet.of("bool", None).allowed_values() == [False, True]
    assert ValueSet.of("int", [1]).intersect(ValueSet.of("str", None)).is_empty


@given(st.lists(st.tuples(ints, ints), min_size=1, max_size=6), st.lists(ints, max_size=8), ints)
def test_value_set_membership_matches_its_items(pairs: list[tuple[int, int]], drop: list[int], probe: int) -> None:
    items: list[int | str] = [f"{min(a, b)}-{max(a, b)}" for a, b in pairs]
    values = ValueSet.of("int", items).without(drop)
    expected = any(min(a, b) <= probe <= max(a, b) for a, b in pairs) and probe not in drop
    assert (probe in values) == expected
    # the normalised form describes the same set
    again = ValueSet.of("int", values.allowed_values())
    assert (probe in again) == expected
