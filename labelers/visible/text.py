"""Explicit labels for text (GB 45438 clause 5.1): a visible line at the start and/or end.

This module owns the look of the text label and the rule that relabelling does
not stack it. Forms, chosen to read naturally in Chinese and to survive being
pasted anywhere as plain text:

- start: ``【人工智能生成】`` on its own line, then a blank line;
- end: a blank line, then ``（本内容由人工智能生成）`` when the wording is a plain
  "AI element + generation element" phrase (人工智能生成, AI生成, 人工智能合成,
  AI合成), otherwise the wording verbatim in ``【】``.

Run before the watermark (see the pipeline order); the checks here look through
the watermark's invisible characters, so labelling an already-labelled,
watermarked text is idempotent.
"""

from __future__ import annotations

import re

from labelers.errors import InvalidOption
from labelers.formats import frontmatter
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.visible.wording import find_wording, resolve_wording
from labelers.watermark.text import visible_text

PLACEMENTS = ("start", "end", "both", "none")
_PLAIN_WORDING_RE = re.compile(r"(人工智能|AI)(生成|合成)")


def start_label(wording: str) -> str:
    """The label line put before the text."""
    return f"【{wording}】"


def end_label(wording: str) -> str:
    """The label line put after the text."""
    if _PLAIN_WORDING_RE.fullmatch(wording):
        return f"（本内容由{wording}）"
    return f"【{wording}】"


def add_explicit(text: str, wording: str, where: str, *, limits: Limits = DEFAULT_LIMITS) -> str:
    """``text`` with the explicit label at ``where`` ("start", "end", "both" or "none").

    ``wording`` should come from :func:`~labelers.visible.wording.resolve_wording`;
    it is checked again here (cheap) so a bad one raises ``InvalidWording``
    instead of printing a non-conforming label. A label already at the requested
    place (ignoring the watermark's invisible characters) is not added again.
    A leading byte-order mark and YAML/TOML front matter stay first.
    """
    if where not in PLACEMENTS:
        raise InvalidOption(
            f"explicit label position must be one of {', '.join(PLACEMENTS)}, not {where!r}"
        )
    if not isinstance(text, str):
        raise InvalidOption("text must be a string")
    limits.check("max_text_chars", len(text), "the text")
    if where == "none":
        return text
    wording = resolve_wording(wording)
    head_len = frontmatter.body_start(text)
    if not head_len and text.startswith("\ufeff"):
        head_len = 1
    head, body = text[:head_len], text[head_len:]
    shown = visible_text(body)
    if where in ("start", "both") and not shown.lstrip().startswith(start_label(wording)):
        body = start_label(wording) + ("\n\n" if shown.strip() else "") + body
        shown = visible_text(body)
    if where in ("end", "both") and not shown.rstrip().endswith(end_label(wording)):
        core = body.rstrip()
        body = core + ("\n\n" if core else "") + end_label(wording) + body[len(core) :]
    return head + body


def has_explicit(text: str) -> list[str]:
    """Explicit-label phrases a reader sees in ``text`` (watermark characters ignored)."""
    return find_wording(visible_text(text))
