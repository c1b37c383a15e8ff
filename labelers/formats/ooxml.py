"""Office Open XML packages (DOCX, PPTX, XLSX): the ZIP container and the record.

This module owns the bytes of OOXML packages in both directions:

* :class:`OoxmlPackage` opens a package safely (ZIP-bomb, entry-count,
  path-traversal and overlap checks before anything is inflated, and an
  inflation budget enforced while streaming because declared sizes can lie),
  parses parts with defusedxml (no DTDs, no entities), follows relationships,
  and writes the package back copying every untouched entry's raw bytes
  (local header + compressed data) so they stay byte-identical.
* :data:`HANDLER` reads and writes the GB 45438 record: custom document
  property ``AIGC`` (``vt:lpwstr``) in ``docProps/custom.xml``, holding the
  bare seven-field object (a carrier whose key is already named AIGC holds
  the inner object, not the ``{"AIGC": ...}`` wrapper); reading accepts the
  wrapped form too. It also reads the core/app properties and the document
  text (for finding visible labels).

``labelers/visible/office.py`` edits parts through :class:`OoxmlPackage`, so
the container is parsed in exactly one place.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.dom import minidom
from xml.etree.ElementTree import Element, ParseError
from xml.parsers.expat import ExpatError

import defusedxml
import defusedxml.ElementTree as safe_et
import defusedxml.minidom as safe_minidom

from labelers.errors import (
    CorruptInput,
    EncryptedInput,
    InvalidRecord,
    UnsupportedMedia,
)
from labelers.formats import Capability, ContentHasher, FoundRecord, Kind, Metadata, zipwriter
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = (DOCX, PPTX, XLSX)
# the main part's folder, near the front of the ZIP, says which of the three it is
_MAIN_PARTS = {b"word/": DOCX, b"ppt/": PPTX, b"xl/": XLSX}
OOXML_TYPES = MEDIA_TYPES

CONTENT_TYPES = "[Content_Types].xml"
NS_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_CUSTOM = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
NS_VT = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
NS_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
NS_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
NS_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"

REL_OFFICE_DOCUMENT = NS_REL + "/officeDocument"
REL_CUSTOM = NS_REL + "/custom-properties"
REL_CORE = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
REL_APP = NS_REL + "/extended-properties"
CT_CUSTOM = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
#: the FMTID Office uses for user-defined custom properties
FMTID_USER_DEFINED = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
PROPERTY_NAME = "AIGC"
CARRIER = "ooxml:custom:AIGC"
#: where c2pa puts its manifest store in a ZIP-based file
C2PA_ENTRY = "META-INF/content_credential.c2pa"
#: package-level parts the content digest leaves out: write_record edits them
#: (custom properties, their content-type override and package relationship),
#: and core/app properties are document metadata, not content
DIGEST_SKIPPED_PARTS = frozenset(
    name.lower()
    for name in (
        CONTENT_TYPES,
        "_rels/.rels",
        "docProps/core.xml",
        "docProps/app.xml",
        "docProps/custom.xml",
        C2PA_ENTRY,
    )
)

# main-part content type -> package kind; macro-enabled files and templates
# share their family's layout, so they are read and labelled the same way.
_MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DOCX,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": DOCX,
    "application/vnd.ms-word.document.macroenabled.main+xml": DOCX,
    "application/vnd.ms-word.template.macroenabledtemplate.main+xml": DOCX,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": PPTX,
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml": PPTX,
    "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml": PPTX,
    "application/vnd.ms-powerpoint.presentation.macroenabled.main+xml": PPTX,
    "application/vnd.ms-powerpoint.slideshow.macroenabled.main+xml": PPTX,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": XLSX,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": XLSX,
    "application/vnd.ms-excel.sheet.macroenabled.main+xml": XLSX,
    "application/vnd.ms-excel.template.macroenabled.main+xml": XLSX,
}
# compressed entries smaller than this are not ratio-checked: tiny XML parts
# legitimately compress 100x+ and cannot hurt anyone.
_RATIO_FLOOR = 1024 * 1024
_CHUNK = 64 * 1024
_XML_DECL = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'


# --------------------------------------------------------------------- XML
@contextmanager
def _xml_errors(part: str) -> Iterator[None]:
    """Parser failures of ``part`` as CorruptInput naming it; DTDs and entities refused."""
    try:
        yield
    except defusedxml.DefusedXmlException as exc:
        raise CorruptInput(
            f"{part} declares a DTD or entities ({type(exc).__name__}); OOXML parts may not"
        ) from None
    except (ExpatError, ParseError, ValueError, LookupError) as exc:
        # LookupError: an XML declaration naming an encoding Python does not know
        raise CorruptInput(f"{part} is not well-formed XML: {exc}") from None


def parse_xml(data: bytes, part: str) -> minidom.Document:
    """A DOM of ``part`` for editing."""
    with _xml_errors(part):
        return safe_minidom.parseString(data, forbid_dtd=True)


def parse_tree(data: bytes, part: str) -> Element:
    """An ElementTree root of ``part`` for reading (faster than a DOM)."""
    with _xml_errors(part):
        return safe_et.fromstring(data, forbid_dtd=True)


def iter_tree(data: bytes, part: str) -> Iterator[tuple[str, Element]]:
    """Streaming ("start"/"end", element) events, for big parts such as worksheets."""
    with _xml_errors(part):
        yield from safe_et.iterparse(io.BytesIO(data), ("start", "end"), forbid_dtd=True)


def serialize_xml(doc: minidom.Document) -> bytes:
    """The DOM as a UTF-8 part; prefixes and namespace declarations are kept as parsed."""
    return _XML_DECL + "".join(node.toxml() for node in doc.childNodes).encode("utf-8")


def prefix_for(element: minidom.Element, namespace: str) -> str | None:
    """The prefix bound to ``namespace`` at ``element`` ("" for the default), or None."""
    node: Any = element
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        for name, value in node.attributes.items():
            if value == namespace:
                if name == "xmlns":
                    return ""
                if name.startswith("xmlns:"):
                    return name[6:]
        node = node.parentNode
    return None


def qname(prefix: str | None, local: str) -> str:
    return f"{prefix}:{local}" if prefix else local


def children(element: minidom.Element, namespace: str, local: str) -> list[minidom.Element]:
    return [
        c
        for c in element.childNodes
        if c.nodeType == c.ELEMENT_NODE and c.namespaceURI == namespace and c.localName == local
    ]


def descendants(element: Any, namespace: str, local: str) -> list[minidom.Element]:
    return list(element.getElementsByTagNameNS(namespace, local))


def _tag(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


# ------------------------------------------------------------------ package
@dataclass
class Relationship:
    id: str
    type: str
    target: str | None  # resolved part name (no leading slash), None if external/outside
    raw_target: str


class OoxmlPackage:
    """An OPC package opened with limits; parts can be read, edited and written back.

    Entries that are not changed are copied raw (their local header and
    compressed bytes), so they come out byte-identical and are never inflated.
    """

    def __init__(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
        limits.check("max_bytes", len(data), "the file")
        self.data = data
        self.limits = limits
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
            raise CorruptInput(f"not a valid ZIP/OOXML package: {exc}") from None
        except NotImplementedError as exc:  # e.g. "zip file version 9.9" in a header
            raise CorruptInput(f"the ZIP package uses a feature not supported: {exc}") from None
        if len(infos) > limits.max_zip_entries:
            raise limits.exceeded(
                "max_zip_entries",
                len(infos),
                f"the package has {len(infos)} entries, over the limit of {limits.max_zip_entries}",
            )
        self.infos = infos
        self._by_lower: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            self._check_entry(info)
            key = info.filename.lower()
            if key in self._by_lower:
                raise CorruptInput(
                    f"the package holds two entries named {info.filename!r}; "
                    "OOXML part names must be unique"
                )
            self._by_lower[key] = info
            total += info.file_size
        if total > limits.max_unzipped_bytes:
            raise limits.exceeded(
                "max_unzipped_bytes",
                total,
                f"the package would inflate to {total} bytes, over the "
                f"{limits.max_unzipped_bytes}-byte limit",
            )
        if total > _RATIO_FLOOR and total > limits.max_zip_ratio * len(data):
            raise limits.exceeded(
                "max_zip_ratio",
                total / len(data),
                f"the package inflates {total / len(data):.0f}x, over the limit of "
                f"{limits.max_zip_ratio:g}x: a ZIP bomb?",
            )
        if CONTENT_TYPES.lower() not in self._by_lower:
            raise UnsupportedMedia("ZIP archive without [Content_Types].xml: not an OOXML package")
        self._inflated = 0
        self._doms: dict[str, minidom.Document] = {}
        self._dirty: set[str] = set()
        self._new: dict[str, bytes] = {}  # part name -> replacement or added bytes
        self._order: list[str] = [i.filename for i in infos]
        self._names = {name.lower(): name for name in self._order}  # lower-case -> entry name

    def _check_entry(self, info: zipfile.ZipInfo) -> None:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise CorruptInput(f"package entry name {name!r} points outside the package")
        if info.flag_bits & 0x1:
            raise EncryptedInput(f"package entry {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CorruptInput(
                f"package entry {name!r} uses ZIP compression method {info.compress_type}; "
                "OOXML allows only stored and deflate"
            )
        if info.file_size > _RATIO_FLOOR and (
            info.file_size > self.limits.max_zip_ratio * max(info.compress_size, 1)
        ):
            raise self.limits.exceeded(
                "max_zip_ratio",
                info.file_size / max(info.compress_size, 1),
                f"package entry {name!r} inflates {info.file_size} bytes from "
                f"{info.compress_size}, over the {self.limits.max_zip_ratio:g}x limit: a ZIP bomb?",
            )

    # ---------------------------------------------------------------- parts
    def name_of(self, part: str) -> str | None:
        """The entry name of ``part`` (OPC part names are case-insensitive)."""
        return self._names.get(part.lstrip("/").lower())

    def has(self, part: str) -> bool:
        return self.name_of(part) is not None

    def read(self, part: str) -> bytes:
        """The part's bytes, inflated within the package's inflation budget."""
        name = self.name_of(part)
        if name is None:
            raise CorruptInput(f"the package has no part {part!r}")
        if name in self._doms and name in self._dirty:
            return serialize_xml(self._doms[name])
        if name in self._new:
            return self._new[name]
        info = self._by_lower[name.lower()]
        budget = self.limits.max_unzipped_bytes - self._inflated
        out = bytearray()
        try:
            with self._zip.open(info) as stream:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    out += chunk
                    if len(out) > info.file_size:
                        raise CorruptInput(f"package entry {name!r} is larger than it declares")
                    if len(out) > budget:
                        raise self.limits.exceeded(
                            "max_unzipped_bytes",
                            self._inflated + len(out),
                            "the package inflates past the "
                            f"{self.limits.max_unzipped_bytes}-byte limit",
                        )
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
            NotImplementedError,  # an odd "version needed to extract" field
        ) as exc:
            raise CorruptInput(f"package entry {name!r} cannot be inflated: {exc}") from None
        self._inflated += len(out)
        return bytes(out)

    def dom(self, part: str) -> minidom.Document:
        """A DOM of ``part`` to edit; call :meth:`touch` after changing it."""
        name = self.name_of(part)
        if name is None:
            raise CorruptInput(f"the package has no part {part!r}")
        if name not in self._doms:
            self._doms[name] = parse_xml(self.read(name), name)
        return self._doms[name]

    def tree(self, part: str) -> Element:
        return parse_tree(self.read(part), part)

    def touch(self, part: str) -> None:
        """Mark the DOM of ``part`` as changed, so it is written back."""
        name = self.name_of(part)
        assert name is not None and name in self._doms
        self._dirty.add(name)

    def put(self, part: str, data: bytes, content_type: str | None = None) -> str:
        """Replace or add ``part``; a new part gets a content-type Override."""
        name = self.name_of(part) or part.lstrip("/")
        self._doms.pop(name, None)
        self._dirty.discard(name)
        self._new[name] = data
        if name.lower() not in self._names:
            self._order.append(name)
            self._names[name.lower()] = name
        if content_type is not None:
            self.ensure_override(name, content_type)
        return name

    def put_dom(self, part: str, doc: minidom.Document, content_type: str | None = None) -> str:
        name = self.put(part, b"", content_type)
        del self._new[name]
        self._doms[name] = doc
        self._dirty.add(name)
        return name

    # -------------------------------------------------------- content types
    def content_type(self, part: str) -> str | None:
        doc = self.dom(CONTENT_TYPES)
        target = "/" + part.lstrip("/").lower()
        for el in descendants(doc, NS_CT, "Override"):
            if el.getAttribute("PartName").lower() == target:
                return el.getAttribute("ContentType")
        ext = posixpath.splitext(part)[1].lstrip(".").lower()
        for el in descendants(doc, NS_CT, "Default"):
            if el.getAttribute("Extension").lower() == ext:
                return el.getAttribute("ContentType")
        return None

    def ensure_override(self, part: str, content_type: str) -> None:
        doc = self.dom(CONTENT_TYPES)
        target = "/" + part.lstrip("/")
        for el in descendants(doc, NS_CT, "Override"):
            if el.getAttribute("PartName").lower() == target.lower():
                if el.getAttribute("ContentType") != content_type:
                    el.setAttribute("ContentType", content_type)
                    self.touch(CONTENT_TYPES)
                return
        root = doc.documentElement
        el = doc.createElementNS(NS_CT, qname(root.prefix, "Override"))
        el.setAttribute("PartName", target)
        el.setAttribute("ContentType", content_type)
        root.appendChild(el)
        self.touch(CONTENT_TYPES)

    # -------------------------------------------------------- relationships
    @staticmethod
    def rels_part(source: str) -> str:
        """The relationships part of ``source`` ("" = the package itself)."""
        source = source.lstrip("/")
        folder, base = posixpath.split(source)
        return posixpath.join(folder, "_rels", base + ".rels")

    def relationships(self, source: str) -> list[Relationship]:
        rels = self.rels_part(source)
        if not self.has(rels):
            return []
        out = []
        for el in descendants(self.dom(rels), NS_PKG_REL, "Relationship"):
            raw = el.getAttribute("Target")
            target = None
            if el.getAttribute("TargetMode") != "External":
                target = resolve_target(source, raw)
            out.append(Relationship(el.getAttribute("Id"), el.getAttribute("Type"), target, raw))
        return out

    def related(self, source: str, rel_type: str) -> list[str]:
        """Existing parts ``source`` points to with ``rel_type`` (ignores dangling targets)."""
        return [
            name
            for r in self.relationships(source)
            if r.type == rel_type and r.target and (name := self.name_of(r.target))
        ]

    def add_relationship(self, source: str, rel_type: str, target_part: str) -> str:
        """Add a relationship from ``source`` to ``target_part``; returns its Id."""
        rels = self.rels_part(source)
        if not self.has(rels):
            doc = safe_minidom.parseString(
                f'<Relationships xmlns="{NS_PKG_REL}"></Relationships>'.encode()
            )
            self.put_dom(rels, doc, "application/vnd.openxmlformats-package.relationships+xml")
        doc = self.dom(rels)
        root = doc.documentElement
        used = {el.getAttribute("Id") for el in descendants(doc, NS_PKG_REL, "Relationship")}
        n = len(used) + 1
        while f"rId{n}" in used:
            n += 1
        rid = f"rId{n}"
        el = doc.createElementNS(NS_PKG_REL, qname(root.prefix, "Relationship"))
        el.setAttribute("Id", rid)
        el.setAttribute("Type", rel_type)
        el.setAttribute("Target", relative_target(source, target_part))
        root.appendChild(el)
        self.touch(rels)
        return rid

    def remove_relationship(self, source: str, rid: str) -> None:
        rels = self.rels_part(source)
        if not self.has(rels):
            return
        doc = self.dom(rels)
        for el in descendants(doc, NS_PKG_REL, "Relationship"):
            if el.getAttribute("Id") == rid:
                el.parentNode.removeChild(el)
                self.touch(rels)

    def main_part(self) -> str:
        parts = self.related("", REL_OFFICE_DOCUMENT)
        if not parts:
            # strict-conformance packages use a purl.oclc.org relationship type
            parts = [
                name
                for r in self.relationships("")
                if r.type.endswith("/officeDocument")
                and r.target
                and (name := self.name_of(r.target))
            ]
        if not parts:
            raise CorruptInput("the package has no main document (officeDocument relationship)")
        return parts[0]

    def kind(self) -> str:
        """DOCX, PPTX or XLSX media type, from the main part's content type."""
        ctype = (self.content_type(self.main_part()) or "").lower()
        if ctype not in _MAIN_TYPES:
            raise UnsupportedMedia(
                f"OOXML package whose main part is {ctype or 'untyped'}: "
                "not a Word, PowerPoint or Excel document"
            )
        return _MAIN_TYPES[ctype]

    # --------------------------------------------------------------- output
    def to_bytes(self) -> bytes:
        """The package with edited parts replaced; other entries copied raw."""
        for name in self._dirty:
            self._new[name] = serialize_xml(self._doms[name])
        self._dirty.clear()
        entries = [(name, self._by_lower.get(name.lower())) for name in self._order]
        # entries copied raw are inflated once first (within the budget), so a
        # damaged one (bad CRC, broken deflate) is refused here as verify's
        # content digest refuses it: label and verify accept the same files
        return zipwriter.rewrite(self.data, entries, self._new, self._zip.comment, check=self.read)


