"""/v1/verify on labelled text after sanitisers: the mark's key still finds the ledger record."""

from __future__ import annotations

import re
import unicodedata

import pytest
from fastapi.testclient import TestClient

from tests.support import auth
from tests.text_samples import SAMPLES

VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff]")

SANITISERS = {
    "strip-variation-selectors": lambda t: VARIATION_SELECTORS.sub("", t),
    "strip-zero-width": lambda t: ZERO_WIDTH.sub("", t),
    "nfkc-and-collapse": lambda t: " ".join(unicodedata.normalize("NFKC", t).split()),
    "excerpt-300-middle": lambda t: t[len(t) // 2 - 150 : len(t) // 2 + 150],
}


@pytest.mark.parametrize("sanitise", SANITISERS)
def test_labelled_then_sanitised_text_is_confirmed_with_its_record(
    client: TestClient, sanitise: str
) -> None:
    resp = client.post(
        "/v1/label/text", json={"text": SAMPLES["chinese-prose"], "explicit": "end"}, headers=auth()
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    damaged = SANITISERS[sanitise](out["text"])
    assert "人工智能生成" not in damaged or sanitise != "excerpt-300-middle"
    report = client.post("/v1/verify", json={"text": damaged}, headers=auth()).json()
    assert report["classification"] == "confirmed", report
    assert report["record"] == out["record"]
    (mark,) = [e for e in report["evidence"] if e["kind"] == "watermark"]
    assert mark["data"]["in_ledger"] is True and mark["data"]["agree"] is True
    assert mark["data"]["produce_id"] == out["produce_id"]
    families = set(mark["data"]["families"])
    if sanitise == "strip-variation-selectors":
        assert families == {"zero-width"}
    elif sanitise == "strip-zero-width":
        assert families == {"variation-selectors"}
    elif sanitise == "nfkc-and-collapse":
        assert families == {"zero-width", "variation-selectors"}
    assert all(c["family"] in families for c in mark["data"]["copies"])


def test_two_labelled_texts_pasted_together_are_reported_as_disagreeing(
    client: TestClient,
) -> None:
    texts = [
        client.post(
            "/v1/label/text",
            json={"text": SAMPLES[name], "explicit": "none"},
            headers=auth("omit-key"),
        ).json()
        for name in ("chinese-prose", "english-prose")
    ]
    pasted = texts[0]["text"] + "\n\n" + texts[1]["text"]
    report = client.post("/v1/verify", json={"text": pasted}, headers=auth()).json()
    marks = [e for e in report["evidence"] if e["kind"] == "watermark"]
    assert [m["data"]["produce_id"] for m in marks] == [t["produce_id"] for t in texts]
    assert all(m["data"]["agree"] is False for m in marks)
    assert any(f["code"] == "several-records" for f in report["findings"])


def test_a_text_with_hundreds_of_keys_is_looked_up_a_bounded_number_of_times(
    client: TestClient,
) -> None:
    from labelers.watermark import text as tw

    pasted = "\n\n".join(
        tw.embed(f"Paragraph number {i} of a pasted collage, long enough.", f"ID-{i}")
        for i in range(200)
    )
    report = client.post("/v1/verify", json={"text": pasted}, headers=auth()).json()
    marks = [e for e in report["evidence"] if e["kind"] == "watermark"]
    assert len(marks) == 16
    assert any(f["code"] == "too-many-marks" for f in report["findings"])
