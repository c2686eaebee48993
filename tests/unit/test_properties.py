"""Properties of the check and the baseline, on generated capabilities."""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from devmig.compat import baseline, check
from devmig.compat.check import check_device
from devmig.model import DeviceDescriptor, ParamValue, SoftwareVersion, TypeCapability
from devmig.model.descriptor import DeviceAddress
from tests.strategies import capability_docs, device_addresses, source_from_init_values


@given(capability_docs())
def test_a_device_created_from_init_values_is_compatible_with_its_type(doc: dict[str, Any]) -> None:
    cap = TypeCapability.model_validate(doc)
    verdict = check(source_from_init_values(cap), cap)
    assert verdict.compatible and verdict.level == "identical"
    assert verdict.plan is not None and set(verdict.plan) == set(cap.models["vendor-a.com/dev"].params)


@given(capability_docs(), capability_docs(), st.none() | device_addresses, device_addresses)
def test_where_a_device_is_never_changes_a_verdict(
    src_doc: dict[str, Any], dst_doc: dict[str, Any], here: DeviceAddress | None, there: DeviceAddress
) -> None:
    """The address names a device, it does not describe it: two devices are as compatible wherever they are."""
    plain = source_from_init_values(TypeCapability.model_validate(src_doc))
    destination = TypeCapability.model_validate(dst_doc)
    placed = plain.model_copy(update={"address": here})
    assert check(placed, destination) == check(plain, destination)
    for cap in (destination, TypeCapability.model_validate(src_doc)):
        device = source_from_init_values(cap)
        assert check_device(placed, cap, device.model_copy(update={"address": there})) == check_device(
            plain, cap, device
        )


@given(capability_docs(), capability_docs(), st.data())
def test_adding_an_allowed_value_never_breaks_compatibility(
    src_doc: dict[str, Any], dst_doc: dict[str, Any], data: st.DataObject
) -> None:
    source = source_from_init_values(TypeCapability.model_validate(src_doc))
    params = dst_doc["models"]["vendor-a.com/dev"]["params"]
    assume(any("allowed_values" in p for p in params.values()))
    before = check(source, TypeCapability.model_validate(dst_doc))
    name = data.draw(st.sampled_from([n for n, p in params.items() if "allowed_values" in p]))
    spec = params[name]
    values: dict[str, st.SearchStrategy[ParamValue]] = {
        "bool": st.booleans(),
        "int": st.integers(-60, 60),
        "str": st.text("xyz", min_size=1, max_size=3),
    }
    extra = data.draw(values[spec["type"]])
    spec["allowed_values"] = [*spec["allowed_values"], extra]
    after = check(source, TypeCapability.model_validate(dst_doc))
    if before.compatible:
        assert after.compatible


@given(capability_docs(), capability_docs(), st.integers(1, 5))
def test_raising_the_destination_minor_never_breaks_compatibility(
    src_doc: dict[str, Any], dst_doc: dict[str, Any], bump: int
) -> None:
    source = source_from_init_values(TypeCapability.model_validate(src_doc))
    before = check(source, TypeCapability.model_validate(dst_doc))
    v = SoftwareVersion.parse(dst_doc["software_version"])
    dst_doc["software_version"] = str(SoftwareVersion(v.major, v.minor + bump, v.bugfix))
    after = check(source, TypeCapability.model_validate(dst_doc))
    if before.compatible:
        assert after.compatible


@given(st.lists(capability_docs(), min_size=1, max_size=4), st.data())
def test_a_device_configured_from_the_baseline_goes_everywhere(docs: list[dict[str, Any]], data: st.DataObject) -> None:
    for doc in docs:  # same major: otherwise the baseline is rightly unusable
        doc["software_version"] = "1" + doc["software_version"][1:]
    caps = {f"host{i}": TypeCapability.model_validate(doc) for i, doc in enumerate(docs)}
    result = baseline(caps)
    assume(result.usable)
    floor = result.software_version
    assert floor is not None
    ((model, common),) = result.models.items()
    home = caps[data.draw(st.sampled_from(list(caps)))]
    home_params = home.models[model].params
    params: dict[str, ParamValue] = {}
    for name, bp in common.params.items():
        if bp.must_be_off:
            continue  # switched off: left out of the list
        spec = home_params[name]
        from devmig.model import ValueSet

        choices = ValueSet.of(bp.type, bp.allowed_values).without(bp.excluded_values)
        value = choices.sample()
        assert value is not None
        if value != spec.off_value:
            params[name] = value
    source = DeviceDescriptor(
        device_api="vfio-pci",
        type=home.type,
        model=model,
        software_version=floor,
        api=result.api,
        params=params,
    )
    for label, cap in caps.items():
        verdict = check(source, cap)
        assert verdict.compatible, (label, verdict.findings)


@given(st.lists(capability_docs(), min_size=2, max_size=4))
def test_baseline_conflicts_name_real_capabilities(docs: list[dict[str, Any]]) -> None:
    caps = {f"host{i}": TypeCapability.model_validate(doc) for i, doc in enumerate(docs)}
    result = baseline(caps)
    for conflict in result.conflicts:
        assert conflict.excluded_by and set(conflict.excluded_by) <= set(caps)
    assert result.usable == (not any(c.severity == "error" for c in result.conflicts))
