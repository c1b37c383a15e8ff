"""Content digests: unmoved by labelling, propagation, XMP edits and C2PA; moved by content.

The digest is what ReservedCode1/ReservedCode2 sign, so it must stay put when
the record is written or replaced (any number of times), when legacy record
carriers are cleaned up, when another tool edits the XMP (exiftool here), and
when a C2PA manifest is embedded or replaced (c2pa's own Reader confirms the
manifest is there); and it must change when one byte of coded content, one
pixel, one word or the page count changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import c2pa
import pytest
from fpdf import FPDF
from PIL import Image, ImageSequence, PngImagePlugin
from pypdf import PdfReader, PdfWriter

from app.dev_credentials import ensure_dev_credentials
from labelers.errors import CorruptInput, LimitExceeded, UnsupportedMedia
from labelers.formats import content_digest, get_handler, sniff, text_content_digest
from labelers.formats import gif as giflib
from labelers.limits import Limits
from labelers.provenance import C2paSigner
from labelers.record import Record
from labelers.visible.pdf import stamp_pages
from labelers.watermark.text import embed, visible_text
from tests.labelers.formats.conftest import photo_array
from tests.labelers.formats.test_ooxml import docx, pptx, xlsx
from tests.support import PLATFORM, PRODUCER

IMAGE_FORMATS = ["jpeg", "png", "webp", "tiff", "gif", "avif"]
MEDIA = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "gif": "image/gif",
    "avif": "image/avif",
}
R1 = Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")
R2 = Record.first_write(PRODUCER, "01JZZZZZZZZZZZZZZZZZZZZZZ9").with_fields(
    content_propagator=PLATFORM, propagate_id="PLATFORM-42"
)
# an older record as other tools leave it in legacy carriers
LEGACY = Record.first_write(PRODUCER, "LEGACY-1").dumps(wrapped=True)
WORDING = "人工智能生成"


def digest(data: bytes, media_type: str | None = None) -> bytes:
    out = get_handler(media_type).content_digest(data) if media_type else content_digest(data)
    assert len(out) == 32
    return out


def relabelled(data: bytes, media_type: str | None = None) -> list[bytes]:
    """``data``, then with R1 written, then R2 over it (propagation), then R1 again."""
    handler = get_handler(media_type or sniff(data))
    first = handler.write_record(data, R1)
    second = handler.write_record(first, R2)
    return [data, first, second, handler.write_record(second, R1)]


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> C2paSigner:
    files = ensure_dev_credentials(tmp_path_factory.mktemp("c2pa"))
    return C2paSigner.from_files(files.chain_pem, files.key_pem)


def c2pa_manifest_count(data: bytes, media_type: str) -> int:
    """Manifests c2pa's own Reader finds (independent of our provenance module)."""
    reader = c2pa.Reader(media_type, io.BytesIO(data))
    store = json.loads(reader.json())
    assert store.get("active_manifest"), "c2pa found no active manifest"
    return len(store.get("manifests", {}))


def signed_twice(signer: C2paSigner, data: bytes, media_type: str) -> list[bytes]:
    once = signer.sign(data, media_type, R1, "test-model")
    twice = signer.sign(once, media_type, R2, "test-model")
    for signed in (once, twice):
        assert signed != data
        assert c2pa_manifest_count(signed, media_type) >= 1
    return [once, twice]


# ---------------------------------------------------------------- image fixtures
def encode(fmt: str, frames: list[Image.Image], *, legacy: bool = False) -> bytes:
    """An image as a generator leaves it; with ``legacy``, records in old carriers too."""
    im = frames[0]
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x0131] = "DiffusionTool 2.0"
    if legacy:
        exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + LEGACY.encode()
    buf = io.BytesIO()
    if fmt == "jpeg":
        kwargs = {"comment": LEGACY} if legacy else {}
        im.save(buf, "JPEG", quality=90, exif=exif, **kwargs)
    elif fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", "a lighthouse at dusk, Steps: 30")
        if legacy:
            info.add_text("AIGC", LEGACY)
        im.save(buf, "PNG", pnginfo=info, exif=exif)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=85, exif=exif)
    elif fmt == "tiff":
        tags = {305: "DiffusionTool 2.0"}
        if legacy:
            tags[270] = LEGACY
        im.save(
            buf,
            "TIFF",
            compression="tiff_lzw",
            tiffinfo=tags,
            save_all=True,
            append_images=frames[1:],
        )
    elif fmt == "gif":
        pal = [f.quantize(64) for f in frames]
        kwargs = {"comment": LEGACY.encode()} if legacy else {}
        pal[0].save(
            buf, "GIF", save_all=True, append_images=pal[1:], loop=0, duration=120, **kwargs
        )
    elif fmt == "avif":
        im.save(buf, "AVIF", quality=80, exif=exif)
    else:
        raise ValueError(fmt)
    return buf.getvalue()


