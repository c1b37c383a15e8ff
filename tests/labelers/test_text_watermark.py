"""The invisible text mark: cost, what survives, what is rejected, where it never goes."""

from __future__ import annotations

import html
import re
import unicodedata
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelers.errors import InvalidOption, InvalidRecord, LimitExceeded
from labelers.limits import Limits
from labelers.record import new_produce_id
from labelers.watermark import watermark_key
from labelers.watermark.text import (
    BUDGET,
    EVERY,
    LEGACY_FAMILY,
    MIN_PARAGRAPH_CHARS,
    VS_COPY_CHARS,
    VS_FAMILY,
    ZW_COPY_CHARS,
    ZW_FAMILY,
    copies,
    decode,
    embed,
    keys,
    visible_text,
)
from tests.text_samples import PROSE, SAMPLES

PID = "01JD8Z5K3M7Q2R4T6V8W0XYZAB"  # a ULID (fixed, so damage tests are deterministic)
KEY = watermark_key(PID)

# Independent definitions of the two families, from the Unicode charts (not the
# module's constants): what a sanitiser deleting "zero-width characters" or
# "variation selectors" deletes.
VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u180e]")
INVISIBLE = re.compile(f"{VARIATION_SELECTORS.pattern}|{ZERO_WIDTH.pattern}")


