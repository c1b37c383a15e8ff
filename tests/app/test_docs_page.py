"""``/docs`` renders offline: Swagger UI from package data, operations, Authorize.

A real ``aigc-label serve`` process and Debian's headless Chromium. Every
request that leaves 127.0.0.1 is refused and recorded, so a page that still
pulled a file from a CDN would either fail to render or show up in the list.
"""

from __future__ import annotations

from pathlib import Path

from tests.browser import browser, chromium_or_skip
from tests.served import serve

OPERATIONS = (
    "Label a text",
    "Label a file",
    "Verify a file or a text",
    "Write a platform's propagation fields",
    "Read a ledger entry",
)


def render_docs(base: str, screenshot: Path) -> dict:
    """Open /docs, open the Authorize dialog; what the page showed and fetched."""
    outside: list[str] = []
    with browser() as context:

        def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
            if route.request.url.startswith(base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        page.goto(base + "/docs")
        page.wait_for_selector(".opblock-summary", timeout=60_000)
        summaries = page.locator(".opblock-summary-description").all_inner_texts()
        authorize = page.locator("button.authorize")
        has_authorize = authorize.count() == 1 and authorize.is_visible()
        page.screenshot(path=str(screenshot), full_page=True)
        authorize.click()
        dialog = page.locator(".modal-ux").inner_text(timeout=10_000)
    return {
        "summaries": summaries,
        "authorize": has_authorize,
        "dialog": dialog,
        "outside": outside,
    }


def test_docs_render_offline_with_operations_and_authorize(tmp_path: Path) -> None:
    chromium_or_skip()
    shot = tmp_path / "docs.png"
    with serve({"AIGC_DATA_DIR": str(tmp_path / "var")}) as base:
        seen = render_docs(base, shot)
    assert seen["outside"] == [], "the page fetched files from outside the service"
    for operation in OPERATIONS:
        assert any(s.startswith(operation) for s in seen["summaries"]), (operation, seen)
    assert seen["authorize"]
    # the HTTPBearer scheme the dialog offers, where the key is pasted
    assert "apiKey" in seen["dialog"] and "Bearer" in seen["dialog"]
    # a rendered page, not a blank one: a screenshot of real size and content
    from PIL import Image

    with Image.open(shot) as im:
        assert im.height > 600
        assert len(im.convert("L").resize((64, 64)).getcolors(4096) or []) > 8


def test_openapi_documents_every_operation(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "Authorization: Bearer" in scheme["description"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert op.get("summary") and op.get("description"), (method, path)
            if path not in ("/healthz", "/readyz", "/metrics"):  # probes and scrapes
                assert op.get("security") == [{"apiKey": []}], (method, path)
    text_body = spec["components"]["schemas"]["TextLabelRequest"]
    assert text_body["examples"][0]["text"]
    # the assets come from this service, not a CDN
    page = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
