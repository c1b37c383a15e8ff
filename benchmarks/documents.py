"""Document labelling cost, as ratios of a plain read + write of the same file.

- PDF: a generated 100-page report (CJK headings in an embedded subset font,
  Latin body text). Baseline: pypdf reads it and writes it back
  (``PdfWriter(clone_from=reader)``). Candidates: ``label_file`` with the
  visible footer on every page + signed record + C2PA (the service's default
  run; target <= 2), and its parts: record only, visible + record.
- DOCX: a generated ~50-page document (about 450 paragraphs of Chinese and
  English, four JPEG photos). Baseline: zipfile unzips every entry and zips it
  again with the same compression. Candidate: visible footer + signed record
  (C2PA is not embedded in OOXML: the c2pa build cannot read deflated ZIPs).

Each job is timed in interleaved rounds; the median is kept.

    .venv/bin/python benchmarks/documents.py [--rounds 5] [--update-docs]
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.dev_credentials import ensure_dev_credentials
from benchmarks.common import interleaved_medians, machine, ms, ratio, table, update_section
from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from labelers.fonts import cjk_font_path
from labelers.integrity import Keyring, RecordSigner
from labelers.limits import Limits
from labelers.pipeline import FileOptions, LabelContext, label_file
from labelers.provenance import C2paSigner
from labelers.record import Record
from tests.labelers.formats.test_ooxml import docx

PRODUCER = "0011911100007109120X0010001"
RECORD = Record.first_write(PRODUCER, "01JBENCHMARKDOCUMENT000000")
LIMITS = Limits()
COMMAND = ".venv/bin/python benchmarks/documents.py --rounds 5 --update-docs"

LATIN = (
    "The quarter closed with steady growth across the three regions, while the new "
    "distribution agreements added customers in markets the company had not served before. "
    "Operating costs rose more slowly than revenue, and the team expects the same trend next "
    "quarter as the automation projects reach production. "
)
CHINESE = (
    "本季度公司在三个地区均实现了稳定增长，新的分销协议带来了此前未曾覆盖的市场客户。"
    "运营成本的增速低于收入增速，随着自动化项目投入生产，团队预计下一季度将延续这一趋势。"
)

NOTES = (
    "Where the time goes (cProfile, 2026-11-26): for the PDF, one pypdf parse of every "
    "object (about half the baseline), the content digest, the append-mode update and C2PA "
    "signing (the largest single part: c2pa re-serialises the whole file). For the DOCX, the "
    "footer parses and re-serialises the main part (minidom), about two thirds of the run; "
    "the record alone touches a few small parts."
)


# ---------------------------------------------------------------- fixtures
def pdf_report(pages: int = 100) -> bytes:
    pdf = FPDF()
    pdf.add_font("cjk", fname=str(cjk_font_path()))
    pdf.set_title("Annual report")
    pdf.set_author("Benchmark")
    for i in range(pages):
        pdf.add_page()
        pdf.set_font("cjk", size=16)
        pdf.cell(0, 12, f"第 {i + 1} 节：经营概况", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", size=10)
        pdf.multi_cell(0, 6, CHINESE * 2, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=10)
        pdf.multi_cell(0, 5, LATIN * 6, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def jpeg_photo(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    blob = np.exp(-(((x - width * 0.4) ** 2 + (y - height * 0.5) ** 2) / (0.06 * width * height)))
    rgb = np.stack([40 + 180 * x / width, 60 + 150 * y / height, 90 + 120 * blob], axis=-1)
    rgb += rng.normal(0, 6, (height, width, 1))
    out = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=88)
    return out.getvalue()


def docx_report(paragraphs: int = 450, photos: int = 4) -> bytes:
    """~50 pages: the test suite's DOCX builder, grown with paragraphs and JPEG photos."""
    texts = [CHINESE if i % 2 else LATIN * 2 for i in range(paragraphs)]
    base = docx([f"{i + 1}. {t}" for i, t in enumerate(texts)])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(out, "w") as dst:
        parts = {info.filename: (info, src.read(info)) for info in src.infolist()}
        document = parts["word/document.xml"][1].decode()
        drawing = re.search(r"<w:p><w:r><w:drawing>.*?</w:drawing></w:r></w:p>", document)
        assert drawing is not None
        rels = parts["word/_rels/document.xml.rels"][1].decode()
        types = parts["[Content_Types].xml"][1].decode()
        types = types.replace(
            "<Default Extension=",
            '<Default Extension="jpeg" ContentType="image/jpeg"/><Default Extension=',
            1,
        )
        media = {}
        for k in range(photos):
            rid = f"rId{30 + k}"
            media[f"word/media/photo{k}.jpeg"] = jpeg_photo(1600, 1200, k)
            rels = rels.replace(
                "</Relationships>",
                f'<Relationship Id="{rid}" Type="http://schemas.openxmlformats.org/'
                f'officeDocument/2006/relationships/image" Target="media/photo{k}.jpeg"/>'
                "</Relationships>",
            )
            picture = drawing.group(0).replace('r:embed="rId8"', f'r:embed="{rid}"')
            picture = picture.replace('wp:docPr id="1"', f'wp:docPr id="{k + 2}"')
            anchor = f'<w:p w14:paraId="1000000{(k + 1) * paragraphs // (photos + 1)}">'
            document = document.replace(anchor, picture + anchor, 1)
        edited = {
            "word/document.xml": document,
            "word/_rels/document.xml.rels": rels,
            "[Content_Types].xml": types,
        }
        for name, (info, body) in parts.items():
            dst.writestr(info, edited.get(name, body))
        for name, body in media.items():
            dst.writestr(zipfile.ZipInfo(name, (2025, 9, 1, 8, 0, 0)), body)  # stored, as Word
    return out.getvalue()


