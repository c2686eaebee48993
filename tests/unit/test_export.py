"""The exports for schedulers (devmig.fleet.export): valid Placement and Kubernetes names for every type of the default
lab and of vDPA management devices, names that never collide, and required traits that agree with `devmig check`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.compat import check
from devmig.errors import InputError
from devmig.fleet.collect import collect
from devmig.fleet.export import (
    ENCODED_RULES,
    HASHED,
    KINDS,
    LABEL_VALUE,
    PLACEMENT_PREFIX,
    Fact,
    Requirement,
    check_prefix,
    int_token,
    int_tokens,
    label_key,
    placement,
    placement_query,
    requirement,
    resource_class,
    satisfies,
    trait,
    type_facts,
)
from devmig.fleet.k8s import host_labels, k8s_labels, kubectl_lines, node_affinity, type_labels
from devmig.fleet.records import HostRecord, TypeRecord
from devmig.host import vdpa
from devmig.host.profile import load_profiles
from devmig.machine import open_host
from devmig.model import DeviceDescriptor, IntRange, ParamSpec, ParamValue, SoftwareVersion, TypeCapability
from devmig.model.verdict import Verdict
from devmig.sim.vdpa import SimVdpa, pci_net, vdpasim_blk, vdpasim_net
from tests.node_affinity import all_valid, node_matches
from tests.strategies import capability_docs, source_from_init_values

LAB_HOSTS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta")
MAC = "52:54:00:12:34:56"

# The rules of the peers, as their own validation code states them.
#: Placement (placement/schemas/common.py, trait.py, resource_class.py; resource_provider.py: names of 200 at most)
PLACEMENT_NAME = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
#: Kubernetes (k8s.io/apimachinery/pkg/util/validation: IsQualifiedName, IsDNS1123Subdomain, IsValidLabelValue)
K8S_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
K8S_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
K8S_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@cache
def lab_records() -> tuple[HostRecord, ...]:
    """The default lab's hosts as the fleet stores them (fresh: nothing changed them)."""
    profiles = load_profiles("/nonexistent")
    return tuple(collect(open_host(f"sim:{name}"), profiles, name=name) for name in LAB_HOSTS)


@cache
def vdpa_world() -> tuple[tuple[TypeCapability, ...], tuple[DeviceDescriptor, ...]]:
    """vdpa_sim's two management devices and an mlx5-like NIC, with a device on each net one."""
    backend = SimVdpa([vdpasim_net(), vdpasim_blk(), pci_net("0000:03:00.2")])
    caps = tuple(cap for mgmt in backend.mgmtdevs() for cap in vdpa.capabilities(mgmt))
    backend.add("v0", "vdpasim_net", mac=MAC, mtu=9000)
    backend.add("big", "pci/0000:03:00.2", max_vqp=4, mtu=9000, mac=MAC)
    backend.add("plain", "vdpasim_net")
    sources = tuple(vdpa.descriptor(dev, backend.config(dev.name)) for dev in backend.devices())
    return caps, sources


def vdpa_host() -> HostRecord:
    caps, _ = vdpa_world()
    return HostRecord("vdpa-host", tuple(TypeRecord(c.type.rsplit("-", 1)[0], c.type, c, None) for c in caps))


def all_capabilities() -> list[TypeCapability]:
    caps = [t.capability for h in lab_records() for t in h.types] + list(vdpa_world()[0])
    unique = {c.model_dump_json(): c for c in caps}
    return list(unique.values())


# -- names -----------------------------------------------------------------------------------------------------------


def test_placement_names_follow_placement_rules() -> None:
    doc = placement([*lab_records(), vdpa_host()])
    names = doc["traits"] + doc["resource_classes"]
    assert names and all(PLACEMENT_NAME.fullmatch(n) and len(n) <= 255 for n in names)
    assert all(n.startswith(PLACEMENT_PREFIX) for n in names)
    providers = doc["resource_providers"]
    by_uuid = {p["uuid"]: p for p in providers}
    assert len(by_uuid) == len(providers) and len({p["name"] for p in providers}) == len(providers)
    for p in providers:
        assert set(p) == {"uuid", "name", "parent_provider_uuid", "root_provider_uuid", "inventories", "traits"}
        assert str(uuid.UUID(p["uuid"])) == p["uuid"] and 0 < len(p["name"]) <= 200
        root = by_uuid[p["root_provider_uuid"]]
        assert root["parent_provider_uuid"] is None and p["parent_provider_uuid"] in (None, root["uuid"])
        assert set(p["traits"]) <= set(doc["traits"]) and set(p["inventories"]) <= set(doc["resource_classes"])
        for inventory in p["inventories"].values():
            assert inventory["total"] >= 1 and inventory["max_unit"] == inventory["total"]
            assert (inventory["reserved"], inventory["min_unit"], inventory["step_size"]) == (0, 1, 1)
    roots = [p for p in providers if p["parent_provider_uuid"] is None]
    assert [r["name"] for r in roots] == sorted(h.name for h in [*lab_records(), vdpa_host()])
    assert all(not r["traits"] and not r["inventories"] for r in roots)


