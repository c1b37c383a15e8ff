"""Explicit labels on PDF pages: a footer (or header) band with real, embedded text.

The band (wording on a light rounded box with a thin grey rim, so it reads on any
page background) is drawn once per wording with fpdf2 at a reference size, using
the project's CJK font (Noto Sans SC) embedded as a subset. It becomes one Form
XObject per output document, shared by every page; a small content stream scales
it to the page (about 9.5 pt on A4, proportional to the shorter side) and places
it at the visible bottom, whatever the page's ``/Rotate`` and box origin (pages
of the same geometry share that stream). The page's own content is wrapped in
``q``/``Q`` so a graphics state it leaves behind cannot move or hide the label.

The label is real text: it renders in every viewer and extracts as text
(pypdf, poppler). It is marked as a pagination artifact, so tagged (accessible)
PDFs stay valid. Pages that already carry a band from this module are left as
they are, so labelling twice does not stack labels.

Documents are opened and saved through :mod:`labelers.formats.pdf`:
:func:`stamp_pages` takes and returns bytes; :func:`stamp_document` draws on a
document already open as a :class:`~labelers.formats.pdf_update.PdfEdit`, so the
labelling pipeline parses and writes a PDF once for the label, the content
digest and the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    ContentStream,
    DecodedStreamObject,
    DictionaryObject,
    EncodedStreamObject,
    FloatObject,
    IndirectObject,
    NameObject,
    PdfObject,
    StreamObject,
)

from labelers.errors import InvalidOption
from labelers.fonts import cjk_font_path
from labelers.formats.pdf import guarded
from labelers.formats.pdf_update import PdfEdit, open_edit
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.visible.wording import resolve_wording

PLACEMENTS = ("footer", "header")
PAGE_SELECTIONS = ("all", "first")

#: the band is drawn at this font size and scaled per page
_REF_PT = 10.0
_PAD_X = 6.0  # band units (points at the reference size)
_BAND_H = 17.0
_BASELINE = 5.0  # from the band's bottom edge
_GAP = 5.0  # between the band and the page edge
#: label size on an A4 page (595 pt short side); other pages scale with their short side
_A4_PT = 9.5
_A4_SHORT = 595.28
_MIN_PT = 7.0
_MAX_WIDTH_SHARE = 0.9  # a long wording on a narrow page is shrunk to fit
#: first line of the content stream this module appends: how a labelled page is recognised
_MARKER = b"%aigc-visible-label"
_LETTER = (0.0, 0.0, 612.0, 792.0)


def stamp_pages(
    data: bytes,
    wording: str,
    placement: str = "footer",
    pages: str = "all",
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """``data`` with a visible label band on every page (or only the first).

    ``placement`` is "footer" (default) or "header"; ``pages`` is "all" or
    "first". ``wording`` is checked against GB 45438 clause 5 (a preset name
    such as "zh" is accepted). Raises InvalidOption / InvalidWording for bad
    options, and CorruptInput, EncryptedInput or LimitExceeded for bad PDFs.
    """
    check_options(wording, placement, pages)
    doc = open_edit(data, limits)  # bad input is refused before the band is built
    stamp_document(doc, wording, placement, pages)
    return doc.save()


def check_options(wording: str, placement: str = "footer", pages: str = "all") -> str:
    """The label text for ``wording``; InvalidOption / InvalidWording for bad options."""
    if placement not in PLACEMENTS:
        raise InvalidOption(f"placement must be one of {', '.join(PLACEMENTS)}, not {placement!r}")
    if pages not in PAGE_SELECTIONS:
        raise InvalidOption(f"pages must be one of {', '.join(PAGE_SELECTIONS)}, not {pages!r}")
    return resolve_wording(wording)


def stamp_document(
    doc: PdfEdit, wording: str, placement: str = "footer", pages: str = "all"
) -> None:
    """Draw the label band on the pages of an open document (all, or the first).

    The part of :func:`stamp_pages` that works on a :class:`PdfEdit`, so one
    parse serves the visible label, the content digest and the record.
    """
    text = check_options(wording, placement, pages)
    # fpdf2 + font subsetting, once per wording; outside guarded() because a
    # failure here is ours, not the document's
    band = _band(text)
    with guarded(doc.limits, "adding the visible label"):
        form = _add_band_form(doc, band)
        targets = doc.pages[:1] if pages == "first" else doc.pages
        # one "q" stream for every page, and one label stream per distinct
        # placement: identical pages share them instead of each getting a copy
        wrap_open: IndirectObject | None = None
        labels: dict[bytes, IndirectObject] = {}
        for page in targets:
            if _already_labelled(page):
                continue
            name = _register(doc, page, form)
            ops = _label_ops(name, _placement(page, band, placement), placement)
            if wrap_open is None:
                wrap_open = doc.add(_stream(b"q\n"))
            label = labels.get(ops)
            if label is None:
                label = labels[ops] = doc.add(_stream(ops))
            _wrap_contents(doc, page, wrap_open, label)


# ------------------------------------------------------------------ the band
@dataclass(frozen=True)
class _Band:
    width: float
    height: float
    #: the page's content stream, flate-encoded: the Form XObject's data
    content: bytes
    #: the page's /Resources and every object it reaches, parsed once: each
    #: document gets a copy (see _copy_into) without reading the band PDF again
    resources: DictionaryObject
    objects: dict[int, PdfObject]


@lru_cache(maxsize=16)
def _band(wording: str) -> _Band:
    from fpdf import FPDF

    pdf = FPDF(unit="pt")
    pdf.set_author("aigc-label")
    pdf.add_font("NotoSansSC", fname=str(cjk_font_path()))
    pdf.set_font("NotoSansSC", size=_REF_PT)
    width = round(pdf.get_string_width(wording) + 2 * _PAD_X, 2)
    pdf.add_page(format=(width, _BAND_H))
    pdf.set_fill_color(255, 255, 255)
    pdf.set_draw_color(170, 170, 170)
    pdf.set_line_width(0.6)
    pdf.rect(0.3, 0.3, width - 0.6, _BAND_H - 0.6, style="DF", round_corners=True, corner_radius=3)
    pdf.set_text_color(26, 26, 26)
    pdf.text(_PAD_X, _BAND_H - _BASELINE, wording)
    # a one-page PDF whose page is the band, its font encoded Identity-H
    reader = PdfReader(BytesIO(_identity_encoded(bytes(pdf.output()))))
    page = reader.pages[0]
    objects: dict[int, PdfObject] = {}
    pending = [page.raw_get("/Resources")]
    while pending:  # every object the resources reach, resolved while the reader is ours
        obj = pending.pop()
        if isinstance(obj, IndirectObject):
            if obj.idnum in objects:
                continue
            objects[obj.idnum] = obj = obj.get_object()
        if isinstance(obj, DictionaryObject):
            pending.extend(obj.values())
        elif isinstance(obj, ArrayObject):
            pending.extend(obj)
    resources = page["/Resources"]
    return _Band(
        width=width,
        height=_BAND_H,
        content=_stream(page.get_contents().get_data()).flate_encode()._data,
        resources=resources,
        objects=objects,
    )


_CIDCHAR = re.compile(rb"<([0-9A-Fa-f]+)>\s+(\d+)")
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")


def _identity_encoded(band_pdf: bytes) -> bytes:
    """The band with its CJK font switched to ``/Identity-H`` (character code = CID).

    fpdf2 encodes CFF (OpenType) subsets with an embedded CMap that maps its own
    codes to CIDs. Viewers and poppler follow it, but pypdf does not and
    extracts the label as NUL-interleaved text. Writing the CIDs themselves with
    the predefined Identity-H CMap renders the same glyphs and extracts cleanly
    everywhere.
    """
    writer = PdfWriter(clone_from=PdfReader(BytesIO(band_pdf)))
    page = writer.pages[0]
    fonts = page["/Resources"].get("/Font", DictionaryObject())
    code_to_cid: dict[str, dict[bytes, bytes]] = {}
    for name, ref in fonts.items():
        font = ref.get_object()
        encoding = font.get("/Encoding")
        encoding = encoding.get_object() if encoding is not None else None
        if not isinstance(encoding, StreamObject):
            continue  # already a predefined CMap: nothing to translate
        mapping = {
            int(code, 16).to_bytes(2, "big"): int(cid).to_bytes(2, "big")
            for code, cid in _CIDCHAR.findall(encoding.get_data())
        }
        unicode_of = {
            int(code, 16).to_bytes(2, "big"): uni
            for code, uni in _BFCHAR.findall(font["/ToUnicode"].get_object().get_data())
        }
        to_unicode = {mapping[c]: u for c, u in unicode_of.items() if c in mapping}
        font[NameObject("/Encoding")] = NameObject("/Identity-H")
        font[NameObject("/ToUnicode")] = writer._add_object(_stream(_to_unicode_cmap(to_unicode)))
        code_to_cid[name] = mapping

    content = ContentStream(page.get_contents(), writer)
    current: dict[bytes, bytes] | None = None
    for operands, operator in content.operations:
        if operator == b"Tf":
            current = code_to_cid.get(operands[0])
        elif current is not None and operator in (b"Tj", b"'", b'"', b"TJ"):
            for i, operand in enumerate(operands):
                if isinstance(operand, ArrayObject):
                    for j, item in enumerate(operand):
                        if isinstance(item, (bytes, str)):
                            operand[j] = _recode(item, current)
                elif isinstance(operand, (bytes, str)):
                    operands[i] = _recode(operand, current)
    page.replace_contents(content)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _recode(text: bytes | str, mapping: dict[bytes, bytes]) -> ByteStringObject:
    # pypdf may have decoded the 2-byte codes into a text string; the codes are
    # what we need
    raw = text if isinstance(text, bytes) else getattr(text, "original_bytes", b"")
    pairs = (raw[i : i + 2] for i in range(0, len(raw) - 1, 2))
    return ByteStringObject(b"".join(mapping.get(p, p) for p in pairs))


def _to_unicode_cmap(mapping: dict[bytes, bytes]) -> bytes:
    lines = b"\n".join(b"<%s> <%s>" % (c.hex().upper().encode(), u) for c, u in mapping.items())
    return (
        b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        b"%d beginbfchar\n%s\nendbfchar\n"
        % (len(mapping), lines)
        + b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )


def _stream(data: bytes) -> DecodedStreamObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return stream


def _add_band_form(doc: PdfEdit, band: _Band) -> IndirectObject:
    """The band as a Form XObject in ``doc``, shared by every labelled page."""
    form = EncodedStreamObject()
    form._data = band.content
    form.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Form"),
            NameObject("/Filter"): NameObject("/FlateDecode"),
            NameObject("/BBox"): ArrayObject(
                [FloatObject(0), FloatObject(0), FloatObject(band.width), FloatObject(band.height)]
            ),
            NameObject("/Resources"): _copy_into(band.resources, doc, band.objects, {}),
        }
    )
    return doc.add(form)


def _copy_into(
    obj: PdfObject, doc: PdfEdit, objects: dict[int, PdfObject], done: dict[int, IndirectObject]
) -> PdfObject:
    """A copy of the band's ``obj`` in ``doc``; the objects it references become new ones."""
    if isinstance(obj, IndirectObject):
        if obj.idnum not in done:
            done[obj.idnum] = doc.add(_copy_into(objects[obj.idnum], doc, objects, done))
        return done[obj.idnum]
    if isinstance(obj, StreamObject):
        stream = EncodedStreamObject() if "/Filter" in obj else DecodedStreamObject()
        stream._data = obj._data
        stream.update({k: _copy_into(v, doc, objects, done) for k, v in obj.items()})
        return stream
    if isinstance(obj, DictionaryObject):
        return DictionaryObject({k: _copy_into(v, doc, objects, done) for k, v in obj.items()})
    if isinstance(obj, ArrayObject):
        return ArrayObject([_copy_into(v, doc, objects, done) for v in obj])
    return obj  # names, numbers, strings: immutable


