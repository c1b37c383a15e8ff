"""Explicit labels on PDF pages: a footer (or header) band with real, embedded text.

The band (wording on a light rounded box with a thin grey rim, so it reads on any
page background) is drawn once per wording with fpdf2 at a reference size, using
the project's CJK font (Noto Sans SC) embedded as a subset. It becomes one Form
XObject per output document, shared by every page; each page gets a small
content stream that scales it to the page (about 9.5 pt on A4, proportional to
the shorter side) and places it at the visible bottom, whatever the page's
``/Rotate`` and box origin. The page's own content is wrapped in ``q``/``Q`` so
a graphics state it leaves behind cannot move or hide the label.

The label is real text: it renders in every viewer and extracts as text
(pypdf, poppler). It is marked as a pagination artifact, so tagged (accessible)
PDFs stay valid. Pages that already carry a band from this module are left as
they are, so labelling twice does not stack labels.

Documents are opened and saved through :mod:`labelers.formats.pdf`.
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
    FloatObject,
    IndirectObject,
    NameObject,
    StreamObject,
)

from labelers.errors import InvalidOption
from labelers.fonts import cjk_font_path
from labelers.formats.pdf import guarded, new_writer, open_pdf, save
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
    if placement not in PLACEMENTS:
        raise InvalidOption(f"placement must be one of {', '.join(PLACEMENTS)}, not {placement!r}")
    if pages not in PAGE_SELECTIONS:
        raise InvalidOption(f"pages must be one of {', '.join(PAGE_SELECTIONS)}, not {pages!r}")
    text = resolve_wording(wording)
    with guarded(limits, "opening the document"):
        reader = open_pdf(data, limits)  # bad input is refused before the band is built
    # fpdf2 + font subsetting, once per wording; outside guarded() because a
    # failure here is ours, not the document's
    band = _band(text)
    with guarded(limits, "adding the visible label"):
        writer = new_writer(reader)
        form = _add_band_form(writer, band)
        targets = writer.pages[:1] if pages == "first" else writer.pages
        for page in targets:
            if _already_labelled(page):
                continue
            name = _register(page, form)
            matrix = _placement(page, band, placement)
            ops = _label_ops(name, matrix, placement)
            _wrap_contents(writer, page, ops)
        return save(writer, reader)


# ------------------------------------------------------------------ the band
@dataclass(frozen=True)
class _Band:
    pdf: bytes  # a one-page PDF whose page is the band, font encoded Identity-H
    width: float
    height: float


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
    return _Band(pdf=_identity_encoded(bytes(pdf.output())), width=width, height=_BAND_H)


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
        b"%d beginbfchar\n%s\nendbfchar\n" % (len(mapping), lines)
        + b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )


def _stream(data: bytes) -> DecodedStreamObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return stream


def _add_band_form(writer: PdfWriter, band: _Band) -> IndirectObject:
    """The band as a Form XObject in ``writer``, shared by every labelled page."""
    page = PdfReader(BytesIO(band.pdf)).pages[0]
    form = _stream(page.get_contents().get_data())
    form.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Form"),
            NameObject("/BBox"): ArrayObject(
                [FloatObject(0), FloatObject(0), FloatObject(band.width), FloatObject(band.height)]
            ),
            NameObject("/Resources"): page["/Resources"].clone(writer),
        }
    )
    return writer._add_object(form.flate_encode())


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


def _register(page: DictionaryObject, form: IndirectObject) -> NameObject:
    """Name ``form`` in the page's XObject resources; never overwrites another entry.

    Resource dictionaries are often shared between pages: adding a name is
    harmless to the others, replacing one would not be.
    """
    resources = _get(page, "/Resources")
    if not isinstance(resources, DictionaryObject):
        resources = DictionaryObject()
        page[NameObject("/Resources")] = resources
    xobjects = _get(resources, "/XObject")
    if not isinstance(xobjects, DictionaryObject):
        xobjects = DictionaryObject()
        resources[NameObject("/XObject")] = xobjects
    for n in range(1000):
        name = NameObject(f"/AIGCLabel{n or ''}")
        existing = xobjects.raw_get(name) if name in xobjects else None
        if existing is None:
            xobjects[name] = form
            return name
        if isinstance(existing, IndirectObject) and existing.idnum == form.idnum:
            return name
    raise InvalidOption("page has too many XObject resources named AIGCLabel")


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


def _wrap_contents(writer: PdfWriter, page: DictionaryObject, ops: bytes) -> None:
    """Contents become [q, original streams..., Q + label]: the original stays byte-identical."""
    streams: list[IndirectObject] = []
    raw = page.raw_get("/Contents") if "/Contents" in page else None
    target = raw.get_object() if raw is not None else None
    if isinstance(target, ArrayObject):
        streams = [item for item in target if isinstance(item, IndirectObject)]
    elif isinstance(target, StreamObject):
        # a direct stream is invalid PDF, but keep it
        streams = [raw] if isinstance(raw, IndirectObject) else [writer._add_object(target)]
    # one small "q" stream per page: pypdf duplicates shared content streams
    # when it clones a document, so sharing one would not stay shared
    wrap_open = writer._add_object(_stream(b"q\n"))
    label = writer._add_object(_stream(ops))
    page[NameObject("/Contents")] = ArrayObject([wrap_open, *streams, label])
