"""The evidence stage of images: what the pixels show (our watermark, a visible
label read by OCR, other generators' brand marks)."""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from detectors import ocr
from detectors.kinds import VerifyJob
from detectors.lookup import LabelLookup
from detectors.marks import find_brand_marks
from detectors.ocr import VisibleMark
from detectors.report import EXPLICIT, TRACE, WATERMARK, CarriedRecord, Evidence, Finding, Report
from labelers.errors import AigcError, ServiceBusy
from labelers.imaging import ORIENTATION_TRANSPOSE, Raster
from labelers.limits import Limits


def evidence(job: VerifyJob) -> None:
    _image_pixels(job.report, job.data, job.media_type, job.lookup, job.limits, job.check_visible)


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
    except ServiceBusy:
        raise  # not a property of the file: the request is retried later
    except AigcError as exc:
        report.findings.append(Finding("image-undecodable", exc.detail, "warning"))
        return
    _image_watermark(report, raster.frames[0], lookup)
    has_record = any(r.source == "metadata" for r in report.records)
    if check_visible or not has_record:
        _visible_label(report, raster, check_visible and has_record)


# GB 45438 clause 5: an image label's text is at least 5% of the shortest side
MIN_LABEL_HEIGHT = 0.05


def _visible_label(report: Report, raster: Raster, expected: bool) -> None:
    """What is drawn at the image's edges: an AI-generation wording read by OCR
    (an explicit label), or a generator's brand mark (a trace)."""
    # both finders read the image as a viewer shows it: EXIF orientation applied
    shown = raster.frames[0]
    if raster.orientation in ORIENTATION_TRANSPOSE:
        shown = shown.transpose(ORIENTATION_TRANSPOSE[raster.orientation])
    analysis = ocr.analyse(shown)
    result = ocr.find_visible_label(shown, analysis=analysis)
    labels = [m for m in result.marks if m.kind == "label"] if result else []
    for mark in labels:
        _add_label(report, mark)
    wordmarks = [m for m in result.marks if m.kind == "brand"] if result else []
    brands: list[tuple[VisibleMark, str | None]] = []
    for found in find_brand_marks(analysis):
        # a wordmark OCR read where a template matched is the same mark: its words join it
        read = next((w for w in wordmarks if _touching(w.box, found.mark.box)), None)
        mark = replace(found.mark, phrases=read.phrases, text=read.text) if read else found.mark
        brands.append((mark, found.template))
    brands += [(w, None) for w in wordmarks if not any(_touching(w.box, b.box) for b, _ in brands)]
    for mark, template in brands:
        # a phone editor's sparkle before its wording is part of the label
        if not any(_touching(mark.box, label.box) for label in labels):
            _add_brand(report, mark, template)
    if result is None:
        if expected:
            report.findings.append(
                Finding(
                    "ocr-unavailable", "visible label not checked: OCR is not installed", "info"
                )
            )
        return
    if not labels and expected and not result.timed_out:
        report.findings.append(
            Finding(
                "explicit-label-missing",
                "the image carries a record but OCR found no visible AI-generation label "
                "at its edges or corners (GB 45438 clause 5)",
                "warning",
            )
        )


def _touching(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two (left, top, width, height) boxes overlap or nearly touch."""
    slack = max(a[3], b[3]) // 2
    return (
        a[0] < b[0] + b[2] + slack
        and b[0] < a[0] + a[2] + slack
        and a[1] < b[1] + b[3] + slack
        and b[1] < a[1] + a[3] + slack
    )


def _add_label(report: Report, mark: VisibleMark) -> None:
    maker = f" ({mark.generator})" if mark.generator else ""
    report.evidence.append(
        Evidence(
            EXPLICIT,
            "image:visible-ocr",
            f"visible label wording read by OCR at the {mark.region}: "
            + ", ".join(mark.phrases)
            + maker,
            mark.to_data(),
        )
    )
    if mark.height_ratio < MIN_LABEL_HEIGHT:
        report.findings.append(
            Finding(
                "explicit-label-too-small",
                f"the visible label {', '.join(mark.phrases)!s} at the {mark.region} is "
                f"{mark.height_px} px tall, {100 * mark.height_ratio:.1f}% of the shortest "
                f"side ({mark.shortest_side} px); GB 45438 clause 5 asks for at least "
                f"{100 * MIN_LABEL_HEIGHT:.0f}%",
                "warning",
                action="treat the image as AI-generated; ask the publisher to relabel it with "
                "a visible label of at least 5% of the shortest side",
            )
        )


def _add_brand(report: Report, mark: VisibleMark, template: str | None) -> None:
    """``template``: the drawn template that matched, or None for a wordmark read by OCR."""
    shown = f" ({', '.join(mark.phrases)})" if mark.phrases else ""
    report.evidence.append(
        Evidence(
            TRACE,
            "image:visible-mark",
            f"{mark.brand} brand mark{shown} at the {mark.region} ({mark.generator})",
            {**mark.to_data(), "template": template},
        )
    )
    report.findings.append(
        Finding(
            "visible-mark-lacks-generation-wording",
            f"the visible {mark.brand} mark at the {mark.region} names the generator but "
            "carries no generation element (生成 / 合成), so it is not an explicit label "
            "under GB 45438 clause 5",
            "warning",
            action=f"treat the image as suspected AI content from {mark.generator}; ask the "
            "uploader to declare it and add a conforming label",
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
