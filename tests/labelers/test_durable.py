"""The one atomic-write helper and the one create-once helper (labelers.durable)."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from labelers import durable


def test_write_atomically_leaves_the_bytes_and_no_temporary_file(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "key.pem"
    durable.write_atomically(dest, b"first", 0o600)
    durable.write_atomically(dest, b"second", 0o600)
    assert dest.read_bytes() == b"second"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sorted(p.name for p in dest.parent.iterdir()) == ["key.pem"]


def test_a_staged_file_is_invisible_until_committed(tmp_path: Path) -> None:
    dest = tmp_path / "labelled.jpg"
    dest.write_bytes(b"old")
    tmp = durable.stage(dest, b"new", 0o644, suffix=".aigc-partial")
    assert dest.read_bytes() == b"old" and Path(tmp).name.startswith(".labelled.jpg.")
    durable.commit(tmp, dest)
    assert dest.read_bytes() == b"new" and not Path(tmp).exists()


def _create(path: str, queue: multiprocessing.Queue) -> None:
    data, created = durable.create_once(path, lambda: f"made by {os.getpid()}".encode())
    queue.put((data, created))


def test_create_once_makes_the_file_once_when_processes_race(tmp_path: Path) -> None:
    path = str(tmp_path / "dev-api-key")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_create, args=(path, queue)) for _ in range(4)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert sum(created for _, created in results) == 1
    assert {data for data, _ in results} == {Path(path).read_bytes()}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_existing_file_is_read_without_taking_the_lock(tmp_path: Path) -> None:
    """So a read-only data directory that already holds its keys still works."""
    path = tmp_path / "key.pem"
    path.write_bytes(b"existing")
    assert durable.create_once(path, lambda: b"new") == (b"existing", False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]  # no lock file made
