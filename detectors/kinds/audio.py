"""The evidence stage of audio: our watermark (-> ledger) and the audible rhythm label.

The signal is read by ``detectors.audio`` over a bounded part of the file
(its start and end for the rhythm, a bounded stretch for the mark). A record
without an audible label is a finding; only the rhythm is detected, so a
spoken label is reported as not found (the finding says so).
"""

from __future__ import annotations

from detectors.kinds import VerifyJob
from detectors.report import EXPLICIT, WATERMARK, CarriedRecord, Evidence, Finding
from labelers.errors import AigcError, ServiceBusy


def evidence(job: VerifyJob) -> None:
    from detectors.audio import inspect_audio

    report = job.report
    try:
        found = inspect_audio(job.data, job.media_type, job.limits)
    except ServiceBusy:
        raise  # not a property of the file: the request is retried later
    except AigcError as exc:
        report.findings.append(Finding("audio-undecodable", exc.detail, "warning"))
        return
    if found.watermark_key is not None:
        key = found.watermark_key
        record = job.lookup.by_watermark_key(key)
        report.evidence.append(
            Evidence(
                WATERMARK,
                "audio:spread-spectrum",
                f"audio watermark decoded (key {key:016x})"
                + ("; found in the ledger" if record else "; not in this service's ledger"),
                {"key": f"{key:016x}", "in_ledger": bool(record)},
            )
        )
        if record is not None:
            report.records.append(CarriedRecord("audio:watermark", record, source="ledger"))
    if found.rhythm_spans:
        spans = [[round(a, 3), round(b, 3)] for a, b in found.rhythm_spans]
        where = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in spans[:4])
        report.evidence.append(
            Evidence(
                EXPLICIT,
                "audio:rhythm",
                f'audible label: the Morse "AI" rhythm (short-long-short-short) at {where}',
                {"spans": spans, "notes": list(found.notes)},
            )
        )
    elif any(r.source == "metadata" for r in report.records):
        read = f" ({'; '.join(found.notes)})" if found.notes else ""
        report.findings.append(
            Finding(
                "explicit-label-missing",
                "the audio carries a record but no audible AI label was found: the Morse "
                f'"AI" rhythm is not at its start or end{read}; a spoken label is not '
                "checked (GB 45438 clause 5)",
                "warning",
                action="listen to the start and end; ask the publisher to add the audible "
                "label if there is none",
            )
        )
