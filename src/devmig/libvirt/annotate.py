"""`devmig libvirt annotate`: describe each device a running domain holds on this host, and store the descriptors in
the domain's metadata (devmig.libvirt.metadata), so they travel with the VM to wherever it migrates.

A hostdev that cannot be described (its device is gone, its driver's interface is broken) is reported with the
reason and left out; the others are still stored. The element is replaced whole, so it always holds exactly the
devices described now: never a stale descriptor of a device the domain no longer has. A reader that finds a
hostdev without a descriptor knows devmig could not vouch for it, and decides (the destination's hook refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devmig.errors import DevmigError
from devmig.host.access import Host
from devmig.host.describe import Describer
from devmig.host.inventory import Inventory
from devmig.host.profile import load_profiles
from devmig.libvirt.connection import Connection, LibvirtError, binding, domain, message
from devmig.libvirt.domain import DomainXml, Hostdev, parse_domain
from devmig.libvirt.metadata import KEY, NAMESPACE, element_xml
from devmig.model.descriptor import DeviceDescriptor


@dataclass(frozen=True)
class Annotation:
    """One hostdev: its descriptor, or why it has none."""

    hostdev: Hostdev
    descriptor: DeviceDescriptor | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        h = self.hostdev
        out: dict[str, Any] = {"kind": h.kind, "address": h.address, "alias": h.alias, "model": h.model}
        if self.descriptor is not None:
            out["descriptor"] = self.descriptor.model_dump(mode="json", exclude_none=True)
        else:
            out["error"] = self.reason
        return out


@dataclass(frozen=True)
class Annotated:
    """What `annotate` did to one domain."""

    domain: str
    uuid: str | None
    uri: str
    #: where the metadata was set: the running domain, and its persistent definition when it has one
    live: bool
    config: bool
    hostdevs: list[Annotation]

    @property
    def complete(self) -> bool:
        """Every hostdev was described."""
        return all(a.descriptor is not None for a in self.hostdevs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "uuid": self.uuid,
            "uri": self.uri,
            "namespace": NAMESPACE,
            "live": self.live,
            "config": self.config,
            "complete": self.complete,
            "hostdevs": [a.to_dict() for a in self.hostdevs],
        }


def describe_hostdevs(xml: DomainXml, host: Host, profiles_dir: str | None = None) -> list[Annotation]:
    """Each mdev and PCI hostdev of the domain, described on `host` as `devmig describe` would."""
    inventory = Inventory.scan(host.sysfs)
    describer = Describer(inventory, load_profiles(profiles_dir))
    annotations = []
    for hostdev in xml.hostdevs:
        try:
            descriptor = describer.descriptor(inventory.device(hostdev.address))
        except DevmigError as exc:
            annotations.append(Annotation(hostdev, None, f"{hostdev.label} on {host.name}: {exc}"))
            continue
        annotations.append(Annotation(hostdev, descriptor))
    return annotations


def annotate(conn: Connection, domain_name: str, host: Host, profiles_dir: str | None = None) -> Annotated:
    """Describe the devices the running domain `domain_name` holds on `host` and set them as its devmig metadata,
    live and, when the domain is persistent, in its configuration too."""
    libvirt = binding()
    uri = conn.getURI()
    dom = domain(conn, domain_name)
    where = f"domain {domain_name} at {uri}"
    try:
        if not dom.isActive():
            raise LibvirtError(f"{where}: not running: annotate describes the devices a running domain holds")
        persistent = bool(dom.isPersistent())
        xml = parse_domain(dom.XMLDesc(0), f"domain {domain_name} (XML from {uri})")
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"{where}: {message(exc)}") from None
    annotations = describe_hostdevs(xml, host, profiles_dir)
    described = [a.descriptor for a in annotations if a.descriptor is not None]
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if persistent else 0)
    try:
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            element_xml(described, aliases={h.address: h.alias for h in xml.hostdevs if h.alias}),
            KEY,
            NAMESPACE,
            flags,
        )
    except libvirt.libvirtError as exc:
        raise LibvirtError(f"{where}: setting devmig's metadata ({NAMESPACE}) was refused: {message(exc)}") from None
    return Annotated(xml.name, xml.uuid, uri, True, persistent, annotations)