def resolve_target(source: str, target: str) -> str | None:
    """Part name a relationship target points to, or None when it leaves the package."""
    target = unquote(target.split("#", 1)[0])
    if not target:
        return None
    if target.startswith("/"):
        path = target.lstrip("/")
    else:
        path = posixpath.join(posixpath.dirname(source.lstrip("/")), target)
    path = posixpath.normpath(path)
    if path.startswith("..") or path.startswith("/") or path == ".":
        return None  # path traversal: ignored, never followed
    return path


def relative_target(source: str, part: str) -> str:
    base = posixpath.dirname(source.lstrip("/"))
    return posixpath.relpath(part.lstrip("/"), base or ".")


# --------------------------------------------------------------- text, props
def _texts(root: Element, para: str, text_tags: set[str], breaks: dict[str, str]) -> list[str]:
    """Text of each ``para`` element in document order; nested ones stand alone.

    Iterative, so deeply nested XML cannot exhaust the Python stack.
    """
    out: list[list[str]] = []
    stack: list[tuple[Element, list[str] | None]] = [(root, None)]
    while stack:
        el, buf = stack.pop()
        if el.tag == para:
            buf = []
            out.append(buf)
        elif buf is not None:
            if el.tag in text_tags and el.text:
                buf.append(el.text)
            elif el.tag in breaks:
                buf.append(breaks[el.tag])
        stack.extend((child, buf) for child in reversed(el))
    return ["".join(b) for b in out]


