"""``aigc-label serve`` as a real process: graceful shutdown, JSON logs, metrics across workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.served import free_port
from tests.support import KEYS


def _start(tmp_path: Path, workers: int = 1) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "AIGC_DATA_DIR": str(tmp_path / "var"), "AIGC_API_KEYS": json.dumps(KEYS)}
    exe = Path(sys.executable).with_name("aigc-label")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port, log
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)


def test_sigterm_lets_an_in_flight_request_finish_and_logs_are_json(tmp_path):
    proc, port, log = _start(tmp_path)
    try:
        body = json.dumps({"text": "春眠不觉晓，处处闻啼鸟。"}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(
                b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gen-key\r\n"
                b"Content-Type: application/json\r\nX-Request-ID: shutdown-test-1\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body[:10]
            )
            time.sleep(0.5)  # the request is in flight: headers read, body incomplete
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert proc.poll() is None  # still draining, not killed
            conn.sendall(body[10:])
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"classification"' in answer
        # uvicorn re-raises the signal once it has drained: killed by SIGTERM, after the answer
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    ours = [r for r in lines if r.get("request_id") == "shutdown-test-1"]
    access = [r for r in ours if r["logger"] == "aigc.access"]
    assert access and access[0]["endpoint"] == "/v1/verify" and access[0]["status"] == 200


def test_metrics_add_up_across_two_workers(tmp_path):
    proc, port, _ = _start(tmp_path, workers=2)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(6):  # new connections: the kernel spreads them over the workers
            with httpx.Client() as client:
                client.get(base + "/healthz")
        text = httpx.get(base + "/metrics").text
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith('aigc_requests_total{endpoint="/healthz"')
        )
        assert float(line.rsplit(" ", 1)[1]) >= 6.0
    finally:
        proc.terminate()
        proc.wait(30)
