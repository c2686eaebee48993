"""`annotate` against libvirt's test driver, with the devices of a simulated lab host: the descriptors land in the
domain's metadata (live, and in its definition when persistent) and read back through libvirt's own API."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from devmig.errors import InputError
from devmig.host.describe import Describer
from devmig.host.inventory import Inventory
from devmig.host.profile import load_profiles
from devmig.libvirt import metadata
from devmig.libvirt.annotate import annotate
from devmig.libvirt.connection import LibvirtError, binding, connect
from devmig.libvirt.domain import parse_domain
from devmig.machine import open_host
from devmig.model.descriptor import DeviceDescriptor
from tests.domains.builders import GONE_UUID, GPU_UUID, VF, domain_xml, mdev_hostdev, pci_hostdev
from tests.domains.conftest import Define
from tests.domains.driver import TEST_URI, metadata_text, needs_libvirt

ALPHA = "sim:alpha"


def described(address: str) -> DeviceDescriptor:
    """What `devmig describe ADDRESS --host sim:alpha` prints."""
    inventory = Inventory.scan(open_host(ALPHA).sysfs)
    return Describer(inventory, load_profiles("/nonexistent")).descriptor(inventory.device(address))


@needs_libvirt
@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "transient"])
def test_annotate_stores_each_descriptor_where_libvirt_keeps_it(
    conn: Any, running: Define, name: str, persistent: bool
) -> None:
    dom = running(domain_xml(mdev_hostdev(GPU_UUID), pci_hostdev(VF, "mlx5_vfio_pci"), name=name), persistent)
    assert metadata_text(dom) is None
    done = annotate(conn, name, open_host(ALPHA))
    assert done.complete and (done.domain, done.uri, done.live, done.config) == (name, TEST_URI, True, persistent)
    expected = {GPU_UUID: described(GPU_UUID), VF: described(VF)}
    assert [a.descriptor for a in done.hostdevs] == list(expected.values())
    # read back through libvirt's API, and in the domain's XML (what a migration carries)
    live = metadata_text(dom)
    assert live is not None and metadata.from_api(live, name).descriptors == expected
    xml = parse_domain(dom.XMLDesc(0))
    assert metadata.require(xml).descriptors == expected
    assert [metadata.require(xml).descriptor(h) for h in xml.hostdevs] == list(expected.values())
    if persistent:
        config = metadata_text(dom, config=True)
        assert config is not None and metadata.from_api(config, name).descriptors == expected


@needs_libvirt
def test_a_device_that_cannot_be_described_is_reported_and_the_others_stored(
    conn: Any, running: Define, name: str
) -> None:
    dom = running(domain_xml(mdev_hostdev(GONE_UUID), pci_hostdev(VF), name=name))
    done = annotate(conn, name, open_host(ALPHA))
    assert not done.complete
    gone, vf = done.hostdevs
    assert gone.descriptor is None and gone.reason is not None
    assert gone.reason.startswith(f"hostdev mdev {GONE_UUID} (alias ua-gpu0) on sim:alpha: device {GONE_UUID}: ")
    assert vf.descriptor == described(VF) and vf.reason is None
    assert done.to_dict()["hostdevs"][0]["error"] == gone.reason
    text = metadata_text(dom)
    assert text is not None and metadata.from_api(text, name).descriptors == {VF: described(VF)}


@needs_libvirt
def test_annotating_again_replaces_the_element_whole(conn: Any, running: Define, name: str) -> None:
    import libvirt

    dom = running(domain_xml(mdev_hostdev(GPU_UUID), name=name))
    stale = described(VF)  # a descriptor of a device this domain does not hold
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        metadata.element_xml([stale]),
        metadata.KEY,
        metadata.NAMESPACE,
        libvirt.VIR_DOMAIN_AFFECT_LIVE,
    )
    annotate(conn, name, open_host(ALPHA))
    text = metadata_text(dom)
    assert text is not None and metadata.from_api(text, name).descriptors == {GPU_UUID: described(GPU_UUID)}


@needs_libvirt
def test_a_domain_without_hostdevs_gets_an_empty_element(conn: Any, running: Define, name: str) -> None:
    dom = running(domain_xml(name=name))
    assert annotate(conn, name, open_host(ALPHA)).hostdevs == []
    text = metadata_text(dom)
    assert text is not None and metadata.from_api(text, name).descriptors == {}


@needs_libvirt
def test_a_domain_that_is_not_running_or_not_there_is_refused(conn: Any, name: str) -> None:
    conn.defineXML(domain_xml(mdev_hostdev(GPU_UUID), name=name))
    with pytest.raises(LibvirtError, match=f"domain {name} at test:///default: not running"):
        annotate(conn, name, open_host(ALPHA))
    with pytest.raises(InputError, match="domain nope: not found at test:///default: expected a domain's name"):
        annotate(conn, "nope", open_host(ALPHA))


@needs_libvirt
def test_a_connection_that_fails_names_the_uri() -> None:
    with pytest.raises(LibvirtError, match=r"libvirt at test:///nonexistent/node.xml: cannot connect: "):
        connect("test:///nonexistent/node.xml")


def test_without_the_binding_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "libvirt", None)  # what an import of a missing module does
    with pytest.raises(
        LibvirtError, match=r"the libvirt Python binding is not installed .*pip install 'devmig\[libvirt\]'"
    ):
        binding()
