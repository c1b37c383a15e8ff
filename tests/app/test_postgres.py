"""The ledger on a real PostgreSQL server (AIGC_DATABASE_URL), not only SQLite.

Starts a throwaway cluster on a free loopback port (as the ``postgres`` user
when run as root: the server refuses to run as root), migrates it with
Alembic through the app, and labels concurrently from two worker processes.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.served import free_port, serve
from tests.support import KEYS

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
pytestmark = pytest.mark.skipif(
    not BIN and not os.environ.get("CI"), reason="PostgreSQL server binaries not installed"
)


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = Path(BIN[-1])
    root = Path(tempfile.mkdtemp(prefix="aigc-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(root / "log"),
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            _as_postgres([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "aigc"]),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/aigc"
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_on_postgres_issue_distinct_ids_all_in_the_ledger(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {
        "AIGC_DATA_DIR": str(tmp_path),
        "AIGC_DATABASE_URL": postgres_url,
        "AIGC_API_KEYS": json.dumps(KEYS),
    }
    with serve(env, workers=2) as base:
        import httpx

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                sem = asyncio.Semaphore(50)

                async def one(i: int) -> httpx.Response:
                    async with sem:
                        return await client.post(
                            "/v1/label/text",
                            json={"text": f"第{i}段。"},
                            headers={"Authorization": "Bearer gen-key"},
                        )

                return await asyncio.gather(*(one(i) for i in range(300)))

        responses = asyncio.run(fire())
        assert {r.status_code for r in responses} == {200}
        ids = {r.json()["produce_id"] for r in responses}
        entry = httpx.get(
            f"{base}/v1/records/{next(iter(ids))}", headers={"Authorization": "Bearer gen-key"}
        )
        assert entry.status_code == 200
    assert len(ids) == 300
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(text("SELECT produce_id FROM labels"))}
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert ids <= stored
    assert version is not None