def photo(seed: int = 0) -> Image.Image:
    return Image.fromarray(photo_array(seed=seed))


def still_or_animated(fmt: str) -> list[Image.Image]:
    # GIF animated and TIFF multi-page, so frames after the first are covered too
    return [photo(i) for i in range(3 if fmt in ("gif", "tiff") else 1)]


# ------------------------------------------------------------------ image tests
@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_digest_is_unmoved_by_writing_and_replacing_the_record(fmt: str) -> None:
    versions = relabelled(encode(fmt, still_or_animated(fmt)))
    assert len(set(versions)) == 4  # the bytes did change each time
    assert len({digest(v) for v in versions}) == 1


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_digest_is_unmoved_by_legacy_carrier_cleanup(fmt: str) -> None:
    original = encode(fmt, still_or_animated(fmt), legacy=True)
    handler = get_handler(sniff(original))
    legacy_carriers = [r.carrier for r in handler.read(original).records]
    assert legacy_carriers  # EXIF UserComment, tEXt AIGC, COM, GIF comment, ImageDescription
    labelled = handler.write_record(original, R1)
    records = handler.read(labelled).records
    assert [r.carrier for r in records] == ["xmp:TC260:AIGC"]  # the old ones were cleared
    assert digest(labelled) == digest(original)


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_digest_is_unmoved_by_c2pa_signing_and_resigning(
    fmt: str, signer: C2paSigner
) -> None:
    labelled = relabelled(encode(fmt, still_or_animated(fmt)))[1]
    signed = signed_twice(signer, labelled, MEDIA[fmt])
    assert digest(signed[0]) == digest(signed[1]) == digest(labelled)
    # relabelling a signed file (which breaks the C2PA binding) keeps the digest too
    assert digest(get_handler(MEDIA[fmt]).write_record(signed[1], R2)) == digest(labelled)


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_digest_is_unmoved_when_exiftool_edits_the_xmp(fmt: str, tmp_path: Path) -> None:
    labelled = relabelled(encode(fmt, still_or_animated(fmt)))[1]
    path = tmp_path / f"image.{fmt}"
    path.write_bytes(labelled)
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-XMP-dc:Description=edited elsewhere",
            str(path),
        ],
        check=True,
    )
    edited = path.read_bytes()
    assert b"edited elsewhere" in edited
    assert digest(edited) == digest(labelled)


