"""Operations: Prometheus metrics, request ids, JSON logs, readiness.

Metrics live in prometheus-client's default registry. With several uvicorn
workers, ``aigc-label serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers import this module, so every process writes its samples to files
there and ``/metrics`` (answered by any worker) adds them all up.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import re
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelers.imaging import DECODE_GATE

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUESTS = Counter(
    "aigc_requests_total",
    "HTTP requests answered",
    ["endpoint", "method", "status", "media_type"],
)
LATENCY = Histogram(
    "aigc_request_seconds",
    "time from the request's first byte to the end of its response",
    ["endpoint", "media_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLASSIFICATIONS = Counter(
    "aigc_classifications_total",
    "verify/propagate classifications (confirmed, possible, suspected, none)",
    ["endpoint", "classification"],
)
REJECTED = Counter(
    "aigc_rejected_total",
    "requests refused by a limit (413), a timeout (408) or a full decode gate (503)",
    ["status", "kind"],
)
DECODES = Gauge(
    "aigc_decodes_in_flight",
    "image decodes running now",
    multiprocess_mode="livesum",
)
DECODE_BYTES = Gauge(
    "aigc_decode_bytes_held",
    "estimated bytes of decoded pixels held now",
    multiprocess_mode="livesum",
)


def _gate_changed(decoding: int, held_bytes: int) -> None:
    DECODES.set(decoding)
    DECODE_BYTES.set(held_bytes)


DECODE_GATE.on_change = _gate_changed


def metrics_body() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: methods counted by name; any other token a client sends is counted as "other", so
#: requests cannot mint new metric series (each one held in memory for good)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: the metric children of each label set met so far (a bounded set: routes, known
#: methods, statuses, our media types); ``labels()`` takes a lock and builds a key each call
_SERIES: dict[tuple[str, str, int, str], tuple[Any, Any]] = {}


def _count(endpoint: str, method: str, status: int, media_type: str, seconds: float) -> None:
    key = (endpoint, method if method in _METHODS else "other", status, media_type)
    series = _SERIES.get(key)
    if series is None:
        series = (
            REQUESTS.labels(key[0], key[1], str(status), media_type),
            LATENCY.labels(endpoint, media_type),
        )
        _SERIES[key] = series
    series[0].inc()
    series[1].observe(seconds)


class OpsMiddleware:
    """Request id (``X-Request-ID`` in and out), request metrics and one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger("aigc.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers") or () if k == b"x-request-id"), b"")
        given = given.decode("latin-1")
        # a request id needs uniqueness, not secrecy: random's generator, not
        # uuid4's os.urandom syscall on every request
        request_id = given if _REQUEST_ID_OK.fullmatch(given) else f"{random.getrandbits(128):032x}"
        token = REQUEST_ID.set(request_id)
        start = time.perf_counter()
        status, response_type = 500, ""

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_type
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                for name, value in headers:
                    if name.lower() == b"content-type":
                        response_type = value.decode("latin-1").split(";")[0].strip()
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            state: dict[str, Any] = scope.get("state") or {}
            media_type = state.get("media_type") or response_type or "none"
            _count(endpoint, scope["method"], status, media_type, elapsed)
            if self.log.isEnabledFor(logging.INFO):
                self.log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "endpoint": endpoint,
                        "status": status,
                        "media_type": media_type,
                        "seconds": round(elapsed, 4),
                    },
                )
            REQUEST_ID.reset(token)


_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in out:
                out[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def log_config(level: str) -> dict[str, Any]:
    """``logging.config`` dict (also given to uvicorn) that writes JSON lines to stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.ops.JsonFormatter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.access": {"level": "WARNING"},  # OpsMiddleware logs each request
        },
    }
