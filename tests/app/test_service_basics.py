"""Service surface: health, auth, problem responses, body limits, ledger reads."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from app.auth import DEV_PRODUCER
from app.main import create_app
from app.settings import Settings
from labelers.record import provider_code_problems
from tests.support import auth


def test_healthz_answers_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/label/text" in spec["paths"] and "/v1/verify" in spec["paths"]


def _is_problem(resp, status: int, *words: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["type"] and body["title"]
    for word in words:
        assert word.lower() in body["detail"].lower(), body["detail"]
    return body


def test_missing_key_is_401_problem(client: TestClient) -> None:
    resp = client.post("/v1/label/text", json={"text": "hi"})
    _is_problem(resp, 401, "missing API key")
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_wrong_key_is_401_problem(client: TestClient) -> None:
    _is_problem(
        client.post("/v1/label/text", json={"text": "hi"}, headers=auth("nope")),
        401,
        "unknown API key",
    )


def test_key_without_permission_is_403_problem(client: TestClient) -> None:
    resp = client.post("/v1/label/text", json={"text": "hi"}, headers=auth("verify-key"))
    _is_problem(resp, 403, "'label' permission")


def test_malformed_json_is_4xx_problem_naming_json(client: TestClient) -> None:
    resp = client.post(
        "/v1/label/text",
        content=b'{"text": "unterminated',
        headers={**auth(), "content-type": "application/json"},
    )
    assert resp.status_code in (400, 422)
    _is_problem(resp, resp.status_code, "json")
    resp = client.post(
        "/v1/verify", content=b"{nope", headers={**auth(), "content-type": "application/json"}
    )
    _is_problem(resp, 400, "json")


def test_missing_field_and_unknown_field_are_named(client: TestClient) -> None:
    _is_problem(client.post("/v1/label/text", json={}, headers=auth()), 422, "text")
    _is_problem(
        client.post("/v1/label/text", json={"text": "x", "explict": "end"}, headers=auth()),
        422,
        "explict",
    )


def test_oversized_body_is_413_problem(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        max_json_bytes=1000,
        api_keys=json.dumps({"keys": [{"key": "k", "producer": DEV_PRODUCER}]}),
    )
    with TestClient(create_app(settings)) as c:
        resp = c.post("/v1/label/text", json={"text": "x" * 5000}, headers=auth("k"))
        _is_problem(resp, 413, "AIGC_MAX_JSON_BYTES")

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b" " * 500

        resp = c.post(
            "/v1/label/text",
            content=chunks(),
            headers={**auth("k"), "content-type": "application/json"},
        )
        _is_problem(resp, 413, "larger than 1000 bytes")


def test_unknown_record_is_404_problem(client: TestClient) -> None:
    _is_problem(client.get("/v1/records/NOPE", headers=auth()), 404, "NOPE")


def test_development_mode_generates_key_once_with_test_producer(tmp_path: Path, capsys) -> None:
    settings = Settings(data_dir=tmp_path)
    create_app(settings)
    printed = capsys.readouterr().out
    key = (tmp_path / "dev-api-key").read_text().strip()
    assert key in printed and "DEVELOPMENT MODE" in printed
    assert (tmp_path / "dev-api-key").stat().st_mode & 0o077 == 0
    assert "TESTONLY" in DEV_PRODUCER and not provider_code_problems(DEV_PRODUCER)

    with TestClient(create_app(settings)) as c:  # second start: same key, not printed
        assert key not in capsys.readouterr().out
        resp = c.post("/v1/label/text", json={"text": "你好"}, headers=auth(key))
        assert resp.status_code == 200
        assert resp.json()["record"]["ContentProducer"] == DEV_PRODUCER


def test_bad_key_file_stops_start_with_clear_message(tmp_path: Path) -> None:
    import pytest

    from app.auth import AuthConfigError

    bad = {"keys": [{"key": "k", "producer": "ACME", "permissions": ["label"]}]}
    with pytest.raises(AuthConfigError, match="27 digits"):
        create_app(Settings(data_dir=tmp_path, api_keys=json.dumps(bad)))
