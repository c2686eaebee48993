"""What preflight decides on, collected: from libvirt's test driver (a real libvirt, domains that run nowhere), the
default lab's simulated hosts (their drivers answer VFIO's migration questions themselves), a fleet store and
capabilities files; and each fact that cannot be read, with why."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from devmig.errors import InputError
from devmig.fleet.collect import collect
from devmig.fleet.store import FleetStore
from devmig.host.profile import load_profiles
from devmig.libvirt.gather import (
    destination_from_document,
    destination_from_store,
    gather,
    parse_blockers,
)
from devmig.libvirt.preflight import DestinationFacts, preflight
from devmig.machine import LabHost, open_host
from tests.domains.builders import GPU_UUID, VF, domain_xml, mdev_hostdev, pci_hostdev
from tests.domains.conftest import Define
from tests.domains.driver import needs_libvirt
from tests.domains.test_preflight import NO_PROFILES, described, types_of

ALPHA = "sim:alpha"
CCW_UUID = "3c5d7e9f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"


def beta() -> DestinationFacts:
    return DestinationFacts("beta", "beta.json", types_of("sim:beta"), "6.12.57+deb12-amd64")


@needs_libvirt
def test_a_running_domain_on_the_test_driver(conn: Any, running: Define, name: str) -> None:
    running(domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "mlx5_vfio_pci"), name=name))
    facts = gather(conn, name, open_host(ALPHA), beta(), profiles_dir=NO_PROFILES)
    assert facts.running and facts.uri == "test:///default" and facts.host == ALPHA
    assert [h.live for h in facts.hostdevs] == list(described().values())
    # alpha's devices are open by its VMs: their flags are not read, and QEMU's blockers say nothing here
    assert [h.flags for h in facts.hostdevs] == [None, None]
    assert all("open on sim:alpha (by the VM)" in (h.flags_why or "") for h in facts.hostdevs)
    assert facts.blockers is None and "not supported by the connection driver" in (facts.blockers_why or "")
    assert facts.hypervisor == "TEST" and facts.libvirt_version is not None and facts.libvirt_version >= 8_006_000
    assert facts.kernel == "6.12.57+deb12-amd64" and facts.metadata is None and facts.metadata_why is None
    report = preflight(facts)
    assert not report.blocking
    assert {i.code for i in report.items} == {
        "metadata-stale",
        "qemu-blockers-not-checked",
        "migration-flags-not-checked",
        "qemu-version-not-checked",
        "destination-versions-not-checked",
    }


@needs_libvirt
def test_qemus_blockers_through_the_monitor_passthrough(
    conn: Any, running: Define, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libvirt_qemu.qemuMonitorCommand, as the QEMU driver answers it (the test driver has no QEMU)."""
    asked: list[str] = []

    def monitor(dom: Any, command: str, flags: int) -> str:
        asked.append(command)
        reason = "0000:3b:00.2: VFIO device doesn't support migration"
        return json.dumps({"return": {"status": "none", "blocked-reasons": [reason]}, "id": "libvirt-42"})

    monkeypatch.setitem(sys.modules, "libvirt_qemu", types.SimpleNamespace(qemuMonitorCommand=monitor))
    running(domain_xml(pci_hostdev(VF), name=name))
    facts = gather(conn, name, open_host(ALPHA), beta(), profiles_dir=NO_PROFILES)
    assert asked == ['{"execute":"query-migrate"}']
    assert facts.blockers == ("0000:3b:00.2: VFIO device doesn't support migration",)
    report = preflight(facts)
    assert report.blocking and [i.code for i in report.items if i.severity == "error"] == ["qemu-blocker"]


@needs_libvirt
def test_flags_are_read_through_vfio_when_nothing_uses_the_device(conn: Any, running: Define, name: str) -> None:
    """beta's bound VF is open by no VM: its variant driver answers STOP_COPY|P2P|PRE_COPY."""
    running(domain_xml(pci_hostdev(VF), name=name))
    facts = gather(conn, name, open_host("sim:beta"), beta(), profiles_dir=NO_PROFILES)
    (vf,) = facts.hostdevs
    assert (vf.flags, vf.flags_why) == (7, None)


@needs_libvirt
def test_a_driver_without_migration_answers_enotty(conn: Any, running: Define, name: str) -> None:
    """eta's vfio-ccw device: the simulated driver has no migration, as the kernel's has none."""
    eta = open_host("sim:eta")
    assert isinstance(eta, LabHost)
    eta.sim.kernel.create_mdev("0.0.0313", "vfio_ccw-io", CCW_UUID, {})
    running(domain_xml(mdev_hostdev(CCW_UUID, model="vfio-ccw"), name=name))
    facts = gather(conn, name, eta, beta(), profiles_dir=NO_PROFILES)
    (ccw,) = facts.hostdevs
    assert (ccw.flags, ccw.flags_why) == (0, None)
    assert ccw.live is not None and ccw.live.device_api == "vfio-ccw"
    items = [(i.code, i.object) for i in preflight(facts).items if i.severity == "error"]
    assert ("driver-no-migration", f"hostdev mdev {CCW_UUID} (alias ua-gpu0)") in items


@needs_libvirt
def test_a_domain_that_is_not_running(conn: Any, name: str) -> None:
    conn.defineXML(domain_xml(mdev_hostdev(GPU_UUID), name=name))
    facts = gather(conn, name, open_host(ALPHA), beta(), origin="metadata", profiles_dir=NO_PROFILES)
    assert not facts.running and facts.blockers is None
    assert facts.blockers_why == "the domain is not running, and only a running QEMU has blockers"
    assert [h.live for h in facts.hostdevs] == [None]  # descriptors from the metadata: nothing described
    codes = [i.code for i in preflight(facts).items if i.severity == "error"]
    assert codes == ["domain-not-running", "no-metadata"]


