"""What every ledger writer shares, without SQLAlchemy: rows, entries, schema head.

Two writers use these: app/ledger.py (SQLAlchemy; the service, PostgreSQL,
migrations) and app/sqlite_ledger.py (the standard library's ``sqlite3``; a
one-shot command line run on the default SQLite file, which would otherwise
spend most of its time importing SQLAlchemy). A row is built here once, as
``(table name, {column: value})``, so both insert the same values into the
same columns; the tables themselves are Alembic's (app/migrations).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labelers.record import Record
from labelers.watermark import watermark_key  # the one derivation, shared with the marks

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

LABELS = "labels"
PROPAGATIONS = "propagations"
#: each table's primary key: the ID a duplicate insert names
KEYS = {LABELS: "produce_id", PROPAGATIONS: "propagate_id"}

#: what every SQLite connection to the ledger runs first: WAL lets readers run
#: beside the one writer; busy_timeout makes concurrent writers from several
#: worker processes wait, not fail.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
)

Row = tuple[str, dict[str, Any]]  # a table's name and one row's values
MAX_BATCH = 500


class DuplicateProduceID(Exception):
    """The ProduceID was already issued."""


@dataclass(frozen=True)
class LedgerEntry:
    produce_id: str
    watermark_key: str
    content_sha256: str
    media_type: str
    producer: str
    record: Record
    requester: str
    explicit_label: str
    explicit_omitted: bool
    omit_reason: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> LedgerEntry:
        """From a ``labels`` row (anything with its columns as attributes or keys)."""
        get = row.__getitem__ if hasattr(row, "keys") else lambda name: getattr(row, name)
        created = get("created_at")
        if isinstance(created, str):  # the standard library's sqlite3 hands back the text
            created = datetime.fromisoformat(created)
        if created.tzinfo is None:  # SQLite drops the zone; we always store UTC
            created = created.replace(tzinfo=UTC)
        return cls(
            produce_id=get("produce_id"),
            watermark_key=get("watermark_key"),
            content_sha256=get("content_sha256"),
            media_type=get("media_type"),
            producer=get("producer"),
            record=Record.parse(get("record_json")),
            requester=get("requester"),
            explicit_label=get("explicit_label"),
            explicit_omitted=bool(get("explicit_omitted")),
            omit_reason=get("omit_reason"),
            created_at=created,
        )

    def to_dict(self) -> dict:
        return {
            "produce_id": self.produce_id,
            "record": self.record.as_dict(),
            "content_sha256": self.content_sha256,
            "media_type": self.media_type,
            "producer": self.producer,
            "requester": self.requester,
            "explicit_label": self.explicit_label,
            "explicit_omitted": self.explicit_omitted,
            "omit_reason": self.omit_reason,
            "watermark_key": self.watermark_key,
            "created_at": self.created_at.isoformat(),
        }


def label_row(
    record: Record,
    content: bytes,
    media_type: str,
    requester: str,
    explicit_label: str,
    omit_reason: str | None = None,
    mark_key: int | None = None,
) -> Row:
    """The ledger row of one issued label.

    ``mark_key`` is the key the file's watermark carries when it is not this
    record's own: relabelling keeps the mark an earlier label embedded.
    """
    key = watermark_key(record.produce_id) if mark_key is None else mark_key
    return LABELS, {
        "produce_id": record.produce_id,
        "watermark_key": f"{key:016x}",
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "media_type": media_type,
        "producer": record.content_producer,
        "record_json": record.dumps(wrapped=False),
        "requester": requester,
        "explicit_label": explicit_label,
        "explicit_omitted": explicit_label == "none",
        "omit_reason": omit_reason,
        "created_at": datetime.now(UTC),
    }


def propagation_row(
    record: Record, content: bytes, media_type: str, classification: str, requester: str
) -> Row:
    """The ledger row of one platform write-back."""
    return PROPAGATIONS, {
        "propagate_id": record.propagate_id,
        "platform": record.content_propagator,
        "produce_id": record.produce_id or None,
        "classification": classification,
        "record_json": record.dumps(wrapped=False),
        "content_sha256": hashlib.sha256(content).hexdigest(),
        "media_type": media_type,
        "requester": requester,
        "created_at": datetime.now(UTC),
    }


class LedgerWrites:
    """The two writes every ledger offers, built on its own ``_store(row)``.

    The SQLAlchemy ledger (app/ledger.py) stores through its group-commit
    writer, the one-shot sqlite3 ledger (app/sqlite_ledger.py) in its own
    transaction; both raise DuplicateProduceID for a key already issued.
    """

    def _store(self, row: Row) -> None:
        raise NotImplementedError

    def record_label(
        self,
        record: Record,
        content: bytes,
        media_type: str,
        requester: str,
        explicit_label: str,
        omit_reason: str | None = None,
        mark_key: int | None = None,
    ) -> None:
        """Insert one issued label; DuplicateProduceID if the ID exists.

        ``mark_key``: the key the file's watermark carries, when not the record's own.
        """
        self._store(
            label_row(record, content, media_type, requester, explicit_label, omit_reason, mark_key)
        )

    def record_propagation(
        self,
        record: Record,
        content: bytes,
        media_type: str,
        classification: str,
        requester: str,
    ) -> None:
        """Insert one platform write-back; DuplicateProduceID if the PropagateID exists."""
        self._store(propagation_row(record, content, media_type, classification, requester))


def head_revisions() -> frozenset[str]:
    """The schema's head revision(s), read from the migration files without Alembic.

    Each revision file assigns ``revision`` and ``down_revision`` at module
    level (Alembic's own convention); the heads are the revisions nothing
    names as its parent. Parsing our own few small files costs a millisecond;
    importing Alembic to ask it costs a one-shot CLI run most of its time.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        values: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and node.value is not None:
                        with contextlib.suppress(ValueError):
                            values[target.id] = ast.literal_eval(node.value)
        if isinstance(values.get("revision"), str):
            revisions.add(values["revision"])
            down = values.get("down_revision")
            parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents)


def sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:///PATH[?options]`` URL names; None for any other URL and for
    an in-memory database (``sqlite://``, ``sqlite:///:memory:``)."""
    if not url.startswith("sqlite:///"):
        return None
    name = url.removeprefix("sqlite:///").partition("?")[0]
    return Path(name) if name not in ("", ":memory:") else None


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it owner-only (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def private_file(path: Path) -> None:
    """Create ``path`` if missing, owner-only (0600), without a window where it is wider."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    path.chmod(0o600)


def private_sqlite_files(path: Path) -> None:
    """The ledger file and its -wal/-shm companions: owner only."""
    for companion in path.parent.glob(path.name + "*"):
        companion.chmod(0o600)
