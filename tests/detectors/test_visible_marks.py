"""Visible marks of real generators, found after the metadata is stripped.

Three sources of truth: the real files in ``../shared/corpus/wild/`` (re-encoded
pixels only, as a re-upload leaves them); marks these tests draw themselves
the way generators draw theirs (alpha-blended white or grey text from 1.5% of
the shortest side, a four-pointed sparkle, a sail logo with a wordmark), drawn
independently of the templates in ``detectors.marks``; and real photographs
with no AI origin (scikit-image's bundled images, our own labelled-then-stripped
files), none of which may come out anything but ``none``.

OCR tests need tesseract with chi_sim (skipped without it, except in CI);
brand marks are found without OCR.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from detectors import ocr
from detectors.files import VerifyContext, verify_file
from detectors.lookup import NoLookup
from detectors.marks import find_brand_marks
from detectors.ocr import analyse, find_visible_label, match_phrases, ocr_available
from detectors.report import Finding
from labelers.fonts import cjk_font_path
from labelers.pipeline import FileOptions, label_file
from labelers.record import Record, new_produce_id
from tests.detectors.test_ocr import busy, flat, photo
from tests.support import PRODUCER

WILD = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "wild"

requires_ocr = pytest.mark.skipif(
    not ocr_available() and not os.environ.get("CI"),
    reason="tesseract with chi_sim data is not installed; OCR is optional",
)
requires_wild = pytest.mark.skipif(
    not WILD.is_dir(), reason="the shared corpus of real generator files is not present"
)


# --------------------------------------------------------------------------- drawing


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    """Pixels only, as a re-upload leaves them: every metadata block gone."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def reopened(image: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(jpeg(image)))


def blended_text(
    image: Image.Image,
    text: str,
    position: str,
    fraction: float,
    alpha: float,
    colour: tuple[int, int, int] = (255, 255, 255),
    bold: int = 0,
) -> Image.Image:
    """``text`` blended over ``image`` at ``alpha`` (no plate), its cap height about
    ``fraction`` of the shortest side, at a corner; ``bold`` thickens the strokes."""
    image = image.convert("RGB")
    width, height = image.size
    shortest = min(width, height)
    font = ImageFont.truetype(str(cjk_font_path()), max(6, round(shortest * fraction * 1.2)))
    layer = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=bold)
    margin = round(0.025 * shortest)
    x = margin if "left" in position else width - margin - (right - left)
    y = margin if "top" in position else height - margin - (bottom - top)
    level = round(255 * alpha)
    draw.text(
        (x - left, y - top), text, font=font, fill=level, stroke_width=bold, stroke_fill=level
    )
    return Image.composite(Image.new("RGB", image.size, colour), image, layer)


def _bezier(p0, control, p1, steps: int = 24) -> list[tuple[float, float]]:
    t = np.linspace(0, 1, steps)[:, None]
    p0, control, p1 = map(np.array, (p0, control, p1))
    points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * control + t**2 * p1
    return [tuple(p) for p in points.tolist()]


def sparkle(cx: float, cy: float, radius: float, pull: float = 0.15) -> list[tuple[float, float]]:
    """A four-pointed sparkle drawn as four quadratic curves between its tips
    (not the template's superellipse): ``pull`` is how far the sides bow out
    from the centre."""
    tips = [(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)]
    outline: list[tuple[float, float]] = []
    for i, start in enumerate(tips):
        end = tips[(i + 1) % 4]
        control = (
            cx + (start[0] + end[0] - 2 * cx) * pull,
            cy + (start[1] + end[1] - 2 * cy) * pull,
        )
        outline += _bezier(start, control, end)
    return outline


