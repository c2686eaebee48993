"""A domain's XML as untrusted input: the hostdevs devmig reads, the changes it makes, and what it refuses."""

from __future__ import annotations

import pytest

from devmig.errors import InputError
from devmig.libvirt.domain import MAX_DEPTH, MAX_XML_BYTES, Hostdev, parse_domain
from tests.domains.builders import GPU_UUID, QEMU_NS, VF, domain_xml, mdev_hostdev, pci_hostdev


def test_an_mdev_hostdev() -> None:
    xml = parse_domain(domain_xml(mdev_hostdev(GPU_UUID.upper(), model="vfio-ccw")))
    assert (xml.name, xml.uuid) == ("vm1", "1de7bf4e-3d7b-41a5-ae79-4743fa6bfc2d")
    # the UUID is canonical (lowercase) whatever case the XML used; the usb hostdev is not devmig's
    assert xml.hostdevs == [Hostdev("mdev", GPU_UUID, 1, "ua-gpu0", "vfio-ccw")]


@pytest.mark.parametrize(("driver_model", "alias"), [(None, None), ("mlx5_vfio_pci", "hostdev1")])
def test_a_pci_hostdev_with_and_without_a_variant_driver(driver_model: str | None, alias: str | None) -> None:
    xml = parse_domain(domain_xml(pci_hostdev(VF, driver_model, alias)))
    assert xml.hostdevs == [Hostdev("pci", VF, 1, alias, driver_model)]
    assert xml.hostdevs[0].label == f"hostdev pci {VF}" + (f" (alias {alias})" if alias else "")


def test_several_hostdevs_in_document_order() -> None:
    second = "7a1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f7"
    xml = parse_domain(domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF), mdev_hostdev(second, alias=None)))
    assert [(h.kind, h.address, h.index) for h in xml.hostdevs] == [
        ("mdev", GPU_UUID, 1),
        ("pci", VF, 2),
        ("mdev", second, 3),
    ]
    assert xml.hostdev(VF).kind == "pci"
    with pytest.raises(InputError, match=r"domain vm1: no hostdev assigns 0000:00:01.0 \(its mdev and PCI"):
        xml.hostdev("0000:00:01.0")


@pytest.mark.parametrize(
    ("attributes", "address"),
    [
        ("domain='0x0000' bus='0x3b' slot='0x00' function='0x2'", "0000:3b:00.2"),
        # libvirt reads numbers as C's strtoul with base 0 does: hex, octal, decimal; domains above ffff (VMD)
        ("domain='0' bus='59' slot='0x1f' function='07'", "0000:3b:1f.7"),
        ("domain='0x10000' bus='0X3B' slot='010' function='0x0'", "10000:3b:08.0"),
    ],
)
def test_pci_addresses_are_read_as_libvirt_reads_them(attributes: str, address: str) -> None:
    text = domain_xml(f"<hostdev mode='subsystem' type='pci'><source><address {attributes}/></source></hostdev>")
    assert parse_domain(text).hostdevs[0].address == address


@pytest.mark.parametrize(
    ("hostdev", "expected"),
    [
        (mdev_hostdev("not-a-uuid"), r"<hostdev type='mdev'> #1 \(alias ua-gpu0\): <source><address> has uuid "),
        (
            "<hostdev mode='subsystem' type='mdev'><source><address/></source></hostdev>",
            "<hostdev type='mdev'> #1: <source><address> has no uuid attribute: expected the mdev's UUID",
        ),
        ("<hostdev mode='subsystem' type='pci'/>", r"<hostdev type='pci'> #1: no <source><address>"),
        (
            "<hostdev type='pci'><source><address domain='0' bus='0x100' slot='0' function='0'/></source></hostdev>",
            "has bus='0x100': expected a number up to 0xff",
        ),
        (
            "<hostdev type='pci'><source><address domain='0' bus='1' slot='0x20' function='0'/></source></hostdev>",
            "has slot='0x20': expected a number up to 0x1f",
        ),
        (
            "<hostdev type='pci'><source><address domain='0' bus='1' slot='0' function='08'/></source></hostdev>",
            "has function='08'",
        ),
        (
            "<hostdev type='pci'><source><address bus='1' slot='0' function='0'/></source></hostdev>",
            "has no domain attribute",
        ),
        (mdev_hostdev(GPU_UUID) + mdev_hostdev(GPU_UUID.upper()), f"#1 and #2 both assign mdev {GPU_UUID}"),
        (mdev_hostdev(GPU_UUID, alias="ua-a&#10;b"), r"#1: <alias name> 'ua-a\\nb' holds a control character"),
        (pci_hostdev(VF, "mlx5&#9;vfio"), r"#1: model 'mlx5\\tvfio' holds a control character"),
    ],
)
def test_a_hostdev_devmig_cannot_read_is_named(hostdev: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected) as info:
        parse_domain(domain_xml(hostdev), "domain vm1")
    assert str(info.value).startswith("domain vm1: ")


def test_other_hostdevs_are_not_devmigs() -> None:
    capabilities = "<hostdev mode='capabilities' type='storage'><source><block>/dev/sdb</block></source></hostdev>"
    assert parse_domain(domain_xml(capabilities)).hostdevs == []