def test_labels_follow_kubernetes_rules() -> None:
    labels = k8s_labels([*lab_records(), vdpa_host()])
    assert set(labels) == {*LAB_HOSTS, "vdpa-host"}
    for node, pairs in labels.items():
        assert pairs, node
        for key, value in pairs.items():
            prefix, _, name = key.partition("/")
            assert K8S_PREFIX.fullmatch(prefix) and len(prefix) <= 253, key
            assert K8S_NAME.fullmatch(name) and len(name) <= 63, key
            assert K8S_VALUE.fullmatch(value) and len(value) <= 63, (key, value)
            # a flag says "true"; a number is what Gt/Lt parse (a non-negative int64); a boolean parameter says which
            assert value in (LABEL_VALUE, "false", "any") or (value.isdigit() and int(value) < 2**63), (key, value)


def test_a_prefix_must_be_a_dns_subdomain() -> None:
    assert check_prefix("gpu.example.com") == "gpu.example.com"
    for bad in ("Devmig.io", "devmig_io", "-devmig.io", "devmig..io", "a" * 254, ""):
        with pytest.raises(InputError, match="expected a DNS subdomain"):
            check_prefix(bad)
    cap = lab_records()[0].types[0].capability
    assert all(k.startswith("gpu.example.com/") for k in host_labels(lab_records()[0], "gpu.example.com"))
    with pytest.raises(InputError):
        label_key(cap.type, Fact("api", ("vfio_pci",)), "Bad")


def test_both_exports_render_the_same_facts() -> None:
    """Each type's provider has one trait per fact and its node one label per fact, except the facts a number or a
    boolean's one label replaces (versions, integer and boolean parameters): one table, two encoders."""
    for host in [*lab_records(), vdpa_host()]:
        doc = placement([host])
        labels = k8s_labels([host])[host.name]
        for record in host.types:
            facts = type_facts(record.capability)
            name = f"{host.name}/{record.parent}/{record.type_id}"
            (provider,) = [p for p in doc["resource_providers"] if p["name"] == name]
            assert sorted(trait(f) for f in facts) == provider["traits"]
            flags = {f for f in facts if f.kind != "accepts" and not (f.kind == "param" and f.parts[1] != "str")}
            keys = {label_key(record.type_id, f) for f in flags}
            assert len(keys) == len(flags) and keys <= set(labels)
            major = record.capability.software_version.major
            assert label_key(record.type_id, Fact("minor", (str(major),))) in labels


# Adversarial strings: case, the separators each encoder uses, characters neither can hold, and lengths past the
# limits, so that plain and hashed names and truncated ones all meet.
_CHARS = "aAbZ09_-.:/ é"
parts_st = st.text(_CHARS, max_size=6) | st.text("ab_", min_size=250, max_size=300)
facts_st = st.builds(Fact, st.sampled_from(sorted(KINDS)), st.lists(parts_st, max_size=3).map(tuple))

TRICKY: list[tuple[Fact, Fact]] = [
    (Fact("param", ("a_b", "int", "1")), Fact("param", ("a", "b_int", "1"))),
    (Fact("param", ("pv-mode", "str", "x")), Fact("param", ("pv_mode", "str", "x"))),
    (Fact("model", ("Ab",)), Fact("model", ("ab",))),
    (Fact("id", ()), Fact("id", ("",))),
    (Fact("id", ("a", "b")), Fact("id", ("a_b",))),
    (Fact("param", ("x", "str", "")), Fact("param", ("x", "str", "_"))),
    (Fact("model", ("a" * 300,)), Fact("model", ("a" * 301,))),
    (Fact("nomodel", ("simgpu-2G",)), Fact("nomodel", ("simgpu_2G",))),
]


def test_kind_codes_keep_plain_and_hashed_names_apart() -> None:
    """A code never holds a separator, and no code with the hash mark is another kind's code."""
    assert all(re.fullmatch(r"[a-z]+", kind) for kind in KINDS)
    assert not {kind + HASHED for kind in KINDS} & set(KINDS)


