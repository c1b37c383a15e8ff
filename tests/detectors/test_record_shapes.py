"""Record shapes met in the wild, in PNGs the tests write with Pillow (XMP packets and
text chunks built by hand): {"aigc":{...}} and other casings, a producer's first write
with empty propagator fields, ProduceIDs with "/", and several records that disagree."""

from __future__ import annotations

import html
import io
import json

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, PngImagePlugin

from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from labelers.formats import get_handler
from labelers.integrity import Keyring, RecordSigner
from labelers.record import Record

DOUBAO = "001191110102MACQD9K64010000"
JIMENG, JIMENG_PLATFORM = "00119144030008867405X210001", "00119144030008867405X220001"


def _xmp(record_json: str) -> str:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" '
        f'TC260:AIGC="{html.escape(record_json)}"/>'
        "</rdf:RDF></x:xmpmeta>"
    )


def _png(xmp: str | None = None, text: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp)
    for key, value in (text or {}).items():
        info.add_text(key, value)
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(
        buf, "PNG", pnginfo=info
    )
    return buf.getvalue()


def _codes(report: dict) -> list[str]:
    return [f["code"] for f in report["findings"]]


def test_lower_case_wrapper_and_keys_are_read_as_the_record() -> None:
    body = {
        "aigc": {
            "label": "1",
            "contentproducer": DOUBAO,
            "produceid": "e3578014edd949debed102781a8c26f7",
            "reservedcode1": "",
            "contentpropagator": DOUBAO,
            "propagateid": "e3578014edd949debed102781a8c26f7",
            "reservedcode2": "",
        }
    }
    report = verify_file(_png(text={"AIGC": json.dumps(body)}), VerifyContext(NoLookup())).to_dict()
    assert report["classification"] == "confirmed"
    assert report["record"]["ContentProducer"] == DOUBAO
    assert report["origin"]["generator"] == "ByteDance Doubao"
    assert report["origin"]["confidence"] == "high"
    # the casing is reported, as a warning on form, not as a broken record
    assert "record-form" in _codes(report) and "invalid-record" not in _codes(report)


def test_first_write_with_empty_propagator_fields_is_confirmed_with_an_info_finding() -> None:
    doubao = (
        '{"Label":"1","ContentProducer":"' + DOUBAO + '","ProduceID":'
        '"e3578014edd949debed102781a8c26f7","ReservedCode1":"","ContentPropagator":"",'
        '"PropagateID":"","ReservedCode2":""}'
    )
    report = verify_file(_png(_xmp(doubao)), VerifyContext(NoLookup())).to_dict()
    assert report["classification"] == "confirmed"
    [finding] = [f for f in report["findings"] if f["code"] == "propagator-empty"]
    assert finding["severity"] == "info" and finding["action"]
    assert "invalid-record" not in _codes(report)
    assert report["integrity"]["producer"]["status"] == "absent"


def test_jimeng_record_with_slash_in_produce_id_and_its_own_platform_code() -> None:
    produce_id = "tos-cn-i-tb4s082cfz/2ef232d44c0c406985fdf6b21c858961"
    record = Record("1", JIMENG, produce_id, "", JIMENG_PLATFORM, produce_id, "").dumps(
        wrapped=False
    )
    report = verify_file(_png(_xmp(record)), VerifyContext(NoLookup())).to_dict()
    assert report["classification"] == "confirmed"
    assert report["record"]["ProduceID"] == produce_id
    assert not {"invalid-record", "propagator-empty"} & set(_codes(report))
    assert report["origin"]["generator"] == "ByteDance Jimeng / Dreamina"
    [evidence] = [e for e in report["evidence"] if e["kind"] == "metadata-record"]
    assert evidence["data"]["propagator"]["company"] == "ByteDance"


def test_disagreeing_records_the_formats_own_carrier_wins_and_the_report_says_why() -> None:
    xmp_record = Record.first_write(DOUBAO, "AAA111")
    legacy = Record.first_write(JIMENG, "BBB222")
    data = _png(_xmp(xmp_record.dumps(wrapped=False)), {"AIGC": legacy.dumps()})
    report = verify_file(data, VerifyContext(NoLookup())).to_dict()
    assert report["record"]["ProduceID"] == "AAA111"
    [finding] = [f for f in report["findings"] if f["code"] == "records-disagree"]
    assert "xmp:TC260:AIGC" in finding["detail"] and "own record carrier" in finding["detail"]
    assert "png:tEXt:AIGC" in finding["detail"]


def test_disagreeing_records_a_verified_signature_wins() -> None:
    signer = RecordSigner(Ed25519PrivateKey.generate())
    unsigned = _png()
    digest = get_handler("image/png").content_digest(unsigned)
    legacy = signer.sign_producer(Record.first_write(JIMENG, "BBB222"), digest)
    xmp_record = Record.first_write(DOUBAO, "AAA111")
    data = _png(_xmp(xmp_record.dumps(wrapped=False)), {"AIGC": legacy.dumps()})
    ring = Keyring()
    ring.add(signer.public_key, {JIMENG})
    report = verify_file(data, VerifyContext(NoLookup(), keyring=ring)).to_dict()
    assert report["record"]["ProduceID"] == "BBB222"
    assert report["integrity"]["producer"]["status"] == "valid"
    [finding] = [f for f in report["findings"] if f["code"] == "records-disagree"]
    assert "png:tEXt:AIGC" in finding["detail"] and "signature verifies" in finding["detail"]