def test_rewriting_a_source_keeps_everything_else() -> None:
    new_uuid = "11111111-2222-4333-8444-555555555555"
    text = domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "mlx5_vfio_pci"))
    xml = parse_domain(text)
    assert xml.rewrite_source(GPU_UUID, new_uuid) == Hostdev("mdev", new_uuid, 1, "ua-gpu0", "vfio-pci")
    assert xml.rewrite_source(VF, "10000:3c:01.7") == Hostdev("pci", "10000:3c:01.7", 2, None, "mlx5_vfio_pci")
    out = xml.text()
    # libvirt's own spelling of a PCI address; the rest is as it was, comments and other namespaces included
    assert '<address domain="0x10000" bus="0x3c" slot="0x01" function="0x7"/>' in out
    assert out == text.replace(f"'{GPU_UUID}'", f"'{new_uuid}'").replace(
        "domain='0x0000' bus='0x3b' slot='0x00' function='0x2'",
        "domain='0x10000' bus='0x3c' slot='0x01' function='0x7'",
    ).replace("'", '"').replace(
        f'<domain type="test" xmlns:qemu="{QEMU_NS}">', f'<domain xmlns:qemu="{QEMU_NS}" type="test">'
    )
    again = parse_domain(out)
    assert [h.address for h in again.hostdevs] == [new_uuid, "10000:3c:01.7"]
    assert again.hostdevs == xml.hostdevs


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (GPU_UUID, VF, "cannot assign '0000:3b:00.2': expected a canonical mdev UUID"),
        (VF, GPU_UUID, r"cannot assign '6f1c.*': expected a canonical PCI address"),
        (GPU_UUID, GPU_UUID.upper(), "expected a canonical mdev UUID"),
        (VF, "0000:3b:00.8", "expected a canonical PCI address"),
        (GPU_UUID, "11111111-2222-4333-8444-55555555555", "expected a canonical mdev UUID"),
        ("11111111-2222-4333-8444-555555555555", GPU_UUID, "no hostdev assigns 11111111"),
    ],
)
def test_a_rewrite_to_something_else_is_refused(old: str, new: str, expected: str) -> None:
    xml = parse_domain(domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF)))
    with pytest.raises(InputError, match=expected):
        xml.rewrite_source(old, new)
    assert [h.address for h in xml.hostdevs] == [GPU_UUID, VF]


def test_a_rewrite_onto_another_hostdevs_device_is_refused() -> None:
    other = "7a1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f7"
    xml = parse_domain(domain_xml(mdev_hostdev(GPU_UUID), mdev_hostdev(other, alias="ua-gpu1")))
    with pytest.raises(InputError, match=f"cannot assign {other} to hostdev mdev {GPU_UUID} .*: hostdev mdev {other}"):
        xml.rewrite_source(GPU_UUID, other)


# -- hostile and malformed XML --------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]><domain><name>&lol9;</name></domain>"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BILLION_LAUGHS, r"holds a DTD \(<!DOCTYPE>\): expected XML without one"),
        (
            '<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]><domain><name>&x;</name></domain>',
            r"holds a DTD",
        ),
        ('<!DOCTYPE domain SYSTEM "http://example.invalid/domain.dtd"><domain/>', "holds a DTD"),
        ("<domain><name>&undefined;</name></domain>", "not well-formed XML: undefined entity"),
        ("<domain><name>vm1</name>", "not well-formed XML: no element found"),
        ("", "not well-formed XML"),
        ("<network><name>n</name></network>", r"the root element is <network>, expected libvirt's <domain>"),
        ("<d:domain xmlns:d='urn:x'><name>n</name></d:domain>", r"<d:domain in namespace urn:x>"),
        ("<domain><uuid>1</uuid></domain>", "<domain> has no <name>"),
        ("<domain><name>vm1</name><uuid>12</uuid></domain>", r"domain vm1: <uuid> holds '12': expected a UUID"),
        ("<domain><name>vm&#10;1</name></domain>", r"<name> 'vm\\n1' holds a control character"),
        (
            "<?xml version='1.0' encoding='ISO-8859-1'?><domain><name>vm1</name></domain>",
            "declares encoding 'ISO-8859-1': expected UTF-8",
        ),
        (b"<domain><name>vm\xe91</name></domain>", r"not UTF-8 \(byte 16\): expected XML text in UTF-8"),
        ("<domain><name>vm\ud8001</name></domain>", "not text: it holds a lone surrogate"),
        ("<a>" * (MAX_DEPTH + 1) + "</a>" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
        (
            "<domain><name>vm1</name>" + "<x/>" * (MAX_XML_BYTES // 4) + "</domain>",
            r"\d+ bytes of XML, more than the 1024 KiB devmig reads",
        ),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "external-dtd",
        "undefined-entity",
        "unclosed",
        "empty",
        "wrong-root",
        "namespaced-root",
        "no-name",
        "bad-uuid",
        "newline-in-name",
        "latin-1",
        "not-utf8",
        "surrogate",
        "too-deep",
        "oversize",
    ],
)
def test_hostile_or_malformed_xml_is_one_clear_error(text: str | bytes, expected: str) -> None:
    with pytest.raises(InputError, match=expected) as info:
        parse_domain(text, "domain vm1 (from libvirt)")
    message = str(info.value)
    assert message.startswith(("domain vm1 (from libvirt): ", "domain vm1: ")) and "\n" not in message


def test_as_deep_as_libvirt_reads_is_read() -> None:
    inner = "<a>" * (MAX_DEPTH - 2) + "</a>" * (MAX_DEPTH - 2)
    assert parse_domain(f"<domain><name>vm1</name><devices>{inner}</devices></domain>").hostdevs == []
