"""The moderators' page at ``/ui``: static assets, and the one preview route they need.

The page is plain HTML/CSS/JS shipped in ``static/`` (package data): nothing
is loaded from elsewhere and nothing is built at run time. It talks to the
public API (``/v1/verify``, ``/v1/label``, ``/v1/propagate``, ``/v1/records``)
with the key the moderator types in, exactly like any other client.

Every response here carries a strict Content-Security-Policy (scripts and
styles only from these files: no inline code, no other origin), set on these
responses only, not as a global middleware.

``POST /ui/preview`` draws what a browser cannot (a TIFF or HEIF image, page 1
of a PDF) as a PNG through ``labelers.preview``; it needs the ``verify``
permission and goes through the same upload limits as the API.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from app.problems import Problem
from labelers.preview import render_preview

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # previews are blob: URLs of the moderator's own files
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
#: the files the page is made of, and the media type each is served as
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def router(require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    """The ``/ui`` routes; ``require`` is the app's permission dependency factory."""
    ui = APIRouter(tags=["ui"])

    # the page is for browsers, not an API operation: kept out of the OpenAPI document
    @ui.get("/ui", response_class=Response, include_in_schema=False)
    def page() -> Response:
        return Response(
            _asset("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
        )

    @ui.get("/ui/static/{name}", response_class=Response, include_in_schema=False)
    def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise Problem(404, "not-found", f"no asset {name!r}")
        return Response(_asset(name), media_type=media_type, headers=SECURITY_HEADERS)

    @ui.post(
        "/ui/preview",
        response_class=Response,
        summary="PNG preview of an image as viewed, or of page 1 of a PDF",
        description="What the moderators' page cannot draw itself: a TIFF or HEIF image "
        "upright, or page 1 of a PDF, as a PNG. The upload limits of `/v1/verify` apply; "
        "`AIGC-Media-Type` and `AIGC-Source-Size` say what was drawn.",
        responses={200: {"content": {"image/png": {}}}},
        dependencies=[Depends(require("verify"))],
    )
    async def preview(
        request: Request,
        file: Annotated[UploadFile, File(description="the file to preview")],
    ) -> Response:
        data = await file.read()
        if not data:
            raise Problem(422, "corrupt-input", "the uploaded file is empty")
        limits = request.app.state.aigc.settings.limits
        shown = await run_in_threadpool(render_preview, data, limits)
        width, height = shown.source_size
        return Response(
            shown.png,
            media_type="image/png",
            headers={
                **SECURITY_HEADERS,
                "AIGC-Media-Type": shown.media_type,
                "AIGC-Source-Size": f"{width}x{height}",
            },
        )

    return ui
