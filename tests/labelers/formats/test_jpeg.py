"""JPEG specifics: legacy EXIF/COM records, segment splicing, extended XMP."""

from __future__ import annotations

import html
import io
import struct

import pytest
from PIL import Image

from labelers.errors import CorruptInput
from labelers.formats import jpeg

HANDLER = jpeg.HANDLER


def segments(data: bytes) -> list[bytes]:
    """The marker segments before the first scan, as raw bytes (an independent walk)."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append(data[pos : pos + 2 + length])
        pos += 2 + length
    return out


def is_xmp(seg: bytes) -> bool:
    return seg[:2] == b"\xff\xe1" and seg[4:].startswith(b"http://ns.adobe.com/xap/1.0/\x00")


def jpeg_bytes(photo, **save) -> bytes:
    buf = io.BytesIO()
    photo().save(buf, "JPEG", quality=88, **save)
    return buf.getvalue()


@pytest.mark.parametrize("field", ["UserComment", "ImageDescription"])
def test_a_legacy_exif_record_is_read_then_replaced_by_the_xmp_one(
    field, photo, exif_with_orientation, record, other_record, exiftool
):
    legacy = other_record.dumps(wrapped=True)
    if field == "UserComment":
        exif = exif_with_orientation(user_comment=b"ASCII\x00\x00\x00" + legacy.encode())
    else:
        exif = exif_with_orientation(description=legacy)
    data = jpeg_bytes(photo, exif=exif)

    found = HANDLER.read(data).records
    assert [(f.carrier, f.record) for f in found] == [(f"exif:{field}", other_record)]

    out = HANDLER.write_record(data, record)
    assert [(f.carrier, f.record) for f in HANDLER.read(out).records] == [
        ("xmp:TC260:AIGC", record)
    ]
    info = exiftool(out)
    assert "AIGC" not in str(info.get(f"ExifIFD:{field}", "")) + str(info.get(f"IFD0:{field}", ""))
    assert info["IFD0:Orientation"] == 6
    assert info["IFD0:Software"] == "DiffusionTool 2.0"
    assert info["IFD0:Make"] == "CameraCo"
    assert info["XMP-TC260:AIGC"] == record.dumps(wrapped=False)


def test_a_plain_exif_description_is_a_property_not_a_record(photo, exif_with_orientation):
    data = jpeg_bytes(photo, exif=exif_with_orientation(description="A quiet harbour"))
    meta = HANDLER.read(data)
    assert meta.records == []
    assert meta.properties["exif:ImageDescription"] == "A quiet harbour"
    assert meta.properties["exif:Make"] == "CameraCo"


def test_attribute_form_and_escaped_json_in_the_app1_packet_are_read(photo, record):
    escaped = html.escape(html.escape(record.dumps()))
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        f'xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" TC260:AIGC="{escaped}"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    data = jpeg_bytes(photo, xmp=packet.encode())
    assert [f.record for f in HANDLER.read(data).records] == [record]


def test_segments_are_spliced_not_reencoded(photo, exif_with_orientation, icc_profile, record):
    data = jpeg_bytes(photo, exif=exif_with_orientation(), icc_profile=icc_profile)
    out = HANDLER.write_record(data, record)
    before, after = segments(data), segments(out)
    # the XMP segment comes right after APP0 (JFIF) and APP1 (EXIF), before ICC (APP2)
    assert [s[:2] for s in after[:4]] == [b"\xff\xe0", b"\xff\xe1", b"\xff\xe1", b"\xff\xe2"]
    assert is_xmp(after[2])
    assert [s for s in after if not is_xmp(s)] == before
    # the entropy-coded data is byte-identical
    scan = data.index(b"\xff\xda")
    assert out.endswith(data[scan:])


def test_extended_xmp_segments_are_kept_and_the_main_packet_read(photo, record, other_record):
    from labelers.formats import xmp

    main = xmp.set_record(None, other_record, padding=0).encode()
    data = jpeg_bytes(photo, xmp=main)
    ext_payload = b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + b"\x00" * 8 + b"<x/>"
    ext = b"\xff\xe1" + struct.pack(">H", len(ext_payload) + 2) + ext_payload
    scan = data.index(b"\xff\xdb")  # before the quantisation tables
    data = data[:scan] + ext + data[scan:]
    assert [f.record for f in HANDLER.read(data).records] == [other_record]

    out = HANDLER.write_record(data, record)
    assert ext in out
    assert [f.record for f in HANDLER.read(out).records] == [record]


def test_a_comment_holding_a_record_is_read_then_dropped_plain_comments_kept(
    photo, record, other_record
):
    data = jpeg_bytes(photo, comment=other_record.dumps().encode())
    assert [(f.carrier, f.record) for f in HANDLER.read(data).records] == [
        ("jpeg:COM", other_record)
    ]
    out = HANDLER.write_record(data, record)
    assert [f.record for f in HANDLER.read(out).records] == [record]

    data = jpeg_bytes(photo, comment=b"shot on a tripod")
    out = HANDLER.write_record(data, record)
    assert HANDLER.read(out).properties["jpeg:comment"] == "shot on a tripod"


def test_progressive_jpeg_is_labelled(photo, record, decoded_frames):
    data = jpeg_bytes(photo, progressive=True)
    out = HANDLER.write_record(data, record)
    assert decoded_frames(out) == decoded_frames(data)
    assert HANDLER.read(out).size == (160, 120)


def test_a_jpeg_cut_inside_its_image_data_is_refused(photo, record):
    data = jpeg_bytes(photo)
    with pytest.raises(CorruptInput, match="EOI"):
        HANDLER.read(data[:-100])
    with Image.open(io.BytesIO(data)) as im:  # the intact file is fine for Pillow too
        im.load()


def test_a_packet_too_large_for_one_segment_is_a_limit_not_a_crash(photo, record):
    from labelers.errors import LimitExceeded

    big = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description>'
        + "x" * 65200
        + "</dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    data = jpeg_bytes(photo, xmp=big.encode())
    with pytest.raises(LimitExceeded, match="APP1"):
        HANDLER.write_record(data, record)
