"""Service-side defences from issue 11: record scoping, private data files, the decode
gate's 503, the body read timeout, readiness, metrics and the documented error responses."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import threading

from PIL import Image

from app.main import create_app
from app.settings import Settings
from labelers.imaging import DECODE_GATE
from tests.support import KEYS, PLATFORM, PRODUCER, auth

OTHER_PRODUCER = "0011911100007109120X0010002"
OTHER_PLATFORM = "0011911100007109120X0020002"
SCOPED_KEYS = {
    "keys": [
        *KEYS["keys"],
        {
            "name": "other-generator",
            "key": "other-gen-key",
            "producer": OTHER_PRODUCER,
            "permissions": ["label", "read_records"],
        },
        {
            "name": "other-platform",
            "key": "other-platform-key",
            "platform": OTHER_PLATFORM,
            "permissions": ["verify", "propagate", "read_records"],
        },
        {"name": "auditor", "key": "audit-key", "permissions": ["read_all_records"]},
    ]
}


def _client(tmp_path, **settings):
    from fastapi.testclient import TestClient

    s = Settings(data_dir=tmp_path / "var", api_keys=json.dumps(SCOPED_KEYS), **settings)
    return TestClient(create_app(s), raise_server_exceptions=False)


def test_a_record_is_readable_by_its_producer_its_propagators_and_auditors_only(tmp_path):
    with _client(tmp_path) as client:
        md = b"---\ntitle: t\n---\n# Title\n\nSome generated prose.\n"
        options = {"watermark": "false", "c2pa": "false"}
        labelled = client.post(
            "/v1/label", files={"file": ("a.md", md)}, data=options, headers=auth()
        )
        assert labelled.status_code == 200, labelled.text
        produce_id = labelled.headers["AIGC-Produce-ID"]
        url = f"/v1/records/{produce_id}"
        assert client.get(url, headers=auth("gen-key")).status_code == 200
        assert client.get(url, headers=auth("audit-key")).status_code == 200
        for outsider in ("other-gen-key", "platform-key", "other-platform-key"):
            resp = client.get(url, headers=auth(outsider))
            assert resp.status_code == 404, outsider  # as if absent: existence is not leaked
            assert resp.headers["content-type"] == "application/problem+json"
        files = {"file": ("a.md", labelled.content)}
        resp = client.post("/v1/propagate", files=files, headers=auth("platform-key"))
        assert resp.status_code == 200, resp.text
        assert client.get(url, headers=auth("platform-key")).json()["producer"] == PRODUCER
        assert client.get(url, headers=auth("other-platform-key")).status_code == 404
        assert PLATFORM != OTHER_PLATFORM


def test_data_directory_and_ledger_are_owner_only(tmp_path):
    with _client(tmp_path):
        pass
    var = tmp_path / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    files = [p for p in var.iterdir() if p.is_file()]
    assert any(p.name == "ledger.sqlite3" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def _photo_png(side: int = 400) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((side, side), 60).convert("RGB").save(out, "PNG")
    return out.getvalue()


def test_a_full_decode_gate_answers_503_with_retry_after(tmp_path):
    with _client(tmp_path, max_concurrent_decodes=1, decode_wait_seconds=0.05) as client:
        ticket = DECODE_GATE.admit(1)  # someone else is decoding
        try:
            files = {"file": ("a.png", _photo_png(), "image/png")}
            resp = client.post("/v1/label", files=files, headers=auth())
        finally:
            ticket.__exit__(None, None, None)
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"] == "1"
        assert resp.json()["type"].endswith("/busy")
        metrics = client.get("/metrics").text
        assert 'aigc_rejected_total{kind="busy",status="503"}' in metrics
        # once the gate is free the same upload goes through
        assert client.post("/v1/label", files=files, headers=auth()).status_code == 200
    DECODE_GATE.configure(2, 1 << 30, 5.0)


def test_a_body_that_stalls_is_answered_408(tmp_path):
    s = Settings(data_dir=tmp_path / "var", api_keys=json.dumps(SCOPED_KEYS))
    s.body_read_timeout_seconds = 0.2
    app = create_app(s)
    sent: list[dict] = []
    stalled = threading.Event()

    async def scenario() -> None:
        async def receive():
            if not stalled.is_set():
                stalled.set()
                return {"type": "http.request", "body": b'{"text": "par', "more_body": True}
            await asyncio.sleep(30)  # the client never sends the rest

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "path": "/v1/verify",
            "raw_path": b"/v1/verify",
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"authorization", b"Bearer gen-key"),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "scheme": "http",
            "root_path": "",
        }
        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(scenario())
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"AIGC_BODY_READ_TIMEOUT_SECONDS" in body


def test_readiness_checks_the_ledger(tmp_path):
    with _client(tmp_path) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        client.app.state.aigc.ledger.engine.dispose()
        (tmp_path / "var" / "ledger.sqlite3").unlink()
        (tmp_path / "var" / "ledger.sqlite3").mkdir()  # the database file is gone
        resp = client.get("/readyz")
        assert resp.status_code == 503
        assert resp.headers["content-type"] == "application/problem+json"


def test_metrics_count_requests_per_endpoint_and_media_type(tmp_path):
    with _client(tmp_path) as client:
        files = {"file": ("a.png", _photo_png(), "image/png")}
        resp = client.post("/v1/verify", files=files, headers=auth())
        assert resp.status_code == 200
        assert resp.headers["x-request-id"]
        text = client.get("/metrics").text
    assert (
        'aigc_requests_total{endpoint="/v1/verify",media_type="image/png",method="POST",'
        'status="200"}' in text
    )
    assert 'aigc_request_seconds_bucket{endpoint="/v1/verify",le="5.0",media_type="image/png"}' in (
        text
    )
    assert 'aigc_classifications_total{classification="none",endpoint="/v1/verify"}' in text
    assert "aigc_decodes_in_flight" in text


def test_made_up_methods_do_not_mint_metric_series(tmp_path):
    with _client(tmp_path) as client:
        for i in range(5):
            client.request(f"BREW{i}", "/healthz")
        text = client.get("/metrics").text
    assert "BREW" not in text  # one series for every unknown method, not one each
    assert 'endpoint="/healthz",media_type="application/problem+json",method="other"' in text


def test_every_route_documents_its_problem_responses(tmp_path):
    with _client(tmp_path) as client:
        spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for status in ("400", "401", "403", "404", "413", "415", "422", "503"):
                content = op["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (path, method, status)
                assert "detail" in content["application/problem+json"]["schema"]["required"]