_W_TEXT = {_tag(NS_W, "t")}
_W_BREAKS = {_tag(NS_W, "tab"): "\t", _tag(NS_W, "br"): "\n", _tag(NS_W, "cr"): "\n"}
_A_TEXT = {_tag(NS_A, "t")}
_A_BREAKS = {_tag(NS_A, "br"): "\n"}
_S_TEXT = {_tag(NS_S, "t")}

REL_HEADER = NS_REL + "/header"
REL_FOOTER = NS_REL + "/footer"
REL_SLIDE = NS_REL + "/slide"
REL_WORKSHEET = NS_REL + "/worksheet"
REL_SHARED_STRINGS = NS_REL + "/sharedStrings"
REL_DRAWING = NS_REL + "/drawing"


def slide_parts(pkg: OoxmlPackage, main: str) -> list[str]:
    """Slides in presentation order (p:sldIdLst), then any unlisted ones."""
    rels = {r.id: r for r in pkg.relationships(main)}
    ordered = []
    for el in pkg.tree(main).iter(_tag(NS_P, "sldId")):
        rel = rels.get(el.get(_tag(NS_REL, "id"), ""))
        if rel and rel.type == REL_SLIDE and rel.target and (name := pkg.name_of(rel.target)):
            ordered.append(name)
    for name in pkg.related(main, REL_SLIDE):
        if name not in ordered:
            ordered.append(name)
    if len(ordered) > pkg.limits.max_pages:
        raise pkg.limits.exceeded(
            "max_pages",
            len(ordered),
            f"the presentation has {len(ordered)} slides, over the limit of {pkg.limits.max_pages}",
        )
    return ordered


