"""Explicit text labels: the forms a reader sees, no stacking on relabel, bad options refused."""

from __future__ import annotations

import pytest

from labelers.errors import InvalidOption, InvalidWording, LimitExceeded
from labelers.limits import Limits
from labelers.visible.text import add_explicit, has_explicit
from labelers.visible.wording import PRESETS, resolve_wording
from labelers.watermark.text import decode, embed, visible_text

BODY = "今天的天气很好。We went for a walk by the river, and it was lovely."
PID = "01JD8Z5K3M7Q2R4T6V8W0XYZAB"


def test_start_label_is_its_own_line_before_the_text() -> None:
    assert add_explicit(BODY, "人工智能生成", "start") == "【人工智能生成】\n\n" + BODY


def test_end_label_reads_as_a_sentence_for_plain_wordings() -> None:
    assert add_explicit(BODY, "人工智能生成", "end") == BODY + "\n\n（本内容由人工智能生成）"
    assert add_explicit(BODY, "AI合成", "end") == BODY + "\n\n（本内容由AI合成）"


def test_custom_wording_is_used_verbatim_in_brackets() -> None:
    wording = resolve_wording("bilingual")
    labelled = add_explicit(BODY, wording, "both")
    assert labelled == f"【{wording}】\n\n{BODY}\n\n【{wording}】"


def test_both_and_none() -> None:
    assert add_explicit(BODY, "AI生成", "both") == f"【AI生成】\n\n{BODY}\n\n（本内容由AI生成）"
    assert add_explicit(BODY, "AI生成", "none") == BODY


def test_trailing_newline_stays_at_the_very_end() -> None:
    labelled = add_explicit(BODY + "\n", "AI生成", "end")
    assert labelled == BODY + "\n\n（本内容由AI生成）\n"


@pytest.mark.parametrize("where", ["start", "end", "both"])
@pytest.mark.parametrize("wording", sorted(set(PRESETS.values())))
def test_relabelling_does_not_stack_labels(where: str, wording: str) -> None:
    once = add_explicit(BODY, wording, where)
    assert add_explicit(once, wording, where) == once
    # also after the watermark went in (the pipeline order: visible label, then watermark)
    marked = embed(once, PID)
    assert add_explicit(marked, wording, where) == marked
    assert decode(add_explicit(marked, wording, where)) == [PID]


def test_relabelling_start_then_both_adds_only_the_missing_end() -> None:
    once = add_explicit(BODY, "AI生成", "start")
    assert add_explicit(once, "AI生成", "both") == f"【AI生成】\n\n{BODY}\n\n（本内容由AI生成）"


def test_empty_text_gets_the_label_alone() -> None:
    assert add_explicit("", "AI生成", "start") == "【AI生成】"
    assert add_explicit("", "AI生成", "end") == "（本内容由AI生成）"
    both = add_explicit("", "AI生成", "both")
    assert both == "【AI生成】\n\n（本内容由AI生成）"
    assert add_explicit(both, "AI生成", "both") == both


def test_front_matter_and_byte_order_mark_stay_first() -> None:
    doc = "---\ntitle: x\n---\n# Heading\n\nText."
    assert (
        add_explicit(doc, "AI生成", "start")
        == "---\ntitle: x\n---\n【AI生成】\n\n# Heading\n\nText."
    )
    assert add_explicit("\ufeffText.", "AI生成", "start") == "\ufeff【AI生成】\n\nText."


def test_bad_position_and_bad_wording_are_refused() -> None:
    with pytest.raises(InvalidOption) as err:
        add_explicit(BODY, "AI生成", "middle")
    assert "start" in err.value.detail and "middle" in err.value.detail
    with pytest.raises(InvalidWording):
        add_explicit(BODY, "机器写的", "start")
    with pytest.raises(LimitExceeded):
        add_explicit("x" * 11, "AI生成", "start", limits=Limits(max_text_chars=10))


def test_has_explicit_finds_labels_and_sees_through_the_watermark() -> None:
    assert has_explicit(BODY) == []
    assert has_explicit(add_explicit(BODY, "人工智能生成", "both")) == ["人工智能生成"] * 2
    frame = embed("Hi", PID)[2:]
    # a watermark copy right inside an English label does not hide it
    assert has_explicit("This text is AI " + frame + "generated.") == ["AI generated"]
    assert visible_text("AI " + frame + "generated") == "AI generated"


def test_a_labelled_and_watermarked_text_keeps_both() -> None:
    labelled = add_explicit(BODY, "人工智能生成", "both")
    marked = embed(labelled, PID)
    assert decode(marked) == [PID]
    assert has_explicit(marked) == ["人工智能生成", "人工智能生成"]
    # the short label lines themselves carry no invisible characters
    assert marked.startswith("【人工智能生成】\n\n")
    assert marked.endswith("\n\n（本内容由人工智能生成）")
