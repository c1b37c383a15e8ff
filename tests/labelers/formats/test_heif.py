"""AVIF (HEIF family): the record as an XMP item, image data moved with its offsets."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from labelers.errors import CorruptInput, UnsupportedMedia
from labelers.formats import get_handler, sniff
from tests.support import raises_limit


@pytest.fixture
def avif(photo, icc_profile, exif_with_orientation):
    def make(user_comment: bytes | None = None, xmp: bytes | None = None) -> bytes:
        buf = io.BytesIO()
        extra = {"xmp": xmp} if xmp else {}
        photo().save(
            buf,
            "AVIF",
            quality=80,
            icc_profile=icc_profile,
            exif=exif_with_orientation(user_comment=user_comment),
            **extra,
        )
        return buf.getvalue()

    return make


@pytest.mark.parametrize("with_xmp", [False, True])
def test_exiftool_reads_the_record_and_pixels_and_metadata_survive(
    with_xmp, avif, record, other_xmp, exiftool, exiftool_xmp, tc260_count, decoded_frames
):
    data = avif(xmp=other_xmp if with_xmp else None)
    handler = get_handler(sniff(data))
    out = handler.write_record(data, record)
    before, info = exiftool(data), exiftool(out)
    assert info["XMP-TC260:AIGC"] == record.dumps(wrapped=False)
    assert tc260_count(exiftool_xmp(out)) == 1
    # Pillow turns EXIF orientation into an irot property: both must survive
    assert info["QuickTime:Rotation"] == 270
    assert info["IFD0:Software"] == "DiffusionTool 2.0"
    assert "ICC_Profile:ProfileDescription" in info
    skip = ("System:", "ExifTool:", "XMP-", "SourceFile", "File:FileSize", "QuickTime:MediaData")
    for key, value in before.items():
        if not key.startswith(skip):
            assert info.get(key) == value, key
    if with_xmp:
        assert info["XMP-xmp:CreatorTool"] == "PhotoEditor 1.0"
    assert not any(k.endswith(":Warning") for k in info)
    assert decoded_frames(out) == decoded_frames(data)
    meta = handler.read(out)
    assert meta.media_type == "image/avif" and meta.size == (160, 120)
    assert [(f.carrier, f.record) for f in meta.records] == [("xmp:TC260:AIGC", record)]


def test_relabelling_keeps_one_record_and_does_not_grow(avif, record, other_record, exiftool):
    data = avif()
    handler = get_handler(sniff(data))
    once = handler.write_record(data, record)
    twice = handler.write_record(once, other_record)
    thrice = handler.write_record(twice, other_record)
    assert thrice == twice
    assert [f.record for f in handler.read(twice).records] == [other_record]
    assert exiftool(twice)["XMP-TC260:AIGC"] == other_record.dumps(wrapped=False)


def test_a_legacy_exif_record_is_read_then_replaced(avif, record, other_record, exiftool):
    data = avif(user_comment=b"ASCII\x00\x00\x00" + other_record.dumps().encode())
    handler = get_handler(sniff(data))
    assert [(f.carrier, f.record) for f in handler.read(data).records] == [
        ("exif:UserComment", other_record)
    ]
    out = handler.write_record(data, record)
    assert [f.record for f in handler.read(out).records] == [record]
    assert "AIGC" not in str(exiftool(out).get("ExifIFD:UserComment", ""))


def test_bad_input_and_huge_sizes_are_refused(avif, record):
    data = avif()
    handler = get_handler(sniff(data))
    for bad in (b"", data[:40], data[: len(data) // 2], data[:8] + b"\x7f" * 100):
        with pytest.raises(CorruptInput):
            handler.read(bad)
    i = data.index(b"ispe")
    huge = data[: i + 8] + struct.pack(">II", 60000, 60000) + data[i + 16 :]
    with raises_limit("max_pixels"):
        handler.write_record(huge, record)


def test_image_sequences_are_read_but_not_written(photo, record):
    buf = io.BytesIO()
    frames = [photo(seed=i) for i in range(2)]
    frames[0].save(buf, "AVIF", save_all=True, append_images=frames[1:], duration=100)
    data = buf.getvalue()
    handler = get_handler(sniff(data))
    if b"moov" not in data:
        pytest.skip("this libavif wrote the animation without a moov box")
    assert handler.read(data).size == (160, 120)
    with pytest.raises(UnsupportedMedia):
        handler.write_record(data, record)
    with Image.open(io.BytesIO(data)) as im:
        assert im.n_frames == 2


def _heic(avif_bytes: bytes) -> bytes:
    """An HEIF file branded ``heic``: the same container as AVIF (no HEIC encoder
    ships here, and labelling never decodes the coded image on this path)."""
    data = bytearray(avif_bytes)
    at = data.index(b"ftyp")
    data[at + 4 : at + 8] = b"heic"
    return bytes(data)


def test_heic_offers_the_record_but_no_visible_label_or_watermark(avif):
    from labelers.formats import Capability, capabilities_of
    from labelers.pipeline import FileOptions, label_file
    from labelers.record import Record

    heic = _heic(avif())
    assert sniff(heic) == "image/heic"
    handler = get_handler("image/heic")
    assert {Capability.VISIBLE, Capability.WATERMARK} <= capabilities_of(handler, "image/avif")
    offered = capabilities_of(handler, "image/heic")
    assert Capability.RECORD in offered and Capability.VISIBLE not in offered
    assert Capability.WATERMARK not in offered
    record = Record.first_write("0011911100007109120X0010001", "HEIC-1")
    # the explicit label is asked for by default: a clear refusal, not a silent omission
    with pytest.raises(UnsupportedMedia, match="cannot be drawn on image/heic"):
        label_file(heic, record, FileOptions(c2pa=False), watermark_payload=7)
    # with the explicit label omitted, the record is written and the mark says why not
    done = label_file(heic, record, FileOptions(explicit=False, c2pa=False), watermark_payload=7)
    assert (done.explicit, done.watermark_key) == ("none", None)
    assert done.watermark == "not available for image/heic: no encoder for it here"
    assert [f.record for f in handler.read(done.data).records] == [record]
