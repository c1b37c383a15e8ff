"""PDF labelling in one pass: append mode vs rewrite, and the content digest computed in place.

``labelers.formats.pdf_update.open_edit`` opens a document once for the visible label,
the content digest and the record. The digest it computes from the objects in
memory must be the digest a verifier computes from the saved bytes
(``HANDLER.content_digest``), in both modes, or the ReservedCode1 signature
would not verify. Fixtures: the multi-format document of test_pdf, the same
with object streams and a cross-reference stream (qpdf), and a hand-written
file whose pages inherit a direct resource dictionary and carry numbers and
strings pypdf would not write back exactly. Outputs are checked with qpdf,
pdftotext, pypdf and, end to end, with the c2pa reader and the record
signature check of ``detectors.files.verify_file``.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from io import BytesIO
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader

from app.dev_credentials import ensure_dev_credentials
from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from labelers.formats.pdf import HANDLER
from labelers.formats.pdf_update import open_edit
from labelers.integrity import Keyring, RecordSigner
from labelers.pipeline import FileOptions, LabelContext, label_file
from labelers.provenance import C2paSigner
from labelers.visible.pdf import stamp_document
from tests.labelers.formats.test_pdf import (
    PAGE_FORMATS,
    PRODUCER,
    WORDING,
    _document,
    _encrypted,
    _raw_pdf,
    _record,
)

FIRST_ID = "01JAAAAAAAAAAAAAAAAAAAAAAA"
SECOND_ID = "01JBBBBBBBBBBBBBBBBBBBBBBB"


def _stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (len(data), data)


@cache
def _inheriting() -> bytes:
    """Two pages inheriting a direct /Resources and a /MediaBox from their /Pages node.

    The box and a graphics state use more digits than pypdf writes (8
    significant), a resource name needs #-escaping, and a direct annotation
    carries a UTF-16 and a PDFDocEncoding string.
    """
    return _raw_pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 "
            b"/MediaBox [0 0 595.2755905511812 841.8897637795276] "
            b"/Resources << /Font << /F1 7 0 R >> "
            b"/ExtGState << /GS#20a << /CA 0.123456789123 >> >> >> >>",
            3: b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Annots [<< /Type /Annot "
            b"/Subtype /Text /Rect [10 10 30.123456789012 30] /Contents <FEFF4EBA5DE5> "
            b"/T (caf\\351) >>] >>",
            4: _stream(b"/GS#20a gs BT /F1 12 Tf 72 700 Td (Inherited page one) Tj ET"),
            5: b"<< /Type /Page /Parent 2 0 R /Contents 6 0 R /Rotate 90 >>",
            6: _stream(b"BT /F1 12 Tf 72 700 Td (Inherited page two) Tj ET"),
            7: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        }
    )


def _qpdf(args: list[str], data: bytes, tmp_path: Path) -> bytes:
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(data)
    subprocess.run(["qpdf", *args, str(src), str(dst)], check=True)
    return dst.read_bytes()


def _object_streams(tmp_path: Path) -> bytes:
    data = _qpdf(["--object-streams=generate"], _document(), tmp_path)
    start = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    assert not data.startswith(b"xref", start)  # a cross-reference stream
    return data


def _qpdf_check(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "check.pdf"
    path.write_bytes(data)
    result = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def _page_texts(data: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "text.pdf"
    path.write_bytes(data)
    count = len(PdfReader(BytesIO(data)).pages)
    return [
        subprocess.run(
            ["pdftotext", "-f", str(i), "-l", str(i), str(path), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for i in range(1, count + 1)
    ]


def _one_pass(data: bytes, pages: str | None) -> tuple[bytes, bytes, bool]:
    """(digest computed in place, saved bytes, appended?) for a run like label_file's."""
    doc = open_edit(data)
    if pages is not None:
        stamp_document(doc, WORDING, "footer", pages)
    digest = doc.content_digest()
    doc.set_record(_record())
    return digest, doc.save(), doc.appending


