"""The evidence stage of plain text: the text watermark and the label wording in it."""

from __future__ import annotations

from detectors.kinds import VerifyJob
from detectors.text import add_text_evidence


def evidence(job: VerifyJob) -> None:
    add_text_evidence(job.report, job.data.decode("utf-8", errors="replace"), job.lookup)