def sheet_parts(pkg: OoxmlPackage, main: str) -> list[str]:
    """Worksheets in workbook order."""
    rels = {r.id: r for r in pkg.relationships(main)}
    ordered = []
    for el in pkg.tree(main).iter(_tag(NS_S, "sheet")):
        rel = rels.get(el.get(_tag(NS_REL, "id"), ""))
        if rel and rel.type == REL_WORKSHEET and rel.target and (name := pkg.name_of(rel.target)):
            ordered.append(name)
    if len(ordered) > pkg.limits.max_pages:
        raise pkg.limits.exceeded(
            "max_pages",
            len(ordered),
            f"the workbook has {len(ordered)} sheets, over the limit of {pkg.limits.max_pages}",
        )
    return ordered


def _sheet_text(pkg: OoxmlPackage, sheet: str) -> str:
    """Header/footer text and inline strings of a worksheet, streamed."""
    hf_tags = {
        _tag(NS_S, n)
        for n in (
            "oddHeader",
            "oddFooter",
            "evenHeader",
            "evenFooter",
            "firstHeader",
            "firstFooter",
        )
    }
    is_tag, t_tag, row_tag = _tag(NS_S, "is"), _tag(NS_S, "t"), _tag(NS_S, "row")
    out: list[str] = []
    in_inline = 0
    for event, el in iter_tree(pkg.read(sheet), sheet):
        if el.tag == is_tag:
            in_inline += 1 if event == "start" else -1
        elif event == "end":
            if el.text and (el.tag in hf_tags or (in_inline and el.tag == t_tag)):
                out.append(el.text or "")
            elif el.tag == row_tag:
                el.clear()  # keep memory flat on big sheets
    for drawing in pkg.related(sheet, REL_DRAWING):
        out.extend(_texts(pkg.tree(drawing), _tag(NS_A, "p"), _A_TEXT, _A_BREAKS))
    return "\n".join(out)