# ------------------------------------------------------------------ append
@pytest.mark.parametrize("pages", ["all", "first", None], ids=["all", "first", "record-only"])
@pytest.mark.parametrize("fixture", ["document", "object-streams", "inheriting"])
def test_append_mode_digest_in_place_equals_the_digest_of_the_saved_file(
    tmp_path: Path, fixture: str, pages: str | None
) -> None:
    data = {
        "document": _document,
        "object-streams": lambda: _object_streams(tmp_path),
        "inheriting": _inheriting,
    }[fixture]()
    digest, out, appended = _one_pass(data, pages)
    assert appended
    assert out.startswith(data)  # an incremental update: the input's bytes are kept
    assert digest == HANDLER.content_digest(out)
    _qpdf_check(out, tmp_path)
    texts = _page_texts(out, tmp_path)
    expected = {"all": [1] * len(texts), "first": [1] + [0] * (len(texts) - 1)}
    assert [t.count(WORDING) for t in texts] == expected.get(pages, [0] * len(texts))
    assert [r.record for r in HANDLER.read(out).records] == [_record(), _record()]


def test_inherited_resources_stay_with_the_pages_not_labelled(tmp_path: Path) -> None:
    # page 1 gets its own copy of the inherited resources (with the label
    # XObject); page 2 still inherits the /Pages node's, unchanged
    _, out, _ = _one_pass(_inheriting(), "first")
    reader = PdfReader(BytesIO(out))
    first, second = reader.pages
    assert "/XObject" in first["/Resources"]
    assert "/XObject" not in second["/Resources"]
    assert "Inherited page two" in second.extract_text()
    assert second.rotation == 90
    # the digits pypdf would have rounded survive in the pages written again
    assert float(first.mediabox.right) == 595.2755905511812
    annot = first["/Annots"][0].get_object()
    assert annot["/Contents"] == "人工" and annot["/T"] == "café"


def _identical_pages(count: int) -> bytes:
    pdf = FPDF(unit="pt")
    pdf.set_font("helvetica", size=12)
    for i in range(count):
        pdf.add_page()
        pdf.cell(0, 30, f"Identical page {i + 1}")
    return bytes(pdf.output())


def test_identical_pages_share_the_band_and_the_label_stream() -> None:
    # the output grows by a few objects plus the changed page dictionaries,
    # not by a stream pair per page
    _, out, _ = _one_pass(_identical_pages(6), "all")
    reader = PdfReader(BytesIO(out))
    contents = [page.raw_get("/Contents") for page in reader.pages]
    forms = {page["/Resources"]["/XObject"].raw_get("/AIGCLabel").idnum for page in reader.pages}
    assert len(forms) == 1
    assert len({c[0].idnum for c in contents}) == 1  # the opening "q"
    assert len({c[-1].idnum for c in contents}) == 1  # the label drawing
    assert len({c[1].idnum for c in contents}) == 6  # each page's own content


# ----------------------------------------------------------------- rewrite
def _startxref_off_by_three() -> bytes:
    data = _document()
    value = re.findall(rb"startxref\s+(\d+)", data)[-1]
    return data.replace(b"startxref\n" + value, b"startxref\n%d" % (int(value) + 3))


def _unparseable_orphan() -> bytes:
    # object 8 is referenced by nothing; a rewrite never reads it, but it is
    # too deeply nested for pypdf to parse
    objects = _document_objects()
    objects[8] = b"[" * 100_000 + b"]" * 100_000
    return _raw_pdf(objects)


def _document_objects() -> dict[int, bytes]:
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        4: _stream(b"BT /F1 12 Tf 20 200 Td (Hand-written page) Tj ET"),
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }


def _xref_off_by_one() -> bytes:
    # the first subsection says "1 6" but lists the free entry of object 0 first:
    # pypdf renumbers every entry, silently; other readers may not
    data = _raw_pdf(_document_objects())
    return re.sub(rb"xref\n0 (\d+)\n", lambda m: b"xref\n1 %d\n" % int(m.group(1)), data)


