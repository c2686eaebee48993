"""One test per rule outcome, each on two small documents."""

from __future__ import annotations

import pytest

from devmig.compat import CODES, CONFLICT_CODES, check, plan_params
from devmig.errors import IncompatibleError
from devmig.model import Verdict
from tests.builders import MODEL, cap, desc, param, with_params
from tests.paths import DOCS


def codes(verdict: Verdict) -> list[str]:
    return [f.code for f in verdict.findings]


def test_same_device_is_identical_with_a_plan() -> None:
    verdict = check(desc(), cap())
    assert (verdict.compatible, verdict.level, verdict.findings) == (True, "identical", [])
    assert verdict.plan == {"new-feature": True, "num-resources": 64}


def test_device_api() -> None:
    verdict = check(desc(device_api="vfio-ccw", api={"subchannel_type": "0"}), cap())
    assert "device-api-mismatch" in codes(verdict) and not verdict.compatible
    found = next(f for f in verdict.findings if f.code == "device-api-mismatch")
    assert (found.field, found.source, found.destination) == ("device_api", "vfio-ccw", "vfio-pci")


def test_api_identity_each_key() -> None:
    verdict = check(desc(api={"pci_id": "1eaa:0102", "subsystem": "x"}), cap())
    found = {f.field: f for f in verdict.findings}
    assert found["api.pci_id"].code == "api-mismatch"
    assert found["api.subsystem"].destination is None
    assert "missing on the destination" in found["api.subsystem"].message


def test_model_mismatch_skips_parameter_rules() -> None:
    verdict = check(desc(model="vendor-b.com/other"), cap())
    assert codes(verdict) == ["model-mismatch"]
    assert verdict.plan is None


def test_same_model_other_type_is_a_warning() -> None:
    # The RFC's gfx-4GB / gfx-8GB: types differ, one model, a parameter tells them apart.
    verdict = check(desc(type="gfx-8GB"), cap(type="gfx-4GB"))
    assert codes(verdict) == ["type-differs"] and verdict.level == "compatible"


def test_without_models_the_types_must_match() -> None:
    verdict = check(desc(model=None, params={}), cap(models={}, type="other"))
    assert codes(verdict) == ["type-mismatch"]
    assert check(desc(model=None, params={}), cap(models={})).level == "identical"


def test_model_on_one_side_only() -> None:
    assert codes(check(desc(model=None, params={}), cap())) == ["model-mismatch"]
    assert codes(check(desc(), cap(models={}))) == ["model-mismatch"]


@pytest.mark.parametrize(
    ("src", "dst", "expected", "compatible"),
    [
        ("1.1.0", "2.1.0", "major-mismatch", False),
        ("2.0.0", "1.9.9", "major-mismatch", False),
        ("1.2.0", "1.1.9", "minor-older", False),
        ("1.1.0", "1.3.0", "minor-newer", True),
        ("1.1.5", "1.1.0", "bugfix-differs", True),
    ],
)
def test_versions(src: str, dst: str, expected: str, compatible: bool) -> None:
    verdict = check(desc(software_version=src), cap(software_version=dst))
    assert codes(verdict) == [expected]
    assert verdict.compatible is compatible


def test_unknown_parameter() -> None:
    verdict = check(desc(params={"num-resources": 64, "turbo": 1}), cap())
    assert codes(verdict) == ["param-unknown"]
    assert verdict.findings[0].field == "params.turbo"


def test_value_of_the_wrong_type_is_a_finding_not_a_crash() -> None:
    verdict = check(desc(params={"new-feature": 1, "num-resources": "64"}), cap())
    assert codes(verdict) == ["param-type-mismatch", "param-type-mismatch"]
    assert verdict.findings[0].destination == "bool"


def test_value_not_allowed() -> None:
    verdict = check(desc(params={"new-feature": True, "num-resources": 32}), cap())
    assert codes(verdict) == ["param-value-not-allowed"]
    assert verdict.findings[0].destination == [64]


def test_absent_destination_parameter_needs_an_off_value() -> None:
    # num-resources has no off_value: a source that does not list it cannot go there.
    verdict = check(desc(params={"new-feature": True}), cap())
    assert codes(verdict) == ["param-cannot-be-off"]


def test_absent_parameter_is_switched_off() -> None:
    verdict = check(desc(params={"num-resources": 64}), cap())
    assert verdict.level == "identical"
    assert verdict.plan == {"new-feature": False, "num-resources": 64}


def test_every_finding_is_reported_not_only_the_first() -> None:
    source = desc(
        device_api="vfio-ccw",
        api={"subchannel_type": "0"},
        software_version="2.0.0",
        params={"num-resources": 32, "turbo": True},
    )
    found = set(codes(check(source, cap())))
    assert found == {
        "device-api-mismatch",
        "api-mismatch",
        "major-mismatch",
        "param-value-not-allowed",
        "param-unknown",
    }


def test_plan_params_writes_each_parameter_once_in_declaration_order() -> None:
    dest = with_params(
        {
            "z": param("int", 1, off_value=0),
            "a": param("str", "x", off_value="", allowed_values=["", "x", "y"]),
            "m": param("bool", False, off_value=False),
        }
    )
    plan = plan_params(desc(params={"a": "y"}), dest)
    assert list(plan.items()) == [("z", 0), ("a", "y"), ("m", False)]


def test_plan_params_refuses_with_the_verdict() -> None:
    with pytest.raises(IncompatibleError) as err:
        plan_params(desc(params={"new-feature": True}), cap())
    assert isinstance(err.value.verdict, Verdict)
    assert "cannot switch num-resources off" in str(err.value)


def test_every_code_is_catalogued_and_documented() -> None:
    doc = (DOCS / "formats.md").read_text()
    for code in [*CODES, *CONFLICT_CODES]:
        assert f"`{code}`" in doc, f"{code} missing from docs/formats.md"
    assert MODEL  # the builders' model is the RFC's own example
