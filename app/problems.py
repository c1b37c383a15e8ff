"""RFC 9457 problem responses: every error the API returns has this shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.settings import explained, limit_setting
from labelers import errors

PROBLEM_BASE = "https://aigc-label.dev/problems/"

# library error kind -> HTTP status
STATUS = {
    errors.UnsupportedMedia: 415,
    errors.CorruptInput: 422,
    errors.LimitExceeded: 413,
    errors.InvalidRecord: 422,
    errors.InvalidWording: 422,
    errors.InvalidOption: 422,
    errors.EncryptedInput: 422,
    errors.SigningError: 500,
    errors.ServiceBusy: 503,
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    408: "Request Timeout",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ProblemDetails(BaseModel):
    """The RFC 9457 body of every error response."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the kind of problem, under " + PROBLEM_BASE)
    title: str
    status: int
    detail: str = Field(description="what was wrong with this request, for a person")
    limit: str | None = Field(
        default=None, description="413 over an input limit: the setting that raises it"
    )
    limit_value: float | None = Field(default=None, description="413: that setting's value")
    amount: float | None = Field(
        default=None, description="413: what this input measured against the limit"
    )


_WHEN = {
    400: "the request body is not valid JSON, or is empty",
    401: "no API key, or an unknown one",
    403: "the API key lacks the permission this needs",
    404: "no such resource (or not one this API key may read)",
    408: "the request body did not arrive in time (AIGC_BODY_READ_TIMEOUT_SECONDS)",
    409: "the ProduceID or PropagateID was already issued",
    413: "a size, pixel, page or other input limit was exceeded",
    415: "the file is not a supported media type",
    422: "the input is corrupt or a field is invalid",
    503: "the service is busy (decode capacity) or the ledger is unreachable: retry",
}

#: one error table every route documents (FastAPI(responses=...) applies it to all)
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": f"{_TITLES[status]}: {when}",
        "content": {"application/problem+json": {"schema": ProblemDetails.model_json_schema()}},
    }
    for status, when in _WHEN.items()
}


class Problem(Exception):
    """Raised in app/ code for an HTTP problem that is not a library error."""

    def __init__(
        self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.headers = status, kind, detail, headers


def problem_response(
    status: int, kind: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    if status in (408, 413, 503):
        from app.ops import REJECTED  # late: ops imports the imaging stack

        REJECTED.labels(str(status), kind).inc()
    body = {
        "type": PROBLEM_BASE + kind,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.kind, exc.detail, exc.headers)

    @app.exception_handler(errors.AigcError)
    async def _library(_: Request, exc: errors.AigcError) -> JSONResponse:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 422)
        headers = None
        if isinstance(exc, errors.ServiceBusy):
            headers = {"Retry-After": str(exc.retry_after)}
        extra: dict[str, Any] = {}
        if isinstance(exc, errors.LimitExceeded) and exc.limit:
            # which setting to raise, its value, and what this input measured
            extra = {"limit": limit_setting(exc.limit), "limit_value": exc.value}
            if exc.amount is not None:
                extra["amount"] = exc.amount
        return problem_response(status, exc.kind, explained(exc), headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return problem_response(
            422,
            "invalid-request",
            "; ".join(parts) or "invalid request",
            errors=jsonable_encoder(exc.errors()),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            exc.status_code,
            getattr(exc, "kind", "http-error"),
            str(exc.detail),
            getattr(exc, "headers", None),
        )
