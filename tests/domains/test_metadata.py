"""devmig's element in a domain's `<metadata>`: descriptors round-trip exactly, a domain without one says so, and a
damaged one is one error naming the hostdev."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devmig.errors import InputError
from devmig.libvirt import metadata
from devmig.libvirt.domain import parse_domain
from devmig.model.descriptor import DeviceAddress, DeviceDescriptor
from tests.domains.builders import GPU_UUID, VF, domain_xml, mdev_hostdev, pci_hostdev
from tests.strategies import descriptors

GPU = DeviceDescriptor.model_validate(
    {
        "device_api": "vfio-pci",
        "type": "simgpu-2G",
        "model": "devmig.sim/gpu",
        "software_version": "1.2.0",
        "api": {"pci_id": "1af4:10f0"},
        "params": {"memory": 2048, "aggregator": 2, "pv_mode": "ppgtt"},
        "address": {"kind": "mdev", "id": GPU_UUID},
    }
)
NIC = DeviceDescriptor.model_validate(
    {
        "device_api": "vfio-pci",
        "type": "simnic_vfio_pci:1af4:10f2",
        "model": "devmig.sim/nic",
        "software_version": "1.0.0",
        "api": {"pci_id": "1af4:10f2"},
        "params": {"queues": 4, "tso": True},
        "address": {"kind": "pci", "id": VF},
    }
)


def annotated(*entries: str, namespace: str = metadata.NAMESPACE) -> str:
    """A domain holding both devices, with devmig's element made of `entries`."""
    element = f"<devmig:descriptors xmlns:devmig='{namespace}'>{''.join(entries)}</devmig:descriptors>"
    return domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "mlx5_vfio_pci"), metadata=element)


def entry(kind: str, address: str, text: str) -> str:
    return f"<devmig:hostdev kind='{kind}' address='{address}'>{text}</devmig:hostdev>"


def test_the_element_in_a_domain_round_trips() -> None:
    xml = parse_domain(domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF)))
    assert metadata.from_domain(xml) is None
    metadata.set_in_domain(xml, [GPU, NIC])
    again = parse_domain(xml.text())
    found = metadata.require(again)
    assert found.descriptors == {GPU_UUID: GPU, VF: NIC}
    assert [found.descriptor(h) for h in again.hostdevs] == [GPU, NIC]
    # the other application's metadata is still there, beside devmig's, which replaces itself when set again
    assert "<nova:name>web-1</nova:name>" in again.text()
    metadata.set_in_domain(again, [NIC])
    assert metadata.require(parse_domain(again.text())).descriptors == {VF: NIC}
    assert again.text().count(metadata.NAMESPACE) == 1


def test_a_domain_without_metadata_gets_the_element_where_libvirt_writes_it() -> None:
    xml = parse_domain(
        f"<domain><name>vm1</name><uuid>{GPU_UUID}</uuid><devices>{mdev_hostdev(GPU_UUID)}</devices></domain>"
    )
    metadata.set_in_domain(xml, [GPU])
    assert xml.text().startswith(f"<domain><name>vm1</name><uuid>{GPU_UUID}</uuid><metadata><devmig:descriptors")
    assert metadata.require(parse_domain(xml.text())).descriptors == {GPU_UUID: GPU}


def test_the_element_for_the_api_has_no_namespace_and_reads_back() -> None:
    text = metadata.element_xml([GPU, NIC])
    assert text.startswith('<descriptors>\n  <hostdev kind="mdev" address="6f1c0a2e') and "xmlns" not in text
    assert metadata.from_api(text, "domain vm1").descriptors == {GPU_UUID: GPU, VF: NIC}


def test_missing_metadata_is_named() -> None:
    xml = parse_domain(domain_xml(mdev_hostdev(GPU_UUID)))
    with pytest.raises(InputError, match=r"domain vm1: no devmig metadata \(urn:devmig:libvirt:v1\) .* annotate vm1"):
        metadata.require(xml)


@given(st.lists(descriptors(), max_size=4))
def test_any_descriptors_round_trip_exactly(found: list[DeviceDescriptor]) -> None:
    """Whatever a descriptor holds (XML's special characters, any Unicode, huge numbers), the element gives it
    back equal, through the domain's XML and through the API's form."""
    placed = {}
    for descriptor in found:
        if descriptor.address is not None:
            placed[descriptor.address.id] = descriptor
    values = list(placed.values())
    assert metadata.from_api(metadata.element_xml(values), "domain vm1").descriptors == placed
    xml = parse_domain(domain_xml())
    metadata.set_in_domain(xml, values)
    assert metadata.require(parse_domain(xml.text())).descriptors == placed


