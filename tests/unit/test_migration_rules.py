"""The migration-fact rules of `check` as a table: migration flags, dirty tracking and P2P, each case with the
exact codes it must give (and, through the shared predicate, what the libvirt preflight says of the same flags)."""

from __future__ import annotations

from typing import Any

import pytest

from devmig.compat import check
from devmig.compat.migration import lacks_p2p
from devmig.model import DeviceDescriptor, TypeCapability
from devmig.model.migration import FLAG_BITS, MigrationSupport

XE = {"pci_id": "8086:e20b", "revision": "00", "driver": "xe_vfio_pci"}


def _sides(src: dict[str, Any] | None, dst: dict[str, Any] | None) -> tuple[DeviceDescriptor, TypeCapability]:
    common: dict[str, Any] = {
        "device_api": "vfio-pci",
        "type": "xe-vfio-pci:8086:e20b",
        "software_version": "6.19.0",
        "api": XE,
        "confidence": "profile",
    }
    source = DeviceDescriptor.model_validate({**common, "model": "kernel.org/vfio/xe", "migration": src})
    dest = TypeCapability.model_validate({**common, "models": {"kernel.org/vfio/xe": {}}, "migration": dst})
    return source, dest


XE_VF = {"flags": ["stop_copy", "p2p"], "dirty_tracking": "iommu"}
HISI = {"flags": ["stop_copy", "pre_copy"], "dirty_tracking": "iommu"}

#: (case, source migration, destination migration, VFIO devices of the VM, the codes check gives)
CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, int, list[str]]] = [
    ("same facts", XE_VF, XE_VF, 1, []),
    ("not known on either side", None, None, 3, []),
    ("destination tracks by device DMA logging", XE_VF, {**XE_VF, "dirty_tracking": "device"}, 1, []),
    ("destination cannot dirty-track", XE_VF, {**XE_VF, "dirty_tracking": "none"}, 1, ["no-dirty-tracking"]),
    ("source does no DMA", {**XE_VF, "dirty_tracking": "not-needed"}, {**XE_VF, "dirty_tracking": "none"}, 1, []),
    (
        "source's tracking not known",
        {"flags": ["stop_copy", "p2p"]},
        {**XE_VF, "dirty_tracking": "none"},
        1,
        ["no-dirty-tracking"],
    ),
    ("destination's tracking not known", XE_VF, {"flags": ["stop_copy", "p2p"]}, 1, []),
    (
        "PF does not enable the destination VF",
        XE_VF,
        {"flags": [], "dirty_tracking": "iommu"},
        1,
        ["migration-unsupported"],
    ),
    ("source driver has no migration", {"flags": []}, XE_VF, 1, ["migration-unsupported"]),
    ("no P2P, one device", HISI, HISI, 1, []),
    ("no P2P on either side, two devices", HISI, HISI, 2, ["no-p2p", "no-p2p"]),
    ("no P2P at the destination, two devices", XE_VF, HISI, 2, ["no-p2p"]),
    ("P2P on both, three devices", XE_VF, XE_VF, 3, []),
    ("flags not known, two devices", {"dirty_tracking": "iommu"}, {"dirty_tracking": "iommu"}, 2, []),
    (
        "everything wrong",
        HISI,
        {"flags": [], "dirty_tracking": "none"},
        2,
        ["migration-unsupported", "no-dirty-tracking", "no-p2p"],
    ),
]


@pytest.mark.parametrize(("src", "dst", "devices", "codes"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_migration_rules(
    src: dict[str, Any] | None, dst: dict[str, Any] | None, devices: int, codes: list[str]
) -> None:
    source, dest = _sides(src, dst)
    verdict = check(source, dest, devices=devices)
    assert [f.code for f in verdict.findings] == codes
    assert verdict.compatible == (not codes)
    for f in verdict.findings:
        assert f.field.startswith("migration."), f
        assert f.message


def test_check_without_the_vm_is_one_device() -> None:
    source, dest = _sides(HISI, HISI)
    assert check(source, dest).compatible
    assert not check(source, dest, devices=2).compatible


@pytest.mark.parametrize(
    ("flags", "devices", "lacking"),
    [(1, 1, False), (1, 2, True), (3, 2, False), (5, 2, True), (7, 4, False), (0, 1, False)],
)
def test_preflight_and_check_share_the_p2p_predicate(flags: int, devices: int, lacking: bool) -> None:
    """The bits the preflight reads through VFIO, and the names a document holds, give the same answer."""
    assert lacks_p2p(flags, devices) is lacking
    names = [name for name, bit in FLAG_BITS.items() if flags & bit]
    assert MigrationSupport(flags=names).bits == flags


def test_flag_bits_are_the_uapi_bits() -> None:
    from devmig.migrate.uapi import VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY

    assert FLAG_BITS == {
        "stop_copy": VFIO_MIGRATION_STOP_COPY,
        "p2p": VFIO_MIGRATION_P2P,
        "pre_copy": VFIO_MIGRATION_PRE_COPY,
    }


def test_documents_round_trip_with_migration() -> None:
    source, dest = _sides(XE_VF, {"flags": []})
    assert DeviceDescriptor.model_validate_json(source.model_dump_json()) == source
    assert TypeCapability.model_validate_json(dest.model_dump_json()) == dest
    with pytest.raises(ValueError, match="flags"):
        MigrationSupport.model_validate({"flags": ["stop-copy"]})
