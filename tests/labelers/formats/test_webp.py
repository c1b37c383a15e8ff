"""WebP specifics: simple files gain a VP8X header, animation survives, EXIF records."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from labelers.formats import webp

HANDLER = webp.HANDLER


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) pairs from an independent walk; checks the RIFF size too."""
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    out, pos = [], 12
    while pos < len(data):
        fourcc, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        out.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    assert pos == len(data)
    return out


def vp8x(data: bytes) -> tuple[int, int, int]:
    (fourcc, payload), *_ = riff_chunks(data)
    assert fourcc == b"VP8X"
    w = int.from_bytes(payload[4:7], "little") + 1
    h = int.from_bytes(payload[7:10], "little") + 1
    return payload[0], w, h


@pytest.mark.parametrize(
    ("mode", "save", "first"),
    [
        ("RGB", {"quality": 80}, b"VP8 "),
        ("RGBA", {"lossless": True}, b"VP8L"),
    ],
)
def test_a_simple_file_gets_a_vp8x_header_with_the_right_canvas_and_flags(
    mode, save, first, photo, record, exiftool, decoded_frames
):
    im = photo(161, 97).convert(mode)
    if mode == "RGBA":
        alpha = np.full((97, 161), 255, np.uint8)
        alpha[10:40, 20:90] = 60
        im.putalpha(Image.fromarray(alpha))
    buf = io.BytesIO()
    im.save(buf, "WEBP", **save)
    data = buf.getvalue()
    assert riff_chunks(data)[0][0] == first

    out = HANDLER.write_record(data, record)
    flags, w, h = vp8x(out)
    assert (w, h) == (161, 97)
    assert flags & webp.FLAG_XMP
    assert bool(flags & webp.FLAG_ALPHA) == (mode == "RGBA")
    assert [c for c, _ in riff_chunks(out)] == [b"VP8X", first, b"XMP "]
    assert riff_chunks(out)[1] == riff_chunks(data)[0]  # bitstream untouched
    info = exiftool(out)
    assert info["XMP-TC260:AIGC"] == record.dumps(wrapped=False)
    assert not any(k.endswith(":Warning") for k in info)
    assert decoded_frames(out) == decoded_frames(data)
    assert HANDLER.read(out).size == (161, 97)


def test_animated_webp_keeps_frames_timing_and_loop(photo, record, decoded_frames, exiftool):
    frames = [photo(seed=i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(
        buf, "WEBP", save_all=True, append_images=frames[1:], duration=[90, 120, 150], loop=2
    )
    data = buf.getvalue()
    out = HANDLER.write_record(data, record)
    assert decoded_frames(out) == decoded_frames(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.n_frames == 3 and im.info["loop"] == 2
        durations = []
        for i in range(3):
            im.seek(i)
            im.load()
            durations.append(im.info.get("duration"))
    assert durations == [90, 120, 150]
    flags, _, _ = vp8x(out)
    assert flags & webp.FLAG_ANIMATION and flags & webp.FLAG_XMP
    assert exiftool(out)["XMP-TC260:AIGC"] == record.dumps(wrapped=False)
    assert [f.record for f in HANDLER.read(out).records] == [record]


def test_a_legacy_exif_user_comment_record_is_read_then_replaced(
    photo, exif_with_orientation, record, other_record, exiftool
):
    exif = exif_with_orientation(user_comment=b"ASCII\x00\x00\x00" + other_record.dumps().encode())
    buf = io.BytesIO()
    photo().save(buf, "WEBP", quality=80, exif=exif)
    data = buf.getvalue()
    assert [(f.carrier, f.record) for f in HANDLER.read(data).records] == [
        ("exif:UserComment", other_record)
    ]
    out = HANDLER.write_record(data, record)
    assert [(f.carrier, f.record) for f in HANDLER.read(out).records] == [
        ("xmp:TC260:AIGC", record)
    ]
    info = exiftool(out)
    assert "AIGC" not in str(info.get("ExifIFD:UserComment", ""))
    assert info["IFD0:Orientation"] == 6
    # the chunk order the WebP container spec asks for: image data, EXIF, XMP
    assert [c for c, _ in riff_chunks(out)][-2:] == [b"EXIF", b"XMP "]
