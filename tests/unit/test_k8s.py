"""Kubernetes labels with numbers (devmig.fleet.k8s): one label per version and per integer bound instead of ladders,
and a node affinity that a node passes, evaluated as the scheduler evaluates it (tests/node_affinity.py), exactly when
`devmig check` finds no error the labels encode, with the documented exceptions that only admit too much."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from devmig.compat import check
from devmig.fleet.export import ENCODED_RULES, buckets_within, int_token, type_facts
from devmig.fleet.k8s import INT_MAX, host_labels, node_affinity, type_labels
from devmig.model import DeviceDescriptor, TypeCapability
from tests.node_affinity import all_valid, node_matches
from tests.unit.test_export import lab_records, sources_of

PCI = {"pci_id": "1eaa:0101"}
MODEL = "vendor-a.com/dev"


def cap_with(params: dict[str, Any], version: str = "1.2.0", type_id: str = "gfx") -> TypeCapability:
    return TypeCapability.model_validate(
        {
            "device_api": "vfio-pci",
            "type": type_id,
            "software_version": version,
            "api": PCI,
            "models": {MODEL: {"params": params}},
        }
    )


def source_with(params: dict[str, Any], version: str = "1.2.0", type_id: str = "gfx") -> DeviceDescriptor:
    return DeviceDescriptor(
        device_api="vfio-pci", type=type_id, model=MODEL, software_version=version, api=PCI, params=params
    )


def admits(source: DeviceDescriptor, dest: TypeCapability) -> bool:
    affinity = node_affinity(source, [dest.type])
    assert all_valid(affinity), affinity
    return node_matches(affinity, type_labels(dest.type, [dest]))


def encoded_errors(source: DeviceDescriptor, dest: TypeCapability) -> list[Any]:
    return [f for f in check(source, dest).findings if f.severity == "error" and f.code in ENCODED_RULES]


# -- integers: bounds and gaps ---------------------------------------------------------------------------------------

big_ints = st.integers(-(2**70), 2**70) | st.integers(-70, 70) | st.sampled_from([INT_MAX - 1, INT_MAX, INT_MAX + 1])


@st.composite
def int_sets(draw: st.DrawFn) -> tuple[list[str | int], int]:
    """allowed_values of ranges and single values anywhere (as "lo-hi" and ints), and one of its values."""
    spans = draw(st.lists(st.tuples(big_ints, big_ints.map(abs) | st.integers(0, 3)), min_size=1, max_size=4))
    return [lo if width == 0 else f"{lo}-{lo + width}" for lo, width in spans], spans[0][0]


@given(int_sets(), big_ints)
def test_integer_bounds_never_leave_out_an_allowed_value(drawn: tuple[list[str | int], int], value: int) -> None:
    """Any integers, negative and past int64 included: an allowed value always passes; a value that passes but is
    not allowed lies outside 0..63 (it shares a bucket with an allowed one, or is clamped to 2**63-1)."""
    allowed, init = drawn
    dest = cap_with({"n": {"type": "int", "init_value": init, "allowed_values": allowed}})
    source = source_with({"n": value})
    allowed_here = dest.param_specs()["n"].allows(value)
    assert allowed_here == (not encoded_errors(source, dest))
    passes = admits(source, dest)
    if allowed_here:
        assert passes, (allowed, value)
    elif passes:
        assert not 0 <= value < 64, (allowed, value)


def test_integer_labels_in_the_lab_are_bounds() -> None:
    records = {h.name: h for h in lab_records()}
    alpha = host_labels(records["alpha"])
    assert alpha["devmig.io/simgpu-2G.int.memory.min"] == alpha["devmig.io/simgpu-2G.int.memory.max"] == "2048"
    assert alpha["devmig.io/simgpu-2G.int.aggregator.min"] == "1" and alpha["devmig.io/simgpu-2G.int.aggregator.max"]
    gaps = sorted(k.rsplit(".", 1)[1] for k in alpha if k.startswith("devmig.io/simgpu-2G.gap.aggregator."))
    assert gaps == ["3", "5", "6", "7"]  # {1, 2, 4, 8}
    assert not any(".param." in k and ".int." in k for k in alpha)  # no integer buckets left
    assert not any(".accepts." in k for k in alpha)  # no version ladder left


def test_an_unbounded_integer_has_the_widest_bounds() -> None:
    dest = cap_with({"n": {"type": "int", "init_value": 0}})
    labels = type_labels("gfx", [dest])
    assert labels["devmig.io/gfx.int.n.min"] == "0" and labels["devmig.io/gfx.int.n.max"] == str(INT_MAX)
    assert labels["devmig.io/gfx.int.n.nmin"] == "1" and labels["devmig.io/gfx.int.n.nmax"] == str(INT_MAX)
    for value in (0, 1, -1, 2**64, -(2**64), INT_MAX, -INT_MAX - 1):
        assert admits(source_with({"n": value}), dest)


def test_negative_values_use_magnitudes() -> None:
    dest = cap_with({"n": {"type": "int", "init_value": -8, "allowed_values": ["-8--6", -3, 5]}})
    labels = type_labels("gfx", [dest])
    assert (labels["devmig.io/gfx.int.n.nmin"], labels["devmig.io/gfx.int.n.nmax"]) == ("3", "8")
    assert (labels["devmig.io/gfx.int.n.min"], labels["devmig.io/gfx.int.n.max"]) == ("5", "5")
    assert "devmig.io/gfx.gap.n.n4_7" not in labels  # -7..-4 holds -6: not a hole
    assert "devmig.io/gfx.gap.n.n2_3" not in labels  # holds -3
    assert [admits(source_with({"n": v}), dest) for v in (-8, -6, -5, -4, -3, -2, -1, 0, 4, 5, 6)] == [
        True, True, True, True, True, False, False, False, False, True, False,
    ]  # fmt: skip
    # -5 and -4 share n4_7 with -6 and -7: the documented coarse bucket outside 0..63


def test_buckets_within_a_span() -> None:
    assert buckets_within(3, 7) == ["3", "4", "5", "6", "7"]
    assert buckets_within(9, 8) == []
    assert buckets_within(64, 200) == ["64_127"]  # 128_255 reaches past 200
    assert buckets_within(-7, -1) == ["n4_7", "n2_3", "n1_1"]
    assert buckets_within(-(2**80), 2**80) == [t for t in buckets_within(-(2**64), 2**64 - 1)]
    assert int_token(2**80) not in buckets_within(0, 2**80)  # the top bucket never ends


# -- versions and booleans -------------------------------------------------------------------------------------------


def test_one_version_label_per_major() -> None:
    dest = cap_with({}, version="1.5.3")
    labels = type_labels("gfx", [dest])
    assert labels["devmig.io/gfx.minor.1"] == "5" and not any(".accepts." in k for k in labels)
    assert [admits(source_with({}, version=f"1.{m}.0"), dest) for m in range(8)] == [True] * 6 + [False] * 2
    assert not admits(source_with({}, version="2.0.0"), dest)
    first = node_affinity(source_with({}, version="1.0.9"))["nodeAffinity"]
    (term,) = first["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "devmig.io/gfx.minor.1", "operator": "Exists"} in term["matchExpressions"]  # "Gt -1" is invalid


def test_huge_minors_are_clamped_only_upwards() -> None:
    """Gt/Lt parse int64: a minor past 2**63-1 is written as 2**63-1, which may only let a source through."""
    huge = cap_with({}, version=f"1.{2**70}.0")
    assert type_labels("gfx", [huge])["devmig.io/gfx.minor.1"] == str(INT_MAX)
    assert admits(source_with({}, version=f"1.{2**64}.0"), huge)
    assert not admits(source_with({}, version=f"1.{2**64}.0"), cap_with({}, version="1.5.0"))
    assert admits(source_with({}, version=f"1.{INT_MAX}.0"), cap_with({}, version=f"1.{INT_MAX}.0"))
    assert not admits(source_with({}, version=f"1.{INT_MAX}.0"), cap_with({}, version=f"1.{INT_MAX - 1}.0"))


def test_a_boolean_parameter_is_one_label() -> None:
    both = cap_with({"b": {"type": "bool", "init_value": True}})
    only = cap_with({"b": {"type": "bool", "init_value": False, "allowed_values": [False]}})
    assert type_labels("gfx", [both])["devmig.io/gfx.bool.b"] == "any"
    assert type_labels("gfx", [only])["devmig.io/gfx.bool.b"] == "false"
    assert admits(source_with({"b": True}), both) and admits(source_with({"b": False}), both)
    assert admits(source_with({"b": False}), only) and not admits(source_with({"b": True}), only)


def test_types_of_one_name_on_a_host_are_pooled() -> None:
    """Two parents with a type of the same name but other facts: the node's labels take what either takes."""
    old = cap_with({"n": {"type": "int", "init_value": 1, "allowed_values": ["1-4"]}}, version="1.1.0")
    new = cap_with({"n": {"type": "int", "init_value": 9, "allowed_values": [9]}}, version="1.3.0")
    labels = type_labels("gfx", [old, new])
    assert labels["devmig.io/gfx.minor.1"] == "3"
    assert (labels["devmig.io/gfx.int.n.min"], labels["devmig.io/gfx.int.n.max"]) == ("1", "9")
    assert {k.rsplit(".", 1)[1] for k in labels if ".gap." in k} == {"5", "6", "7", "8"}
    affinity = node_affinity(source_with({"n": 9}, version="1.3.0"))
    assert node_matches(affinity, labels)
    assert not node_matches(node_affinity(source_with({"n": 6})), labels)


