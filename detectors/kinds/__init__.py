"""The evidence stage of each kind of file: what the content itself shows.

verify_file (detectors.files) reads the records, traces and C2PA of every file
the same way, through its format handler. What the content shows (an image's
pixels: watermark and visible label; a document's text: the label wording)
depends on the kind, and is looked up here by the handler's
:class:`~labelers.formats.Kind`.

A new kind (audio, video) is one module in this package and one line in
:data:`STAGES`. The module exposes::

    def evidence(job: VerifyJob) -> None

which adds Evidence, Findings and ledger-recovered records to ``job.report``
(a watermark decoded and looked up through ``job.lookup``, an explicit label
found or missed), and may expose::

    def conformance(job: VerifyJob) -> None

called after the record checks, for findings that need every record known
(e.g. "a record but no visible label").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from labelers.formats import Kind

if TYPE_CHECKING:
    from detectors.lookup import LabelLookup
    from detectors.report import Report
    from labelers.formats import FormatHandler, Metadata
    from labelers.limits import Limits


@dataclass
class VerifyJob:
    """One file under verification, as the stages see it."""

    report: Report
    data: bytes
    media_type: str
    handler: FormatHandler
    meta: Metadata
    lookup: LabelLookup
    limits: Limits
    #: read an image's visible label even when it carries a record (a missing
    #: one is then a finding)
    check_visible: bool = False


#: one line per kind of content: the module under detectors.kinds
STAGES: dict[Kind, str] = {
    Kind.IMAGE: "image",
    Kind.DOCUMENT: "document",
    Kind.TEXT: "text",
}


def _module(kind: Kind) -> ModuleType | None:
    name = STAGES.get(kind)
    return importlib.import_module(f"detectors.kinds.{name}") if name else None


def evidence_stage(kind: Kind) -> Callable[[VerifyJob], None]:
    """The kind's evidence stage; a kind without one contributes metadata evidence only."""
    module = _module(kind)
    return module.evidence if module else _nothing


def conformance_stage(kind: Kind) -> Callable[[VerifyJob], None]:
    module = _module(kind)
    return getattr(module, "conformance", _nothing) if module else _nothing


def _nothing(job: VerifyJob) -> None:
    return None