def sail(x: float, y: float, size: float) -> list[tuple[float, float]]:
    """A Jimeng-like swept sail logo drawn with three curves: a tip at the top, a
    long point to the right, a foot at the bottom left."""
    top, right, foot = (x + 0.18 * size, y), (x + 1.1 * size, y + 0.45 * size), (x, y + 0.9 * size)
    return (
        _bezier(top, (x + 0.3 * size, y + 0.38 * size), right)
        + _bezier(right, (x + 0.55 * size, y + 0.6 * size), foot)
        + _bezier(foot, (x + 0.25 * size, y + 0.6 * size), top)
    )


def stamped(image: Image.Image, outline: list, alpha: float, colour=(255, 255, 255)) -> Image.Image:
    layer = Image.new("L", image.size, 0)
    ImageDraw.Draw(layer).polygon(outline, fill=round(255 * alpha))
    return Image.composite(Image.new("RGB", image.size, colour), image.convert("RGB"), layer)


def sparkle_mark(image: Image.Image, fraction: float, alpha: float, pull: float) -> Image.Image:
    """A Gemini-like sparkle, ``fraction`` of the shortest side wide, bottom right."""
    width, height = image.size
    shortest = min(width, height)
    radius = shortest * fraction / 2
    centre = (width - 0.04 * shortest - radius, height - 0.04 * shortest - radius)
    return stamped(image, sparkle(*centre, radius, pull), alpha)


def jimeng_mark(
    image: Image.Image, fraction: float, wordmark: str | None = "即梦AI"
) -> Image.Image:
    """A Jimeng-like sail logo with its wordmark, bottom right, in blended white."""
    width, height = image.size
    shortest = min(width, height)
    size = shortest * fraction
    x, y = width - 0.06 * shortest - 6 * size, height - 0.04 * shortest - size
    out = stamped(image, sail(x, y, size), 0.7)
    if wordmark:
        font = ImageFont.truetype(str(cjk_font_path()), round(size * 0.9))
        layer = Image.new("L", image.size, 0)
        ImageDraw.Draw(layer).text((x + 1.4 * size, y - 0.05 * size), wordmark, font=font, fill=180)
        out = Image.composite(Image.new("RGB", image.size, (255, 255, 255)), out, layer)
    return out


def verified(data: bytes) -> dict:
    return verify_file(data, VerifyContext(NoLookup())).to_dict()


def codes(report: dict) -> list[str]:
    return [f["code"] for f in report["findings"]]


# --------------------------------------------------------------------------- real files


def wild(name: str) -> bytes:
    """A real generator's file, stripped to its pixels (JPEG q90)."""
    return jpeg(Image.open(WILD / name))


@requires_wild
@requires_ocr
def test_doubao_mark_is_found_after_stripping_as_a_too_small_label() -> None:
    report = verified(wild("doubao_gray_1x1_1.png"))
    assert report["classification"] == "suspected"
    (label,) = [e for e in report["evidence"] if e["kind"] == "explicit-label"]
    data = label["data"]
    assert any("AI生成" in p for p in data["phrases"]), data
    assert data["region"] == "bottom-right"
    left, top, width, height = data["box"]
    assert left > 1024 and top > 1800 and left + width <= 2048 and top + height <= 2048
    assert data["shortest_side"] == 2048
    # Doubao draws its mark at about 3% of the shortest side, below the 5% rule
    assert 0.02 < data["height_ratio"] < 0.05
    assert data["height_ratio"] == pytest.approx(data["height_px"] / 2048, abs=1e-3)
    (small,) = [f for f in report["findings"] if f["code"] == "explicit-label-too-small"]
    assert small["severity"] == "warning" and "%" in small["detail"] and small["action"]


@requires_wild
@requires_ocr
def test_samsung_editor_wording_is_found_after_stripping() -> None:
    report = verified(wild("samsung_gray_1.png"))
    assert report["classification"] == "suspected"
    (label,) = [e for e in report["evidence"] if e["kind"] == "explicit-label"]
    assert label["data"]["phrases"] == ["Contenuti generati dall'AI"]
    assert label["data"]["region"] == "bottom-left"
    left, top, _, _ = label["data"]["box"]
    assert left < 200 and top > 1300
    # the editor's "✦" before the wording is part of the label, not a Gemini mark
    assert not [e for e in report["evidence"] if e["kind"] == "generator-trace"]