@pytest.mark.parametrize(("one", "other"), TRICKY)
def test_near_facts_get_distinct_names(one: Fact, other: Fact) -> None:
    assert trait(one) != trait(other)
    assert label_key("t", one) != label_key("t", other)


@given(st.lists(facts_st, unique=True, max_size=40), st.sampled_from(["simgpu-2G", "a:b", "t" * 80]))
def test_names_are_collision_free(facts: list[Fact], scope: str) -> None:
    traits = {trait(f) for f in facts}
    labels = {label_key(scope, f) for f in facts}
    assert len(traits) == len(facts) and len(labels) == len(facts)
    assert all(PLACEMENT_NAME.fullmatch(t) and len(t) <= 255 for t in traits)
    assert all(K8S_NAME.fullmatch(k.partition("/")[2]) and len(k.partition("/")[2]) <= 63 for k in labels)


def _read_trait(name: str) -> Fact | None:
    """Read a plain trait back (None for a hashed one): the encoding loses nothing it does not hash."""
    code, _, rest = name.removeprefix(PLACEMENT_PREFIX).partition("_")
    if code.endswith(HASHED.upper()):
        return None
    return Fact(code.lower(), tuple(p.lower() for p in rest.split("__")) if rest else ())


def _read_label(key: str) -> tuple[str, Fact] | None:
    scope, code, *parts = key.partition("/")[2].split(".")
    return None if code.endswith(HASHED) else (scope, Fact(code, tuple(parts)))


def test_plain_names_read_back_to_their_fact() -> None:
    plain = 0
    for cap in all_capabilities():
        for fact in type_facts(cap):
            back = _read_trait(trait(fact))
            assert back is None or back == fact
            read = _read_label(label_key(cap.type, fact))
            assert read is None or read == (cap.type, fact)
            plain += back is not None
    assert plain > 100  # most facts of the lab need no hash
    assert trait(Fact("api", ("vfio_pci",))) == "CUSTOM_DEVMIG_API_VFIO_PCI"
    assert trait(Fact("param", ("pv_mode", "str", "ppgtt"))) == "CUSTOM_DEVMIG_PARAM_PV_MODE__STR__PPGTT"
    assert label_key("simgpu-2G", Fact("accepts", ("1", "2"))) == "devmig.io/simgpu-2G.accepts.1.2"
    assert re.fullmatch(r"CUSTOM_DEVMIG_TYPEH_SIMGPU_2G_[A-Z2-7]{8}", resource_class("simgpu-2G"))


# -- integer buckets -------------------------------------------------------------------------------------------------


def test_integers_fall_in_one_bucket_each() -> None:
    assert [int_token(v) for v in (0, 1, 63, 64, 127, 128, 1500, -1, -2, -3, -4)] == [
        "0", "1", "63", "64_127", "64_127", "128_255", "1024_2047", "n1_1", "n2_3", "n2_3", "n4_7",
    ]  # fmt: skip
    assert int_token(2**64) == int_token(10**30) == "18446744073709551616_up"
    assert int_token(-(2**64)) == "n18446744073709551616_up" and int_token(2**64 - 1) != int_token(2**64)
    assert int_tokens([IntRange(68, 65535)]) == [f"{2**b}_{2 ** (b + 1) - 1}" for b in range(6, 16)]
    assert int_tokens([IntRange(1, 3), IntRange(2, 5)]) == ["1", "2", "3", "4", "5"]
    every = int_tokens(None)
    assert len(every) == len(set(every)) == 188
    for value in [*range(-300, 300), 2**63, -(2**63), 2**70]:
        holding = [t for t in every if int_token(value) == t]
        assert len(holding) == 1 and int_tokens([IntRange(value, value)]) == holding


# -- agreement with devmig check ---------------------------------------------------------------------------------------


def _probes(spec: ParamSpec) -> list[ParamValue]:
    """Values that hit and miss a parameter's allowed set: its ends and their neighbours, its strings and another."""
    values = spec.value_set().include
    if spec.type == "bool":
        return [True, False]
    if spec.type == "str":
        return [*(values if isinstance(values, frozenset) else []), "other", MAC]
    ranges = values if isinstance(values, tuple) else (IntRange(0, 5),)
    return sorted({v for r in ranges for v in (r.lo - 1, r.lo, r.hi, r.hi + 1)})


