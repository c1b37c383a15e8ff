"""Text labelling and verification through the real app."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.support import PRODUCER, auth

ARTICLE = (
    "人工智能正在改变内容生产的方式。许多平台每天处理数以百万计的生成文本，"
    "这些文本需要可靠的标识，以便读者知道它们的来源。\n\n"
    "第二段讨论了隐式标识的作用：即使显式提示被删除，机器仍然可以读取嵌入在文本中的信息，"
    "并在账本中找回完整的记录。This paragraph mixes English words too, so that "
    "the payload has to survive in both scripts.\n\n"
    "第三段是结尾。复制粘贴、空白折叠和截取段落都不应让标识失效。"
)


def _label(client: TestClient, **body) -> dict:
    resp = client.post("/v1/label/text", json={"text": ARTICLE, **body}, headers=auth())
    assert resp.status_code == 200, resp.text
    return resp.json()


def _verify(client: TestClient, text: str, **extra) -> dict:
    resp = client.post("/v1/verify", json={"text": text, **extra}, headers=auth())
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_label_returns_record_and_explicit_label_at_start(client: TestClient) -> None:
    out = _label(client)
    rec = out["record"]
    assert rec["Label"] == "1" and rec["ContentProducer"] == PRODUCER
    assert rec["ProduceID"] == out["produce_id"] == rec["PropagateID"]
    assert "人工智能生成" in out["text"][:20]


def test_label_then_verify_is_confirmed_with_same_record(client: TestClient) -> None:
    out = _label(client)
    report = _verify(client, out["text"])
    assert report["classification"] == "confirmed"
    assert report["record"] == out["record"]
    kinds = {e["kind"] for e in report["evidence"]}
    assert {"watermark", "explicit-label"} <= kinds
    assert report["rule"].startswith("Art. 6(1)")


def test_confirmed_after_whitespace_collapse(client: TestClient) -> None:
    out = _label(client)
    damaged = " ".join(out["text"].split())
    assert _verify(client, damaged)["record"] == out["record"]
    damaged = re.sub(r"\s+", "", out["text"])
    assert _verify(client, damaged)["classification"] == "confirmed"


def test_middle_paragraph_cut_out_alone_still_confirmed(client: TestClient) -> None:
    out = _label(client, explicit="end")
    middle = out["text"].split("\n\n")[1]
    assert "人工智能生成" not in middle
    report = _verify(client, middle)
    assert report["classification"] == "confirmed"
    assert report["record"]["ProduceID"] == out["produce_id"]


def test_ledger_entry_is_readable(client: TestClient) -> None:
    out = _label(client)
    entry = client.get(f"/v1/records/{out['produce_id']}", headers=auth()).json()
    assert entry["record"] == out["record"]
    assert entry["media_type"] == "text/plain" and entry["requester"] == "generator"
    assert entry["explicit_omitted"] is False


def test_bilingual_and_custom_wording(client: TestClient) -> None:
    out = _label(client, wording="bilingual", explicit="both")
    assert out["text"].count("AI生成 / AI-generated") == 2
    out = _label(client, wording="本文由AI合成")
    assert "本文由AI合成" in out["text"]


def test_invalid_wording_is_422_naming_missing_element(client: TestClient) -> None:
    resp = client.post("/v1/label/text", json={"text": "x", "wording": "机器写的"}, headers=auth())
    assert resp.status_code == 422
    assert "AI element" in resp.json()["detail"]


def test_bad_produce_id_is_422_naming_charset(client: TestClient) -> None:
    resp = client.post(
        "/v1/label/text", json={"text": "x", "produce_id": "有 空格"}, headers=auth()
    )
    assert resp.status_code == 422 and "printable ASCII" in resp.json()["detail"]


def test_duplicate_produce_id_is_409(client: TestClient) -> None:
    _label(client, produce_id="MY-ID-1")
    resp = client.post(
        "/v1/label/text", json={"text": "y", "produce_id": "MY-ID-1"}, headers=auth()
    )
    assert resp.status_code == 409 and "MY-ID-1" in resp.json()["detail"]


def test_omitting_explicit_label_needs_permission_and_is_logged(client: TestClient) -> None:
    resp = client.post("/v1/label/text", json={"text": "x", "explicit": "none"}, headers=auth())
    assert resp.status_code == 403 and "omit_explicit" in resp.json()["detail"]
    resp = client.post(
        "/v1/label/text",
        json={"text": ARTICLE, "explicit": "none", "omit_reason": "user agreement #42"},
        headers=auth("omit-key"),
    )
    assert resp.status_code == 200
    out = resp.json()
    assert "人工智能生成" not in out["text"]
    entry = client.get(f"/v1/records/{out['produce_id']}", headers=auth()).json()
    assert entry["explicit_omitted"] is True
    assert entry["requester"] == "trusted-generator"
    assert entry["omit_reason"] == "user agreement #42"
    # the implicit label is never optional
    assert _verify(client, out["text"])["classification"] == "confirmed"


def test_unlabelled_text_is_none_declared_is_possible_wording_is_suspected(
    client: TestClient,
) -> None:
    assert _verify(client, "普通的人类写作。")["classification"] == "none"
    assert _verify(client, "普通的人类写作。", declared_ai=True)["classification"] == "possible"
    report = _verify(client, "【AI生成】这是一段文字。")
    assert report["classification"] == "suspected"
    assert report["evidence"][0]["kind"] == "explicit-label"


def test_payload_from_another_ledger_is_suspected_not_confirmed(client: TestClient) -> None:
    from labelers.watermark import text as tw

    foreign = tw.embed("一段来自别处的文本，带着别人的标识。", "01JZZZZZZZZZZZZZZZZZZZZZZZ")
    report = _verify(client, foreign)
    assert report["classification"] == "suspected"
    assert report["record"] is None


def test_label_value_is_chosen_and_a_bad_one_is_422_naming_label(client: TestClient) -> None:
    out = _label(client, label="2")
    assert out["record"]["Label"] == "2"
    assert _verify(client, out["text"])["classification"] == "possible"
    resp = client.post("/v1/label/text", json={"text": "x", "label": "4"}, headers=auth())
    assert resp.status_code == 422
    assert "label" in resp.json()["detail"] and "'1', '2' or '3'" in resp.json()["detail"]
    resp = client.post(
        "/v1/label", files={"file": ("a.md", b"# t\n\n- a\n")}, data={"label": 1.5}, headers=auth()
    )
    assert resp.status_code == 422 and "label" in resp.json()["detail"]
