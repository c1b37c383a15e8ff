"""The one-shot ledger writer (stdlib sqlite3) against the SQLAlchemy ledger and Alembic.

The command line writes the default SQLite ledger through app/sqlite_ledger.py;
the service reads and writes it through app/ledger.py. These tests hold the two
to one schema (Alembic's head), one row layout and one set of answers, so
neither can drift from the other unnoticed.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.ledger import Base, Ledger, open_ledger, schema_at_head
from app.ledger_rows import (
    LABELS,
    PROPAGATIONS,
    DuplicateProduceID,
    head_revisions,
    label_row,
    propagation_row,
)
from app.sqlite_ledger import SqliteLedger, open_oneshot_ledger
from labelers.record import Record

PRODUCER = "001100000000TESTONLY0010000"
PLATFORM = "001100000000TESTONLY0020000"


def record(produce_id: str) -> Record:
    return Record.first_write(PRODUCER, produce_id)


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def both(tmp_path: Path) -> tuple[Ledger, SqliteLedger, Path]:
    """One Alembic-migrated file, opened by both writers."""
    path = tmp_path / "ledger.sqlite3"
    alchemy = open_ledger(url_of(path), tmp_path)
    return alchemy, SqliteLedger(path), path


def raw_rows(path: Path, table: str) -> list[tuple]:
    """Each row's values with the type SQLite stored them as."""
    conn = sqlite3.connect(path)
    columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
    typed = ", ".join(f"{c}, typeof({c})" for c in columns)
    rows = conn.execute(f"SELECT {typed} FROM {table} ORDER BY rowid").fetchall()
    conn.close()
    return rows


def test_rows_fill_exactly_the_columns_of_the_model_and_of_alembic_head(tmp_path: Path) -> None:
    _, _, path = both(tmp_path)
    conn = sqlite3.connect(path)
    rows = {
        LABELS: label_row(record("01JAAAAAAAAAAAAAAAAAAAAAAA"), b"x", "image/jpeg", "me", "on"),
        PROPAGATIONS: propagation_row(
            record("01JAAAAAAAAAAAAAAAAAAAAAAA"), b"x", "image/jpeg", "confirmed", "me"
        ),
    }
    for table, (name, values) in rows.items():
        assert name == table
        migrated = {c[1]: (c[3], c[5]) for c in conn.execute(f"PRAGMA table_info({table})")}
        model = Base.metadata.tables[table]
        assert set(values) == set(migrated) == {c.name for c in model.columns}
        for column in model.columns:  # the same NOT NULL and primary key
            assert migrated[column.name] == (int(not column.nullable), int(column.primary_key))
    conn.close()


