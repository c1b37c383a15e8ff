"""Opening images for pixel edits and writing them back: settings and metadata survive."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin, PngImagePlugin, features

from labelers.errors import CorruptInput, LimitExceeded, UnsupportedMedia
from labelers.imaging import SUPPORTED_MEDIA_TYPES, open_for_analysis, open_raster, save_raster
from labelers.limits import Limits
from tests.support import raises_limit

HAS_EXIFTOOL = shutil.which("exiftool") is not None
needs_exiftool = pytest.mark.skipif(not HAS_EXIFTOOL, reason="exiftool not installed")

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt><rdf:li xml:lang="x-default">'
    b"Sunset test</rdf:li></rdf:Alt></dc:title></rdf:Description></rdf:RDF></x:xmpmeta>"
)


def photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """Photographic-like RGB content: smooth gradients, soft blobs and grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = x / width * 220 + 20
    g = y / height * 200 + 30
    b = 128 + 90 * np.sin(x / 41.0) * np.cos(y / 57.0)
    arr = np.stack([r, g, b], -1) + rng.normal(0, 5, (height, width, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


@cache
def srgb_icc() -> bytes:
    # cached: the profile embeds its creation time, so two builds can differ
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exiftool(data: bytes, tmp_path: Path, suffix: str, *tags: str) -> dict:
    path = tmp_path / f"probe{suffix}"
    path.write_bytes(data)
    out = subprocess.run(
        ["exiftool", "-j", "-a", "-G1", *tags, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[0]


def jpeg_source(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    exif.get_ifd(0x8769)[0x9003] = "2025:09:01 12:00:00"
    out = io.BytesIO()
    photo(640, 480).save(
        out,
        "JPEG",
        quality=71,
        subsampling="4:2:2",
        progressive=True,
        icc_profile=srgb_icc(),
        exif=exif.tobytes(),
        xmp=XMP,
        dpi=(300, 300),
        comment=b"made by a test",
    )
    return out.getvalue()


# --------------------------------------------------------------------------- JPEG


def test_jpeg_reencode_keeps_quantisation_tables_and_subsampling():
    src = jpeg_source()
    raster = open_raster(src, "image/jpeg")
    out = save_raster(raster)
    before, after = Image.open(io.BytesIO(src)), Image.open(io.BytesIO(out))
    assert after.quantization == before.quantization
    assert JpegImagePlugin.get_sampling(after) == JpegImagePlugin.get_sampling(before) == 1
    assert after.info.get("progressive")
    # a faithful re-encode is close in size to the source, not a quality jump
    assert 0.8 < len(out) / len(src) < 1.25


@needs_exiftool
def test_jpeg_reencode_keeps_icc_exif_orientation_dpi_xmp_and_comment(tmp_path):
    src = jpeg_source(orientation=6)
    raster = open_raster(src, "image/jpeg")
    assert raster.orientation == 6
    assert raster.size == (640, 480)  # stored, not rotated
    assert raster.display_size == (480, 640)
    out = save_raster(raster)
    meta = exiftool(out, tmp_path, ".jpg")
    assert meta["IFD0:Orientation"] == "Rotate 90 CW"
    assert meta["IFD0:Make"] == "TestCam"
    assert meta["ExifIFD:DateTimeOriginal"] == "2025:09:01 12:00:00"
    assert meta["ICC_Profile:ProfileDescription"] == "sRGB built-in"
    assert meta["XMP-dc:Title"] == "Sunset test"
    assert meta["JFIF:XResolution"] == 300
    assert meta["File:Comment"] == "made by a test"
    assert Image.open(io.BytesIO(out)).size == (640, 480)


@needs_exiftool
def test_jpeg_reencode_keeps_other_app_segments(tmp_path):
    src_path = tmp_path / "iptc.jpg"
    src_path.write_bytes(jpeg_source())
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-IPTC:Keywords=aigc",
            "-IPTC:City=Beijing",
            str(src_path),
        ],
        check=True,
    )
    out = save_raster(open_raster(src_path.read_bytes(), "image/jpeg"))
    meta = exiftool(out, tmp_path, ".jpg")
    assert meta["IPTC:Keywords"] == "aigc"
    assert meta["IPTC:City"] == "Beijing"


# --------------------------------------------------------------------------- PNG


@needs_exiftool
def test_png_reencode_keeps_text_chunks_icc_dpi_and_xmp(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "steps: 30, sampler: Euler a")
    info.add_text("Comment", "compressed " * 40, zip=True)
    info.add_itxt("Description", "落日", lang="zh", tkey="描述")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"gAMA", (45455).to_bytes(4, "big"))
    buf = io.BytesIO()
    photo(320, 240).save(buf, "PNG", pnginfo=info, icc_profile=srgb_icc(), dpi=(144, 144))
    src = buf.getvalue()

    out = save_raster(open_raster(src, "image/png"))
    meta = exiftool(out, tmp_path, ".png")
    assert meta["PNG:Parameters"] == "steps: 30, sampler: Euler a"
    assert meta["PNG:Comment"] == "compressed " * 40
    assert meta["PNG:Description-zh"] == "落日"
    assert meta["PNG:Gamma"] == 2.2
    assert meta["XMP-dc:Title"] == "Sunset test"
    assert meta["ICC_Profile:ProfileDescription"] == "sRGB built-in"
    assert meta["PNG-pHYs:PixelsPerUnitX"] == 5669  # 144 dpi
    # zTXt stays compressed, iTXt stays international text
    chunks = [c[4:8] for c, _ in open_raster(out, "image/png").png_chunks]
    assert chunks.count(b"zTXt") == 1 and chunks.count(b"iTXt") == 2
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), np.asarray(photo(320, 240)))


