"""Documents end to end through the real app: POST /v1/label, then POST /v1/verify (multipart).

PDF (fpdf2, several pages), DOCX/PPTX/XLSX (the package builders of
tests/labelers/formats/test_ooxml.py), Markdown, HTML and plain text. Independent
readers: pdftotext and qpdf for the PDF, zipfile for the packages.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from app.settings import Settings
from labelers.fonts import cjk_font_path
from labelers.record import Record
from tests.labelers.formats.test_ooxml import docx, pptx, xlsx
from tests.support import KEYS, PRODUCER, auth

WORDING = "人工智能生成"
PDF_PAGES = 5


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    """One app for the module: building one (keys, ledger, credentials) costs ~0.4 s."""
    from app.main import create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("var"), api_keys=json.dumps(KEYS))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


# ------------------------------------------------------------------ fixtures
@functools.cache
def pdf_document(pages: int = PDF_PAGES) -> bytes:
    """A report of several pages with Chinese and Latin text."""
    pdf = FPDF()
    pdf.add_font("cjk", fname=str(cjk_font_path()))
    pdf.set_title("Quarterly report")
    for i in range(pages):
        pdf.add_page()
        pdf.set_font("cjk", size=16)
        pdf.cell(0, 12, f"第 {i + 1} 章：市场概况", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        pdf.multi_cell(0, 6, f"Page {i + 1}. " + "The quarter closed with steady growth. " * 20)
    return bytes(pdf.output())


MARKDOWN = (
    "# 季度报告\n\n"
    "本报告由模型撰写，概述了本季度的主要进展。\n\n"
    "## 要点\n\n"
    "- 收入稳定增长\n"
    "- 新市场的开拓\n\n"
    "详见 [附录](https://example.org/appendix)。\n"
).encode()

HTML = (
    '<!doctype html>\n<html lang="zh"><head><meta charset="utf-8"><title>季度报告</title>'
    "</head>\n<body>\n<h1>季度报告</h1>\n<p>本报告由模型撰写，概述了本季度的主要进展。</p>\n"
    "<p>第二段：新市场的开拓。</p>\n</body></html>\n"
).encode()

PLAIN = (
    "本季度的工作总结如下。团队完成了三个主要项目，并在新的市场中建立了合作关系。\n\n"
    "第二段讨论了下一季度的计划：继续扩大产品线，并改进客户服务的流程。\n"
).encode()

DOCUMENTS = {
    # kind: (file name, bytes factory, evidence carrier of the visible wording)
    "pdf": ("report.pdf", pdf_document, "document text"),
    "docx": (
        "report.docx",
        lambda: docx(["第一段：季度概况。", "第二段：市场。"] * 3),
        "document text",
    ),
    "pptx": ("deck.pptx", lambda: pptx(["季度报告", "市场概况", "下一步"]), "document text"),
    "xlsx": ("sheet.xlsx", lambda: xlsx(sheets=2), "document text"),
    "markdown": ("report.md", lambda: MARKDOWN, "text"),
    "html": ("report.html", lambda: HTML, "text"),
    "text": ("report.txt", lambda: PLAIN, "text"),
}
KINDS = list(DOCUMENTS)
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "markdown": "text/markdown",
    "html": "text/html",
    "text": "text/plain",
}


def label(client: TestClient, data: bytes, name: str, **form) -> object:
    resp = client.post("/v1/label", files={"file": (name, data)}, data=form, headers=auth())
    assert resp.status_code == 200, resp.text
    return resp


def verify(client: TestClient, data: bytes, name: str) -> dict:
    resp = client.post("/v1/verify", files={"file": (name, data)}, headers=auth())
    assert resp.status_code == 200, resp.text
    return resp.json()


def header_record(resp) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return Record.parse(resp.headers["AIGC-Record"]).as_dict()


@pytest.fixture(scope="module")
def labelled_pdf(client: TestClient, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    resp = label(client, pdf_document(), "report.pdf")
    path = tmp_path_factory.mktemp("pdf") / "labelled.pdf"
    path.write_bytes(resp.content)
    return path, header_record(resp)


# --------------------------------------------------------- label then verify
@pytest.mark.parametrize("kind", KINDS)
def test_label_then_verify_is_confirmed_with_the_same_record_and_visible_wording(
    client: TestClient, kind: str
) -> None:
    name, make, wording_carrier = DOCUMENTS[kind]
    resp = label(client, make(), name)
    assert resp.headers["content-type"].split(";")[0] == MEDIA_TYPES[kind]
    record = header_record(resp)
    assert record["ContentProducer"] == PRODUCER and record["Label"] == "1"

    report = verify(client, resp.content, name)
    assert report["media_type"] == MEDIA_TYPES[kind]
    assert report["classification"] == "confirmed", report
    assert report["record"] == record
    explicit = [e for e in report["evidence"] if e["kind"] == "explicit-label"]
    assert explicit and explicit[0]["carrier"] == wording_carrier
    assert not report["findings"], report["findings"]


def test_pdf_label_is_extracted_by_pdftotext_from_every_page(labelled_pdf) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed")
    path, _ = labelled_pdf
    for page in range(1, PDF_PAGES + 1):
        text = subprocess.run(
            ["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(path), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert WORDING in text.replace(" ", ""), f"page {page}: {text[-200:]!r}"
        assert f"Page {page}." in text  # the page's own text is still there


def test_labelled_pdf_passes_qpdf_check(labelled_pdf) -> None:
    if shutil.which("qpdf") is None:
        pytest.skip("qpdf not installed")
    path, _ = labelled_pdf
    proc = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No syntax or stream encoding errors found" in proc.stdout


def test_labelled_pdf_c2pa_is_trusted_and_carries_the_record(
    client: TestClient, labelled_pdf
) -> None:
    path, record = labelled_pdf
    report = verify(client, path.read_bytes(), "report.pdf")
    assert report["integrity"]["c2pa"]["state"] == "Trusted"
    assert report["integrity"]["c2pa"]["content_altered"] is False
    carried = {r["carrier"]: r["record"] for r in report["records"]}
    assert carried["pdf:Info:/AIGC"] == carried["c2pa:cn.tc260.aigc"] == record
    assert len(PdfReader(path).pages) == PDF_PAGES


# ------------------------------------------------------------------ relabel
@pytest.mark.parametrize("kind", KINDS)
def test_relabelling_keeps_one_record_and_one_visible_label(client: TestClient, kind) -> None:
    name, make, _ = DOCUMENTS[kind]
    first = label(client, make(), name)
    second = label(client, first.content, name)
    report = verify(client, second.content, name)
    assert report["classification"] == "confirmed"
    assert report["record"] == header_record(second) != header_record(first)
    assert not [f for f in report["findings"] if f["code"] == "several-records"]
    in_metadata = {json.dumps(r["record"]) for r in report["records"] if r["source"] == "metadata"}
    assert in_metadata <= {json.dumps(header_record(second))}
    if kind in ("markdown", "html", "text"):
        assert second.content.decode().count(WORDING) == 1


# ---------------------------------------------------------------- bad input
@functools.cache
def _encrypted_pdf() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_document(2))))
    writer.encrypt(user_password="user-secret", owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@functools.cache
def _zip_bomb_docx() -> bytes:
    """A valid DOCX plus a 64 MB part of zeros that deflates to ~64 KB."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("word/bomb.xml", b"\0" * (64 * 1024 * 1024))
    return out.getvalue()


