"""Invisible marks, one module per content kind (image, text): embed and decode.

Every mark carries the same 64-bit ledger key, derived here and only here, so the
ledger (app/ledger.py stores it with each label) turns any decoded mark back
into the full record.
"""

from __future__ import annotations

import hashlib


def watermark_key(produce_id: str) -> int:
    """The 64-bit key the invisible marks carry for ``produce_id``.

    Derived, not stored state: SHA-256 of the ProduceID, first 8 bytes.
    """
    return int.from_bytes(hashlib.sha256(produce_id.encode()).digest()[:8], "big")