class _Domain:
    def __init__(self, xml: str) -> None:
        self.xml = xml

    def isActive(self) -> int:  # noqa: N802 - the binding's names
        return 1

    def XMLDesc(self, flags: int = 0) -> str:  # noqa: N802
        return self.xml


class _Connection:
    def __init__(self, xml: str) -> None:
        self.dom = _Domain(xml)

    def getURI(self) -> str:  # noqa: N802
        return "qemu:///system"

    def lookupByName(self, name: str) -> _Domain:  # noqa: N802
        return self.dom


@needs_libvirt
@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ("<capabilities><host/></capabilities>", "the root element is <capabilities>, expected libvirt's <domain>"),
        ("<domain><name>vm1", "not well-formed XML"),
        (
            '<!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><domain><name>&b;</name></domain>',
            "holds a DTD (<!DOCTYPE>)",
        ),
        ("<domain><name>vm1</name><uuid>nope</uuid></domain>", "<uuid> holds 'nope': expected a UUID"),
    ],
    ids=["not-a-domain", "truncated", "billion-laughs", "bad-uuid"],
)
def test_a_domain_xml_that_is_not_one_is_bad_input(xml: str, expected: str) -> None:
    conn: Any = _Connection(xml)
    with pytest.raises(InputError, match="domain vm1") as err:
        gather(conn, "vm1", open_host(ALPHA), beta())
    assert expected in err.value.message


@pytest.mark.parametrize(
    ("reply", "blockers", "why"),
    [
        ('{"return": {"status": "none"}, "id": "libvirt-1"}', (), None),
        ('{"return": {"blocked-reasons": ["a", "b"]}}', ("a", "b"), None),
        ('{"error": {"class": "GenericError", "desc": "no"}}', None, "QEMU answered query-migrate with an error: no"),
        ("not json", None, "QEMU's query-migrate reply: not valid JSON"),
        ('{"return": []}', None, "has no 'return' object"),
        ('{"return": {"blocked-reasons": "a"}}', None, "blocked-reasons is not a list of strings"),
        ('{"return": {"blocked-reasons": [1]}}', None, "blocked-reasons is not a list of strings"),
        ('{"return": {}, "return": {}}', None, "duplicate key"),
    ],
)
def test_qemus_reply_is_untrusted_text(reply: str, blockers: tuple[str, ...] | None, why: str | None) -> None:
    found, reason = parse_blockers(reply)
    assert found == blockers
    assert (reason is None) if why is None else (reason is not None and why in reason)


def test_a_capabilities_file_is_what_devmig_capabilities_prints() -> None:
    from devmig.host.describe import Describer
    from devmig.host.inventory import Inventory

    caps, _ = Describer(Inventory.scan(open_host(ALPHA).sysfs), load_profiles(NO_PROFILES)).capabilities()
    text = json.dumps([c.model_dump(mode="json", exclude_none=True) for c in caps])
    dest = destination_from_document(text, "alpha.json", "alpha")
    # alpha's two bound VFs publish one capability each: one type with both instances
    vfs = [t for t in dest.types if t.type_id.startswith("simnic_vfio_pci:")]
    assert [(t.type_id, t.free) for t in vfs] == [("simnic_vfio_pci:1af4:10f2", 2)]
    assert dest.kernel is None and "alpha.json (devmig capabilities -j) carries none" in (dest.kernel_why or "")
    single = destination_from_document(json.dumps(caps[0].model_dump(mode="json")), "one.json", "alpha")
    assert [t.type_id for t in single.types] == [caps[0].type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "caps.json: empty: expected a JSON document"),
        ("[{", "caps.json: not valid JSON at line 1"),
        ('"beta"', "caps.json: a JSON str: expected what `devmig capabilities -j` prints"),
        ('[{"device_api": "vfio-pci"}]', "caps.json: capability [0]: $: missing required field 'type'"),
        (b"\xff[]", "caps.json: not UTF-8 text (byte 0)"),
        (
            '[{"device_api": "vfio-pci", "type": "t", "software_version": "1.0", "api": {"pci_id": "1af4:10f0"}}]',
            "caps.json: capability [0]: $.software_version: expected a version",
        ),
    ],
)
def test_a_damaged_capabilities_file_is_one_clear_error(text: str | bytes, expected: str) -> None:
    with pytest.raises(InputError) as err:
        destination_from_document(text, "caps.json", "beta")
    assert err.value.message.startswith(expected), err.value.message


def test_the_fleet_store_gives_the_types_less_the_claims_and_the_kernel(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with FleetStore.open(url) as store:
        store.publish(collect(open_host("sim:beta"), load_profiles(NO_PROFILES), name="beta"))
        placed = store.place(described()[GPU_UUID], claim=600, holder="test")
        assert placed.claim is not None and placed.claim.host == "beta"
    dest = destination_from_store(url, "beta")
    assert dest.kernel == "6.12.57+deb12-amd64" and dest.origin.startswith("fleet store sqlite:///")
    free = {t.type_id: t.free for t in dest.types}
    published = {t.type_id: t.free for t in types_of("sim:beta")}
    before = published["simgpu-2G"]
    assert before is not None and free["simgpu-2G"] == before - 1  # the claim holds one
    assert all(free[k] == v for k, v in published.items() if k != "simgpu-2G")
    assert {k for k in free if k not in published} == {"vdpasim_net-net", "vdpasim_blk-block"}  # its vdpa types
    with pytest.raises(InputError, match="host gamma: not in store"):
        destination_from_store(url, "gamma")