def document_text(pkg: OoxmlPackage, kind: str) -> list[str]:
    """Visible text of the document, for finding explicit labels.

    DOCX: body, then each header/footer part; PPTX: one entry per slide;
    XLSX: the shared strings, then one entry per sheet (headers/footers,
    inline strings, drawing text boxes).
    """
    main = pkg.main_part()
    if kind == DOCX:
        pages = ["\n".join(_texts(pkg.tree(main), _tag(NS_W, "p"), _W_TEXT, _W_BREAKS))]
        for rel in (REL_HEADER, REL_FOOTER):
            for part in pkg.related(main, rel):
                pages.append("\n".join(_texts(pkg.tree(part), _tag(NS_W, "p"), _W_TEXT, _W_BREAKS)))
    elif kind == PPTX:
        pages = [
            "\n".join(_texts(pkg.tree(s), _tag(NS_A, "p"), _A_TEXT, _A_BREAKS))
            for s in slide_parts(pkg, main)
        ]
    else:
        pages = []
        for part in pkg.related(main, REL_SHARED_STRINGS):
            pages.append("\n".join(_texts(pkg.tree(part), _tag(NS_S, "si"), _S_TEXT, {})))
        pages.extend(_sheet_text(pkg, s) for s in sheet_parts(pkg, main))
    total = sum(len(p) for p in pages)
    if total > pkg.limits.max_text_chars:
        raise pkg.limits.exceeded(
            "max_text_chars",
            total,
            f"the document holds {total} characters of text, over the limit of "
            f"{pkg.limits.max_text_chars}",
        )
    return pages


