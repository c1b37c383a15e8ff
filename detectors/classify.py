"""Measures Art. 6: confirmed / possible / suspected / none, and the rule that fired.

1. the file carries a record (in metadata, or recovered from our watermark via
   the ledger) -> **confirmed**; a record a platform wrote with Label "2"/"3"
   keeps that weaker class;
2. no record, but the uploader declares AI -> **possible**;
3. neither, but an explicit label, an unmatched watermark, a C2PA or IPTC AI
   source type, or another generator's traces -> **suspected**;
4. otherwise **none**.
"""

from __future__ import annotations

from detectors import origin
from detectors.report import C2PA, EXPLICIT, IPTC, TRACE, WATERMARK, Report

_BY_LABEL = {"1": "confirmed", "2": "possible", "3": "suspected"}
#: the Label a platform writes when it creates the record, per Art. 6 class
LABEL_FOR_CLASS = {cls: label for label, cls in _BY_LABEL.items()}
#: what each Label value says, in the words a moderator acts on
_LABEL_MEANS = {
    "1": "the producer marked it AI-generated",
    "2": "a platform marked it possibly AI-generated (the uploader declared AI; no "
    "producer's label was found): treat it as possible, not confirmed",
    "3": "a platform marked it suspected AI-generated (AI traces were detected; no "
    "producer's label was found): treat it as suspected",
}
_SUSPECT_KINDS = (EXPLICIT, WATERMARK, C2PA, IPTC, TRACE)


def classify(report: Report, declared_ai: bool = False) -> Report:
    """Set the class and rule (Art. 6), then the origin the evidence supports."""
    _apply_rules(report, declared_ai)
    report.origin = origin.resolve(report)
    return report


def _apply_rules(report: Report, declared_ai: bool) -> Report:
    record = report.record
    if record is not None:
        source = next(r for r in report.records if r.record is record)
        how = "metadata record" if source.source == "metadata" else "watermark matched in ledger"
        report.classification = _BY_LABEL.get(record.label, "confirmed")
        report.rule = f'Art. 6(1): implicit label present ({how}, Label "{record.label}")'
        if record.label in _LABEL_MEANS:
            report.rule += f": {_LABEL_MEANS[record.label]}"
        return report
    if declared_ai:
        report.classification = "possible"
        report.rule = "Art. 6(2): no implicit label; the uploader declares AI generation"
        return report
    signals = [e for e in report.evidence if e.kind in _SUSPECT_KINDS and e.data.get("ai", True)]
    if signals:
        kinds = ", ".join(dict.fromkeys(e.kind for e in signals))
        report.classification = "suspected"
        report.rule = f"Art. 6(3): no implicit label or declaration; detected: {kinds}"
        return report
    report.classification = "none"
    return report
