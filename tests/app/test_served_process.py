"""The real thing: ``aigc-label serve`` in a subprocess, spoken to over HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.served import serve
from tests.support import KEYS, auth


def test_serve_subprocess_labels_and_verifies_text(tmp_path: Path) -> None:
    env = {"AIGC_DATA_DIR": str(tmp_path), "AIGC_API_KEYS": json.dumps(KEYS)}
    with serve(env) as base:
        resp = httpx.post(
            base + "/v1/label/text", json={"text": "床前明月光，疑是地上霜。"}, headers=auth()
        )
        assert resp.status_code == 200, resp.text
        labelled = resp.json()
        report = httpx.post(
            base + "/v1/verify", json={"text": labelled["text"]}, headers=auth()
        ).json()
        assert report["classification"] == "confirmed"
        assert report["record"] == labelled["record"]


async def _raw_post(host: str, port: int, path: str, body: bytes, key: str) -> tuple[int, bytes]:
    """One HTTP/1.1 request on its own connection (httpx queues thousands badly)."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 120)
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_1000_concurrent_labels_on_two_workers_get_distinct_ids_all_in_ledger(
    tmp_path: Path,
) -> None:
    env = {"AIGC_DATA_DIR": str(tmp_path), "AIGC_API_KEYS": json.dumps(KEYS)}
    with serve(env, workers=2) as base:
        host, port = base.removeprefix("http://").split(":")

        async def fire() -> list[tuple[int, bytes]]:
            bodies = [json.dumps({"text": f"第{i}段生成文本。"}).encode() for i in range(1000)]
            return await asyncio.gather(
                *(_raw_post(host, int(port), "/v1/label/text", b, "gen-key") for b in bodies)
            )

        responses = asyncio.run(fire())
    assert [status for status, _ in responses] == [200] * 1000
    ids = {json.loads(body)["produce_id"] for _, body in responses}
    assert len(ids) == 1000
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    with engine.connect() as conn:
        stored = {row[0] for row in conn.execute(text("SELECT produce_id FROM labels"))}
    assert stored == ids
