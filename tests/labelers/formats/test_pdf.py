"""PDF: visible label band on every page, record in Info /AIGC and XMP, hostile files refused.

Fixtures are built here with fpdf2 and pypdf: mixed page sizes (A4, A4
landscape, Letter, A5), a page rotated 90 degrees, a page whose crop box does
not start at the origin, a link, outline entries, a text form field, Info
/Author and an XMP packet with another property. Results are checked with
independent readers: pypdf, poppler (pdftotext, pdftoppm), qpdf and exiftool.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    RectangleObject,
    TextStringObject,
)

from labelers.errors import (
    CorruptInput,
    EncryptedInput,
    InvalidOption,
    InvalidWording,
    LimitExceeded,
)
from labelers.formats import get_handler, sniff
from labelers.formats.pdf import HANDLER, INFO_CARRIER
from labelers.limits import Limits
from labelers.record import Record
from labelers.visible.pdf import stamp_pages
from tests.support import raises_limit

PRODUCER = "0011911100007109120X0010001"
PLATFORM = "0011911100007109120X0020001"
WORDING = "人工智能生成"
XMP_CARRIER = "xmp:TC260:AIGC"
DARK_BLUE = (30, 60, 120)
XMP_BODY = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
    "<xmp:CreatorTool>FixtureMaker 1.0</xmp:CreatorTool></rdf:Description>"
    "</rdf:RDF></x:xmpmeta>"
)
A5 = (419.53, 595.28)
PAGE_FORMATS = [
    ("portrait", "a4"),
    ("landscape", "a4"),
    ("portrait", "letter"),
    ("portrait", "a4"),
    ("portrait", A5),
]
ROTATED_PAGE = 3  # index of the page turned 90 degrees
SHIFTED_PAGE = 4  # index of the page whose boxes do not start at (0, 0)


def _record(produce_id: str = "01JABCDEFGHJKMNPQRSTVWXYZ0") -> Record:
    return Record.first_write(PRODUCER, produce_id)


@cache
def _document() -> bytes:
    pdf = FPDF(unit="pt")
    pdf.set_author("Zhang San")
    pdf.set_title("Fixture")
    pdf.set_xmp_metadata(XMP_BODY)
    pdf.set_font("helvetica", size=14)
    for i, (orientation, fmt) in enumerate(PAGE_FORMATS):
        pdf.add_page(orientation=orientation, format=fmt)
        pdf.start_section(f"Chapter {i + 1}")
        pdf.cell(0, 30, f"Original text of page {i + 1}", new_x="LMARGIN", new_y="NEXT")
        if i == 0:
            pdf.cell(0, 30, "Visit example", link="https://example.org/doc")
        # a dark band where the label goes: the label must read on it
        pdf.set_fill_color(*DARK_BLUE)
        pdf.rect(0, pdf.h - 60, pdf.w, 60, style="F")
    writer = PdfWriter(clone_from=PdfReader(BytesIO(bytes(pdf.output()))))
    writer.pages[ROTATED_PAGE].rotate(90)
    shifted = writer.pages[SHIFTED_PAGE]
    right, top = float(shifted.mediabox.right), float(shifted.mediabox.top)
    shifted.mediabox = RectangleObject([50, 40, right, top])
    shifted.cropbox = RectangleObject([60, 50, right - 10, top - 10])
    _add_text_field(writer, "customer", "Li Si")
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _add_text_field(writer: PdfWriter, name: str, value: str) -> None:
    page = writer.pages[0]
    rect = ArrayObject([FloatObject(300), FloatObject(600), FloatObject(500), FloatObject(630)])
    field = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/T"): TextStringObject(name),
            NameObject("/V"): TextStringObject(value),
            NameObject("/Rect"): rect,
            NameObject("/F"): NumberObject(4),
            NameObject("/P"): page.indirect_reference,
            NameObject("/DA"): TextStringObject("/Helv 12 Tf 0 g"),
        }
    )
    ref = writer._add_object(field)
    page[NameObject("/Annots")].get_object().append(ref)
    writer.root_object[NameObject("/AcroForm")] = DictionaryObject(
        {
            NameObject("/Fields"): ArrayObject([ref]),
            NameObject("/DA"): TextStringObject("/Helv 0 Tf 0 g"),
        }
    )


@cache
def _labelled() -> bytes:
    return HANDLER.write_record(stamp_pages(_document(), WORDING), _record())


def _write(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _pdftotext_pages(path: Path, count: int) -> list[str]:
    return [
        subprocess.run(
            ["pdftotext", "-f", str(i), "-l", str(i), str(path), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for i in range(1, count + 1)
    ]


def _label_boxes(path: Path) -> list[tuple[float, float, list[tuple[float, float, float, float]]]]:
    """Per page: poppler's page width, height and the boxes of the label's words."""
    html = subprocess.run(
        ["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = []
    for chunk in html.split("<page ")[1:]:
        w, h = (float(x) for x in re.search(r'width="([\d.]+)" height="([\d.]+)"', chunk).groups())
        boxes = [
            tuple(float(v) for v in m.groups())
            for m in re.finditer(
                r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">'
                + re.escape(WORDING),
                chunk,
            )
        ]
        pages.append((w, h, boxes))
    return pages


def _exiftool(path: Path, *tags: str) -> dict[str, str]:
    out = subprocess.run(
        ["exiftool", "-j", *tags, str(path)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)[0]


# ----------------------------------------------------------- visible + record
def test_label_text_extracts_from_every_page_with_pypdf_and_pdftotext(tmp_path: Path) -> None:
    path = _write(tmp_path, _labelled())
    reader = PdfReader(path)
    assert len(reader.pages) == len(PAGE_FORMATS)
    for page in reader.pages:
        assert WORDING in page.extract_text()
    for text in _pdftotext_pages(path, len(PAGE_FORMATS)):
        assert WORDING in text


def test_labelled_document_passes_qpdf_check(tmp_path: Path) -> None:
    path = _write(tmp_path, _labelled())
    result = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_document_structure_survives_stamp_and_record(tmp_path: Path) -> None:
    before = PdfReader(BytesIO(_document()))
    after = PdfReader(_write(tmp_path, _labelled()))
    assert len(after.pages) == len(before.pages)
    for i, page in enumerate(after.pages):
        assert f"Original text of page {i + 1}" in page.extract_text()
        assert page.rotation == before.pages[i].rotation
        assert page.cropbox == before.pages[i].cropbox
    uris = [
        a.get_object()["/A"]["/URI"]
        for a in after.pages[0]["/Annots"]
        if a.get_object()["/Subtype"] == "/Link"
    ]
    assert uris == ["https://example.org/doc"]
    assert [o.title for o in after.outline] == [f"Chapter {i + 1}" for i in range(5)]
    assert [after.get_destination_page_number(o) for o in after.outline] == list(range(5))
    assert after.get_fields()["customer"]["/V"] == "Li Si"
    assert after.metadata["/Author"] == "Zhang San"
    assert after.metadata["/Title"] == "Fixture"


def test_exiftool_sees_both_carriers_and_the_other_xmp_property(tmp_path: Path) -> None:
    path = _write(tmp_path, _labelled())
    tags = _exiftool(path, "-XMP-xmp:CreatorTool", "-XMP-TC260:all", "-PDF:AIGC", "-PDF:Author")
    assert tags["CreatorTool"] == "FixtureMaker 1.0"
    assert tags["Author"] == "Zhang San"
    assert Record.parse(tags["AIGC"]) == _record()  # Info /AIGC, wrapped form
    assert Record.parse(tags["Aigc"]) == _record()  # XMP TC260:AIGC, bare form
    assert json.loads(tags["AIGC"]) == {"AIGC": _record().as_dict()}


def test_read_returns_one_record_per_carrier_equal_to_the_written_one() -> None:
    meta = get_handler(sniff(_labelled())).read(_labelled())
    assert sorted(r.carrier for r in meta.records) == [INFO_CARRIER, XMP_CARRIER]
    assert all(r.record == _record() and r.error is None for r in meta.records)
    info = next(r for r in meta.records if r.carrier == INFO_CARRIER)
    assert info.raw == _record().dumps(wrapped=True)
    assert meta.properties["pdf:Info:/Author"] == "Zhang San"
    assert "pdf:Info:/AIGC" not in meta.properties
    assert "FixtureMaker 1.0" in (meta.xmp or "")
    assert meta.text_pages is not None and len(meta.text_pages) == len(PAGE_FORMATS)
    assert all(WORDING in text for text in meta.text_pages)


def test_relabel_keeps_one_record_and_drops_the_old_one_from_the_bytes() -> None:
    first = _record("01JAAAAAAAAAAAAAAAAAAAAAAA")
    second = first.with_fields(
        produce_id="01JBBBBBBBBBBBBBBBBBBBBBBB", content_propagator=PLATFORM, propagate_id="P-42"
    )
    once = HANDLER.write_record(_document(), first)
    twice = HANDLER.write_record(once, second)
    meta = HANDLER.read(twice)
    assert sorted(r.carrier for r in meta.records) == [INFO_CARRIER, XMP_CARRIER]
    assert all(r.record == second for r in meta.records)
    # no orphaned XMP stream or Info dictionary still holds the old record
    assert b"01JAAAAAAAAAAAAAAAAAAAAAAA" not in twice
    assert "FixtureMaker 1.0" in (meta.xmp or "")


def test_label_sits_at_the_visible_bottom_of_every_page(tmp_path: Path) -> None:
    path = _write(tmp_path, _labelled())
    reader = PdfReader(path)
    for i, (width, height, boxes) in enumerate(_label_boxes(path)):
        assert len(boxes) == 1, f"page {i + 1}: {boxes}"
        x0, y0, x1, y1 = boxes[0]
        page = reader.pages[i]
        media, crop = page.mediabox, page.cropbox
        if page.rotation in (90, 270):  # poppler reports word boxes in display space
            assert crop == media
            left, right, bottom = 0.0, height, width
        else:  # the visible window, with poppler's origin at the media box's top left
            left = float(crop.left - media.left)
            right = float(crop.right - media.left)
            bottom = height - float(crop.bottom - media.bottom)
        visible_h = float(crop.height) if page.rotation in (0, 180) else float(crop.width)
        assert abs((x0 + x1) / 2 - (left + right) / 2) < 2, f"page {i + 1} not centred"
        assert 0 < bottom - y1 < 0.05 * visible_h, f"page {i + 1} not at the bottom"
        # legible: about 9.5 pt on A4, never below 7 pt
        assert y1 - y0 >= 7


def test_label_renders_legibly_on_a_dark_page_bottom(tmp_path: Path) -> None:
    def label_area(data: bytes, name: str) -> np.ndarray:
        path = _write(tmp_path, data, f"{name}.pdf")
        subprocess.run(
            ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(tmp_path / name)],
            check=True,
        )
        pixels = np.asarray(Image.open(next(tmp_path.glob(f"{name}-*1.png"))).convert("RGB"))
        h, w, _ = pixels.shape
        # the middle of the bottom edge, inside where the band goes on A4
        return pixels[int(h * 0.975) : int(h * 0.993), int(w * 0.46) : int(w * 0.54)].astype(int)

    def share(mask: np.ndarray) -> float:
        return float(mask.mean())

    plain = label_area(_document(), "plain")
    labelled = label_area(_labelled(), "labelled")
    assert share(plain.min(axis=2) > 230) == 0  # the page bottom is dark blue
    assert share(labelled.min(axis=2) > 230) > 0.4  # the light band
    # dark grey glyph strokes on it (grey, unlike the blue background)
    grey_dark = (labelled.max(axis=2) < 110) & (abs(labelled[..., 2] - labelled[..., 0]) < 25)
    assert share(grey_dark) > 0.02


def test_pages_first_labels_only_page_one(tmp_path: Path) -> None:
    path = _write(tmp_path, stamp_pages(_document(), WORDING, pages="first"))
    texts = _pdftotext_pages(path, len(PAGE_FORMATS))
    assert WORDING in texts[0]
    assert all(WORDING not in t for t in texts[1:])


def test_header_placement_puts_the_label_at_the_visible_top(tmp_path: Path) -> None:
    path = _write(tmp_path, stamp_pages(_document(), "AI生成", placement="header"))
    html = subprocess.run(
        ["pdftotext", "-bbox", "-f", "1", "-l", "1", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="[\d.]+">AI生成', html)
    assert m is not None and float(m.group(1)) < 20


def test_stamping_twice_does_not_stack_labels(tmp_path: Path) -> None:
    once = stamp_pages(_document(), WORDING, pages="first")
    twice = stamp_pages(once, WORDING)  # page 1 already labelled, the rest now too
    texts = _pdftotext_pages(_write(tmp_path, twice), len(PAGE_FORMATS))
    assert [t.count(WORDING) for t in texts] == [1] * len(PAGE_FORMATS)


def test_record_written_before_the_stamp_survives_it() -> None:
    data = stamp_pages(HANDLER.write_record(_document(), _record()), WORDING)
    assert [r.record for r in HANDLER.read(data).records] == [_record(), _record()]


def test_bad_options_are_refused() -> None:
    with pytest.raises(InvalidOption, match="placement"):
        stamp_pages(_document(), WORDING, placement="left")
    with pytest.raises(InvalidOption, match="pages"):
        stamp_pages(_document(), WORDING, pages="odd")
    with pytest.raises(InvalidWording):
        stamp_pages(_document(), "Made by a machine")


def test_unparseable_info_record_is_reported_not_raised() -> None:
    writer = PdfWriter(clone_from=PdfReader(BytesIO(_document())))
    writer.add_metadata({"/AIGC": "not a record"})
    out = BytesIO()
    writer.write(out)
    (found,) = HANDLER.read(out.getvalue()).records
    assert found.carrier == INFO_CARRIER and found.record is None and found.error


# ----------------------------------------------------------------- encryption
def _encrypted(user_password: str, algorithm: str = "AES-128") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(BytesIO(_document())))
    writer.encrypt(
        user_password=user_password,
        owner_password="owner-secret",
        permissions_flag=-3904,
        algorithm=algorithm,
    )
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_is_refused() -> None:
    data = _encrypted("user-secret")
    with pytest.raises(EncryptedInput, match="password"):
        HANDLER.read(data)
    with pytest.raises(EncryptedInput):
        HANDLER.write_record(data, _record())
    with pytest.raises(EncryptedInput):
        stamp_pages(data, WORDING)


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_owner_restricted_pdf_is_labelled_and_stays_restricted(
    tmp_path: Path, algorithm: str
) -> None:
    data = HANDLER.write_record(stamp_pages(_encrypted("", algorithm), WORDING), _record())
    reader = PdfReader(BytesIO(data))
    assert reader.is_encrypted
    assert int(reader.trailer["/Encrypt"]["/P"]) & 0xFFFFFFFF == -3904 & 0xFFFFFFFF
    assert [r.record for r in HANDLER.read(data).records] == [_record(), _record()]
    path = _write(tmp_path, data)
    assert all(WORDING in t for t in _pdftotext_pages(path, len(PAGE_FORMATS)))
    assert Record.parse(_exiftool(path, "-PDF:AIGC")["AIGC"]) == _record()


# ------------------------------------------------------------- hostile input
def _raw_pdf(objects: dict[int, bytes]) -> bytes:
    """A PDF from literal object bodies, with a correct xref table."""
    out = b"%PDF-1.7\n"
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, objects[num])
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for n in range(1, size):
        out += b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return out


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
CONTENT = b"<< /Length 0 >>\nstream\n\nendstream"
PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R %s>>"


def _operations(data: bytes):  # type: ignore[no-untyped-def]
    return [
        lambda: HANDLER.read(data),
        lambda: HANDLER.write_record(data, _record()),
        lambda: stamp_pages(data, WORDING),
    ]


def test_minimal_hand_written_pdf_is_labelled() -> None:
    data = _raw_pdf(
        {1: CATALOG, 2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 3: PAGE % b"", 4: CONTENT}
    )
    out = HANDLER.write_record(stamp_pages(data, WORDING), _record())
    assert WORDING in PdfReader(BytesIO(out)).pages[0].extract_text()


@pytest.mark.parametrize(
    "objects",
    [
        # /Kids loop through two /Pages nodes
        {
            1: CATALOG,
            2: b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
            5: b"<< /Type /Pages /Kids [2 0 R] /Parent 2 0 R /Count 1 >>",
        },
        # a /Pages node listing itself
        {
            1: CATALOG,
            2: b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 1 >>",
            3: PAGE % b"",
            4: CONTENT,
        },
    ],
    ids=["kids-loop", "kids-self"],
)
def test_cyclic_page_tree_is_corrupt_input(objects: dict[int, bytes]) -> None:
    for operation in _operations(_raw_pdf(objects)):
        with pytest.raises(CorruptInput, match="cyclic"):
            operation()


def test_cyclic_parent_chain_is_labelled_without_looping() -> None:
    # /Parent pointers form a loop that the /Kids walk never follows
    data = _raw_pdf(
        {
            1: CATALOG,
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< /Type /Page /Parent 5 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
            4: CONTENT,
            5: b"<< /Type /Pages /Parent 6 0 R /Kids [3 0 R] /Count 1 >>",
            6: b"<< /Type /Pages /Parent 5 0 R /Kids [5 0 R] /Count 1 >>",
        }
    )
    out = HANDLER.write_record(stamp_pages(data, WORDING), _record())
    assert len(HANDLER.read(out).records) == 2


def test_deeply_nested_array_is_corrupt_input() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    data = _raw_pdf(
        {
            1: CATALOG,
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: PAGE % b"/Deep 5 0 R ",
            4: CONTENT,
            5: deep,
        }
    )
    for operation in _operations(data)[1:]:  # read() never touches the object
        with pytest.raises(CorruptInput, match="nested too deeply"):
            operation()


def test_huge_declared_page_count_is_refused_before_walking() -> None:
    data = _raw_pdf(
        {
            1: CATALOG,
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 100000000 >>",
            3: PAGE % b"",
            4: CONTENT,
        }
    )
    for operation in _operations(data):
        with raises_limit("max_pages"):
            operation()


def test_page_tree_repeating_one_page_is_refused() -> None:
    # a declared count of 1, but 100 x 100 x 100 references to the same page
    data = _raw_pdf(
        {
            1: CATALOG,
            2: b"<< /Type /Pages /Kids [" + b"5 0 R " * 100 + b"] /Count 1 >>",
            5: b"<< /Type /Pages /Kids [" + b"6 0 R " * 100 + b"] /Count 1 >>",
            6: b"<< /Type /Pages /Kids [" + b"3 0 R " * 100 + b"] /Count 1 >>",
            3: PAGE % b"",
            4: CONTENT,
        }
    )
    for operation in _operations(data):
        with raises_limit("max_pages"):
            operation()


def test_page_limit_and_size_limit_are_enforced() -> None:
    with pytest.raises(LimitExceeded, match="5 pages"):
        HANDLER.read(_document(), Limits(max_pages=3))
    with raises_limit("max_pages"):
        stamp_pages(_document(), WORDING, limits=Limits(max_pages=3))
    with raises_limit("max_bytes"):
        HANDLER.write_record(_document(), _record(), Limits(max_bytes=1000))


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.98])
def test_truncated_pdf_is_corrupt_input(cut: float) -> None:
    data = _document()[: int(len(_document()) * cut)]
    for operation in _operations(data):
        with pytest.raises(CorruptInput):
            operation()


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.7\n" + bytes(range(256)) * 40, b"not a pdf at all"],
    ids=["empty", "garbage", "no-header"],
)
def test_garbage_is_corrupt_input(data: bytes) -> None:
    for operation in _operations(data):
        with pytest.raises(CorruptInput):
            operation()


def test_text_extraction_stops_at_its_content_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import labelers.formats.pdf as pdf_format

    # each page's content stream is 140-180 bytes: the budget covers two pages
    monkeypatch.setattr(pdf_format, "TEXT_CONTENT_BUDGET", 400)
    meta = HANDLER.read(_document())
    assert meta.properties["pdf:pages"] == str(len(PAGE_FORMATS))
    assert meta.text_pages is not None and len(meta.text_pages) == 2
    assert "Original text of page 1" in meta.text_pages[0]