@functools.cache
def _entity_docx() -> bytes:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&lol3;</w:t></w:r></w:p></w:body></w:document>"
    )
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, laughs if info.filename == "word/document.xml" else body)
    return out.getvalue()


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


def _cyclic_pdf() -> bytes:
    """/Kids loop through two /Pages nodes."""
    return _raw_pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            3: b"<< /Type /Pages /Kids [2 0 R] /Parent 2 0 R /Count 1 >>",
        }
    )


BAD_DOCUMENTS = {
    # case: (file name, bytes factory, status, words the detail must name)
    "encrypted-pdf": ("locked.pdf", _encrypted_pdf, 422, "encrypt"),
    "zip-bomb-docx": ("bomb.docx", _zip_bomb_docx, 413, "ZIP bomb"),
    "xml-entities-docx": ("lol.docx", _entity_docx, 422, "DTD"),
    "cyclic-pdf": ("loop.pdf", _cyclic_pdf, 422, "cyclic"),
}


@pytest.mark.parametrize("case", list(BAD_DOCUMENTS))
@pytest.mark.parametrize("endpoint", ["/v1/label", "/v1/verify"])
def test_hostile_document_is_a_4xx_problem_naming_it(
    client: TestClient, case: str, endpoint: str
) -> None:
    name, make, status, words = BAD_DOCUMENTS[case]
    resp = client.post(endpoint, files={"file": (name, make())}, headers=auth())
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert words.lower() in resp.json()["detail"].lower(), resp.json()["detail"]


def test_markdown_paragraph_copied_out_alone_still_carries_the_label(client: TestClient) -> None:
    resp = label(client, MARKDOWN, "report.md")
    assert resp.headers["aigc-watermark"] == "embedded"
    text = resp.content.decode()
    paragraph = next(p for p in text.split("\n\n") if p.startswith("本报告由模型撰写"))
    assert "人工智能生成" not in paragraph and "AIGC" not in paragraph
    report = client.post("/v1/verify", json={"text": paragraph}, headers=auth()).json()
    assert report["classification"] == "confirmed"
    assert report["record"] == header_record(resp)
    # the payload stays out of code and link targets
    assert "https://example.org/appendix)" in text