def flip_content_byte(fmt: str, data: bytes) -> bytes:
    """``data`` with one byte of coded image data changed; the file still parses."""
    out = bytearray(data)
    if fmt == "jpeg":
        sos = data.index(b"\xff\xda")
        start = sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0]
        pos = start + (len(data) - start) // 2
        while not (0x10 <= out[pos] < 0xF0 and out[pos - 1] != 0xFF):
            pos += 1
        out[pos] ^= 0x01
    elif fmt == "png":
        idat = data.index(b"IDAT") - 4
        (length,) = struct.unpack(">I", data[idat : idat + 4])
        out[idat + 8 + length // 2] ^= 0x01
        body = bytes(out[idat + 4 : idat + 8 + length])
        out[idat + 8 + length : idat + 12 + length] = struct.pack(">I", zlib.crc32(body))
    elif fmt == "webp":
        vp8 = data.index(b"VP8 ")
        (length,) = struct.unpack("<I", data[vp8 + 4 : vp8 + 8])
        out[vp8 + 8 + length // 2] ^= 0x01
    elif fmt == "gif":
        # the last frame's LZW data, inside its first sub-block
        parsed = giflib._parse(data, Limits())
        last = [b for b in parsed.blocks if b.kind == giflib.IMAGE][-1]
        assert data[last.data_start + 1] > 8  # first sub-block length
        out[last.data_start + 5] ^= 0x01
    elif fmt == "tiff":
        # a strip of the last page, located by Pillow (an independent TIFF reader)
        with Image.open(io.BytesIO(data)) as im:
            for frame in ImageSequence.Iterator(im):
                offsets, counts = frame.tag_v2[273], frame.tag_v2[279]
        out[offsets[0] + counts[0] // 2] ^= 0x01
    elif fmt == "avif":
        mdat = data.index(b"mdat") - 4
        (length,) = struct.unpack(">I", data[mdat : mdat + 4])
        out[mdat + length // 2] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_digest_changes_when_one_byte_of_coded_data_changes(fmt: str) -> None:
    labelled = relabelled(encode(fmt, still_or_animated(fmt)))[1]
    tampered = flip_content_byte(fmt, labelled)
    assert tampered != labelled
    assert digest(tampered) != digest(labelled)


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_image_digest_changes_when_one_pixel_changes(fmt: str) -> None:
    frames = still_or_animated(fmt)
    edited = [f.copy() for f in frames]
    r, g, b = edited[-1].getpixel((80, 60))
    edited[-1].putpixel((80, 60), (255 - r, 255 - g, 255 - b))
    before = get_handler(MEDIA[fmt]).write_record(encode(fmt, frames), R1)
    after = get_handler(MEDIA[fmt]).write_record(encode(fmt, edited), R1)
    assert digest(before) != digest(after)


def variant(name: str) -> tuple[str, bytes]:
    """Layouts write_record changes more than the metadata chunk of (media type, bytes)."""
    frames = [photo(i) for i in range(3)]
    buf = io.BytesIO()
    if name == "webp-simple":  # no VP8X: write_record adds one
        frames[0].save(buf, "WEBP", quality=80)
    elif name == "webp-lossless-alpha":
        rgba = frames[0].convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
        rgba.save(buf, "WEBP", lossless=True)
    elif name == "webp-animated":
        frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    elif name == "apng":
        frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], duration=100)
    elif name == "png-palette-trns":
        frames[0].quantize(16).save(buf, "PNG", transparency=3)
    elif name == "gif87a":  # write_record makes it GIF89a
        frames[0].quantize(32).save(buf, "GIF")
        assert buf.getvalue().startswith(b"GIF87a")
    elif name == "jpeg-progressive":
        frames[0].save(buf, "JPEG", quality=85, progressive=True)
    data = buf.getvalue()
    return sniff(data), data


VARIANTS = [
    "webp-simple",
    "webp-lossless-alpha",
    "webp-animated",
    "apng",
    "png-palette-trns",
    "gif87a",
    "jpeg-progressive",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_image_variants_keep_their_digest_through_labelling_and_c2pa(
    name: str, signer: C2paSigner
) -> None:
    media_type, data = variant(name)
    versions = relabelled(data)
    versions += signed_twice(signer, versions[1], media_type)
    assert len({digest(v) for v in versions}) == 1


# -------------------------------------------------------------------------- PDF
def pdf_document(words: str = "quick brown fox", pages: int = 3, pixel: int = 0) -> bytes:
    image = Image.fromarray(photo_array(64, 48))
    if pixel:
        image.putpixel((10, 10), (pixel, 0, 0))
    png = io.BytesIO()
    image.save(png, "PNG")
    pdf = FPDF(unit="pt")
    pdf.set_title("Fixture")
    pdf.set_font("helvetica", size=14)
    for i in range(pages):
        pdf.add_page()
        pdf.cell(0, 30, f"Page {i + 1}: the {words} jumps", new_x="LMARGIN", new_y="NEXT")
        pdf.image(io.BytesIO(png.getvalue()), x=40, y=100, w=128)
        if i == 0:
            pdf.cell(0, 30, "Visit example", link="https://example.org/doc")
    return stamp_pages(bytes(pdf.output()), WORDING)


def test_pdf_digest_is_unmoved_by_records_and_c2pa(signer: C2paSigner) -> None:
    versions = relabelled(pdf_document())
    assert len({digest(v) for v in versions}) == 1
    signed = signed_twice(signer, versions[1], "application/pdf")
    relabelled_after_signing = get_handler("application/pdf").write_record(signed[1], R2)
    assert {digest(v) for v in [*signed, relabelled_after_signing]} == {digest(versions[0])}
    # what changed is the record and the manifest, not the text a reader sees
    texts = {tuple(p.extract_text() for p in PdfReader(io.BytesIO(v)).pages) for v in signed}
    assert len(texts) == 1


def test_pdf_digest_is_unmoved_by_relabelling_an_encrypted_document() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_document())))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    encrypted = out.getvalue()
    versions = relabelled(encrypted)
    assert all(PdfReader(io.BytesIO(v)).is_encrypted for v in versions)
    assert len({digest(v) for v in versions}) == 1
    assert digest(encrypted) == digest(pdf_document())  # hashed decrypted


