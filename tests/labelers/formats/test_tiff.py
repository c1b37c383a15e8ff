"""TIFF specifics: both byte orders, IFD0 relocation vs in-place update, pages, BigTIFF."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labelers.errors import UnsupportedMedia
from labelers.formats import tiff

HANDLER = tiff.HANDLER


def test_big_endian_tiff_is_labelled(record, exiftool):
    y, x = np.mgrid[0:90, 0:130]
    arr = (x * 400 + y * 150 + (x * y) % 97).astype(">u2")
    buf = io.BytesIO()
    Image.frombytes("I;16B", (130, 90), arr.tobytes()).save(buf, "TIFF")
    data = buf.getvalue()
    assert data[:2] == b"MM"
    out = HANDLER.write_record(data, record)
    assert exiftool(out)["XMP-TC260:AIGC"] == record.dumps(wrapped=False)
    with Image.open(io.BytesIO(out)) as a, Image.open(io.BytesIO(data)) as b:
        assert a.tobytes() == b.tobytes()
    assert [f.record for f in HANDLER.read(out).records] == [record]
    assert HANDLER.read(out).size == (130, 90)


def test_every_page_survives_and_image_data_is_not_moved(photo, record, decoded_frames):
    pages = [photo(seed=i) for i in range(3)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    data = buf.getvalue()
    out = HANDLER.write_record(data, record)
    # the original bytes are all still there, at the same offsets (only appended to,
    # plus the 4-byte IFD0 pointer in the header)
    assert out[8 : len(data)] == data[8:]
    assert decoded_frames(out) == decoded_frames(data)
    assert len(decoded_frames(out)) == 3


def test_a_second_label_fits_in_place_and_the_file_does_not_grow(
    photo, record, other_record, exiftool
):
    buf = io.BytesIO()
    photo().save(buf, "TIFF")
    once = HANDLER.write_record(buf.getvalue(), record)
    twice = HANDLER.write_record(once, other_record)
    assert len(twice) == len(once)
    assert exiftool(twice)["XMP-TC260:AIGC"] == other_record.dumps(wrapped=False)
    assert [f.record for f in HANDLER.read(twice).records] == [other_record]


def test_a_legacy_image_description_record_is_read_then_blanked(
    photo, record, other_record, exiftool
):
    buf = io.BytesIO()
    photo().save(buf, "TIFF", tiffinfo={270: other_record.dumps(), 305: "GenTool"})
    data = buf.getvalue()
    assert [(f.carrier, f.record) for f in HANDLER.read(data).records] == [
        ("exif:ImageDescription", other_record)
    ]
    out = HANDLER.write_record(data, record)
    assert [(f.carrier, f.record) for f in HANDLER.read(out).records] == [
        ("xmp:TC260:AIGC", record)
    ]
    info = exiftool(out)
    assert "AIGC" not in str(info.get("IFD0:ImageDescription", ""))
    assert info["IFD0:Software"] == "GenTool"


def test_bigtiff_is_unsupported():
    data = b"II+\x00\x08\x00\x00\x00" + b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 64
    with pytest.raises(UnsupportedMedia, match="BigTIFF"):
        HANDLER.read(data)


def test_jpeg_compressed_and_tiled_tiffs_keep_their_pixels(photo, record, decoded_frames):
    for save in ({"compression": "jpeg", "quality": 80}, {"compression": "tiff_adobe_deflate"}):
        buf = io.BytesIO()
        photo().save(buf, "TIFF", **save)
        data = buf.getvalue()
        out = HANDLER.write_record(data, record)
        assert decoded_frames(out) == decoded_frames(data)
        with Image.open(io.BytesIO(out)) as im:
            assert im.size == (160, 120)
