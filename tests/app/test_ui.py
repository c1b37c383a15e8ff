"""The moderators' page at /ui: served assets and headers, the preview route, and
the page itself in headless Chromium against a real ``aigc-label serve``.

The browser tests drop real files (a JPEG this service labelled, a real Firefly
image, a labelled PDF, an unlabelled photo) and assert what a moderator sees.
Downloads the page hands out are verified independently through the API.

Set ``AIGC_UI_SCREENSHOTS=docs/ui`` to also write the screenshots of each state
at desktop and phone width (README, "Moderators' page").
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fpdf import FPDF
from PIL import Image

from tests.support import KEYS, PLATFORM, PRODUCER, auth

UI = Path(__file__).resolve().parents[2] / "app" / "ui" / "static"
WILD = Path("../shared/corpus/wild")
FIREFLY = WILD / "firefly-1.png"
SCREENSHOTS = os.environ.get("AIGC_UI_SCREENSHOTS")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


# ------------------------------------------------------------ inputs, made here
def _photo(which: str, size: int) -> bytes:
    from skimage import data

    im = Image.fromarray(getattr(data, which)()).convert("RGB")
    im.thumbnail((size, size))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def _pdf() -> bytes:
    doc = FPDF()
    for n in (1, 2):
        doc.add_page()
        doc.set_font("helvetica", size=22)
        doc.cell(text=f"Quarterly summary, page {n}")
        doc.ln(14)
        doc.set_font("helvetica", size=12)
        doc.multi_cell(w=0, text="Revenue grew in every region. " * 20)
    return bytes(doc.output())


def _tone() -> bytes:
    """One second of a 440 Hz sine at 8 kHz, 16-bit mono WAV."""
    import math
    import struct
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(20000 * math.sin(2 * math.pi * 440 * i / 8000)))
                for i in range(8000)
            )
        )
    return out.getvalue()


# --------------------------------------------------------------- served assets
class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_page_and_assets_carry_a_strict_csp_and_load_nothing_from_elsewhere(client) -> None:
    page = client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    parser = _Tags()
    parser.feed(page.text)
    scripts = [a for t, a in parser.tags if t == "script"]
    assert scripts and all(a.get("src", "").startswith("/ui/static/") for a in scripts)
    assert not [t for t, a in parser.tags if t == "style" or "style" in a]
    assert not [a for t, a in parser.tags if any(k.startswith("on") for k in a)]
    for tag, attrs in parser.tags:  # every referenced asset is ours and is served
        ref = attrs.get("src") or (attrs.get("href") if tag == "link" else None)
        if ref:
            assert ref.startswith("/ui/static/"), ref
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            assert asset.headers["content-security-policy"] == csp
    for name in ("app.js", "i18n.js", "app.css"):
        text = (UI / name).read_text()
        assert not re.search(r"https?://", text), f"{name} refers to another origin"
    # untrusted strings reach the page only as text
    assert "innerHTML" not in (UI / "app.js").read_text()


def test_unknown_asset_is_a_404_problem(client) -> None:
    resp = client.get("/ui/static/..%2Fapp.py")
    assert resp.status_code == 404
    assert client.get("/ui/static/secrets.json").json()["status"] == 404


def test_preview_needs_a_key(client) -> None:
    resp = client.post("/ui/preview", files={"file": ("a.pdf", _pdf())})
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_preview_draws_page_one_of_a_pdf_as_png(client) -> None:
    resp = client.post("/ui/preview", files={"file": ("a.pdf", _pdf())}, headers=auth())
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["aigc-source-size"] == "595x842"  # A4 in points
    im = Image.open(io.BytesIO(resp.content))
    im.load()
    assert max(im.size) <= 1024 and im.size[1] > im.size[0]  # portrait A4
    # the title line is ink on the white page: dark pixels near the top only
    gray = im.convert("L")
    top = gray.crop((0, 0, im.width, im.height // 6))
    assert min(top.tobytes()) < 100
    assert min(gray.crop((0, im.height * 5 // 6, im.width, im.height)).tobytes()) > 200


def test_preview_shows_an_image_upright_as_a_viewer_does(client) -> None:
    im = Image.new("RGB", (300, 200), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    out = io.BytesIO()
    im.save(out, "TIFF", exif=exif)
    resp = client.post("/ui/preview", files={"file": ("a.tif", out.getvalue())}, headers=auth())
    assert resp.status_code == 200, resp.text
    assert resp.headers["aigc-source-size"] == "200x300"
    assert Image.open(io.BytesIO(resp.content)).size == (200, 300)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF", 422),
        (b"plain words, nothing to draw", 415),
        (b"", 422),
    ],
)
def test_preview_refuses_bad_input_with_a_problem(client, payload: bytes, status: int) -> None:
    resp = client.post("/ui/preview", files={"file": ("x", payload)}, headers=auth())
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]


def test_preview_keeps_the_upload_limit(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "var", api_keys=json.dumps(KEYS), max_upload_bytes=100_000
    )
    with TestClient(create_app(settings)) as c:
        big = _photo("astronaut", 512) + b"\0" * 200_000
        resp = c.post("/ui/preview", files={"file": ("a.jpg", big)}, headers=auth())
    assert resp.status_code == 413


# -------------------------------------------------------------- in the browser
@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.served import serve

    data_dir = tmp_path_factory.mktemp("ui-var")
    env = {"AIGC_DATA_DIR": str(data_dir), "AIGC_API_KEYS": json.dumps(KEYS)}
    with serve(env, timeout=180) as base:  # a loaded CI machine starts slowly
        yield base


@pytest.fixture(scope="module")
def inputs(service: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The four files a moderator drops, written to disk as a browser would pick them."""
    folder = tmp_path_factory.mktemp("ui-files")
    # a photo on which the finder reads our label (it misses it on some grounds,
    # e.g. astronaut at 640 px: a detector gap, not what this page test is about)
    photo = _photo("chelsea", 640)
    labelled = httpx.post(
        service + "/v1/label", files={"file": ("a.jpg", photo)}, headers=auth(), timeout=60
    )
    assert labelled.status_code == 200, labelled.text
    pdf = httpx.post(
        service + "/v1/label", files={"file": ("a.pdf", _pdf())}, headers=auth(), timeout=60
    )
    assert pdf.status_code == 200, pdf.text
    files = {
        "labelled": ("labelled-chelsea.jpg", labelled.content),
        "pdf": ("report.pdf", pdf.content),
        "photo": ("coffee.jpg", _photo("coffee", 640)),
    }
    paths = {}
    for key, (name, data) in files.items():
        paths[key] = folder / name
        paths[key].write_bytes(data)
    return {
        "paths": paths,
        "labelled_id": labelled.headers["AIGC-Produce-ID"],
        "pdf_id": pdf.headers["AIGC-Produce-ID"],
    }


