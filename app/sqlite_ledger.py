"""The ledger on the standard library's ``sqlite3``, for one-shot command-line runs.

A script that calls ``aigc-label label`` once per file pays the start-up of
every call, and importing SQLAlchemy was most of it (about 0.4 s of a 0.5 s
metadata-only label). For the default SQLite file the command line therefore
writes and reads the ledger through ``sqlite3`` directly: the same tables
(created by Alembic, app/migrations), the same rows (app/ledger_rows.py builds
them for both writers), the same connection pragmas, the same answers
(DuplicateProduceID for an ID already issued). The service, PostgreSQL and
any other URL keep app/ledger.py; so does a schema that is not at head, which
Alembic migrates first (importing it only then). tests/app/test_sqlite_ledger.py
holds the two writers to each other and to the Alembic head.

Every insert is its own committed transaction before it returns, so the batch
engine's order holds: the ledger row is durable before the output is renamed
into place.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from app.ledger_rows import (
    KEYS,
    SQLITE_PRAGMAS,
    DuplicateProduceID,
    LedgerEntry,
    LedgerWrites,
    Row,
    head_revisions,
    private_dir,
    private_file,
    private_sqlite_files,
    sqlite_file,
)

#: how SQLAlchemy's SQLite dialect stores a DateTime: the fields of the value as
#: given (always UTC here), microseconds always written, the zone dropped
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _sql(value: Any) -> Any:
    """A row value as SQLAlchemy's SQLite types store it."""
    if isinstance(value, datetime):
        return value.strftime(DATETIME_FORMAT)
    if isinstance(value, bool):
        return int(value)
    return value


class SqliteLedger(LedgerWrites):
    """The ledger API the batch engine uses (app.ledger.Ledger's), on ``sqlite3``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._inherited: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:
            # a forked child must not use (nor close) its parent's handle: keep it unused
            self._inherited.append(self._conn)
        # autocommit mode: each transaction below is opened and committed explicitly
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    # ------------------------------------------------------------ writing
    def insert_many(self, rows: list[Row]) -> list[Exception | None]:
        """Insert ``rows`` in one transaction; per row, None or why it failed."""
        try:
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for table, values in rows:
                        if table not in KEYS:
                            raise ValueError(f"no ledger table {table!r}")
                        columns = ", ".join(values)
                        marks = ", ".join("?" * len(values))
                        conn.execute(
                            f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                            [_sql(v) for v in values.values()],
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.IntegrityError:
            if len(rows) > 1:
                return [outcome for row in rows for outcome in self.insert_many([row])]
            table, values = rows[0]
            return [DuplicateProduceID(values[KEYS[table]])]
        except Exception as exc:  # the database is unusable: every row hears it
            return [exc] * len(rows)
        return [None] * len(rows)

    def _store(self, row: Row) -> None:
        (failure,) = self.insert_many([row])
        if failure is not None:
            raise failure

    # ------------------------------------------------------------ reading
    def get(self, produce_id: str) -> LedgerEntry | None:
        rows = self._query("SELECT * FROM labels WHERE produce_id = ?", (produce_id,))
        return LedgerEntry.from_row(rows[0]) if rows else None

    def find_by_watermark(self, key: int) -> LedgerEntry | None:
        rows = self._query(
            # a relabel shares the mark: the first issuer
            "SELECT * FROM labels WHERE watermark_key = ? ORDER BY created_at LIMIT 1",
            (f"{key:016x}",),
        )
        return LedgerEntry.from_row(rows[0]) if rows else None

    def find_by_content(self, content_sha256: str, producer: str) -> str | None:
        """The ProduceID of a label ``producer`` issued for exactly these bytes."""
        rows = self._query(
            "SELECT produce_id FROM labels WHERE content_sha256 = ? AND producer = ? LIMIT 1",
            (content_sha256, producer),
        )
        return rows[0][0] if rows else None

    def propagators(self, produce_id: str) -> set[str]:
        """The platform codes that propagated the label ``produce_id``."""
        rows = self._query("SELECT platform FROM propagations WHERE produce_id = ?", (produce_id,))
        return {row[0] for row in rows}

    def ping(self) -> None:
        self._query("SELECT 1")

    def at_head(self) -> bool:
        """Whether the file records every head revision (nothing to migrate)."""
        try:
            rows = self._query("SELECT version_num FROM alembic_version")
        except sqlite3.OperationalError:  # no alembic_version table yet: a new database
            return False
        return {row[0] for row in rows} == head_revisions()

    def close(self) -> None:
        """Close this process's connection (before a fork: it must not cross it)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def open_oneshot_ledger(url: str, data_dir: Path) -> Any:
    """The ledger for a command-line run: ``sqlite3`` for a plain SQLite file URL,
    app.ledger's SQLAlchemy ledger for anything else (PostgreSQL, URL options)."""
    path = sqlite_file(url)
    if path is None or "?" in url:  # URL options: SQLAlchemy knows what they mean
        from app.ledger import open_ledger

        return open_ledger(url, data_dir)
    private_dir(path.parent)
    # owner only from the first byte, and its -wal/-shm files too (as open_ledger)
    private_file(path)
    ledger = SqliteLedger(path)
    if not ledger.at_head():  # a new or stale schema: Alembic (and SQLAlchemy) only now
        ledger.close()
        from app.ledger import migrate

        migrate(url, data_dir)
    private_sqlite_files(path)
    return ledger