def test_pdf_digest_changes_with_a_word_an_image_pixel_or_the_page_count() -> None:
    base = digest(get_handler("application/pdf").write_record(pdf_document(), R1))
    assert digest(pdf_document(words="quick brown cat")) != base
    assert digest(pdf_document(pixel=7)) != base
    assert digest(pdf_document(pages=4)) != base
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_document())))
    writer.remove_page(2)
    out = io.BytesIO()
    writer.write(out)
    assert digest(out.getvalue()) != base


# ------------------------------------------------------------------------- OOXML
def restored(data: bytes, compression: int = zipfile.ZIP_STORED) -> bytes:
    """The same parts re-zipped (another tool saving the package), in reverse order."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as dst:
        for info in reversed(src.infolist()):
            dst.writestr(info.filename, src.read(info))
    return out.getvalue()


@pytest.mark.parametrize("make", [docx, pptx, xlsx], ids=["docx", "pptx", "xlsx"])
def test_ooxml_digest_is_unmoved_by_records_and_repackaging(make: Callable[..., bytes]) -> None:
    versions = relabelled(make())
    versions.append(relabelled(make(custom=True))[2])  # an existing custom part, other props
    versions.append(restored(versions[2]))
    assert len({digest(v) for v in versions}) == 1


def test_ooxml_digest_is_unmoved_by_c2pa(signer: C2paSigner) -> None:
    # c2pa here reads only stored (uncompressed) ZIP entries, and the custom part
    # write_record adds is deflated, so an unlabelled stored package is signed
    stored = restored(docx())
    media_type = sniff(stored)
    signed = signed_twice(signer, stored, media_type)
    names = zipfile.ZipFile(io.BytesIO(signed[0])).namelist()
    assert "META-INF/content_credential.c2pa" in names
    labelled_after = get_handler(media_type).write_record(signed[1], R1)
    assert {digest(v) for v in [*signed, labelled_after]} == {digest(docx())}


def test_ooxml_digest_changes_with_one_word_or_one_image_byte() -> None:
    base = digest(get_handler(sniff(docx())).write_record(docx(), R1))
    assert digest(docx(["第一段：这是一份测试文档。", "Second paragraph with a picture."])) != base
    src = zipfile.ZipFile(io.BytesIO(docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = bytearray(src.read(info))
            if info.filename.endswith(".png"):
                body[len(body) // 2] ^= 0x01
            dst.writestr(info, bytes(body))
    assert digest(out.getvalue()) != base
    assert digest(pptx(["第一张幻灯片", "Second slide!"])) != digest(pptx())
    assert digest(xlsx([["a", "b"], ["c", "e"]])) != digest(xlsx([["a", "b"], ["c", "d"]]))


# ---------------------------------------------------------------------- Markdown
MARKDOWN = [
    "# 本周要闻\n\n人工智能生成的段落。\n",
    "---\ntitle: 周报\n# keep this comment\ntags: [ai]\n---\n# 本周要闻\n\nBody.\n",
    "---\r\ntitle: x\r\n---\r\nBody with CRLF.\r\n",
    '\ufeff---\nAIGC:\n  Label: "3"\n  ContentProducer: x\ntitle: y\n---\nBody\n',
    "---\n---\nempty front matter\n",
]


@pytest.mark.parametrize("text", MARKDOWN)
def test_markdown_digest_is_unmoved_by_records(text: str) -> None:
    versions = relabelled(text.encode("utf-8"), "text/markdown")
    assert len({digest(v, "text/markdown") for v in versions}) == 1


def test_markdown_relabel_with_crlf_keeps_one_aigc_block() -> None:
    last = relabelled(MARKDOWN[2].encode(), "text/markdown")[-1].decode()
    assert last.count("AIGC:") == 1
    assert "\r\n" in last and "\n" not in last.replace("\r\n", "")


def test_markdown_digest_changes_with_a_word_or_another_front_matter_key() -> None:
    base = digest(MARKDOWN[1].encode())
    assert digest(MARKDOWN[1].replace("Body.", "Bodies.").encode()) != base
    assert digest(MARKDOWN[1].replace("title: 周报", "title: 月报").encode()) != base


# -------------------------------------------------------------------------- HTML
HTML_PAGES = [
    "<!doctype html>\n<html>\n<head>\n<title>x</title>\n</head>\n<body><p>Hello</p></body>\n"
    "</html>\n",
    "<!doctype html>\r\n<html>\r\n<head>\r\n<title>x</title>\r\n</head>\r\n<body>Hi</body></html>",
    "<html><head><title>t</title></head><body>Hi</body></html>",
    "<html><head></head><body>Empty head</body></html>",
    "<html><body>No head</body></html>",
    "<html><head><title>Unclosed head</title><body>Hi</body></html>",
    "<!DOCTYPE html><p>Only a paragraph</p>",
    '<html><head>\n  <meta name="AIGC" content="old">\n  <meta name="aigc" content="x">\n'
    "</head><body>Two old records</body></html>",
    '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title>'
    "</head><body>XHTML</body></html>",
]


@pytest.mark.parametrize("page", HTML_PAGES)
def test_html_digest_is_unmoved_by_records(page: str) -> None:
    versions = relabelled(page.encode("utf-8"))
    assert len({digest(v) for v in versions}) == 1


def test_html_digest_is_unmoved_in_a_legacy_charset() -> None:
    page = (
        '<html><head><meta charset="gb2312"><title>周报</title></head>'
        "<body>人工智能生成</body></html>"
    )
    # sniff() takes only UTF-8 text, so the handler is named
    versions = relabelled(page.encode("gb18030"), "text/html")
    assert versions[-1].decode("gb18030").count('name="AIGC"') == 1
    assert len({digest(v, "text/html") for v in versions}) == 1
    assert digest(versions[0], "text/html") == digest(page.encode("utf-8"))  # text is hashed


def test_html_digest_changes_with_a_word_or_another_meta() -> None:
    base = digest(HTML_PAGES[0].encode())
    assert digest(HTML_PAGES[0].replace("Hello", "Hallo").encode()) != base
    other_meta = HTML_PAGES[0].replace("<title>", '<meta name="robots" content="noindex"><title>')
    assert digest(other_meta.encode()) != base


# -------------------------------------------------------------------- plain text
def test_text_digest_is_sha256_of_the_visible_text_and_ignores_the_watermark() -> None:
    text = "人工智能生成\n\n" + "这是一段足够长的正文，用来承载不可见的水印标识。" * 3
    expected = hashlib.sha256(visible_text(text).encode("utf-8")).digest()
    assert content_digest(text.encode("utf-8")) == expected == text_content_digest(text)
    marked = embed(text, "01JABCDEFGHJKMNPQRSTVWXYZ0")
    assert marked != text
    assert text_content_digest(marked) == expected
    assert text_content_digest(text.replace("正文", "文章")) != expected


# ---------------------------------------------------------- dispatch and errors
@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_module_function_dispatches_to_the_handler(fmt: str) -> None:
    data = encode(fmt, [photo()])
    assert content_digest(data) == get_handler(MEDIA[fmt]).content_digest(data)


def test_bad_input_raises_project_errors() -> None:
    with pytest.raises(UnsupportedMedia):
        content_digest(b"")
    with pytest.raises(UnsupportedMedia):
        content_digest(b"\x00\x01\x02 binary junk")
    jpeg = encode("jpeg", [photo()])
    with pytest.raises(CorruptInput):
        content_digest(jpeg[: len(jpeg) // 2])
    with pytest.raises(CorruptInput):
        content_digest(b"%PDF-1.7\n garbage")
    small = Limits(max_bytes=1000)
    for data in (jpeg, encode("png", [photo()]), pdf_document(), docx(), b"x" * 2000):
        with pytest.raises(LimitExceeded):
            content_digest(data, small)
    with pytest.raises(LimitExceeded):
        content_digest(pdf_document(pages=3), Limits(max_pages=2))
    with pytest.raises(LimitExceeded):
        content_digest(encode("tiff", still_or_animated("tiff")), Limits(max_pages=2))
