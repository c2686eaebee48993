"""NVIDIA's vGPU migration rules as data, per platform, and NVML's own verdict as findings (pure).

Sources (see the shared reference, devices-2026.md section 2): NVIDIA's RHEL KVM release notes "vGPU Migration
Support" as summarised in KubeVirt VEP 109, NVIDIA AI Enterprise's live-migration page, Red Hat's RHEL 9/10 guide
"Live migrating a VM with an attached NVIDIA vGPU", and NVML's vGPU migration API. Every entry marked [U] is not
confirmed by a primary source; it is kept conservative (it refuses rather than allows) and documented as such in
docs/formats.md.

The facts compared (VendorFacts.facts, rule set "nvidia-vgpu"): `host_driver` (the vGPU Manager's version, as
/sys/module/nvidia/version shows it), `platform` (the host OS as `<ID>-<VERSION_ID>` of /etc/os-release),
`ecc` (enabled/disabled, from NVML), `board_pci_id` and `board_subsystem_id` (the physical GPU's), and
`nvml_metadata` (NVML's opaque migration metadata, base64: a vGPU's on a descriptor, the physical GPU's on a
capability).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from devmig.model.verdict import Finding, Severity

RULES_ID = "nvidia-vgpu"

#: identical: the vGPU Manager versions must be equal; branch: they may differ within one release branch (the
#: first number: 550.x with 550.y) unless a documented exclusion names the pair.
DriverRule = Literal["identical", "branch"]


@dataclass(frozen=True)
class Platform:
    family: str
    drivers: DriverRule
    #: where NVIDIA (or the OS vendor) says so
    source: str
    confirmed: bool = True


#: The platforms NVIDIA lists for vGPU live migration, with each one's host driver version rule.
PLATFORMS: dict[str, Platform] = {
    "rhel-9.4": Platform("rhel", "identical", "NVIDIA RHEL KVM release notes (VEP 109): identical on RHEL 9.4"),
    # "different versions allowed unless release notes exclude them"; that the allowance stops at the release
    # branch is devmig's reading of "guest driver compatible with both hosts' managers" [U]
    "rhel-9.6": Platform("rhel", "branch", "NVIDIA RHEL KVM release notes: from 9.6 versions may differ"),
    "rhel-10.0": Platform("rhel", "branch", "NVIDIA AI Enterprise live-migration page: RHEL 10.0 listed"),
    # listed for live migration, but its version rule is not documented [U]: identical assumed
    "ubuntu-24.04": Platform("ubuntu", "identical", "NVIDIA AI Enterprise live-migration page [U: rule]", False),
}

#: A platform NVIDIA does not list: nothing allows a difference, so identical versions are required.
UNLISTED = Platform("", "identical", "not listed by NVIDIA for vGPU live migration: identical assumed", False)

#: Pairs of platforms documented as unable to migrate between each other, with the reason.
UNSUPPORTED_PLATFORMS: dict[frozenset[str], str] = {
    frozenset({"rhel-10.0", "rhel-9.4"}): "Red Hat documents RHEL 10 <-> RHEL 9.4 vGPU migration as unsupported",
}

#: Pairs of host driver versions the release notes exclude (none recorded yet: add them as NVIDIA publishes them).
EXCLUDED_DRIVERS: dict[frozenset[str], str] = {}


@dataclass(frozen=True)
class Board:
    family: str
    variant: str


#: Physical GPUs (the PF's vendor:device) of the documented pairs that cannot migrate. The IDs are pci.ids' [U: not
#: checked against NVIDIA's documents]; the board identity rule refuses any different board anyway, this table
#: only names the documented reason.
BOARDS: dict[str, Board] = {
    "10de:2331": Board("H100", "80GB PCIe"),
    "10de:2321": Board("H100", "94GB NVL"),
    "10de:2322": Board("H800", "80GB PCIe"),
    "10de:233a": Board("H800", "94GB NVL"),
    "10de:233b": Board("H200", "141GB NVL"),
}


def board_pair_reason(a: str, b: str) -> str | None:
    """The documented reason two boards cannot migrate between each other, or None when the pair is not listed."""
    one, two = BOARDS.get(a), BOARDS.get(b)
    if one is None or two is None or one == two:
        return None
    if one.family != two.family:
        return f"NVIDIA does not migrate across {one.family} and {two.family} boards"
    if ("NVL" in one.variant) != ("NVL" in two.variant):
        return f"NVIDIA does not migrate between the {one.variant} and {two.variant} variants of the {one.family}"
    return None


# -- NVML --------------------------------------------------------------------------------------------------------

#: nvmlVgpuVmCompatibility_t bits (group__nvmlVgpuConstants)
VM_COMPATIBILITY: dict[int, str] = {1: "cold", 2: "hibernate", 4: "sleep", 8: "live"}
LIVE = 8
#: nvmlVgpuPgpuCompatibilityLimitCode_t bits
LIMITS: dict[int, str] = {
    1: "the host driver",
    2: "the guest driver",
    4: "the GPU",
    0x80000000: "another reason",
}


@dataclass(frozen=True)
class NvmlAnswer:
    """nvmlGetVgpuCompatibility's answer for a vGPU's metadata and a physical GPU's metadata."""

    vm_compatibility: int
    limit: int

    @classmethod
    def of(cls, answer: tuple[int, int] | None) -> NvmlAnswer | None:
        return None if answer is None else cls(*answer)

    def kinds(self) -> list[str]:
        return [name for bit, name in VM_COMPATIBILITY.items() if self.vm_compatibility & bit] or ["none"]

    def limits(self) -> list[str]:
        return [name for bit, name in LIMITS.items() if self.limit & bit]


