"""Finding visible AI labels in images by OCR: labels the labeler draws, plain
captions, no false alarms on photos with other text, and OCR being optional.

The OCR-dependent tests need tesseract with its chi_sim data (Debian:
tesseract-ocr, tesseract-ocr-chi-sim); they are skipped without it, except in
CI where they must run.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from detectors import ocr
from detectors.ocr import VisibleLabelResult, find_visible_label, ocr_available
from labelers.fonts import cjk_font_path
from labelers.visible.image import draw_label
from labelers.visible.wording import PRESETS

requires_ocr = pytest.mark.skipif(
    not ocr_available() and not os.environ.get("CI"),
    reason="tesseract with chi_sim data is not installed "
    "(apt-get install tesseract-ocr tesseract-ocr-chi-sim); OCR is optional",
)

ZH = PRESETS["zh"]  # 人工智能生成
SHORT = PRESETS["zh-short"]  # AI生成
BILINGUAL = PRESETS["bilingual"]  # AI生成 / AI-generated


# --------------------------------------------------------------------------- images


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photographic-like scene: graded sky, a wavy horizon, ground, soft blobs, grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    sky = np.stack([90 + 60 * v, 150 + 50 * v, 230 - 40 * v], -1)
    ground = np.stack([60 + 40 * u, 110 + 30 * np.sin(u * 20 + seed), 40 + 20 * v], -1)
    horizon = 0.55 + 0.05 * np.sin(u * 8 + seed)
    arr = np.where((v > horizon)[..., None], ground, sky)
    for _ in range(5):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.03, 0.15) * max(width, height)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))[..., None]
        arr = arr * (1 - blob) + rng.uniform(0, 255, 3) * blob
    arr += rng.normal(0, 5, arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def gradient(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    arr = np.stack(
        [x / width * 200 + 30, y / height * 180 + 40, (x + y) / (width + height) * 150 + 60], -1
    )
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def flat(width: int, height: int, level: int, seed: int = 0) -> Image.Image:
    """A plain white or black ground with sensor grain."""
    rng = np.random.default_rng(seed)
    arr = level + rng.normal(0, 5, (height, width, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def busy(width: int, height: int, seed: int = 0) -> Image.Image:
    """A busy, colourful, high-contrast texture (fabric, foliage, a crowd)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6)
    arr = np.stack(
        [
            128 + 100 * np.sin(x / 7.0 + phase) * np.cos(y / 11.0),
            128 + 90 * np.sin((x + y) / 5.0),
            128 + 80 * np.cos(x / 3.0 - y / 9.0),
        ],
        -1,
    )
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


BACKGROUNDS = {
    "photo": photo,
    "gradient": gradient,
    "white": lambda w, h: flat(w, h, 245),
    "black": lambda w, h: flat(w, h, 12),
    "busy": busy,
}


def caption(
    image: Image.Image,
    text: str,
    position: str,
    fill: tuple[int, int, int],
    fraction: float = 0.06,
) -> Image.Image:
    """``text`` drawn straight on ``image`` (no plate) at a corner or edge."""
    image = image.copy()
    width, height = image.size
    font = ImageFont.truetype(str(cjk_font_path()), round(min(width, height) * fraction * 1.15))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = round(0.03 * min(width, height))
    if "left" in position:
        x = margin
    elif "right" in position:
        x = width - margin - (right - left)
    else:
        x = (width - (right - left)) // 2
    if "top" in position:
        y = margin
    elif "bottom" in position:
        y = height - margin - (bottom - top)
    else:
        y = (height - (bottom - top)) // 2
    draw.text((x - left, y - top), text, font=font, fill=fill)
    return image


def found(image: Image.Image) -> VisibleLabelResult:
    result = find_visible_label(image)
    assert result is not None, "OCR is installed, find_visible_label must not return None"
    return result


# --------------------------------------------------------------------------- drawn labels


