"""The invisible implicit label for plain text: a ProduceID written in zero-width characters.

This module owns the text watermark in both directions: :func:`embed` writes it,
:func:`decode` reads it back, :func:`visible_text` gives the verifier the wording a
reader sees. Metadata (the Annex E record in front matter, XMP, ...) is lost the
moment someone copies a paragraph out of a page; this mark travels with the
characters, so a platform can still recover the ProduceID and look the full
record up in the ledger.

Alphabet: U+200B ZERO WIDTH SPACE, U+200C ZERO WIDTH NON-JOINER, U+200D ZERO
WIDTH JOINER and U+2060 WORD JOINER, two bits per character. Why these:

- They are ordinary text (general category Cf, default-ignorable, so they render
  as nothing), so copy-paste carries them in the plain-text clipboard flavour,
  unlike formatting. (Not checked on this machine: which chat apps strip them.)
- None has a canonical or compatibility decomposition, so NFC, NFD, NFKC and NFKD
  all leave them untouched (checked with :mod:`unicodedata`; only the separate
  NFKC_Casefold mapping of UTS #15/#31 drops default-ignorables, and Python's
  ``str.casefold`` does not apply it).
- None is whitespace (``str.isspace()``, ``re`` ``\\s``, JavaScript ``\\s`` and
  ``trim()`` all say no), so ``" ".join(text.split())`` and ``re.sub(r"\\s+", ...)``
  keep them; U+FEFF was avoided because ``trim()`` and BOM sniffers eat it.
- ZWNJ and ZWJ are needed by Persian, Indic scripts and emoji sequences, so
  sanitisers rarely strip them; ZWSP and WJ are the other two classic members.
- Variation selectors were rejected because after a base character they select
  glyph variants (VS16 turns a digit or symbol into an emoji, VS17+ picks CJK
  ideograph variants); tag characters (U+E00xx) render as boxes in older fonts.

Known ways to lose the mark: filters that keep only ``str.isprintable()``
characters (Cf is not printable), tools that delete zero-width characters on
purpose, retyping, OCR.

Frame: a 4-character start marker, then bytes at four characters per byte:
a type byte (ULID or ASCII), the ProduceID (a ULID as its 128 bits; any other
Annex E ProduceID as a length byte plus ASCII), and a CRC-32 seeded with a
domain string so a damaged copy, or another tool's zero-width data, is rejected
rather than misread. A ULID frame is 88 characters, a 26-character ASCII
ProduceID 132.

Placement: one copy in every paragraph (blank-line separated) of at least
:data:`MIN_PARAGRAPH_CHARS` characters, near its start so a selection that stops
short of the paragraph's end still holds one, then again about every
:data:`REPEAT_EVERY` characters. Preferred spots, best first: after a sentence
end, after a clause mark, after a space. ASCII punctuation counts only with a
space after it, and the copy goes after that space: the frame contains U+200B, a
line-break opportunity, and a break inside it then looks like a break at the
space. CJK punctuation takes the copy right after it unless a mark that may not
start a line follows. Last resorts: between two CJK characters, or at the end of
a word before its space. Never inside a word, fenced or indented code, inline
code, math, HTML tags, link destinations, URLs, e-mail addresses, YAML/TOML
front matter, ATX headings (their text makes anchor slugs) or rule and table
delimiter lines, and never glued to either end of a URL or code span. A text
with no long-enough paragraph gets one copy in its last paragraph (at its end if
it has no boundary); a text with no safe place at all (only code, only blank)
is returned unchanged.

:func:`visible_text` exists for the verifier, which searches for visible label
wording; it is not a "strip label" feature and must not be offered as one: the
Measures (Art. 10) forbid removing implicit labels or offering tools to do so.
"""

from __future__ import annotations

import bisect
import re
import zlib
from collections.abc import Iterator
from functools import lru_cache

from labelers.errors import InvalidOption, InvalidRecord, LimitExceeded
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import charset_violation, decode_ulid, encode_ulid

