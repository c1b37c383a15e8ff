"""No false alarms from the metadata, C2PA, IPTC and trace finders on real photographs
that are not AI (scikit-image's bundled images, some with text in them), dressed in the
metadata cameras and editors write, nor on our own labelled files once stripped.

The visible-mark finder has its own false-positive tests; here only the evidence kinds
these finders own are judged."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.dev_credentials import ensure_dev_credentials
from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from labelers.pipeline import FileOptions, LabelContext, label_file
from labelers.provenance import C2paSigner
from labelers.record import Record

skdata = pytest.importorskip("skimage.data")

OWN_KINDS = {"metadata-record", "c2pa", "iptc", "generator-trace"}
PHOTOS = ["astronaut", "coffee", "chelsea", "page", "text", "camera", "rocket", "clock", "coins"]
CAMERAS = [
    {"Make": "Canon", "Model": "Canon EOS R5", "Software": "Adobe Photoshop Lightroom 13.0"},
    {"Make": "samsung", "Model": "Galaxy S24 Ultra", "Software": "S928BXXU1AXA1"},
    {"Make": "Google", "Model": "Pixel 8 Pro", "Software": "HDR+ 1.0.620990418zd"},
    {"Make": "Apple", "Model": "iPhone 15 Pro", "Software": "17.1", "Artist": "Jane Doe"},
]
_TAGS = {"Make": 0x010F, "Model": 0x0110, "Software": 0x0131, "Artist": 0x013B}


def _photo(name: str) -> Image.Image:
    pixels = getattr(skdata, name)()
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    return Image.fromarray(pixels).convert("RGB")


def _as_published(index: int, name: str) -> bytes:
    exif = Image.Exif()
    for key, value in CAMERAS[index % len(CAMERAS)].items():
        exif[_TAGS[key]] = value
    buf = io.BytesIO()
    fmt = "JPEG" if index % 2 else "PNG"
    _photo(name).save(buf, fmt, exif=exif, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _judged(data: bytes) -> dict:
    report = verify_file(data, VerifyContext(NoLookup())).to_dict()
    own = [e for e in report["evidence"] if e["kind"] in OWN_KINDS]
    assert not own, own
    assert report["c2pa"] is None and report["record"] is None
    assert not report["origin"] or report["origin"]["generator"] is None
    return report


@pytest.mark.parametrize(("index", "name"), list(enumerate(PHOTOS)))
def test_real_photographs_with_camera_metadata_raise_no_evidence(index: int, name: str) -> None:
    _judged(_as_published(index, name))


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="needs exiftool")
def test_a_photo_declared_a_digital_capture_in_iptc_is_not_ai(tmp_path: Path) -> None:
    path = tmp_path / "capture.jpg"
    path.write_bytes(_as_published(1, "coffee"))
    uri = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
    tags = [
        f"-XMP-iptcExt:DigitalSourceType={uri}",
        "-XMP-xmp:CreatorTool=Adobe Photoshop 25.0",
        "-XMP-dc:Description=Coffee, no AI",
    ]
    subprocess.run(["exiftool", "-q", "-overwrite_original", *tags, str(path)], check=True)
    report = verify_file(path.read_bytes(), VerifyContext(NoLookup())).to_dict()
    [iptc] = [e for e in report["evidence"] if e["kind"] == "iptc"]
    assert iptc["data"]["ai"] is False
    assert not [e for e in report["evidence"] if e["kind"] == "generator-trace"]
    assert not report["origin"] or report["origin"]["generator"] is None


def test_our_labelled_files_once_stripped_carry_nothing(tmp_path: Path) -> None:
    creds = ensure_dev_credentials(tmp_path / "c2pa")
    signer = C2paSigner.from_files(creds.chain_pem, creds.key_pem)
    buf = io.BytesIO()
    _photo("astronaut").save(buf, "PNG")
    record = Record.first_write("001100000000TESTONLY0010000", "01JSTRIPPEDTEST0000000000")
    options = FileOptions(explicit=False, watermark=False, c2pa=True)
    labelled = label_file(buf.getvalue(), record, options, LabelContext(signer=signer)).data
    before = verify_file(labelled, VerifyContext(NoLookup())).to_dict()
    assert before["classification"] == "confirmed"  # the label was there
    stripped = io.BytesIO()
    Image.open(io.BytesIO(labelled)).convert("RGB").save(stripped, "JPEG", quality=90)
    report = _judged(stripped.getvalue())
    assert report["classification"] == "none"