@requires_wild
def test_jimeng_logo_is_a_brand_trace_without_generation_wording_even_without_ocr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ocr, "TESSERACT", "tesseract-not-installed-here")
    for data in (
        wild("jimeng_cap_C.png"),
        jpeg(Image.open(WILD / "jimeng_cap_C.png").resize((1024, 1024))),
    ):
        report = verified(data)
        assert report["classification"] == "suspected"
        (trace,) = [e for e in report["evidence"] if e["kind"] == "generator-trace"]
        assert trace["data"]["brand"] == "Jimeng" and "ByteDance" in trace["data"]["generator"]
        assert trace["data"]["template"] == "jimeng-logo"
        assert trace["data"]["region"] == "bottom-right"
        (finding,) = [
            f for f in report["findings"] if f["code"] == "visible-mark-lacks-generation-wording"
        ]
        assert "生成" in finding["detail"] and finding["action"]


@requires_wild
@requires_ocr
@pytest.mark.parametrize(
    "name", ["chatgpt-2.png", "chatgpt-3.png", "firefly-1.png", "flux-1.jpg", "mj-1.png"]
)
def test_generators_that_draw_nothing_are_none_after_stripping(name: str) -> None:
    assert verified(wild(name))["classification"] == "none"


# --------------------------------------------------------------------------- drawn text


DRAWN = [
    # (wording, fraction of shortest side, alpha, ground, corner, bold, colour)
    ("AI生成", 0.015, 0.55, "photo", "bottom-right", 0, (255, 255, 255)),
    ("豆包AI生成", 0.03, 0.5, "photo", "bottom-right", 2, (255, 255, 255)),
    ("AI生成", 0.02, 0.4, "grey", "top-left", 1, (255, 255, 255)),
    ("人工智能生成", 0.015, 0.7, "white", "top-right", 0, (20, 20, 20)),
    ("Generated with AI", 0.018, 0.6, "photo", "top-left", 0, (255, 255, 255)),
    ("Made with AI", 0.02, 0.7, "white", "bottom-left", 0, (30, 30, 30)),
    ("Contenuti generati dall'AI", 0.02, 0.7, "grey", "bottom-left", 0, (200, 200, 200)),
    ("Contenido generado por IA", 0.02, 0.6, "photo", "bottom-left", 0, (255, 255, 255)),
    ("Contenu généré par l'IA", 0.02, 0.65, "grey", "top-right", 1, (255, 255, 255)),
]
GROUNDS = {
    "photo": lambda: photo(1600, 1200, 3),
    "grey": lambda: flat(1600, 1200, 150),
    "white": lambda: flat(1600, 1200, 235),
}


@requires_ocr
@pytest.mark.parametrize(
    ("wording", "fraction", "alpha", "ground", "corner", "bold", "colour"),
    DRAWN,
    ids=[f"{w}-{f}-{a}-{g}-{c}" for w, f, a, g, c, _, _ in DRAWN],
)
def test_small_faint_wording_is_found_at_its_corner_with_its_size(
    wording: str, fraction: float, alpha: float, ground: str, corner: str, bold: int, colour
) -> None:
    image = reopened(
        blended_text(GROUNDS[ground](), wording, corner, fraction, alpha, colour, bold)
    )
    result = find_visible_label(image)
    assert result is not None and result.found, result
    assert result.phrases == [wording], result
    (mark,) = result.marks
    assert mark.region == corner
    # the measured line height is that of the drawn text (ascenders to descenders)
    assert 0.8 * fraction <= mark.height_ratio <= 2.2 * fraction, mark
    left, top, _, _ = mark.box
    assert ("left" in corner) == (left < 800) and ("top" in corner) == (top < 600), mark


