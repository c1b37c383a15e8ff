"""Request-size limit, enforced while the body streams in (before parsing).

A declared Content-Length over the limit is refused at once; a chunked body is
counted as it arrives and cut off when it passes the limit.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.problems import problem_response


class BodyTooLarge(HTTPException):
    """Raised from receive(): FastAPI re-raises HTTPExceptions met while parsing."""

    kind = "limit-exceeded"


class BodyTimeout(HTTPException):
    """The body did not arrive within the read timeout (a slow or stalled client)."""

    kind = "body-timeout"


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, json_limit: int, upload_limit: int, read_timeout: float = 30.0
    ) -> None:
        self.app, self.json_limit, self.read_timeout = app, json_limit, read_timeout
        # multipart framing adds a little to the file itself
        self.upload_limit = upload_limit + 64 * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").decode("latin-1").lower()
        multipart = ctype.startswith("multipart/")
        limit = self.upload_limit if multipart else self.json_limit
        what = "upload" if multipart else "request body"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, what, limit)
            return

        seen = 0
        response_started = False
        deadline: float | None = None  # the whole body must arrive within read_timeout
        body_done = False

        async def limited_receive() -> Message:
            nonlocal seen, deadline, body_done
            if body_done:  # after the body, receive() only waits for a disconnect
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.read_timeout
            try:
                # asyncio.timeout, not wait_for: wait_for wraps every receive() in a
                # new task, a cost paid by each request although bodies rarely stall
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(
                    408,
                    f"the request body did not arrive within {self.read_timeout:g} s "
                    "(AIGC_BODY_READ_TIMEOUT_SECONDS)",
                ) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(413, _detail(what, limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:  # raised outside FastAPI's handlers (e.g. form parsing)
            if not response_started:
                await self._refuse(scope, receive, send, what, limit)
        except BodyTimeout as exc:
            if not response_started:
                response = problem_response(408, exc.kind, str(exc.detail), {"Connection": "close"})
                await response(scope, receive, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, what: str, limit: int
    ) -> None:
        response = problem_response(413, "limit-exceeded", _detail(what, limit))
        await response(scope, receive, send)


def _detail(what: str, limit: int) -> str:
    setting = "AIGC_MAX_UPLOAD_BYTES" if what == "upload" else "AIGC_MAX_JSON_BYTES"
    return f"{what} larger than {limit} bytes (limit set by {setting})"
