"""preflight's checks as the pure function they are: facts in, items out, each check passing and failing.

The facts are real ones where they can be: the default lab's alpha describes the domain's devices, beta, delta and
zeta publish the destination's types (the simulator's drivers write their own migration_info.json), and the domain
XML is libvirt's shape (tests.domains.builders). Only what libvirt or QEMU would answer is set by hand.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from devmig.host.describe import Describer
from devmig.host.inventory import Inventory
from devmig.host.profile import load_profiles
from devmig.libvirt.domain import parse_domain
from devmig.libvirt.gather import dest_types
from devmig.libvirt.metadata import Metadata
from devmig.libvirt.preflight import (
    CHECKS,
    CODES,
    DestinationFacts,
    DestType,
    Facts,
    HostdevFacts,
    assign,
    libvirt_version,
    preflight,
)
from devmig.machine import open_host
from devmig.model.descriptor import DeviceAddress, DeviceDescriptor
from devmig.model.preflight import Preflight
from devmig.model.version import SoftwareVersion
from tests.domains.builders import GPU_UUID, QEMU_NS, VF, domain_xml, mdev_hostdev, pci_hostdev
from tests.paths import DOCS, SCHEMAS

ALPHA = "sim:alpha"
NO_PROFILES = "/nonexistent"
KERNEL = "6.12.57+deb12-amd64"
#: alpha's vGPU and its VF on a variant driver, as libvirt writes the domain
XML = domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "mlx5_vfio_pci"))
GPU = f"hostdev mdev {GPU_UUID} (alias ua-gpu0)"
NIC = f"hostdev pci {VF}"
OTHER_UUID = "7a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"


def described(host: str = ALPHA) -> dict[str, DeviceDescriptor]:
    """What `devmig describe` prints for each mdev and bound VF of `host`."""
    inventory = Inventory.scan(open_host(host).sysfs)
    describer = Describer(inventory, load_profiles(NO_PROFILES))
    return {a: describer.descriptor(inventory.device(a)) for a in (GPU_UUID, VF)}


def types_of(host: str) -> tuple[DestType, ...]:
    """What `devmig capabilities -j --host HOST` publishes, grouped as preflight reads it."""
    caps, problems = Describer(Inventory.scan(open_host(host).sysfs), load_profiles(NO_PROFILES)).capabilities()
    assert not problems
    return dest_types((c.type, c, c.available_instances) for c in caps)


def facts(xml: str = XML, *, flags: int | None = 7, types: tuple[DestType, ...] | None = None, **changes: Any) -> Facts:
    """A migration of alpha's domain to beta where every fact is known and nothing blocks, changed by keyword."""
    domain = parse_domain(xml)
    known = described()
    hostdevs = tuple(
        HostdevFacts(
            h,
            live=known.get(h.address),
            live_why=None if h.address in known else "device gone",
            flags=flags,
            flags_why=None if flags is not None else "the device is open on sim:alpha (by the VM)",
        )
        for h in domain.hostdevs
    )
    base = Facts(
        domain=domain,
        uri="qemu:///system",
        host=ALPHA,
        running=True,
        hostdevs=hostdevs,
        destination=DestinationFacts("beta", "beta.json", types_of("sim:beta") if types is None else types, KERNEL),
        metadata=Metadata({h.hostdev.address: h.live for h in hostdevs if h.live is not None}),
        libvirt_version=11_003_000,
        hypervisor="QEMU",
        hypervisor_version=10_000_000,
        kernel=KERNEL,
        blockers=(),
    )
    return replace(base, **changes)


def found(report: Preflight) -> list[tuple[str, str, str]]:
    """(code, severity, object) of each item but the one every report has."""
    return [(i.code, i.severity, i.object) for i in report.items if i.code != "destination-versions-not-checked"]


