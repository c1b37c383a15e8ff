"""Verification of files: every kind of evidence, findings, and the classification.

Files are read only through ``labelers.formats`` handlers (one parser per
container); C2PA through ``labelers.provenance``; watermarks through
``labelers.watermark``. The ledger is reached through a
:class:`~detectors.lookup.LabelLookup`.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from detectors import ocr
from detectors.classify import classify
from detectors.lookup import LabelLookup
from detectors.report import (
    C2PA,
    EXPLICIT,
    RECORD,
    WATERMARK,
    CarriedRecord,
    Evidence,
    Finding,
    Report,
)
from detectors.text import add_text_evidence
from detectors.traces import generator_traces, iptc_evidence
from labelers.errors import AigcError
from labelers.formats import Metadata, get_handler, sniff
from labelers.formats.xmp import digital_source_type
from labelers.imaging import ORIENTATION_TRANSPOSE, Raster
from labelers.integrity import INVALID, PLATFORM, PRODUCER, Keyring
from labelers.integrity import verify as check_signature
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.provenance import read_manifest, supported_media_types
from labelers.record import Record, provider_code_problems
from labelers.visible.wording import find_wording

C2PA_CARRIER = "c2pa:cn.tc260.aigc"
# documents whose text_pages are real pages (DOCX/XLSX list parts, not pages)
PAGED_TYPES = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)


def verify_file(
    data: bytes,
    lookup: LabelLookup,
    declared_ai: bool = False,
    trust_anchors_pem: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    keyring: Keyring | None = None,
    check_visible: bool = False,
) -> Report:
    """Judge ``data``: every kind of evidence, findings, and the Art. 6 class.

    Images are read by OCR for a visible label when they carry no record (a
    caption alone makes them suspected) or when ``check_visible`` asks for it
    (a record without a visible label is then a finding).
    """
    media_type = sniff(data)
    report = Report(media_type=media_type)
    if media_type == "text/plain":
        add_text_evidence(report, data.decode("utf-8", errors="replace"), lookup)
        return classify(report, declared_ai)
    handler = get_handler(media_type)
    meta = handler.read(data, limits)
    _records(report, meta)
    if meta.xmp:
        report.evidence.extend(iptc_evidence(digital_source_type(meta.xmp)))
    report.evidence.extend(generator_traces(meta.properties))
    _c2pa(report, data, media_type, trust_anchors_pem, limits)
    if media_type.startswith("image/"):
        _image_pixels(report, data, media_type, lookup, limits, check_visible)
    else:
        _document_text(report, data, meta, lookup)
    _conformance(report)
    _integrity(report, lambda: handler.content_digest(data, limits), keyring or Keyring())
    return classify(report, declared_ai)


def _integrity(report: Report, digest: Callable[[], bytes], keyring: Keyring) -> None:
    """ReservedCode1/2 of the file's record, checked against the content."""
    record = report.record
    if record is None:
        return
    in_file = any(r.source == "metadata" and r.record == record for r in report.records)
    # a record recovered from the ledger came with re-encoded content: check fields only
    content = digest() if in_file else None
    for role in (PRODUCER, PLATFORM):
        report.integrity[role] = check_signature(role, record, content, keyring).to_dict()
    bad = [r for r in (PRODUCER, PLATFORM) if report.integrity[r]["status"] == INVALID]
    for role in bad:
        report.findings.append(
            Finding("integrity-invalid", f"{role} signature: {report.integrity[role]['detail']}")
        )


def _records(report: Report, meta: Metadata) -> None:
    for found in meta.records:
        if found.record is None:
            report.findings.append(
                Finding(
                    "unreadable-record",
                    f"{found.carrier} holds text that is not an AIGC record: {found.error}",
                )
            )
            continue
        report.records.append(CarriedRecord(found.carrier, found.record))
        report.evidence.append(
            Evidence(
                RECORD,
                found.carrier,
                f'GB 45438 record, Label "{found.record.label}", '
                f"producer {found.record.content_producer}",
                {"record": found.record.as_dict()},
            )
        )


def _c2pa(
    report: Report, data: bytes, media_type: str, anchors: str | None, limits: Limits
) -> None:
    if media_type not in supported_media_types():
        return
    try:
        manifest = read_manifest(data, media_type, anchors, limits=limits)
    except AigcError as exc:
        report.findings.append(Finding("c2pa-unreadable", exc.detail, "warning"))
        return
    if manifest is None:
        return
    ai_types = [
        t
        for t in manifest.digital_source_types
        if "TrainedAlgorithmic" in t or t.endswith("/trainedAlgorithmicMedia")
    ]
    if manifest.content_altered:
        summary = "C2PA manifest present, but the content changed after signing"
    elif manifest.state == "Invalid":
        summary = "C2PA manifest present but invalid"
    else:
        trust = "trusted signer" if manifest.signer_trusted else "signer not in the trust list"
        summary = f"C2PA manifest valid ({trust}), signed by {manifest.signer}"
    report.evidence.append(
        Evidence(C2PA, "c2pa", summary, {**manifest.to_dict(), "ai": bool(ai_types)})
    )
    report.integrity["c2pa"] = {
        "state": manifest.state,
        "content_altered": manifest.content_altered,
        "signer_trusted": manifest.signer_trusted,
        "manifest_intact": manifest.manifest_intact,
    }
    if manifest.state == "Invalid":
        codes = ", ".join(e.get("code", "?") for e in manifest.validation_errors[:5])
        report.findings.append(
            Finding(
                "c2pa-invalid",
                "the C2PA manifest does not validate"
                + (": content altered after signing" if manifest.content_altered else "")
                + (f" ({codes})" if codes else ""),
            )
        )
    if manifest.gb_record:
        try:
            record = Record.from_mapping(manifest.gb_record)
        except AigcError:
            return
        report.records.append(CarriedRecord(C2PA_CARRIER, record))


