"""Matroska and WebM: the record as the SimpleTag ``AIGC`` in ``Segment/Tags``."""

from __future__ import annotations

EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def accept(head: bytes) -> str | None:
    """``video/webm`` or ``video/x-matroska`` from the EBML header's DocType, else None."""
    if not head.startswith(EBML_MAGIC):
        return None
    window = head[:64]
    if b"\x42\x82" in window:
        doc = window.split(b"\x42\x82", 1)[1]
        if doc[1:5] == b"webm":
            return "video/webm"
        if doc[1:9] == b"matroska":
            return "video/x-matroska"
    return None