def test_nothing_blocks_a_migration_to_an_identical_host() -> None:
    report = preflight(facts())
    assert not report.blocking and found(report) == []
    assert [(i.code, i.severity) for i in report.items] == [("destination-versions-not-checked", "not-checked")]
    assert report.counts == {"error": 0, "warning": 0, "not-checked": 1}
    gpu, nic = report.devices
    assert (gpu.target, gpu.origin, gpu.candidates[0].level, gpu.candidates[0].free) == (
        "simgpu-2G",
        "live",
        "identical",
        4,
    )
    assert gpu.candidates[0].plan == {"memory": 2048, "aggregator": 2, "pv_mode": "ppgtt"}  # alpha's own values
    assert (nic.target, nic.candidates[0].free, nic.candidates[0].plan) == (
        "simnic_vfio_pci:1af4:10f2",
        1,
        {"queues": 4, "tso": True},
    )
    # beta's other types are refused, each with the check's own reasons
    assert {r.type for r in gpu.refused} == {"simgpu-1G", "simgpu-4G", nic.target}
    assert all(f.severity == "error" for r in gpu.refused for f in r.findings)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"running": False}, ("domain-not-running", "error", "domain vm1")),
        ({"postcopy": True}, ("postcopy-requested", "error", "domain vm1")),
        ({"blockers": ("0000:3b:00.2: VFIO migration is disabled",)}, ("qemu-blocker", "error", "QEMU of domain vm1")),
        (
            {"blockers": None, "blockers_why": "libvirt's QEMU monitor passthrough refused: denied"},
            ("qemu-blockers-not-checked", "not-checked", "QEMU of domain vm1"),
        ),
        ({"libvirt_version": 8_005_000}, ("libvirt-too-old", "error", "libvirt at qemu:///system")),
        ({"libvirt_version": 9_010_000}, ("variant-driver-versions", "warning", "libvirt at qemu:///system")),
        (
            {"libvirt_version": None, "libvirt_why": "virConnectGetLibVersion: gone"},
            ("libvirt-version-not-checked", "not-checked", "libvirt at qemu:///system"),
        ),
        ({"hypervisor_version": 7_002_000}, ("qemu-too-old", "error", "QEMU at qemu:///system")),
        ({"hypervisor_version": 8_000_005}, ("qemu-experimental", "warning", "QEMU at qemu:///system")),
        ({"hypervisor_version": 8_002_001}, ("variant-driver-versions", "warning", "QEMU at qemu:///system")),
        ({"hypervisor": "TEST"}, ("qemu-version-not-checked", "not-checked", "QEMU at qemu:///system")),
        (
            {"hypervisor_version": None, "hypervisor_why": "virConnectGetVersion: no"},
            ("qemu-version-not-checked", "not-checked", "QEMU at qemu:///system"),
        ),
        ({"kernel": "5.15.0-91-generic"}, ("kernel-too-old", "error", "kernel of sim:alpha")),
        ({"kernel": None, "kernel_why": "unreadable"}, ("kernel-not-checked", "not-checked", "kernel of sim:alpha")),
        ({"kernel": "custom"}, ("kernel-not-checked", "not-checked", "kernel of sim:alpha")),
    ],
    ids=lambda v: v[0] if isinstance(v, tuple) else next(iter(v)),
)
def test_each_check_of_the_domain_and_the_versions(changes: dict[str, Any], expected: tuple[str, str, str]) -> None:
    report = preflight(facts(**changes))
    assert found(report) == [expected]
    assert report.blocking == (expected[1] == "error")


def test_the_destination_kernel_is_checked_when_known_and_said_when_not() -> None:
    dest = facts().destination
    old = preflight(facts(destination=replace(dest, kernel="5.10.0-28-amd64")))
    assert found(old) == [("kernel-too-old", "error", "kernel of beta")]
    assert "Linux 5.10.0 is older than 5.18.0" in old.items[0].message
    unknown = preflight(facts(destination=replace(dest, kernel=None, kernel_why="beta.json carries none")))
    assert found(unknown) == [("kernel-not-checked", "not-checked", "kernel of beta")]
    assert unknown.items[0].message.endswith("beta.json carries none")


def test_versions_are_read_as_libvirt_encodes_them() -> None:
    assert libvirt_version(11_003_000) == SoftwareVersion(11, 3, 0)
    assert libvirt_version(8_002_002) == SoftwareVersion(8, 2, 2)
    assert libvirt_version(2) == SoftwareVersion(0, 0, 2)


def test_a_variant_driver_floor_is_only_for_a_pci_hostdev_naming_its_driver() -> None:
    plain = domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF))
    assert found(preflight(facts(plain, libvirt_version=9_010_000, hypervisor_version=8_002_001))) == []