# -- whole nodes -----------------------------------------------------------------------------------------------------


def test_lab_nodes_match_exactly_when_a_type_takes_the_source() -> None:
    """Every source of the default lab (its devices and variants of each type) against every lab node, with the
    affinity naming every type of the lab: a node matches when one of its types has no encoded error, and otherwise
    only for an integer outside 0..63."""
    hosts = lab_records()
    caps = {r.type_id: r.capability for h in hosts for r in h.types}
    sources = [s for cap in caps.values() for s in sources_of(cap)]
    sources += [d.descriptor for h in hosts for d in h.devices if d.descriptor is not None]
    labels = {h.name: host_labels(h) for h in hosts}
    outcomes: set[tuple[bool, bool]] = set()
    for source in sources:
        affinity = node_affinity(source, sorted(caps))
        assert all_valid(affinity)
        for host in hosts:
            errors = [encoded_errors(source, r.capability) for r in host.types]
            ok = any(not e for e in errors)
            matches = node_matches(affinity, labels[host.name])
            outcomes.add((matches, ok))
            if ok:
                assert matches, (source, host.name)
            elif matches:
                coarse = [
                    e for e in errors if all(f.code == "param-value-not-allowed" and not 0 <= f.source < 64 for f in e)
                ]
                assert coarse, (source, host.name, errors)
    assert {(True, True), (False, False)} <= outcomes


def test_the_lab_story_in_labels() -> None:
    """alpha's running vGPU, with its own type's labels: beta, gamma and zeta can take it, delta (older), epsilon
    (another major) and eta cannot; alpha itself can."""
    records = {h.name: h for h in lab_records()}
    (vgpu,) = [d.descriptor for d in records["alpha"].devices if d.kind == "mdev"]
    assert vgpu is not None
    affinity = node_affinity(vgpu)
    taken = sorted(name for name, host in records.items() if node_matches(affinity, host_labels(host)))
    assert taken == ["alpha", "beta", "gamma", "zeta"]


def test_fewer_labels_than_facts() -> None:
    """Ladders gone: the lab's nodes carry fewer labels than their types have facts (the figures are in
    docs/fleet.md)."""
    hosts = lab_records()
    labels = sum(len(host_labels(h)) for h in hosts)
    facts = sum(len(type_facts(r.capability)) for h in hosts for r in {r.type_id: r for r in h.types}.values())
    assert labels < facts