def test_xml_special_characters_in_values_round_trip() -> None:
    odd = GPU.model_copy(update={"params": {"pv_mode": "</devmig:hostdev>&amp;<![CDATA[x]]>\"'é\u2028\ufffe"}})
    assert metadata.from_api(metadata.element_xml([odd]), "domain vm1").descriptors == {GPU_UUID: odd}


@pytest.mark.parametrize(
    ("descriptors_in", "expected"),
    [
        ([GPU.model_copy(update={"address": None})], "a vfio-pci simgpu-2G descriptor without an address"),
        ([GPU, GPU], f"two descriptors for mdev {GPU_UUID}"),
    ],
)
def test_the_element_needs_one_addressed_descriptor_per_device(
    descriptors_in: list[DeviceDescriptor], expected: str
) -> None:
    with pytest.raises(InputError, match=expected):
        metadata.element_xml(descriptors_in)


GPU_JSON = json.dumps(GPU.model_dump(mode="json", exclude_none=True))


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([entry("mdev", GPU_UUID, "{not json")], f"devmig metadata of hostdev mdev {GPU_UUID}: not valid JSON"),
        ([entry("mdev", GPU_UUID, "")], f"hostdev mdev {GPU_UUID}: empty: expected a JSON document"),
        (
            [entry("mdev", GPU_UUID, GPU_JSON.replace('"1.2.0"', '"1.2"'))],
            rf"hostdev mdev {GPU_UUID}: \$.software_version: ",
        ),
        ([entry("pci", VF, GPU_JSON)], f"hostdev pci {VF}: the descriptor has address {GPU_UUID}: expected"),
        (
            [entry("mdev", GPU_UUID, json.dumps({**json.loads(GPU_JSON), "address": {"kind": "mdev"}}))],
            rf"hostdev mdev {GPU_UUID}: \$.address: missing required field 'id'",
        ),
        (
            [entry("mdev", GPU_UUID, json.dumps({k: v for k, v in json.loads(GPU_JSON).items() if k != "address"}))],
            f"hostdev mdev {GPU_UUID}: the descriptor has no address",
        ),
        ([entry("pci", GPU_UUID, GPU_JSON)], f"<hostdev kind='pci' address='{GPU_UUID}'>: expected kind mdev"),
        ([entry("mdev", GPU_UUID.upper(), GPU_JSON)], "address='6F1C0A2E-3B4D-4C5E-8F90-A1B2C3D4E5F6'>: expected"),
        ([entry("usb", "1-1", GPU_JSON)], "<hostdev kind='usb' address='1-1'>: expected"),
        ([entry("mdev", GPU_UUID, GPU_JSON)] * 2, f"hostdev mdev {GPU_UUID} is described twice"),
        ([entry("mdev", GPU_UUID, f"<x/>{GPU_JSON}")], f"hostdev mdev {GPU_UUID}: holds elements"),
        (["<devmig:device/>"], "<devmig:device> in <descriptors>: expected only <hostdev> elements"),
        (["<hostdev/>"], "<hostdev> in <descriptors>: expected only <hostdev> elements"),
        (["loose text"], "text 'loose text' in <descriptors>"),
    ],
)
def test_damaged_metadata_is_one_error_naming_the_hostdev(entries: list[str], expected: str) -> None:
    xml = parse_domain(annotated(*entries))
    with pytest.raises(InputError, match=expected) as info:
        metadata.from_domain(xml)
    assert str(info.value).startswith("domain vm1: ") and "\n" not in str(info.value)


def test_metadata_of_another_version_is_named() -> None:
    xml = parse_domain(annotated(namespace="urn:devmig:libvirt:v2"))
    with pytest.raises(InputError, match="in urn:devmig:libvirt:v2: this devmig reads urn:devmig:libvirt:v1"):
        metadata.from_domain(xml)


def test_a_comment_in_an_entry_is_not_part_of_the_descriptor() -> None:
    xml = parse_domain(annotated(entry("mdev", GPU_UUID, f"<!-- by hand -->{GPU_JSON}")))
    assert metadata.require(xml).descriptors == {GPU_UUID: GPU}


def test_the_namespace_is_a_name_not_a_location() -> None:
    assert metadata.NAMESPACE.startswith("urn:devmig:") and DeviceAddress(kind="pci", id=VF).id == VF