def test_png_palette_and_transparency_survive():
    img = photo(200, 150).quantize(48)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=3)
    raster = open_raster(buf.getvalue(), "image/png")
    assert raster.frames[0].mode == "P"
    back = Image.open(io.BytesIO(save_raster(raster)))
    assert back.mode == "P" and back.info["transparency"] == 3
    assert np.array_equal(np.asarray(back), np.asarray(img))


def test_png_16_bit_grey_keeps_its_depth():
    arr = (np.mgrid[0:120, 0:160][1] * 400).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    raster = open_raster(buf.getvalue(), "image/png")
    back = Image.open(io.BytesIO(save_raster(raster)))
    assert back.mode == raster.frames[0].mode
    assert np.array_equal(np.asarray(back), np.asarray(raster.frames[0]))


# --------------------------------------------------------------------------- animations


def animated_gif() -> bytes:
    frames = [photo(160, 120, seed=i).quantize(64) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(
        buf,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=[80, 120, 160, 200],
        loop=3,
        disposal=2,
        comment=b"gif comment",
    )
    return buf.getvalue()


def test_gif_keeps_frames_durations_loop_disposal_and_comment():
    raster = open_raster(animated_gif(), "image/gif")
    assert len(raster.frames) == 4
    assert raster.durations == [80, 120, 160, 200]
    assert raster.loop == 3
    out = Image.open(io.BytesIO(save_raster(raster)))
    assert out.n_frames == 4
    assert out.info["loop"] == 3
    assert out.info["comment"] == b"gif comment"
    durations, disposals = [], []
    for i in range(out.n_frames):
        out.seek(i)
        durations.append(out.info["duration"])
        disposals.append(out.disposal_method)
    assert durations == [80, 120, 160, 200]
    assert disposals == [2, 2, 2, 2]


def test_animated_webp_keeps_timing_loop_and_metadata():
    frames = [photo(160, 120, seed=i) for i in range(3)]
    exif = Image.Exif()
    exif[0x010F] = "WebPCam"
    buf = io.BytesIO()
    frames[0].save(
        buf,
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=[100, 150, 250],
        loop=2,
        quality=85,
        icc_profile=srgb_icc(),
        exif=exif.tobytes(),
        xmp=XMP,
    )
    raster = open_raster(buf.getvalue(), "image/webp")
    assert not raster.lossless
    assert raster.durations == [100, 150, 250]
    out = Image.open(io.BytesIO(save_raster(raster)))
    assert out.n_frames == 3 and out.info["loop"] == 2
    assert out.info["icc_profile"] == srgb_icc()
    assert out.getexif()[0x010F] == "WebPCam"
    assert b"Sunset test" in out.info["xmp"]
    durations = []
    for i in range(3):
        out.seek(i)
        out.load()
        durations.append(out.info["duration"])
    assert durations == [100, 150, 250]


@pytest.mark.parametrize("quality", [60, 90])
def test_webp_lossy_quality_is_estimated_from_the_bitstream(quality):
    buf = io.BytesIO()
    photo(256, 192).save(buf, "WEBP", quality=quality)
    raster = open_raster(buf.getvalue(), "image/webp")
    assert not raster.lossless
    assert abs(raster.quality - quality) <= 12


def test_webp_lossless_stays_lossless_and_exact():
    img = photo(128, 96)
    buf = io.BytesIO()
    img.save(buf, "WEBP", lossless=True)
    raster = open_raster(buf.getvalue(), "image/webp")
    assert raster.lossless
    out = save_raster(raster)
    assert b"VP8L" in out[:64]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out)).convert("RGB")), np.asarray(img))


# --------------------------------------------------------------------------- TIFF and AVIF


