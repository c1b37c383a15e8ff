"""Front matter: one splitter for YAML (``---``) and TOML (``+++``, Hugo's) blocks,
and the Markdown record, visible label and text mark around a TOML block.

Independent reader: the standard library's ``tomllib`` for the TOML (and
``yaml.safe_load`` where YAML is checked); text comparison for "the rest of
the file is unchanged".
"""

from __future__ import annotations

import tomllib

import pytest

from labelers.errors import CorruptInput
from labelers.formats import frontmatter, sniff
from labelers.formats.markdown import HANDLER as MD
from labelers.record import Record
from labelers.visible.markup import label_markdown
from labelers.watermark import text as text_watermark
from tests.support import PLATFORM, PRODUCER

RECORD = Record.first_write(PRODUCER, 'ID"<&>1')
RECORD2 = RECORD.with_fields(content_propagator=PLATFORM, propagate_id="P-2")

# what `hugo new posts/x.md` writes, with a table and an array of tables after
HUGO = """+++
title = "生成式 AI 周报"
date = 2025-09-01T10:00:00+08:00
draft = false  # keep this comment
tags = ["ai", "weekly"]

[params]
author = "张三"

[[resources]]
src = "cover.png"
+++

# 本周要闻

正文段落。
"""


def toml_of(data: bytes) -> dict:
    text = data.decode("utf-8")
    fm = frontmatter.split(text)
    assert fm is not None and fm.syntax == frontmatter.TOML, text[:80]
    return tomllib.loads(fm.inner(text))


# ----------------------------------------------------------------- the splitter
@pytest.mark.parametrize(
    ("text", "syntax", "inner", "body"),
    [
        ("---\na: 1\n---\nbody", "yaml", "a: 1\n", "body"),
        ("---\na: 1\n...\nbody", "yaml", "a: 1\n", "body"),
        ("---\r\na: 1\r\n---\r\nbody", "yaml", "a: 1\r\n", "body"),
        ("---\n---\nbody", "yaml", "", "body"),  # empty, as Jekyll reads it
        ("+++\na = 1\n+++\nbody", "toml", "a = 1\n", "body"),
        ("\ufeff+++\na = 1\n+++", "toml", "a = 1\n", ""),  # BOM, no body, no last newline
        ("---  \na: 1\n---\t\nbody", "yaml", "a: 1\n", "body"),  # trailing blanks on fences
    ],
)
def test_the_splitter_finds_each_kind_of_block(text, syntax, inner, body):
    fm = frontmatter.split(text)
    assert fm is not None and fm.syntax == syntax
    assert fm.inner(text) == inner and text[fm.body_start :] == body
    assert frontmatter.body_start(text) == fm.body_start


@pytest.mark.parametrize(
    "text",
    [
        "---\nno closing fence, so a thematic break\n",
        "text first\n---\na: 1\n---\n",
        "+++\na = 1\n---\n",  # a TOML block closes with +++ only
        "---\na: 1\n+++\n",
        " ---\na: 1\n---\n",
        "",
    ],
)
def test_what_is_not_front_matter(text):
    assert frontmatter.split(text) is None and frontmatter.body_start(text) == 0


def test_a_hostile_opening_is_one_forward_search():
    # many near-fences and no closing one: a backtracking pattern would be
    # quadratic here (200,000 lines), the splitter's one search is not
    text = "---\n" + "-- \n" * 200_000
    assert frontmatter.split(text) is None


# ---------------------------------------------------- a Markdown file with TOML
def test_a_hugo_file_keeps_its_toml_front_matter_and_gains_an_aigc_table():
    data = HUGO.encode()
    assert sniff(data) == "text/markdown"
    out = MD.write_record(data, RECORD)
    text = out.decode()
    assert text.startswith("+++\n") and "\n---" not in text  # no second front matter
    before, after = toml_of(data), toml_of(out)
    assert after.pop("AIGC") == RECORD.as_dict()
    assert after == before  # title, date, tables and arrays of tables unchanged
    assert "draft = false  # keep this comment" in text
    assert text.endswith(HUGO.split("+++\n", 2)[2])  # the body is untouched
    (found,) = MD.read(out).records
    assert found.record == RECORD and found.carrier == "markdown:front-matter:AIGC"


