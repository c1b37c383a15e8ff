"""Platforms (Measures Art. 6): classification, propagation write-back, signed records."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.dev_credentials import ensure_dev_credentials
from detectors import ocr
from labelers.formats import get_handler
from labelers.integrity import RecordSigner
from labelers.provenance import C2paSigner, build_manifest
from labelers.record import Record
from tests.support import PLATFORM, PRODUCER, auth


def _photo(fmt: str = "JPEG", size=(640, 480), seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x / size[0] * 200, y / size[1] * 180, (x + y) / sum(size) * 120], -1)
    noise = rng.normal(0, 6, base.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(base + noise + 30, 0, 255).astype("uint8")).save(buf, fmt)
    return buf.getvalue()


def _label(client: TestClient, data: bytes, **form) -> bytes:
    resp = client.post("/v1/label", files={"file": ("f", data)}, data=form, headers=auth())
    assert resp.status_code == 200, resp.text
    return resp.content


def _propagate(client: TestClient, data: bytes, **form):
    resp = client.post(
        "/v1/propagate", files={"file": ("f", data)}, data=form, headers=auth("platform-key")
    )
    assert resp.status_code == 200, resp.text
    return resp


def _verify(client: TestClient, data: bytes, **form) -> dict:
    resp = client.post("/v1/verify", files={"file": ("f", data)}, data=form, headers=auth())
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("fmt,mt", [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_label_propagate_verify_keeps_one_record_with_two_valid_signatures(
    client: TestClient, fmt: str, mt: str
) -> None:
    labelled = _label(client, _photo(fmt))
    resp = _propagate(client, labelled)
    assert resp.headers["aigc-classification"] == "confirmed"
    assert resp.headers["content-type"] == mt
    report = _verify(client, resp.content)
    rec = report["record"]
    assert rec["ContentProducer"] == PRODUCER and rec["ContentPropagator"] == PLATFORM
    assert rec["PropagateID"] == resp.headers["aigc-propagate-id"] != rec["ProduceID"]
    assert rec["ReservedCode1"].startswith("ED25519.") and rec["ReservedCode2"]
    assert report["integrity"]["producer"]["status"] == "valid"
    assert report["integrity"]["platform"]["status"] == "valid"
    assert report["integrity"]["c2pa"]["state"] == "Trusted"
    assert not report["integrity"]["c2pa"]["content_altered"]
    assert len(get_handler(mt).read(resp.content).records) == 1
    assert not [f for f in report["findings"] if f["code"] == "several-records"]


def test_changing_a_field_makes_integrity_invalid(client: TestClient) -> None:
    propagated = _propagate(client, _label(client, _photo("PNG"))).content
    handler = get_handler("image/png")
    record = handler.read(propagated).records[0].record
    for change, broken in [
        ({"propagate_id": "FORGED"}, {"platform"}),
        ({"label": "3"}, {"producer", "platform"}),
        ({"content_producer": PRODUCER[:-1] + "9"}, {"producer", "platform"}),
    ]:
        forged = handler.write_record(propagated, record.with_fields(**change))
        report = _verify(client, forged)
        statuses = {role: report["integrity"][role]["status"] for role in ("producer", "platform")}
        invalid = {r for r, s in statuses.items() if s == "invalid-field"}
        assert invalid == broken, (change, statuses)


def test_changing_content_makes_integrity_invalid(client: TestClient) -> None:
    propagated = _propagate(client, _label(client, _photo("PNG"))).content
    handler = get_handler("image/png")
    record = handler.read(propagated).records[0].record
    pixels = Image.open(io.BytesIO(propagated))
    pixels.putpixel((5, 5), (0, 0, 0))
    buf = io.BytesIO()
    pixels.save(buf, "PNG")
    moved = handler.write_record(buf.getvalue(), record)
    report = _verify(client, moved)
    for role in ("producer", "platform"):
        assert report["integrity"][role]["status"] == "invalid-content"
        assert "content changed" in report["integrity"][role]["detail"]


def test_other_producers_record_is_confirmed_with_unknown_key(
    client: TestClient, tmp_path: Path
) -> None:
    other = RecordSigner.load_or_create(tmp_path / "other.pem")[0]
    handler = get_handler("image/jpeg")
    photo = _photo()
    record = Record.first_write("0011911100007109120X0019999", "THEIRS-1")
    record = other.sign_producer(record, handler.content_digest(photo))
    report = _verify(client, handler.write_record(photo, record))
    assert report["classification"] == "confirmed"
    assert report["integrity"]["producer"]["status"] == "unknown-key"


def test_visible_wording_only_is_suspected_and_propagate_writes_label_3(
    client: TestClient,
) -> None:
    doc = "# 报告\n\n本文由AI生成，仅供参考。\n\n- 第一点\n- 第二点\n".encode()
    assert _verify(client, doc)["classification"] == "suspected"
    resp = _propagate(client, doc)
    assert resp.headers["aigc-record-created"] == "true"
    report = _verify(client, resp.content)
    assert report["record"]["Label"] == "3"
    assert report["record"]["ContentPropagator"] == PLATFORM
    assert report["integrity"]["platform"]["status"] == "valid"


def test_c2pa_ai_source_without_record_is_suspected(client: TestClient, tmp_path: Path) -> None:
    dev = ensure_dev_credentials(tmp_path / "other-ca")
    signer = C2paSigner.from_files(dev.chain_pem, dev.key_pem)
    manifest = build_manifest(Record.first_write("X", "Y"), "SomeDiffusion 2", None)
    manifest["assertions"] = [a for a in manifest["assertions"] if a["label"] != "cn.tc260.aigc"]
    signed = signer._sign_bytes(_photo(), "image/jpeg", manifest)
    report = _verify(client, signed)
    assert report["classification"] == "suspected"
    assert any(e["kind"] == "c2pa" for e in report["evidence"])


def test_declared_only_is_possible_and_propagate_writes_label_2(client: TestClient) -> None:
    photo = _photo(seed=7)
    assert _verify(client, photo)["classification"] == "none"
    assert _verify(client, photo, declared_ai="true")["classification"] == "possible"
    resp = _propagate(client, photo, declared_ai="true")
    assert resp.headers["aigc-classification"] == "possible"
    report = _verify(client, resp.content)
    assert report["record"]["Label"] == "2" and report["classification"] == "possible"


def test_propagate_on_unlabelled_content_returns_it_untouched(client: TestClient) -> None:
    photo = _photo(seed=9)
    resp = _propagate(client, photo)
    assert resp.headers["aigc-classification"] == "none"
    assert resp.content == photo and "aigc-record" not in resp.headers


def test_propagate_can_add_the_visible_label(client: TestClient) -> None:
    photo = _photo(seed=11)
    resp = _propagate(client, photo, declared_ai="true", add_explicit="true")
    assert resp.headers["aigc-explicit"] == "bottom-right"
    before = np.asarray(Image.open(io.BytesIO(photo)).convert("L"), dtype=int)
    after = np.asarray(Image.open(io.BytesIO(resp.content)).convert("L"), dtype=int)
    changed = np.argwhere(np.abs(before - after) > 40)
    assert changed[:, 0].min() > before.shape[0] * 0.7  # only the bottom band changed


def test_propagate_needs_the_permission(client: TestClient) -> None:
    resp = client.post("/v1/propagate", files={"file": ("f", _photo())}, headers=auth())
    assert resp.status_code == 403 and "propagate" in resp.json()["detail"]


needs_ocr = pytest.mark.skipif(
    not ocr.ocr_available() and not os.environ.get("CI"),
    reason="tesseract with chi_sim not installed",
)


@needs_ocr
def test_image_with_only_a_visible_caption_is_suspected_and_propagate_says_3(
    client: TestClient,
) -> None:
    from labelers.visible.image import draw_label

    img = Image.open(io.BytesIO(_photo(size=(960, 720), seed=3)))
    buf = io.BytesIO()
    draw_label(img, "AI生成", "bottom-left").save(buf, "JPEG", quality=90)
    captioned = buf.getvalue()
    report = _verify(client, captioned)
    assert report["classification"] == "suspected"
    ocr = next(e for e in report["evidence"] if e["carrier"] == "image:visible-ocr")
    assert "AI生成" in ocr["data"]["phrases"]
    resp = _propagate(client, captioned, add_explicit="true")
    assert resp.headers["aigc-explicit"] == "none"  # it shows one already
    assert _verify(client, resp.content)["record"]["Label"] == "3"


@needs_ocr
def test_check_visible_reports_a_record_without_visible_label(client: TestClient) -> None:
    photo = _photo(size=(960, 720), seed=5)
    shown = _label(client, photo)
    report = _verify(client, shown, check_visible="true")
    assert any(e["carrier"] == "image:visible-ocr" for e in report["evidence"])
    assert not [f for f in report["findings"] if f["code"] == "explicit-label-missing"]
    hidden = client.post(
        "/v1/label",
        files={"file": ("f", photo)},
        data={"explicit": "none"},
        headers=auth("omit-key"),
    ).content
    report = _verify(client, hidden, check_visible="true")
    assert report["classification"] == "confirmed"
    assert [f for f in report["findings"] if f["code"] == "explicit-label-missing"]


def test_sm2_scheme_signs_and_verifies_producer_and_platform(tmp_path: Path) -> None:
    import json

    from app.main import create_app
    from app.settings import Settings
    from tests.support import KEYS

    settings = Settings(data_dir=tmp_path / "var", api_keys=json.dumps(KEYS), record_scheme="sm2")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        propagated = _propagate(client, _label(client, _photo("PNG"))).content
        report = _verify(client, propagated)
    rec = report["record"]
    assert rec["ReservedCode1"].startswith("SM2.") and rec["ReservedCode2"].startswith("SM2.")
    assert report["integrity"]["producer"]["status"] == "valid"
    assert report["integrity"]["platform"]["status"] == "valid"
    assert (tmp_path / "var" / "record-signing-key-sm2.pem").exists()


@needs_ocr
def test_a_large_jpeg_is_read_at_half_size_with_the_same_findings(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify decodes JPEGs over ANALYSIS_PIXELS at half size: the watermark and the
    visible label are still found, and the label's box is reported in the image's pixels."""
    from labelers import imaging

    labelled = _label(client, _photo(size=(1600, 1200), seed=5))
    reports = [_verify(client, labelled, check_visible="true")]
    monkeypatch.setattr(imaging, "ANALYSIS_PIXELS", 1600 * 1200 - 1)
    assert imaging.open_for_analysis(labelled, "image/jpeg").scale == 0.5
    reports.append(_verify(client, labelled, check_visible="true"))
    boxes = []
    for report in reports:
        carriers = {e["carrier"] for e in report["evidence"]}
        assert "image:spread-spectrum" in carriers, carriers
        assert not [f for f in report["findings"] if f["code"] == "explicit-label-missing"]
        boxes.append(next(e for e in report["evidence"] if e["carrier"] == "image:visible-ocr"))
    full, half = (np.array(b["data"]["box"], float) for b in boxes)
    assert np.abs(full - half).max() <= 0.02 * 1200, (full, half)
    assert boxes[1]["data"]["shortest_side"] == 1200