# -- the rules -----------------------------------------------------------------------------------------------------

#: code -> (severity, meaning): merged into devmig.compat.rules.CODES.
CODES: dict[str, tuple[Severity, str]] = {
    "nvidia-driver-not-identical": (
        "error",
        "the hosts' vGPU Manager versions differ (or one is unknown) where the platform requires them identical",
    ),
    "nvidia-driver-branch-differs": (
        "error",
        "the vGPU Manager versions are of different release branches (allowed differences stay in a branch [U])",
    ),
    "nvidia-driver-pair-excluded": ("error", "NVIDIA's release notes exclude this pair of vGPU Manager versions"),
    "nvidia-driver-differs": ("warning", "the vGPU Manager versions differ where the platform allows it"),
    "nvidia-platform-pair-unsupported": ("error", "the two host platforms are a documented unsupported pair"),
    "nvidia-platform-differs": (
        "error",
        "the hosts run different OS families (NVIDIA documents migration within a platform only [U])",
    ),
    "nvidia-ecc-differs": ("error", "ECC is enabled on one GPU and disabled on the other"),
    "nvidia-ecc-not-checked": ("warning", "a GPU's ECC mode is not known (no NVML on that host): not compared"),
    "nvidia-board-differs": ("error", "the physical GPUs are different boards (PCI device or subsystem ID)"),
    "nvidia-board-pair-unsupported": ("error", "the physical GPUs are a documented pair that cannot migrate"),
    "nvml-no-live": ("error", "NVML's own verdict: this vGPU cannot be live-migrated to this physical GPU"),
    "nvml-not-checked": (
        "warning",
        "NVML's own verdict was not asked (no NVML where the check ran, or a side carries no NVML metadata)",
    ),
}


def _finding(code: str, field: str, message: str, source: str | None, destination: str | None) -> Finding:
    return Finding(
        code=code,
        severity=CODES[code][0],
        field=f"vendor.facts.{field}",
        source=source,
        destination=destination,
        message=message,
    )


def _platform(name: str | None) -> Platform:
    return PLATFORMS.get(name or "", UNLISTED)


def platforms(src: Mapping[str, str], dst: Mapping[str, str]) -> Iterator[Finding]:
    a, b = src.get("platform"), dst.get("platform")
    if a == b:
        return
    reason = UNSUPPORTED_PLATFORMS.get(frozenset({a or "", b or ""}))
    if reason is not None:
        yield _finding("nvidia-platform-pair-unsupported", "platform", f"{reason} (source {a}, destination {b})", a, b)
    elif _platform(a).family != _platform(b).family or not _platform(a).family:
        yield _finding(
            "nvidia-platform-differs",
            "platform",
            f"the source host runs {a or 'an unknown OS'}, the destination {b or 'an unknown OS'}; NVIDIA documents "
            "vGPU migration between hosts of one platform",
            a,
            b,
        )


def _branch(version: str) -> str:
    return version.split(".", 1)[0]