# -------------------------------------------------------------- each page
def _get(obj: DictionaryObject, key: str) -> object:
    """``obj[key]`` with indirect references resolved, or None (``dict.get`` does not resolve)."""
    value = obj.get(key)
    return value.get_object() if isinstance(value, IndirectObject) else value


def _already_labelled(page: DictionaryObject) -> bool:
    contents = _get(page, "/Contents")
    if not isinstance(contents, ArrayObject) or not contents:
        return False
    last = contents[-1].get_object()
    if not isinstance(last, StreamObject) or len(last._data) > 4096:
        return False
    return last.get_data().lstrip().startswith(_MARKER)


def _register(doc: PdfEdit, page: DictionaryObject, form: IndirectObject) -> NameObject:
    """Name ``form`` in the page's XObject resources; never overwrites another entry.

    Resource dictionaries are often shared between pages: adding a name is
    harmless to the others, replacing one would not be. A direct dictionary is
    copied before it is edited: pages that inherit one from their /Pages node
    hold the same object, and only the pages written out would carry the edit.
    """
    owner = (page, page.indirect_reference)
    resources, owner = _own_dict(page, "/Resources", owner)
    xobjects, owner = _own_dict(resources, "/XObject", owner)
    for n in range(1000):
        name = NameObject(f"/AIGCLabel{n or ''}")
        existing = xobjects.raw_get(name) if name in xobjects else None
        if existing is None:
            xobjects[name] = form
            doc.changed(*owner)
            return name
        if isinstance(existing, IndirectObject) and existing.idnum == form.idnum:
            return name
    raise InvalidOption("page has too many XObject resources named AIGCLabel")