def test_a_viommu_blocks_only_a_domain_with_devices() -> None:
    with_iommu = XML.replace("<devices>", "<devices>\n    <iommu model='intel'/>")
    report = preflight(facts(with_iommu))
    assert found(report) == [("viommu", "error", "domain vm1")]
    assert "<iommu model='intel'>" in report.items[0].message
    bare = domain_xml().replace("<devices>", "<devices>\n    <iommu model='smmuv3'/>")
    assert found(preflight(facts(bare))) == []


def _qemu(extra: str) -> str:
    """XML with more of libvirt's QEMU namespace."""
    return XML.replace("</domain>", f"{extra}\n</domain>")


def _override(alias: str, name: str, ptype: str, value: str) -> str:
    return _qemu(
        f"<qemu:override><qemu:device alias='{alias}'><qemu:frontend>"
        f"<qemu:property name='{name}' type='{ptype}' value='{value}'/></qemu:frontend></qemu:device></qemu:override>"
    )


def _commandline(*args: str) -> str:
    return _qemu("<qemu:commandline>" + "".join(f"<qemu:arg value='{a}'/>" for a in args) + "</qemu:commandline>")


@pytest.mark.parametrize(
    ("xml", "objects"),
    [
        (_override("ua-gpu0", "enable-migration", "string", "off"), [GPU]),
        (_override("ua-gpu0", "x-enable-migration", "bool", "false"), [GPU]),
        (_override("ua-gpu0", "enable-migration", "string", "on"), []),
        (_override("ua-gpu0", "enable-migration", "remove", ""), []),
        (_override("hostdev7", "enable-migration", "string", "off"), []),
        (_commandline("-set", "device.ua-gpu0.enable-migration=off"), [GPU]),
        (_commandline("-set", "device.ua-gpu0.enable-migration=auto"), []),
        (_commandline("-global", "vfio-pci.enable-migration=off"), [GPU, NIC]),
        (_commandline("-global", "driver=vfio-pci,property=x-enable-migration,value=false"), [GPU, NIC]),
        (_commandline("-global", "virtio-net-pci.enable-migration=off"), []),
        (_commandline("-device", "vfio-pci,enable-migration=off"), []),
    ],
    ids=[
        "override-off",
        "override-bool-false",
        "override-on",
        "override-removed",
        "override-other-alias",
        "set-off",
        "set-auto",
        "global-off",
        "global-long-form",
        "global-other-driver",
        "device-not-a-hostdev",
    ],
)
def test_migration_switched_off_for_a_hostdev(xml: str, objects: list[str]) -> None:
    assert QEMU_NS in xml
    report = preflight(facts(xml))
    assert found(report) == [("migration-disabled", "error", o) for o in objects]


def test_several_devices_need_p2p_and_every_driver_needs_migration() -> None:
    assert found(preflight(facts(flags=0))) == [
        ("driver-no-migration", "error", GPU),
        ("driver-no-migration", "error", NIC),
    ]
    # STOP_COPY without P2P: enough for one device, not for two
    assert found(preflight(facts(flags=1))) == [("no-p2p", "error", GPU), ("no-p2p", "error", NIC)]
    assert found(preflight(facts(domain_xml(mdev_hostdev(GPU_UUID)), flags=1))) == []


def test_unread_flags_leave_it_to_qemus_blockers_or_say_not_checked() -> None:
    assert found(preflight(facts(flags=None))) == []  # QEMU's blockers were read: they hold the driver's answer
    unknown = preflight(facts(flags=None, blockers=None, blockers_why="not supported"))
    assert found(unknown) == [
        ("qemu-blockers-not-checked", "not-checked", "QEMU of domain vm1"),
        ("migration-flags-not-checked", "not-checked", GPU),
        ("migration-flags-not-checked", "not-checked", NIC),
    ]
    assert "migration and P2P support not checked" in unknown.items[1].message
    assert "open on sim:alpha (by the VM)" in unknown.items[1].message