def middle_excerpt(text: str, size: int = 300) -> str:
    mid = len(text) // 2
    return text[mid - size // 2 : mid + size // 2]


TRANSFORMS = {
    "nfc": lambda t: unicodedata.normalize("NFC", t),
    "nfkc": lambda t: unicodedata.normalize("NFKC", t),
    "strip-zero-width": lambda t: ZERO_WIDTH.sub("", t),
    "strip-variation-selectors": lambda t: VARIATION_SELECTORS.sub("", t),
    "html-escape": html.escape,
    "html-escape-unescape": lambda t: html.unescape(html.escape(t)),
    "whitespace-collapse": lambda t: " ".join(t.split()),
    "whitespace-regex": lambda t: re.sub(r"\s+", " ", t),
    "excerpt-300-middle": middle_excerpt,
    "gb18030-round-trip": lambda t: t.encode("gb18030").decode("gb18030"),
}


@pytest.fixture(scope="module")
def marked() -> dict[str, str]:
    return {name: embed(text, PID) for name, text in SAMPLES.items()}


# ------------------------------------------------------------- the table


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("sample", SAMPLES)
def test_mark_is_found_after(sample: str, transform: str, marked: dict[str, str]) -> None:
    after = TRANSFORMS[transform](marked[sample])
    assert keys(after) == [KEY]


@pytest.mark.parametrize("sample", SAMPLES)
def test_character_overhead_at_the_default_density(sample: str, marked: dict[str, str]) -> None:
    text = SAMPLES[sample]
    overhead = (len(marked[sample]) - len(text)) / len(text)
    assert overhead <= 0.08, f"{sample}: {overhead:.1%}"  # the previous format: 76%
    assert visible_text(marked[sample]) == text
    assert INVISIBLE.sub("", marked[sample]) == INVISIBLE.sub("", text)


@pytest.mark.parametrize("sample", PROSE)
def test_any_300_character_excerpt_of_prose_carries_a_copy(
    sample: str, marked: dict[str, str]
) -> None:
    text = marked[sample]
    for start in range(0, len(text) - EVERY + 1, 3):
        assert keys(text[start : start + EVERY]) == [KEY], start


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_paragraph_of_prose_carries_a_copy(sample: str, marked: dict[str, str]) -> None:
    in_fence = False
    for paragraph in marked[sample].split("\n\n"):
        shown = visible_text(paragraph)
        fenced = in_fence or shown.lstrip().startswith("```")
        in_fence ^= shown.count("```") % 2 == 1
        prose = not shown.lstrip().startswith(("#", "    ", "---", "- "))
        if len(shown.strip()) >= MIN_PARAGRAPH_CHARS and prose and not fenced:
            assert keys(paragraph) == [KEY], shown[:40]


def test_short_paragraphs_get_copies_within_the_budget() -> None:
    text = SAMPLES["chinese-prose"]  # paragraphs of about 110 characters
    counts = {}
    for budget in (0.0, BUDGET, 1.0):
        marked = embed(text, PID, budget=budget)
        counts[budget] = sum(bool(keys(p)) for p in marked.split("\n\n"))
        if budget <= BUDGET:
            assert len(marked) - len(text) <= 0.08 * len(text)
    assert counts[0.0] < counts[BUDGET] < counts[1.0] == len(text.split("\n\n"))


def test_every_paragraph_gets_a_copy_when_asked() -> None:
    text = SAMPLES["chinese-prose"]
    marked = embed(text, PID, paragraph_chars=20)
    paragraphs = marked.split("\n\n")
    assert len(paragraphs) > 8 and all(keys(p) == [KEY] for p in paragraphs if p.strip())
    assert len(marked) > len(embed(text, PID))  # the price: more copies


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_family_alone_carries_the_mark(sample: str, marked: dict[str, str]) -> None:
    found = copies(marked[sample])
    assert {c.family for c in found} == {VS_FAMILY, ZW_FAMILY}
    assert {c.key for c in found} == {KEY}
    only_zw = copies(VARIATION_SELECTORS.sub("", marked[sample]))
    only_vs = copies(ZERO_WIDTH.sub("", marked[sample]))
    assert only_zw and {c.family for c in only_zw} == {ZW_FAMILY}
    assert only_vs and {c.family for c in only_vs} == {VS_FAMILY}


def test_removing_only_u200b_removes_nothing(marked: dict[str, str]) -> None:
    # the sanitiser step that destroyed every copy of the previous format
    for text in marked.values():
        assert text.replace("\u200b", "") == text


def test_copies_are_a_dozen_characters_or_fewer() -> None:
    text = "\n\n".join(SAMPLES[name] for name in PROSE)
    found = copies(embed(text, PID))
    vs = [c for c in found if c.family == VS_FAMILY]
    assert vs[0].produce_id == PID and vs[0].end - vs[0].start == 19  # the one whole ProduceID
    assert {c.end - c.start for c in vs[1:]} == {VS_COPY_CHARS} == {9}
    assert all(c.produce_id is None for c in vs[1:])
    assert {c.end - c.start for c in found if c.family == ZW_FAMILY} == {ZW_COPY_CHARS} == {28}


def test_a_selector_copy_starts_with_a_selector_that_only_ideographs_use() -> None:
    marked = embed("\n\n".join(SAMPLES[name] for name in PROSE), PID)
    for c in copies(marked):
        if c.family == VS_FAMILY:
            assert 0xE0100 <= ord(marked[c.start]) <= 0xE01EF
            before = marked[c.start - 1]
            assert not unicodedata.name(before, "").startswith("CJK UNIFIED IDEOGRAPH")


def test_density_is_configurable() -> None:
    text = SAMPLES["english-prose"]
    dense, sparse = embed(text, PID, every=150), embed(text, PID, every=1000)
    assert len(dense) > len(embed(text, PID)) > len(sparse)
    for start in range(0, len(dense) - 150, 11):
        assert keys(dense[start : start + 150]) == [KEY], start
    more_zw = embed(text, PID, zero_width_every=300)
    assert sum(c.family == ZW_FAMILY for c in copies(more_zw)) > sum(
        c.family == ZW_FAMILY for c in copies(embed(text, PID))
    )


def test_round_trip_with_a_minted_ulid_keeps_the_visible_text() -> None:
    pid = new_produce_id()
    text = SAMPLES["english-prose"]
    out = embed(text, pid)
    assert decode(out) == [pid]
    assert keys(out) == [watermark_key(pid)]
    assert visible_text(out) == text


def test_unmarked_text_has_no_copies() -> None:
    for text in SAMPLES.values():
        assert copies(text) == [] and decode(text) == [] and keys(text) == []
    assert copies("") == []


# ------------------------------------------------- the previous format (read only)


def legacy_frame(produce_id: str) -> str:
    """The previous format, written here from its description (not by the module)."""
    alphabet = "\u200b\u200c\u200d\u2060"
    raw = produce_id.encode("ascii")
    body = bytes([0x12, len(raw)]) + raw
    body += zlib.crc32(body, zlib.crc32(b"GB45438-2025 text watermark v1")).to_bytes(4, "big")
    return "\u2060\u200d\u200b\u2060" + "".join(
        alphabet[(b >> shift) & 3] for b in body for shift in (6, 4, 2, 0)
    )


def test_the_previous_format_is_still_read() -> None:
    old = "Labelled last month. " + legacy_frame("OLD-ID-7") + "It still verifies."
    (found,) = copies(old)
    assert found.family == LEGACY_FAMILY and found.produce_id == "OLD-ID-7"
    assert found.key == watermark_key("OLD-ID-7")
    assert decode(old) == ["OLD-ID-7"]
    assert visible_text(old) == "Labelled last month. It still verifies."
    relabelled = embed(old, PID)  # relabelling replaces the old mark
    assert decode(relabelled) == [PID] and keys(relabelled) == [KEY]


# ---------------------------------------------------------- where it never goes

MARKDOWN = """---
title: Notes on labelling, with commas. And sentences.
tags: [ai, text]
---

# Release notes for the labelling service, version one

The service labels text, images and documents. It adds a visible notice, an invisible
mark and a metadata record. See https://example.com/docs/labelling?lang=en. For help,
write to support@example.com, or visit www.example.org/help today. Version 2.31.7 of
the client costs 1,299.50 yuan, ships on 2026-12-01 at 09:30, and is 3.5 times faster.

Call `embed(text, produce_id)` to mark text, and ``decode(`marked`)`` to read it back.
Links like [the guide](docs/guide.md#part-two) keep their destinations, and so do
<https://example.net/a b> autolinks and <span class="note, x">inline HTML</span> tags.

```python
def hello(name: str) -> str:
    # A comment. With two sentences, and a comma.
    return f"Hello, {name}. How are you?"
```

~~~
Plain fenced block. Sentence two, clause three: done.
~~~

    Indented code. It has sentences, commas and spaces too.
    Second line of indented code, still code.

| column one, with comma | column two. Sentence |
|------------------------|----------------------|
| cell text, more text.  | another cell, here.  |

Math like $$a + b. c, d$$ and $x, y$ stays intact. The final paragraph ends here, and it
goes on for a while so that it is long enough to need a copy of its own. It says little.
"""

PROTECTED = [
    "---\ntitle: Notes on labelling, with commas. And sentences.\ntags: [ai, text]\n---\n",
    "# Release notes for the labelling service, version one\n",
    "https://example.com/docs/labelling?lang=en.",
    "support@example.com,",
    "www.example.org/help",
    "2.31.7",
    "1,299.50",
    "2026-12-01",
    "09:30",
    "3.5",
    "`embed(text, produce_id)`",
    "``decode(`marked`)``",
    "(docs/guide.md#part-two)",
    "<https://example.net/a b>",
    '<span class="note, x">',
    "```python\ndef hello(name: str) -> str:\n    # A comment. With two sentences, and a comma.\n"
    '    return f"Hello, {name}. How are you?"\n```\n',
    "~~~\nPlain fenced block. Sentence two, clause three: done.\n~~~\n",
    "    Indented code. It has sentences, commas and spaces too.\n"
    "    Second line of indented code, still code.\n",
    "|------------------------|----------------------|\n",
    "$$a + b. c, d$$",
    "$x, y$",
]


@pytest.mark.parametrize("every", [100, EVERY])
def test_markdown_code_urls_numbers_and_front_matter_get_no_copy(every: int) -> None:
    marked = embed(MARKDOWN, PID, every=every)
    assert keys(marked) == [KEY]
    assert visible_text(marked) == MARKDOWN
    assert marked.startswith(PROTECTED[0])  # front matter still opens the file
    for snippet in PROTECTED:
        assert snippet in MARKDOWN
        # still present character for character: nothing was inserted inside it,
        # and nothing glued onto its end (a linkifier would swallow it into the URL)
        assert snippet in marked, snippet
        at = marked.index(snippet)
        after = marked[at + len(snippet) : at + len(snippet) + 1]
        assert not INVISIBLE.match(after) or snippet[-1] == "\n", snippet


def runs(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(f"(?:{INVISIBLE.pattern})+", text)]


def test_a_copy_never_splits_a_word_or_joins_cjk_or_cjk_and_latin() -> None:
    text = "\n\n".join(
        [*SAMPLES.values(), MARKDOWN, "使用Python编程很方便，我们用它写了一个小工具。" * 20]
    )
    marked = embed(text, PID, every=100)
    cjk = re.compile(r"[\u3400-\u9fff]")
    for start, end in runs(marked):
        before, after = marked[start - 1 : start], marked[end : end + 1]
        assert not (before.isalnum() and after.isalnum()), (before, after)
        assert not cjk.match(before) and not (cjk.match(after) and before.isalnum())
        # ASCII punctuation keeps its space before the copy
        if before in ".,;:!?":
            assert after in ("", "\n", "\r")


def test_never_after_an_emoji_or_a_combining_mark_nor_inside_a_sequence() -> None:
    text = (
        "The family 👨\u200d👩\u200d👧 arrived. A heart ❤\ufe0f followed, then 1\ufe0f\u20e3 "
        "and 葛\U000e0100 in a name. Café and cafe\u0301 are spelt two ways. 👍 Great! "
        "Persian: می\u200cخواهم, which means I want. Arabic: مرحبا بالعالم، كيف حالك؟ جيد. "
    ) * 8
    marked = embed(text, PID, every=100)
    assert keys(marked) == [KEY] and visible_text(marked) == text
    for natural in (
        "👨\u200d👩\u200d👧",
        "❤\ufe0f",
        "1\ufe0f\u20e3",
        "葛\U000e0100",
        "می\u200cخواهم",
    ):
        assert marked.count(natural) == text.count(natural)
    for start, end in runs(marked):
        if not any(start <= c.start < end for c in copies(marked)):
            continue  # a natural sequence's own selector or joiner
        before = marked[start - 1]
        assert unicodedata.category(before)[0] != "M" and unicodedata.category(before) != "So"
        assert not ("\U0001f000" <= before <= "\U0001faff") and before not in "\ufe0f\u20e3\u200d"


def test_unclosed_fence_is_code_to_the_end() -> None:
    text = SAMPLES["english-prose"][:400] + "\n\n```\nunclosed code. With sentences, and commas."
    marked = embed(text, PID)
    assert not INVISIBLE.search(marked[marked.index("```") :])
    assert keys(marked) == [KEY]


def test_text_that_is_only_code_is_left_alone() -> None:
    text = "```\nprint('hello, world. again')\n```"
    assert embed(text, PID) == text


def test_natural_invisible_characters_are_kept_and_not_read_as_ours() -> None:
    text = "A family 👨\u200d👩\u200d👧 came by. 葛\U000e0100城 is a name. Persian: می\u200cخواهم."
    assert copies(text) == [] and visible_text(text) == text
    marked = embed(text, PID)
    assert keys(marked) == [KEY] and visible_text(marked) == text


# ------------------------------------------------------------ damage rejected


def test_any_single_damage_to_the_whole_id_copy_rejects_it() -> None:
    marked = embed("Hello there, reader.", "client-chosen_ID.42", zero_width_every=10_000)
    (vs,) = [c for c in copies(marked) if c.family == VS_FAMILY]
    stripped = ZERO_WIDTH.sub("", marked)
    start = stripped.index(marked[vs.start : vs.end])
    end = start + vs.end - vs.start
    for i in range(start, end):
        assert decode(stripped[:i] + stripped[i + 1 :]) == []  # a character lost
        for other in ("\ufe00", "\U000e0100", "\U000e01ef"):
            if other != stripped[i]:
                assert decode(stripped[:i] + other + stripped[i + 1 :]) == []


def test_damaged_compact_copies_are_almost_always_rejected() -> None:
    text = SAMPLES["english-prose"]
    marked = ZERO_WIDTH.sub("", embed(text, PID))
    compact = next(c for c in copies(marked) if c.produce_id is None)
    wrong = tried = 0
    for i in range(compact.start, compact.end):
        for byte in range(0, 256, 5):
            char = chr(0xFE00 + byte) if byte < 16 else chr(0xE0100 + byte - 16)
            if char == marked[i]:
                continue
            damaged = marked[:i] + char + marked[i + 1 :]
            tried += 1
            wrong += any(k != KEY for k in keys(damaged))
    assert wrong <= tried * 2 / 240  # an 8-bit check (and the ledger must then match too)


def test_copies_that_disagree_are_each_reported() -> None:
    pasted = (
        embed(SAMPLES["english-prose"][:600], "FIRST")
        + "\n\n"
        + embed(SAMPLES["chinese-prose"], PID)
    )
    assert keys(pasted) == [watermark_key("FIRST"), KEY]
    assert decode(pasted) == ["FIRST", PID]


# ------------------------------------------------------------ ProduceID forms


@pytest.mark.parametrize(
    "produce_id",
    [
        "a",
        "my-client-id_0042",
        "01jd8z5k3m7q2r4t6v8w0xyzab",  # a lower-case ULID is a different string: kept as typed
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",  # 26 Crockford characters but not a ULID (too big)
        '!"#$%&()*+,-./09:;<=>?@AZ[]^_`az{|}~',  # every kind of Annex E character
        "x" * 64,
    ],
)
def test_client_chosen_ids_round_trip_exactly(produce_id: str) -> None:
    text = SAMPLES["chinese-prose"]
    out = embed(text, produce_id)
    assert decode(out) == [produce_id]
    assert keys(out) == [watermark_key(produce_id)]
    assert visible_text(out) == text


@pytest.mark.parametrize(
    "produce_id", ["", "has space", "back\\slash", "中文编号", "tab\tid", "x" * 65]
)
def test_ids_outside_annex_e_or_too_long_are_refused(produce_id: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        embed("Some text to mark, long enough.", produce_id)
    assert "ProduceID" in err.value.detail


def test_options_and_limits_are_checked() -> None:
    with pytest.raises(LimitExceeded):
        embed("x" * 11, PID, limits=Limits(max_text_chars=10))
    with pytest.raises(InvalidOption):
        embed("Some text.", PID, every=5)
    with pytest.raises(InvalidOption):
        embed("Some text.", PID, every=300, zero_width_every=100)
    with pytest.raises(InvalidOption):
        embed("Some text.", PID, paragraph_chars=0)
    with pytest.raises(InvalidOption):
        embed("Some text.", PID, budget=2)


def test_relabelling_replaces_the_old_mark_and_is_idempotent() -> None:
    text = SAMPLES["markdown"]
    first = embed(text, PID)
    second = embed(first, "NEW-ID-1")
    assert decode(second) == ["NEW-ID-1"] and keys(second) == [watermark_key("NEW-ID-1")]
    assert visible_text(second) == text
    assert embed(second, PID) == first


# ------------------------------------------------------------ short and empty


def test_empty_and_blank_text_are_returned_unchanged() -> None:
    assert embed("", PID) == ""
    assert embed(" \n\n ", PID) == " \n\n "


@pytest.mark.parametrize("text", ["Hi", "好", "OK.", "Yes!\n", "# Title", "见 https://a.cn"])
def test_very_short_text_still_carries_the_mark(text: str) -> None:
    marked = embed(text, PID)
    assert keys(marked) == [KEY]
    assert visible_text(marked) == text


def test_a_short_text_carries_it_in_its_body_not_its_label_lines() -> None:
    text = "【人工智能生成】\n\n今天的天气很好。We went for a walk.\n\n（本内容由人工智能生成）"
    marked = embed(text, PID)
    assert marked.startswith("【人工智能生成】\n\n") and marked.endswith(
        "\n\n（本内容由人工智能生成）"
    )
    assert keys(marked) == [KEY]


# ---------------------------------------------------------------- never raises

NASTY = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            list("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufe00\ufe0f\U000e0100\U000e01ef")
            + list(" \n\t.,。`~$<>[]()@:/#-|")
        ),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(NASTY)
def test_readers_never_raise_on_arbitrary_text(text: str) -> None:
    assert isinstance(copies(text), list) and isinstance(decode(text), list)
    assert isinstance(visible_text(text), str)


@settings(max_examples=150, deadline=None)
@given(NASTY.map(visible_text))
def test_embed_on_arbitrary_text_keeps_it_and_marks_it_when_there_is_room(text: str) -> None:
    marked = embed(text, PID, every=100)
    assert visible_text(marked) == text
    assert keys(marked) in ([KEY], [])
    if text.strip() and not keys(marked):
        assert marked == text  # no safe place at all: the text is not touched


def test_hostile_runs_of_invisible_characters_are_read_in_bounded_work() -> None:
    for char in ("\U000e0150", "\ufe01", "\u2061", "\u200c"):
        text = "x" + char * 200_000 + "y"
        assert copies(text) == [] and visible_text(text) == text
