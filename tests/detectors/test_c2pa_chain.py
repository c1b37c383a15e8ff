"""C2PA chains as real exports build them, signed here with c2pa's own Builder and the
development CA: the AI origin below the active manifest (ChatGPT: c2pa.opened over a
created parent; Gemini: two levels down) makes the file suspected and names the
generator; validation is told apart per manifest (trusted, untrusted, content altered);
a chain longer than the limits is cut, with a finding."""

from __future__ import annotations

import io
import json

import c2pa
import numpy as np
import pytest
from PIL import Image

from app.dev_credentials import ensure_dev_credentials
from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from labelers.provenance import reader as provenance_reader
from labelers.provenance import validation_word

TAM = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return ensure_dev_credentials(tmp_path_factory.mktemp("c2pa"))


@pytest.fixture(scope="module")
def anchors(creds) -> str:
    return creds.ca_pem.read_text()


@pytest.fixture(scope="module")
def native(creds):
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(
            b"es256", creds.chain_pem.read_bytes(), creds.key_pem.read_bytes(), None
        )
    )
    context = c2pa.Context(c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
    return signer, context


def _png(seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _sign(
    native,
    data: bytes,
    actions: list[dict],
    agent: str,
    parent: bytes | None = None,
    relationship: str = "parentOf",
):
    signer, context = native
    manifest = {
        "claim_generator_info": [{"name": agent, "version": "1.0"}],
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
    }
    builder = c2pa.Builder(manifest, context=context)
    if parent is not None:
        builder.add_ingredient(
            {"relationship": relationship, "label": "parent", "title": "original.png"},
            "image/png",
            io.BytesIO(parent),
        )
    out = io.BytesIO()
    builder.sign(signer, "image/png", io.BytesIO(data), out)
    return out.getvalue()


def _created(native, seed: int = 1) -> bytes:
    action = {
        "action": "c2pa.created",
        "digitalSourceType": TAM,
        "softwareAgent": {"name": "GPT-4o"},
    }
    return _sign(native, _png(seed), [action], "ChatGPT")


def _opened(native, parent: bytes, agent: str = "Photo Editor") -> bytes:
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}
    resized = {"action": "c2pa.resized", "softwareAgent": {"name": agent}}
    return _sign(native, parent, [opened, resized], agent, parent=parent)


def test_opened_over_a_created_parent_is_suspected_and_names_openai(native, anchors) -> None:
    exported = _opened(native, _created(native))
    report = verify_file(exported, VerifyContext(NoLookup(), trust_anchors_pem=anchors)).to_dict()
    assert report["classification"] == "suspected"
    chain = report["c2pa"]
    assert [m["depth"] for m in chain["manifests"]] == [0, 1]
    active, parent = chain["manifests"]
    assert active["active"] and active["actions"][0]["action"] == "c2pa.opened"
    assert active["ingredients"][0]["relationship"] == "parentOf"
    assert active["ingredients"][0]["manifest"] == parent["label"]
    assert parent["actions"][0]["digital_source_type"] == TAM
    assert chain["validation"] == active["validation"] == "trusted"
    [evidence] = [e for e in report["evidence"] if e["kind"] == "c2pa"]
    assert evidence["data"]["manifest"] == parent["label"] and evidence["data"]["depth"] == 1
    assert evidence["data"]["software_agent"] == "GPT-4o"
    assert evidence["data"]["signer"]["common_name"]
    assert "OpenAI" in report["origin"]["generator"]
    assert report["origin"]["evidence"] == [evidence["id"]]


def test_ai_origin_two_levels_down_still_counts(native, anchors) -> None:
    twice = _opened(native, _opened(native, _created(native), "Gemini export"), "Uploader")
    report = verify_file(twice, VerifyContext(NoLookup(), trust_anchors_pem=anchors)).to_dict()
    assert report["classification"] == "suspected"
    depths = [m["depth"] for m in report["c2pa"]["manifests"]]
    assert depths == [0, 1, 2]
    [evidence] = [e for e in report["evidence"] if e["kind"] == "c2pa"]
    assert evidence["data"]["depth"] == 2 and evidence["data"]["action"] == "c2pa.created"


def test_an_ai_component_of_a_created_composite_counts(native, anchors) -> None:
    placed = {"action": "c2pa.placed", "parameters": {"ingredientIds": ["parent"]}}
    created = {
        "action": "c2pa.created",
        "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation",
    }
    component = _created(native)
    poster = _sign(native, _png(3), [created, placed], "Layout Tool", component, "componentOf")
    report = verify_file(poster, VerifyContext(NoLookup(), trust_anchors_pem=anchors)).to_dict()
    assert report["classification"] == "suspected"
    assert report["c2pa"]["manifests"][1]["relationship"] == "componentOf"
    [evidence] = [e for e in report["evidence"] if e["kind"] == "c2pa"]
    assert evidence["data"]["depth"] == 1


def test_a_store_with_more_manifests_than_the_limit_is_cut(native, anchors, monkeypatch) -> None:
    monkeypatch.setattr(provenance_reader, "MAX_CHAIN_MANIFESTS", 1)
    report = verify_file(
        _opened(native, _created(native)), VerifyContext(NoLookup(), trust_anchors_pem=anchors)
    )
    assert len(report.c2pa["manifests"]) == 1 and report.c2pa["truncated"]


def test_a_chain_without_ai_source_type_is_not_evidence_of_ai(native, anchors) -> None:
    capture = {
        "action": "c2pa.created",
        "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
    }
    photo = _opened(native, _sign(native, _png(2), [capture], "Camera"))
    report = verify_file(photo, VerifyContext(NoLookup(), trust_anchors_pem=anchors)).to_dict()
    assert report["classification"] == "none"
    assert report["origin"] is None
    assert len(report["c2pa"]["manifests"]) == 2
    [evidence] = [e for e in report["evidence"] if e["kind"] == "c2pa"]
    assert evidence["data"]["ai"] is False


def test_untrusted_and_content_altered_are_told_apart(native, anchors) -> None:
    exported = _opened(native, _created(native))
    untrusted = verify_file(exported, VerifyContext(NoLookup())).to_dict()
    assert untrusted["c2pa"]["validation"] == "valid-untrusted"
    assert {m["validation"] for m in untrusted["c2pa"]["manifests"]} == {"valid-untrusted"}
    assert untrusted["classification"] == "suspected"
    assert untrusted["origin"]["confidence"] == "medium"  # the signer is not anchored
    # one pixel changed after signing: decode, edit, re-encode, keep the manifest
    edited = _altered(exported)
    report = verify_file(edited, VerifyContext(NoLookup(), trust_anchors_pem=anchors)).to_dict()
    assert report["c2pa"]["validation"] == "content-altered"
    assert any(f["code"] == "c2pa-content-altered" for f in report["findings"])
    # the AI claim is history now, still a reason to suspect
    assert report["classification"] == "suspected"
    assert report["origin"]["confidence"] == "low"


def _altered(signed: bytes) -> bytes:
    """The PNG with one IDAT byte flipped (pixels changed), every other chunk kept."""
    import struct
    import zlib

    out, pos = bytearray(signed[:8]), 8
    flipped = False
    while pos < len(signed):
        (length,) = struct.unpack(">I", signed[pos : pos + 4])
        kind = signed[pos + 4 : pos + 8]
        body = signed[pos + 8 : pos + 8 + length]
        if kind == b"IDAT" and not flipped:
            raw = bytearray(zlib.decompress(body))
            raw[len(raw) // 2] ^= 0xFF
            body = zlib.compress(bytes(raw))
            flipped = True
        out += struct.pack(">I", len(body)) + kind + body
        out += struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + length
    return bytes(out)


def test_a_chain_deeper_than_the_limit_is_cut_with_a_finding(native, anchors, monkeypatch) -> None:
    deep = _opened(native, _opened(native, _created(native)))
    monkeypatch.setattr(provenance_reader, "MAX_CHAIN_DEPTH", 1)
    report = verify_file(deep, VerifyContext(NoLookup(), trust_anchors_pem=anchors)).to_dict()
    assert [m["depth"] for m in report["c2pa"]["manifests"]] == [0, 1]
    assert report["c2pa"]["truncated"] is True
    assert any(f["code"] == "c2pa-chain-truncated" for f in report["findings"])
    # the AI origin beyond the cut is not claimed
    assert not [e for e in report["evidence"] if e["kind"] == "c2pa" and e["data"]["ai"]]


def test_validation_words_from_spec_failure_codes() -> None:
    assert validation_word([], True) == "trusted"
    assert validation_word(["signingCredential.untrusted"], False) == "valid-untrusted"
    expired = ["signingCredential.untrusted", "signingCredential.expired"]
    assert validation_word(expired, False) == "certificate-expired"
    assert validation_word(["signingCredential.invalid"], False) == "certificate-invalid"
    assert validation_word(["assertion.dataHash.mismatch", *expired], False) == "content-altered"
    assert validation_word(["claimSignature.mismatch"], False) == "invalid"
    assert validation_word(["timeStamp.untrusted"], True) == "trusted"


def test_report_is_json_with_the_contract_fields(native, anchors) -> None:
    report = verify_file(
        _created(native), VerifyContext(NoLookup(), trust_anchors_pem=anchors)
    ).to_dict()
    text = json.loads(json.dumps(report))
    [manifest] = text["c2pa"]["manifests"]
    assert set(manifest) >= {
        "label",
        "active",
        "depth",
        "claim_generator",
        "signer",
        "actions",
        "ingredients",
        "validation",
        "validation_codes",
    }
    assert set(manifest["signer"]) == {"issuer", "common_name"}
    assert set(manifest["actions"][0]) == {"action", "digital_source_type", "software_agent"}
    assert [e["id"] for e in text["evidence"]] == list(range(len(text["evidence"])))
    assert all(f["action"] for f in text["findings"])