@requires_ocr
def test_box_is_in_the_pixels_the_viewer_sees_for_a_rotated_photo() -> None:
    # the phone stored the pixels sideways with EXIF orientation 6 (rotate 90° CW to view)
    shown = blended_text(photo(900, 1200, 9), "AI生成", "bottom-right", 0.03, 0.7)
    stored = shown.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=92, exif=exif)
    report = verified(buffer.getvalue())
    (label,) = [e for e in report["evidence"] if e["kind"] == "explicit-label"]
    left, top, width, height = label["data"]["box"]
    assert label["data"]["region"] == "bottom-right"
    assert left > 450 and top > 1000 and left + width <= 900 and top + height <= 1200


@requires_ocr
def test_a_label_of_five_percent_has_no_size_finding() -> None:
    image = blended_text(photo(1200, 900, 4), "AI生成", "bottom-left", 0.05, 0.8)
    report = verified(jpeg(image))
    assert report["classification"] == "suspected"
    assert "explicit-label-too-small" not in codes(report)


# --------------------------------------------------------------------------- drawn brand marks


@pytest.mark.parametrize(
    ("size", "ground", "fraction", "pull"),
    [
        ((1024, 1024), "photo", 0.03, 0.15),
        ((1920, 1080), "grey", 0.05, 0.25),
        ((800, 1200), "photo", 0.08, 0.12),
        ((2048, 1536), "grey", 0.04, 0.2),
    ],
)
def test_sparkle_alone_in_a_corner_is_a_gemini_trace(size, ground, fraction, pull) -> None:
    base = photo(*size, 5) if ground == "photo" else flat(*size, 140)
    image = reopened(sparkle_mark(base, fraction, 0.6, pull))
    (found,) = find_brand_marks(analyse(image))
    assert found.template == "gemini-sparkle"
    assert found.mark.brand == "Gemini" and found.mark.region == "bottom-right"
    width = found.mark.box[2]
    shortest = min(size)
    assert abs(width - fraction * shortest) <= 0.25 * fraction * shortest + 4, found


def test_sparkle_before_a_line_of_text_is_not_a_gemini_mark() -> None:
    # phone editors draw a sparkle before their wording: that is a label, not a brand mark
    image = blended_text(flat(1600, 1200, 140), "Edited photo", "bottom-right", 0.03, 0.7)
    text = analyse(image).blocks[0]  # where the line landed, in analysis pixels
    scale = 1600 / analyse(image).small.shape[1]
    height = text.line_height * scale
    centre = (text.left * scale - 0.9 * height, (text.top + text.bottom) / 2 * scale)
    outline = sparkle(*centre, 0.55 * height)
    assert find_brand_marks(analyse(reopened(stamped(image, outline, 0.7)))) == []
    # the same sparkle on its own is a brand mark: the text beside it made the difference
    alone = stamped(flat(1600, 1200, 140), outline, 0.7)
    assert [m.template for m in find_brand_marks(analyse(reopened(alone)))] == ["gemini-sparkle"]


@pytest.mark.parametrize(
    ("size", "fraction"), [((1024, 1024), 0.03), ((1920, 1080), 0.045), ((800, 1200), 0.045)]
)
def test_sail_logo_with_wordmark_is_a_jimeng_trace(size, fraction) -> None:
    image = reopened(jimeng_mark(photo(*size, 5) if size[0] < 1500 else flat(*size, 140), fraction))
    (found,) = find_brand_marks(analyse(image))
    assert found.template == "jimeng-logo" and found.mark.brand == "Jimeng"
    assert found.mark.region == "bottom-right"


def test_sail_logo_without_a_wordmark_is_not_a_brand_mark() -> None:
    image = reopened(jimeng_mark(flat(1920, 1080, 140), 0.045, wordmark=None))
    assert find_brand_marks(analyse(image)) == []


# --------------------------------------------------------------------------- phrases


