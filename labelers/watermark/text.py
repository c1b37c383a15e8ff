"""The invisible implicit label for text: a 64-bit ledger key in invisible characters.

This module owns the text mark in both directions: :func:`embed` writes it,
:func:`copies` / :func:`keys` / :func:`decode` read it back, :func:`visible_text`
gives the verifier the wording a reader sees. Metadata (the Annex E record in
front matter, XMP, ...) is lost the moment someone copies a paragraph out of a
page; this mark travels with the characters, so a platform can still recover the
key and look the full record up in the ledger.

What a copy carries: the 64-bit ledger key every invisible mark of this project
carries (:func:`labelers.watermark.watermark_key`, SHA-256 of the ProduceID)
and a checksum, so a damaged copy, or someone else's invisible characters, is
rejected instead of misread. The first copy in a text also carries the whole
ProduceID, so a verifier without the ledger still names it; every copy alone
is enough for the ledger.

Two families, so a sanitiser that deletes one leaves the other:

- **Variation selectors** (VS1-VS16 U+FE00-FE0F and VS17-VS256
  U+E0100-E01EF): 256 symbols, one byte per character, in the byte order the
  C2PA unstructured-text embedding uses. A compact copy is 9 characters: a
  check symbol (16..255, from a BLAKE2 hash of the key) and the key's 8
  bytes; the full copy 19 (a type byte, a ULID ProduceID, a 16-bit check) or
  4 + length (any other ProduceID). Every copy starts with a VS17+ character:
  those only ever select variants of ideographs (Ideographic Variation
  Database), and a copy is never placed after an ideograph, an emoji or a
  combining mark, so it cannot change a glyph; the VS1-VS16 inside a copy
  follow a selector, where they mean nothing.
- **Zero-width characters**: U+200C ZWNJ, U+2060 WORD JOINER and U+2061-2064
  (the invisible mathematical operators): six symbols, the key and an 8-bit
  check as 28 base-6 digits. U+200B is left out on purpose (it is the one
  sanitisers strip first, and a line-break opportunity), and so is U+200D ZWJ
  (join-causing: next to an Arabic letter it would change the letter's shape;
  the others are non-joining or transparent to Arabic shaping).

The checks are short on purpose: a damaged copy passes one with odds of about
1 in 240 (selectors) or 256 (zero-width), and then still has to hit one of the
ledger's keys out of 2**64 before it names a record.

Both families are default-ignorable (they render as nothing), have no canonical
or compatibility decomposition (NFC, NFD, NFKC and NFKD leave them alone), are
not whitespace (``str.split``, ``re`` ``\\s``, JavaScript ``trim()`` keep them),
encode in GB18030 and pass through HTML escaping. A copy is one run of its
family's characters; the run's ends are its synchronisation, so a decoder
needs nothing but the copy itself. Known ways to lose the mark: filters that
drop every default-ignorable or ``Cf``/``Mn`` character (both families at once),
retyping, OCR.

Cost: the variation-selector copies go at least every ``every`` characters
(default :data:`EVERY`, 300: any excerpt of that length holds a whole copy),
plus one in each paragraph of at least ``paragraph_chars`` (default
:data:`MIN_PARAGRAPH_CHARS`) the spacing left without one, and in shorter ones
while the copies after the first stay within ``budget`` of the text (default
:data:`BUDGET`; the first paragraph always gets one); the zero-width
copy, 28 characters, beside the first copy and then about every
``zero_width_every`` (default :data:`ZERO_WIDTH_EVERY`). The defaults come from
``benchmarks/text_mark.py`` (docs/benchmarks.md, "Text mark"): about 6% more
characters on prose, where the previous format added 24-66% (76% measured on
one article).

Still read (never written): the previous format, a 4-character marker and the
whole ProduceID in U+200B/200C/200D/2060 at two bits per character
(:data:`LEGACY_FAMILY`).

Placement: at sentence ends, then clause marks, then spaces, preferring the
last such boundary before the spacing runs out. ASCII punctuation counts only
with a space after it, and the copy goes after that space; CJK punctuation
takes the copy right after it unless a mark that may not start a line follows.
Never inside a word or between two CJK or CJK and Latin characters (that breaks
search and line breaking), never inside a number, fenced or indented code,
inline code, math, HTML tags, link destinations, URLs, e-mail addresses,
YAML/TOML front matter, ATX headings (their text makes anchor slugs) or rule
and table delimiter lines, never glued to either end of a URL or code span,
never before a combining mark. A text with no safe place at all (only code,
only blank) is returned unchanged.

:func:`visible_text` exists for the verifier, which searches for visible label
wording; it is not a "strip label" feature and must not be offered as one: the
Measures (Art. 10) forbid removing implicit labels or offering tools to do so.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from labelers.errors import InvalidOption, InvalidRecord
from labelers.formats import frontmatter
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import charset_violation, decode_ulid, encode_ulid
from labelers.watermark import watermark_key

VS_FAMILY = "variation-selectors"
ZW_FAMILY = "zero-width"
LEGACY_FAMILY = "zero-width-v1"

#: any excerpt of this many characters holds a whole copy (the default density)
EVERY = 300
#: roughly how many characters apart the zero-width copies are
ZERO_WIDTH_EVERY = 2000
#: a paragraph at least this long (characters, trimmed) always carries a copy
MIN_PARAGRAPH_CHARS = 150
#: a shorter one carries its own while the copies stay within :data:`BUDGET`: a
#: copy in every 110-character paragraph would cost 9% in all
#: (benchmarks/text_mark.py); below this length, only where the spacing puts one
SHORT_PARAGRAPH_CHARS = 20
#: the share of a text's length that the copies after the first spot (the price
#: of any mark at all) may reach through short paragraphs' own copies
BUDGET = 0.04

# ------------------------------------------------------ variation selectors


def _vs_char(byte: int) -> str:
    return chr(0xFE00 + byte) if byte < 16 else chr(0xE0100 + byte - 16)


VS_CHARS = tuple(_vs_char(b) for b in range(256))
_VS_BYTE = {c: b for b, c in enumerate(VS_CHARS)}
VS_RUN_RE = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]+")

_TAG_ULID = 0xA8  # full copy: the ProduceID as a ULID's 128 bits
_TAG_ASCII = 0xA9  # full copy: a length byte and the ProduceID's Annex E characters
_MAX_ASCII_ID = 64
_VS_CHECK = 2
#: a compact copy: one check symbol from VS17-VS256 (so the copy starts with
#: one, see the module docstring), then the key's 8 bytes
VS_COPY_CHARS = 1 + 8
_VS_MAX_COPY = 2 + _MAX_ASCII_ID + _VS_CHECK


def _check(data: bytes, person: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=2, person=person).digest(), "big")


def _key_check_symbol(key_bytes: bytes) -> int:
    """The first byte of a compact copy: 16..255, a checksum of the key."""
    return 16 + _check(key_bytes, b"GB45438 text key") % 240


def _key_copy(key: int) -> str:
    raw = key.to_bytes(8, "big")
    return "".join(VS_CHARS[b] for b in bytes([_key_check_symbol(raw)]) + raw)


def _full_vs_copy(body: bytes) -> str:
    check = _check(body, b"GB45438 text id").to_bytes(2, "big")
    return "".join(VS_CHARS[b] for b in body + check)


def _full_copy(produce_id: str) -> str:
    """The variation-selector copy carrying the whole ``produce_id`` (validated here)."""
    if not isinstance(produce_id, str) or not produce_id:
        raise InvalidRecord("ProduceID must be a non-empty string")
    value = decode_ulid(produce_id)
    if value is not None and encode_ulid(value) == produce_id:
        return _full_vs_copy(bytes([_TAG_ULID]) + value.to_bytes(16, "big"))
    bad = charset_violation(produce_id)
    if bad:
        raise InvalidRecord(f"ProduceID {bad}")
    if len(produce_id) > _MAX_ASCII_ID:
        raise InvalidRecord(
            f"ProduceID is {len(produce_id)} characters; the text mark carries "
            f"at most {_MAX_ASCII_ID}"
        )
    raw = produce_id.encode("ascii")
    return _full_vs_copy(bytes([_TAG_ASCII, len(raw)]) + raw)


def _parse_full(data: bytes, at: int) -> tuple[int, int, str] | None:
    tag = data[at]
    if tag == _TAG_ULID:
        size = 17
    elif tag == _TAG_ASCII and at + 1 < len(data) and 1 <= data[at + 1] <= _MAX_ASCII_ID:
        size = 2 + data[at + 1]
    else:
        return None
    end = at + size + _VS_CHECK
    if end > len(data):
        return None
    body = data[at : at + size]
    if _check(body, b"GB45438 text id") != int.from_bytes(data[at + size : end], "big"):
        return None
    if tag == _TAG_ULID:
        produce_id = encode_ulid(int.from_bytes(body[1:], "big"))
    else:
        produce_id = body[2:].decode("ascii", errors="replace")
        if charset_violation(produce_id):
            return None
    return end, watermark_key(produce_id), produce_id


def _parse_vs(data: bytes, at: int) -> tuple[int, int, str | None] | None:
    """(end, key, ProduceID or None) of a verifying copy starting at ``data[at]``."""
    full = _parse_full(data, at)
    if full is not None:
        return full
    end = at + VS_COPY_CHARS
    if end > len(data) or data[at] < 16:
        return None
    raw = data[at + 1 : end]
    if _key_check_symbol(raw) != data[at]:
        return None
    return end, int.from_bytes(raw, "big"), None


# runs longer than this are not ours (each copy is one run); only their ends are
# tried, so a hostile run of millions of selectors costs two checks
_SHORT_RUN = 4 * _VS_MAX_COPY


def _vs_copies_in_run(run: str) -> tuple[tuple[int, int, int, str | None], ...]:
    """(start, end, key, ProduceID or None) of each verifying copy in a selector run."""
    data = bytes(_VS_BYTE[c] for c in run) if len(run) <= _SHORT_RUN else None
    out: list[tuple[int, int, int, str | None]] = []
    if data is not None:
        i = 0
        while i < len(data):
            parsed = _parse_vs(data, i)
            if parsed is None:
                i += 1  # a natural selector glued to a copy (after an emoji, say)
                continue
            end, key, produce_id = parsed
            out.append((i, end, key, produce_id))
            i = end
        return tuple(out)
    for start in (0, len(run) - VS_COPY_CHARS):
        data = bytes(_VS_BYTE[c] for c in run[start : start + _VS_MAX_COPY])
        parsed = _parse_vs(data, 0)
        if parsed is not None:
            out.append((start, start + parsed[0], parsed[1], parsed[2]))
    return tuple(out)


# ------------------------------------------------------- zero-width family

ZW_ALPHABET = "\u200c\u2060\u2061\u2062\u2063\u2064"
ZW_RUN_RE = re.compile(f"[{ZW_ALPHABET}]+")
ZW_COPY_CHARS = 28  # 6**28 > 2**72: the key and an 8-bit checksum
_ZW_DIGIT = {c: d for d, c in enumerate(ZW_ALPHABET)}


def _zw_check(key: int) -> int:
    return _check(key.to_bytes(8, "big"), b"GB45438 text zw") & 0xFF


# four base-6 digits at a time: 7 divisions instead of 28
_ZW_QUADS = tuple("".join(ZW_ALPHABET[(v // 6**k) % 6] for k in (3, 2, 1, 0)) for v in range(6**4))


def _zw_copy(key: int) -> str:
    value = key << 8 | _zw_check(key)
    quads = []
    for _ in range(ZW_COPY_CHARS // 4):
        value, quad = divmod(value, 6**4)
        quads.append(_ZW_QUADS[quad])
    return "".join(reversed(quads))


def _parse_zw(chunk: str) -> int | None:
    value = 0
    for c in chunk:
        value = value * 6 + _ZW_DIGIT[c]
    if value >> 72:
        return None
    key, check = value >> 8, value & 0xFF
    return key if _zw_check(key) == check else None


def _zw_copies_in_run(run: str) -> tuple[tuple[int, int, int], ...]:
    """(start, end, key) of each verifying copy in a run of the zero-width alphabet."""
    n = len(run)
    if n < ZW_COPY_CHARS:
        return ()
    if n > 4 * ZW_COPY_CHARS:
        starts = [0, n - ZW_COPY_CHARS]  # not ours as a whole: try its ends only
    else:  # aligned to either end (a natural ZWNJ or WJ may be glued to one side)
        starts = sorted(
            set(range(0, n - ZW_COPY_CHARS + 1, ZW_COPY_CHARS))
            | set(range(n - ZW_COPY_CHARS, -1, -ZW_COPY_CHARS))
        )
    out = []
    last_end = 0
    for start in starts:
        if start < last_end:
            continue
        key = _parse_zw(run[start : start + ZW_COPY_CHARS])
        if key is not None:
            out.append((start, start + ZW_COPY_CHARS, key))
            last_end = start + ZW_COPY_CHARS
    return tuple(out)


_vs_cached = lru_cache(maxsize=512)(_vs_copies_in_run)
_zw_cached = lru_cache(maxsize=512)(_zw_copies_in_run)

# -------------------------------------------------- the previous format (read only)

#: two bits per character, in this order (symbol 0..3)
LEGACY_ALPHABET = "\u200b\u200c\u200d\u2060"
#: start of every frame: WJ ZWJ ZWSP WJ (symbols 3 2 0 3)
LEGACY_MARKER = "\u2060\u200d\u200b\u2060"
_LEGACY_ULID = 0x11  # ProduceID is a 128-bit ULID
_LEGACY_ASCII = 0x12  # ProduceID is 1..64 Annex E characters
_LEGACY_CRC_SEED = zlib.crc32(b"GB45438-2025 text watermark v1")
_LEGACY_DIGITS = str.maketrans(LEGACY_ALPHABET, "0123")
_LEGACY_MAX = len(LEGACY_MARKER) + 4 * (2 + _MAX_ASCII_ID + 4)
_LEGACY_MIN = len(LEGACY_MARKER) + 4 * (1 + 1 + 1 + 4)  # shortest: one-char ASCII ID
_LEGACY_RUN_RE = re.compile(f"[{LEGACY_ALPHABET}]{{{len(LEGACY_MARKER)},}}")


def _legacy_bytes(digits: str, start: int, count: int) -> bytes | None:
    end = start + 4 * count
    if end > len(digits):
        return None
    return int(digits[start:end], 4).to_bytes(count, "big")


def _legacy_frame(digits: str, start: int) -> tuple[str, int] | None:
    """(ProduceID, end index) of a frame whose body starts at ``start``, if it verifies."""
    head = _legacy_bytes(digits, start, 2)
    if head is None:
        return None
    if head[0] == _LEGACY_ULID:
        size = 1 + 16
    elif head[0] == _LEGACY_ASCII and 1 <= head[1] <= _MAX_ASCII_ID:
        size = 2 + head[1]
    else:
        return None
    body = _legacy_bytes(digits, start, size)
    crc = _legacy_bytes(digits, start + 4 * size, 4)
    if (
        body is None
        or crc is None
        or int.from_bytes(crc, "big") != zlib.crc32(body, _LEGACY_CRC_SEED)
    ):
        return None
    if head[0] == _LEGACY_ULID:
        produce_id = encode_ulid(int.from_bytes(body[1:], "big"))
    else:
        produce_id = body[2:].decode("ascii", errors="replace")
        if charset_violation(produce_id):
            return None
    return produce_id, start + 4 * (size + 4)


def _legacy_frames_in_run(run: str) -> tuple[tuple[int, int, str | None], ...]:
    """Frames in a run of legacy characters that starts with the marker.

    (start, end, ProduceID or None if damaged), offsets into ``run``. A damaged
    frame spans from its marker to the next intact frame or the end of the run.
    """
    digits = run.translate(_LEGACY_DIGITS) if len(run) >= _LEGACY_MIN else ""
    out: list[tuple[int, int, str | None]] = []
    damaged = -1
    i = 0
    while i >= 0:
        parsed = _legacy_frame(digits, i + len(LEGACY_MARKER))
        if parsed is None:
            # the marker's four characters can also occur inside a frame's body,
            # so look for a later, intact frame in the same run
            damaged = i if damaged < 0 else damaged
            i = run.find(LEGACY_MARKER, i + 1)
            continue
        produce_id, end = parsed
        if damaged >= 0:
            out.append((damaged, i, None))
            damaged = -1
        out.append((i, end, produce_id))
        i = run.find(LEGACY_MARKER, end)
    if damaged >= 0:
        out.append((damaged, len(run), None))
    return tuple(out)


_legacy_cached = lru_cache(maxsize=256)(_legacy_frames_in_run)


def _legacy_scan(text: str) -> Iterator[tuple[int, int, str | None]]:
    """Each legacy frame in ``text``: (start, end, ProduceID or None if damaged)."""
    at = text.find(LEGACY_MARKER)  # a literal search: fast on text without frames
    while at >= 0:
        run_end = _LEGACY_RUN_RE.match(text, at).end()  # type: ignore[union-attr]
        run = text[at:run_end]
        # only frame-sized runs are cached so a hostile text cannot pin megabytes
        small = len(run) <= 4 * _LEGACY_MAX
        frames = _legacy_cached(run) if small else _legacy_frames_in_run(run)
        for start, end, produce_id in frames:
            yield at + start, at + end, produce_id
        at = text.find(LEGACY_MARKER, run_end)


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Copy:
    """One intact copy of the mark found in a text."""

    family: str  # VS_FAMILY, ZW_FAMILY or LEGACY_FAMILY
    key: int  # the 64-bit ledger key
    produce_id: str | None  # when the copy carries the whole ProduceID
    start: int  # character offsets into the text
    end: int


def _spans(text: str) -> Iterator[tuple[int, int, Copy | None]]:
    """Every run of ours in ``text``: (start, end, the copy, or None if damaged)."""
    if not isinstance(text, str):
        return
    for m in VS_RUN_RE.finditer(text):
        run, base = m.group(), m.start()
        found = _vs_cached(run) if len(run) <= _SHORT_RUN else _vs_copies_in_run(run)
        for s, e, key, produce_id in found:
            yield base + s, base + e, Copy(VS_FAMILY, key, produce_id, base + s, base + e)
        if not found and VS_COPY_CHARS - 2 <= len(run) <= _VS_MAX_COPY:
            yield base, m.end(), None  # no text has that many selectors in a row: damaged
    for m in ZW_RUN_RE.finditer(text):
        run, base = m.group(), m.start()
        found = _zw_cached(run) if len(run) <= 4 * ZW_COPY_CHARS else _zw_copies_in_run(run)
        for s, e, key in found:
            yield base + s, base + e, Copy(ZW_FAMILY, key, None, base + s, base + e)
        if not found and ZW_COPY_CHARS - 4 <= len(run) <= 2 * ZW_COPY_CHARS:
            yield base, m.end(), None  # no text has that many of these in a row: damaged
    if LEGACY_MARKER in text:
        for start, end, produce_id in _legacy_scan(text):
            copy = None
            if produce_id is not None:
                copy = Copy(LEGACY_FAMILY, watermark_key(produce_id), produce_id, start, end)
            yield start, end, copy


_ANY_OURS = re.compile(f"[{LEGACY_ALPHABET}{ZW_ALPHABET}\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def copies(text: str) -> list[Copy]:
    """Every intact copy of the mark in ``text``, in text order. Never raises."""
    return sorted((c for _s, _e, c in _spans(text) if c is not None), key=lambda c: c.start)


def keys(text: str) -> list[int]:
    """The distinct ledger keys the intact copies carry, in order of first appearance."""
    return list(dict.fromkeys(c.key for c in copies(text)))


def decode(text: str) -> list[str]:
    """The distinct whole ProduceIDs the text carries, in order of first appearance.

    Only some copies carry the whole ProduceID (the first one of a text, and every
    copy in the previous format); :func:`keys` reads every copy. Never raises.
    """
    return list(dict.fromkeys(c.produce_id for c in copies(text) if c.produce_id))


def visible_text(text: str) -> str:
    """``text`` without our copies (intact or damaged), for searching visible wording.

    For the verifier only. Not a public "strip" feature: Art. 10 of the Measures
    forbids removing implicit labels or offering a tool that does.
    """
    if not isinstance(text, str):
        return ""
    if not _ANY_OURS.search(text):
        return text  # the common case: text that was never labelled
    spans = sorted((s, e) for s, e, _ in _spans(text))
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
# the digit before a separator and the digits after it (ASCII and full-width
# digits; a \\d class is ten times slower on CJK text)
_NUMBER_RE = re.compile(r"[0-9０-９](?:[.,:/\-，．：][0-9０-９]+)+")
_DIGITS = "0123456789０１２３４５６７８９"
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
    # inside a number (1,000.5, 12:30, 2026-12-01, 3.14): digits around a separator
    if any(digit in text for digit in _DIGITS):
        spans.extend((m.start() + 1, m.end() - 1) for m in _NUMBER_RE.finditer(text))
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
    pos = frontmatter.body_start(text)
    if pos:
        spans.append((0, pos, text[pos - 1] == "\n"))
    # literal checks first: most texts have none of these, and `in` is far
    # cheaper than a regex scan
    while "```" in text or "~~~" in text:
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
    for rx, present in (
        (_INDENTED_RE, "    " in text or "\t" in text),
        (_MATH_BLOCK_RE, "$$" in text),
    ):
        for m in rx.finditer(text) if present else ():
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

    def blocked_since(self, pos: int) -> int | None:
        """The first blocked position of the interval holding ``pos``, or None if free."""
        i = bisect.bisect_right(self.starts, pos) - 1
        if i >= 0 and pos <= self.ends[i]:
            return self.starts[i]
        return None

    def blocked_until(self, pos: int) -> int | None:
        """The last blocked position of the interval holding ``pos``, or None if free."""
        i = bisect.bisect_right(self.starts, pos) - 1
        if i >= 0 and pos <= self.ends[i]:
            return self.ends[i]
        return None


# --------------------------------------------------------------- placement

# Where a copy may go. ASCII punctuation counts only with whitespace after it,
# and the copy goes *after* that whitespace (a line broken at the space then
# shows nothing odd); CJK punctuation takes the copy right after it, unless a
# character that may not start a line follows.
_CLOSERS = "\"'”’)\\]"
_NO_LINE_START = "。，、；：！？）】」』》…”’"
_AFTER_ASCII = r"(?:[ \t]+(?=\S)|(?=\r?\n))"
_SENTENCE = (
    rf"[.!?…]+[{_CLOSERS}]*{_AFTER_ASCII}"
    rf"|[。！？]+[」』”’）》】]*(?![{_NO_LINE_START}])"
)
_CLAUSE = rf"[,;:][{_CLOSERS}]*{_AFTER_ASCII}|[，、；：）】」』》]+(?![{_NO_LINE_START}])"
_SPACE = r"(?<=\S)[ \t]+(?=\S)"
#: boundary kinds, best first; each match's end is the insertion position. The
#: leading lookahead on the first character's class lets the regex engine pass
#: over most positions at once (two to three times faster on prose)
_BOUNDARIES = tuple(
    re.compile(f"(?={first})(?:{p})")
    for first, p in (
        ("[.!?…。！？]", _SENTENCE),
        ("[,;:，、；：）】」』》]", _CLAUSE),
        ("[ \t]", _SPACE),
    )
)
# last resort: at the end of a word, before its space (a URL may follow the space)
_FALLBACKS = (*_BOUNDARIES, re.compile(r"(?<=\S)(?=[ \t]+\S)"))
#: the characters a match of each kind starts at
_FIRST_CHARS = dict(
    zip(_FALLBACKS, (".!?…。！？", ",;:，、；：）】」』》", " \t", " \t"), strict=True)
)
#: the first copy of a paragraph goes within this many characters of its start
_FIRST_WINDOW = 120


def _is_ideograph(c: str) -> bool:
    o = ord(c)
    return (
        0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x3FFFF
    )


def _is_pictograph(c: str) -> bool:
    """Emoji and symbols with emoji or text presentation variants."""
    o = ord(c)
    return (
        0x1F000 <= o <= 0x1FAFF
        or 0x2190 <= o <= 0x2BFF  # arrows, technical symbols, dingbats, ...
        or o in (0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D, 0x3297, 0x3299)
        or unicodedata.category(c) == "So"
    )


# a selector or joiner: the previous character belongs to a sequence
_SEQUENCE_PARTS = frozenset("\u200d\u20e3") | frozenset(VS_CHARS)


def _room(text: str, at: int) -> tuple[bool, bool]:
    """(a selector copy may go at ``at``, a zero-width copy may go there)."""
    if 0 < at < len(text) and (text[at] < "\xa0" or "\u4e00" <= text[at] <= "\u9fff"):
        prev = text[at - 1]
        if prev < "\xa0" or prev in _CJK_PUNCTUATION:
            return True, True  # the common cases, without a Unicode database lookup
    nxt = text[at] if at < len(text) else ""
    if nxt and (unicodedata.category(nxt)[0] == "M" or nxt in _SEQUENCE_PARTS):
        return False, False  # it would part a mark or a selector from its base
    prev = text[at - 1] if at else ""
    if not prev:
        return True, True
    if unicodedata.category(prev)[0] == "M" or prev in _SEQUENCE_PARTS or _is_pictograph(prev):
        return False, False  # after a combining mark or inside an emoji sequence
    return not _is_ideograph(prev), True


#: punctuation a copy follows in CJK text: no variation sequences, no marks
_CJK_PUNCTUATION = frozenset("。，、；：！？）】」』》…”’")


def _allowed(text: str, at: int, bad: _Forbidden) -> bool:
    return bad.blocked_until(at) is None and any(_room(text, at))


def _last_allowed(rx: re.Pattern[str], text: str, lo: int, hi: int, bad: _Forbidden) -> int:
    """The last allowed insertion position ``rx`` finds with ``lo <= end <= hi``, or -1.

    Scans backwards from ``hi`` for the characters a match of ``rx`` starts with
    (``str.rfind`` runs in C), and tries ``rx`` only there: a forward regex scan
    of the window cost most of the time of labelling a short text.
    """
    firsts = _FIRST_CHARS[rx]
    floor = max(0, lo - 8)  # a match may start a little before lo and end after it
    pos = min(len(text), hi + 1)
    while pos > floor:
        start = max(text.rfind(c, floor, pos) for c in firsts)
        if start < 0:
            return -1
        since = bad.blocked_since(start)
        if since is not None and bad.blocked_until(start + 1) is not None:
            pos = since  # inside code or a URL: skip the whole region at once
            continue
        m = rx.match(text, start)
        if m is not None and lo <= m.end() <= hi and _allowed(text, m.end(), bad):
            return m.end()
        pos = start
    return -1


def _first_allowed(rx: re.Pattern[str], text: str, pos: int, end: int, bad: _Forbidden) -> int:
    """First allowed insertion position found by ``rx`` in ``text[pos:end]``, or -1."""
    while pos < end:
        m = rx.search(text, pos, end)
        if m is None:
            return -1
        blocked = bad.blocked_until(m.end())
        if blocked is None and any(_room(text, m.end())):
            return m.end()
        pos = max(blocked if blocked is not None else 0, m.start() + 1)
    return -1


def _first_of_any(text: str, pos: int, end: int, bad: _Forbidden) -> int:
    """The nearest allowed boundary of any kind after ``pos``, or -1.

    Kinds are searched separately (an alternation would report only the first
    kind matching at a place, which may be blocked while another is not), first
    nearby, so a kind that never occurs does not make each call scan to the end.
    """
    for limit in (min(end, pos + 2 * _FIRST_WINDOW), end):
        found = [at for rx in _FALLBACKS if (at := _first_allowed(rx, text, pos, limit, bad)) >= 0]
        if found:
            return min(found)
    return -1


def _best_in(text: str, lo: int, hi: int, bad: _Forbidden) -> int:
    """The last boundary of the best kind in ``[lo, hi]``, or -1."""
    for rx in _BOUNDARIES:
        at = _last_allowed(rx, text, lo, hi, bad)
        if at >= 0:
            return at
    return -1


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


class _Plan:
    """Where copies go and which families each spot gets.

    ``every`` bounds the distance, in characters of the labelled text, from the
    text's start to the first selector copy, between the starts of two
    consecutive ones and from the last one to the end, so that any excerpt of
    ``every`` characters holds a whole one. The zero-width copies ride along
    at the first spot and then about every ``zero_width_every`` characters.
    """

    def __init__(
        self, text: str, bad: _Forbidden, every: int, zero_width_every: int, full_chars: int
    ) -> None:
        self.text, self.bad = text, bad
        self.every, self.zero_width_every = every, zero_width_every
        self.full_chars = full_chars  # the first selector copy carries the whole ProduceID
        self.used = 0  # invisible characters planned so far
        self.fixed = 0  # of which the first spot's
        self.spots: list[tuple[int, bool, bool]] = []  # (position, selector copy, zero-width)
        self.anchor = 0  # where the spacing counts from: the last selector copy
        self.has_vs = False
        self.last_zw = -1
        self.tail = 0  # invisible characters at the anchor

    def gap(self) -> int:
        """Visible characters allowed from the anchor to the next selector copy."""
        return max(20, self.every - 1 - VS_COPY_CHARS - self.tail)

    def add(self, at: int) -> None:
        vs_ok, zw_ok = _room(self.text, at)
        zw = zw_ok and (self.last_zw < 0 or at - self.last_zw >= self.zero_width_every or not vs_ok)
        self.spots.append((at, vs_ok, zw))
        if zw:
            self.last_zw = at
        if vs_ok:
            copy = VS_COPY_CHARS if self.has_vs else self.full_chars
            self.anchor, self.has_vs = at, True
            self.tail = copy + (ZW_COPY_CHARS if zw else 0)
        self.used += (self.tail if vs_ok else 0) + (ZW_COPY_CHARS if zw and not vs_ok else 0)
        if len(self.spots) == 1:  # the first spot's copies are the price of any mark at all
            self.fixed = self.used

    def fill(self, until: int) -> None:
        """Copies after the anchor while ``until`` is further than the spacing allows."""
        text, bad = self.text, self.bad
        while until - self.anchor > self.gap():
            floor = self.anchor + 1 if self.has_vs else self.anchor
            hi = self.anchor + self.gap()
            at = _best_in(text, max(floor, self.anchor + self.gap() // 2), hi, bad)
            if at < 0:  # no sentence, clause or space in the second half: anything before hi
                at = max((_last_allowed(rx, text, floor, hi, bad) for rx in _FALLBACKS), default=-1)
            if at < 0:  # a long URL or code block: the first place after it
                at = _first_of_any(text, hi, until, bad)
            if at < floor or at >= until:
                return
            self.add(at)

    def paragraph(self, start: int, end: int) -> None:
        """A copy in ``text[start:end]`` unless the spacing already put one there."""
        if self.has_vs and self.anchor >= start:  # spots come in order: the last tells
            return
        at = _best_in(self.text, start, end, self.bad)  # the last good boundary
        if at < 0:
            at = _first_of_any(self.text, start, end, self.bad)
        if at < 0 and _allowed(self.text, end, self.bad):
            at = end  # no boundary at all: after the paragraph's last character
        if at >= 0 and (not self.spots or at > self.spots[-1][0]):
            self.add(at)


def _plan(
    text: str,
    every: int,
    zero_width_every: int,
    paragraph_chars: int,
    budget: float,
    full_chars: int,
) -> list[tuple[int, bool, bool]]:
    """(position, selector copy?, zero-width copy?) for each spot that gets a copy.

    The spacing rule places copies through the prose. A paragraph it left without
    one gets one of its own when it is at least ``paragraph_chars`` long, or at
    least :data:`SHORT_PARAGRAPH_CHARS` long and the copies after the first spot
    stay within ``budget`` (a share of the text) with it; the first paragraph
    that long always does.
    """
    blocks = _block_spans(text)
    block_intervals = [(s, e - 1 if end_ok else e) for s, e, end_ok in blocks]
    bad = _Forbidden(block_intervals + _inline_spans(text))
    paragraphs = list(_prose_paragraphs(text, blocks))
    plan = _Plan(text, bad, every, zero_width_every, full_chars)
    for start, end in paragraphs:
        plan.fill(end + 1)
        size = end - start
        if size >= paragraph_chars or (
            size >= SHORT_PARAGRAPH_CHARS
            and (
                not plan.spots
                or plan.used - plan.fixed + VS_COPY_CHARS <= budget * (end + plan.used)
            )
        ):
            plan.paragraph(start, end)
    if plan.spots:
        return plan.spots
    # a short text: one copy in its longest paragraph that has room (the body, not
    # a label line); a text of nothing but headings may carry it in one
    relaxed = _Forbidden(block_intervals + _inline_spans(text, headings=False))
    longest_first = sorted(paragraphs, key=lambda p: p[0] - p[1])
    for forbidden in (bad, relaxed):
        for start, end in longest_first:
            plan = _Plan(text, forbidden, every, zero_width_every, full_chars)
            plan.paragraph(start, end)
            if plan.spots:
                return plan.spots[:1]
    return []


def embed(
    text: str,
    produce_id: str,
    *,
    every: int = EVERY,
    zero_width_every: int = ZERO_WIDTH_EVERY,
    paragraph_chars: int = MIN_PARAGRAPH_CHARS,
    budget: float = BUDGET,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """``text`` carrying the mark of ``produce_id``: any ``every`` characters hold a copy.

    The density: ``every`` (the excerpt length that always holds a selector
    copy), ``zero_width_every`` (spacing of the zero-width copies, the ones
    that survive deleting every variation selector) and ``paragraph_chars``
    (a paragraph at least this long gets a copy of its own even where the
    spacing would not put one) with ``budget`` (shorter paragraphs get one while
    the copies stay within this share of the text). Any mark already in the text is replaced (one
    ProduceID per text). Raises
    :class:`InvalidRecord` for a ProduceID outside the Annex E charset or longer
    than 64 characters, :class:`InvalidOption` for a silly density, and
    :class:`LimitExceeded` for text over ``limits.max_text_chars``.
    """
    if not isinstance(text, str):
        raise InvalidOption("text must be a string")
    limits.check("max_text_chars", len(text), "the text")
    if not 100 <= every <= 100_000:
        raise InvalidOption(f"text mark spacing must be 100..100000 characters, not {every}")
    if not 1 <= paragraph_chars <= 100_000:
        raise InvalidOption(f"paragraph length must be 1..100000 characters, not {paragraph_chars}")
    if not 0 <= budget <= 1:
        raise InvalidOption(f"the text mark budget is a share of the text, 0..1, not {budget}")
    if not every <= zero_width_every <= 1_000_000:
        raise InvalidOption(
            f"zero-width copy spacing must be {every}..1000000 characters, not {zero_width_every}"
        )
    full = _full_copy(produce_id)
    key = watermark_key(produce_id)
    compact, zero_width = _key_copy(key), _zw_copy(key)
    text = visible_text(text)
    if not text.strip():
        return text  # nothing a reader could copy, nothing to carry the mark
    out, prev = [], 0
    first = True
    plan = _plan(text, every, zero_width_every, paragraph_chars, budget, len(full))
    for at, vs, zw in plan:
        out.append(text[prev:at])
        if vs:
            out.append(full if first else compact)
            first = False
        if zw:
            out.append(zero_width)
        prev = at
    out.append(text[prev:])
    return "".join(out)