LABELLED = [
    # (size, background, position, wording)
    ((640, 480), "photo", "bottom-right", ZH),
    ((640, 480), "white", "top-left", SHORT),
    ((640, 480), "black", "left", BILINGUAL),
    ((640, 480), "busy", "bottom", ZH),
    ((1920, 1080), "gradient", "top-right", ZH),
    ((1920, 1080), "photo", "right", SHORT),
    ((1920, 1080), "busy", "top-left", SHORT),
    ((1920, 1080), "white", "bottom-left", BILINGUAL),
    ((300, 300), "photo", "top", ZH),
    ((300, 300), "black", "bottom-right", SHORT),
    ((300, 300), "busy", "bottom-left", ZH),
    ((300, 300), "gradient", "left", BILINGUAL),
    ((480, 800), "white", "right", ZH),
    ((480, 800), "gradient", "top", BILINGUAL),
]


@requires_ocr
@pytest.mark.parametrize(
    ("size", "background", "position", "wording"),
    LABELLED,
    ids=[f"{w}x{h}-{bg}-{pos}-{text}" for (w, h), bg, pos, text in LABELLED],
)
def test_label_drawn_by_the_labeler_is_found_with_its_wording_and_place(
    size: tuple[int, int], background: str, position: str, wording: str
) -> None:
    image = draw_label(BACKGROUNDS[background](*size), wording, position)
    result = found(image)
    assert result.found, result
    assert wording.split(" / ")[0] in result.phrases, result
    if wording == BILINGUAL and result.region in ("top", "bottom", "left", "right"):
        assert "AI-generated" in result.phrases, result
    if background != "busy":
        # on a busy texture the line may take in texture beside the plate;
        # the edge it sits at is still right
        assert result.region == position, result
    else:
        assert set(result.region.split("-")) & set(position.split("-")), result


PLAIN = [
    # (background, text, position, text colour)
    ("photo", SHORT, "bottom-right", (255, 255, 255)),
    ("white", ZH, "top-left", (25, 25, 25)),
    ("black", "AI合成", "top-right", (235, 235, 235)),
    ("gradient", ZH, "top", (255, 240, 60)),
]


@requires_ocr
@pytest.mark.parametrize(
    ("background", "text", "position", "colour"),
    PLAIN,
    ids=[f"{bg}-{pos}-{text}" for bg, text, pos, _ in PLAIN],
)
def test_plain_caption_without_plate_is_found(
    background: str, text: str, position: str, colour: tuple[int, int, int]
) -> None:
    image = caption(BACKGROUNDS[background](1280, 720), text, position, colour)
    result = found(image)
    assert result.found, result
    assert result.phrases == [text], result
    assert result.region == position, result


@requires_ocr
def test_label_is_found_in_grey_transparent_and_palette_images() -> None:
    grey = draw_label(photo(800, 600, 3).convert("L"), ZH, "bottom-right")
    transparent = photo(800, 600, 4).convert("RGBA")
    transparent.putalpha(128)
    transparent = draw_label(transparent, SHORT, "top-left")
    palette = draw_label(photo(800, 600, 5).convert("P", palette=Image.Palette.ADAPTIVE), ZH, "top")
    for image, wording in ((grey, ZH), (transparent, SHORT), (palette, ZH)):
        result = found(image)
        assert result.found and wording in result.phrases, (image.mode, result)


@requires_ocr
def test_label_survives_recompression_and_downscaling_of_a_reupload() -> None:
    labelled = draw_label(photo(1600, 1200, 8), ZH, "bottom-right")
    half = labelled.resize((800, 600), Image.Resampling.LANCZOS)
    for image in (labelled, half):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=60)
        result = found(Image.open(io.BytesIO(buffer.getvalue())))
        assert result.found and result.phrases == [ZH], result
        assert result.region == "bottom-right", result


# --------------------------------------------------------------------------- no false alarms