def _report(service: str, data: bytes, **form: str) -> dict[str, Any]:
    resp = httpx.post(
        service + "/v1/verify",
        files={"file": ("f", data)},
        data=form,
        headers=auth("verify-key"),
        timeout=300,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _shot(page: Any, name: str, card: Any = None) -> None:
    """The page (or one card) at desktop and phone width, when screenshots are asked for."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)  # layout settles after the resize
        path = str(folder / f"{name}-{label}.png")
        if card is None:
            page.screenshot(path=path, full_page=True)
        else:
            card.screenshot(path=path)
    page.set_viewport_size(DESKTOP)


def _drop(page: Any, path: Path) -> None:
    """A real drop event on the drop zone, with the file in its DataTransfer."""
    data = list(path.read_bytes())
    transfer = page.evaluate_handle(
        """([bytes, name]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name));
            return dt;
        }""",
        [data, path.name],
    )
    page.dispatch_event("#drop", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def _card(page: Any, name: str) -> Any:
    card = page.locator("article.card", has=page.locator(".file-name", has_text=name))
    card.locator("xpath=self::*[@data-state='done']").wait_for(timeout=300_000)
    return card


def _use_key(page: Any, key: str) -> None:
    if page.locator("#key-forget").is_visible():
        page.click("#key-forget")
    page.fill("#key", key)
    page.keyboard.press("Enter")  # the form submits from the keyboard
    page.locator("#key-status").wait_for()


def test_page_in_chromium(service: str, inputs: dict[str, Any], tmp_path: Path) -> None:
    from tests.browser import browser

    if not FIREFLY.exists():
        pytest.skip("../shared/corpus/wild is absent")
    paths = inputs["paths"]
    with browser() as context:
        page = context.new_page()
        # a Chinese-speaking browser gets the Chinese page
        page.add_init_script(
            "Object.defineProperty(navigator, 'languages', {get: () => ['zh-CN', 'zh']});"
        )
        problems: list[str] = []
        # refused API calls are logged by Chromium as failed loads: those are
        # expected here (a platform key may not label); anything else is not
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "request",
            lambda r: (
                None if r.url.startswith((service, "blob:", "data:")) else problems.append(r.url)
            ),
        )
        page.set_viewport_size(DESKTOP)
        page.goto(service + "/ui")
        assert page.locator("h1").inner_text() == "AI 生成内容标识核验"
        _shot(page, "01-empty")

        # a file before a key: the page asks for the key instead of calling the API
        page.set_input_files("#files", str(paths["photo"]))
        assert "API" in page.locator("#notice").inner_text()
        assert page.locator("article.card").count() == 0

        page.select_option("#lang", "en")
        assert page.locator("h1").inner_text() == "AI content label check"
        _use_key(page, "platform-key")
        assert page.evaluate("sessionStorage.getItem('aigc-label.key')") == "platform-key"

        page.set_input_files("#files", [str(paths["labelled"]), str(FIREFLY.resolve())])
        _drop(page, paths["pdf"])
        _drop(page, paths["photo"])

        # ---- the JPEG this service labelled
        card = _card(page, paths["labelled"].name)
        report = _report(service, paths["labelled"].read_bytes(), check_visible="true")
        # OCR has a time budget, so under load two reads of one file can differ
        # in what OCR found: what depends on it is judged by the report the page
        # received (its "Full report" section), the rest by an independent read
        shown = json.loads(card.locator(".raw pre").text_content())
        assert shown["record"] == report["record"]
        banner = card.locator(".banner")
        assert banner.get_attribute("data-class") == "confirmed"
        assert banner.locator(".verdict").inner_text() == "Confirmed AI-generated"
        assert "Art. 6(1)" in banner.locator(".rule").inner_text()
        rows = card.locator("table.record tbody tr")
        assert rows.count() == 7
        produce = card.locator("tr[data-field='ContentProducer'] td.value").inner_text()
        assert produce == PRODUCER
        assert (
            card.locator("tr[data-field='ProduceID'] td.value").inner_text()
            == inputs["labelled_id"]
        )
        assert card.locator("tr[data-field='Label'] td").nth(1).inner_text() == "AI-generated"
        # ledger entries are the issuing producer's and its propagators' only: a
        # platform that has not propagated this label is not told who asked for it
        producer_row = card.locator("tr[data-field='ContentProducer']").inner_text()
        assert "issued by this service" not in producer_row
        producer_sig = card.locator(".signatures li[data-role='producer'] .badge")
        assert (
            producer_sig.get_attribute("data-status")
            == report["integrity"]["producer"]["status"]
            == "valid"
        )
        assert producer_sig.inner_text() == "valid"
        platform_sig = card.locator(".signatures li[data-role='platform'] .badge")
        assert platform_sig.get_attribute("data-status") == "absent"
        marks = [e for e in shown["evidence"] if e["kind"] == "watermark"]
        watermark = card.locator(".detail-watermark").inner_text()
        if marks:
            assert marks[0]["data"]["key"] in watermark
            assert "Found in this service's ledger." in watermark  # we labelled it
        else:
            assert "No watermark of this service found." in watermark
        picture = card.locator(".frame img")
        width = Image.open(paths["labelled"]).width
        assert picture.evaluate("img => img.complete && img.naturalWidth") == width
        assert card.locator(".evidence-item[data-kind='metadata-record']").count() == 1
        # the page shows what OCR made of the visible label, either way
        labels = [e for e in shown["evidence"] if e["kind"] == "explicit-label"]
        visible = card.locator(".detail-visible").inner_text()
        if labels:
            assert all(p in visible for p in labels[0]["data"]["phrases"])
        else:
            assert "No visible label found." in visible
        for finding in shown["findings"]:
            item = card.locator(f".findings li[data-code='{finding['code']}']").first
            assert finding["detail"] in item.inner_text()
            assert item.get_attribute("data-severity") == finding["severity"]
        if any(f["code"] == "explicit-label-missing" for f in shown["findings"]):
            missing = card.locator(".findings li[data-code='explicit-label-missing']")
            assert missing.locator(".badge").inner_text() == "warning"
            action = next(f for f in shown["findings"] if f["code"] == "explicit-label-missing")
            assert f"What to do: {action['action']}" in missing.inner_text()
        # the label OCR read is drawn as a box on the preview, with its size
        assert labels, shown["findings"]
        _assert_box_drawn(card, labels[0]["data"]["box"], picture)
        size = card.locator(".detail-visible .label-size")
        assert size.get_attribute("data-meets") == "yes"
        assert "Meets the 5% minimum" in size.inner_text()
        _shot(page, "02-labelled-jpeg", card)

        # ---- propagate (platform key): the download verifies as confirmed
        with page.expect_download() as info:
            card.locator("button.propagate").click()
        propagated = Path(info.value.path()).read_bytes()
        assert info.value.suggested_filename == "labelled-chelsea-propagated.jpg"
        status = card.locator(".action-status")
        status.locator("xpath=self::*[@data-classification]").wait_for(timeout=300_000)
        assert "verifies as: Confirmed AI-generated" in status.inner_text()
        after = _report(service, propagated)
        assert after["classification"] == "confirmed"
        assert after["record"]["ContentPropagator"] == PLATFORM
        assert after["record"]["ProduceID"] == inputs["labelled_id"]
        assert after["integrity"]["platform"]["status"] == "valid"
        assert after["integrity"]["producer"]["status"] == "valid"
        _shot(page, "03-propagated", card)

        # ---- a real Firefly image: C2PA says trainedAlgorithmicMedia
        card = _card(page, FIREFLY.name)
        report = _report(service, FIREFLY.read_bytes(), check_visible="true")
        assert card.locator(".banner").get_attribute("data-class") == "suspected"
        assert card.locator(".verdict").inner_text() == "Suspected AI-generated"
        tree = card.locator(".detail-c2pa .tree").inner_text()
        assert "trainedAlgorithmicMedia" in tree and "Adobe" in tree
        assert "c2pa.created" in tree
        assert (
            card.locator(".detail-record").inner_text().startswith("Implicit label record")
            and "carries no record" in card.locator(".detail-record").inner_text()
        )
        assert card.locator(".evidence-item[data-kind='c2pa']").count() == 1
        assert card.locator(".frame img").evaluate("img => img.naturalWidth") > 0
        assert report["origin"]["company"] == "Adobe"
        origin = card.locator(".origin-line").inner_text()
        assert "Adobe" in origin
        assert card.locator(".evidence-item .tag").count() == len(report["origin"]["evidence"])
        _shot(page, "04-firefly", card)

        # ---- a PDF this service labelled: page 1 drawn by the server
        card = _card(page, paths["pdf"].name)
        assert card.locator(".banner").get_attribute("data-class") == "confirmed"
        assert card.locator("tr[data-field='ProduceID'] td.value").inner_text() == inputs["pdf_id"]
        assert card.locator(".frame img").evaluate("img => img.naturalWidth") > 100
        assert card.locator(".preview-note").inner_text() == "Page 1"
        assert "on page(s) 1, 2 of 2" in card.locator(".detail-visible").inner_text()
        assert (
            card.locator(".signatures li[data-role='producer'] .badge").get_attribute("data-status")
            == "valid"
        )
        _shot(page, "05-pdf", card)

        # ---- an unlabelled photo
        card = _card(page, paths["photo"].name)
        assert card.locator(".banner").get_attribute("data-class") == "none"
        assert card.locator(".verdict").inner_text() == "No AI label found"
        assert "carries no record" in card.locator(".detail-record").inner_text()
        assert (
            card.locator(".evidence")
            .inner_text()
            .endswith("No evidence of AI generation in this file.")
        )
        # a platform key may not label: the problem's detail is shown, no download
        card.locator("button.label").click()
        status = card.locator(".action-status[data-error]")
        status.wait_for()
        assert "lacks the 'label' permission" in status.inner_text()

        # ---- label it with a producer key and chosen options
        _use_key(page, "gen-key")
        card.locator(".label-options summary").click()
        card.locator("select[id^='opt-position']").select_option("top-left")
        card.locator("select[id^='opt-label']").select_option("2")
        card.locator("input[id^='opt-c2pa']").uncheck()
        with page.expect_download() as info:
            card.locator("button.label").click()
        labelled_now = Path(info.value.path()).read_bytes()
        assert info.value.suggested_filename == "coffee-labelled.jpg"
        made = _report(service, labelled_now)
        assert made["classification"] == "possible"  # Label "2", as chosen
        assert made["record"]["ContentProducer"] == PRODUCER
        assert not [e for e in made["evidence"] if e["kind"] == "c2pa"]
        assert Image.open(io.BytesIO(labelled_now)).size == Image.open(paths["photo"]).size
        _shot(page, "06-unlabelled-photo", card)

        # ---- the history, exported
        history = page.locator("#history tbody tr")
        assert history.count() == 4
        with page.expect_download() as info:
            page.click("#export-json")
        rows = json.loads(Path(info.value.path()).read_text())
        by_file = {r["file"]: r for r in rows}
        assert by_file[paths["labelled"].name]["classification"] == "confirmed"
        assert by_file[paths["labelled"].name]["produce_id"] == inputs["labelled_id"]
        assert by_file[FIREFLY.name]["classification"] == "suspected"
        assert by_file[paths["pdf"].name]["classification"] == "confirmed"
        assert by_file[paths["photo"].name]["classification"] == "none"
        assert all(re.fullmatch(r"[0-9a-f]{64}", r["sha256"]) for r in rows)
        with page.expect_download() as info:
            page.click("#export-csv")
        _shot(page, "08-history", page.locator("section.panel", has=page.locator("#history")))
        table = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text("utf-8-sig"))))
        assert [r["classification"] for r in table] == [r["classification"] for r in rows]
        assert table[0]["rule"] == rows[0]["rule"]

        # ---- sound and text: a waveform and the first lines; a format the
        # service does not read gets its problem on the card, not a broken page
        wav, txt = tmp_path / "tone.wav", tmp_path / "notes.txt"
        blob = tmp_path / "blob.bin"
        wav.write_bytes(_tone())
        txt.write_text("第一行：会议纪要\nsecond line\n" + "more\n" * 40, encoding="utf-8")
        blob.write_bytes(b"\x00\x01 no container the service reads\n" * 8)
        page.set_input_files("#files", [str(wav), str(txt), str(blob)])
        card = _card(page, txt.name)
        assert card.locator(".banner").get_attribute("data-class") == "none"
        assert (
            card.locator("pre.text-preview")
            .inner_text()
            .startswith("第一行：会议纪要\nsecond line")
        )
        card = _card(page, wav.name)  # audio is verified: a verdict, and its waveform
        assert card.locator(".banner").get_attribute("data-class") == "none"
        card.locator("canvas.wave").wait_for()
        inked = card.locator("canvas.wave").evaluate(
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150
                      && d[i] < 80) n++; return n / (c.width * c.height); }"""
        )
        assert 0.2 < inked < 0.95  # a sine fills much of its band, not all of the canvas
        _shot(page, "09-audio", card)
        card = page.locator("article.card[data-state='error']", has_text=blob.name)
        card.wait_for()
        assert "unrecognised binary file type" in card.locator(".banner").inner_text()

        # ---- Chinese, switched back, redraws the cards
        page.select_option("#lang", "zh")
        card = _card(page, paths["labelled"].name)
        assert card.locator(".verdict").inner_text() == "确认为 AI 生成"
        assert card.locator(".signatures li[data-role='producer'] .badge").inner_text() == "有效"
        assert "核验结果：确认为 AI 生成" in card.locator(".action-status").inner_text()
        _shot(page, "07-chinese", card)

        # ---- phone width: nothing sticks out sideways
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(150)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0

        # ---- every control has a name a screen reader can say
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll('input, select, button')]
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                             && !e.textContent.trim())
                .map(e => e.outerHTML)"""
        )
        assert unnamed == []
        # the file chooser and the actions are reachable from the keyboard
        page.set_viewport_size(DESKTOP)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        reached = set()
        for _ in range(40):
            page.keyboard.press("Tab")
            reached.add(
                page.evaluate("document.activeElement.id || document.activeElement.className")
            )
        assert {"lang", "files", "opt-declared", "propagate"} <= reached
        # text against its own background: WCAG AA (4.5:1) for what a moderator reads
        checked, low = page.evaluate(
            CONTRAST_JS,
            ".verdict, .why, .rule, .hint, .meaning, .carrier, .badge, button, .todo, th, td, h4",
        )
        assert checked > 100 and low == [], low
        # the key never leaves the tab: no cookie, no URL, no localStorage
        assert context.cookies() == []
        assert "key" not in page.url
        assert page.evaluate("localStorage.length") == 0
        page.click("#key-forget")
        assert page.evaluate("sessionStorage.getItem('aigc-label.key')") is None
        assert not problems, problems


# WCAG 2 contrast of each matched element's text colour against the first
# opaque background behind it; returns how many were checked and those under 4.5:1
CONTRAST_JS = """selector => {
    const rgb = s => s.match(/[\\d.]+/g).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
        .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
    const back = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e)
        .backgroundColor); if (c.length < 4 || c[3] > 0.5) return c.slice(0, 3); }
        return [255, 255, 255]; };
    const low = [];
    let checked = 0;
    for (const e of document.querySelectorAll(selector)) {
        if (!e.offsetParent || !e.textContent.trim()) continue;
        const style = getComputedStyle(e);
        if (e.disabled) continue;
        const a = lum(rgb(style.color)), b = lum(back(e));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        checked++;
        if (ratio < 4.5) low.push(`${e.className} ${e.textContent.slice(0, 30)} ${ratio}`);
    }
    return [checked, low];
}"""


def _assert_box_drawn(card: Any, box: list[int], picture: Any) -> None:
    """The box is on the preview where the report says, scaled to the preview."""
    drawn = card.locator(".label-box").first.bounding_box()
    shown = picture.bounding_box()
    natural = picture.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = shown["width"] / natural[0]
    assert abs(drawn["x"] - shown["x"] - box[0] * scale) <= 2
    assert abs(drawn["y"] - shown["y"] - box[1] * scale) <= 2
    assert abs(drawn["width"] - box[2] * scale) <= 2
    assert abs(drawn["height"] - box[3] * scale) <= 2