def test_phrases_are_matched_through_ocr_misreadings_but_not_near_words() -> None:
    labels, _ = match_phrases("证Contenuti generati dallAl")
    assert [p.text for p in labels] == ["Contenuti generati dall'AI"]
    labels, _ = match_phrases("豆包AI主成")  # Doubao's bold 生 read as 主
    assert [(p.text, p.brand) for p in labels] == [("豆包AI生成", "Doubao")]
    labels, _ = match_phrases("AI生成 / AI-generated")
    assert [p.text for p in labels] == ["AI生成", "AI-generated"]
    _, brands = match_phrases("即梦AI")
    assert [p.brand for p in brands] == ["Jimeng"]
    for text in ("人工智能生活", "AI 摄影展", "Made with art", "generation gap", "AI生", "ai"):
        assert match_phrases(text) == ([], []), text


def test_finding_action_is_an_optional_key() -> None:
    assert "action" not in Finding("x", "detail", "info").to_dict()
    assert Finding("x", "detail", "warning", action="look").to_dict()["action"] == "look"


# --------------------------------------------------------------------------- no false alarms


SKIMAGE_PHOTOGRAPHS = [
    "astronaut", "page", "text", "coffee", "chelsea", "camera", "rocket", "coins",
    "moon", "horse", "clock", "hubble_deep_field", "immunohistochemistry", "retina",
    "brick", "grass", "gravel", "logo", "colorwheel",
]  # fmt: skip
# photographs with text in them, also read enlarged (text then reaches the sizes searched)
WITH_TEXT = ["page", "text", "coffee", "rocket"]


def skimage_photograph(name: str) -> Image.Image:
    from skimage import data

    array = getattr(data, name)()
    if array.dtype != np.uint8:
        array = (array * 255 if array.max() <= 1 else array).astype(np.uint8)
    return Image.fromarray(array)


@requires_ocr
@pytest.mark.parametrize("name", SKIMAGE_PHOTOGRAPHS)
def test_real_photographs_with_and_without_text_come_out_none(name: str) -> None:
    image = skimage_photograph(name)
    variants = [image]
    if name in WITH_TEXT:
        variants.append(image.resize((image.width * 2, image.height * 2)))
    for picture in variants:
        report = verified(jpeg(picture))
        assert report["classification"] == "none", (picture.size, report["evidence"])


def test_real_photographs_show_no_brand_marks_without_ocr() -> None:
    for name in SKIMAGE_PHOTOGRAPHS:
        assert find_brand_marks(analyse(skimage_photograph(name))) == [], name
    for seed in range(2):
        assert find_brand_marks(analyse(busy(1024, 768, seed))) == []


@requires_ocr
def test_our_labelled_then_stripped_images_without_watermark_come_out_none() -> None:
    for seed, size in enumerate([(1280, 960), (1024, 1024), (720, 1280)]):
        original = jpeg(photo(*size, seed=30 + seed))
        labelled = _label_metadata_only(original)
        assert verified(labelled)["classification"] == "confirmed"
        stripped = jpeg(Image.open(io.BytesIO(labelled)))
        assert verified(stripped)["classification"] == "none"


def _label_metadata_only(data: bytes) -> bytes:
    """The record only: no visible label, no watermark (an omit-permission producer)."""
    options = FileOptions(explicit=False, watermark=False, c2pa=False)
    return label_file(data, Record.first_write(PRODUCER, new_produce_id()), options).data


def test_odd_images_are_searched_without_error() -> None:
    # every Pillow mode, an extreme aspect ratio, a flat frame, a frame of pure noise
    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8))
    images = [
        noise,
        flat(4000, 60, 128),
        flat(60, 3000, 30),
        Image.new("1", (500, 400), 1),
        Image.new("I;16", (500, 400), 40000),
        Image.new("F", (300, 300), 3.5),
        noise.convert("LA"),
        noise.convert("P"),
        Image.new("RGB", (47, 47)),
    ]
    for image in images:
        analysis = analyse(image)
        assert find_brand_marks(analysis) == [], image.mode
        result = find_visible_label(image, analysis=analysis)
        assert result is None or not result.found, (image.mode, image.size, result)
