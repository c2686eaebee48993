"""A libvirt domain's XML, read as untrusted input: its name, UUID and assigned devices, and the two changes devmig
makes to it (a hostdev's source address; devmig's element in `<metadata>`).

The text comes from libvirt, from a hook's stdin or from a user, so it is bounded (`MAX_XML_BYTES`, `MAX_DEPTH`),
must be UTF-8, and may hold no DTD, entity or external reference (defusedxml refuses them: a billion laughs or an
external entity is one `InputError`, never a parse). A DOM keeps what devmig does not touch (other namespaces such
as `qemu:override`, other applications' metadata, comments, white space) when the text is written back; only the
quoting of attributes may change, as in any XML serializer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast
from xml.dom import Node
from xml.dom.minidom import Document, Element
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException, DTDForbidden, minidom

from devmig.errors import InputError
from devmig.model.descriptor import AddressKind, address_kind

#: A domain's XML is a few KiB (hundreds of devices stay far below this); more is not a domain devmig should parse.
MAX_XML_BYTES = 1024 * 1024
#: libxml2's own default nesting limit, so devmig never accepts what libvirt itself would refuse to read.
MAX_DEPTH = 256

_ENCODING_DECLARATION = re.compile(r"""\A\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")
#: C's strtoul with base 0, as libvirt reads a number attribute: 0x hex, a leading 0 octal, else decimal.
_NUMBER = (
    (re.compile(r"0[xX]([0-9a-fA-F]+)"), 16),
    (re.compile(r"(0[0-7]*)"), 8),
    (re.compile(r"([1-9][0-9]*)"), 10),
)
#: a PCI source address's attributes, their upper bounds, and how libvirt writes each
_PCI_FIELDS = (
    ("domain", 0xFFFFFFFF, "0x{:04x}"),
    ("bus", 0xFF, "0x{:02x}"),
    ("slot", 0x1F, "0x{:02x}"),
    ("function", 7, "0x{:x}"),
)
#: libvirt's namespace for what it passes to QEMU as is (`<qemu:commandline>`, `<qemu:override>`)
QEMU_NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Hostdev:
    """One `<hostdev mode='subsystem'>` of type mdev or pci."""

    kind: AddressKind
    #: its source address, canonical: the mdev's UUID in lowercase, or the function's dddd:bb:ss.f
    address: str
    #: 1 for the domain's first hostdev element (of any type), for messages
    index: int
    alias: str | None = None
    #: mdev: the device API the guest sees (`model='vfio-pci'`, vfio-ccw, vfio-ap); pci: the VFIO variant driver
    #: libvirt binds (`<driver model='mlx5_vfio_pci'/>`), None for libvirt's choice
    model: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: `hostdev mdev 6f1c... (alias ua-gpu0)`."""
        return f"hostdev {self.kind} {self.address}" + (f" (alias {self.alias})" if self.alias else "")


@dataclass(frozen=True)
class QemuProperty:
    """A device property a `<qemu:override>` sets: libvirt passes it on the device's `-device` to QEMU."""

    #: the alias of the device it applies to (a hostdev's `<alias name>`)
    alias: str
    name: str
    #: string, signed, unsigned, bool, or remove (the property is dropped: QEMU's default applies)
    type: str
    value: str


def _children(parent: Element, name: str) -> Iterator[Element]:
    """The child elements named `name` in no namespace (libvirt's own elements have none)."""
    for node in parent.childNodes:
        if isinstance(node, Element) and node.namespaceURI is None and node.localName == name:
            yield node


def _child(parent: Element, name: str) -> Element | None:
    return next(_children(parent, name), None)


def _text(element: Element) -> str:
    return "".join(n.data for n in element.childNodes if n.nodeType in (Node.TEXT_NODE, Node.CDATA_SECTION_NODE))


def _attr(element: Element, name: str) -> str | None:
    return element.getAttribute(name) if element.hasAttribute(name) else None


