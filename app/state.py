"""The service's long-lived parts, built once per process from settings."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from app.auth import KeyStore, load_keys
from app.ledger import Ledger, open_ledger
from app.settings import Settings
from labelers.record import Record

log = logging.getLogger("aigc")


class LedgerLookup:
    """detectors.lookup.LabelLookup backed by the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def by_produce_id(self, produce_id: str) -> Record | None:
        entry = self.ledger.get(produce_id)
        return entry.record if entry else None

    def by_watermark_key(self, key: int) -> Record | None:
        entry = self.ledger.find_by_watermark(key)
        return entry.record if entry else None


@dataclass
class State:
    settings: Settings
    ledger: Ledger
    keys: KeyStore
    _signer: Any = None
    _signer_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def lookup(self) -> LedgerLookup:
        return LedgerLookup(self.ledger)

    @classmethod
    def build(cls, settings: Settings) -> State:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        ledger = open_ledger(settings.resolved_database_url, settings.data_dir)
        keys = load_keys(settings.api_keys_file, settings.api_keys, settings.data_dir)
        log.info("ledger at %s", _redact(settings.resolved_database_url))
        return cls(settings=settings, ledger=ledger, keys=keys)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
