"""Regression tests for hostile inputs found by fuzzing (issue 11): each builds its file.

Cost-class bugs (quadratic scans, alias bombs) are run through the fuzz
harness's watchdog child (tests/fuzz/bounded.py): a regression shows as a
"hang" or "memory" outcome instead of stalling the suite. The limits are
generous (tens of times the fixed cost), so they catch a change of complexity
class, not noise.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest
from PIL import Image

from labelers.errors import CorruptInput, LimitExceeded, UnsupportedMedia
from labelers.formats import content_digest, get_handler, xmp
from labelers.formats import markdown as markdown_format
from labelers.imaging import open_raster
from labelers.limits import Limits
from labelers.pipeline import FileOptions, label_file
from labelers.record import Record
from tests.fuzz.bounded import run_bounded
from tests.support import raises_limit

PRODUCER = "0011911100007109120X0010001"


def _record() -> Record:
    return Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")


# ------------------------------------------------------------ quadratic XMP
BROKEN_PACKETS = [
    # an opening tag whose ">" never comes, repeated
    "<x:xmpmeta>" + "<TC260:AIGC " * 200_000,
    # openings with no closing tag
    "<x:xmpmeta>" + "<TC260:AIGC>x" * 200_000,
    # a long name run before AIGC-like attributes
    "<x:xmpmeta " + "a" * 1_000_000 + ' AIGC="',
    # unterminated attribute values
    "<x:xmpmeta>" + 'TC260:AIGC="' * 200_000,
    "<x:xmpmeta>" + "DigitalSourceType" * 100_000,
    "<x:xmpmeta>" + "<" * 1_000_000,
]


def _scan_broken(packet: bytes) -> None:
    text = packet.decode()
    xmp.read_records(text)
    xmp.digital_source_type(text)


def test_broken_xmp_packets_of_a_megabyte_are_scanned_without_stalling():
    outcomes = run_bounded(_scan_broken, [p.encode() for p in BROKEN_PACKETS], seconds=20)
    assert [o.status for o in outcomes] == ["ok"] * len(BROKEN_PACKETS), outcomes


def test_broken_xmp_scanner_still_finds_attribute_and_element_records():
    packet = (
        '<x:xmpmeta><rdf:Description TC260:AIGC=\'{"Label":"1"}\'/>'
        "<TC260:AIGC><rdf:Alt><rdf:li>{&quot;x&quot;:1}</rdf:li></rdf:Alt></TC260:AIGC >"
        "<unclosed"
    )
    assert xmp._scan_records(packet) == ['{"Label":"1"}', "{&quot;x&quot;:1}"]
    assert xmp.digital_source_type('<a Iptc4xmpExt:DigitalSourceType="http://x/y" <b') == (
        "http://x/y"
    )


def test_png_whose_compressed_xmp_expands_to_100k_broken_characters_reads_in_bounds():
    packet = ("<x:xmpmeta>" + "<TC260:AIGC " * 9000).encode()
    body = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(packet, 9)
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body))
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    png = out.getvalue()
    data = png[:33] + chunk + png[33:]
    assert len(data) < 6000
    outcomes = run_bounded(_read_png, [data], seconds=20)
    assert outcomes[0].status in ("ok", "rejected"), outcomes


def _read_png(data: bytes) -> None:
    get_handler("image/png").read(data)


# ------------------------------------------------------------ YAML aliases
def _alias_bomb(levels: int = 9) -> bytes:
    lines = ["---", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines += [f"AIGC: *a{levels - 1}", "---", "# title", ""]
    return "\n".join(lines).encode()


def test_yaml_alias_bomb_in_front_matter_is_refused_not_expanded():
    bomb = _alias_bomb()
    assert len(bomb) < 600
    handler = get_handler("text/markdown")
    meta = handler.read(bomb)  # read reports the broken record instead of expanding it
    assert meta.records and meta.records[0].record is None
    assert "aliases" in meta.records[0].error
    with pytest.raises(CorruptInput, match="aliases"):
        handler.write_record(bomb, _record())
    outcomes = run_bounded(_label_markdown, [bomb], seconds=20, memory_bytes=512 << 20)
    assert outcomes[0].status == "rejected", outcomes


def _label_markdown(data: bytes) -> None:
    label_file(data, _record(), FileOptions(watermark=False, c2pa=False))


def test_yaml_aliases_within_budget_still_load():
    meta = markdown_format.HANDLER.read(b"---\nbase: &b 1\ncopy: *b\n---\nbody\n")
    assert meta.properties["markdown:front-matter:copy"] == "1"


def test_self_referencing_yaml_alias_is_refused():
    with pytest.raises(CorruptInput, match="refers to itself"):
        markdown_format.HANDLER.write_record(b"---\na: &a [*a]\n---\nbody\n", _record())


# ------------------------------------------------------------ pixel amplification
def _huge_flat_png(width: int, height: int) -> bytes:
    """A PNG declaring width x height of zero pixels: a few hundred bytes."""
    raw = zlib.compress(b"\x00" * (width + 1) * 64, 9)  # 64 rows only: truncated data
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_tiny_png_declaring_100_megapixels_is_refused_before_decoding():
    data = _huge_flat_png(10000, 10000)
    assert len(data) < 1000
    with raises_limit("max_pixels_per_byte"):
        open_raster(data, "image/png", Limits())


def test_pixel_budget_scales_with_the_file_size():
    limits = Limits(pixel_budget_floor=1000, max_pixels_per_byte=10)
    out = io.BytesIO()
    Image.new("L", (100, 100)).save(out, "PNG")  # 10,000 px in well under 1,000 bytes
    with pytest.raises(LimitExceeded):
        open_raster(out.getvalue(), "image/png", limits)
    assert open_raster(out.getvalue(), "image/png", Limits()).size == (100, 100)


# ------------------------------------------------------------ plain text
@pytest.mark.parametrize(
    "data",
    [
        "春".encode() + b"\xe7",  # a character cut at the end of a short file
        "春眠不觉晓".encode() * 5000 + b"\xff\xfe tail",  # invalid UTF-8 after the first 64 KiB
    ],
    ids=["cut-character", "invalid-after-64k"],
)
def test_plain_text_that_is_not_utf8_is_unsupported_media(data):
    with pytest.raises(UnsupportedMedia, match="UTF-8"):
        label_file(data, _record(), FileOptions(watermark=False, c2pa=False))
    with pytest.raises(UnsupportedMedia, match="UTF-8"):
        content_digest(data)


# ------------------------------------------------------------ decoder errors, damaged packages
def test_avif_whose_image_data_is_zeroed_is_corrupt_input():
    out = io.BytesIO()
    Image.effect_noise((160, 128), 50).convert("RGB").save(out, "AVIF", quality=60)
    data = out.getvalue()
    at = data.find(b"mdat") + 4
    with pytest.raises(CorruptInput, match="AVIF"):
        open_raster(data[:at] + bytes(len(data) - at), "image/avif")


def _docx(document: bytes = b"", version: int | None = None) -> bytes:
    from tests.fuzz.mutate import _docx as plain

    if not document and version is None:
        return plain()
    src = zipfile.ZipFile(io.BytesIO(plain()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            body = src.read(info)
            z.writestr(
                info, document if document and info.filename == "word/document.xml" else body
            )
    data = bytearray(out.getvalue())
    if version is not None:  # "version needed to extract" in every header
        for magic, at in ((b"PK\x03\x04", 4), (b"PK\x01\x02", 6)):
            pos = 0
            while (pos := data.find(magic, pos)) >= 0:
                data[pos + at : pos + at + 2] = struct.pack("<H", version)
                pos += 4
    return bytes(data)


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    "data",
    [
        lambda: _docx(b'<?xml version="1.0" encoding="x-unknown"?><w:document/>'),
        lambda: _docx(version=99),
    ],
    ids=["unknown-xml-encoding", "odd-zip-version"],
)
def test_ooxml_with_odd_encoding_or_zip_version_is_corrupt_input(data):
    data = data()
    with pytest.raises(CorruptInput):
        get_handler(DOCX).read(data)
    with pytest.raises(CorruptInput):
        label_file(data, _record(), FileOptions(watermark=False, c2pa=False))


def test_ooxml_entry_with_a_bad_crc_is_refused_by_label_as_by_verify():
    data = bytearray(_docx())
    target = b"word/document.xml"
    for magic, crc_at, name_len_at, name_at in (
        (b"PK\x03\x04", 14, 26, 30),
        (b"PK\x01\x02", 16, 28, 46),
    ):
        pos = 0
        while (pos := data.find(magic, pos)) >= 0:
            n = int.from_bytes(data[pos + name_len_at : pos + name_len_at + 2], "little")
            if bytes(data[pos + name_at : pos + name_at + n]) == target:
                data[pos + crc_at] ^= 0xFF
            pos += 4
    data = bytes(data)
    with pytest.raises(CorruptInput, match="CRC"):
        content_digest(data)  # what verify's integrity check runs
    with pytest.raises(CorruptInput, match="CRC"):
        get_handler(DOCX).write_record(data, _record())  # metadata-only labelling copies raw
    options = FileOptions(explicit=False, watermark=False, c2pa=False)
    with pytest.raises(CorruptInput, match="CRC"):
        label_file(data, _record(), options)


# ------------------------------------------------------------ outputs that lose or duplicate
def test_webp_with_a_duplicated_image_chunk_is_refused_not_returned_broken():
    out = io.BytesIO()
    Image.effect_noise((160, 128), 50).convert("RGB").save(out, "WEBP", quality=80)
    webp = out.getvalue()
    size = int.from_bytes(webp[16:20], "little")
    chunk = webp[12 : 20 + size + (size & 1)]
    doubled = webp[:12] + chunk + chunk + webp[20 + size + (size & 1) :]
    doubled = doubled[:4] + struct.pack("<I", len(doubled) - 8) + doubled[8:]
    Image.open(io.BytesIO(doubled)).load()  # Pillow shows it
    with pytest.raises(CorruptInput, match="2 VP8 image chunks"):
        get_handler("image/webp").write_record(doubled, _record())


def test_html_under_yaml_front_matter_is_labelled_as_html_with_one_record():
    old = Record.first_write(PRODUCER, "01JOLDOLDOLDOLDOLDOLDOLD00")
    page = (
        "---\nlayout: post\n---\n<!doctype html><html><head>"
        f"<meta name=\"AIGC\" content='{old.dumps()}'></head><body><p>x</p></body></html>\n"
    ).encode()
    result = label_file(page, _record(), FileOptions(watermark=False, c2pa=False))
    assert result.media_type == "text/html"
    text = result.data.decode()
    assert text.startswith("---\nlayout: post\n---\n")
    assert text.count('name="AIGC"') == 1
    meta = get_handler("text/html").read(result.data)
    assert [f.record for f in meta.records] == [_record()]


def test_avif_rewrite_leaves_no_stale_record_bytes():
    old = Record.first_write(PRODUCER, "01JOLDOLDOLDOLDOLDOLDOLD00")
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:TC260="http://www.tc260.org.cn'
        f"/ns/AIGC/1.0/\" TC260:AIGC='{old.dumps()}'/></rdf:RDF></x:xmpmeta>"
    ).encode()
    out = io.BytesIO()
    Image.effect_noise((160, 128), 50).convert("RGB").save(out, "AVIF", quality=60, xmp=packet)
    data = out.getvalue()
    assert old.produce_id.encode() in data  # the other tool put its XMP inside the image mdat
    labelled = get_handler("image/avif").write_record(data, _record())
    assert old.produce_id.encode() not in labelled
    assert labelled.count(_record().produce_id.encode()) == 2  # ProduceID and PropagateID
    with Image.open(io.BytesIO(labelled)) as im:
        im.load()
    assert [f.record for f in get_handler("image/avif").read(labelled).records] == [_record()]


# ------------------------------------------------------------ quadratic text scans
HOSTILE_TEXTS = [
    "`" * 3 + "a`" * 60_000,  # backtick runs of mixed lengths, few closers
    "](" * 100_000,  # link destinations that never close
    "<pre " * 50_000 + "<!--" * 50_000,  # raw HTML blocks and comments never closed
]


def _label_text_payload(data: bytes) -> None:
    from labelers.pipeline import label_text

    label_text(data.decode(), _record(), "start", "人工智能生成", True, Limits())


def test_prose_scans_for_code_links_and_html_are_linear():
    inputs = [t.encode() for t in HOSTILE_TEXTS]
    outcomes = run_bounded(_label_text_payload, inputs, seconds=30)
    assert [o.status for o in outcomes] == ["ok"] * len(inputs), outcomes


def test_code_spans_and_html_blocks_are_still_protected():
    from labelers.watermark.text import _code_spans, _html_blocks

    text = "a `x` b ``y`z`` c `open\n\nnot` <PRE class=q>p</pre > <!-- c --> <pre>"
    spans = [text[s:e] for s, e in _code_spans(text)]
    assert spans == ["`x`", "``y`z``"]
    assert [text[s:e] for s, e in _html_blocks(text)] == ["<PRE class=q>p</pre >", "<!-- c -->"]
