"""Explicit (visible) labels in Word, PowerPoint and Excel files.

* DOCX: a line with the wording in the footer (or header) of every section:
  every footer part the sections reference gets the line; when the first
  section has no footer of a needed type, a new footer part is created and
  referenced (later sections inherit it, as Word does).
* PPTX: a text box, bottom-right (top-right for ``placement="header"``), on
  the first slide or on every slide.
* XLSX: the wording in the centre section of every worksheet's print footer
  (or header), and, because print headers are invisible on screen, a text
  box beside the used range of every sheet.

Our additions are tagged (a content control tagged ``AIGC-Label``, a shape
named ``AIGC Label``), so relabelling replaces them instead of adding a second
label. Everything else in the package is copied untouched; the package itself
is read and written by :mod:`labelers.formats.ooxml`.
"""

from __future__ import annotations

import contextlib
import re
from xml.dom import minidom

import defusedxml.minidom as safe_minidom

from labelers.errors import InvalidOption, UnsupportedMedia
from labelers.formats.ooxml import (
    DOCX,
    MEDIA_TYPES,
    NS_A,
    NS_P,
    NS_REL,
    NS_S,
    NS_W,
    NS_XDR,
    PPTX,
    REL_DRAWING,
    REL_FOOTER,
    REL_HEADER,
    OoxmlPackage,
    children,
    descendants,
    prefix_for,
    qname,
    sheet_parts,
    slide_parts,
)
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.visible.wording import resolve_wording, wording_problems

LABEL_TAG = "AIGC-Label"  # w:sdt tag of the DOCX label
LABEL_SHAPE = "AIGC Label"  # cNvPr name of PPTX/XLSX label shapes
PLACEMENTS = ("footer", "header")
SLIDE_CHOICES = ("first", "all")

REL_SETTINGS = NS_REL + "/settings"
CT_FOOTER = "application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml"
CT_HEADER = "application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"
CT_DRAWING = "application/vnd.openxmlformats-officedocument.drawing+xml"
EMU_PER_PT = 12700


