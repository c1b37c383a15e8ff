"""Explicit (visible) labels in Markdown and HTML documents.

* Markdown: a block-quote line ``> 人工智能生成`` right after the front matter
  (``start``), at the end (``end``) or both. The line ends with an HTML
  comment marker, invisible when rendered, so relabelling finds and replaces
  our line and never touches a user's own quotes.
* HTML: ``<p class="aigc-label" ...>`` right after ``<body>`` opens and/or
  before it closes, spliced at parsed offsets; elements with class
  ``aigc-label`` are replaced on relabelling.

Containers are decoded and parsed by :mod:`labelers.formats.markdown` and
:mod:`labelers.formats.html`.
"""

from __future__ import annotations

import html
import re

from labelers.errors import InvalidOption, UnsupportedMedia
from labelers.formats import frontmatter
from labelers.formats.html import Scan, decode_html, encode_html, scan, splice
from labelers.formats.markdown import decode, encode
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.visible.wording import resolve_wording

POSITIONS = ("start", "end", "both")
#: document-style placements the pipeline also uses for PDF and Office files
_ALIASES = {"header": "start", "footer": "end"}
MARKDOWN_MARKER = "<!-- AIGC-Label -->"
HTML_CLASS = "aigc-label"
_LABEL_LINE = r"^>[^\r\n]*" + re.escape(MARKDOWN_MARKER) + r"[ \t]*"
_END_LABEL = re.compile(r"(?:\r?\n)?" + _LABEL_LINE + r"(?:\r?\n)?\Z", re.MULTILINE)
_ANY_LABEL = re.compile(_LABEL_LINE + r"(?:\r?\n(?:[ \t]*\r?\n)?|\Z)", re.MULTILINE)


def add_visible_label(
    data: bytes,
    media_type: str,
    wording: str,
    position: str = "start",
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """``data`` (Markdown or HTML) with a visible label at ``position``.

    ``position`` is "start", "end" or "both" ("header" and "footer" mean
    start and end). An earlier label of ours is replaced, so the document
    carries the label once per position.
    """
    position = _ALIASES.get(position, position)
    if position not in POSITIONS:
        raise InvalidOption(
            f"position must be one of {', '.join(POSITIONS + tuple(_ALIASES))}, not {position!r}"
        )
    wording = resolve_wording(wording)
    if media_type == "text/markdown":
        doc = decode(data, limits)
        return encode(doc, markdown_with_label(doc.text, wording, position, doc.newline))
    if media_type == "text/html":
        page = decode_html(data, limits)
        return encode_html(page, html_with_label(page.text, wording, position))
    raise UnsupportedMedia(f"{media_type} is not Markdown or HTML")


def label_markdown(
    data: bytes, wording: str, position: str = "start", limits: Limits = DEFAULT_LIMITS
) -> bytes:
    return add_visible_label(data, "text/markdown", wording, position, limits)


def label_html(
    data: bytes, wording: str, position: str = "start", limits: Limits = DEFAULT_LIMITS
) -> bytes:
    return add_visible_label(data, "text/html", wording, position, limits)


def markdown_with_label(text: str, wording: str, position: str, newline: str = "\n") -> str:
    head = text[: frontmatter.body_start(text)]
    body = text[len(head) :]
    body = _END_LABEL.sub("", body, count=1)
    body = _ANY_LABEL.sub("", body)
    line = f"> {wording.replace('<', '&lt;')} {MARKDOWN_MARKER}"
    if position in ("start", "both"):
        body = line + newline + newline + body if body.strip() else line + newline
    if position in ("end", "both") and not (position == "both" and body.strip() == line):
        if not body.endswith(("\n", "\r")):
            body += newline
        body += newline + line + newline
    return head + body


def html_notice(wording: str) -> str:
    return (
        f'<p class="{HTML_CLASS}" role="note" '
        'style="margin:0.5em 0;font-size:0.875em;color:#555;">'
        f"{html.escape(wording)}</p>"
    )


def html_with_label(text: str, wording: str, position: str) -> str:
    result = scan(text)
    edits = [
        (t.start, result.element_end(t), "")
        for t in result.tags
        if not t.closing and HTML_CLASS in t.attrs.get("class", "").split()
    ]
    notice = html_notice(wording)
    if position in ("start", "both"):
        at = _start_offset(text, result)
        edits.append((at, at, notice))
    if position in ("end", "both"):
        closing = result.last("body", closing=True) or result.last("html", closing=True)
        at = closing.start if closing else len(text)
        edits.append((at, at, notice))
    return splice(text, edits)


def _start_offset(text: str, result: Scan) -> int:
    for tag in (result.first("body"), result.last("head", closing=True), result.first("html")):
        if tag is not None:
            return tag.end
    doctype = re.match(r"\s*<!doctype[^>]*>", text, re.IGNORECASE)
    return doctype.end() if doctype else 0
