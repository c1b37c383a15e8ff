"""The evidence stage of documents: the label wording in their text, and whether
a document with a record shows one."""

from __future__ import annotations

from detectors.kinds import VerifyJob
from detectors.report import EXPLICIT, Evidence, Finding
from detectors.text import add_text_evidence
from labelers.formats import Capability
from labelers.visible.wording import find_wording


def evidence(job: VerifyJob) -> None:
    report = job.report
    if Capability.TEXT_BODY in job.handler.capabilities:
        # Markdown, HTML: the file is the text; its watermark and wording are in it
        add_text_evidence(report, job.data.decode("utf-8", errors="replace"), job.lookup)
        return
    pages = job.meta.text_pages or []
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


def conformance(job: VerifyJob) -> None:
    report = job.report
    has_record = any(r.source == "metadata" for r in report.records)
    explicit = [e for e in report.evidence if e.kind == EXPLICIT]
    if has_record and not explicit:
        report.findings.append(
            Finding(
                "explicit-label-missing",
                "the document carries a record but no visible AI-generation wording "
                "(GB 45438 clause 5)",
                "warning",
            )
        )
    # text_pages of DOCX/XLSX list parts, not pages: only paged types count pages
    elif (
        explicit
        and explicit[0].data.get("page_count")
        and job.media_type in job.handler.paged_types
    ):
        data = explicit[0].data
        if len(data["pages"]) < data["page_count"]:
            report.findings.append(
                Finding(
                    "explicit-label-partial",
                    f"visible wording on pages {data['pages']} of {data['page_count']} only",
                    "info",
                )
            )
