"""Generator traces from the data table, the producer directory, and the report's origin,
on files the tests write themselves (Pillow, exiftool) and check with exiftool."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from detectors.origin import producer_for
from detectors.traces import generator_named_in, generator_signing_as, source_type, table

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")


def _pixels(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8))


def _jpeg_with_exif(**fields: str) -> bytes:
    image = _pixels()
    exif = Image.Exif()
    tags = {"ImageDescription": 0x010E, "Artist": 0x013B, "Software": 0x0131, "Make": 0x010F}
    for name, value in fields.items():
        if name == "UserComment":
            exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + value.encode()
        else:
            exif[tags[name]] = value
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def _exiftool(data: bytes, tmp_path: Path, suffix: str) -> dict:
    path = tmp_path / f"probe{suffix}"
    path.write_bytes(data)
    out = subprocess.run(["exiftool", "-j", "-G1", path], check=True, capture_output=True)
    return json.loads(out.stdout)[0]


GROK_SIGNATURE = "Signature: " + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkwYWJjZA=="


@needs_exiftool
def test_grok_style_exif_signature_with_uuid_artist_is_a_trace(tmp_path) -> None:
    data = _jpeg_with_exif(
        ImageDescription=GROK_SIGNATURE, UserComment=GROK_SIGNATURE, Artist=str(uuid.uuid4())
    )
    tags = _exiftool(data, tmp_path, ".jpg")  # the fixture is what an EXIF reader sees
    assert tags["IFD0:ImageDescription"] == GROK_SIGNATURE
    assert tags["ExifIFD:UserComment"] == GROK_SIGNATURE
    report = verify_file(data, VerifyContext(NoLookup())).to_dict()
    assert report["classification"] == "suspected"
    [trace] = [e for e in report["evidence"] if e["kind"] == "generator-trace"]
    assert trace["data"]["generator"] == "xAI Grok"
    assert report["origin"]["generator"] == "xAI Grok"
    assert report["origin"]["company"] == "xAI"
    assert report["origin"]["evidence"] == [trace["id"]]


@pytest.mark.parametrize(
    "fields",
    [
        {"Artist": str(uuid.uuid4())},  # a UUID alone is any asset manager's
        {"ImageDescription": GROK_SIGNATURE},  # the signature without its UUID
        {"ImageDescription": "Signature: hi", "Artist": str(uuid.uuid4())},  # not base64 enough
        {"Software": "Adobe Photoshop 25.0 (Windows)", "Make": "Canon"},
        {"Software": "Microsoft Windows Photo Viewer 10.0"},
        {"Software": "GIMP 2.10.36", "Artist": "Jane Doe"},
        {"Software": "Influxer Camera 1.0"},  # "flux" inside a word is nobody
        # phone makers who also sign AI edits: their camera photos are not AI
        {"Make": "samsung", "Software": "S928BXXU1AXA1"},
        {"Make": "Google", "Software": "HDR+ 1.0.620990418zd"},
    ],
)
def test_camera_and_editor_exif_is_no_trace(fields) -> None:
    report = verify_file(_jpeg_with_exif(**fields), VerifyContext(NoLookup())).to_dict()
    assert not [e for e in report["evidence"] if e["kind"] == "generator-trace"], report
    assert report["classification"] in ("none", "suspected")  # suspected only by OCR, not here
    assert not report["origin"] or report["origin"]["generator"] is None


def test_software_naming_an_ai_tool_is_a_trace() -> None:
    report = verify_file(
        _jpeg_with_exif(Software="Adobe Firefly Image 3"), VerifyContext(NoLookup())
    ).to_dict()
    [trace] = [e for e in report["evidence"] if e["kind"] == "generator-trace"]
    assert trace["carrier"] == "exif:Software" and trace["data"]["generator"] == "Adobe Firefly"
    assert report["classification"] == "suspected"


def _png(text: dict[str, str] | None = None, itxt: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    _pixels(1).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_stable_diffusion_parameters_are_a_trace_of_a1111() -> None:
    params = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"
    report = verify_file(_png({"parameters": params}), VerifyContext(NoLookup())).to_dict()
    [trace] = [e for e in report["evidence"] if e["kind"] == "generator-trace"]
    assert "AUTOMATIC1111" in trace["data"]["generator"]
    assert report["classification"] == "suspected"


@needs_exiftool
@pytest.mark.parametrize(
    ("code", "ai"),
    [
        ("trainedAlgorithmicMedia", True),
        ("compositeWithTrainedAlgorithmicMedia", True),
        ("algorithmicMedia", True),
        ("compositeSynthetic", True),
        ("digitalCapture", False),
        ("minorHumanEdits", False),
    ],
)
def test_iptc_source_types_written_by_exiftool(tmp_path, code, ai) -> None:
    path = tmp_path / "iptc.png"
    path.write_bytes(_png())
    uri = f"http://cv.iptc.org/newscodes/digitalsourcetype/{code}"
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", f"-XMP-iptcExt:DigitalSourceType={uri}", path],
        check=True,
    )
    report = verify_file(path.read_bytes(), VerifyContext(NoLookup())).to_dict()
    [iptc] = [e for e in report["evidence"] if e["kind"] == "iptc"]
    assert iptc["data"]["ai"] is ai
    if ai:
        assert report["classification"] == "suspected"
        assert report["origin"]["generator"] is None and report["origin"]["confidence"] == "low"


def test_the_table_names_generators_by_whole_words_only() -> None:
    assert generator_named_in("gpt-image 2.0").company == "OpenAI"
    assert generator_named_in("Flux.2").company == "Black Forest Labs"
    assert generator_named_in("Adobe Photoshop 25.0") is None
    assert generator_named_in("Fireflyer") is None
    assert generator_signing_as(None, "OpenAI OpCo, LLC").company == "OpenAI"
    assert generator_signing_as("Samsung Galaxy").company == "Samsung"
    assert generator_signing_as("Truepic", "DigiCert Inc") is None
    assert source_type("trainedAlgorithmicMedia").ai
    assert not source_type("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture").ai
    # every trace row names a generator the table knows (checked at load)
    assert table().generators


@pytest.mark.parametrize(
    ("value", "company", "product"),
    [
        ("001191110102MACQD9K64010000", "ByteDance", "Doubao"),
        ("00119144030008867405X210001", "ByteDance", "Jimeng / Dreamina"),
        ("00119144030008867405X220001", "ByteDance", "Jimeng / Dreamina"),
        ("001191110108335469089C10000", "Kuaishou", "Kling"),
        ("doubao", "ByteDance", "Doubao"),
        ("KLING", "Kuaishou", "Kling"),
        ("MiniMax", "MiniMax", "Hailuo (video), music"),
    ],
)
def test_producer_codes_and_bare_names_resolve(value, company, product) -> None:
    found = producer_for(value)
    assert found is not None
    assert (found[0].company, found[0].product) == (company, product)


@pytest.mark.parametrize(
    "value",
    [
        "doubao2",
        "kling-ai",
        "the doubao app",
        "MiniMaxx",
        "0011911000000000000010000X1",  # a code with an unknown USCC
        "0191110102MACQD9K64010000XX",  # the USCC shifted out of characters 5-22
        "91110102MACQD9K640",  # a bare USCC is not a provider code
        "",
    ],
)
def test_partial_names_and_unknown_codes_resolve_to_nobody(value) -> None:
    assert producer_for(value) is None


@needs_exiftool
def test_an_ai_tool_in_xmp_creator_tool_written_by_exiftool_is_a_trace(tmp_path) -> None:
    path = tmp_path / "tool.png"
    path.write_bytes(_png())
    tags = ["-XMP-xmp:CreatorTool=Microsoft Designer", "-XMP-dc:Description=a poster"]
    subprocess.run(["exiftool", "-q", "-overwrite_original", *tags, path], check=True)
    report = verify_file(path.read_bytes(), VerifyContext(NoLookup())).to_dict()
    [trace] = [e for e in report["evidence"] if e["kind"] == "generator-trace"]
    assert trace["carrier"] == "xmp:CreatorTool"
    assert report["origin"]["company"] == "Microsoft"


def test_one_generator_named_differently_by_two_finders_is_one_origin() -> None:
    from detectors.classify import classify
    from detectors.report import EXPLICIT, RECORD, Evidence, Report

    report = Report(media_type="image/png")
    report.evidence += [
        Evidence(EXPLICIT, "image:visible", "即梦AI mark", {"generator": "ByteDance Jimeng"}),
        Evidence(RECORD, "xmp:TC260:AIGC", "record", {"generator": "ByteDance Jimeng / Dreamina"}),
        Evidence(EXPLICIT, "image:visible", "sparkle", {"generator": "Google Gemini"}),
    ]
    origin = classify(report).origin
    assert origin["generator"] == "ByteDance Jimeng / Dreamina"
    assert origin["company"] == "ByteDance" and origin["confidence"] == "high"
    assert origin["evidence"] == [0, 1]