#: two bits per character, in this order (symbol 0..3)
ALPHABET = "\u200b\u200c\u200d\u2060"
#: start of every frame: WJ ZWJ ZWSP WJ (symbols 3 2 0 3)
MARKER = "\u2060\u200d\u200b\u2060"
#: paragraphs shorter than this (characters, trimmed) get no copy of their own
MIN_PARAGRAPH_CHARS = 20
#: in long paragraphs, another copy roughly this many characters after the last
REPEAT_EVERY = 400
#: how far past a target position a better boundary (sentence end) is looked for
_WINDOW = 160

_TYPE_ULID = 0x11  # version 1, ProduceID is a 128-bit ULID
_TYPE_ASCII = 0x12  # version 1, ProduceID is 1..64 Annex E characters
_MAX_ASCII_ID = 64
_CRC_SEED = zlib.crc32(b"GB45438-2025 text watermark v1")

_TO_DIGITS = str.maketrans(ALPHABET, "0123")
_BYTE_CHARS = tuple(
    "".join(ALPHABET[(b >> shift) & 3] for shift in (6, 4, 2, 0)) for b in range(256)
)
_MAX_FRAME_CHARS = len(MARKER) + 4 * (2 + _MAX_ASCII_ID + 4)
_MIN_FRAME_CHARS = len(MARKER) + 4 * (1 + 1 + 1 + 4)  # shortest: one-char ASCII ID
_RUN_RE = re.compile(f"[{ALPHABET}]{{{len(MARKER)},}}")

# ---------------------------------------------------------------- frames


def _frame(produce_id: str) -> str:
    """The invisible characters carrying ``produce_id`` (validated here)."""
    if not isinstance(produce_id, str) or not produce_id:
        raise InvalidRecord("ProduceID must be a non-empty string")
    value = decode_ulid(produce_id)
    if value is not None and encode_ulid(value) == produce_id:
        body = bytes([_TYPE_ULID]) + value.to_bytes(16, "big")
    else:
        bad = charset_violation(produce_id)
        if bad:
            raise InvalidRecord(f"ProduceID {bad}")
        if len(produce_id) > _MAX_ASCII_ID:
            raise InvalidRecord(
                f"ProduceID is {len(produce_id)} characters; the text watermark carries "
                f"at most {_MAX_ASCII_ID}"
            )
        raw = produce_id.encode("ascii")
        body = bytes([_TYPE_ASCII, len(raw)]) + raw
    body += zlib.crc32(body, _CRC_SEED).to_bytes(4, "big")
    return MARKER + "".join(_BYTE_CHARS[b] for b in body)


def _read_bytes(digits: str, start: int, count: int) -> bytes | None:
    end = start + 4 * count
    if end > len(digits):
        return None
    return int(digits[start:end], 4).to_bytes(count, "big")


def _parse_frame(digits: str, start: int) -> tuple[str, int] | None:
    """(ProduceID, end index) of a frame whose body starts at ``start``, if it verifies."""
    head = _read_bytes(digits, start, 2)
    if head is None:
        return None
    if head[0] == _TYPE_ULID:
        size = 1 + 16
    elif head[0] == _TYPE_ASCII and 1 <= head[1] <= _MAX_ASCII_ID:
        size = 2 + head[1]
    else:
        return None
    body = _read_bytes(digits, start, size)
    crc = _read_bytes(digits, start + 4 * size, 4)
    if body is None or crc is None or int.from_bytes(crc, "big") != zlib.crc32(body, _CRC_SEED):
        return None
    if head[0] == _TYPE_ULID:
        produce_id = encode_ulid(int.from_bytes(body[1:], "big"))
    else:
        produce_id = body[2:].decode("ascii", errors="replace")
        if charset_violation(produce_id):
            return None
    return produce_id, start + 4 * (size + 4)


def _frames_in_run(run: str) -> tuple[tuple[int, int, str | None], ...]:
    """Frames in a run of alphabet characters that starts with the marker.

    (start, end, ProduceID or None if damaged), offsets into ``run``. A damaged
    frame spans from its marker to the next intact frame or the end of the run.
    """
    digits = run.translate(_TO_DIGITS) if len(run) >= _MIN_FRAME_CHARS else ""
    out: list[tuple[int, int, str | None]] = []
    damaged = -1
    i = 0
    while i >= 0:
        parsed = _parse_frame(digits, i + len(MARKER))
        if parsed is None:
            # the marker's four characters can also occur inside a frame's body,
            # so look for a later, intact frame in the same run
            damaged = i if damaged < 0 else damaged
            i = run.find(MARKER, i + 1)
            continue
        produce_id, end = parsed
        if damaged >= 0:
            out.append((damaged, i, None))
            damaged = -1
        out.append((i, end, produce_id))
        i = run.find(MARKER, end)
    if damaged >= 0:
        out.append((damaged, len(run), None))
    return tuple(out)


