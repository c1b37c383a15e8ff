"""Verification of plain text: the invisible mark's copies, visible wording, ledger match."""

from __future__ import annotations

from detectors.classify import classify
from detectors.lookup import LabelLookup
from detectors.report import C2PA, EXPLICIT, WATERMARK, CarriedRecord, Evidence, Finding, Report
from labelers.errors import AigcError
from labelers.record import Record
from labelers.visible.wording import find_wording
from labelers.watermark import c2pa_text
from labelers.watermark import text as text_watermark

CARRIER = "text:invisible-unicode"
C2PA_CARRIER = "text:c2pa-wrapper"
#: distinct keys looked up in the ledger per text; a text with more is pasted
#: together from many, or made to make the verifier query the ledger all day
MAX_KEYS = 16
#: copies listed per key in the report (all are counted)
MAX_LISTED_COPIES = 50


def verify_text(
    text: str, lookup: LabelLookup, declared_ai: bool = False, trust_anchors_pem: str | None = None
) -> Report:
    report = Report(media_type="text/plain")
    add_text_evidence(report, text, lookup, trust_anchors_pem)
    return classify(report, declared_ai)


def add_text_evidence(
    report: Report, text: str, lookup: LabelLookup, trust_anchors_pem: str | None = None
) -> None:
    """Add what the text itself shows: the mark's copies (and their ledger record), a
    C2PA text manifest, wording.

    One evidence item per distinct key, saying which copies carry it and in which
    family; copies that disagree (two keys in one text) are a finding.
    """
    copies = text_watermark.copies(text)
    by_key: dict[int, list[text_watermark.Copy]] = {}
    for copy in copies:
        by_key.setdefault(copy.key, []).append(copy)
    if len(by_key) > MAX_KEYS:
        report.findings.append(
            Finding(
                "too-many-marks",
                f"the text carries {len(by_key)} different invisible keys; "
                f"only the first {MAX_KEYS} were looked up",
                "warning",
            )
        )
    for key, group in list(by_key.items())[:MAX_KEYS]:
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
                    "copy_count": len(group),
                    "copies": [
                        {
                            "family": c.family,
                            "start": c.start,
                            "end": c.end,
                            "whole_id": bool(c.produce_id),
                        }
                        for c in group[:MAX_LISTED_COPIES]
                    ],
                },
            )
        )
        if record is not None:
            report.records.append(CarriedRecord(CARRIER, record, source="ledger"))
    if len(by_key) > 1:
        names = ", ".join(f"{k:016x}" for k in list(by_key)[:MAX_KEYS])
        report.findings.append(
            Finding(
                "several-records",
                f"the text's invisible copies disagree: they carry {len(by_key)} different keys "
                f"({names}); one piece of content should carry one record",
                "warning",
            )
        )
    _c2pa_wrapper(report, text, trust_anchors_pem)
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


def _c2pa_wrapper(report: Report, text: str, trust_anchors_pem: str | None) -> None:
    """A C2PA manifest wrapped into the text (C2PA 2.x unstructured text), whoever wrote it."""
    try:
        found = c2pa_text.read(text, trust_anchors_pem)
    except AigcError as exc:
        report.findings.append(Finding("c2pa-unreadable", exc.detail, "warning"))
        return
    if found is None:
        return
    for problem in found.problems:
        report.findings.append(Finding("c2pa-text-wrapper", problem, "warning"))
    manifest = found.provenance
    if manifest is None:
        return
    ai = any(
        "TrainedAlgorithmic" in t or t.endswith("/trainedAlgorithmicMedia")
        for t in manifest.digital_source_types
    )
    trust = "trusted signer" if manifest.signer_trusted else "signer not in the trust list"
    binding = {
        "match": "the text is what was signed",
        "mismatch": "the text changed after signing",
        "absent": "no hard binding to the text",
        "unverifiable": "hard binding in an unknown algorithm",
    }[found.binding]
    report.evidence.append(
        Evidence(
            C2PA,
            C2PA_CARRIER,
            f"C2PA text manifest ({manifest.state}, {trust}), "
            f"signed by {manifest.signer}; {binding}",
            {**found.to_dict(), "ai": ai},
        )
    )
    report.integrity["c2pa"] = {
        "state": manifest.state,
        "content_altered": found.binding == "mismatch",
        "signer_trusted": manifest.signer_trusted,
        "manifest_intact": manifest.manifest_intact,
    }
    if found.binding != "match":
        report.findings.append(
            Finding(
                "c2pa-text-binding", f"the C2PA text manifest does not cover this text: {binding}"
            )
        )
    if manifest.gb_record and found.binding == "match":  # a record signed for this text
        try:
            record = Record.from_mapping(manifest.gb_record)
        except AigcError:
            return
        report.records.append(CarriedRecord(C2PA_CARRIER, record))
