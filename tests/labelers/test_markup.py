"""Markdown front matter and HTML meta records, and their visible labels.

Independent readers: yaml.safe_load for the front matter, a regex plus
html.unescape for the meta attribute, and byte comparison for "nothing else
changed".
"""

from __future__ import annotations

import html
import json
import re

import pytest
import yaml

from labelers.errors import CorruptInput, InvalidOption, UnsupportedMedia
from labelers.formats import get_handler, sniff
from labelers.formats.html import HANDLER as HTML
from labelers.formats.markdown import HANDLER as MD
from labelers.limits import Limits
from labelers.record import Record
from labelers.visible.markup import add_visible_label, label_html, label_markdown
from labelers.visible.wording import find_wording
from tests.support import PLATFORM, PRODUCER, raises_limit

# a ProduceID with the characters that need escaping in YAML, JSON and HTML
RECORD = Record.first_write(PRODUCER, 'ID"<&>1')
RECORD2 = RECORD.with_fields(content_propagator=PLATFORM, propagate_id="P-2")

FRONT = """---
# site settings, keep this comment
title: "生成式 AI 周报"   # inline comment
tags: [ai, weekly]
date: 2025-09-01
author:
  name: 张三
  email: z@example.com
---
# 本周要闻

> 引用：一些 AI生成 的讨论

正文段落。
"""


def front_matter(data: bytes) -> dict:
    text = data.decode("utf-8").lstrip("\ufeff")
    return yaml.safe_load(text.split("---", 2)[1])


# ---------------------------------------------------------------- Markdown
def test_markdown_record_round_trips_and_merges_with_existing_keys():
    data = FRONT.encode()
    assert sniff(data) == "text/markdown" and get_handler("text/markdown") is MD
    out = MD.write_record(data, RECORD)
    fm = front_matter(out)
    assert fm["AIGC"] == RECORD.as_dict()
    assert list(fm) == ["title", "tags", "date", "author", "AIGC"]
    assert fm["author"] == {"name": "张三", "email": "z@example.com"}
    text = out.decode()
    # every original line is still there, in order (comments included)
    original = FRONT.splitlines()
    kept = [line for line in text.splitlines() if line in original]
    assert kept == original
    meta = MD.read(out)
    assert [(f.carrier, f.record) for f in meta.records] == [("markdown:front-matter:AIGC", RECORD)]
    assert meta.properties["markdown:front-matter:title"] == "生成式 AI 周报"
    assert meta.text_pages == [FRONT.split("---\n", 2)[2]]


def test_markdown_relabel_keeps_one_record_in_place():
    once = MD.write_record(FRONT.encode(), RECORD)
    twice = MD.write_record(once, RECORD2)
    assert twice.decode().count("AIGC:") == 1
    assert front_matter(twice)["AIGC"] == RECORD2.as_dict()
    assert [f.record for f in MD.read(twice).records] == [RECORD2]
    assert MD.write_record(twice, RECORD2) == twice


def test_markdown_without_front_matter_gets_one_and_keeps_crlf_and_bom():
    data = "\ufeff# 标题\r\n\r\n正文\r\n".encode()
    out = MD.write_record(data, RECORD)
    assert out.startswith("\ufeff---\r\nAIGC:\r\n".encode())
    assert out.endswith("---\r\n# 标题\r\n\r\n正文\r\n".encode())
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert front_matter(out)["AIGC"] == RECORD.as_dict()


@pytest.mark.parametrize(
    "entry",
    [
        "AIGC: '" + RECORD.dumps(wrapped=True) + "'",
        "aigc: '" + RECORD.dumps(wrapped=False) + "'",
        "AIGC: " + json.dumps(RECORD.as_dict()),  # flow mapping
        "AIGC:\n" + "\n".join(f"  {k}: {json.dumps(v)}" for k, v in RECORD.as_dict().items()),
    ],
    ids=["json-wrapped", "json-bare-lowercase", "flow", "block"],
)
def test_markdown_reads_every_form_and_replaces_it(entry):
    data = f"---\ntitle: x\n{entry}\nlayout: post\n---\nbody\n".encode()
    assert [f.record for f in MD.read(data).records] == [RECORD]
    out = MD.write_record(data, RECORD2)
    fm = front_matter(out)
    assert fm == {"title": "x", "AIGC": RECORD2.as_dict(), "layout": "post"}
    assert [f.record for f in MD.read(out).records] == [RECORD2]


