"""The invisible text watermark: what survives copying, what is rejected, where it never goes."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelers.errors import InvalidOption, InvalidRecord, LimitExceeded
from labelers.limits import Limits
from labelers.record import new_produce_id
from labelers.watermark.text import (
    ALPHABET,
    MARKER,
    MIN_PARAGRAPH_CHARS,
    REPEAT_EVERY,
    decode,
    embed,
    visible_text,
)

PID = "01JD8Z5K3M7Q2R4T6V8W0XYZAB"  # a ULID (fixed, so damage tests are deterministic)
PAYLOAD = re.compile(f"[{ALPHABET}]+")

ENGLISH = [
    "Large language models write text one token at a time. Each token is chosen from a "
    "probability distribution, and the choice depends on everything written so far.",
    "Labelling such text matters because readers cannot tell it apart from human writing. "
    "The rules ask for a visible notice and an invisible mark; this test covers the mark.",
    "A third paragraph, so there is a middle one to copy on its own. It says nothing new, "
    "but it says it at some length, which is what copied paragraphs usually do.",
]
CHINESE = (
    "人工智能生成的内容需要添加标识。显式标识让读者一眼就能看到，隐式标识则写在文件的元数据里，"
    "或者以不可见的方式嵌入文本之中。平台在传播内容时，应当检查这些标识，并在必要时补充自己的传播信息。"
)
MIXED = "\n\n".join(
    [ENGLISH[0], CHINESE, "混合段落：The model (模型) wrote this, 然后我们检查它。It works！"]
)


def payload_runs(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in PAYLOAD.finditer(text)]


def long_paragraph(chars: int) -> str:
    sentences = [
        "The committee met on Tuesday to review the draft.",
        "Several members asked for clearer wording in section four, and the chair agreed.",
        "A revised version will circulate next week.",
        "Comments are due by the end of the month; late ones may not be considered.",
    ]
    out: list[str] = []
    i = 0
    while sum(len(s) + 1 for s in out) < chars:
        out.append(sentences[i % len(sentences)])
        i += 1
    return " ".join(out)


# ------------------------------------------------------------------ round trip


def test_round_trip_with_a_minted_ulid_keeps_the_visible_text() -> None:
    pid = new_produce_id()
    text = "\n\n".join(ENGLISH)
    marked = embed(text, pid)
    assert marked != text
    assert decode(marked) == [pid]
    assert visible_text(marked) == text


def test_decode_on_unmarked_text_finds_nothing() -> None:
    assert decode("\n\n".join(ENGLISH)) == []
    assert decode("") == []


def test_a_ulid_frame_is_compact() -> None:
    marked = embed("Short text, one copy.", PID)
    (run,) = [marked[s:e] for s, e in payload_runs(marked)]
    assert len(run) == 88  # 4 marker + 4 x (type + 16 bytes + CRC-32)


# ---------------------------------------------------------- survives copying


def test_survives_whitespace_collapsing() -> None:
    marked = embed(MIXED, PID)
    assert decode(" ".join(marked.split())) == [PID]
    assert decode(re.sub(r"\s+", " ", marked)) == [PID]
    assert decode(marked.replace("\n", "\r\n")) == [PID]


def test_each_paragraph_copied_on_its_own_carries_the_id() -> None:
    marked = embed("\n\n".join(ENGLISH), PID)
    paragraphs = marked.split("\n\n")
    assert len(paragraphs) == 3
    for paragraph in paragraphs:
        assert decode(paragraph) == [PID]
    assert decode(paragraphs[1]) == [PID]  # the middle one, cut out alone


def test_a_long_paragraph_repeats_the_mark_so_any_excerpt_carries_it() -> None:
    text = long_paragraph(4000)
    marked = embed(text, PID)
    runs = payload_runs(marked)
    assert len(runs) >= 4000 // REPEAT_EVERY - 1
    # any excerpt of about two spacings (measured in visible characters) holds a whole copy
    excerpt_len = 2 * REPEAT_EVERY + 200 + 2 * 88
    for start in range(0, len(marked) - excerpt_len, 97):
        assert decode(marked[start : start + excerpt_len]) == [PID], start


def test_chinese_and_mixed_text() -> None:
    marked = embed(MIXED, PID)
    assert decode(marked) == [PID]
    for paragraph in marked.split("\n\n"):
        assert decode(paragraph) == [PID]
    assert visible_text(marked) == MIXED
    # in Chinese the copy sits after punctuation, never before a closing mark
    for start, end in payload_runs(marked):
        if start and "\u4e00" <= marked[start - 1] <= "\u9fff":
            continue  # between two ideographs is allowed as a last resort
        assert marked[end : end + 1] not in set("。，、；：！？）】」』》")


def test_long_chinese_paragraph_without_spaces_repeats() -> None:
    text = CHINESE * 30
    assert len(text) > 5 * REPEAT_EVERY
    marked = embed(text, PID)
    assert len(payload_runs(marked)) >= 4
    for start, _end in payload_runs(marked):
        assert marked[start - 1] in "。，、；："


@pytest.mark.parametrize("form", ["NFC", "NFD", "NFKC", "NFKD"])
def test_survives_unicode_normalisation(form: str) -> None:
    # compatibility characters (full-width letters, a ligature) change under NFKC;
    # the payload characters have no decomposition and do not
    text = MIXED + "\n\nＦｕｌｌ-width ｌｅｔｔｅｒｓ and the ﬁ ligature, café and cafe\u0301."
    marked = embed(text, PID)
    normalised = unicodedata.normalize(form, marked)
    assert decode(normalised) == [PID]
    assert len(payload_runs(normalised)) == len(payload_runs(marked))
    for char in ALPHABET:
        assert unicodedata.normalize(form, char) == char


def test_payload_characters_are_not_whitespace() -> None:
    for char in ALPHABET:
        assert not char.isspace()
        assert not re.match(r"\s", char)
        assert char.strip() == char


# --------------------------------------------------------- where it never goes

MARKDOWN = """---
title: Notes on labelling, with commas. And sentences.
tags: [ai, text]
---

