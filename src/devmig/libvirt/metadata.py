"""devmig's element in a domain's `<metadata>`: the descriptor of each assigned device, so it travels with the VM.

libvirt keeps an application's metadata element in the domain's XML, in the application's own XML namespace, and
carries it in the XML of a migration (the destination's hook reads it there). devmig's element, one child per
hostdev keyed by its source address (and its alias, when it has one), each holding that device's descriptor as JSON
text:

    <metadata>
      <devmig:descriptors xmlns:devmig="urn:devmig:libvirt:v1">
        <devmig:hostdev kind="mdev" address="6f1c0a2e-..." alias="ua-gpu0">{"device_api":...}</devmig:hostdev>
      </devmig:descriptors>
    </metadata>

The alias is how a hostdev is found again when a management layer rewrote its address for the destination (Nova's
`--xml` names the mdev it chose there): libvirt keeps a user alias (`ua-...`) across a migration; the address is what
the source had.

The JSON is DeviceDescriptor's own format (ASCII-escaped, so any value is valid XML text), read back with the same
strict loader as a descriptor file: it round-trips exactly. `virDomainSetMetadata` takes the element without a
namespace and puts it in `NAMESPACE` under the prefix `KEY`; `virDomainGetMetadata` returns it without one again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from xml.dom.minidom import Element
from xml.sax.saxutils import escape, quoteattr

from devmig.errors import InputError
from devmig.libvirt.domain import DomainXml, Hostdev, parse_xml
from devmig.model.descriptor import DeviceDescriptor, address_kind
from devmig.model.load import parse_document

#: devmig's XML namespace in `<metadata>`. A name, never fetched: a URN, because a URL would name a host the project
#: does not own (whoever owned it could serve anything there); the version is part of it, as libvirt's metadata
#: keys elements by namespace, so a later format gets a namespace of its own and both can sit side by side.
NAMESPACE = "urn:devmig:libvirt:v1"
#: any devmig metadata namespace, of this version or another
NAMESPACE_FAMILY = "urn:devmig:libvirt:"
#: the prefix libvirt writes the element with (virDomainSetMetadata's key)
KEY = "devmig"
ROOT = "descriptors"
ENTRY = "hostdev"
#: what libvirt accepts as a user alias ("ua-" and letters, digits, -, _), and its own names (hostdev0)
ALIAS = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class Metadata:
    """The descriptors devmig's metadata holds, by the source address of the hostdev each describes."""

    descriptors: dict[str, DeviceDescriptor]
    #: alias -> the source address of the hostdev that had it
    aliases: dict[str, str] = field(default_factory=dict)

    def descriptor(self, hostdev: Hostdev) -> DeviceDescriptor | None:
        """The hostdev's descriptor: by its address, else by its alias (its address was rewritten on the way)."""
        found = self.descriptors.get(hostdev.address)
        if found is None and hostdev.alias is not None and hostdev.alias in self.aliases:
            found = self.descriptors.get(self.aliases[hostdev.alias])
        return found