REWRITES = {
    "encrypted": lambda _: _encrypted(""),
    "already-recorded": lambda _: HANDLER.write_record(_document(), _record(FIRST_ID)),
    "repaired-startxref": lambda _: _startxref_off_by_three(),
    "linearized": lambda tmp_path: _qpdf(["--linearize"], _document(), tmp_path),
    "unparseable-orphan": lambda _: _unparseable_orphan(),
    "xref-off-by-one": lambda _: _xref_off_by_one(),
}


@pytest.mark.parametrize("fixture", list(REWRITES))
def test_rewrite_mode_when_appending_is_not_equivalent(tmp_path: Path, fixture: str) -> None:
    data = REWRITES[fixture](tmp_path)
    digest, out, appended = _one_pass(data, "all")
    assert not appended
    assert digest == HANDLER.content_digest(out)
    _qpdf_check(out, tmp_path)
    assert all(t.count(WORDING) == 1 for t in _page_texts(out, tmp_path))
    assert FIRST_ID.encode() not in out  # an old record is not kept in an old revision


def test_a_document_updated_before_is_appended_to_again(tmp_path: Path) -> None:
    _, once, appended_once = _one_pass(_identical_pages(2), None)  # record only
    # the record is there now, so relabelling rewrites; an update by someone
    # else (here: a visible label alone) is appended after theirs
    doc = open_edit(_identical_pages(2))
    stamp_document(doc, WORDING)
    updated = doc.save()
    digest, twice, appended_twice = _one_pass(updated, None)
    assert appended_once and appended_twice and twice.startswith(updated)
    assert len(re.findall(rb"startxref", twice)) == 3
    assert digest == HANDLER.content_digest(twice) == HANDLER.content_digest(updated)
    _qpdf_check(twice, tmp_path)
    assert [t.count(WORDING) for t in _page_texts(twice, tmp_path)] == [1, 1]
    assert not _one_pass(once, None)[2]


def test_relabelling_through_the_pipeline_drops_the_old_record(tmp_path: Path) -> None:
    options = FileOptions(c2pa=False)
    once = label_file(_document(), _record(FIRST_ID), options).data
    twice = label_file(once, _record(SECOND_ID), options).data
    assert FIRST_ID.encode() in once and FIRST_ID.encode() not in twice
    assert [r.record for r in HANDLER.read(twice).records] == [_record(SECOND_ID)] * 2
    assert [t.count(WORDING) for t in _page_texts(twice, tmp_path)] == [1] * len(PAGE_FORMATS)
    assert HANDLER.content_digest(once) == HANDLER.content_digest(twice)


# -------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> tuple[C2paSigner, str, RecordSigner]:
    base = tmp_path_factory.mktemp("keys")
    dev = ensure_dev_credentials(base / "c2pa")
    record_signer, _ = RecordSigner.load_or_create(base / "record.pem")
    signer = C2paSigner.from_files(dev.chain_pem, dev.key_pem)
    return signer, dev.ca_pem.read_text(), record_signer


@pytest.mark.parametrize("fixture", ["document", "object-streams", "encrypted"])
def test_label_file_output_verifies_c2pa_trusted_and_signed_record_valid(
    tmp_path: Path, signing: tuple[C2paSigner, str, RecordSigner], fixture: str
) -> None:
    signer, anchors, record_signer = signing
    data = {
        "document": _document,
        "object-streams": lambda: _object_streams(tmp_path),
        "encrypted": lambda: _encrypted(""),
    }[fixture]()
    result = label_file(
        data, _record(), FileOptions(), LabelContext(signer=signer, record_signer=record_signer)
    )
    assert (result.explicit, result.c2pa) == ("footer", "signed")
    keyring = Keyring()
    keyring.add(record_signer.public_key, {PRODUCER})
    report = verify_file(
        result.data,
        VerifyContext(NoLookup(), trust_anchors_pem=anchors, keyring=keyring),
        declared_ai=False,
    )
    assert report.classification == "confirmed", report.to_dict()
    assert report.integrity["c2pa"]["state"] == "Trusted", report.integrity
    assert report.integrity["producer"]["status"] == "valid", report.integrity
    _qpdf_check(result.data, tmp_path)
    assert [t.count(WORDING) for t in _page_texts(result.data, tmp_path)] == [1] * len(PAGE_FORMATS)
