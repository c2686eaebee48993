"""NVIDIA's vGPU migration rules (devmig.compat.nvidia) against NVIDIA's documented cases, as a table: each row is
a documented statement (devices-2026.md section 2), the facts that stand for it and the codes `check` must give."""

from __future__ import annotations

import pytest

from devmig.compat import CODES, check
from devmig.compat.nvidia import EXCLUDED_DRIVERS, NvmlAnswer, drivers
from devmig.model.descriptor import DeviceDescriptor, TypeCapability, VendorFacts

BASE = {
    "host_driver": "570.124.06",
    "platform": "rhel-9.6",
    "ecc": "enabled",
    "board_pci_id": "10de:2331",
    "board_subsystem_id": "10de:1626",
}
API = {"pci_id": "10de:2331", "vgpu_mode": "sriov"}
MODEL = "nvidia.com/vgpu/nvidia-1002"
LIVE = NvmlAnswer(8 | 1, 0)


def source(**facts: str) -> DeviceDescriptor:
    return DeviceDescriptor(
        device_api="vfio-pci",
        type="nvidia-1002",
        model=MODEL,
        software_version="1.0.0",
        api=API,
        confidence="profile",
        vendor=VendorFacts(rules="nvidia-vgpu", facts={**BASE, **facts}),
    )


def destination(**facts: str) -> TypeCapability:
    return TypeCapability(
        device_api="vfio-pci",
        type="nvidia-1002",
        software_version="1.0.0",
        api=API,
        models={MODEL: {}},
        confidence="profile",
        vendor=VendorFacts(rules="nvidia-vgpu", facts={**BASE, **facts}),
    )


# (documented statement, source facts, destination facts, codes expected)
CASES: list[tuple[str, dict[str, str], dict[str, str], list[str]]] = [
    ("same host driver, platform, ECC and board migrate", {}, {}, []),
    (
        "RHEL 9.4: identical vGPU Managers required",
        {"platform": "rhel-9.4"},
        {"platform": "rhel-9.4", "host_driver": "570.86.10"},
        ["nvidia-driver-not-identical"],
    ),
    ("RHEL 9.4: identical versions migrate", {"platform": "rhel-9.4"}, {"platform": "rhel-9.4"}, []),
    ("from RHEL 9.6 versions may differ", {}, {"host_driver": "570.148.08"}, ["nvidia-driver-differs"]),
    ("...either way", {"host_driver": "570.148.08"}, {}, ["nvidia-driver-differs"]),
    ("...within a release branch [U]", {}, {"host_driver": "580.65.06"}, ["nvidia-driver-branch-differs"]),
    (
        "RHEL 10.0 allows differences too",
        {"platform": "rhel-10.0"},
        {"platform": "rhel-10.0", "host_driver": "570.148.08"},
        ["nvidia-driver-differs"],
    ),
    ("RHEL 9.6 <-> 10.0 is not excluded", {}, {"platform": "rhel-10.0"}, []),
    (
        "RHEL 10 <-> 9.4 is unsupported",
        {"platform": "rhel-10.0"},
        {"platform": "rhel-9.4"},
        ["nvidia-platform-pair-unsupported"],
    ),
    (
        "9.4 on either side makes versions identical",
        {},
        {"platform": "rhel-9.4", "host_driver": "570.148.08"},
        ["nvidia-driver-not-identical"],
    ),
    (
        "Ubuntu's version rule is not documented [U]: identical assumed",
        {"platform": "ubuntu-24.04"},
        {"platform": "ubuntu-24.04", "host_driver": "570.148.08"},
        ["nvidia-driver-not-identical"],
    ),
    (
        "a platform NVIDIA does not list: identical",
        {"platform": "debian-12"},
        {"platform": "debian-12", "host_driver": "570.148.08"},
        ["nvidia-driver-not-identical"],
    ),
    ("across OS families: not documented [U]", {}, {"platform": "ubuntu-24.04"}, ["nvidia-platform-differs"]),
    ("ECC enabled/disabled identically", {}, {"ecc": "disabled"}, ["nvidia-ecc-differs"]),
    ("ECC unknown (no NVML): said, not guessed", {}, {"ecc": ""}, []),
    (
        "same board type: another subsystem is another board",
        {},
        {"board_subsystem_id": "10de:17fd"},
        ["nvidia-board-differs"],
    ),
    ("not 80 GB PCIe <-> 94 GB NVL", {}, {"board_pci_id": "10de:2321"}, ["nvidia-board-pair-unsupported"]),
    ("not across H100/H800", {}, {"board_pci_id": "10de:2322"}, ["nvidia-board-pair-unsupported"]),
    ("not across H100/H200", {"board_pci_id": "10de:233b"}, {}, ["nvidia-board-pair-unsupported"]),
    ("an unknown host driver cannot be compared", {"host_driver": ""}, {}, ["nvidia-driver-not-identical"]),
]