def test_relabelling_a_toml_file_keeps_one_aigc_table():
    once = MD.write_record(HUGO.encode(), RECORD)
    twice = MD.write_record(once, RECORD2)
    assert twice.decode().count("[AIGC]") == 1
    assert toml_of(twice)["AIGC"] == RECORD2.as_dict()
    assert [f.record for f in MD.read(twice).records] == [RECORD2]


def test_a_top_level_aigc_key_in_toml_is_read_and_replaced():
    data = ('+++\ntitle = "x"\nAIGC = ' + _json_string(RECORD) + "\n+++\nbody\n").encode()
    assert [f.record for f in MD.read(data).records] == [RECORD]
    out = MD.write_record(data, RECORD2)
    assert toml_of(out) == {"title": "x", "AIGC": RECORD2.as_dict()}


def test_the_content_digest_ignores_the_aigc_table_and_sees_edits():
    data = HUGO.encode()
    labelled = MD.write_record(data, RECORD)
    assert MD.content_digest(labelled) == MD.content_digest(data)
    assert MD.content_digest(MD.write_record(labelled, RECORD2)) == MD.content_digest(data)
    edited = HUGO.replace("draft = false", "draft = true").encode()
    assert MD.content_digest(edited) != MD.content_digest(data)


def test_crlf_toml_front_matter_stays_crlf():
    data = HUGO.replace("\n", "\r\n").encode()
    out = MD.write_record(data, RECORD).decode()
    assert "\n" not in out.replace("\r\n", "")
    assert toml_of(out.encode())["AIGC"] == RECORD.as_dict()


def test_the_visible_label_and_the_text_mark_go_after_the_toml_block():
    labelled = label_markdown(HUGO.encode(), "本内容由人工智能生成")
    text = labelled.decode()
    assert text.startswith("+++\n") and toml_of(labelled) == toml_of(HUGO.encode())
    closing = frontmatter.split(text)
    assert closing is not None and text.index("本内容由人工智能生成") >= closing.body_start
    marked = text_watermark.embed(HUGO, RECORD.produce_id)
    fm = frontmatter.split(marked)
    assert fm is not None and marked[: fm.body_start] == HUGO[: fm.body_start]


def test_broken_or_hostile_toml_is_refused_not_crashed():
    with pytest.raises(CorruptInput, match="not valid TOML"):
        MD.write_record(b'+++\ntitle = "unclosed\n+++\nbody\n', RECORD)
    deep = ("+++\na = " + "[" * 50_000 + "\n+++\nbody\n").encode()
    with pytest.raises(CorruptInput):
        MD.write_record(deep, RECORD)
    assert MD.read(deep).records == []
    # an AIGC value the writer cannot take out line by line: refused, not half-replaced
    multi = b'+++\nAIGC = """\n{}\n"""\n+++\nbody\n'
    with pytest.raises(CorruptInput, match="could not be replaced"):
        MD.write_record(multi, RECORD)
    # a broken TOML block that holds an AIGC table is reported, not ignored
    broken = b'+++\n[AIGC]\nLabel = "1\n+++\nbody\n'
    (found,) = MD.read(broken).records
    assert found.record is None and "TOML" in found.error


def test_toml_front_matter_over_html_is_an_html_template():
    page = b'+++\ntitle = "x"\n+++\n<!DOCTYPE html>\n<html><head></head><body>hi</body></html>\n'
    assert sniff(page) == "text/html"


def _json_string(record: Record) -> str:
    import json

    # a JSON string is a TOML basic string: the wild form of a record as one value
    return json.dumps(json.dumps({"AIGC": record.as_dict()}, separators=(",", ":")))