_frames_cached = lru_cache(maxsize=256)(_frames_in_run)


def _scan(text: str) -> Iterator[tuple[int, int, str | None]]:
    """Each of our frames in ``text``, in order: (start, end, ProduceID or None if damaged).

    Characters before a marker (a natural ZWJ, say) are not ours and stay.
    """
    at = text.find(MARKER)  # a literal search: fast on text without frames
    while at >= 0:
        run_end = _RUN_RE.match(text, at).end()  # type: ignore[union-attr]
        run = text[at:run_end]
        # a text repeats the same frame hundreds of times; only frame-sized runs
        # are cached so a hostile text cannot pin megabytes in the cache
        frames = _frames_cached(run) if len(run) <= 4 * _MAX_FRAME_CHARS else _frames_in_run(run)
        for start, end, produce_id in frames:
            yield at + start, at + end, produce_id
        at = text.find(MARKER, run_end)


def decode(text: str) -> list[str]:
    """The distinct ProduceIDs whose checksum verifies, in order of first appearance.

    Never raises: anything that is not a verifying frame is ignored.
    """
    if not isinstance(text, str):
        return []
    found: dict[str, None] = {}
    for _start, _end, produce_id in _scan(text):
        if produce_id is not None:
            found.setdefault(produce_id)
    return list(found)


def visible_text(text: str) -> str:
    """``text`` without our frames (intact or damaged), for searching visible wording.

    For the verifier only. Not a public "strip" feature: Art. 10 of the Measures
    forbids removing implicit labels or offering a tool that does.
    """
    if not isinstance(text, str):
        return ""
    spans = [(s, e) for s, e, _ in _scan(text)]
    if not spans:
        return text
    out, pos = [], 0
    for start, end in spans:
        if start >= pos:
            out.append(text[pos:start])
        pos = max(pos, end)
    out.append(text[pos:])
    return "".join(out)


# ---------------------------------------------------------- protected spans

_FRONT_MATTER_RE = re.compile(
    r"\A(?:\ufeff)?(?:---[ \t]*\r?\n.*?\r?\n(?:---|\.\.\.)|\+\+\+[ \t]*\r?\n.*?\r?\n\+\+\+)"
    r"[ \t]*(?:\r?\n|\Z)",
    re.DOTALL,
)


def front_matter_end(text: str) -> int:
    """Where a leading YAML (``---``) or TOML (``+++``) front matter block ends; 0 if none.

    Nothing may be written before or inside it: it must open the file to parse.
    """
    m = _FRONT_MATTER_RE.match(text)
    return m.end() if m else 0