def _name(text: str | None, what: str, origin: str) -> str | None:
    """A name devmig prints (the domain's, an alias, a model): libvirt allows no control character in one, and a
    newline in it would split devmig's one-line messages."""
    if text is not None and not text.isprintable():
        raise InputError(f"{origin}: {what} {text[:60]!r} holds a control character: expected a name libvirt allows")
    return text


def _number(text: str) -> int | None:
    for pattern, base in _NUMBER:
        match = pattern.fullmatch(text)
        if match:
            return int(match[1], base)
    return None


def _check_depth(doc: Document, origin: str) -> None:
    """Refuse deeper nesting than libvirt reads, before anything recursive (the serializer) walks the tree."""
    stack: list[tuple[Document | Element, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"{origin}: elements nested deeper than {MAX_DEPTH} levels: expected a domain's XML")
        stack.extend((c, depth + 1) for c in node.childNodes if isinstance(c, Element))


def parse_xml(text: str | bytes, origin: str) -> Document:
    """Untrusted XML text as a DOM: bounded, UTF-8, with no DTD, entity declaration or external reference."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_XML_BYTES:
        raise InputError(f"{origin}: {size} bytes of XML, more than the {MAX_XML_BYTES // 1024} KiB devmig reads")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{origin}: not UTF-8 (byte {exc.start}): expected XML text in UTF-8") from None
    declared = _ENCODING_DECLARATION.match(text)
    if declared and declared[1].lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise InputError(f"{origin}: declares encoding {declared[1]!r}: expected UTF-8, as libvirt writes")
    try:
        doc: Document = minidom.parseString(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        # refused before any entity or external reference it declares is looked at (a billion laughs, XXE)
        raise InputError(f"{origin}: holds a DTD (<!DOCTYPE>): expected XML without one, as libvirt writes") from None
    except DefusedXmlException as exc:  # the others (entities, external references) need a DTD: never a traceback
        raise InputError(f"{origin}: refused ({type(exc).__name__}): expected XML without entities") from None
    except ExpatError as exc:
        raise InputError(f"{origin}: not well-formed XML: {exc}") from None
    except UnicodeEncodeError:
        raise InputError(f"{origin}: not text: it holds a lone surrogate") from None
    _check_depth(doc, origin)
    return doc


class DomainXml:
    """A domain's XML, parsed: read its hostdevs, change what devmig changes, and write it back."""

    def __init__(self, doc: Document, origin: str) -> None:
        self.doc = doc
        assert doc.documentElement is not None  # a well-formed document has one
        self.root: Element = doc.documentElement
        if self.root.namespaceURI is not None or self.root.localName != "domain":
            found = self.root.tagName + (f" in namespace {self.root.namespaceURI}" if self.root.namespaceURI else "")
            raise InputError(f"{origin}: the root element is <{found}>, expected libvirt's <domain>")
        name = _child(self.root, "name")
        if name is None or not _text(name).strip():
            raise InputError(f"{origin}: <domain> has no <name>: expected a libvirt domain's XML")
        #: the domain's name, as libvirt knows it
        self.name = _name(_text(name).strip(), "<name>", origin) or ""
        self.uuid = self._uuid()
        self.hostdevs = self._hostdevs()

    @property
    def what(self) -> str:
        return f"domain {self.name}"

    def _uuid(self) -> str | None:
        element = _child(self.root, "uuid")
        if element is None:
            return None
        text = _text(element).strip()
        if not _UUID_TEXT.fullmatch(text):
            raise InputError(f"{self.what}: <uuid> holds {text[:60]!r}: expected a UUID (8-4-4-4-12 hex digits)")
        return text.lower()

    # -- hostdevs -------------------------------------------------------------------------------------------------

    def _hostdev_elements(self) -> Iterator[tuple[int, Element]]:
        """Every `<hostdev>` of `<devices>`, numbered from 1 in document order."""
        devices = _child(self.root, "devices")
        if devices is not None:
            yield from enumerate(_children(devices, "hostdev"), 1)

    def _source_address(self, element: Element, where: str) -> Element:
        source = _child(element, "source")
        address = None if source is None else _child(source, "address")
        if address is None:
            raise InputError(f"{where}: no <source><address>: expected the device it assigns")
        return address

    def _read_hostdev(self, index: int, element: Element) -> Hostdev | None:
        """The hostdev devmig handles (mode subsystem, type mdev or pci), or None for any other."""
        kind = _attr(element, "type")
        if (_attr(element, "mode") or "subsystem") != "subsystem" or kind not in ("mdev", "pci"):
            return None
        alias_element = _child(element, "alias")
        at = f"{self.what}: <hostdev type='{kind}'> #{index}"
        alias = None if alias_element is None else _name(_attr(alias_element, "name"), "<alias name>", at)
        where = at + (f" (alias {alias})" if alias else "")
        # an mdev's device API is the hostdev's attribute; a PCI hostdev's variant driver is <driver model=...>
        holder = element if kind == "mdev" else _child(element, "driver")
        model = None if holder is None else _name(_attr(holder, "model"), "model", where)
        address = self._source_address(element, where)
        if kind == "mdev":
            text = _attr(address, "uuid")
            if text is None or not _UUID_TEXT.fullmatch(text):
                found = "no uuid attribute" if text is None else f"uuid {text[:60]!r}"
                raise InputError(f"{where}: <source><address> has {found}: expected the mdev's UUID")
            return Hostdev("mdev", text.lower(), index, alias, model)
        numbers = []
        for field, limit, _ in _PCI_FIELDS:
            text = _attr(address, field)
            value = None if text is None else _number(text)
            if value is None or value > limit:
                found = f"no {field} attribute" if text is None else f"{field}={text[:40]!r}"
                raise InputError(
                    f"{where}: <source><address> has {found}: expected a number up to {limit:#x} (as 0x3b)"
                )
            numbers.append(value)
        domain, bus, slot, function = numbers
        return Hostdev("pci", f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}", index, alias, model)

    def _hostdevs(self) -> list[Hostdev]:
        found: dict[str, Hostdev] = {}
        for index, element in self._hostdev_elements():
            hostdev = self._read_hostdev(index, element)
            if hostdev is None:
                continue
            if hostdev.address in found:
                raise InputError(
                    f"{self.what}: <hostdev> #{found[hostdev.address].index} and #{index} both assign "
                    f"{hostdev.kind} {hostdev.address}: expected each device once"
                )
            found[hostdev.address] = hostdev
        return list(found.values())

    def hostdev(self, address: str) -> Hostdev:
        """The hostdev whose source is `address` (an mdev UUID or a PCI address, canonical)."""
        for hostdev in self.hostdevs:
            if hostdev.address == address:
                return hostdev
        known = ", ".join(h.address for h in self.hostdevs) or "none"
        raise InputError(f"{self.what}: no hostdev assigns {address} (its mdev and PCI hostdevs: {known})")

    def rewrite_source(self, old: str, new: str) -> Hostdev:
        """Make the hostdev that assigns `old` assign `new` instead (an mdev UUID for an mdev, a PCI address for a
        PCI function, canonical), as Nova and KubeVirt's hooks rewrite the XML for the destination. Returns the
        hostdev as it now reads."""
        hostdev = self.hostdev(old)
        if address_kind(new) != hostdev.kind:
            raise InputError(
                f"{self.what}: {hostdev.label}: cannot assign {new!r}: expected a canonical "
                f"{'mdev UUID' if hostdev.kind == 'mdev' else 'PCI address (dddd:bb:ss.f)'}"
            )
        taken = next((h for h in self.hostdevs if h.address == new and h is not hostdev), None)
        if taken is not None:
            raise InputError(f"{self.what}: cannot assign {new} to {hostdev.label}: {taken.label} assigns it")
        element = dict(self._hostdev_elements())[hostdev.index]
        address = self._source_address(element, f"{self.what}: {hostdev.label}")
        if hostdev.kind == "mdev":
            address.setAttribute("uuid", new)
        else:
            domain, bus, rest = new.split(":")
            slot, function = rest.split(".")
            for (field, _, form), value in zip(_PCI_FIELDS, (domain, bus, slot, function), strict=True):
                address.setAttribute(field, form.format(int(value, 16)))
        updated = self._read_hostdev(hostdev.index, element)
        assert updated is not None
        self.hostdevs = [updated if h.index == hostdev.index else h for h in self.hostdevs]
        return updated

    # -- what QEMU is told beside the devices (read by preflight) --------------------------------------------------

    def iommus(self) -> list[str]:
        """The model of each `<devices><iommu>` (a vIOMMU: intel, smmuv3, virtio, ...; "" when it names none)."""
        devices = _child(self.root, "devices")
        return [] if devices is None else [_attr(e, "model") or "" for e in _children(devices, "iommu")]

    def _qemu_elements(self, parent: Element, name: str) -> Iterator[Element]:
        for node in parent.childNodes:
            if isinstance(node, Element) and node.namespaceURI == QEMU_NAMESPACE and node.localName == name:
                yield node

    def qemu_args(self) -> list[str]:
        """The arguments `<qemu:commandline>` adds to QEMU's command line, in order."""
        return [
            _attr(arg, "value") or ""
            for line in self._qemu_elements(self.root, "commandline")
            for arg in self._qemu_elements(line, "arg")
        ]

    def qemu_properties(self) -> list[QemuProperty]:
        """Each `<qemu:override><qemu:device alias=...><qemu:frontend><qemu:property .../>`: a device property
        libvirt sets on QEMU's `-device` of the device with that alias."""
        return [
            QemuProperty(
                _attr(device, "alias") or "",
                _attr(prop, "name") or "",
                _attr(prop, "type") or "",
                _attr(prop, "value") or "",
            )
            for override in self._qemu_elements(self.root, "override")
            for device in self._qemu_elements(override, "device")
            for frontend in self._qemu_elements(device, "frontend")
            for prop in self._qemu_elements(frontend, "property")
        ]

    # -- metadata -------------------------------------------------------------------------------------------------

    def metadata_elements(self) -> list[Element]:
        """The elements inside `<metadata>`: each an application's, in its own namespace."""
        metadata = _child(self.root, "metadata")
        if metadata is None:
            return []
        return [n for n in metadata.childNodes if isinstance(n, Element)]

    def set_metadata_element(self, namespace: str, element: Element) -> None:
        """Put `element` in `<metadata>` in place of the one in `namespace` (libvirt keeps one per namespace),
        adding `<metadata>` after `<uuid>` (or `<name>`) when there is none, where libvirt writes it."""
        metadata = _child(self.root, "metadata")
        if metadata is None:
            metadata = self.doc.createElement("metadata")
            anchor = _child(self.root, "uuid") or _child(self.root, "name")
            assert anchor is not None  # __init__ requires <name>
            self.root.insertBefore(metadata, cast("Element | None", anchor.nextSibling))
        imported = self.doc.importNode(element, True)
        olds = [n for n in self.metadata_elements() if n.namespaceURI == namespace]
        if olds:
            metadata.replaceChild(imported, olds[0])
        else:
            metadata.appendChild(imported)
        for extra in olds[1:]:
            metadata.removeChild(extra)

    def text(self) -> str:
        """The XML text again, everything else as it was; without an XML declaration and ending in a newline, as
        libvirt writes it."""
        return "".join(node.toxml() for node in self.doc.childNodes) + "\n"


def parse_domain(text: str | bytes, origin: str = "domain XML") -> DomainXml:
    """A domain's XML (`virsh dumpxml`, a hook's stdin) as untrusted input; `origin` names it in errors."""
    return DomainXml(parse_xml(text, origin), origin)
