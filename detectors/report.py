"""The verification report: evidence found, findings, and the Art. 6 classification.

One type serves text and files alike; ``to_dict`` is the JSON the API returns
(DESIGN.md section 3).
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


@dataclass
class Finding:
    """A conformance problem: what is wrong, where, and how bad."""

    code: str
    detail: str
    severity: str = "error"  # error | warning | info
    action: str | None = None  # what a moderator should do about it

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "severity": self.severity, "detail": self.detail}
        if self.action:
            out["action"] = self.action
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
            "evidence": [e.to_dict() for e in self.evidence],
            "integrity": self.integrity,
            "findings": [f.to_dict() for f in self.findings],
        }
