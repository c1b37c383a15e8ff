"""Verification of plain text: invisible payload, visible wording, ledger match."""

from __future__ import annotations

from detectors.classify import classify
from detectors.lookup import LabelLookup
from detectors.report import EXPLICIT, WATERMARK, CarriedRecord, Evidence, Finding, Report
from labelers.visible.wording import find_wording
from labelers.watermark import text as text_watermark

CARRIER = "text:invisible-unicode"


def verify_text(text: str, lookup: LabelLookup, declared_ai: bool = False) -> Report:
    report = Report(media_type="text/plain")
    add_text_evidence(report, text, lookup)
    return classify(report, declared_ai)


def add_text_evidence(report: Report, text: str, lookup: LabelLookup) -> None:
    """Add what the text itself shows: our payload (and its ledger record), wording."""
    ids = text_watermark.decode(text)
    for produce_id in ids:
        record = lookup.by_produce_id(produce_id)
        report.evidence.append(
            Evidence(
                WATERMARK,
                CARRIER,
                f"invisible payload carries ProduceID {produce_id}"
                + ("; found in the ledger" if record else "; not in this service's ledger"),
                {"produce_id": produce_id, "in_ledger": record is not None},
            )
        )
        if record is not None:
            report.records.append(CarriedRecord(CARRIER, record, source="ledger"))
    if len(ids) > 1:
        report.findings.append(
            Finding(
                "several-records",
                f"the text carries {len(ids)} different ProduceIDs ({', '.join(ids)}): "
                "one piece of content should carry one record",
                "warning",
            )
        )
    phrases = find_wording(text_watermark.visible_text(text))
    if phrases:
        report.evidence.append(
            Evidence(
                EXPLICIT,
                "text",
                f"explicit label wording found: {', '.join(dict.fromkeys(phrases))}",
                {"phrases": list(dict.fromkeys(phrases))},
            )
        )
