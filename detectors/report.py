"""The verification report: evidence found, findings, and the Art. 6 classification.

One type serves text and files alike; ``to_dict`` is the JSON report
``POST /v1/verify`` returns (part of the public v1 contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labelers.record import Record

# evidence kinds
RECORD = "metadata-record"
WATERMARK = "watermark"
C2PA = "c2pa"
IPTC = "iptc"
EXPLICIT = "explicit-label"
TRACE = "generator-trace"


@dataclass
class Evidence:
    kind: str
    carrier: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "carrier": self.carrier,
            "summary": self.summary,
            "data": self.data,
        }


#: what a moderator should do about a finding, by code (a finding may say more)
ACTIONS = {
    "integrity-invalid": "Treat the record as altered: do not rely on its producer or "
    "platform fields; ask the uploader for the original file.",
    "unreadable-record": "Ask the uploader for the original file; treat the content by its "
    "other evidence.",
    "several-records": "Keep the record that wins (see the detail); relabelling or propagating "
    "writes one record and removes the others.",
    "records-disagree": "Trust the record that wins (see the detail); the others are stale or "
    "forged copies.",
    "invalid-record": "Show the AI label anyway; tell the producer its record breaks "
    "GB 45438 Annex E.",
    "record-form": "No action needed for display; the producer should write the standard form.",
    "producer-code": "Resolve the producer by name; the producer should use its TC260 "
    "provider code.",
    "propagator-empty": "No action needed: a producer's first write; propagating fills "
    "the platform's fields.",
    "explicit-label-missing": "Show the platform's own prominent AI label (Measures Art. 6).",
    "explicit-label-partial": "Show the platform's own prominent AI label on every page.",
    "explicit-label-too-small": "Show the platform's own prominent AI label; the producer's "
    "visible label is smaller than GB 45438 asks.",
    "visible-mark-lacks-generation-wording": "Show the platform's own AI label with generation "
    "wording (人工智能生成); the mark alone does not say generated.",
    "c2pa-invalid": "Do not rely on the C2PA claims for the content as it is now; "
    "the AI origin it states is still a reason to label it suspected.",
    "c2pa-content-altered": "The file changed after signing: treat the C2PA claims as history, "
    "not as a description of this file.",
    "c2pa-untrusted": "No action needed for labelling: the signer is not in the configured "
    "trust list, the content still matches what was signed.",
    "c2pa-certificate": "Treat the signer's identity as unproven (certificate expired or "
    "invalid); the AI origin it states is still a reason to label it suspected.",
    "c2pa-unreadable": "Treat the content by its other evidence.",
    "c2pa-chain-truncated": "Inspect the file with a C2PA tool: the chain is longer than "
    "this verifier reads.",
    "image-undecodable": "Ask the uploader for a decodable file.",
    "ocr-unavailable": "Check the visible label by eye, or install tesseract.",
    "integrity-unverifiable": "No action needed: the reserved field holds the producer's own "
    "data, which only the producer can check.",
}


@dataclass
class Finding:
    """A conformance problem: what is wrong, where, how bad, and what to do."""

    code: str
    detail: str
    severity: str = "error"  # error | warning | info
    action: str = ""  # empty: the default for the code (ACTIONS)

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "severity": self.severity, "detail": self.detail}
        action = self.action or ACTIONS.get(self.code, "")
        if action:  # a finding with nothing to do says so by leaving it out
            out["action"] = action
        return out


@dataclass
class CarriedRecord:
    carrier: str
    record: Record
    source: str = "metadata"  # metadata | ledger (recovered through a watermark)

    def to_dict(self) -> dict[str, Any]:
        return {"carrier": self.carrier, "source": self.source, "record": self.record.as_dict()}


@dataclass
class Report:
    media_type: str
    classification: str = "none"
    rule: str = "no implicit or explicit label, no declaration, no generation traces"
    records: list[CarriedRecord] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    integrity: dict[str, Any] = field(default_factory=dict)
    #: who made the content, how sure, from which evidence (detectors.origin)
    origin: dict[str, Any] | None = None
    #: the C2PA manifest store, walked (labelers.provenance.ProvenanceReport.summary)
    c2pa: dict[str, Any] | None = None

    @property
    def record(self) -> Record | None:
        """The file's record: the one in metadata, else one recovered via the ledger."""
        for source in ("metadata", "ledger"):
            for carried in self.records:
                if carried.source == source:
                    return carried.record
        return None

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            "media_type": self.media_type,
            "classification": self.classification,
            "rule": self.rule,
            "record": record.as_dict() if record else None,
            "records": [r.to_dict() for r in self.records],
            "evidence": [{"id": i, **e.to_dict()} for i, e in enumerate(self.evidence)],
            "integrity": self.integrity,
            "findings": [f.to_dict() for f in self.findings],
            "origin": self.origin,
            "c2pa": self.c2pa,
        }