@pytest.mark.parametrize(
    ("kind", "descriptor", "expected"),
    [
        ("mdev", {"device_api": "vfio-ccw", "type": "vfio_ccw-io"}, "vfio-ccw driver implements no VFIO migration"),
        ("mdev", {"device_api": "vfio-ap", "type": "vfio_ap-passthrough"}, "vfio-ap driver implements no VFIO"),
        ("pci", {"device_api": "vfio-pci", "type": "vfio-pci:8086:1572"}, "bound to vfio-pci itself"),
        ("pci", {"device_api": "vfio-pci", "type": "mlx5_vfio_pci:15b3:101e"}, None),
        (
            "mdev",
            {
                "device_api": "vfio-ccw",
                "type": "vfio_ccw-io",
                "confidence": "declared",
                "api": {"subchannel_type": "0"},
            },
            None,
        ),
    ],
    ids=["vfio-ccw", "vfio-ap", "plain-vfio-pci", "variant-driver", "declared"],
)
def test_without_flags_or_blockers_known_drivers_without_migration_are_named(
    kind: str, descriptor: dict[str, Any], expected: str | None
) -> None:
    address = OTHER_UUID if kind == "mdev" else VF
    hostdev = mdev_hostdev(address, model="vfio-ccw") if kind == "mdev" else pci_hostdev(VF)
    base = facts(domain_xml(hostdev), flags=None, blockers=None, blockers_why="no passthrough")
    doc = {"software_version": "0.0.0", "confidence": "unverified", "address": {"kind": kind, "id": address}}
    live = DeviceDescriptor.model_validate({**doc, **descriptor})
    (one,) = base.hostdevs
    report = preflight(replace(base, hostdevs=(replace(one, live=live),)))
    flagged = ("driver-no-migration", "migration-flags-not-checked")
    items = [(i.code, i.message) for i in report.items if i.object == one.hostdev.label and i.code in flagged]
    assert [code for code, _ in items] == ["driver-no-migration" if expected else "migration-flags-not-checked"]
    if expected:
        assert expected in items[0][1]


def test_a_device_not_described_is_an_error_with_its_reason() -> None:
    base = facts()
    gpu, nic = base.hostdevs
    report = preflight(replace(base, hostdevs=(replace(gpu, live=None, live_why="device gone"), nic)))
    assert found(report) == [("device-not-described", "error", GPU)]
    assert report.items[0].message == "cannot be described on sim:alpha: device gone"
    assert report.devices[0].descriptor is None and report.devices[0].target is None


def test_the_metadata_the_destinations_hook_reads() -> None:
    base = facts()
    assert found(preflight(replace(base, metadata=None))) == [
        ("metadata-stale", "warning", GPU),
        ("metadata-stale", "warning", NIC),
    ]
    assert base.metadata is not None
    older = base.metadata.descriptors[GPU_UUID].model_copy(update={"params": {"aggregator": 1}})
    stale = Metadata({**base.metadata.descriptors, GPU_UUID: older})
    assert found(preflight(replace(base, metadata=stale))) == [("metadata-stale", "warning", GPU)]
    # devmig libvirt migrate annotates before it migrates: the metadata of now does not matter there
    assert found(preflight(replace(base, metadata=None, annotating=True))) == []
    damaged = replace(base, metadata=None, metadata_why="devmig metadata is damaged: not JSON")
    where = "domain vm1: devmig metadata (urn:devmig:libvirt:v1)"
    assert found(preflight(damaged)) == [("metadata-damaged", "warning", where)]
    assert found(preflight(replace(damaged, origin="metadata"))) == [("metadata-damaged", "error", where)]


def test_descriptors_from_the_metadata() -> None:
    base = facts(origin="metadata")
    report = preflight(base)
    assert found(report) == [] and [d.origin for d in report.devices] == ["metadata", "metadata"]
    assert base.metadata is not None
    only_gpu = Metadata({GPU_UUID: base.metadata.descriptors[GPU_UUID]})
    assert found(preflight(replace(base, metadata=only_gpu))) == [("no-metadata", "error", NIC)]
    none = preflight(replace(base, metadata=None))
    assert found(none) == [("no-metadata", "error", GPU), ("no-metadata", "error", NIC)]
    assert "the domain has no devmig metadata" in none.items[0].message


