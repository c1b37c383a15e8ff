"""PNG specifics: legacy AIGC text chunks, generator text, chunk splicing, APNG."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from labelers.errors import CorruptInput, LimitExceeded
from labelers.formats import png

HANDLER = png.HANDLER


def chunks(data: bytes) -> list[tuple[bytes, bytes, bool]]:
    """(type, body, crc ok) for every chunk, from an independent walk."""
    out, pos = [], 8
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        out.append((ctype, body, zlib.crc32(ctype + body) == crc))
        pos += 12 + length
    return out


def png_bytes(photo, info: PngImagePlugin.PngInfo | None = None, **save) -> bytes:
    buf = io.BytesIO()
    photo().save(buf, "PNG", pnginfo=info, **save)
    return buf.getvalue()


@pytest.mark.parametrize("chunk_type", ["tEXt", "zTXt", "iTXt"])
def test_a_legacy_aigc_text_chunk_is_read_then_replaced(
    chunk_type, photo, record, other_record, exiftool
):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "portrait, Steps: 20")
    if chunk_type == "iTXt":
        info.add_itxt("AIGC", other_record.dumps())
    else:
        info.add_text("AIGC", other_record.dumps(), zip=chunk_type == "zTXt")
    data = png_bytes(photo, info)
    found = HANDLER.read(data).records
    assert [(f.carrier, f.record) for f in found] == [(f"png:{chunk_type}:AIGC", other_record)]

    out = HANDLER.write_record(data, record)
    assert [(f.carrier, f.record) for f in HANDLER.read(out).records] == [
        ("xmp:TC260:AIGC", record)
    ]
    after = exiftool(out)
    assert "PNG:AIGC" not in after
    assert after["PNG:Parameters"] == "portrait, Steps: 20"


def test_generator_text_chunks_are_properties(photo):
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"3": {"class_type": "KSampler"}}')
    info.add_text("workflow", '{"nodes": []}', zip=True)
    info.add_itxt("Description", "港口的黄昏", zip=True)
    meta = HANDLER.read(png_bytes(photo, info))
    assert meta.properties["png:tEXt:prompt"] == '{"3": {"class_type": "KSampler"}}'
    assert meta.properties["png:tEXt:workflow"] == '{"nodes": []}'
    assert meta.properties["png:tEXt:Description"] == "港口的黄昏"
    assert meta.records == []


def test_chunks_are_spliced_with_valid_crcs_and_xmp_before_idat(
    photo, icc_profile, exif_with_orientation, record
):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "x")
    data = png_bytes(
        photo, info, icc_profile=icc_profile, exif=exif_with_orientation(), dpi=(300, 300)
    )
    out = HANDLER.write_record(data, record)
    after = chunks(out)
    assert all(ok for _, _, ok in after)
    types = [t for t, _, _ in after]
    xmp_at = next(
        i for i, (t, b, _) in enumerate(after) if t == b"iTXt" and b.startswith(b"XML:com")
    )
    assert xmp_at < types.index(b"IDAT")
    assert [c for i, c in enumerate(after) if i != xmp_at] == chunks(data)


def test_an_xmp_chunk_after_the_image_data_is_replaced_before_it(photo, record, other_record):
    from labelers.formats import xmp

    data = png_bytes(photo)
    packet = xmp.set_record(None, other_record).encode()
    late = png.make_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet)
    iend = data.rindex(b"IEND") - 4
    data = data[:iend] + late + data[iend:]
    assert [f.record for f in HANDLER.read(data).records] == [other_record]
    out = HANDLER.write_record(data, record)
    assert [f.record for f in HANDLER.read(out).records] == [record]
    types = [t for t, _, _ in chunks(out)]
    assert types.count(b"iTXt") == 1 and types.index(b"iTXt") < types.index(b"IDAT")


def test_animated_png_keeps_every_frame(photo, record, decoded_frames):
    frames = [photo(seed=i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], duration=80, loop=0)
    data = buf.getvalue()
    out = HANDLER.write_record(data, record)
    assert len(decoded_frames(out)) == 3
    assert decoded_frames(out) == decoded_frames(data)
    with Image.open(io.BytesIO(out)) as im:
        assert im.n_frames == 3 and im.info["loop"] == 0


def test_a_compressed_text_bomb_is_a_limit(photo):
    bomb = zlib.compress(b"\x00" * (png.MAX_TEXT_CHUNK + 1024), 9)
    data = png_bytes(photo)
    data = data[:33] + png.make_chunk(b"zTXt", b"Comment\x00\x00" + bomb) + data[33:]
    with pytest.raises(LimitExceeded):
        HANDLER.read(data)


def test_a_bad_ihdr_crc_or_missing_iend_is_corrupt(photo, record):
    data = png_bytes(photo)
    with pytest.raises(CorruptInput, match="CRC"):
        HANDLER.read(data[:29] + b"\x00\x00\x00\x00" + data[33:])
    with pytest.raises(CorruptInput, match="IEND"):
        HANDLER.write_record(data[: data.rindex(b"IEND") - 4], record)