def test_markdown_broken_front_matter():
    broken = b"---\ntitle: [unclosed\nAIGC: {Label: '1'\n---\nbody\n"
    (found,) = MD.read(broken).records
    assert found.record is None and "YAML" in found.error
    with pytest.raises(CorruptInput, match="YAML"):
        MD.write_record(broken, RECORD)
    with pytest.raises(CorruptInput, match="not a mapping"):
        MD.write_record(b"---\n- a\n- b\n---\nbody\n", RECORD)
    bad_value = b"---\nAIGC: hello\n---\n"
    assert MD.read(bad_value).records[0].record is None


def test_markdown_input_checks():
    with pytest.raises(UnsupportedMedia, match="UTF-8"):
        MD.read("# 标题\n".encode("gb18030") + b"\xff\xfe")
    with raises_limit("max_text_chars"):
        MD.read(b"# a\n" * 100, limits=Limits(max_text_chars=50))
    with raises_limit("max_bytes"):
        MD.write_record(b"# a\n" * 100, RECORD, limits=Limits(max_bytes=50))
    # a YAML alias bomb is only built as shared references: reading stays quick
    bomb = (
        "---\na: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "---\nbody\n"
    )
    assert MD.read(bomb.encode()).records == []


def test_markdown_visible_label_after_front_matter_and_at_end():
    out = label_markdown(MD.write_record(FRONT.encode(), RECORD), "人工智能生成", "both")
    text = out.decode()
    head, body = text.split("---\n", 2)[1:]
    assert "人工智能生成" not in head
    lines = body.splitlines()
    assert lines[0].startswith("> 人工智能生成") and lines[-1].startswith("> 人工智能生成")
    assert "> 引用：一些 AI生成 的讨论" in lines  # the author's own quote is kept
    assert front_matter(out)["AIGC"] == RECORD.as_dict()
    # relabel with another wording: one label per position, nothing else moves
    again = add_visible_label(out, "text/markdown", "AI生成", "both")
    assert again.decode() == text.replace("人工智能生成 <!--", "AI生成 <!--")
    assert add_visible_label(again, "text/markdown", "AI生成", "both") == again
    found = find_wording("\n".join(MD.read(again).text_pages))
    assert found.count("AI生成") == 3  # start, end, and the author's quote


def test_markdown_visible_label_positions():
    src = b"# T\n\ntext"
    assert label_markdown(src, "AI生成", "start").decode() == (
        "> AI生成 <!-- AIGC-Label -->\n\n# T\n\ntext"
    )
    assert label_markdown(src, "AI生成", "end").decode() == (
        "# T\n\ntext\n\n> AI生成 <!-- AIGC-Label -->\n"
    )
    footer = label_markdown(src, "AI生成", "footer")
    assert footer == label_markdown(src, "AI生成", "end")
    # switching from both to start drops the end label (a final newline may remain)
    assert label_markdown(label_markdown(src, "AI生成", "both"), "AI生成", "start").rstrip() == (
        label_markdown(src, "AI生成", "start")
    )
    with pytest.raises(InvalidOption):
        label_markdown(src, "AI生成", "middle")


# -------------------------------------------------------------------- HTML
PAGE = """<!DOCTYPE html>\r
<html lang="zh-CN">\r
<head>\r
<meta charset="utf-8">\r
<meta name="generator" content="SiteGen 2.1">\r
<title>测试页面</title>\r
<style>p::before { content: "<head>"; }</style>\r
<script>if (a < b && c > d) { document.write("<meta name='AIGC' content='x'>"); }</script>\r
</head>\r
<body class="page">\r
<!-- <meta name="AIGC" content="commented out"> -->\r
<p>正文 &amp; 内容</p>\r
</body>\r
</html>\r
"""
_META = re.compile(r'<meta name="AIGC" content="([^"]*)">')