# --------------------------------------------------------------- baselines
def pypdf_roundtrip(data: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def rezip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
    return out.getvalue()


# ---------------------------------------------------------------------- run
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (median kept)")
    ap.add_argument("--update-docs", action="store_true", help="rewrite docs/benchmarks.md")
    args = ap.parse_args()
    load_before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        dev = ensure_dev_credentials(Path(tmp) / "c2pa")
        signer = C2paSigner.from_files(dev.chain_pem, dev.key_pem)
        anchors = dev.ca_pem.read_text()
        record_signer, _ = RecordSigner.load_or_create(Path(tmp) / "record.pem")
    keyring = Keyring()
    keyring.add(record_signer.public_key, {PRODUCER})

    def run(data: bytes, options: FileOptions) -> bytes:
        return label_file(
            data,
            RECORD,
            options,
            LabelContext(signer=signer, record_signer=record_signer, limits=LIMITS),
        ).data

    full = FileOptions()
    no_c2pa = FileOptions(c2pa=False)
    record_only = FileOptions(explicit=False, c2pa=False)
    rows = []

    pdf = pdf_report()
    labelled = run(pdf, full)
    report = verify_file(
        labelled,
        VerifyContext(NoLookup(), trust_anchors_pem=anchors, keyring=keyring, limits=LIMITS),
        declared_ai=False,
    )
    assert report.classification == "confirmed", report.to_dict()
    assert report.integrity["c2pa"]["state"] == "Trusted", report.integrity
    t = interleaved_medians(
        {
            "baseline": lambda: pypdf_roundtrip(pdf),
            "full": lambda: run(pdf, full),
            "no-c2pa": lambda: run(pdf, no_c2pa),
            "record": lambda: run(pdf, record_only),
        },
        args.rounds,
    )
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    rows.append(
        [
            f"PDF, {pages} pages, {len(pdf) // 1024} KB",
            f"pypdf read + write: {ms(t['baseline'])}",
            f"**{ratio(t['full'], t['baseline'])}** ({ms(t['full'])} ms)",
            f"{ratio(t['no-c2pa'], t['baseline'])} ({ms(t['no-c2pa'])} ms)",
            f"{ratio(t['record'], t['baseline'])} ({ms(t['record'])} ms)",
            "<= 2",
        ]
    )
    print(" | ".join(rows[-1]), file=sys.stderr)

    doc = docx_report()
    labelled = run(doc, full)
    report = verify_file(
        labelled,
        VerifyContext(NoLookup(), trust_anchors_pem=anchors, keyring=keyring, limits=LIMITS),
        declared_ai=False,
    )
    assert report.classification == "confirmed", report.to_dict()
    t = interleaved_medians(
        {
            "baseline": lambda: rezip(doc),
            "full": lambda: run(doc, full),
            "record": lambda: run(doc, record_only),
        },
        args.rounds,
    )
    rows.append(
        [
            f"DOCX, 50 pages in LibreOffice (450 paragraphs, 4 photos), {len(doc) // 1024} KB",
            f"zipfile unzip + rezip: {ms(t['baseline'])}",
            f"**{ratio(t['full'], t['baseline'])}** ({ms(t['full'])} ms)",
            "same (no C2PA for OOXML)",
            f"{ratio(t['record'], t['baseline'])} ({ms(t['record'])} ms)",
            "",
        ]
    )
    print(" | ".join(rows[-1]), file=sys.stderr)

    headers = [
        "document",
        "baseline, ms",
        "visible + signed record + C2PA",
        "visible + signed record",
        "signed record only",
        "target",
    ]
    body = (
        "Labelling generated documents with `labelers.pipeline.label_file` (visible label on "
        "every page, record signed into ReservedCode1, C2PA manifest where the format takes "
        "one), each as a ratio of a plain read + write of the same file, median of "
        f"{args.rounds} interleaved rounds after one warm-up round. Every labelled output "
        "was checked first: `verify_file` classifies it confirmed (PDF C2PA Trusted).\n\n"
        + table(headers, rows)
        + f"\n\n{NOTES}\n\nCommand: `{COMMAND}`\n\n"
        f"Machine before: {load_before}\n\nMachine after: {machine()}\n"
    )
    print(body)
    if args.update_docs:
        update_section("Documents", body)


if __name__ == "__main__":
    main()