_Owner = tuple[DictionaryObject, IndirectObject | None]


def _own_dict(parent: DictionaryObject, key: str, owner: _Owner) -> tuple[DictionaryObject, _Owner]:
    """``parent[key]`` as a dictionary safe to edit, and the indirect object that holds it.

    ``owner`` is the indirect object ``parent`` belongs to, with its reference.
    A missing or non-dictionary value is replaced with an empty dictionary.
    """
    raw = parent.raw_get(key) if key in parent else None
    value = raw.get_object() if isinstance(raw, IndirectObject) else raw
    if isinstance(raw, IndirectObject) and isinstance(value, DictionaryObject):
        return value, (value, raw)
    copy = DictionaryObject(value) if isinstance(value, DictionaryObject) else DictionaryObject()
    parent[NameObject(key)] = copy
    return copy, owner


def _visible_box(page: DictionaryObject) -> tuple[float, float, float, float]:
    """The page area a viewer shows: CropBox clipped to MediaBox, normalised."""
    media = _rect(_get(page, "/MediaBox")) or _LETTER
    crop = _rect(_get(page, "/CropBox")) or media
    box = (
        max(media[0], crop[0]),
        max(media[1], crop[1]),
        min(media[2], crop[2]),
        min(media[3], crop[3]),
    )
    return box if box[2] - box[0] >= 1 and box[3] - box[1] >= 1 else media


