"""Platform write-back (Measures Art. 6): propagation fields into the file's one record.

The platform's caller (app/) has already judged the upload with
``detectors`` and passes what it found: the existing record (from metadata or
recovered from the ledger through a watermark) or, when there is none, the
Label the Art. 6 class calls for ("1"/"2"/"3"). This module changes nothing
but the record, unless the caller asks for a visible label to be added; C2PA
provenance is carried forward with a manifest whose parent ingredient is the
file as received.
"""

from __future__ import annotations

from dataclasses import dataclass

from labelers.errors import UnsupportedMedia
from labelers.formats import Capability, sniff_handler
from labelers.formats.parse_once import shares_walks
from labelers.integrity import RecordSigner
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.pipeline import FileOptions, FileResult, apply_content, can_sign_c2pa, check_size
from labelers.provenance import C2paSigner, read_manifest
from labelers.record import Record


@dataclass
class PropagateResult:
    data: bytes
    media_type: str
    record: Record
    created: bool  # True when the file had no record and the platform created one
    explicit: str  # where a visible label was added, or "none"
    c2pa: str  # what happened to C2PA provenance


@shares_walks
def propagate_file(
    data: bytes,
    existing: Record | None,
    label_if_new: str,
    platform: str,
    propagate_id: str,
    *,
    add_explicit: FileOptions | None = None,
    record_signer: RecordSigner | None = None,
    c2pa_signer: C2paSigner | None = None,
    software_agent: str = "aigc-label",
    limits: Limits = DEFAULT_LIMITS,
    has_manifest: bool | None = None,
) -> PropagateResult:
    """Write ContentPropagator / PropagateID (and ReservedCode2) into ``data``'s record.

    ``existing`` keeps every field it has except the three the platform owns;
    without it a record is created with ``label_if_new`` and only the
    platform's fields. ``add_explicit`` (options with explicit=True) draws a
    visible label first. ``has_manifest`` says whether ``data`` carries a C2PA
    manifest when the caller already knows (it has just verified the file);
    otherwise the file is read for one.
    """
    check_size(data, limits)
    handler, media_type = sniff_handler(data)  # each stage below parses within the limits
    if Capability.RECORD not in handler.capabilities:
        raise UnsupportedMedia(
            f"{handler.name} has no metadata carrier for a record; label it as text "
            "(the label and the mark go into the words), or send Markdown or HTML"
        )
    if existing is not None:
        record = existing.with_fields(
            content_propagator=platform, propagate_id=propagate_id, reserved_code2=""
        )
    else:
        record = Record(
            label=label_if_new,
            content_producer="",
            produce_id="",
            content_propagator=platform,
            propagate_id=propagate_id,
        )
    record.validate()
    staged = FileResult(data, media_type, record, "none", "off", "off")
    if add_explicit is not None:
        apply_content(staged, add_explicit, None, limits)
    if record_signer is not None:
        record = record_signer.sign_platform(record, handler.content_digest(staged.data, limits))
    out = handler.write_record(staged.data, record, limits)
    c2pa_state = "not available for " + media_type
    if can_sign_c2pa(handler, media_type):
        had_manifest = (
            has_manifest
            if has_manifest is not None
            else read_manifest(data, media_type, limits=limits) is not None
        )
        if c2pa_signer is None:
            c2pa_state = "no signer configured"
        else:
            action = "c2pa.edited" if staged.explicit != "none" else "c2pa.published"
            out = c2pa_signer.sign_update(
                out,
                media_type,
                record,
                software_agent,
                parent=data if had_manifest else None,
                action=action,
                limits=limits,
            )
            c2pa_state = "re-signed with the received file as parent" if had_manifest else "signed"
    return PropagateResult(out, media_type, record, existing is None, staged.explicit, c2pa_state)
