"""The text mark is invisible: labelled text renders pixel for pixel like the original.

Two renderers a reader's text meets: a browser (headless Chromium, the shared
launcher in tests/browser.py) and a PDF made from the text (fpdf2 with the
bundled Noto Sans SC and HarfBuzz shaping, rasterised by poppler's pdftoppm).
Samples mix CJK, Latin, emoji (with presentation selectors and ZWJ sequences)
and Arabic, whose letters change shape when a joiner sits next to them.
"""

from __future__ import annotations

import html
import io
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelers.fonts import cjk_font_path
from labelers.watermark.text import copies, embed, keys
from tests.browser import browser
from tests.text_samples import SAMPLES

PID = "01JD8Z5K3M7Q2R4T6V8W0XYZAB"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

MIXED = (
    "人工智能生成的内容需要标识。The model wrote this paragraph, and we check it. "
    "表情符号 😀 很常见，比如 ❤\ufe0f 和 👍🏽，还有家庭 👨\u200d👩\u200d👧 与 1\ufe0f\u20e3。 "
    "Arabic: مرحبا بالعالم، كيف حالك؟ أنا بخير. نص عربي آخر، للتأكد. "
    "Mixed 混合 text, with clauses; and sentences! 最后一句。\n\n"
) * 4

TEXTS = {
    "mixed-dense": (MIXED, 100),
    "chinese-prose": (SAMPLES["chinese-prose"], 300),
    "english-prose": (SAMPLES["english-prose"], 300),
}


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def assert_same_pixels(original: np.ndarray, labelled: np.ndarray) -> None:
    assert original.shape == labelled.shape
    differing = np.count_nonzero(np.any(original != labelled, axis=2))
    assert differing == 0, f"{differing} pixels differ"
    assert np.count_nonzero(original < 128) > 1000  # something was drawn


@pytest.fixture(scope="module")
def page():
    with browser() as context:
        yield context.new_page()


def screenshot(page, text: str, width: int) -> bytes:
    font = cjk_font_path().as_uri()
    page.set_content(
        "<!doctype html><meta charset=utf-8><style>"
        f"@font-face {{font-family: NotoSansSC; src: url('{font}');}}"
        "body {margin: 0; background: #fff;}"
        f"#t {{width: {width}px; padding: 8px; white-space: pre-wrap; font: 18px/1.6 "
        "NotoSansSC, 'DejaVu Sans', 'Noto Color Emoji'; color: #000;}"
        f"</style><div id=t>{html.escape(text)}</div>"
    )
    page.evaluate("document.fonts.ready")
    return page.locator("#t").screenshot()


@pytest.mark.parametrize("width", [640, 310])
@pytest.mark.parametrize("name", TEXTS)
def test_labelled_text_looks_identical_in_chromium(page, name: str, width: int) -> None:
    text, every = TEXTS[name]
    labelled = embed(text, PID, every=every)
    assert len(copies(labelled)) >= 3
    assert_same_pixels(
        pixels(screenshot(page, text, width)), pixels(screenshot(page, labelled, width))
    )
    # and what a reader copies out of the page still carries the mark
    assert keys(page.locator("#t").inner_text()) == keys(labelled)


def pdf_page(text: str) -> np.ndarray:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.add_font("noto", fname=str(cjk_font_path()))
    pdf.add_font("dejavu", fname=str(DEJAVU))
    pdf.set_font("noto", size=13)
    pdf.set_fallback_fonts(["dejavu"])
    pdf.set_text_shaping(True)  # HarfBuzz: Arabic joining, and ignorables drawn as nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs neither font has (ZWJ emoji) are absent alike
        pdf.multi_cell(0, 8, text)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "page.pdf"
        source.write_bytes(bytes(pdf.output()))
        subprocess.run(
            ["pdftoppm", "-r", "72", "-f", "1", "-l", "1", "-png", "-singlefile", source, source],
            check=True,
        )
        return pixels(source.with_suffix(".pdf.png").read_bytes())


@pytest.mark.parametrize("name", TEXTS)
def test_a_pdf_made_from_labelled_text_looks_identical(name: str) -> None:
    if not shutil.which("pdftoppm") or not DEJAVU.exists():
        pytest.skip("poppler-utils and fonts-dejavu-core are needed (make system-deps)")
    pytest.importorskip("uharfbuzz")
    text, every = TEXTS[name]
    assert_same_pixels(pdf_page(text), pdf_page(embed(text, PID, every=every)))
