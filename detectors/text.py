"""Verification of plain text: the invisible mark's copies, visible wording, ledger match."""

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
    """Add what the text itself shows: the mark's copies (and their ledger record), wording.

    One evidence item per distinct key, saying which copies carry it and in which
    family; copies that disagree (two keys in one text) are a finding.
    """
    copies = text_watermark.copies(text)
    by_key: dict[int, list[text_watermark.Copy]] = {}
    for copy in copies:
        by_key.setdefault(copy.key, []).append(copy)
    for key, group in by_key.items():
        produce_id = next((c.produce_id for c in group if c.produce_id), None)
        record = lookup.by_produce_id(produce_id) if produce_id else None
        if record is None:
            record = lookup.by_watermark_key(key)
        families = {
            f: sum(c.family == f for c in group) for f in dict.fromkeys(c.family for c in group)
        }
        named = produce_id or (record.produce_id if record else None)
        report.evidence.append(
            Evidence(
                WATERMARK,
                CARRIER,
                f"invisible mark: {len(group)} cop{'y' if len(group) == 1 else 'ies'} "
                f"({', '.join(f'{n} {f}' for f, n in families.items())}) carrying key {key:016x}"
                + (f", ProduceID {named}" if named else "")
                + ("; found in the ledger" if record else "; not in this service's ledger"),
                {
                    "key": f"{key:016x}",
                    "produce_id": named,
                    "in_ledger": record is not None,
                    "families": families,
                    "agree": len(by_key) == 1,
                    "copies": [
                        {
                            "family": c.family,
                            "start": c.start,
                            "end": c.end,
                            "whole_id": bool(c.produce_id),
                        }
                        for c in group
                    ],
                },
            )
        )
        if record is not None:
            report.records.append(CarriedRecord(CARRIER, record, source="ledger"))
    if len(by_key) > 1:
        names = ", ".join(f"{k:016x}" for k in by_key)
        report.findings.append(
            Finding(
                "several-records",
                f"the text's invisible copies disagree: they carry {len(by_key)} different keys "
                f"({names}); one piece of content should carry one record",
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