def unlabelled() -> list[tuple[str, Image.Image]]:
    sizes = [(640, 480), (1920, 1080), (300, 300), (480, 800), (1024, 1024)]
    images = [(f"photo-{i}", photo(*sizes[i % 5], seed=i)) for i in range(8)]
    images += [
        ("gradient", gradient(800, 600)),
        ("white", flat(800, 600, 245)),
        ("black", flat(800, 600, 12)),
        ("busy", busy(800, 600)),
        ("busy-hd", busy(1920, 1080, seed=2)),
        # other text at the corners and edges: captions, credits, date stamps
        ("year-caption", caption(photo(800, 600, 11), "2025年 摄影", "bottom-right", (255,) * 3)),
        ("credit", caption(flat(800, 600, 245), "© 张三摄影", "bottom-left", (40,) * 3)),
        (
            "date-stamp",
            caption(photo(1024, 768, 12), "2025-06-01 14:32", "bottom-right", (255, 160, 40)),
        ),
        ("ai-word-only", caption(photo(800, 600, 13), "AI 摄影展 2025", "top-left", (255,) * 3)),
        ("generation-word-only", caption(gradient(800, 600), "生成式设计大赛", "top", (255,) * 3)),
        ("ai-topic", caption(flat(800, 600, 12), "人工智能大会", "bottom", (230,) * 3)),
        ("english", caption(photo(640, 480, 14), "Hello World", "top-right", (255,) * 3)),
    ]
    return images


@requires_ocr
def test_no_label_is_found_in_unlabelled_images_even_with_other_text() -> None:
    false_alarms = []
    for name, image in unlabelled():
        result = found(image)
        if result.found:
            false_alarms.append((name, result))
    assert not false_alarms


@requires_ocr
def test_label_in_the_middle_of_the_image_is_not_an_edge_label() -> None:
    image = caption(photo(1280, 720, 21), ZH, "center", (255, 255, 255))
    assert not found(image).found


# --------------------------------------------------------------------------- OCR is optional


def fake_tesseract(tmp_path: Path, languages: str, reading: str = "") -> str:
    """A stand-in tesseract that lists ``languages`` and runs ``reading`` (Python) to OCR."""
    script = tmp_path / "tesseract"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "if '--list-langs' in sys.argv:\n"
        f"    print('List of available languages in \"/x/\" (2):')\n"
        f"    print({languages!r})\n"
        "    sys.exit(0)\n"
        "sys.stdin.buffer.read()\n"
        f"{reading}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_without_tesseract_the_search_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "TESSERACT", "tesseract-not-installed-here")
    assert ocr_available() is False
    assert find_visible_label(draw_label(photo(640, 480), ZH, "bottom-right")) is None


def test_without_chinese_data_the_search_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr, "TESSERACT", fake_tesseract(tmp_path, "eng\nosd"))
    assert ocr_available() is False
    assert find_visible_label(draw_label(photo(640, 480), ZH, "bottom-right")) is None


def test_slow_ocr_is_cut_off_and_reported_as_timed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = fake_tesseract(tmp_path, "chi_sim\neng", reading="time.sleep(30)")
    monkeypatch.setattr(ocr, "TESSERACT", binary)
    assert ocr_available() is True
    result = find_visible_label(draw_label(photo(640, 480), ZH, "bottom-right"), timeout=0.5)
    assert result is not None
    assert result.timed_out and not result.found
    assert result.candidates >= 1


def test_images_without_text_near_the_edges_are_not_sent_to_ocr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tesseract that fails loudly if run: smooth photos and tiny images must
    # be settled by the cheap pre-check alone
    binary = fake_tesseract(tmp_path, "chi_sim", reading="sys.exit('OCR was run')")
    monkeypatch.setattr(ocr, "TESSERACT", binary)
    for image in (
        photo(1920, 1080, 7),
        gradient(640, 480),
        flat(300, 300, 245),
        draw_label(photo(200, 200), ZH).resize((40, 40)),
    ):
        result = find_visible_label(image)
        assert result == VisibleLabelResult(found=False), result


def test_ocr_text_is_tidied_before_matching() -> None:
    # tesseract spaces CJK characters apart and reads the sans-serif "I" of AI as "l"
    assert ocr._tidy(" 人 工 智 能 生 成 ") == "人工智能生成"
    assert ocr._tidy("Al 生 成 / Al-generated") == "AI生成 / AI-generated"
    assert ocr._tidy("Alibaba 2025") == "Alibaba 2025"
