"""XMP packets: the GB 45438 record as ``TC260:AIGC`` plus IPTC DigitalSourceType.

This module owns the XMP side of every container that carries XMP (JPEG APP1,
PNG iTXt, WebP ``XMP `` chunk, TIFF tag 700, GIF application extension, PDF
metadata stream). Containers hand it the packet text; it reads the records
(element and attribute form, escaped or not, wrapped or bare JSON) and writes
exactly one record while keeping every other property of the packet.

XML is parsed with :mod:`defusedxml` (no DTDs, no entity expansion, no
external references): XMP comes from untrusted uploads.
"""

from __future__ import annotations

from xml.dom import Node
from xml.dom.minidom import Document, Element, Text
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException

# defusedxml.minidom.parseString without a parser is exactly this module's
# parseString; importing it directly skips defusedxml.pulldom, whose xml.sax
# pulls in urllib.request, http.client and ssl (a one-shot label pays for them)
from defusedxml import expatbuilder as safe_expatbuilder

from labelers.errors import CorruptInput
from labelers.formats import FoundRecord, Metadata
from labelers.formats.parse_once import parsed_once
from labelers.record import Record

TC260_NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
TC260_PREFIX = "TC260"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
IPTC_EXT_PREFIX = "Iptc4xmpExt"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X_NS = "adobe:ns:meta/"
XMLNS_NS = "http://www.w3.org/2000/xmlns/"

#: IPTC digital source type for content made by a trained model.
DIGITAL_SOURCE_TYPE_AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# values that already say "AI-made" more precisely; relabelling keeps them
_AI_SOURCE_TYPES = {
    DIGITAL_SOURCE_TYPE_AI,
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
}

#: carrier name reported for records found in XMP
CARRIER = "xmp:TC260:AIGC"

#: whitespace appended inside the packet wrapper so editors can update in place
#: (the XMP spec recommends 2-4 KB)
PACKET_PADDING = 2048

PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
PACKET_END = '<?xpacket end="w"?>'

_EMPTY_PACKET = (
    f'<x:xmpmeta xmlns:x="{X_NS}" x:xmptk="aigc-label">'
    f'<rdf:RDF xmlns:rdf="{RDF_NS}"></rdf:RDF></x:xmpmeta>'
)


# --------------------------------------------------------------------- text
def decode_packet(xmp: str | bytes) -> str:
    """The packet as text: UTF-8 (or UTF-16/32 with a BOM), NULs and BOM stripped."""
    if isinstance(xmp, bytes):
        if xmp.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
            text = xmp.decode("utf-32", errors="replace")
        elif xmp.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = xmp.decode("utf-16", errors="replace")
        else:
            text = xmp.decode("utf-8", errors="replace")
    else:
        text = xmp
    return text.strip("\x00 \t\r\n\ufeff")


