"""Real generators' files (../shared/corpus/wild, see its README) classify as published
with the origin their maker wrote, and come out `none` once stripped to pixels when
nothing visible survives. The visible-mark expectations after stripping (Doubao, Jimeng,
Samsung) belong to the visible-mark finder's tests."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup

WILD = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "wild"
pytestmark = pytest.mark.skipif(not WILD.is_dir(), reason="the shared wild corpus is absent")

# file -> (class as published, company of the origin, findings that must be there)
AS_PUBLISHED = {
    "chatgpt-2.png": ("suspected", "OpenAI", {"c2pa-certificate"}),
    "chatgpt-3.png": ("suspected", "OpenAI", set()),
    "firefly-1.png": ("suspected", "Adobe", {"c2pa-untrusted"}),
    "flux-1.jpg": ("suspected", "Black Forest Labs", set()),
    "mj-1.png": ("suspected", "Midjourney", set()),
    "doubao_gray_1x1_1.png": ("confirmed", "ByteDance", {"propagator-empty"}),
    "jimeng_cap_C.png": ("confirmed", "ByteDance", set()),
    "samsung_gray_1.png": ("suspected", "Samsung", {"c2pa-certificate"}),
}
# metadata and C2PA only, nothing drawn: after stripping there is nothing left to find
NOTHING_VISIBLE = ["chatgpt-2.png", "chatgpt-3.png", "firefly-1.png", "flux-1.jpg", "mj-1.png"]
OWN_KINDS = {"metadata-record", "c2pa", "iptc", "generator-trace"}


@pytest.mark.parametrize("name", sorted(AS_PUBLISHED))
def test_as_published(name: str) -> None:
    expected, company, findings = AS_PUBLISHED[name]
    report = verify_file((WILD / name).read_bytes(), VerifyContext(NoLookup())).to_dict()
    assert report["classification"] == expected, report["rule"]
    origin = report["origin"]
    assert origin is not None and origin["company"] == company, origin
    assert findings <= {f["code"] for f in report["findings"]}
    # the origin points at evidence that exists and names the same generator
    for i in origin["evidence"]:
        assert report["evidence"][i]["data"]["generator"] == origin["generator"]


def test_chatgpt_export_finds_openai_one_manifest_down() -> None:
    report = verify_file((WILD / "chatgpt-2.png").read_bytes(), VerifyContext(NoLookup())).to_dict()
    active, parent = report["c2pa"]["manifests"]
    assert (
        active["actions"][0]["action"] == "c2pa.opened"
        and not active["actions"][0]["digital_source_type"]
    )
    assert active["ingredients"][0] == {
        "title": "image.png",
        "relationship": "parentOf",
        "manifest": parent["label"],
    }
    assert parent["depth"] == 1 and parent["actions"][0]["action"] == "c2pa.created"
    [evidence] = [e for e in report["evidence"] if e["kind"] == "c2pa"]
    assert "OpenAI" in evidence["summary"] and evidence["data"]["depth"] == 1
    # expired, untrusted, but the content still matches what OpenAI signed
    assert report["c2pa"]["validation"] == "certificate-expired"
    assert parent["validation"] == "valid-untrusted"


def test_samsung_edit_is_a_composite_with_an_invalid_certificate() -> None:
    report = verify_file(
        (WILD / "samsung_gray_1.png").read_bytes(), VerifyContext(NoLookup())
    ).to_dict()
    [evidence] = [e for e in report["evidence"] if e["kind"] == "c2pa"]
    assert evidence["data"]["action"] == "c2pa.edited"
    assert evidence["data"]["digital_source_type"].endswith("compositeWithTrainedAlgorithmicMedia")
    assert report["c2pa"]["validation"] == "certificate-invalid"


def _stripped(name: str) -> bytes:
    buf = io.BytesIO()
    Image.open(WILD / name).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("name", NOTHING_VISIBLE)
def test_after_stripping_nothing_is_left(name: str) -> None:
    report = verify_file(_stripped(name), VerifyContext(NoLookup())).to_dict()
    assert not [e for e in report["evidence"] if e["kind"] in OWN_KINDS]
    assert report["classification"] == "none", report["evidence"]
    assert report["origin"] is None and report["c2pa"] is None


@pytest.mark.parametrize(
    "name", ["doubao_gray_1x1_1.png", "jimeng_cap_C.png", "samsung_gray_1.png"]
)
def test_after_stripping_no_metadata_evidence_survives(name: str) -> None:
    # what survives there is visible only (the visible-mark finder's domain)
    report = verify_file(_stripped(name), VerifyContext(NoLookup())).to_dict()
    metadata = [
        e
        for e in report["evidence"]
        if e["kind"] in OWN_KINDS and not e["carrier"].startswith("image:visible")
    ]
    assert not metadata
    assert report["record"] is None and report["c2pa"] is None
