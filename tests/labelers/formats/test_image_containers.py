"""Behaviour every image container shares: the record goes in as XMP that exiftool
reads, other metadata and pixels survive, one record per file, bad input is refused."""

from __future__ import annotations

import struct
import zlib

import pytest

from labelers.errors import CorruptInput, InvalidRecord, LimitExceeded
from labelers.formats import get_handler, sniff
from labelers.limits import Limits
from tests.support import raises_limit

FORMATS = ["jpeg", "png", "webp", "tiff", "gif"]
MEDIA = {f: f"image/{f}" for f in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_exiftool_reads_the_written_record_and_other_metadata_survives(
    fmt, source, record, exiftool, exiftool_xmp, tc260_count
):
    data = source(fmt)
    before = exiftool(data)
    out = get_handler(MEDIA[fmt]).write_record(data, record)
    after = exiftool(out)

    assert after["XMP-TC260:AIGC"] == record.dumps(wrapped=False)
    assert after["XMP-iptcExt:DigitalSourceType"] == (
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    )
    assert tc260_count(exiftool_xmp(out)) == 1
    assert not any(k.endswith(":Warning") or k.endswith(":Error") for k in after), after
    # the foreign XMP properties are still there
    assert after["XMP-xmp:CreatorTool"] == "PhotoEditor 1.0"
    assert after["XMP-dc:Title"] == "Sunset test"
    # and everything else exiftool saw before (EXIF orientation, ICC, PNG text, GIF loop)
    ignore = ("System:", "ExifTool:", "XMP-x:", "XMP-TC260:", "XMP-iptcExt:", "SourceFile")
    ignore_keys = {"File:FileSize", "Composite:ImageSize", "Composite:Megapixels"}
    for key, value in before.items():
        if key.startswith(ignore) or key in ignore_keys:
            continue
        assert after.get(key) == value, key
    if fmt != "gif":
        assert after["IFD0:Orientation"] == 6
        assert "ICC_Profile:ProfileDescription" in after
    if fmt == "png":
        assert after["PNG:Parameters"].startswith("a lighthouse at dusk")
    if fmt == "gif":
        assert after["GIF:FrameCount"] == 3
        assert after["GIF:AnimationIterations"] == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_pixels_of_every_frame_decode_identical(fmt, source, record, decoded_frames):
    data = source(fmt)
    out = get_handler(MEDIA[fmt]).write_record(data, record)
    assert sniff(out) == MEDIA[fmt]
    assert decoded_frames(out) == decoded_frames(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_returns_exactly_the_written_record(fmt, source, record):
    handler = get_handler(MEDIA[fmt])
    meta = handler.read(handler.write_record(source(fmt), record))
    assert meta.media_type == MEDIA[fmt]
    assert [(f.carrier, f.record) for f in meta.records] == [("xmp:TC260:AIGC", record)]
    assert meta.size == (160, 120)
    assert "TC260:AIGC" in meta.xmp and "PhotoEditor 1.0" in meta.xmp


@pytest.mark.parametrize("fmt", FORMATS)
def test_relabelling_replaces_the_record_instead_of_adding_one(
    fmt, source, record, other_record, exiftool, exiftool_xmp, tc260_count, decoded_frames
):
    handler = get_handler(MEDIA[fmt])
    data = source(fmt)
    once = handler.write_record(data, record)
    twice = handler.write_record(once, other_record)
    meta = handler.read(twice)
    assert [f.record for f in meta.records] == [other_record]
    assert tc260_count(exiftool_xmp(twice)) == 1
    assert exiftool(twice)["XMP-TC260:AIGC"] == other_record.dumps(wrapped=False)
    assert exiftool(twice)["XMP-xmp:CreatorTool"] == "PhotoEditor 1.0"
    assert decoded_frames(twice) == decoded_frames(data)
    # idempotent: the same record again gives the same bytes
    assert handler.write_record(twice, other_record) == twice


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_metadata_is_reported_as_properties(fmt, source):
    meta = get_handler(MEDIA[fmt]).read(source(fmt))
    assert meta.records == []
    assert meta.size == (160, 120)
    if fmt == "gif":
        assert meta.properties["gif:comment"] == "made with DiffusionTool"
    else:
        assert meta.properties["exif:Software"] == "DiffusionTool 2.0"
    if fmt == "png":
        assert meta.properties["png:tEXt:parameters"].startswith("a lighthouse")


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_truncated_and_corrupt_input_raise_corrupt_input(fmt, source, record):
    handler = get_handler(MEDIA[fmt])
    data = source(fmt)
    bad_inputs = {
        "empty": b"",
        "header only": data[:12],
        "cut in half": data[: len(data) // 2],
        "cut near the end": data[: len(data) - 40],
        "garbage after magic": data[:8] + b"\x7f" * 200,
    }
    for name, bad in bad_inputs.items():
        with pytest.raises(CorruptInput) as err:
            handler.read(bad)
        assert err.value.detail, name
        with pytest.raises(CorruptInput):
            handler.write_record(bad, record)


def _huge_header(fmt: str, data: bytes) -> bytes:
    """The same file with its header claiming an enormous pixel size."""
    out = bytearray(data)
    if fmt == "jpeg":
        i = data.index(b"\xff\xc0")
        out[i + 5 : i + 9] = struct.pack(">HH", 65000, 65000)
    elif fmt == "png":
        out[16:24] = struct.pack(">II", 200_000, 200_000)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif fmt == "webp":
        assert data[12:16] == b"VP8X"
        out[24:30] = b"\xff" * 6
    elif fmt == "gif":
        out[6:10] = struct.pack("<HH", 65535, 65535)
    elif fmt == "tiff":
        (ifd,) = struct.unpack("<I", data[4:8])
        (count,) = struct.unpack("<H", data[ifd : ifd + 2])
        for k in range(count):
            pos = ifd + 2 + 12 * k
            tag, typ = struct.unpack("<HH", data[pos : pos + 4])
            if tag in (256, 257):
                fmt_ = "<H" if typ == 3 else "<I"
                out[pos + 8 : pos + 8 + struct.calcsize(fmt_)] = struct.pack(fmt_, 60000)
    return bytes(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_huge_header_dimensions_raise_limit_exceeded_before_decoding(fmt, source, record):
    handler = get_handler(MEDIA[fmt])
    huge = _huge_header(fmt, source(fmt))
    with raises_limit("max_pixels"):
        handler.read(huge)
    with pytest.raises(LimitExceeded):
        handler.write_record(huge, record)


@pytest.mark.parametrize("fmt", FORMATS)
def test_configured_limits_apply(fmt, source, record):
    handler = get_handler(MEDIA[fmt])
    data = source(fmt)
    with pytest.raises(LimitExceeded):
        handler.read(data, Limits(max_pixels=160 * 120 - 1))
    with pytest.raises(LimitExceeded):
        handler.write_record(data, record, Limits(max_bytes=len(data) - 1))
    handler.read(data, Limits(max_pixels=160 * 120))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_invalid_record_is_refused_not_written(fmt, source, record):
    bad = record.with_fields(content_producer="生成服务")
    with pytest.raises(InvalidRecord):
        get_handler(MEDIA[fmt]).write_record(source(fmt), bad)