def metas(text: str) -> list[str]:
    """Contents of AIGC meta tags outside comments (a naive independent reader)."""
    return _META.findall(re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL))


def test_html_record_is_a_head_meta_and_nothing_else_changes():
    data = PAGE.encode()
    assert sniff(data) == "text/html" and get_handler("text/html") is HTML
    assert HTML.read(data).records == []  # neither the comment nor the script count
    out = HTML.write_record(data, RECORD)
    text = out.decode()
    (content,) = metas(text)
    assert json.loads(html.unescape(content)) == RECORD.as_dict()
    assert text.replace(_META.search(text).group(0) + "\r\n", "") == PAGE
    assert text.index('<meta name="AIGC"') < text.index("</head>")
    meta = HTML.read(out)
    assert [(f.carrier, f.record) for f in meta.records] == [("html:meta:AIGC", RECORD)]
    assert meta.properties["html:meta:generator"] == "SiteGen 2.1"
    assert meta.text_pages == ["正文 & 内容"]


def test_html_relabel_replaces_and_deduplicates():
    two = PAGE.replace(
        "<title>",
        f"<meta name=\"aigc\" content='{RECORD.dumps()}'>\r\n<META NAME=AIGC CONTENT=junk>\r\n"
        "<title>",
    ).encode()
    found = HTML.read(two).records
    assert [f.record for f in found] == [RECORD, None]
    out = HTML.write_record(two, RECORD2)
    assert len(metas(out.decode())) == 1
    assert [f.record for f in HTML.read(out).records] == [RECORD2]
    assert HTML.write_record(out, RECORD2) == out


@pytest.mark.parametrize(
    ("page", "expected_start"),
    [
        ("<p>fragment</p>", "<head><meta"),
        ("<!doctype html><html><body><p>x</p></body></html>", "<!doctype html><html><head><meta"),
        ("<html><head><title>t</title></head><body>x</body></html>", "<html><head><title>t"),
    ],
)
def test_html_head_is_created_when_missing(page, expected_start):
    out = HTML.write_record(page.encode(), RECORD).decode()
    assert out.startswith(expected_start)
    assert [f.record for f in HTML.read(out.encode()).records] == [RECORD]


def test_html_in_a_declared_legacy_charset_stays_in_it():
    page = '<html><head><meta charset="gbk"><title>中文</title></head><body>中文页面</body></html>'
    data = page.encode("gb18030")
    out = HTML.write_record(data, RECORD)
    assert out.decode("gb18030").replace(_META.search(out.decode("gb18030")).group(0), "") == page
    assert HTML.read(out).records[0].record == RECORD
    labelled = label_html(out, "人工智能生成", "start")
    assert "人工智能生成" in labelled.decode("gb18030")


def test_html_visible_notice_start_end_and_relabel():
    data = HTML.write_record(PAGE.encode(), RECORD)
    both = add_visible_label(data, "text/html", "人工智能生成", "both")
    text = both.decode()
    assert text.count('class="aigc-label"') == 2
    body_open = text.index('<body class="page">') + len('<body class="page">')
    assert text[body_open:].startswith('<p class="aigc-label"')
    assert text.index('class="aigc-label"', body_open + 1) < text.index("</body>")
    # removing the notices gives back the input byte for byte
    stripped = re.sub(r'<p class="aigc-label"[^>]*>[^<]*</p>', "", text)
    assert stripped == data.decode()
    again = add_visible_label(both, "text/html", "AI生成", "both")
    assert again.decode().count('class="aigc-label"') == 2
    assert "人工智能生成" not in again.decode()
    assert add_visible_label(again, "text/html", "AI生成", "both") == again
    meta = HTML.read(again)
    assert meta.records[0].record == RECORD
    assert find_wording(meta.text_pages[0]) == ["AI生成", "AI生成"]


def test_html_notice_escapes_wording():
    out = label_html(b"<body></body>", "AI生成 <b>&", "end").decode()
    assert "AI生成 &lt;b&gt;&amp;" in out


def test_html_limits():
    with raises_limit("max_bytes"):
        HTML.read(PAGE.encode(), limits=Limits(max_bytes=100))