def sources_of(cap: TypeCapability) -> list[DeviceDescriptor]:
    """A device just made of the type, and variants that break or keep each rule the traits encode."""
    model = next(iter(cap.models), None)
    specs = cap.param_specs()
    init = {n: p.init_value for n, p in specs.items() if p.off_value is None or p.init_value != p.off_value}
    base = DeviceDescriptor(
        device_api=cap.device_api,
        type=cap.type,
        model=model,
        software_version=cap.software_version,
        api=dict(cap.api),
        params=init,
        confidence=cap.confidence,
    )
    v = cap.software_version
    out = [base, base.model_copy(update={"params": {**init, "unknown_param": 1}})]
    out += [base.model_copy(update={"software_version": SoftwareVersion(v.major, v.minor + 1, 0)})]
    out += [base.model_copy(update={"software_version": SoftwareVersion(v.major + 1, 0, 0)})]
    for name, spec in specs.items():
        out += [base.model_copy(update={"params": {**init, name: value}}) for value in _probes(spec)]
        out.append(base.model_copy(update={"params": {**init, name: "text" if spec.type != "str" else 7}}))
        out.append(base.model_copy(update={"params": {k: x for k, x in init.items() if k != name}}))
    return out


def _encoded_errors(verdict: Verdict) -> list[Any]:
    return [f for f in verdict.findings if f.severity == "error" and f.code in ENCODED_RULES]


def _coarse(finding: Any) -> bool:
    """An integer outside 0..63 shares its bucket: the prefilter may let it through to the exact check."""
    value = finding.source
    return finding.code == "param-value-not-allowed" and type(value) is int and not 0 <= value < 64


def _meets(provider_traits: Iterable[str], needs: Requirement) -> bool:
    have = set(provider_traits)
    return all(any(trait(f) in have for f in group) for group in needs)


def _agree(source: DeviceDescriptor, dest: TypeCapability) -> tuple[bool, bool]:
    """(the prefilter takes it, check finds no error it encodes); asserting no false negative and no false positive
    beyond the documented coarse integers, for the facts, the traits and the Kubernetes labels under the printed
    node affinity (evaluated as the scheduler does). The facts and the traits give the same answer; the labels never
    take more than the facts (their integer bounds are exact where buckets are not)."""
    needs = requirement(source)
    facts = type_facts(dest)
    takes = satisfies(facts, needs)
    assert _meets([trait(f) for f in facts], needs) == takes
    affinity = node_affinity(source, [dest.type])
    assert all_valid(affinity), affinity
    admits = node_matches(affinity, type_labels(dest.type, [dest]))
    assert takes or not admits, (source, dest.type)
    errors = _encoded_errors(check(source, dest))
    if not errors:
        assert takes and admits, (source, dest.type)  # never leaves out a host devmig would accept
    elif takes or admits:
        assert all(_coarse(f) for f in errors), (source, dest.type, errors)
    return takes, not errors


def test_required_traits_agree_with_check_on_the_lab() -> None:
    caps = all_capabilities()
    sources = [s for cap in caps for s in sources_of(cap)]
    sources += [d.descriptor for h in lab_records() for d in h.devices if d.descriptor is not None]
    sources += list(vdpa_world()[1])
    outcomes = [_agree(source, dest) for source in sources for dest in caps]
    exact = sum(1 for takes, ok in outcomes if takes == ok)
    assert {(True, True), (False, False), (True, False)} <= set(outcomes)
    assert exact / len(outcomes) > 0.99 and len(outcomes) > 5000


def test_the_lab_story_in_traits() -> None:
    """alpha's running vGPU: beta, gamma and zeta's types (same driver or newer) qualify, delta (older) and epsilon
    (another major) do not, nor eta's s390 devices."""
    records = {h.name: h for h in lab_records()}
    (vgpu,) = [d.descriptor for d in records["alpha"].devices if d.kind == "mdev"]
    assert vgpu is not None
    takes = {
        name: sorted(t.type_id for t in host.types if satisfies(type_facts(t.capability), requirement(vgpu)))
        for name, host in records.items()
    }
    assert takes["beta"] == takes["gamma"] == takes["zeta"] == ["simgpu-2G"]
    assert takes["delta"] == takes["epsilon"] == takes["eta"] == []


@given(capability_docs(), capability_docs(), st.data())
def test_required_traits_agree_with_check_on_generated_types(
    src_doc: dict[str, Any], dst_doc: dict[str, Any], data: st.DataObject
) -> None:
    source = source_from_init_values(TypeCapability.model_validate(src_doc))
    mutate: bool = data.draw(st.booleans())
    if source.params and mutate:
        name = data.draw(st.sampled_from(sorted(source.params)))
        other: ParamValue = data.draw(st.integers(-70, 70) | st.booleans() | st.text("ab-", max_size=3))
        source = source.model_copy(update={"params": {**source.params, name: other}})
    _agree(source, TypeCapability.model_validate(dst_doc))