_FENCE_OPEN_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*(?:\n|\Z)", re.MULTILINE)
_INDENTED_RE = re.compile(r"^(?: {4}|\t)[^\n]*(?:\n|\Z)", re.MULTILINE)
# openings of raw HTML blocks; each is closed by the next matching closer, found by
# _html_blocks without rescanning (a lazy ".*?</pre>" regex is quadratic on many
# unclosed "<pre" openings)
_HTML_OPEN_RE = re.compile(r"<(pre|code|script|style|textarea|math|svg)\b|<!--", re.IGNORECASE)
_MATH_BLOCK_RE = re.compile(r"\$\$.+?\$\$", re.DOTALL)
# Inline regions, found over the whole text. Each pattern starts with a literal
# so the regex engine can skip ahead; URLs and e-mail addresses are found from
# their "://" or "@" and widened backwards, which avoids rescanning every word.
_INLINE_RES = (
    # code span: backtick strings of equal length, not across a blank line
    ("$", re.compile(r"\$[^$\n]+\$")),  # inline math (or two prices: harmless)
    ("<", re.compile(r"<[^<>\n]*>")),  # HTML tag or autolink
    # link / image destination; it may not contain "](", so an attempt stops at the
    # next one and a line of "](" without ")" is not rescanned from each
    ("](", re.compile(r"\]\((?:[^)\n\]]|\](?!\())*\)")),
    ("www.", re.compile(r"www\.\S+", re.IGNORECASE)),
)
# whole lines, matched after a newline (the text is searched with one prepended)
_LINE_RES = (
    ("]:", re.compile(r"\n[ \t]*\[[^\]\n]+\]:[ \t]*\S+")),  # reference definition
    ("#", re.compile(r"\n {0,3}#{1,6}(?:[ \t][^\n]*)?(?=\n|\Z)")),  # heading: makes the slug
    ("", re.compile(r"\n[ \t]*[-*_=|:+][-*_=|:+ \t]*(?=\n|\Z)")),  # rule, table delimiter
)
_URL_TAIL_RE = re.compile(r"://\S+")
_EMAIL_TAIL_RE = re.compile(r"@[\w-]+(?:\.[\w-]+)+\S*")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _inline_spans(text: str, headings: bool = True) -> list[tuple[int, int]]:
    """Closed intervals of positions inside or touching an inline region."""
    spans: list[tuple[int, int]] = _code_spans(text) if "`" in text else []
    for trigger, rx in _INLINE_RES:
        if trigger in text:
            spans.extend((m.start(), m.end()) for m in rx.finditer(text))
    lined = "\n" + text
    for trigger, rx in _LINE_RES:
        if trigger in text and (headings or trigger != "#"):
            spans.extend((m.start(), m.end() - 1) for m in rx.finditer(lined))
    if "://" in text:
        for m in _URL_TAIL_RE.finditer(text):
            start = m.start()
            while start > 0 and text[start - 1] in _SCHEME_CHARS:
                start -= 1
            spans.append((start, m.end()))
    if "@" in text:
        for m in _EMAIL_TAIL_RE.finditer(text):
            start = m.start()
            while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "._%+-"):
                start -= 1
            if start < m.start():
                spans.append((start, m.end()))
    return spans


_BLANK_LINE_RE = re.compile(r"\n[ \t\r]*\n")


def _block_spans(text: str) -> list[tuple[int, int, bool]]:
    """Regions no copy may enter: (start, end, end_ok).

    ``end_ok`` is true when the region ends with a newline, so inserting right
    after it (at the start of the next line) cannot change how it parses.
    """
    spans: list[tuple[int, int, bool]] = []
    pos = front_matter_end(text)
    if pos:
        spans.append((0, pos, text[pos - 1] == "\n"))
    while True:
        m = _FENCE_OPEN_RE.search(text, pos)
        if m is None:
            break
        fence = m.group(1)
        closing = re.compile(
            rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t\r]*(?:\n|\Z)", re.MULTILINE
        )
        c = closing.search(text, m.end())
        if c is None:  # an unclosed fence runs to the end of the text (CommonMark)
            spans.append((m.start(), len(text), False))
            break
        spans.append((m.start(), c.end(), c.group().endswith("\n")))
        pos = c.end()
    for rx in (_INDENTED_RE, _MATH_BLOCK_RE):
        for m in rx.finditer(text):
            spans.append((m.start(), m.end(), m.group().endswith("\n")))
    spans.extend((start, end, text[end - 1 : end] == "\n") for start, end in _html_blocks(text))
    return spans


