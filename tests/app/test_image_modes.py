"""CMYK and YCCK JPEG, 16-bit grey PNG and CIE L*a*b* TIFF label by default and verify.

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


def _separated() -> np.ndarray:
    """The test photo as a press separation would give it: CMY with black generated
    (grey component replacement), so K carries the image too, not just zeros."""
    cmy = 255 - np.asarray(_rgb(), dtype=np.int32)
    k = (cmy.min(axis=-1) * 0.8).astype(np.int32)
    return np.dstack([cmy - k[..., None], k]).astype(np.uint8)


def _set_adobe_transform(jpeg: bytes, transform: int) -> bytes:
    """``jpeg`` with the colour transform of its Adobe APP14 segment set (0 CMYK, 2 YCCK)."""
    out, i, found = bytearray(jpeg), 2, 0
    while i + 4 <= len(out) and out[i] == 0xFF and out[i + 1] != 0xDA:  # up to the scan
        body, length = i + 4, int.from_bytes(out[i + 2 : i + 4], "big")
        if out[i + 1] == 0xEE and out[body : body + 5] == b"Adobe":
            out[body + 11] = transform  # "Adobe", version, flags0, flags1, transform
            found += 1
        i += 2 + length
    assert found == 1, "no Adobe APP14 segment"
    return bytes(out)


def ycck_jpeg() -> bytes:
    """A YCCK JPEG, as Photoshop writes CMYK: Adobe APP14 transform 2, the scan holding
    Y, Cb, Cr of the inverted C, M, Y (as if RGB) and the inverted K.

    Pillow writes only plain CMYK (transform 0) and stores every component
    inverted (Adobe's convention), so it is given the inverse of the YCCK
    components to store, and the transform flag is set afterwards. A decoder
    (libjpeg) turns YCCK back into the CMYK of :func:`_separated`;
    test_ycck_is_a_real_ycck_jpeg checks that it does.
    """
    cmyk = _separated()
    ycc = np.asarray(Image.fromarray(cmyk[..., :3], "RGB").convert("YCbCr"), dtype=np.uint8)
    stored = np.dstack([ycc, 255 - cmyk[..., 3]])
    buf = io.BytesIO()
    Image.fromarray(255 - stored, "CMYK").save(buf, "JPEG", quality=90, icc_profile=_srgb_icc())
    return _set_adobe_transform(buf.getvalue(), 2)


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
    "ycck.jpg": (ycck_jpeg, "CMYK"),  # Pillow decodes YCCK to CMYK
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


def _exif(path: Path, *tags: str) -> dict[str, str]:
    out = subprocess.run(
        ["exiftool", "-s", "-s", "-s", "-f", *(f"-{t}" for t in tags), str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return dict(zip(tags, out, strict=True))


def test_ycck_is_a_real_ycck_jpeg() -> None:
    """The fixture is what its name says: the same bytes read as plain CMYK give other
    colours, read as YCCK (as libjpeg does, from the APP14 flag) the intended ones."""
    data = ycck_jpeg()
    ycck = Image.open(io.BytesIO(data))
    assert ycck.mode == "CMYK" and ycck.info["adobe_transform"] == 2
    intended = _separated().astype(np.int64)
    assert np.abs(np.asarray(ycck, dtype=np.int64) - intended).mean() < 3
    as_cmyk = Image.open(io.BytesIO(_set_adobe_transform(data, 0)))
    assert np.abs(np.asarray(as_cmyk, dtype=np.int64) - intended).mean() > 20
    assert intended[..., 3].mean() > 20  # K carries the image


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_ycck_labels_by_default_keeping_four_components_and_its_icc_profile(
    client: TestClient, tmp_path: Path
) -> None:
    """Read by exiftool, an independent JPEG parser: the input is YCCK, the output keeps
    four colour components (CMYK: Pillow writes no YCCK, so the transform becomes
    Adobe's plain CMYK, 0) and carries the same ICC profile, byte for byte."""
    src, out = tmp_path / "ycck.jpg", tmp_path / "labelled.jpg"
    src.write_bytes(ycck_jpeg())
    labelled = client.post(
        "/v1/label", files={"file": ("ycck.jpg", src.read_bytes())}, headers=auth()
    )
    assert labelled.status_code == 200, labelled.text
    assert labelled.headers["AIGC-Watermark"] == "embedded"
    out.write_bytes(labelled.content)
    tags = ("ColorTransform", "ColorComponents", "ProfileDescription", "ImageSize", "AIGC")
    before, after = _exif(src, *tags), _exif(out, *tags)
    assert before["ColorTransform"] == "YCCK" and before["ColorComponents"] == "4"
    assert after["ColorComponents"] == "4" and after["ColorTransform"] != "YCCK"
    assert after["ImageSize"] == before["ImageSize"] == "480x360"
    assert after["ProfileDescription"] == before["ProfileDescription"] == "sRGB built-in"
    icc = [
        subprocess.run(
            ["exiftool", "-b", "-ICC_Profile", str(p)], check=True, capture_output=True
        ).stdout
        for p in (src, out)
    ]
    assert icc[0][36:40] == b"acsp" and icc[0] == icc[1]  # an ICC profile, unchanged
