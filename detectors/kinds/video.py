"""The evidence stage of videos: what a few sampled frames show.

Our watermark (decoded from frames sampled over the clip, then looked up in
the ledger: a record found there makes the video confirmed) and the visible
label in the opening frames, read by OCR at the edges and corners, with how
long it shows (detectors.video does the bounded sampling). A record with no
visible label, or one shown for under 2 s, is a finding. The container's
headers are checked against the video limits first: a video over them keeps
its record, C2PA and trace evidence and says its frames were not read.
"""

from __future__ import annotations

from detectors.kinds import VerifyJob
from detectors.report import EXPLICIT, WATERMARK, CarriedRecord, Evidence, Finding
from labelers.errors import AigcError, ServiceBusy
from labelers.limits import check_video

#: GB 45438 clause 5: a video's label shows for at least 2 s ...
MIN_LABEL_SECONDS = 2.0
#: ... with text at least 5% of the shortest side
MIN_LABEL_HEIGHT = 0.05


def evidence(job: VerifyJob) -> None:
    from detectors.video import inspect_video

    report, info = job.report, job.meta.video
    if info is None:
        report.findings.append(
            Finding("video-undecodable", "the file declares no video track", "warning")
        )
        return
    try:
        check_video(
            job.limits,
            seconds=info.seconds,
            width=info.width,
            height=info.height,
            frames=info.frames,
            bitrate=info.bitrate,
        )
        found = inspect_video(job.data, job.media_type, job.limits)
    except ServiceBusy:
        raise  # not a property of the file: the request is retried later
    except AigcError as exc:
        report.findings.append(
            Finding("video-frames-not-read", f"the frames were not read: {exc.detail}", "warning")
        )
        return
    if found.watermark_key is not None:
        key = found.watermark_key
        record = job.lookup.by_watermark_key(key)
        report.evidence.append(
            Evidence(
                WATERMARK,
                "video:watermark",
                f"invisible video watermark decoded (key {key:016x})"
                + ("; found in the ledger" if record else "; not in this service's ledger"),
                {"key": f"{key:016x}", "score": found.watermark_score, "in_ledger": bool(record)},
            )
        )
        if record is not None:
            report.records.append(CarriedRecord("video:watermark", record, source="ledger"))
    seconds = found.label_seconds
    for mark in found.label_boxes[:1]:
        report.evidence.append(
            Evidence(
                EXPLICIT,
                "video:visible-ocr",
                f"visible label wording read by OCR at the {mark.region} of the opening "
                f"frames, shown for {seconds:.1f} s: " + ", ".join(mark.phrases),
                {**mark.to_data(), "seconds": seconds, "notes": found.notes},
            )
        )
        if mark.height_ratio < MIN_LABEL_HEIGHT:
            report.findings.append(
                Finding(
                    "explicit-label-too-small",
                    f"the video's visible label is {mark.height_px} px tall, "
                    f"{100 * mark.height_ratio:.1f}% of the shortest side "
                    f"({mark.shortest_side} px); GB 45438 clause 5 asks for at least 5%",
                    "warning",
                )
            )
    has_record = any(r.source == "metadata" for r in report.records)
    if found.label_boxes and seconds < MIN_LABEL_SECONDS:
        report.findings.append(
            Finding(
                "explicit-label-too-short",
                f"the video's visible label shows for {seconds:.1f} s of the opening frames; "
                f"GB 45438 clause 5 asks for at least {MIN_LABEL_SECONDS:g} s",
                "warning",
                action="ask the publisher to relabel the video with a label shown for at "
                "least 2 s from the start",
            )
        )
    elif has_record and not found.label_boxes:
        if any("OCR" in note for note in found.notes):
            report.findings.append(
                Finding(
                    "ocr-unavailable",
                    "visible label not checked: " + "; ".join(found.notes),
                    "info",
                )
            )
        else:
            report.findings.append(
                Finding(
                    "explicit-label-missing",
                    "the video carries a record but no visible AI-generation label shows at "
                    "the edges or corners of its opening frames (GB 45438 clause 5)",
                    "warning",
                )
            )