def _html_blocks(text: str) -> list[tuple[int, int]]:
    """Raw HTML blocks (``<pre>...</pre>`` and the like) and comments, in one pass.

    Each opening is closed by the next closer of its kind; a closer searched
    for and not found is remembered, so later openings of that kind cost nothing.
    """
    lower = text.lower() if "<" in text else ""
    out: list[tuple[int, int]] = []
    missing: set[str] = set()
    pos = 0
    while (m := _HTML_OPEN_RE.search(text, pos)) is not None:
        closer = "-->" if m.group(1) is None else f"</{m.group(1).lower()}"
        if closer in missing:
            pos = m.end()
            continue
        at = lower.find(closer, m.end())
        end = -1
        while at >= 0:  # "</pre" must end its tag: optional whitespace, then ">"
            after = at + len(closer)
            if closer == "-->":
                end = after
                break
            while after < len(text) and text[after] in " \t\r\n":
                after += 1
            if text[after : after + 1] == ">":
                end = after + 1
                break
            at = lower.find(closer, after)
        if end < 0:
            missing.add(closer)
            pos = m.end()
            continue
        out.append((m.start(), end))
        pos = end
    return out


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Code spans: a backtick run closed by the next run of the same length, not
    across a blank line (CommonMark), found in one pass over the runs."""
    runs = [(m.start(), m.end()) for m in re.finditer("`+", text)]
    by_length: dict[int, list[int]] = {}
    for index, (start, end) in enumerate(runs):
        by_length.setdefault(end - start, []).append(index)
    cursor = dict.fromkeys(by_length, 0)  # next candidate closer per run length
    blanks = [m.start() for m in _BLANK_LINE_RE.finditer(text)]
    out: list[tuple[int, int]] = []
    index = 0
    while index < len(runs):
        start, end = runs[index]
        same = by_length[end - start]
        while cursor[end - start] < len(same) and same[cursor[end - start]] <= index:
            cursor[end - start] += 1
        if cursor[end - start] == len(same):
            index += 1
            continue
        closer = same[cursor[end - start]]
        close_start, close_end = runs[closer]
        blank = bisect.bisect_left(blanks, end)
        if blank < len(blanks) and blanks[blank] < close_start:
            index += 1  # a blank line ends the paragraph first: this run is literal
            continue
        out.append((start, close_end))
        index = closer + 1
    return out


class _Forbidden:
    """Sorted, merged closed intervals of insertion positions that are not allowed."""

    def __init__(self, intervals: list[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for s, e in sorted(intervals):
            if merged and s <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    def blocked_until(self, pos: int) -> int | None:
        """The last blocked position of the interval holding ``pos``, or None if free."""
        i = bisect.bisect_right(self.starts, pos) - 1
        if i >= 0 and pos <= self.ends[i]:
            return self.ends[i]
        return None


# --------------------------------------------------------------- placement

# Where a copy may go. ASCII punctuation counts only with whitespace after it,
# and the copy goes *after* that whitespace: the frame contains U+200B, a line
# break opportunity, and a break there must look like a break at the space (no
# space left dangling at the start of a line). CJK punctuation takes the copy
# right after it, unless a character that may not start a line follows.
_CLOSERS = "\"'”’)\\]"
_NO_LINE_START = "。，、；：！？）】」』》…”’"
_AFTER_ASCII = r"(?:[ \t]+(?=\S)|(?=\r?\n))"
_SENTENCE = (
    rf"[.!?…]+[{_CLOSERS}]*{_AFTER_ASCII}"
    rf"|[。！？]+[」』”’）》】]*(?![{_NO_LINE_START}])"
)
_CLAUSE = rf"[,;:][{_CLOSERS}]*{_AFTER_ASCII}|[，、；：）】」』》]+(?![{_NO_LINE_START}])"
_SPACE = r"(?<=\S)[ \t]+(?=\S)"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_GAP = rf"(?<=[{_CJK}])(?=[{_CJK}])"
#: boundary kinds, best first; each match's end is the insertion position
_BOUNDARIES = tuple(re.compile(p) for p in (_SENTENCE, _CLAUSE, _SPACE))
# last resort: at the end of a word, before its space (a URL may follow the space)
_WORD_END = r"(?<=\S)(?=[ \t]+\S)"
_FALLBACKS = (*_BOUNDARIES, re.compile(_CJK_GAP), re.compile(_WORD_END))


def _first_allowed(rx: re.Pattern[str], text: str, pos: int, end: int, bad: _Forbidden) -> int:
    """First allowed insertion position found by ``rx`` in ``text[pos:end]``, or -1."""
    while pos < end:
        m = rx.search(text, pos, end)
        if m is None:
            return -1
        blocked = bad.blocked_until(m.end())
        if blocked is None:
            return m.end()
        pos = max(blocked, m.start() + 1)
    return -1


def _first_of_any(text: str, pos: int, end: int, bad: _Forbidden) -> int:
    """The nearest allowed boundary of any kind after ``pos``, or -1.

    Kinds are searched separately (an alternation would report only the first
    kind matching at a place, which may be blocked while another is not), first
    nearby, so a kind that never occurs does not make each call scan to the end.
    """
    for limit in (min(end, pos + 2 * _WINDOW), end):
        found = [at for rx in _FALLBACKS if (at := _first_allowed(rx, text, pos, limit, bad)) >= 0]
        if found:
            return min(found)
    return -1


def _paragraph_positions(
    text: str, start: int, end: int, bad: _Forbidden, every: int
) -> Iterator[int]:
    """Insertion positions for the trimmed paragraph ``text[start:end]``.

    The first copy goes near the start (so a selection that stops short of the
    paragraph's end still holds one), at the best boundary in the first
    ``_WINDOW`` characters; then one every ``every`` characters.
    """
    target = start
    first = True
    while first or target < end - every // 4:
        window_end = min(end, target + _WINDOW + 1)
        at = -1
        for rx in _BOUNDARIES:
            at = _first_allowed(rx, text, target, window_end, bad)
            if at >= 0:
                break
        if at < 0:
            at = _first_of_any(text, target, end, bad)
        if at < 0 and first and bad.blocked_until(end) is None:
            at = end  # no boundary at all: after the paragraph's last character
        if at < 0:
            return
        yield at
        first = False
        target = at + every


def _prose_paragraphs(text: str, blocks: list[tuple[int, int, bool]]) -> Iterator[tuple[int, int]]:
    """(start, end) of each trimmed paragraph outside the protected blocks."""
    segments = []
    pos = 0
    for s, e, _ in sorted(blocks):
        if s > pos:
            segments.append((pos, s))
        pos = max(pos, e)
    segments.append((pos, len(text)))
    for seg_start, seg_end in segments:
        para_start = seg_start
        for m in _BLANK_LINE_RE.finditer(text, seg_start, seg_end):
            yield from _trimmed(text, para_start, m.start())
            para_start = m.end()
        yield from _trimmed(text, para_start, seg_end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


def _positions(text: str, every: int) -> list[int]:
    """Where copies go: every long-enough paragraph, else one copy in the last paragraph."""
    blocks = _block_spans(text)
    block_intervals = [(s, e - 1 if end_ok else e) for s, e, end_ok in blocks]
    bad = _Forbidden(block_intervals + _inline_spans(text))
    out: list[int] = []
    paragraphs = list(_prose_paragraphs(text, blocks))
    for start, end in paragraphs:
        if end - start >= MIN_PARAGRAPH_CHARS:
            out.extend(_paragraph_positions(text, start, end, bad, every))
    if out:
        return out
    # Only short paragraphs (or long ones without room): one copy in the last one
    # that has room. A text of nothing but headings may carry it in a heading.
    for forbidden in (bad, _Forbidden(block_intervals + _inline_spans(text, headings=False))):
        for start, end in reversed(paragraphs):
            for at in _paragraph_positions(text, start, end, forbidden, every):
                return [at]
    return []


def embed(
    text: str, produce_id: str, *, every: int = REPEAT_EVERY, limits: Limits = DEFAULT_LIMITS
) -> str:
    """``text`` carrying ``produce_id`` invisibly, once per paragraph and every ``every`` chars.

    Any frame already in the text is replaced (one ProduceID per text). Raises
    :class:`InvalidRecord` for a ProduceID outside the Annex E charset or longer
    than 64 characters, :class:`InvalidOption` for a silly ``every``, and
    :class:`LimitExceeded` for text over ``limits.max_text_chars``.
    """
    if not isinstance(text, str):
        raise InvalidOption("text must be a string")
    if len(text) > limits.max_text_chars:
        raise LimitExceeded(
            f"text has {len(text)} characters; the limit is {limits.max_text_chars} "
            "(AIGC_MAX_TEXT_CHARS)"
        )
    if not 100 <= every <= 100_000:
        raise InvalidOption(f"watermark spacing must be 100..100000 characters, not {every}")
    frame = _frame(produce_id)
    text = visible_text(text)
    if not text.strip():
        return text  # nothing a reader could copy, nothing to carry the mark
    out, prev = [], 0
    for at in _positions(text, every):
        out.append(text[prev:at])
        out.append(frame)
        prev = at
    out.append(text[prev:])
    return "".join(out)