def test_both_writers_store_identical_values(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # microsecond 0: still written
    stored = []
    for name, make in (("alchemy", open_ledger), ("sqlite3", open_oneshot_ledger)):
        path = tmp_path / f"{name}.sqlite3"
        ledger = make(url_of(path), tmp_path)
        table, values = label_row(
            record("01JBBBBBBBBBBBBBBBBBBBBBBB"), b"y", "image/png", "me", "none", "agreed"
        )
        values["created_at"] = when
        _, prop = propagation_row(
            record("01JBBBBBBBBBBBBBBBBBBBBBBB"), b"y", "image/png", "possible", "me"
        )
        prop["created_at"] = when.replace(microsecond=123456)
        assert ledger.insert_many([(table, values), (PROPAGATIONS, prop)]) == [None, None]
        stored.append((raw_rows(path, LABELS), raw_rows(path, PROPAGATIONS)))
        ledger.close()
    assert stored[0] == stored[1]
    assert "2026-01-02 03:04:05.000000" in stored[0][0][0]


def test_each_reads_what_the_other_wrote(tmp_path: Path) -> None:
    alchemy, lite, _ = both(tmp_path)
    first, second = "01JCCCCCCCCCCCCCCCCCCCCCCC", "01JDDDDDDDDDDDDDDDDDDDDDDD"
    lite.record_label(record(first), b"by sqlite3", "image/jpeg", "cli", "none", "ok", 7)
    alchemy.record_label(record(second), b"by sqlalchemy", "text/plain", "svc", "on")
    for produce_id in (first, second):
        entry = alchemy.get(produce_id)
        assert entry is not None
        assert lite.get(produce_id) == entry
        assert entry.created_at.tzinfo is UTC
    assert alchemy.get(first).explicit_omitted is True
    assert lite.get(second).explicit_omitted is False
    assert lite.find_by_watermark(7) == alchemy.find_by_watermark(7) == alchemy.get(first)
    assert lite.find_by_watermark(8) is None
    digest = alchemy.get(second).content_sha256
    assert lite.find_by_content(digest, PRODUCER) == second
    assert lite.find_by_content(digest, PLATFORM) is None
    propagated = record(first).with_fields(
        content_propagator=PLATFORM, propagate_id="01JEEEEEEEEEEEEEEEEEEEEEEE"
    )
    lite.record_propagation(propagated, b"p", "image/jpeg", "confirmed", "cli")
    assert lite.propagators(first) == alchemy.propagators(first) == {PLATFORM}
    lite.ping()
    lite.close()
    alchemy.close()


def test_a_produce_id_issued_twice_is_refused_by_either_writer(tmp_path: Path) -> None:
    alchemy, lite, path = both(tmp_path)
    taken = "01JFFFFFFFFFFFFFFFFFFFFFFF"
    alchemy.record_label(record(taken), b"a", "image/jpeg", "svc", "on")
    with pytest.raises(DuplicateProduceID, match=taken):
        lite.record_label(record(taken), b"b", "image/jpeg", "cli", "on")
    # in a batch, only the duplicate fails; the others are stored
    fresh = label_row(record("01JGGGGGGGGGGGGGGGGGGGGGGG"), b"c", "image/jpeg", "cli", "on")
    dup = label_row(record(taken), b"d", "image/jpeg", "cli", "on")
    outcomes = lite.insert_many([fresh, dup])
    assert outcomes[0] is None and isinstance(outcomes[1], DuplicateProduceID)
    with pytest.raises(DuplicateProduceID):
        alchemy.record_label(record("01JGGGGGGGGGGGGGGGGGGGGGGG"), b"e", "image/jpeg", "svc", "on")
    assert len(raw_rows(path, LABELS)) == 2
    lite.close()
    alchemy.close()


def test_oneshot_migrates_a_new_or_stale_file_and_skips_alembic_at_head(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = open_oneshot_ledger(url_of(path), tmp_path)  # a new file: Alembic creates it
    assert isinstance(ledger, SqliteLedger) and ledger.at_head()
    ledger.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE propagations")  # as a database at 0001 is
    conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.commit()
    conn.close()
    assert not SqliteLedger(path).at_head()
    open_oneshot_ledger(url_of(path), tmp_path).close()  # stale: migrated again
    assert SqliteLedger(path).at_head()
    assert head_revisions() == {
        r[0] for r in sqlite3.connect(path).execute("SELECT version_num FROM alembic_version")
    }
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # at head, a fresh process writes a label without importing SQLAlchemy or Alembic
    code = f"""
import sys
from app.sqlite_ledger import open_oneshot_ledger
from labelers.record import Record
from pathlib import Path
ledger = open_oneshot_ledger({url_of(path)!r}, Path({str(tmp_path)!r}))
ledger.record_label(Record.first_write({PRODUCER!r}, "01JHHHHHHHHHHHHHHHHHHHHHHH"), b"z",
                    "image/jpeg", "cli", "on")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    engine = open_ledger(url_of(path), tmp_path)
    assert schema_at_head(engine.engine)
    assert engine.get("01JHHHHHHHHHHHHHHHHHHHHHHH") is not None
    engine.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_urls_other_than_a_plain_file_keep_sqlalchemy(tmp_path: Path, url: str) -> None:
    ledger = open_oneshot_ledger(url, tmp_path)
    assert isinstance(ledger, Ledger)
    ledger.close()
    assert not (Path.cwd() / ":memory:").exists()
