"""HTML files: the record in ``<meta name="AIGC">``, metadata and visible text.

Reading uses the stdlib ``html.parser`` (tolerant of real-world markup) with
source offsets recorded for every tag; writing splices new text at those
offsets, so every byte outside the edited tags stays as it was. The meta
content is the bare seven-field object (a carrier already named AIGC holds
the inner object, not the wrapper), HTML-escaped; reading accepts the wrapped form too.

:func:`decode_html`, :func:`scan` and :func:`splice` are shared with
``labelers/visible/markup.py`` for the visible notice.
"""

from __future__ import annotations

import codecs
import html
import itertools
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from labelers.errors import CorruptInput, InvalidRecord, UnsupportedMedia
from labelers.formats import (
    Capability,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
    frontmatter,
    text_head,
)
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "text/html"
CARRIER = "html:meta:AIGC"
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# content not shown to a reader of the page
_HIDDEN = {"script", "style", "head", "title", "template", "noscript"}
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


@dataclass
class Decoded:
    text: str
    encoding: str
    bom: bytes


def decode_html(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Text of an HTML file: BOM, else UTF-8, else the charset its meta declares."""
    limits.check("max_bytes", len(data), "the file")
    bom, encoding = b"", None
    for mark, name in _BOMS:
        if data.startswith(mark):
            bom, encoding = mark, name
            break
    candidates = [encoding] if encoding else ["utf-8"]
    declared = _CHARSET.search(data[:4096])
    if declared and not encoding:
        try:
            # pages that declare GB2312/GBK are written in GB18030 in practice (its superset)
            name = codecs.lookup(declared.group(1).decode("ascii")).name
            candidates.append("gb18030" if name in ("gb2312", "gbk") else name)
        except LookupError:
            pass
    for name in candidates:
        try:
            text = data[len(bom) :].decode(name)
        except UnicodeDecodeError:
            continue
        limits.check("max_text_chars", len(text), "the text")
        return Decoded(text, name, bom)
    raise UnsupportedMedia("the HTML file is neither UTF-8 nor in the charset it declares")


def encode_html(doc: Decoded, text: str) -> bytes:
    # characters the page's charset lacks become character references
    return doc.bom + text.encode(doc.encoding, errors="xmlcharrefreplace")


@dataclass
class Tag:
    name: str  # lower-case
    attrs: dict[str, str]  # lower-case names, unescaped values (first wins)
    start: int  # offset of "<"
    end: int  # offset after ">"
    closing: bool = False  # an end tag
    self_closing: bool = False


@dataclass
class Scan:
    tags: list[Tag] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # visible text chunks

    def first(self, name: str, closing: bool = False) -> Tag | None:
        return next((t for t in self.tags if t.name == name and t.closing == closing), None)

    def last(self, name: str, closing: bool = False) -> Tag | None:
        found = [t for t in self.tags if t.name == name and t.closing == closing]
        return found[-1] if found else None

    def element_end(self, tag: Tag) -> int:
        """Offset after the end tag matching ``tag`` (or after ``tag`` if it has none)."""
        if tag.self_closing or tag.name in _VOID:
            return tag.end
        depth = 0
        for t in self.tags:
            if t.start <= tag.start or t.name != tag.name:
                continue
            if not t.closing:
                depth += 1
            elif depth:
                depth -= 1
            else:
                return t.end
        return tag.end


class _Scanner(HTMLParser):
    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        # HTMLParser counts lines by "\n" alone (a "\r" is a column), so must we
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.result = Scan()
        self.hidden = 0

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def _tag(self, name: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        start = self._offset()
        raw = self.get_starttag_text() or ""
        values: dict[str, str] = {}
        for key, value in attrs:
            values.setdefault(key.lower(), value or "")
        self.result.tags.append(Tag(name, values, start, start + len(raw), False, closed))
        if name in _HIDDEN and not closed:
            self.hidden += 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, True)

    def handle_endtag(self, tag: str) -> None:
        start = self._offset()
        end = self.source.find(">", start)
        self.result.tags.append(Tag(tag, {}, start, end + 1 if end >= 0 else start, True))
        if tag in _HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.result.text.append(data)


def scan(text: str) -> Scan:
    """Tags with source offsets, and the visible text, of an HTML document."""
    parser = _Scanner(text)
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError, IndexError) as exc:
        raise CorruptInput(f"the HTML cannot be parsed: {exc}") from None
    return parser.result


def splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (start, end, replacement) edits; they must not overlap."""
    out = []
    pos = 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(text[pos:start])
        out.append(replacement)
        pos = max(pos, end)
    out.append(text[pos:])
    return "".join(out)


def visible_text(result: Scan) -> str:
    text = "".join(result.text)
    return re.sub(r"[ \t\r\f\v]*\n\s*", "\n", re.sub(r"[ \t\r\f\v]+", " ", text)).strip()


def _is_aigc_meta(tag: Tag) -> bool:
    return (
        tag.name == "meta"
        and not tag.closing
        and any(
            tag.attrs.get(a, "").strip().upper() == "AIGC" for a in ("name", "property", "itemprop")
        )
    )


def _is_xhtml(text: str, result: Scan) -> bool:
    html_tag = result.first("html")
    return text.lstrip().startswith("<?xml") or bool(
        html_tag and "xhtml" in html_tag.attrs.get("xmlns", "")
    )


def meta_tag(record: Record, xhtml: bool = False) -> str:
    content = html.escape(record.dumps(wrapped=False), quote=True)
    return f'<meta name="AIGC" content="{content}"{" /" if xhtml else ""}>'


def with_record(text: str, record: Record) -> str:
    """``text`` with ``record`` as its one ``<meta name="AIGC">``, all else untouched."""
    result = scan(text)
    tag = meta_tag(record, _is_xhtml(text, result))
    metas = [t for t in result.tags if _is_aigc_meta(t)]
    if metas:
        edits = [(metas[0].start, metas[0].end, tag)]
        edits += [(m.start, m.end, "") for m in metas[1:]]
        return splice(text, edits)
    head_end = result.first("head", closing=True)
    head = result.first("head")
    if head_end is not None:
        # at the end of head, so a <meta charset> stays within the first 1024 bytes
        at = head_end.start
        line_break = _newline(text) if text[at - 1 : at] == "\n" else ""
        return splice(text, [(at, at, tag + line_break)])
    if head is not None:
        return splice(text, [(head.end, head.end, tag)])
    html_tag = result.first("html")
    body = result.first("body")
    if html_tag is not None:
        return splice(text, [(html_tag.end, html_tag.end, f"<head>{tag}</head>")])
    if body is not None:
        return splice(text, [(body.start, body.start, f"<head>{tag}</head>")])
    doctype = re.match(r"\s*<!doctype[^>]*>", text, re.IGNORECASE)
    at = doctype.end() if doctype else 0
    return splice(text, [(at, at, f"<head>{tag}</head>")])


def without_record(text: str) -> str:
    """``text`` with every AIGC meta tag removed, undoing what :func:`with_record` added.

    For the content digest only (it must not move when a record is written),
    not a way to strip labels from a page. Besides the tags themselves this
    removes the line break after a tag that starts a line (with_record puts the
    tag on a line of its own when ``</head>`` starts one), then every empty
    ``<head></head>`` pair: with_record wraps the tag in one for a page without
    a head, and that result cannot be told apart from a page whose head was
    empty, so both count as having no head.
    """
    edits = []
    for tag in (t for t in scan(text).tags if _is_aigc_meta(t)):
        end = tag.end
        if text[tag.start - 1 : tag.start] == "\n":
            if text.startswith("\r\n", end):
                end += 2
            elif text.startswith("\n", end):
                end += 1
        edits.append((tag.start, end, ""))
    if edits:
        text = splice(text, edits)
    if "<head></head>" not in text:
        return text
    tags = scan(text).tags
    empty_heads = [
        (opening.start, closing.end, "")
        for opening, closing in itertools.pairwise(tags)
        if opening.name == "head"
        and not opening.closing
        and closing.name == "head"
        and closing.closing
        and text[opening.start : closing.end] == "<head></head>"
    ]
    return splice(text, empty_heads) if empty_heads else text


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text[:4096] else "\n"


def looks_like_html(head: str) -> bool:
    """``head``: lower-cased text with leading whitespace removed."""
    return head.startswith(("<!doctype html", "<html")) or (
        head.startswith("<") and "<html" in head[:2048]
    )


class HtmlHandler:
    name = "HTML"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.DOCUMENT
    capabilities = frozenset(
        {
            Capability.RECORD,
            Capability.VISIBLE,
            Capability.DIGEST,
            Capability.TEXT_PAGES,
            Capability.TEXT_BODY,
        }
    )
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        text = text_head(data)
        if text is None:
            return None
        head = text.lstrip("\ufeff \t\r\n").lower()
        if looks_like_html(head):
            return MEDIA_TYPE
        # Jekyll/Hugo templates: YAML or TOML front matter over an HTML document.
        # Its record carrier is the HTML's <meta>; taken as Markdown, the old
        # <meta> stayed beside a new front-matter record (two records)
        fm = frontmatter.split(head)
        if fm is not None and looks_like_html(head[fm.body_start :].lstrip(" \t\r\n")):
            return MEDIA_TYPE
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
        """``data`` with a visible label (labelers.visible.markup)."""
        from labelers.visible import markup

        return markup.label_html(data, wording, placement)

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        doc = decode_html(data, limits)
        result = scan(doc.text)
        meta = Metadata(media_type=MEDIA_TYPE)
        for tag in result.tags:
            if tag.name != "meta" or tag.closing:
                continue
            if _is_aigc_meta(tag):
                raw = tag.attrs.get("content", "")
                try:
                    meta.records.append(FoundRecord(CARRIER, raw, Record.parse(raw)))
                except InvalidRecord as exc:
                    meta.records.append(FoundRecord(CARRIER, raw, None, exc.detail))
            elif tag.attrs.get("name") and "content" in tag.attrs:
                meta.properties[f"html:meta:{tag.attrs['name'].lower()}"] = tag.attrs["content"]
        meta.text_pages = [visible_text(result)]
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        doc = decode_html(data, limits)
        return encode_html(doc, with_record(doc.text, record))

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the document's text (UTF-8) with the AIGC meta element left out.

        Covers every character of the decoded document (markup, scripts, styles,
        visible text, the visible label, other meta elements) except each
        ``<meta name="AIGC">`` tag and the whitespace write_record adds with it:
        the line break after a tag that starts a line, and a ``<head></head>``
        pair that holds nothing but the tag. Decoding first makes the digest
        independent of the file's charset and BOM.
        """
        doc = decode_html(data, limits)
        return ContentHasher(MEDIA_TYPE).add(without_record(doc.text)).digest()


HANDLER = HtmlHandler()