def add_visible_label(
    data: bytes,
    media_type: str,
    wording: str,
    placement: str = "footer",
    slides: str = "first",
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """``data`` (DOCX/PPTX/XLSX) with a visible label carrying ``wording``.

    ``placement`` is "footer" or "header"; ``slides`` ("first" or "all")
    applies to presentations. The kind of document is taken from the package
    itself; ``media_type`` must name one of the three OOXML types.
    """
    if media_type not in MEDIA_TYPES:
        raise UnsupportedMedia(f"{media_type} is not a Word, PowerPoint or Excel document")
    if placement not in PLACEMENTS:
        raise InvalidOption(f"placement must be one of {', '.join(PLACEMENTS)}, not {placement!r}")
    if slides not in SLIDE_CHOICES:
        raise InvalidOption(f"slides must be one of {', '.join(SLIDE_CHOICES)}, not {slides!r}")
    wording = resolve_wording(wording)
    pkg = OoxmlPackage(data, limits)
    kind = pkg.kind()
    if kind == DOCX:
        _label_docx(pkg, wording, placement)
    elif kind == PPTX:
        _label_pptx(pkg, wording, placement, slides)
    else:
        _label_xlsx(pkg, wording, placement)
    return pkg.to_bytes()


# ------------------------------------------------------------------ helpers
def _fragment(doc: minidom.Document, xml: str, namespaces: dict[str, str]) -> minidom.Element:
    """Parse one element written with the given prefixes and import it into ``doc``."""
    decls = " ".join(
        f'xmlns:{p}="{uri}"' if p else f'xmlns="{uri}"' for p, uri in namespaces.items()
    )
    wrapper = safe_minidom.parseString(f"<_w {decls}>{xml}</_w>".encode())
    node = next(n for n in wrapper.documentElement.childNodes if n.nodeType == n.ELEMENT_NODE)
    return doc.importNode(node, True)


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _prefix(element: minidom.Element, namespace: str, fallback: str) -> tuple[str, dict[str, str]]:
    """Prefix to write ``namespace`` with, plus the declaration a fragment needs."""
    found = prefix_for(element, namespace)
    prefix = fallback if found is None else found
    return prefix, {prefix: namespace}


def _el_text(element: minidom.Element) -> str:
    out = []
    stack = [element]
    while stack:
        node = stack.pop()
        if node.nodeType == node.TEXT_NODE:
            out.append(node.data)
        stack.extend(reversed(node.childNodes))
    return "".join(out)


def _text_width_em(text: str) -> float:
    # CJK ideographs and full-width forms take a whole em; Latin about 0.6
    return sum(1.0 if ord(c) >= 0x2E80 else 0.6 for c in text)


def _truthy(element: minidom.Element, attr_ns: str | None = None) -> bool:
    val = element.getAttributeNS(attr_ns, "val") if attr_ns else element.getAttribute("val")
    return val.lower() not in ("0", "false", "off")


# --------------------------------------------------------------------- DOCX
def _label_docx(pkg: OoxmlPackage, wording: str, placement: str) -> None:
    main = pkg.main_part()
    doc = pkg.dom(main)
    ref_local = "footerReference" if placement == "footer" else "headerReference"
    rel_type = REL_FOOTER if placement == "footer" else REL_HEADER
    sections = [
        s
        for s in descendants(doc, NS_W, "sectPr")
        if s.parentNode.localName != "sectPrChange"  # tracked-change history, not a section
    ]
    if not sections:
        bodies = descendants(doc, NS_W, "body")
        if not bodies:
            raise UnsupportedMedia(f"{main} has no document body")
        w = bodies[0].prefix
        sect = doc.createElementNS(NS_W, qname(w, "sectPr"))
        bodies[0].appendChild(sect)
        sections = [sect]
        pkg.touch(main)
    rels = {r.id: r for r in pkg.relationships(main)}
    labelled: set[str] = set()
    for sect in sections:
        for ref in children(sect, NS_W, ref_local):
            rel = rels.get(ref.getAttributeNS(NS_REL, "id"))
            part = pkg.name_of(rel.target) if rel and rel.target else None
            if part and part not in labelled:
                labelled.add(part)
                _label_hf_part(pkg, part, wording)

    # Word shows the first section's reference of each needed type; later
    # sections without one inherit it. So only the first section may need a new part.
    first = sections[0]
    needed = ["default"]
    if any(_truthy(t, NS_W) for t in children(first, NS_W, "titlePg")):
        needed.append("first")
    if _even_and_odd(pkg, main):
        needed.append("even")
    have = {r.getAttributeNS(NS_W, "type") or "default" for r in children(first, NS_W, ref_local)}
    missing = [t for t in needed if t not in have]
    if not missing:
        return
    base = "footer" if placement == "footer" else "header"
    n = 1
    while pkg.has(f"word/aigc-{base}{n}.xml"):
        n += 1
    folder = main.rsplit("/", 1)[0] if "/" in main else ""
    part = f"{folder}/aigc-{base}{n}.xml" if folder else f"aigc-{base}{n}.xml"
    root_local = "ftr" if placement == "footer" else "hdr"
    new = safe_minidom.parseString(
        f'<w:{root_local} xmlns:w="{NS_W}" xmlns:r="{NS_REL}"></w:{root_local}>'.encode()
    )
    new.documentElement.appendChild(_docx_label(new, new.documentElement, wording))
    pkg.put_dom(part, new, CT_FOOTER if placement == "footer" else CT_HEADER)
    rid = pkg.add_relationship(main, rel_type, part)
    w = first.prefix
    r, decl = _prefix(first, NS_REL, "r")
    existing = children(first, NS_W, "headerReference") + children(first, NS_W, "footerReference")
    anchor = existing[-1].nextSibling if existing else first.firstChild
    for kind in missing:
        ref = doc.createElementNS(NS_W, qname(w, ref_local))
        ref.setAttributeNS(NS_W, qname(w, "type"), kind)
        ref.setAttributeNS(NS_REL, qname(r, "id"), rid)
        if prefix_for(first, NS_REL) is None:
            ref.setAttribute(f"xmlns:{r}", decl[r])
        first.insertBefore(ref, anchor)
    pkg.touch(main)


def _even_and_odd(pkg: OoxmlPackage, main: str) -> bool:
    for part in pkg.related(main, REL_SETTINGS):
        return any(_truthy(e, NS_W) for e in descendants(pkg.dom(part), NS_W, "evenAndOddHeaders"))
    return False


def _docx_label(doc: minidom.Document, root: minidom.Element, wording: str) -> minidom.Element:
    w, ns = _prefix(root, NS_W, "w")

    def q(local: str) -> str:
        return qname(w, local)

    xml = (
        f'<{q("sdt")}><{q("sdtPr")}><{q("alias")} {q("val")}="AIGC Label"/>'
        f'<{q("tag")} {q("val")}="{LABEL_TAG}"/></{q("sdtPr")}><{q("sdtContent")}>'
        f'<{q("p")}><{q("pPr")}><{q("jc")} {q("val")}="center"/></{q("pPr")}>'
        f'<{q("r")}><{q("rPr")}><{q("sz")} {q("val")}="20"/></{q("rPr")}>'
        f'<{q("t")} xml:space="preserve">{_esc(wording)}</{q("t")}></{q("r")}></{q("p")}>'
        f"</{q('sdtContent')}></{q('sdt')}>"
    )
    return _fragment(doc, xml, ns)


def _label_hf_part(pkg: OoxmlPackage, part: str, wording: str) -> None:
    doc = pkg.dom(part)
    root = doc.documentElement
    ours = [
        sdt
        for sdt in descendants(doc, NS_W, "sdt")
        if any(t.getAttributeNS(NS_W, "val") == LABEL_TAG for t in descendants(sdt, NS_W, "tag"))
    ]
    label = _docx_label(doc, root, wording)
    if ours:
        ours[0].parentNode.replaceChild(label, ours[0])
        for extra in ours[1:]:
            extra.parentNode.removeChild(extra)
    elif wording in _el_text(root):
        return  # the document already carries this wording here
    else:
        root.appendChild(label)
    pkg.touch(part)


# --------------------------------------------------------------------- PPTX
def _label_pptx(pkg: OoxmlPackage, wording: str, placement: str, slides: str) -> None:
    main = pkg.main_part()
    parts = slide_parts(pkg, main)
    if not parts:
        raise InvalidOption("the presentation has no slides to label")
    cx, cy = 9144000, 6858000  # 4:3, PowerPoint's default when sldSz is absent
    for size in descendants(pkg.dom(main), NS_P, "sldSz"):
        with contextlib.suppress(ValueError):
            cx, cy = int(size.getAttribute("cx")), int(size.getAttribute("cy"))
    for part in parts if slides == "all" else parts[:1]:
        _label_slide(pkg, part, wording, placement, cx, cy)


def _shape_xml(
    p: str,
    a: str,
    shape_id: int,
    wording: str,
    box: tuple[int, int, int, int],
    size_pt: int,
    nv_pr: bool,
) -> str:
    """A DrawingML text-box shape; ``p``/``a`` are the element prefixes with colon."""
    x, y, w, h = box
    return (
        f'<{p}sp><{p}nvSpPr><{p}cNvPr id="{shape_id}" name="{LABEL_SHAPE}" '
        f'descr="{_esc(wording)}"/><{p}cNvSpPr txBox="1"/>'
        + (f"<{p}nvPr/>" if nv_pr else "")
        + f'</{p}nvSpPr><{p}spPr><{a}xfrm><{a}off x="{x}" y="{y}"/><{a}ext cx="{w}" '
        f'cy="{h}"/></{a}xfrm><{a}prstGeom prst="rect"><{a}avLst/></{a}prstGeom>'
        f'<{a}solidFill><{a}srgbClr val="FFFFFF"><{a}alpha val="75000"/></{a}srgbClr>'
        f'</{a}solidFill></{p}spPr><{p}txBody><{a}bodyPr wrap="none" lIns="45720" '
        f'tIns="22860" rIns="45720" bIns="22860" rtlCol="0" anchor="ctr">'
        f'<{a}noAutofit/></{a}bodyPr><{a}lstStyle/><{a}p><{a}pPr algn="r"/><{a}r>'
        f'<{a}rPr lang="zh-CN" altLang="en-US" sz="{size_pt * 100}" dirty="0">'
        f'<{a}solidFill><{a}srgbClr val="404040"/></{a}solidFill></{a}rPr>'
        f"<{a}t>{_esc(wording)}</{a}t></{a}r></{a}p></{p}txBody></{p}sp>"
    )


def _box_size(wording: str, size_pt: int) -> tuple[int, int]:
    width = int((_text_width_em(wording) * size_pt * 1.1 + 10) * EMU_PER_PT)
    height = int(size_pt * 1.6 * EMU_PER_PT)
    return width, height


def _label_slide(
    pkg: OoxmlPackage, part: str, wording: str, placement: str, cx: int, cy: int
) -> None:
    doc = pkg.dom(part)
    trees = descendants(doc, NS_P, "spTree")
    if not trees:
        raise UnsupportedMedia(f"{part} has no shape tree")
    tree = trees[0]
    # legible on a projected slide: ~3.5% of the slide height (19 pt on 7.5 in)
    size_pt = max(12, min(40, round(cy / EMU_PER_PT * 0.035)))
    w, h = _box_size(wording, size_pt)
    margin = int(min(cx, cy) * 0.02)
    y = cy - h - margin if placement == "footer" else margin
    box = (max(0, cx - w - margin), y, w, h)
    ids = [int(v) for c in descendants(doc, NS_P, "cNvPr") if (v := c.getAttribute("id")).isdigit()]
    p, pns = _prefix(tree, NS_P, "p")
    a, ans = _prefix(tree, NS_A, "a")
    old = [
        c.parentNode.parentNode
        for c in descendants(tree, NS_P, "cNvPr")
        if c.getAttribute("name") == LABEL_SHAPE
    ]
    shape_id = _reused_id(old, NS_P) or max([1, *ids]) + 1
    xml = _shape_xml(qname(p, ""), qname(a, ""), shape_id, wording, box, size_pt, True)
    shape = _fragment(doc, xml, {**pns, **ans})
    if old:
        old[0].parentNode.replaceChild(shape, old[0])
        for extra in old[1:]:
            extra.parentNode.removeChild(extra)
    else:
        ext = children(tree, NS_P, "extLst")  # extLst must stay last in spTree
        tree.insertBefore(shape, ext[0] if ext else None)
    pkg.touch(part)


# --------------------------------------------------------------------- XLSX
# CT_Worksheet children that come after headerFooter / after drawing
_AFTER_HEADER_FOOTER = (
    "rowBreaks",
    "colBreaks",
    "customProperties",
    "cellWatches",
    "ignoredErrors",
    "smartTags",
    "drawing",
    "legacyDrawing",
    "legacyDrawingHF",
    "drawingHF",
    "picture",
    "oleObjects",
    "controls",
    "webPublishItems",
    "tableParts",
    "extLst",
)
_AFTER_DRAWING = _AFTER_HEADER_FOOTER[_AFTER_HEADER_FOOTER.index("drawing") + 1 :]
_HF_ORDER = ("oddHeader", "oddFooter", "evenHeader", "evenFooter", "firstHeader", "firstFooter")
_HF_CODE = re.compile(r"&(&|\"[^\"]*\"|K[0-9A-Fa-f]{6}|K\d\d[+-]\d{3}|\d+|.)", re.DOTALL)
MAX_HEADER_FOOTER_CHARS = 255  # Excel refuses longer header/footer strings


def _label_xlsx(pkg: OoxmlPackage, wording: str, placement: str) -> None:
    main = pkg.main_part()
    for sheet in sheet_parts(pkg, main):
        doc = pkg.dom(sheet)
        root = doc.documentElement
        _label_header_footer(doc, root, wording, placement)
        _label_sheet_drawing(pkg, sheet, doc, root, wording)
        pkg.touch(sheet)


def _insert_ordered(parent: minidom.Element, child: minidom.Element, before: tuple[str, ...]):
    anchor = next(
        (
            c
            for c in parent.childNodes
            if c.nodeType == c.ELEMENT_NODE and c.namespaceURI == NS_S and c.localName in before
        ),
        None,
    )
    parent.insertBefore(child, anchor)


def _label_header_footer(
    doc: minidom.Document, root: minidom.Element, wording: str, placement: str
) -> None:
    s = root.prefix
    hfs = children(root, NS_S, "headerFooter")
    if hfs:
        hf = hfs[0]
    else:
        hf = doc.createElementNS(NS_S, qname(s, "headerFooter"))
        _insert_ordered(root, hf, _AFTER_HEADER_FOOTER)
    side = "Footer" if placement == "footer" else "Header"
    wanted = [f"odd{side}"]
    if hf.getAttribute("differentOddEven") in ("1", "true"):
        wanted.append(f"even{side}")
    if hf.getAttribute("differentFirst") in ("1", "true"):
        wanted.append(f"first{side}")
    for local in wanted:
        found = children(hf, NS_S, local)
        if found:
            el = found[0]
        else:
            el = doc.createElementNS(NS_S, qname(s, local))
            later = _HF_ORDER[_HF_ORDER.index(local) + 1 :]
            _insert_ordered(hf, el, later)
        text = hf_with_label(_el_text(el), wording)
        while el.firstChild:
            el.removeChild(el.firstChild)
        el.appendChild(doc.createTextNode(text))


def hf_with_label(text: str, wording: str) -> str:
    """An Excel header/footer string with ``wording`` as a line of its centre section.

    A line there that is itself a label (it passes the wording rule) is
    replaced, so relabelling never stacks two labels.
    """
    escaped = wording.replace("&", "&&")
    # find section boundaries (&L, &C, &R); text before any of them is centred
    sections: list[tuple[str, int, int]] = []  # (section, content start, content end)
    current, start = "C", 0
    for m in _HF_CODE.finditer(text):
        code = m.group(1)
        if code in ("L", "C", "R"):
            sections.append((current, start, m.start()))
            current, start = code, m.end()
    sections.append((current, start, len(text)))
    explicit = [(a, b) for sec, a, b in sections[1:] if sec == "C"]
    leading = sections[0][1:]
    if explicit or leading[1] > leading[0]:
        a, b = explicit[-1] if explicit else leading
        kept = [ln for ln in text[a:b].split("\n") if not _is_label_line(ln)]
        while kept and not kept[-1]:
            kept.pop()
        new = text[:a] + "\n".join([*kept, escaped]) + text[b:]
    else:
        new = text + "&C" + escaped
    if len(new) > MAX_HEADER_FOOTER_CHARS:
        raise InvalidOption(
            f"the sheet's header/footer would exceed Excel's {MAX_HEADER_FOOTER_CHARS} "
            "characters with the label; shorten it or the wording"
        )
    return new


def _is_label_line(line: str) -> bool:
    plain = _HF_CODE.sub(lambda m: "&" if m.group(1) == "&" else "", line).strip()
    return bool(plain) and not wording_problems(plain)


def _label_sheet_drawing(
    pkg: OoxmlPackage, sheet: str, doc: minidom.Document, root: minidom.Element, wording: str
) -> None:
    refs = children(root, NS_S, "drawing")
    rels = {r.id: r for r in pkg.relationships(sheet)}
    part = None
    if refs:
        rel = rels.get(refs[0].getAttributeNS(NS_REL, "id"))
        part = pkg.name_of(rel.target) if rel and rel.target else None
    if part is None:
        n = 1
        while pkg.has(f"xl/drawings/drawing{n}.xml"):
            n += 1
        part = f"xl/drawings/drawing{n}.xml"
        drawing = safe_minidom.parseString(
            f'<xdr:wsDr xmlns:xdr="{NS_XDR}" xmlns:a="{NS_A}"></xdr:wsDr>'.encode()
        )
        pkg.put_dom(part, drawing, CT_DRAWING)
        rid = pkg.add_relationship(sheet, REL_DRAWING, part)
        for old in refs:  # a dangling reference would make Excel repair the file
            root.removeChild(old)
        r, decl = _prefix(root, NS_REL, "r")
        ref = doc.createElementNS(NS_S, qname(root.prefix, "drawing"))
        ref.setAttributeNS(NS_REL, qname(r, "id"), rid)
        if prefix_for(root, NS_REL) is None:
            ref.setAttribute(f"xmlns:{r}", decl[r])
        _insert_ordered(root, ref, _AFTER_DRAWING)
    drawing = pkg.dom(part)
    wsdr = drawing.documentElement
    x, xns = _prefix(wsdr, NS_XDR, "xdr")
    a, ans = _prefix(wsdr, NS_A, "a")
    size_pt = 12
    w, h = _box_size(wording, size_pt)
    col = _last_column(root) + 1
    cnvprs = descendants(drawing, NS_XDR, "cNvPr")
    ids = [int(v) for c in cnvprs if (v := c.getAttribute("id")).isdigit()]
    old = [
        c.parentNode.parentNode.parentNode
        for c in descendants(drawing, NS_XDR, "cNvPr")
        if c.getAttribute("name") == LABEL_SHAPE
    ]
    xp = qname(x, "")
    shape_id = _reused_id(old, NS_XDR) or max([1, *ids]) + 1
    shape = _shape_xml(xp, qname(a, ""), shape_id, wording, (0, 0, w, h), size_pt, False)
    shape = shape.replace(f"<{xp}sp>", f'<{xp}sp macro="" textlink="">', 1)
    anchor_xml = (
        f"<{xp}oneCellAnchor><{xp}from><{xp}col>{col}</{xp}col><{xp}colOff>0</{xp}colOff>"
        f"<{xp}row>0</{xp}row><{xp}rowOff>0</{xp}rowOff></{xp}from>"
        f'<{xp}ext cx="{w}" cy="{h}"/>{shape}<{xp}clientData/></{xp}oneCellAnchor>'
    )
    anchor = _fragment(drawing, anchor_xml, {**xns, **ans})
    if old:
        old[0].parentNode.replaceChild(anchor, old[0])
        for extra in old[1:]:
            extra.parentNode.removeChild(extra)
    else:
        wsdr.appendChild(anchor)
    pkg.touch(part)


def _reused_id(old: list[minidom.Element], namespace: str) -> int | None:
    """The shape id of our previous label, so relabelling gives identical bytes."""
    for shape in old:
        for c in descendants(shape, namespace, "cNvPr"):
            if c.getAttribute("id").isdigit():
                return int(c.getAttribute("id"))
    return None


def _last_column(root: minidom.Element) -> int:
    """0-based index of the last used column, from <dimension ref="A1:D20">."""
    for dim in children(root, NS_S, "dimension"):
        ref = dim.getAttribute("ref").split(":")[-1]
        letters = re.match(r"[A-Za-z]+", ref)
        if letters:
            n = 0
            for ch in letters.group(0).upper():
                n = n * 26 + ord(ch) - 64
            return n - 1
    return 0
