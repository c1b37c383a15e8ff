"""A platform's check of one upload (Measures Art. 6), shared by HTTP and CLI.

Judge the file with ``detectors``, then, unless nothing says AI, write the
platform's propagation fields into its one record with ``labelers``. Writing
the ledger row is left to the caller: the service awaits it, the batch engine
orders it against its file writes.
"""

from __future__ import annotations

from app.state import State
from detectors.classify import LABEL_FOR_CLASS
from detectors.files import verify_file
from detectors.report import C2PA, EXPLICIT, Report
from labelers.formats.parse_once import shares_walks
from labelers.pipeline import FileOptions
from labelers.propagation import PropagateResult, propagate_file
from labelers.record import new_produce_id


@shares_walks  # the check and the propagation walk the upload once
def check_and_propagate(
    st: State,
    data: bytes,
    declared_ai: bool,
    platform: str,
    propagate_id: str | None,
    explicit: FileOptions | None,
) -> tuple[Report, PropagateResult | None]:
    """The verification report, and the propagated file (None when classified none).

    ``explicit`` asks for the visible label; it is skipped when the file
    already shows AI wording.
    """
    report = verify_file(data, st.verify_context, declared_ai)
    if report.classification == "none":
        return report, None
    if explicit is not None and any(e.kind == EXPLICIT for e in report.evidence):
        explicit = None
    result = propagate_file(
        data,
        report.record,
        LABEL_FOR_CLASS[report.classification],
        platform,
        propagate_id or new_produce_id(),
        add_explicit=explicit,
        record_signer=st.record_signer,
        c2pa_signer=st.signer,
        software_agent=st.settings.software_agent,
        limits=st.settings.limits,
        has_manifest=any(e.kind == C2PA for e in report.evidence),
    )
    return report, result