def _simple_properties(root: Element, prefix: str) -> dict[str, str]:
    out = {}
    for child in root:
        if len(child) == 0 and child.text and child.text.strip():
            local = child.tag.rsplit("}", 1)[-1]
            out[f"{prefix}{local}"] = child.text.strip()
    return out


def _custom_properties(pkg: OoxmlPackage) -> tuple[str | None, list[tuple[str, str]]]:
    """(custom part name, [(property name, value text)])."""
    parts = pkg.related("", REL_CUSTOM)
    part = parts[0] if parts else pkg.name_of("docProps/custom.xml")
    if part is None:
        return None, []
    out = []
    for prop in pkg.tree(part).iter(_tag(NS_CUSTOM, "property")):
        value = "".join("".join(v.itertext()) for v in prop)
        out.append((prop.get("name", ""), value))
    return part, out


# ----------------------------------------------------------------- handler
class OoxmlHandler:
    """FormatHandler for DOCX, PPTX and XLSX (one layout for the record)."""

    name = "DOCX/PPTX/XLSX"
    media_type = DOCX
    media_types = MEDIA_TYPES
    kind = Kind.DOCUMENT
    # no C2PA: the c2pa build we ship cannot read deflated ZIP entries
    # ("compression method not supported: 8"), which every real Office file uses
    capabilities = frozenset(
        {Capability.RECORD, Capability.VISIBLE, Capability.DIGEST, Capability.TEXT_PAGES}
    )
    paged_types = (PPTX,)

    def accept(self, data: bytes) -> str | None:
        if not data.startswith(b"PK\x03\x04"):
            return None
        head = data[:65536]
        for marker, media_type in _MAIN_PARTS.items():
            if marker in head and b"[Content_Types].xml" in data:
                return media_type
        return None

    def draw_label(
        self,
        data: bytes,
        media_type: str,
        wording: str,
        placement: str,
        pages: str,
        limits: Limits = DEFAULT_LIMITS,
    ) -> bytes:
        """``data`` with a visible label (labelers.visible.office)."""
        from labelers.visible import office

        return office.add_visible_label(data, media_type, wording, placement, pages, limits=limits)

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        pkg = OoxmlPackage(data, limits)
        kind = pkg.kind()
        meta = Metadata(media_type=kind)
        _, props = _custom_properties(pkg)
        for name, value in props:
            if name.strip().upper() == PROPERTY_NAME:
                meta.records.append(_found(value))
            else:
                meta.properties[f"ooxml:custom:{name}"] = value
        for rel, prefix in ((REL_CORE, "ooxml:core:"), (REL_APP, "ooxml:app:")):
            for part in pkg.related("", rel)[:1]:
                meta.properties.update(_simple_properties(pkg.tree(part), prefix))
        meta.text_pages = document_text(pkg, kind)
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        pkg = OoxmlPackage(data, limits)
        pkg.kind()  # refuse packages that are not Word/PowerPoint/Excel documents
        set_record(pkg, record)
        return pkg.to_bytes()

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 over the package's parts, inflated, in name order.

        Covers the name and inflated bytes of every ZIP entry (document, slides,
        sheets, styles, headers/footers with the visible label, media, each part's
        relationships, ...), sorted by name, so neither compression nor entry
        order matters.

        Left out (:data:`DIGEST_SKIPPED_PARTS`): ``[Content_Types].xml``,
        ``_rels/.rels``, the core, app and custom properties parts (also where the
        package relationships put them), c2pa's
        ``META-INF/content_credential.c2pa``, and directory entries.
        """
        pkg = OoxmlPackage(data, limits)
        pkg.kind()  # the same packages write_record accepts
        skipped = set(DIGEST_SKIPPED_PARTS)
        for rel_type in (REL_CUSTOM, REL_CORE, REL_APP):
            skipped.update(part.lower() for part in pkg.related("", rel_type))
        hasher = ContentHasher("application/vnd.openxmlformats-package")
        for name in sorted(i.filename for i in pkg.infos):
            if name.endswith("/") or name.lower() in skipped:
                continue
            hasher.add(name, pkg.read(name))
        return hasher.digest()


def _found(raw: str) -> FoundRecord:
    try:
        return FoundRecord(CARRIER, raw, Record.parse(raw))
    except InvalidRecord as exc:
        return FoundRecord(CARRIER, raw, None, exc.detail)


def set_record(pkg: OoxmlPackage, record: Record) -> None:
    """Put ``record`` as the one AIGC custom property, keeping all other properties."""
    part, _ = _custom_properties(pkg)
    if part is None:
        part = "docProps/custom.xml"
        doc = safe_minidom.parseString(
            f'<Properties xmlns="{NS_CUSTOM}" xmlns:vt="{NS_VT}"></Properties>'.encode()
        )
        pkg.put_dom(part, doc, CT_CUSTOM)
    else:
        doc = pkg.dom(part)
        pkg.ensure_override(part, CT_CUSTOM)
    root = doc.documentElement
    if root.namespaceURI != NS_CUSTOM or root.localName != "Properties":
        raise CorruptInput(f"{part} is not a custom-properties part")
    pids = []
    for prop in children(root, NS_CUSTOM, "property"):
        if prop.getAttribute("name").strip().upper() == PROPERTY_NAME:
            root.removeChild(prop)  # one record per file: every old one goes
        else:
            with contextlib.suppress(ValueError):
                pids.append(int(prop.getAttribute("pid")))
    vt = prefix_for(root, NS_VT)
    if vt is None:
        vt = "vt"
        root.setAttribute("xmlns:vt", NS_VT)
    prop = doc.createElementNS(NS_CUSTOM, qname(root.prefix, "property"))
    prop.setAttribute("fmtid", FMTID_USER_DEFINED)
    prop.setAttribute("pid", str(max([1, *pids]) + 1))  # pids start at 2
    prop.setAttribute("name", PROPERTY_NAME)
    value = doc.createElementNS(NS_VT, qname(vt, "lpwstr"))
    value.appendChild(doc.createTextNode(record.dumps(wrapped=False)))
    prop.appendChild(value)
    root.appendChild(prop)
    pkg.touch(part)
    linked = False
    for rel in pkg.relationships(""):
        if rel.type != REL_CUSTOM:
            continue
        if not linked and rel.target and pkg.name_of(rel.target) == part:
            linked = True
        else:  # dangling, outside the package, or a second one: OPC allows one
            pkg.remove_relationship("", rel.id)
    if not linked:
        pkg.add_relationship("", REL_CUSTOM, part)


def open_package(data: bytes, limits: Limits = DEFAULT_LIMITS) -> OoxmlPackage:
    """Open ``data`` as an OOXML package (same checks as the handler)."""
    return OoxmlPackage(data, limits)


HANDLER = OoxmlHandler()
