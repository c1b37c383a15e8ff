"""What IDs a file already carries: the resume and skip rules of a batch run ask this.

Read through the format handlers like every other detector: the ProduceIDs
(or PropagateIDs) of a file's records, or, for plain text, which has no
record carrier, the ProduceIDs its text watermark carries.
"""

from __future__ import annotations

from typing import Any


def carried_ids(data: bytes, limits: Any, record_field: str = "produce_id") -> list[str]:
    """IDs the file carries: from its metadata records, or its text watermark (plain text)."""
    from labelers.errors import AigcError
    from labelers.formats import Capability, sniff_handler
    from labelers.watermark import text as text_watermark

    try:
        handler, _ = sniff_handler(data)
        if Capability.RECORD not in handler.capabilities:  # plain text: its watermark
            if record_field != "produce_id":
                return []
            return text_watermark.decode(data.decode("utf-8", errors="replace"))
        meta = handler.read(data, limits)
    except AigcError:
        return []
    ids = [getattr(f.record, record_field) for f in meta.records if f.record is not None]
    return [i for i in ids if i]


def propagated_by(data: bytes, platform: str | None, limits: Any) -> str | None:
    """The PropagateID the record of ``data`` carries for ``platform``, if any."""
    from labelers.errors import AigcError
    from labelers.formats import sniff_handler

    if not platform:
        return None
    try:
        meta = sniff_handler(data)[0].read(data, limits)
    except AigcError:
        return None
    for found in meta.records:
        record = found.record
        if record is not None and record.content_propagator == platform and record.propagate_id:
            return record.propagate_id
    return None
