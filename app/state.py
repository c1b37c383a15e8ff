"""The service's long-lived parts, built once per process from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from app.auth import KeyStore, load_keys
from app.ledger_rows import private_dir
from labelers.errors import SigningError
from labelers.record import Record

if TYPE_CHECKING:
    from pathlib import Path

    from app.ledger import AsyncInserter, Ledger
    from app.settings import Settings
    from app.sqlite_ledger import SqliteLedger
    from detectors.files import VerifyContext
    from labelers.integrity import Keyring, RecordSigner
    from labelers.pipeline import LabelContext
    from labelers.provenance import C2paSigner

log = logging.getLogger("aigc")


class LedgerLookup:
    """detectors.lookup.LabelLookup backed by the ledger."""

    def __init__(self, ledger: Ledger | SqliteLedger) -> None:
        self.ledger = ledger

    def by_produce_id(self, produce_id: str) -> Record | None:
        entry = self.ledger.get(produce_id)
        return entry.record if entry else None

    def by_watermark_key(self, key: int) -> Record | None:
        entry = self.ledger.find_by_watermark(key)
        return entry.record if entry else None


@dataclass
class State:
    """Ledger and API keys at once; signing material when first used.

    A one-shot CLI run that labels without C2PA never loads the C2PA library
    or a certificate; the service calls :meth:`prepare` at start so its first
    request pays nothing and development credentials are announced once.
    """

    settings: Settings
    ledger: Ledger | SqliteLedger
    keys: KeyStore

    @cached_property
    def inserter(self) -> AsyncInserter:
        """Group commit for the service's coroutines (a SQLAlchemy ledger)."""
        from app.ledger import AsyncInserter

        return AsyncInserter(self.ledger)

    @property
    def lookup(self) -> LedgerLookup:
        return LedgerLookup(self.ledger)

    @classmethod
    def build(cls, settings: Settings, oneshot: bool = False) -> State:
        """``oneshot``: a command-line run, whose start-up is most of what it costs: a
        SQLite ledger is then reached through ``sqlite3`` (app/sqlite_ledger.py)
        rather than SQLAlchemy. The service keeps SQLAlchemy (group commit, pools)."""
        private_dir(settings.data_dir)
        url = settings.resolved_database_url
        if oneshot:
            from app.sqlite_ledger import open_oneshot_ledger

            ledger = open_oneshot_ledger(url, settings.data_dir)
        else:
            from app.ledger import open_ledger

            ledger = open_ledger(url, settings.data_dir)
        keys = load_keys(settings.api_keys_file, settings.api_keys, settings.data_dir)
        log.info("data directory %s", settings.data_dir)
        if log.isEnabledFor(logging.INFO):
            log.info("ledger at %s", _redact(url))
        _make_private(settings.data_dir)  # the development API key may just have been made
        return cls(settings=settings, ledger=ledger, keys=keys)

    def prepare(self) -> State:
        """Load (or create) every key and certificate now rather than on first use."""
        _ = self.signer, self.trust_anchors_pem, self.record_signer, self.keyring
        return self

    @cached_property
    def _c2pa_files(self) -> tuple[Path, Path, Path | None]:
        files = _c2pa_files(self.settings)
        _make_private(self.settings.data_dir)  # the development CA may just have been made
        return files

    @cached_property
    def signer(self) -> C2paSigner:
        from labelers.provenance import C2paSigner

        chain, key, _ = self._c2pa_files
        return C2paSigner.from_files(chain, key)

    @cached_property
    def trust_anchors_pem(self) -> str | None:
        anchors = self._c2pa_files[2]
        return anchors.read_text() if anchors else None

    @cached_property
    def _record_keys(self) -> tuple[RecordSigner, Keyring]:
        keys = _record_keys(self.settings, self.keys)
        _make_private(self.settings.data_dir)  # the signing key may just have been made
        return keys

    @property
    def record_signer(self) -> RecordSigner:
        return self._record_keys[0]

    @property
    def keyring(self) -> Keyring:
        return self._record_keys[1]

    @cached_property
    def label_context(self) -> LabelContext:
        """What every label of the service is made with (loads the signers)."""
        from labelers.pipeline import LabelContext

        return LabelContext(
            signer=self.signer,
            record_signer=self.record_signer,
            software_agent=self.settings.software_agent,
            limits=self.settings.limits,
        )

    @property
    def verify_context(self) -> VerifyContext:
        """What every verification of the service is made with."""
        from detectors.files import VerifyContext

        return VerifyContext(
            self.lookup, self.trust_anchors_pem, self.keyring, self.settings.limits
        )


def _record_keys(settings: Settings, keys: KeyStore) -> tuple[RecordSigner, Keyring]:
    """The key that signs ReservedCode1/2, and the public keys verify knows.

    Our own key (AIGC_RECORD_SCHEME: Ed25519 or SM2) is trusted for every
    producer/platform code our API keys carry.
    """
    from labelers.integrity import Keyring, RecordSigner

    scheme = settings.record_scheme
    if settings.record_key:
        signer = RecordSigner.from_pem(settings.record_key.read_bytes(), settings.record_format)
        if signer.scheme != scheme:
            raise SigningError(
                f"AIGC_RECORD_KEY holds an {signer.scheme} key but AIGC_RECORD_SCHEME is {scheme}"
            )
    else:
        # one file per scheme, so switching the scheme never reuses or overwrites the other key
        name = (
            "record-signing-key.pem" if scheme == "ed25519" else f"record-signing-key-{scheme}.pem"
        )
        path = settings.data_dir / name
        signer, created = RecordSigner.load_or_create(path, scheme, settings.record_format)
        if created:
            log.warning("generated a development record-signing key in %s", path)
    keyring = (
        Keyring.from_json(settings.record_public_keys.read_text())
        if settings.record_public_keys
        else Keyring()
    )
    keyring.add(signer.public_key, keys.codes())
    return signer, keyring


def _c2pa_files(settings: Settings) -> tuple[Path, Path, Path | None]:
    """C2PA chain, key and verify's trust anchors: configured, else development ones."""
    if settings.c2pa_chain or settings.c2pa_key:
        if not (settings.c2pa_chain and settings.c2pa_key):
            raise SigningError("set both AIGC_C2PA_CHAIN and AIGC_C2PA_KEY, or neither")
        return settings.c2pa_chain, settings.c2pa_key, settings.trust_anchors
    from app.dev_credentials import ensure_dev_credentials

    dev = ensure_dev_credentials(settings.data_dir / "c2pa-dev")
    if dev.created:
        log.warning(
            "DEVELOPMENT C2PA credentials created in %s: manifests are signed by a local "
            "development CA; configure AIGC_C2PA_CHAIN/AIGC_C2PA_KEY for production",
            dev.chain_pem.parent,
        )
    return dev.chain_pem, dev.key_pem, settings.trust_anchors or dev.ca_pem


def _make_private(data_dir: Path) -> None:
    """Owner-only data: directories 0700, files 0600 (keys, ledger, locks).

    Whatever the umask made them: the ledger holds requesters and watermark
    keys, the directory the signing keys. Only what the service puts there is
    touched (the directory's own files and the development C2PA directory).
    """
    ours = [data_dir, *data_dir.glob("*"), *data_dir.glob("c2pa-dev/*")]
    for path in ours:
        if path.is_symlink():
            continue
        wanted = 0o700 if path.is_dir() else 0o600
        if path.stat().st_mode & 0o777 != wanted:
            path.chmod(wanted)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