@pytest.mark.parametrize(("statement", "src", "dst", "codes"), CASES, ids=[c[0] for c in CASES])
def test_documented_cases(statement: str, src: dict[str, str], dst: dict[str, str], codes: list[str]) -> None:
    # an empty value stands for a fact the host could not read: it is left out
    s = source(**src).model_copy(update={"vendor": _drop_empty(source(**src).vendor)})
    d = destination(**dst).model_copy(update={"vendor": _drop_empty(destination(**dst).vendor)})
    verdict = check(s, d, nvml=LIVE)
    got = [f.code for f in verdict.findings if f.code != "nvidia-ecc-not-checked"]
    assert got == codes, statement
    assert verdict.compatible == all(CODES[c][0] == "warning" for c in codes)


def _drop_empty(vendor: VendorFacts | None) -> VendorFacts | None:
    assert vendor is not None
    return VendorFacts(rules=vendor.rules, facts={k: v for k, v in vendor.facts.items() if v})


def test_unknown_ecc_is_a_warning() -> None:
    d = destination().model_copy(
        update={"vendor": VendorFacts(rules="nvidia-vgpu", facts={k: v for k, v in BASE.items() if k != "ecc"})}
    )
    verdict = check(source(), d, nvml=LIVE)
    assert [f.code for f in verdict.findings] == ["nvidia-ecc-not-checked"] and verdict.compatible


@pytest.mark.parametrize(
    ("answer", "codes", "words"),
    [
        (None, ["nvml-not-checked"], "not asked"),
        (NvmlAnswer(8, 0), [], ""),
        (
            NvmlAnswer(1, 1),
            ["nvml-no-live"],
            "only cold migration of this vGPU to this GPU, limited by the host driver",
        ),
        (
            NvmlAnswer(0, 4 | 2),
            ["nvml-no-live"],
            "no migration of this vGPU to this GPU, limited by the guest driver, the GPU",
        ),
        (NvmlAnswer(0, 0x80000000), ["nvml-no-live"], "limited by another reason"),
    ],
)
def test_nvml_verdict_as_findings(answer: NvmlAnswer | None, codes: list[str], words: str) -> None:
    verdict = check(source(), destination(), nvml=answer)
    assert [f.code for f in verdict.findings] == codes
    assert all(words in f.message for f in verdict.findings)


def test_excluded_driver_pairs_are_data() -> None:
    excluded = {frozenset({"570.124.06", "570.148.08"}): "release notes 570.148: no migration from 570.124"}
    found = list(drivers({**BASE}, {**BASE, "host_driver": "570.148.08"}, excluded))
    assert [f.code for f in found] == ["nvidia-driver-pair-excluded"]
    assert EXCLUDED_DRIVERS == {}  # none recorded: NVIDIA's notes name none in the reference


def test_rule_sets_must_match_and_unknown_sets_compare_strictly() -> None:
    other = destination().model_copy(update={"vendor": VendorFacts(rules="acme-gpu", facts=BASE)})
    assert [f.code for f in check(source(), other, nvml=LIVE).errors] == ["vendor-rules-mismatch"]
    none = destination().model_copy(update={"vendor": None})
    assert [f.code for f in check(source(), none, nvml=LIVE).errors] == ["vendor-rules-mismatch"]
    a = source().model_copy(update={"vendor": VendorFacts(rules="acme-gpu", facts={"fw": "1"})})
    b = destination().model_copy(update={"vendor": VendorFacts(rules="acme-gpu", facts={"fw": "2"})})
    assert [f.code for f in check(a, b).errors] == ["vendor-fact-mismatch"]