def drivers(
    src: Mapping[str, str], dst: Mapping[str, str], excluded: Mapping[frozenset[str], str] = EXCLUDED_DRIVERS
) -> Iterator[Finding]:
    a, b = src.get("host_driver"), dst.get("host_driver")
    if a is not None and a == b:
        return
    # the stricter platform decides: identical on either side means identical
    strict = [p for p in (src.get("platform"), dst.get("platform")) if _platform(p).drivers == "identical"]
    if a is None or b is None or strict:
        if strict:
            rule = _platform(strict[0]).source
            why = f"{strict[0] or 'an unlisted platform'} requires identical vGPU Manager versions ({rule})"
        else:
            why = "a vGPU Manager version is unknown, so it cannot be compared"
        yield _finding(
            "nvidia-driver-not-identical",
            "host_driver",
            f"vGPU Manager {a or 'unknown'} on the source, {b or 'unknown'} on the destination: {why}",
            a,
            b,
        )
    elif (reason := excluded.get(frozenset({a, b}))) is not None:
        yield _finding("nvidia-driver-pair-excluded", "host_driver", f"{a} and {b}: {reason}", a, b)
    elif _branch(a) != _branch(b):
        yield _finding(
            "nvidia-driver-branch-differs",
            "host_driver",
            f"vGPU Manager {a} on the source and {b} on the destination are of different release branches "
            f"({_branch(a)} and {_branch(b)}); the guest driver must suit both",
            a,
            b,
        )
    else:
        yield _finding(
            "nvidia-driver-differs", "host_driver", f"vGPU Manager {a} on the source, {b} on the destination", a, b
        )


def ecc(src: Mapping[str, str], dst: Mapping[str, str]) -> Iterator[Finding]:
    a, b = src.get("ecc"), dst.get("ecc")
    if a is None or b is None:
        side = "source" if a is None else "destination"
        yield _finding(
            "nvidia-ecc-not-checked",
            "ecc",
            f"the {side} GPU's ECC mode is not known (NVML is needed to read it); NVIDIA requires it identical",
            a,
            b,
        )
    elif a != b:
        yield _finding("nvidia-ecc-differs", "ecc", f"ECC is {a} on the source GPU, {b} on the destination", a, b)


def board(src: Mapping[str, str], dst: Mapping[str, str]) -> Iterator[Finding]:
    a = (src.get("board_pci_id"), src.get("board_subsystem_id"))
    b = (dst.get("board_pci_id"), dst.get("board_subsystem_id"))
    if a == b and None not in a:
        return
    reason = board_pair_reason(a[0] or "", b[0] or "")
    shown_a, shown_b = "/".join(x or "?" for x in a), "/".join(x or "?" for x in b)
    if reason is not None:
        yield _finding("nvidia-board-pair-unsupported", "board_pci_id", reason, shown_a, shown_b)
    else:
        yield _finding(
            "nvidia-board-differs",
            "board_pci_id",
            f"the source GPU is board {shown_a}, the destination {shown_b} (device/subsystem); NVIDIA requires "
            "the same board type",
            shown_a,
            shown_b,
        )


def nvml(answer: NvmlAnswer | None) -> Iterator[Finding]:
    if answer is None:
        yield _finding(
            "nvml-not-checked",
            "nvml_metadata",
            "NVML's own verdict was not asked (NVML is absent where the check ran, or a side carries no NVML "
            "metadata): only NVIDIA's documented rules were applied",
            None,
            None,
        )
    elif not answer.vm_compatibility & LIVE:
        limits = ", ".join(answer.limits()) or "no reason given"
        kinds = answer.kinds()
        allowed = "no migration" if kinds == ["none"] else f"only {', '.join(kinds)} migration"
        yield _finding(
            "nvml-no-live",
            "nvml_metadata",
            f"NVML allows {allowed} of this vGPU to this GPU, limited by {limits}",
            None,
            ", ".join(answer.kinds()),
        )


def rules(src: Mapping[str, str], dst: Mapping[str, str], answer: NvmlAnswer | None) -> Iterator[Finding]:
    """Every NVIDIA rule, in the order NVIDIA lists them, then NVML's verdict."""
    yield from platforms(src, dst)
    yield from drivers(src, dst)
    yield from ecc(src, dst)
    yield from board(src, dst)
    yield from nvml(answer)