# Release notes for the labelling service, version one

The service labels text, images and documents. It adds a visible notice, an invisible
mark and a metadata record. See https://example.com/docs/labelling?lang=en. For help,
write to support@example.com, or visit www.example.org/help today.

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

Math like $$a + b. c, d$$ and $x, y$ stays intact. The final paragraph ends here.
"""

PROTECTED = [
    "---\ntitle: Notes on labelling, with commas. And sentences.\ntags: [ai, text]\n---\n",
    "# Release notes for the labelling service, version one\n",
    "https://example.com/docs/labelling?lang=en.",
    "support@example.com,",
    "www.example.org/help",
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


def test_markdown_code_urls_and_front_matter_get_no_payload() -> None:
    marked = embed(MARKDOWN, PID)
    assert decode(marked) == [PID]
    assert visible_text(marked) == MARKDOWN
    assert marked.startswith(PROTECTED[0])  # front matter still opens the file
    for snippet in PROTECTED:
        assert snippet in MARKDOWN
        # still present character for character: nothing was inserted inside it,
        # and nothing glued onto its end (a linkifier would swallow it into the URL)
        assert snippet in marked, snippet
        at = marked.index(snippet)
        assert (
            marked[at + len(snippet) : at + len(snippet) + 1] not in ALPHABET or snippet[-1] == "\n"
        ), snippet
    # the prose paragraphs did get copies
    assert len(payload_runs(marked)) >= 4


def test_payload_never_splits_a_word() -> None:
    marked = embed(MIXED + "\n\n" + MARKDOWN + "\n\n" + long_paragraph(2000), PID)
    for start, end in payload_runs(marked):
        before, after = marked[start - 1 : start], marked[end : end + 1]
        assert not (before.isascii() and before.isalnum() and after.isascii() and after.isalnum())
        # ASCII punctuation is followed by its space before the payload, so a line
        # broken inside the payload does not start with a space
        if before in ".,;:!?":
            assert after in ("", "\n", "\r")


def test_unclosed_fence_is_code_to_the_end() -> None:
    text = ENGLISH[0] + "\n\n```\nunclosed code. With sentences, and commas.\nmore code here."
    marked = embed(text, PID)
    code_start = marked.index("```")
    assert not PAYLOAD.search(marked[code_start:])
    assert decode(marked) == [PID]


def test_text_that_is_only_code_is_left_alone() -> None:
    text = "```\nprint('hello, world. again')\n```"
    assert embed(text, PID) == text


def test_natural_zero_width_characters_are_kept() -> None:
    # emoji ZWJ sequences and Persian ZWNJ use the same characters; they are not ours
    text = "A family 👨\u200d👩\u200d👧 came by. Persian: می\u200cخواهم, which means I want."
    marked = embed(text, PID)
    assert decode(marked) == [PID]
    assert visible_text(marked) == text
    assert "👨\u200d👩\u200d👧" in marked and "می\u200cخواهم" in marked


# ------------------------------------------------------------ damage rejected


@pytest.mark.parametrize("produce_id", [PID, "client-chosen_ID.42"])
def test_any_single_damage_to_the_only_copy_rejects_it(produce_id: str) -> None:
    marked = embed("Hello there, reader.", produce_id)
    ((start, end),) = payload_runs(marked)
    variants = []
    for i in range(start, end):
        variants.append(marked[:i] + marked[i + 1 :])  # a character lost
        for other in ALPHABET:
            if other != marked[i]:
                variants.append(marked[:i] + other + marked[i + 1 :])  # one flipped
    variants.append(marked[: end - 1] + marked[end:])  # truncated
    variants.append(marked[:start] + marked[start + 40 :])  # front cut off
    for damaged in variants:
        assert decode(damaged) == []


def test_one_damaged_copy_among_several_still_yields_only_the_right_id() -> None:
    marked = embed("\n\n".join(ENGLISH), PID)
    runs = payload_runs(marked)
    start, end = runs[1]
    middle = (start + end) // 2
    flipped = ALPHABET[(ALPHABET.index(marked[middle]) + 1) % 4]
    damaged = marked[:middle] + flipped + marked[middle + 1 :]
    assert decode(damaged) == [PID]
    assert decode(damaged.split("\n\n")[1]) == []  # the damaged paragraph alone
    assert visible_text(damaged) == "\n\n".join(ENGLISH)  # damaged copies are ours too


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
    marked = embed(MIXED, produce_id)
    assert decode(marked) == [produce_id]
    assert visible_text(marked) == MIXED


@pytest.mark.parametrize(
    "produce_id",
    ["", "has space", "back\\slash", "中文编号", "tab\tid", "x" * 65],
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


# ------------------------------------------------------------------ relabelling


def test_relabelling_replaces_the_old_payload() -> None:
    text = "\n\n".join(ENGLISH)
    first = embed(text, PID)
    second = embed(first, "NEW-ID-1")
    assert decode(second) == ["NEW-ID-1"]
    assert visible_text(second) == text
    assert len(payload_runs(second)) == len(payload_runs(first))
    assert embed(second, PID) == first  # and back: idempotent placement


def test_two_marked_texts_pasted_together_yield_both_ids_in_order() -> None:
    pasted = embed(ENGLISH[0], "FIRST") + "\n\n" + embed(ENGLISH[1], PID)
    assert decode(pasted) == ["FIRST", PID]


# ------------------------------------------------------------ short and empty


def test_empty_and_blank_text_are_returned_unchanged() -> None:
    assert embed("", PID) == ""
    assert embed(" \n\n ", PID) == " \n\n "


@pytest.mark.parametrize("text", ["Hi", "好", "OK.", "Yes!\n", "# Title", "见 https://a.cn"])
def test_very_short_text_still_carries_one_copy(text: str) -> None:
    assert len(text) < MIN_PARAGRAPH_CHARS
    marked = embed(text, PID)
    assert decode(marked) == [PID]
    assert visible_text(marked) == text
    assert len(payload_runs(marked)) == 1


def test_short_text_copy_goes_at_the_end() -> None:
    marked = embed("Hi", PID)
    assert marked.startswith("Hi") and decode(marked) == [PID]
    marked = embed("Thanks\n", PID)
    assert marked.startswith("Thanks") and marked.endswith("\n")


def test_short_paragraphs_get_no_copy_of_their_own_when_a_long_one_exists() -> None:
    text = "Title\n\n" + ENGLISH[0] + "\n\nBye."
    marked = embed(text, PID)
    assert marked.startswith("Title\n\n") and marked.endswith("\n\nBye.")
    assert decode(marked) == [PID]


# ---------------------------------------------------------------- never raises

NASTY = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list(ALPHABET) + list(" \n\t.,。`~$<>[]()@:/#-|")),
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(NASTY)
def test_decode_and_visible_text_never_raise_on_arbitrary_text(text: str) -> None:
    found = decode(text)
    assert isinstance(found, list) and all(isinstance(p, str) for p in found)
    assert isinstance(visible_text(text), str)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from([*ALPHABET, "a"]), max_size=400))
def test_random_zero_width_runs_never_decode_to_an_id(text: str) -> None:
    # random data after a marker would pass the 32-bit CRC once in four billion tries
    assert decode(MARKER + text) == []


@settings(max_examples=200, deadline=None)
@given(NASTY.map(visible_text))
def test_embed_on_arbitrary_text_keeps_it_and_marks_it_when_there_is_room(text: str) -> None:
    marked = embed(text, PID)
    assert visible_text(marked) == text
    assert decode(marked) in ([PID], [])
    if text.strip() and decode(marked) == []:
        assert marked == text  # no safe place at all: the text is not touched


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_damage_never_yields_a_wrong_id(data: st.DataObject) -> None:
    marked = embed("\n\n".join(ENGLISH), PID)
    chars = list(marked)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(chars) - 1))
        action = data.draw(st.sampled_from(["delete", "flip", "insert"]))
        if action == "delete":
            del chars[i]
        elif action == "flip":
            chars[i] = data.draw(st.sampled_from(ALPHABET))
        else:
            chars.insert(i, data.draw(st.sampled_from(ALPHABET)))
    assert set(decode("".join(chars))) <= {PID}