def _parse(text: str) -> Document:
    """Parse packet text safely; CorruptInput on malformed XML or DTD/entities."""
    try:
        return safe_expatbuilder.parseString(
            text.encode("utf-8"), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise CorruptInput(
            f"XMP packet declares a DTD or entities, which are not allowed ({type(exc).__name__})"
        ) from None
    except (ExpatError, ValueError) as exc:
        raise CorruptInput(f"XMP packet is not well-formed XML: {exc}") from None


#: the packet parse that readers share within a request (parse_once); the
#: writer parses its own copy, since it edits the document
_parse_for_reading = parsed_once(_parse)


def _rdf_root(doc: Document) -> Element:
    root = doc.documentElement
    if root.namespaceURI == RDF_NS and root.localName == "RDF":
        return root
    for el in root.getElementsByTagNameNS(RDF_NS, "RDF"):
        return el
    raise CorruptInput("XMP packet has no rdf:RDF element")


def _descriptions(rdf: Element) -> list[Element]:
    return [
        n
        for n in rdf.childNodes
        if n.nodeType == Node.ELEMENT_NODE
        and n.namespaceURI == RDF_NS
        and n.localName == "Description"
    ]


def _is_aigc(ns: str | None, prefix: str | None, local: str | None) -> bool:
    # The standard namespace, or a near miss seen in the wild (other URI under the
    # TC260 prefix): both are the record, and one record per file means both count.
    if local != "AIGC":
        return False
    return ns == TC260_NS or (prefix or "").upper() == "TC260" or "tc260" in (ns or "").lower()


def _element_value(el: Element) -> str:
    """Text of a simple property, or of the first non-empty rdf:li (Alt/Bag/Seq)."""
    items = el.getElementsByTagNameNS(RDF_NS, "li")
    if items:
        for li in items:
            text = _text(li).strip()
            if text:
                return text
        return ""
    return _text(el)


def _text(node: Node) -> str:
    parts: list[str] = []
    for child in node.childNodes:
        if child.nodeType in (Node.TEXT_NODE, Node.CDATA_SECTION_NODE):
            parts.append(child.data)
        elif child.nodeType == Node.ELEMENT_NODE:
            parts.append(_text(child))
    return "".join(parts)


def found_record(raw: str, carrier: str = CARRIER) -> FoundRecord:
    """``raw`` parsed as a record for ``carrier``; a parse failure is kept as ``error``.

    Shared by every image container for its legacy carriers (EXIF, PNG text,
    GIF comments), so all of them report records the same way.
    """
    try:
        return FoundRecord(carrier=carrier, raw=raw, record=Record.parse(raw))
    except Exception as exc:  # any parse failure is reported as a finding, not raised
        detail = getattr(exc, "detail", str(exc))
        return FoundRecord(carrier=carrier, raw=raw, record=None, error=detail)


def looks_like_record(text: str) -> bool:
    """Whether a free-text field (comment, description) tries to hold a record."""
    return "{" in text and "aigc" in text.lower()


def read_comments(meta: Metadata, comments: list[str], name: str, carrier: str) -> None:
    """Free-text comments (JPEG COM, GIF comment extensions) into ``meta``.

    All of them, joined, become the property ``name``; those holding a record
    are appended to the records as the legacy ``carrier``.
    """
    comments = [c for c in comments if c]
    if comments:
        meta.properties[name] = "\n".join(comments)
    meta.records.extend(found_record(c, carrier) for c in comments if looks_like_record(c))


# --------------------------------------------------------------------- read
#: most records reported from one packet: a file should hold one, and parsing
#: the 100,000 a crafted packet can hold tells a reader nothing more
MAX_RECORDS = 100


def read_records(xmp: str | bytes) -> list[FoundRecord]:
    """Every ``TC260:AIGC`` property in the packet, in document order.

    Element and attribute forms, XML-escaped or not, wrapped or bare JSON. A
    packet that is not well-formed XML (or declares a DTD) is scanned textually
    instead, without expanding anything, so a broken packet still shows its record.
    """
    text = decode_packet(xmp)
    if not text:
        return []
    try:
        doc = _parse_for_reading(text)
    except CorruptInput:
        return [found_record(raw) for raw in _scan_records(text)]
    out: list[FoundRecord] = []
    for el in doc.getElementsByTagName("*"):
        for attr in list(el.attributes.values()) if el.attributes else []:
            if _is_aigc(attr.namespaceURI, attr.prefix, attr.localName):
                out.append(found_record(attr.value))
        if _is_aigc(el.namespaceURI, el.prefix, el.localName):
            out.append(found_record(_element_value(el)))
        if len(out) >= MAX_RECORDS:
            break
    return out


def _scan_records(text: str) -> list[str]:
    """``TC260:AIGC`` values in a packet that is not XML, in one linear pass.

    Regular expressions such as ``<(\\w+:)?AIGC[^>]*>(.*?)</...>`` backtrack: on
    a long packet with many openings and no closing tag they cost the square of
    its length (a 100,000-character packet took over a minute). This walks the
    occurrences of ``AIGC`` once; every search for a closing quote, ``>`` or
    closing tag starts past the previous one, so the whole scan is linear.
    """
    attributes: list[str] = []
    elements: list[str] = []
    finder = _ForwardFinder(text)
    pos = 0
    open_end = -1  # end of the opening tag of an element record waiting for its close
    while (at := text.find("AIGC", pos)) >= 0:
        pos = at + 4
        start = _name_start(text, at)
        before = text[start - 1] if start > 0 else ""
        after = text[pos : pos + 1]
        if before == "/" and start > 1 and text[start - 2] == "<":  # a closing tag
            if open_end >= 0 and text[_skip_space(text, pos) : _skip_space(text, pos) + 1] == ">":
                elements.append(_strip_tags(text[open_end : start - 2]))
                open_end = -1
            continue
        if open_end >= 0:
            continue  # inside an element record's value, only its closing tag matters
        if before == "<":  # an opening tag: the value starts after its ">"
            if after not in (">", " ", "\t", "\r", "\n"):
                continue
            gt = finder.find(">", pos)
            if gt < 0:
                break
            if text[gt - 1] != "/":
                open_end = gt + 1
            continue
        eq = _skip_space(text, pos)
        if eq < len(text) and text[eq] == "=":
            quote_at = _skip_space(text, eq + 1)
            quote = text[quote_at : quote_at + 1]
            if quote in ('"', "'"):
                close = finder.find(quote, quote_at + 1)
                if close >= 0:
                    attributes.append(text[quote_at + 1 : close])
                    pos = close + 1
        if len(attributes) + len(elements) >= MAX_RECORDS:
            break
    return attributes + elements


class _ForwardFinder:
    """``str.find`` that remembers a miss: once a character is not found past an
    offset, later searches past it answer at once instead of rescanning the tail."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._last: dict[str, tuple[int, int]] = {}  # char -> (searched from, found at)

    def find(self, char: str, start: int) -> int:
        searched_from, found_at = self._last.get(char, (len(self._text) + 1, -1))
        if searched_from <= start and (found_at < 0 or found_at >= start):
            return found_at
        found_at = self._text.find(char, start)
        self._last[char] = (start, found_at)
        return found_at


def _scan_source_type(text: str) -> str | None:
    """The first ``DigitalSourceType`` value (attribute or element) in a packet that
    is not XML; linear for the reason :func:`_scan_records` gives."""
    finder = _ForwardFinder(text)
    pos = 0
    while (at := text.find("DigitalSourceType", pos)) >= 0:
        pos = at + len("DigitalSourceType")
        after = _skip_space(text, pos)
        if text[after : after + 1] == "=":
            quote_at = _skip_space(text, after + 1)
            if text[quote_at : quote_at + 1] in ('"', "'"):
                end = quote_at + 1
                while end < len(text) and text[end] not in "\"'":
                    end += 1
                return text[quote_at + 1 : end].strip() or None
        gt = finder.find(">", pos)
        if gt < 0:
            return None
        lt = finder.find("<", gt + 1)
        if lt >= 0:
            return text[gt + 1 : lt].strip() or None
    return None


def _name_start(text: str, at: int) -> int:
    """Where the (optionally prefixed) XML name ending in ``AIGC`` at ``at`` starts."""
    start = at
    limit = max(0, at - 64)  # real prefixes are short; bounds the look-back
    while start > limit and (text[start - 1].isalnum() or text[start - 1] in "_.-:"):
        start -= 1
    return start


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _strip_tags(value: str) -> str:
    """``value`` without ``<...>`` tags (rdf:Alt/li wrappers), linear."""
    out: list[str] = []
    pos = 0
    while (lt := value.find("<", pos)) >= 0:
        out.append(value[pos:lt])
        gt = value.find(">", lt)
        if gt < 0:
            out.append(value[lt:])  # an unterminated "<" is text
            pos = len(value)
            break
        pos = gt + 1
    out.append(value[pos:])
    return "".join(out)


def digital_source_type(xmp: str | bytes) -> str | None:
    """The IPTC ``Iptc4xmpExt:DigitalSourceType`` value, or None."""
    text = decode_packet(xmp)
    if not text:
        return None
    try:
        doc = _parse_for_reading(text)
    except CorruptInput:
        return _scan_source_type(text)
    for el in doc.getElementsByTagName("*"):
        if el.attributes:
            value = el.getAttributeNS(IPTC_EXT_NS, "DigitalSourceType")
            if value:
                return value.strip()
        if el.namespaceURI == IPTC_EXT_NS and el.localName == "DigitalSourceType":
            value = el.getAttributeNS(RDF_NS, "resource") or _element_value(el)
            return value.strip() or None
    return None


def simple_properties(xmp: str | bytes, wanted: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Values of simple properties, ``{key: (namespace URI, local name)}`` -> ``{key: value}``.

    Attribute or element form, the first non-empty ``rdf:li`` of an Alt/Bag/Seq.
    One parse for all of them; a packet that does not parse yields nothing (the
    record scanner above is the only fallback worth having).
    """
    text = decode_packet(xmp)
    if not text or not wanted:
        return {}
    try:
        doc = _parse_for_reading(text)
    except CorruptInput:
        return {}
    found: dict[str, str] = {}
    for el in doc.getElementsByTagName("*"):
        for key, (namespace, name) in wanted.items():
            if key in found:
                continue
            value = el.getAttributeNS(namespace, name) if el.attributes else ""
            if not value and el.namespaceURI == namespace and el.localName == name:
                value = _element_value(el)
            if value.strip():
                found[key] = value.strip()
    return found


# -------------------------------------------------------------------- write
def set_record(xmp: str | bytes | None, record: Record, *, padding: int = PACKET_PADDING) -> str:
    """A full XMP packet holding ``record`` as ``TC260:AIGC`` (and the IPTC source type).

    Every other property of ``xmp`` is kept. Existing ``TC260:AIGC`` properties
    (element or attribute form, anywhere) are removed and one is written: in the
    ``rdf:Description`` that already uses the TC260 namespace if there is one
    (the property is updated in place), otherwise in a new ``rdf:Description``.
    Raises CorruptInput if ``xmp`` is not well-formed or declares a DTD/entities.
    """
    text = decode_packet(xmp) if xmp is not None else ""
    doc = _parse(text or _EMPTY_PACKET)
    rdf = _rdf_root(doc)
    descriptions = _descriptions(rdf)

    # Where the record goes: the description that holds other TC260 properties,
    # at the position of the old record if it was an element there.
    target: Element | None = None
    anchor: Node | None = None
    for desc in descriptions:
        if _uses_namespace(desc, TC260_NS):
            target = desc
            break
    old_elements = [
        el
        for el in doc.getElementsByTagName("*")
        if _is_aigc(el.namespaceURI, el.prefix, el.localName)
    ]
    for el in old_elements:
        if target is not None and el.parentNode is target and anchor is None:
            anchor = _next_kept_element(el)
        _remove_with_indent(el)
    for el in doc.getElementsByTagName("*"):
        for attr in list(el.attributes.values()) if el.attributes else []:
            if _is_aigc(attr.namespaceURI, attr.prefix, attr.localName):
                el.removeAttributeNode(attr)

    source_type = DIGITAL_SOURCE_TYPE_AI
    for el in list(doc.getElementsByTagNameNS(IPTC_EXT_NS, "DigitalSourceType")):
        value = (el.getAttributeNS(RDF_NS, "resource") or _element_value(el)).strip()
        if value in _AI_SOURCE_TYPES:
            source_type = value
        _remove_with_indent(el)
    for desc in descriptions:
        value = desc.getAttributeNS(IPTC_EXT_NS, "DigitalSourceType").strip()
        if desc.hasAttributeNS(IPTC_EXT_NS, "DigitalSourceType"):
            if value in _AI_SOURCE_TYPES:
                source_type = value
            desc.removeAttributeNS(IPTC_EXT_NS, "DigitalSourceType")

    if target is None:
        target = doc.createElementNS(RDF_NS, _qname(rdf, RDF_NS, "rdf", "Description"))
        about = descriptions[0].getAttributeNS(RDF_NS, "about") if descriptions else ""
        target.setAttributeNS(RDF_NS, _qname(rdf, RDF_NS, "rdf", "about"), about)
        _append_indented(rdf, target, "\n  ")
        anchor = None

    tc_name = _qname(target, TC260_NS, TC260_PREFIX, "AIGC", declare_on=target)
    aigc = doc.createElementNS(TC260_NS, tc_name)
    aigc.appendChild(_json_text(doc, record.dumps(wrapped=False)))
    ds_name = _qname(target, IPTC_EXT_NS, IPTC_EXT_PREFIX, "DigitalSourceType", declare_on=target)
    dst = doc.createElementNS(IPTC_EXT_NS, ds_name)
    dst.appendChild(doc.createTextNode(source_type))
    if anchor is not None:
        target.insertBefore(aigc, anchor)
        target.insertBefore(doc.createTextNode("\n   "), anchor)
        target.insertBefore(dst, anchor)
        target.insertBefore(doc.createTextNode("\n   "), anchor)
    else:
        _append_indented(target, aigc, "\n   ")
        _append_indented(target, dst, "\n   ")
    body = doc.documentElement.toxml()
    return f"{PACKET_BEGIN}\n{body}\n{_padding(padding)}{PACKET_END}"


class _JsonText(Text):
    """A text node serialised with literal quotes.

    minidom writes ``"`` as ``&quot;`` in text too; that is valid XML, but
    simple readers that cut the JSON out of ``<TC260:AIGC>...</TC260:AIGC>``
    expect ``{"Label":"1",...}``, so only ``&``, ``<`` and ``>`` are escaped.
    """

    def writexml(self, writer, indent="", addindent="", newl=""):  # type: ignore[no-untyped-def]
        data = self.data.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        writer.write(f"{indent}{data}{newl}")


def _json_text(doc: Document, data: str) -> Text:
    node = _JsonText()
    node.data = data
    node.ownerDocument = doc
    return node


def _next_kept_element(el: Element) -> Element | None:
    """The next sibling element that set_record does not remove (its insertion point)."""
    node = el.nextSibling
    while node is not None:
        if node.nodeType == Node.ELEMENT_NODE and not (
            _is_aigc(node.namespaceURI, node.prefix, node.localName)
            or (node.namespaceURI == IPTC_EXT_NS and node.localName == "DigitalSourceType")
        ):
            return node
        node = node.nextSibling
    return None


def _padding(size: int) -> str:
    if size <= 0:
        return ""
    line = " " * 99 + "\n"
    return (line * (size // 100 + 1))[:size]


def _uses_namespace(el: Element, ns: str) -> bool:
    if el.attributes:
        for attr in el.attributes.values():
            if attr.namespaceURI == ns:
                return True
    return any(
        child.nodeType == Node.ELEMENT_NODE and child.namespaceURI == ns for child in el.childNodes
    )


def _bound_prefix(el: Element, ns: str) -> str | None:
    """A prefix bound to ``ns`` in scope at ``el``."""
    node: Node | None = el
    while node is not None and node.nodeType == Node.ELEMENT_NODE:
        for attr in node.attributes.values():
            if attr.namespaceURI == XMLNS_NS and attr.value == ns and attr.prefix == "xmlns":
                return attr.localName
        node = node.parentNode
    return None


def _prefix_taken(el: Element, prefix: str) -> bool:
    node: Node | None = el
    while node is not None and node.nodeType == Node.ELEMENT_NODE:
        if node.hasAttribute(f"xmlns:{prefix}"):
            return True
        node = node.parentNode
    return False


def _qname(
    el: Element, ns: str, preferred: str, local: str, declare_on: Element | None = None
) -> str:
    """A qualified name for ``ns:local`` valid at ``el``, declaring the prefix if needed."""
    prefix = _bound_prefix(el, ns)
    if prefix is None:
        prefix = preferred
        n = 1
        while _prefix_taken(el, prefix):
            prefix = f"{preferred}{n}"
            n += 1
        (declare_on or el).setAttributeNS(XMLNS_NS, f"xmlns:{prefix}", ns)
    return f"{prefix}:{local}"


def _append_indented(parent: Element, child: Element, indent: str) -> None:
    last = parent.lastChild
    if last is not None and last.nodeType == Node.TEXT_NODE and not last.data.strip():
        # keep the closing tag's own indentation after the new child
        parent.insertBefore(parent.ownerDocument.createTextNode(indent), last)
        parent.insertBefore(child, last)
    else:
        parent.appendChild(parent.ownerDocument.createTextNode(indent))
        parent.appendChild(child)
        parent.appendChild(parent.ownerDocument.createTextNode(indent[:-1]))


def _remove_with_indent(el: Element) -> None:
    parent = el.parentNode
    prev = el.previousSibling
    if prev is not None and prev.nodeType == Node.TEXT_NODE and not prev.data.strip():
        parent.removeChild(prev)
    parent.removeChild(el)