def _image_pixels(
    report: Report,
    data: bytes,
    media_type: str,
    lookup: LabelLookup,
    limits: Limits,
    check_visible: bool,
) -> None:
    """What the pixels show: our watermark, and (by OCR) a visible label."""
    from labelers.imaging import open_raster

    try:
        raster = open_raster(data, media_type, limits)
    except AigcError as exc:
        report.findings.append(Finding("image-undecodable", exc.detail, "warning"))
        return
    _image_watermark(report, raster.frames[0], lookup)
    has_record = any(r.source == "metadata" for r in report.records)
    if check_visible or not has_record:
        _visible_label(report, raster, check_visible and has_record)


def _visible_label(report: Report, raster: Raster, expected: bool) -> None:
    # OCR reads the image as a viewer shows it: EXIF orientation applied
    shown = raster.frames[0]
    if raster.orientation in ORIENTATION_TRANSPOSE:
        shown = shown.transpose(ORIENTATION_TRANSPOSE[raster.orientation])
    result = ocr.find_visible_label(shown)
    if result is None:
        if expected:
            report.findings.append(
                Finding(
                    "ocr-unavailable", "visible label not checked: OCR is not installed", "info"
                )
            )
        return
    if result.found:
        report.evidence.append(
            Evidence(
                EXPLICIT,
                "image:visible-ocr",
                f"visible label wording read by OCR at the {result.region}: "
                + ", ".join(result.phrases),
                {"phrases": result.phrases, "region": result.region, "text": result.text},
            )
        )
    elif expected and not result.timed_out:
        report.findings.append(
            Finding(
                "explicit-label-missing",
                "the image carries a record but OCR found no visible AI-generation label "
                "at its edges or corners (GB 45438 clause 5)",
                "warning",
            )
        )


def _image_watermark(report: Report, frame: Image.Image, lookup: LabelLookup) -> None:
    from labelers.imaging import MARKABLE_MODES, luminance_plane
    from labelers.watermark import image as image_watermark

    # no size floor here: a marked image downscaled below the embedding
    # minimum still decodes, and decode() itself declines what it cannot read
    # modes the mark does not take as they are carry it in their luminance plane
    plane = frame if frame.mode in MARKABLE_MODES else luminance_plane(frame)
    found = image_watermark.decode(plane) if plane is not None else None
    if found is None:
        return
    record = lookup.by_watermark_key(found.payload)
    report.evidence.append(
        Evidence(
            WATERMARK,
            "image:spread-spectrum",
            f"invisible watermark decoded (key {found.payload:016x})"
            + ("; found in the ledger" if record else "; not in this service's ledger"),
            {"key": f"{found.payload:016x}", "score": found.score, "in_ledger": bool(record)},
        )
    )
    if record is not None:
        report.records.append(CarriedRecord("image:watermark", record, source="ledger"))


def _document_text(report: Report, data: bytes, meta: Metadata, lookup: LabelLookup) -> None:
    pages = meta.text_pages or []
    if report.media_type in ("text/markdown", "text/html"):
        add_text_evidence(report, data.decode("utf-8", errors="replace"), lookup)
        return
    labelled = [i for i, page in enumerate(pages, 1) if find_wording(page)]
    if labelled:
        phrases = sorted({p for page in pages for p in find_wording(page)})
        report.evidence.append(
            Evidence(
                EXPLICIT,
                "document text",
                f"explicit label wording on {len(labelled)} of {len(pages)} page(s)",
                {"phrases": phrases, "pages": labelled, "page_count": len(pages)},
            )
        )


def _conformance(report: Report) -> None:
    distinct = {r.record for r in report.records if r.source == "metadata"}
    if len(distinct) > 1:
        where = ", ".join(r.carrier for r in report.records if r.source == "metadata")
        report.findings.append(
            Finding(
                "several-records",
                f"the file carries {len(distinct)} different records ({where}); "
                "GB 45438 allows one record per file",
            )
        )
    carriers = [r.carrier for r in report.records if r.source == "metadata"]
    for carrier in {c for c in carriers if carriers.count(c) > 1}:
        report.findings.append(
            Finding("several-records", f"{carrier} appears {carriers.count(carrier)} times")
        )
    seen: set[Record] = set()
    for carried in report.records:
        record = carried.record
        if record in seen:
            continue
        seen.add(record)
        for problem in record.problems():
            report.findings.append(Finding("invalid-record", f"{carried.carrier}: {problem}"))
        for note in record.parse_notes:
            report.findings.append(Finding("record-form", f"{carried.carrier}: {note}", "warning"))
        code_problems = provider_code_problems(record.content_producer)
        if code_problems and record.content_producer:
            report.findings.append(
                Finding(
                    "producer-code",
                    f"ContentProducer {record.content_producer!r} is not a TC260-PG-20252A "
                    "provider code",
                    "info",
                )
            )
    has_record = any(r.source == "metadata" for r in report.records)
    explicit = [e for e in report.evidence if e.kind == EXPLICIT]
    if has_record and report.media_type.startswith(("application/", "text/")) and not explicit:
        report.findings.append(
            Finding(
                "explicit-label-missing",
                "the document carries a record but no visible AI-generation wording "
                "(GB 45438 clause 5)",
                "warning",
            )
        )
    elif explicit and explicit[0].data.get("page_count") and report.media_type in PAGED_TYPES:
        data = explicit[0].data
        if len(data["pages"]) < data["page_count"]:
            report.findings.append(
                Finding(
                    "explicit-label-partial",
                    f"visible wording on pages {data['pages']} of {data['page_count']} only",
                    "info",
                )
            )
