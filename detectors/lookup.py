"""How detectors ask "did we issue this?" without knowing about databases.

The app passes an object backed by its ledger; tests may pass any object with
these two methods.
"""

from __future__ import annotations

from typing import Protocol

from labelers.record import Record


class LabelLookup(Protocol):
    def by_produce_id(self, produce_id: str) -> Record | None: ...

    def by_watermark_key(self, key: int) -> Record | None: ...


class NoLookup:
    """For verification without a ledger: nothing is ever matched."""

    def by_produce_id(self, produce_id: str) -> Record | None:
        return None

    def by_watermark_key(self, key: int) -> Record | None:
        return None