def test_a_type_with_two_models_pools_its_parameters() -> None:
    """The documented imprecision: the traits of a type with several models hold the parameters of all."""
    doc: dict[str, Any] = {
        "device_api": "vfio-pci",
        "type": "gfx",
        "software_version": "1.0.0",
        "api": {"pci_id": "1eaa:0101"},
        "models": {
            "vendor-a.com/a": {"params": {"mode": {"type": "str", "init_value": "x", "allowed_values": ["x"]}}},
            "vendor-a.com/b": {"params": {"mode": {"type": "str", "init_value": "y", "allowed_values": ["y"]}}},
        },
    }
    dest = TypeCapability.model_validate(doc)
    source = DeviceDescriptor(
        device_api="vfio-pci",
        type="gfx",
        model="vendor-a.com/a",
        software_version="1.0.0",
        api={"pci_id": "1eaa:0101"},
        params={"mode": "y"},
    )
    assert satisfies(type_facts(dest), requirement(source)) and not check(source, dest).compatible


# -- documents -------------------------------------------------------------------------------------------------------


def test_inventories_count_free_instances_and_devices_made() -> None:
    """As Nova counts a pGPU: free instances plus the devices made of the type; a PCI function is one instance;
    no inventory when the count is unknown (vDPA) or nothing is left (Placement refuses a total of 0)."""
    records = {h.name: h for h in lab_records()}
    doc = placement([records["alpha"], records["zeta"]])
    totals = {
        p["name"]: next(iter(p["inventories"].values()))["total"] if p["inventories"] else None
        for p in doc["resource_providers"]
    }
    assert totals["alpha/0000:00:02.0/simgpu-2G"] == 3  # 2 free and the running one
    assert totals["alpha/0000:00:02.0/simgpu-1G"] == 4
    assert totals["alpha/0000:3b:00.2/simnic_vfio_pci:1af4:10f2"] == 1  # in use by a VM, still one function
    assert totals["alpha/vdpasim_net/vdpasim_net-net"] is None
    assert totals["zeta/0000:00:02.0/simgpu-1G"] == 1 and totals["zeta/0000:00:02.0/simgpu-2G"] is None
    rc = {p["name"]: list(p["inventories"]) for p in doc["resource_providers"]}
    assert rc["alpha/0000:00:02.0/simgpu-2G"] == [resource_class("simgpu-2G")]


def test_an_export_is_the_same_every_time() -> None:
    first = placement(lab_records())
    again = placement(reversed(lab_records()))
    assert first == again
    twin = HostRecord("alpha", lab_records()[0].types + lab_records()[0].types, lab_records()[0].devices)
    assert placement([twin]) == placement([lab_records()[0]])  # a type listed twice is one provider


def test_kubectl_lines_quote_for_a_shell() -> None:
    labels = {"node 1": {"devmig.io/a.api.vdpa": "true"}, "empty": {}}
    assert list(kubectl_lines(labels)) == ["kubectl label node 'node 1' --overwrite devmig.io/a.api.vdpa=true"]
    lines = list(kubectl_lines(k8s_labels(lab_records())))
    assert len(lines) == len(LAB_HOSTS) and lines[0].startswith("kubectl label node alpha --overwrite devmig.io/")


def test_queries_for_a_source() -> None:
    records = {h.name: h for h in lab_records()}
    (vgpu,) = [d.descriptor for d in records["alpha"].devices if d.kind == "mdev"]
    assert vgpu is not None
    found = placement_query(vgpu)
    assert found["microversion"] == "1.39" and found["resource_class"] == resource_class("simgpu-2G")
    assert "CUSTOM_DEVMIG_ACCEPTS_1__2" in found["required"] and "CUSTOM_DEVMIG_API_VFIO_PCI" in found["required"]
    assert found["required_any"] == [["CUSTOM_DEVMIG_ANY_PV_MODE__STR", "CUSTOM_DEVMIG_PARAM_PV_MODE__STR__PPGTT"]]
    assert found["query"].count("required=") == 2 and "&required=in:CUSTOM_DEVMIG_ANY_PV_MODE__STR," in found["query"]
    terms = node_affinity(vgpu)["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert len(terms["nodeSelectorTerms"]) == 2  # pv_mode=ppgtt, or any pv_mode
    nic = next(d.descriptor for d in records["alpha"].devices if d.kind == "pci")
    assert nic is not None and placement_query(nic)["microversion"] == "1.18"
    affinity = node_affinity(nic)
    assert len(affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]) == 1
    assert node_matches(affinity, host_labels(records["beta"]))  # beta's NIC function takes alpha's
    assert not node_matches(affinity, host_labels(records["eta"]))