def _rect(value: object) -> tuple[float, float, float, float] | None:
    if not isinstance(value, ArrayObject) or len(value) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v.get_object()) for v in value)
    except (TypeError, ValueError):
        return None
    if min(abs(x1 - x0), abs(y1 - y0)) < 1:
        return None
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _placement(
    page: DictionaryObject, band: _Band, placement: str
) -> tuple[float, float, float, float, float, float]:
    """The ``cm`` matrix that puts the band, upright, at the visible bottom (or top).

    Works in display coordinates (after the viewer applies ``/Rotate``, which
    turns the page clockwise), then maps them back to user space.
    """
    x0, y0, x1, y1 = _visible_box(page)
    w, h = x1 - x0, y1 - y0
    try:
        rotate = int(_get(page, "/Rotate") or 0) % 360 // 90 * 90
    except (TypeError, ValueError):
        rotate = 0
    vw, vh = (h, w) if rotate in (90, 270) else (w, h)
    size = max(_A4_PT * min(vw, vh) / _A4_SHORT, _MIN_PT)
    s = min(size / _REF_PT, _MAX_WIDTH_SHARE * vw / band.width)
    u = (vw - band.width * s) / 2
    v = _GAP * s if placement == "footer" else vh - (_GAP + band.height) * s
    # display point (u + s*X, v + s*Y) -> user space, per rotation
    if rotate == 90:
        a, b, c, d, e, f = 0.0, s, -s, 0.0, w - v, u
    elif rotate == 180:
        a, b, c, d, e, f = -s, 0.0, 0.0, -s, w - u, h - v
    elif rotate == 270:
        a, b, c, d, e, f = 0.0, -s, s, 0.0, v, h - u
    else:
        a, b, c, d, e, f = s, 0.0, 0.0, s, u, v
    return (a, b, c, d, e + x0, f + y0)


def _label_ops(
    name: NameObject, matrix: tuple[float, float, float, float, float, float], placement: str
) -> bytes:
    cm = " ".join(f"{x:.4f}".rstrip("0").rstrip(".") for x in matrix)
    subtype = "Footer" if placement == "footer" else "Header"
    return (
        b"\n%s\nQ\nq\n/Artifact <</Type /Pagination /Subtype /%s>> BDC\n%s cm\n%s Do\nEMC\nQ\n"
        % (_MARKER, subtype.encode(), cm.encode(), name.encode())
    )


def _wrap_contents(
    doc: PdfEdit, page: DictionaryObject, wrap_open: IndirectObject, label: IndirectObject
) -> None:
    """Contents become [q, original streams..., Q + label]: the original stays byte-identical."""
    streams: list[IndirectObject] = []
    raw = page.raw_get("/Contents") if "/Contents" in page else None
    target = raw.get_object() if raw is not None else None
    if isinstance(target, ArrayObject):
        streams = [item for item in target if isinstance(item, IndirectObject)]
    elif isinstance(target, StreamObject):
        # a direct stream is invalid PDF, but keep it
        streams = [raw] if isinstance(raw, IndirectObject) else [doc.add(target)]
    page[NameObject("/Contents")] = ArrayObject([wrap_open, *streams, label])
    doc.changed(page, page.indirect_reference)
