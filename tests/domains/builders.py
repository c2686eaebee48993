"""Domain XML for the tests: libvirt's own shape, with the devices of the default lab's host alpha."""

from __future__ import annotations

from devmig.host.access import Host
from devmig.libvirt.annotate import describe_hostdevs
from devmig.libvirt.domain import parse_domain
from devmig.libvirt.metadata import KEY, element_xml

#: alpha's running vGPU (simgpu-2G) and its NIC VF on the variant driver (devmig's default lab)
GPU_UUID = "6f1c0a2e-3b4d-4c5e-8f90-a1b2c3d4e5f6"
VF = "0000:3b:00.2"
#: an mdev no host of the lab has
GONE_UUID = "0b7d2c10-5e6f-4a1b-9c2d-000000000000"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


def mdev_hostdev(uuid: str, alias: str | None = "ua-gpu0", model: str = "vfio-pci") -> str:
    alias_xml = f"<alias name='{alias}'/>" if alias else ""
    return (
        f"<hostdev mode='subsystem' type='mdev' managed='no' model='{model}'>"
        f"<source><address uuid='{uuid}'/></source>{alias_xml}</hostdev>"
    )


def pci_hostdev(address: str, driver_model: str | None = None, alias: str | None = None) -> str:
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    driver = f"<driver name='vfio'{f' model={driver_model!r}' if driver_model else ''}/>"
    alias_xml = f"<alias name='{alias}'/>" if alias else ""
    return (
        f"<hostdev mode='subsystem' type='pci' managed='yes'>{driver}<source>"
        f"<address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>"
        f"</source>{alias_xml}</hostdev>"
    )


def domain_xml(*hostdevs: str, name: str = "vm1", metadata: str = "", domain_type: str = "test") -> str:
    """A domain as libvirt writes it: a name, a UUID, other applications' metadata, a qemu:override."""
    devices = "\n    ".join(hostdevs)
    return f"""<domain type='{domain_type}' xmlns:qemu='{QEMU_NS}'>
  <name>{name}</name>
  <uuid>1de7bf4e-3d7b-41a5-ae79-4743fa6bfc2d</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>web-1</nova:name></nova:instance>
    {metadata}
  </metadata>
  <memory unit='KiB'>65536</memory>
  <os><type>hvm</type></os>
  <!-- the devices -->
  <devices>
    {devices}
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>
  </devices>
  <qemu:override>
    <qemu:device alias='ua-gpu0'>
      <qemu:frontend><qemu:property name='x-device-dirty-page-tracking' type='string' value='off'/></qemu:frontend>
    </qemu:device>
  </qemu:override>
</domain>
"""


def annotated_xml(host: Host, *hostdevs: str, version: str | None = None, domain_type: str = "test") -> str:
    """The domain as it leaves `host` for a migration: each hostdev described there (as `devmig libvirt annotate`
    does) and the descriptors in devmig's metadata; `version` replaces their software_version (a source a major
    version ahead, say). A hostdev that cannot be described fails the caller with its reason."""
    descriptors = []
    plain = parse_domain(domain_xml(*hostdevs, domain_type=domain_type))
    for annotation in describe_hostdevs(plain, host):
        assert annotation.descriptor is not None, f"{annotation.hostdev.label}: {annotation.reason}"
        descriptor = annotation.descriptor
        if version is not None:
            descriptor = descriptor.model_copy(update={"software_version": version})
        descriptors.append(descriptor)
    aliases = {h.address: h.alias for h in plain.hostdevs if h.alias}
    metadata = element_xml(descriptors, prefix=KEY, aliases=aliases)
    return domain_xml(*hostdevs, domain_type=domain_type, metadata=metadata)