@needs_exiftool
def test_tiff_keeps_compression_orientation_icc_dpi_exif_gps_iptc_and_xmp(tmp_path):
    src_path = tmp_path / "src.tif"
    photo(300, 200).save(
        src_path,
        "TIFF",
        compression="tiff_adobe_deflate",
        dpi=(240, 240),
        icc_profile=srgb_icc(),
    )
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-Orientation#=6",
            "-Artist=Tester",
            "-DateTimeOriginal=2025:09:01 08:00:00",
            "-GPSLatitude=31.2",
            "-GPSLatitudeRef=N",
            "-IPTC:Keywords=aigc",
            "-XMP-dc:Title=Sunset test",
            str(src_path),
        ],
        check=True,
    )
    src = src_path.read_bytes()
    raster = open_raster(src, "image/tiff")
    assert raster.compression == "tiff_adobe_deflate"
    assert raster.orientation == 6
    assert raster.size == (300, 200)  # stored layout, although Pillow rotates TIFFs on load
    out = save_raster(raster)
    ignore = (
        "StripOffsets",
        "StripByteCounts",
        "RowsPerStrip",
        "FileName",
        "Directory",
        "FileSize",
        "FileModifyDate",
        "FileAccessDate",
        "FileInodeChangeDate",
        "SourceFile",
        "FilePermissions",
    )
    before = {
        k: v for k, v in exiftool(src, tmp_path, ".tif").items() if k.split(":")[-1] not in ignore
    }
    after = {
        k: v for k, v in exiftool(out, tmp_path, ".tif").items() if k.split(":")[-1] not in ignore
    }
    assert after == before
    assert after["IFD0:Compression"] == "Adobe Deflate"
    assert after["GPS:GPSLatitude"] == before["GPS:GPSLatitude"]


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_round_trip_keeps_icc_and_xmp():
    buf = io.BytesIO()
    photo(200, 150).save(buf, "AVIF", quality=80, icc_profile=srgb_icc(), xmp=XMP)
    raster = open_raster(buf.getvalue(), "image/avif")
    out = Image.open(io.BytesIO(save_raster(raster)))
    assert out.format == "AVIF"
    assert out.info["icc_profile"] == srgb_icc()
    assert b"Sunset test" in out.info["xmp"]


def test_supported_media_types_cover_the_common_images():
    assert {"image/jpeg", "image/png", "image/webp", "image/tiff", "image/gif"} <= (
        SUPPORTED_MEDIA_TYPES
    )


# --------------------------------------------------------------------------- bad input


def test_corrupt_bytes_are_corrupt_input():
    with pytest.raises(CorruptInput, match="JPEG"):
        open_raster(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 10, "image/jpeg")


@pytest.mark.parametrize("media_type", ["image/jpeg", "image/png", "image/webp", "image/gif"])
def test_truncated_image_is_corrupt_input(media_type):
    fmt = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
    buf = io.BytesIO()
    photo(300, 200).save(buf, fmt[media_type])
    data = buf.getvalue()
    with pytest.raises(CorruptInput):
        open_raster(data[: len(data) // 2], media_type)


def test_bytes_of_another_format_are_corrupt_input():
    buf = io.BytesIO()
    photo(50, 50).save(buf, "PNG")
    with pytest.raises(CorruptInput):
        open_raster(buf.getvalue(), "image/jpeg")


def test_unknown_media_type_is_unsupported():
    with pytest.raises(UnsupportedMedia):
        open_raster(b"BM....", "image/bmp")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: header plus a tiny (wrong) data chunk."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_pixel_bomb_is_refused_before_decoding():
    with raises_limit("max_pixels"):
        open_raster(png_header_only(60_000, 60_000), "image/png")


def test_configured_pixel_limit_is_enforced():
    buf = io.BytesIO()
    photo(400, 300).save(buf, "JPEG")
    with pytest.raises(LimitExceeded, match="120000 pixels"):
        open_raster(buf.getvalue(), "image/jpeg", Limits(max_pixels=100_000))


def test_too_many_frames_is_limit_exceeded():
    with raises_limit("max_frames"):
        open_raster(animated_gif(), "image/gif", Limits(max_frames=3))


def test_oversized_upload_is_limit_exceeded():
    with raises_limit("max_bytes"):
        open_raster(jpeg_source(), "image/jpeg", Limits(max_bytes=1000))


# ------------------------------------------------------------ reading only
def test_analysis_decodes_a_large_jpeg_at_half_size_and_says_so():
    data = jpeg_source()
    raster = open_for_analysis(data, "image/jpeg", reduce_above=640 * 480 - 1)
    assert raster.frames[0].size == (320, 240)
    assert raster.scale == 0.5
    assert raster.orientation == 6  # read from the header as for open_raster
    full = open_for_analysis(data, "image/jpeg")  # under the default threshold
    assert full.frames[0].size == (640, 480) and full.scale == 1
    # the half-size frame is the image, reduced: close to a resize of the full decode
    reference = np.asarray(full.frames[0].resize((320, 240), Image.Resampling.BOX), np.float32)
    assert np.abs(np.asarray(raster.frames[0], np.float32) - reference).mean() < 4


def test_analysis_decodes_only_the_first_frame_of_an_animation():
    raster = open_for_analysis(animated_gif(), "image/gif")
    assert len(raster.frames) == 1 and raster.scale == 1
    first = open_raster(animated_gif(), "image/gif").frames[0]
    assert np.array_equal(
        np.asarray(raster.frames[0].convert("RGB")), np.asarray(first.convert("RGB"))
    )


def test_analysis_checks_the_declared_size_like_open_raster():
    with pytest.raises(LimitExceeded):
        open_for_analysis(jpeg_source(), "image/jpeg", Limits(max_pixels=640 * 480 - 1))
    with pytest.raises(CorruptInput):
        open_for_analysis(jpeg_source()[:300], "image/jpeg")