def _entries(descriptors: Iterable[DeviceDescriptor]) -> list[tuple[str, str, str]]:
    """(kind, address, JSON) per descriptor; each must carry the address it is keyed by, once."""
    entries: dict[str, tuple[str, str, str]] = {}
    for descriptor in descriptors:
        where = descriptor.address
        if where is None:
            raise InputError(
                f"devmig metadata: a {descriptor.device_api} {descriptor.type} descriptor without an address: "
                "expected the hostdev's source address (devmig describe writes it)"
            )
        if where.id in entries:
            raise InputError(f"devmig metadata: two descriptors for {where.kind} {where.id}: expected one each")
        text = json.dumps(descriptor.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
        entries[where.id] = (where.kind, where.id, text)
    return list(entries.values())


def element_xml(
    descriptors: Iterable[DeviceDescriptor], *, prefix: str | None = None, aliases: Mapping[str, str] | None = None
) -> str:
    """The element's text: without a namespace for virDomainSetMetadata (libvirt adds it), or with `prefix` bound
    to `NAMESPACE`, as it stands in a domain's XML. `aliases`: address -> the alias of the hostdev there."""
    tag = f"{prefix}:" if prefix else ""
    declaration = f" xmlns:{prefix}={quoteattr(NAMESPACE)}" if prefix else ""
    lines = [f"<{tag}{ROOT}{declaration}>"]
    for kind, address, text in _entries(descriptors):
        alias = (aliases or {}).get(address)
        named = f" alias={quoteattr(alias)}" if alias else ""
        lines.append(
            f"  <{tag}{ENTRY} kind={quoteattr(kind)} address={quoteattr(address)}{named}>{escape(text)}</{tag}{ENTRY}>"
        )
    lines.append(f"</{tag}{ROOT}>")
    return "\n".join(lines) + "\n"


class _Reader:
    """Reads one devmig element (in `namespace`: NAMESPACE in a domain's XML, None as the API returns it)."""

    def __init__(self, what: str, namespace: str | None) -> None:
        self.what, self.namespace = what, namespace

    def damaged(self, detail: str) -> InputError:
        return InputError(f"{self.what}: devmig metadata ({NAMESPACE}) is damaged: {detail}")

    def read(self, root: Element) -> Metadata:
        if root.namespaceURI != self.namespace or root.localName != ROOT:
            raise self.damaged(f"its element is <{root.tagName}>, expected <{ROOT}>")
        descriptors: dict[str, DeviceDescriptor] = {}
        aliases: dict[str, str] = {}
        for node in root.childNodes:
            if isinstance(node, Element):
                self._entry(node, descriptors, aliases)
            elif node.nodeType in (node.TEXT_NODE, node.CDATA_SECTION_NODE) and (node.nodeValue or "").strip():
                raise self.damaged(f"text {(node.nodeValue or '').strip()[:40]!r} in <{ROOT}>: expected <{ENTRY}>")
        return Metadata(descriptors, aliases)

    def _entry(self, node: Element, descriptors: dict[str, DeviceDescriptor], aliases: dict[str, str]) -> None:
        if node.namespaceURI != self.namespace or node.localName != ENTRY:
            raise self.damaged(f"<{node.tagName}> in <{ROOT}>: expected only <{ENTRY}> elements")
        kind, address = node.getAttribute("kind"), node.getAttribute("address")
        if kind not in ("mdev", "pci") or address_kind(address) != kind:
            raise self.damaged(
                f"<{ENTRY} kind={kind[:20]!r} address={address[:60]!r}>: expected kind mdev with a canonical UUID, "
                "or kind pci with a canonical PCI address"
            )
        what = f"{self.what}: devmig metadata of hostdev {kind} {address}"
        if address in descriptors:
            raise self.damaged(f"hostdev {kind} {address} is described twice")
        if any(isinstance(child, Element) for child in node.childNodes):
            raise InputError(f"{what}: holds elements: expected a descriptor's JSON text")
        text = "".join(c.nodeValue or "" for c in node.childNodes if c.nodeType != c.COMMENT_NODE)
        descriptor = parse_document(DeviceDescriptor, text, what)
        if descriptor.address is None or descriptor.address.id != address:
            found = "no address" if descriptor.address is None else f"address {descriptor.address.id}"
            raise InputError(f"{what}: the descriptor has {found}: expected the hostdev's own, {address}")
        alias = node.getAttribute("alias")
        if alias:
            if not ALIAS.fullmatch(alias):
                raise self.damaged(f"hostdev {kind} {address} has alias {alias[:40]!r}: expected a libvirt alias")
            if alias in aliases:
                raise self.damaged(f"alias {alias} is given to two hostdevs")
            aliases[alias] = address
        descriptors[address] = descriptor


def from_domain(domain: DomainXml) -> Metadata | None:
    """devmig's metadata in a domain's XML, or None when it has none (the domain was never annotated)."""
    mine = [e for e in domain.metadata_elements() if (e.namespaceURI or "").startswith(NAMESPACE_FAMILY)]
    other = next((e.namespaceURI for e in mine if e.namespaceURI != NAMESPACE), None)
    if other is not None:
        raise InputError(f"{domain.what}: its devmig metadata is in {other}: this devmig reads {NAMESPACE}")
    return _Reader(domain.what, NAMESPACE).read(mine[0]) if mine else None


def require(domain: DomainXml) -> Metadata:
    """devmig's metadata in a domain's XML; InputError naming the domain when it has none."""
    found = from_domain(domain)
    if found is None:
        raise InputError(
            f"{domain.what}: no devmig metadata ({NAMESPACE}) in its <metadata>: run `devmig libvirt annotate "
            f"{domain.name}` on its host first"
        )
    return found


def from_api(text: str, what: str) -> Metadata:
    """The element virDomainGetMetadata returns (without its namespace); `what` names the domain."""
    doc = parse_xml(text, f"{what}: devmig metadata")
    assert doc.documentElement is not None
    return _Reader(what, None).read(doc.documentElement)


def set_in_domain(domain: DomainXml, descriptors: Iterable[DeviceDescriptor]) -> None:
    """Write devmig's element into a domain's XML (a hook's rewrite), replacing the one it held."""
    aliases = {h.address: h.alias for h in domain.hostdevs if h.alias}
    fragment = parse_xml(element_xml(descriptors, prefix=KEY, aliases=aliases), "devmig metadata")
    assert fragment.documentElement is not None
    domain.set_metadata_element(NAMESPACE, fragment.documentElement)
