"""Fuzzing a libvirt domain's XML as devmig reads it (a hook's stdin, `virsh dumpxml`): damaged or hostile text is
one DevmigError, never a crash; what parses writes back to text that reads the same."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from devmig.errors import DevmigError
from devmig.libvirt import metadata
from devmig.libvirt.domain import DomainXml, parse_domain
from devmig.libvirt.preflight import off_in_args
from tests.domains.builders import GPU_UUID, QEMU_NS, VF, domain_xml, mdev_hostdev, pci_hostdev
from tests.fuzz.harness import fuzz, outcome
from tests.fuzz.strategies import damaged_text

ENTRY = (
    '<devmig:hostdev kind="pci" address="0000:3b:00.2">{"device_api":"vfio-pci","type":"t","software_version":'
    '"1.0.0","api":{"pci_id":"1af4:10f2"},"address":{"kind":"pci","id":"0000:3b:00.2"}}</devmig:hostdev>'
)
#: what preflight reads beside the hostdevs: a vIOMMU, and what libvirt passes to QEMU as is
QEMU_EXTRAS = (
    "<qemu:commandline><qemu:arg value='-set'/><qemu:arg value='device.ua-gpu0.enable-migration=off'/>"
    "<qemu:arg value='-global'/><qemu:arg value='driver=vfio-pci,property=x-enable-migration,value=false'/>"
    "</qemu:commandline>"
)
VALID = (
    domain_xml(
        mdev_hostdev(GPU_UUID),
        pci_hostdev(VF, "mlx5_vfio_pci"),
        metadata=f'<devmig:descriptors xmlns:devmig="{metadata.NAMESPACE}">{ENTRY}</devmig:descriptors>',
    )
    .replace("<devices>", "<devices><iommu model='intel'/>")
    .replace("</domain>", f"{QEMU_EXTRAS}</domain>")
    .encode()
)
#: pieces of XML on the parser's edges: declarations, entities, CDATA, namespaces, and devmig's own elements
TOKENS = [
    "<domain>",
    "</domain>",
    "<name>vm1</name>",
    "<uuid>1de7bf4e-3d7b-41a5-ae79-4743fa6bfc2d</uuid>",
    "<devices>",
    "</devices>",
    "<hostdev mode='subsystem' type='mdev'>",
    "<hostdev type='pci'>",
    "</hostdev>",
    f"<source><address uuid='{GPU_UUID}'/></source>",
    "<source><address domain='0x0' bus='0x3b' slot='0x1f' function='7'/></source>",
    "<metadata>",
    "<iommu model='virtio'/>",
    f"<qemu:commandline xmlns:qemu='{QEMU_NS}'><qemu:arg value='-global'/>",
    "<qemu:arg value='vfio-pci.enable-migration=off'/>",
    "</qemu:commandline>",
    f"<qemu:override xmlns:qemu='{QEMU_NS}'><qemu:device alias='ua-gpu0'><qemu:frontend>",
    "<qemu:property name='enable-migration' type='string' value='off'/>",
    "</qemu:frontend></qemu:device></qemu:override>",
    "</metadata>",
    f"<d:descriptors xmlns:d='{metadata.NAMESPACE}'>",
    "</d:descriptors>",
    ENTRY,
    "<!DOCTYPE domain [<!ENTITY a 'b'>]>",
    "<?xml version='1.0' encoding='UTF-8'?>",
    "&a;",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "<?pi x?>",
    "\x00",
    "\ud800",
    "é",
    "'",
    '"',
    "<",
    ">",
]


def _read(text: str | bytes) -> DomainXml:
    xml = parse_domain(text, "domain vm1")
    metadata.from_domain(xml)
    # what preflight reads (devmig.libvirt.preflight), through the checks that interpret it
    xml.iommus()
    list(off_in_args(xml.qemu_args()))
    assert all(isinstance(p.value, str) for p in xml.qemu_properties())
    return xml


def _check(result: DomainXml | DevmigError) -> None:
    """An error is one line (a hook's stderr ends up in libvirt's one-line error); a domain reads back the same."""
    if isinstance(result, DevmigError):
        assert "\n" not in str(result), str(result)
    else:
        _round_trip(result)


def _round_trip(xml: DomainXml) -> None:
    again = parse_domain(xml.text(), "domain vm1 again")
    assert (again.name, again.uuid, again.hostdevs) == (xml.name, xml.uuid, xml.hostdevs)
    assert (again.iommus(), again.qemu_args(), again.qemu_properties()) == (
        xml.iommus(),
        xml.qemu_args(),
        xml.qemu_properties(),
    )
    assert metadata.from_domain(again) == metadata.from_domain(xml)


@fuzz(share=0.5)
@given(damaged_text(VALID))
def test_damaged_domain_xml_is_an_error_or_reads_back_the_same(text: bytes) -> None:
    _check(outcome("domain XML", lambda: _read(text)))


@fuzz(share=0.5)
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=24).map("".join))
def test_xml_soup_is_an_error_or_reads_back_the_same(text: str) -> None:
    _check(outcome("domain XML", lambda: _read(text)))


@fuzz(share=0.5)
@given(st.lists(st.sampled_from(["-set", "-global", "-device", "=", ".", ",", "off"]) | st.text(max_size=30)))
def test_any_qemu_command_line_is_read_without_a_crash(args: list[str]) -> None:
    for alias, arg in off_in_args(args):
        assert alias is None or isinstance(alias, str)
        assert arg.startswith(("-set ", "-global "))