def test_a_destination_that_cannot_take_a_device_gives_every_reason() -> None:
    report = preflight(facts(types=types_of("sim:delta")))  # an older driver, and no VF at all
    assert found(report) == [("device-incompatible", "error", GPU), ("device-incompatible", "error", NIC)]
    assert "3 type(s) refused (minor-older, param-value-not-allowed)" in report.items[0].message
    gpu = report.devices[0]
    assert gpu.target is None and gpu.candidates == []
    assert {r.type: [f.code for f in r.findings] for r in gpu.refused} == {
        "simgpu-1G": ["minor-older", "param-value-not-allowed"],
        "simgpu-2G": ["minor-older"],
        "simgpu-4G": ["minor-older", "param-value-not-allowed"],
    }
    nothing = preflight(facts(types=()))
    assert "it publishes no type" in nothing.items[0].message


def test_a_full_destination_is_no_free_instance() -> None:
    report = preflight(facts(domain_xml(mdev_hostdev(GPU_UUID)), types=types_of("sim:zeta")))
    assert found(report) == [("no-free-instance", "error", GPU)]
    (full,) = [r for r in report.devices[0].refused if r.type == "simgpu-2G"]
    assert [(f.code, f.field, f.destination) for f in full.findings] == [("no-free-instance", "available_instances", 0)]


def test_the_domains_devices_share_the_free_instances() -> None:
    """Two vGPUs of one type, one instance free: the second has none left."""
    base = facts(domain_xml(mdev_hostdev(GPU_UUID), mdev_hostdev(OTHER_UUID, alias="ua-gpu1")))
    gpu, other = base.hostdevs
    assert gpu.live is not None
    twin = gpu.live.model_copy(update={"address": DeviceAddress(kind="mdev", id=OTHER_UUID)})
    one_free = tuple(replace(t, free=1) if t.type_id == "simgpu-2G" else t for t in base.destination.types)
    shared = replace(base, hostdevs=(gpu, replace(other, live=twin)), metadata=None)
    report = preflight(replace(shared, destination=replace(base.destination, types=one_free)))
    second = f"hostdev mdev {OTHER_UUID} (alias ua-gpu1)"
    assert [i for i in found(report) if i[0] != "metadata-stale"] == [("not-enough-instances", "error", second)]
    assert [d.target for d in report.devices] == ["simgpu-2G", None]
    two_free = tuple(replace(t, free=2) if t.type_id == "simgpu-2G" else t for t in base.destination.types)
    enough = preflight(replace(shared, destination=replace(base.destination, types=two_free)))
    assert [d.target for d in enough.devices] == ["simgpu-2G", "simgpu-2G"]


@pytest.mark.parametrize(
    ("options", "capacity", "expected"),
    [
        ([[0], [0]], [1], [0, None]),
        ([[0], [0]], [None], [0, 0]),
        # the first takes its best, the second can only have that one: the first moves to its next option
        ([[0, 1], [0]], [1, 1], [1, 0]),
        ([[0, 1], [0], [1]], [1, 1], [1, 0, None]),
        ([[], [0]], [0], [None, None]),
    ],
)
def test_assignment_moves_a_device_to_its_next_option_to_make_room(
    options: list[list[int]], capacity: list[int | None], expected: list[int | None]
) -> None:
    assert assign(options, capacity) == expected


def test_the_report_is_json_of_its_schema_and_reads_back() -> None:
    schema = json.loads((SCHEMAS / "preflight.schema.json").read_text())
    for report in (
        preflight(facts()),
        preflight(facts(types=types_of("sim:delta"), flags=None, blockers=None, running=False)),
        preflight(facts(types=types_of("sim:zeta"), uri="test:///default", hypervisor="TEST")),
    ):
        data = report.model_dump(mode="json")
        jsonschema.validate(data, schema)
        assert Preflight.model_validate(json.loads(json.dumps(data))) == report


def test_items_come_errors_first_and_each_code_is_catalogued_and_documented() -> None:
    report = preflight(facts(flags=None, blockers=None, blockers_why="x", postcopy=True, metadata=None))
    severities = [i.severity for i in report.items]
    assert severities == sorted(severities, key=("error", "warning", "not-checked").index)
    assert {i.code for i in report.items} <= set(CODES)
    doc = (DOCS / "libvirt.md").read_text()
    for code in CODES:
        assert f"`{code}`" in doc, f"{code} missing from docs/libvirt.md"
    for check in CHECKS:
        assert check.__name__ in doc, f"check {check.__name__} missing from docs/libvirt.md"
