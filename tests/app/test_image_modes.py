"""CMYK JPEG, 16-bit grey PNG and CIE L*a*b* TIFF label by default and verify.

Through the real app. Independent checks: a fresh Pillow decode for mode,
ICC profile and the visible label; exiftool strips the metadata record, and
verify still says ``confirmed`` from the watermark alone (found in the
ledger), which proves the mark is in the pixels of the file's own mode.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageCms

from app.ledger import watermark_key
from labelers.imaging import luminance_plane
from labelers.watermark import image as image_watermark
from tests.imagery import photo
from tests.support import auth

SIZE = (480, 360)


def _rgb() -> Image.Image:
    return photo(*SIZE, 5)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    _rgb().convert("CMYK").save(buf, "JPEG", quality=90, icc_profile=_srgb_icc())
    return buf.getvalue()


def gray16_png() -> bytes:
    wide = np.asarray(_rgb().convert("L"), dtype=np.uint16) * 257
    wide += np.random.default_rng(3).integers(0, 200, wide.shape, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, "PNG")
    return buf.getvalue()


def lab_tiff() -> bytes:
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    image = ImageCms.applyTransform(_rgb(), ImageCms.buildTransform(srgb, lab, "RGB", "LAB"))
    buf = io.BytesIO()
    image.save(buf, "TIFF", icc_profile=_srgb_icc())
    return buf.getvalue()


CASES = {
    "cmyk.jpg": (cmyk_jpeg, "CMYK"),
    "gray16.png": (gray16_png, "I;16"),
    "lab.tif": (lab_tiff, "LAB"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mode_labels_by_default_and_verifies_confirmed(
    client: TestClient, tmp_path: Path, name: str
) -> None:
    make, mode = CASES[name]
    original = make()
    before = Image.open(io.BytesIO(original))
    assert before.mode == mode
    labelled = client.post("/v1/label", files={"file": (name, original)}, headers=auth())
    assert labelled.status_code == 200, labelled.text
    assert labelled.headers["AIGC-Explicit"] == "bottom-right"
    assert labelled.headers["AIGC-Watermark"] == "embedded"
    produce_id = labelled.headers["AIGC-Produce-ID"]

    after = Image.open(io.BytesIO(labelled.content))
    after.load()
    assert after.mode == mode and after.size == before.size
    assert after.info.get("icc_profile") == before.info.get("icc_profile")
    # the visible label: the bottom-right corner changed by much of the value range,
    # the top-left only by the faint watermark
    full = 65535 if mode == "I;16" else 255
    diff = np.abs(np.asarray(before, dtype=np.int64) - np.asarray(after, dtype=np.int64)) / full
    h, w = diff.shape[:2]
    assert diff[-h // 8 :, -w // 4 :].max() > 0.4
    assert diff[: h // 4, : w // 4].max() < 0.1
    # the mark is in the luminance of the file's own mode
    found = image_watermark.decode(luminance_plane(after))
    assert found is not None and found.payload == watermark_key(produce_id)

    verified = client.post("/v1/verify", files={"file": (name, labelled.content)}, headers=auth())
    assert verified.json()["classification"] == "confirmed"


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
@pytest.mark.parametrize("name", sorted(CASES))
def test_mark_alone_confirms_after_metadata_is_stripped(
    client: TestClient, tmp_path: Path, name: str
) -> None:
    make, _mode = CASES[name]
    form = {"c2pa": "false"}  # the manifest would carry the record too
    labelled = client.post("/v1/label", files={"file": (name, make())}, data=form, headers=auth())
    assert labelled.status_code == 200, labelled.text
    path = tmp_path / name
    path.write_bytes(labelled.content)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-xmp:all=", "-exif:all=", str(path)],
        check=True,
    )
    report = client.post(
        "/v1/verify", files={"file": (name, path.read_bytes())}, headers=auth()
    ).json()
    assert report["records"] and all(r["source"] != "metadata" for r in report["records"]), report
    assert report["classification"] == "confirmed", report
    assert "watermark" in report["rule"]
