"""The visible image label: size per GB 45438 clause 5, place, legibility, every frame, modes."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin

from labelers.errors import InvalidOption
from labelers.imaging import open_raster, save_raster
from labelers.visible.image import (
    MIN_SHORT_SIDE,
    POSITIONS,
    _layout_for,
    _SpriteCache,
    draw_label,
    label_frames,
    measure_ink_height,
)

WORDING = "人工智能生成"


def photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """Photographic-like RGB content: smooth gradients, soft blobs and grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = x / width * 220 + 20
    g = y / height * 200 + 30
    b = 128 + 90 * np.sin(x / 41.0) * np.cos(y / 57.0)
    arr = np.stack([r, g, b], -1) + rng.normal(0, 5, (height, width, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def busy(width: int, height: int) -> Image.Image:
    """High-contrast texture: black and white stripes and checks."""
    y, x = np.mgrid[0:height, 0:width]
    arr = (((x // 3) + (y // 7)) % 2 * 255).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def changed_box(a: Image.Image, b: Image.Image, tolerance: int = 0) -> tuple[int, int, int, int]:
    """Bounding box of pixels differing by more than ``tolerance`` (lossy codecs move all)."""
    delta = np.abs(np.asarray(a.convert("RGB"), np.int16) - np.asarray(b.convert("RGB"), np.int16))
    diff = delta.max(axis=2) > tolerance
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize(
    "size",
    [(1200, 800), (800, 1200), (640, 640), (4000, 500), (500, 3000), (200, 150), (130, 170)],
    ids=["landscape", "portrait", "square", "panorama", "tall", "small", "tiny-portrait"],
)
def test_ink_height_is_at_least_five_percent_of_shortest_side(size):
    img = photo(*size)
    out = draw_label(img, WORDING)
    ink = measure_ink_height(out, img)
    shortest = min(size)
    assert ink >= 0.05 * shortest
    assert ink <= 0.10 * shortest  # a label, not a banner
    if shortest >= 300:
        assert ink <= 0.065 * shortest  # aimed at ~6%


def test_short_wordings_are_sized_on_their_chinese_characters():
    img = photo(900, 600)
    for wording in ("AI生成", "AI合成"):
        ink = measure_ink_height(draw_label(img, wording), img)
        assert 0.05 * 600 <= ink <= 0.065 * 600, wording
    # Latin descenders and the slash reach lower than the Chinese glyphs
    bilingual = measure_ink_height(draw_label(img, "AI生成 / AI-generated"), img)
    assert 0.05 * 600 <= bilingual <= 0.075 * 600


def test_too_small_image_is_refused_with_the_minimum():
    with pytest.raises(InvalidOption, match=rf"80x60 px.*{MIN_SHORT_SIDE} px"):
        draw_label(photo(80, 60), WORDING)


def test_wording_too_wide_for_one_line_wraps_to_two():
    img = photo(125, 900)
    out = draw_label(img, "本图片由人工智能生成，仅供参考")
    left, top, right, bottom = changed_box(out, img)
    assert right - left <= 125
    ink = measure_ink_height(out, img)
    assert ink >= 0.05 * 125
    # two lines: the plate is more than two ink heights tall
    assert bottom - top > 2 * ink


def test_wording_that_cannot_fit_even_wrapped_is_refused():
    long = "本图片由人工智能生成" + "，仅供参考" * 6
    with pytest.raises(InvalidOption, match="does not fit"):
        draw_label(photo(300, 2000), long)


def test_unknown_position_is_refused():
    with pytest.raises(InvalidOption, match="position"):
        draw_label(photo(300, 200), WORDING, "centre")


# --------------------------------------------------------------------------- place


@pytest.mark.parametrize("position", POSITIONS)
def test_label_sits_at_the_requested_edge_or_corner(position):
    img = photo(900, 600)
    out = draw_label(img, WORDING, position)
    left, top, right, bottom = changed_box(out, img)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    horizontal = "left" if "left" in position else "right" if "right" in position else "middle"
    vertical = (
        "top"
        if position.startswith("top")
        else "bottom"
        if position.startswith("bottom")
        else "middle"
    )
    assert {"left": cx < 300, "right": cx > 600, "middle": 300 < cx < 600}[horizontal]
    assert {"top": cy < 100, "bottom": cy > 500, "middle": 200 < cy < 400}[vertical]
    # a small margin from the edges, proportional to the size
    if horizontal == "right":
        assert 3 <= 900 - right <= 30
    if vertical == "bottom":
        assert 3 <= 600 - bottom <= 30


def test_only_the_label_rectangle_changes():
    img = photo(800, 600)
    out = draw_label(img, WORDING)
    left, top, right, bottom = changed_box(out, img)
    a, b = np.asarray(out).copy(), np.asarray(img).copy()
    a[top:bottom, left:right] = 0
    b[top:bottom, left:right] = 0
    assert np.array_equal(a, b)
    assert (right - left) * (bottom - top) < 0.05 * 800 * 600


@pytest.mark.parametrize("orientation", range(1, 9))
def test_label_is_upright_at_displayed_bottom_right_for_every_exif_orientation(orientation):
    stored = photo(600, 400)
    out = draw_label(stored, WORDING, orientation=orientation)
    assert out.size == stored.size  # pixels stay in stored orientation

    def shown(image: Image.Image) -> Image.Image:
        image = image.copy()
        exif = image.getexif()
        exif[0x0112] = orientation
        image.info["exif"] = exif.tobytes()
        return ImageOps.exif_transpose(image)

    before, after = shown(stored), shown(out)
    left, top, right, bottom = changed_box(after, before)
    width, height = after.size
    assert right > width - 40 and bottom > height - 40
    assert right - left > 3 * (bottom - top)  # a horizontal line of text as displayed
    assert measure_ink_height(after, before) >= 0.05 * min(width, height)


# --------------------------------------------------------------------------- legibility


def _plate_and_ink(out: Image.Image, original: Image.Image) -> tuple[float, float]:
    left, top, right, bottom = changed_box(out, original)
    region = np.asarray(out.convert("L"), np.float32)[top:bottom, left:right]
    inner = region[:, (bottom - top) : (right - left) - (bottom - top)]
    ink = inner[inner >= 200]
    plate = inner[inner < 120]
    return float(np.median(plate)), float(np.median(ink))


BACKGROUNDS = {
    "white": lambda: Image.new("RGB", (800, 600), "white"),
    "black": lambda: Image.new("RGB", (800, 600), "black"),
    "busy": lambda: busy(800, 600),
    "photo": lambda: photo(800, 600),
}


@pytest.mark.parametrize("name", BACKGROUNDS)
def test_white_text_on_a_dark_plate_reads_on_any_background(name):
    background = BACKGROUNDS[name]()
    out = draw_label(background, WORDING)
    plate, ink = _plate_and_ink(out, background)
    assert ink >= 240
    assert plate <= 90  # white on this is a contrast ratio of about 5:1 or more
    # the plate is translucent where it can be: a dark photo still shows through
    if name == "black":
        assert plate < 15


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1"])
def test_mode_is_kept_and_label_is_full_size(mode):
    base = photo(480, 320)
    if mode == "P":
        img = base.quantize(100)
    elif mode == "I;16":
        arr = np.asarray(base.convert("L"), np.uint16) * 257
        img = Image.frombuffer("I;16", base.size, arr.astype("<u2").tobytes(), "raw", "I;16", 0, 1)
    else:
        img = base.convert(mode)
    out = draw_label(img, WORDING)
    assert out.mode == mode and out.size == img.size
    assert measure_ink_height(out, img) >= 0.05 * 320
    # the whole plate, where the RGB label's plate is (16-bit pixels are not bytes)
    expected = changed_box(draw_label(base, WORDING), base)
    left, top, right, bottom = changed_box(_as_8bit(out), _as_8bit(img))
    assert abs(left - expected[0]) <= 2 and abs(top - expected[1]) <= 2
    assert (right, bottom) == expected[2:]


def _as_8bit(img: Image.Image) -> Image.Image:
    if img.mode == "I;16":
        return Image.fromarray((np.asarray(img) // 257).astype(np.uint8))
    return img


def test_palette_label_never_uses_the_transparent_colour():
    img = photo(300, 200).quantize(60)
    # make the darkest colour the transparent one: the plate must not pick it
    lum = np.asarray(img.getpalette()[: 60 * 3]).reshape(-1, 3).sum(axis=1)
    transparent = int(lum.argmin())
    img.info["transparency"] = transparent
    out = draw_label(img, WORDING)
    left, top, right, bottom = changed_box(out, img)
    region = np.asarray(out)[top:bottom, left:right]
    original = np.asarray(img)[top:bottom, left:right]
    changed = region != original
    assert not np.any(region[changed] == transparent)


def test_rgba_label_is_opaque_over_transparent_pixels():
    img = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    out = draw_label(img, WORDING)
    left, top, right, bottom = changed_box(out, img)
    alpha = np.asarray(out.getchannel("A"))[top:bottom, left:right]
    assert np.median(alpha) > 200


# --------------------------------------------------------------------------- whole files


def _encode(frames: list[Image.Image], fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **options)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_every_frame_of_an_animation_is_labelled_and_timing_survives(fmt):
    frames = [photo(240, 180, seed=i) for i in range(3)]
    if fmt == "GIF":
        frames = [f.quantize(128) for f in frames]
    data = _encode(frames, fmt, duration=[90, 140, 300], loop=4)
    raster = open_raster(data, f"image/{fmt.lower()}")
    originals = [f.convert("RGB") for f in raster.frames]
    out = Image.open(io.BytesIO(save_raster(label_frames(raster, WORDING))))
    assert out.n_frames == 3 and out.info["loop"] == 4
    for i in range(3):
        out.seek(i)
        out.load()
        assert out.info["duration"] == [90, 140, 300][i]
        frame = out.convert("RGB")
        left, top, _right, _bottom = changed_box(frame, originals[i], tolerance=40)
        assert left > 120 and top > 130  # bottom-right
        if fmt == "GIF":  # re-quantised but not blurred: the ink can be measured
            assert measure_ink_height(frame, originals[i]) >= 0.05 * 180


def test_labelled_jpeg_keeps_tables_sampling_and_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    photo(800, 600).save(
        buf, "JPEG", quality=83, subsampling="4:4:4", exif=exif.tobytes(), dpi=(72, 72)
    )
    src = buf.getvalue()
    out = save_raster(label_frames(open_raster(src, "image/jpeg"), WORDING))
    before, after = Image.open(io.BytesIO(src)), Image.open(io.BytesIO(out))
    assert after.quantization == before.quantization
    assert JpegImagePlugin.get_sampling(after) == 0
    assert after.getexif()[0x0112] == 6 and after.size == (800, 600)
    shown_before, shown_after = ImageOps.exif_transpose(before), ImageOps.exif_transpose(after)
    diff = np.abs(np.asarray(shown_after, np.int16) - np.asarray(shown_before, np.int16)).max(2)
    rows, cols = np.flatnonzero((diff > 40).any(1)), np.flatnonzero((diff > 40).any(0))
    # displayed 600x800: the label is at its bottom-right
    assert cols[0] > 300 and rows[0] > 700


def test_labelled_png_keeps_untouched_pixels_bit_exact():
    img = photo(500, 400)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    raster = label_frames(open_raster(buf.getvalue(), "image/png"), WORDING, "top-left")
    out = Image.open(io.BytesIO(save_raster(raster)))
    _left, _top, right, bottom = changed_box(out, img)
    assert right < 250 and bottom < 60
    a, b = np.asarray(out).copy(), np.asarray(img).copy()
    a[:bottom, :right] = b[:bottom, :right] = 0
    assert np.array_equal(a, b)


# --------------------------------------------------------------------------- shared caches


def test_labelling_from_a_thread_pool_matches_labelling_one_at_a_time():
    # wordings no other test uses: the threads start on a cold cache and race
    # to render the same label masks
    jobs = [
        (size, wording, position, orientation)
        for size in ((640, 480), (480, 640), (300, 200))
        for wording in ("并发测试：AI生成", "并发测试：人工智能合成")
        for position, orientation in (("bottom-right", 1), ("top-left", 6), ("top", 3))
    ]
    images = {size: photo(*size, seed=sum(size)) for size in ((640, 480), (480, 640), (300, 200))}

    def label(job: tuple) -> np.ndarray:
        size, wording, position, orientation = job
        out = draw_label(images[size], wording, position, orientation=orientation)
        return np.asarray(out)

    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(label, jobs * 3))
    one_at_a_time = [label(job) for job in jobs]
    for i, result in enumerate(concurrent):
        assert np.array_equal(result, one_at_a_time[i % len(jobs)]), jobs[i % len(jobs)]
    # the inputs were never drawn on (no in-place label leaked into a shared image)
    for size, img in images.items():
        assert np.array_equal(np.asarray(img), np.asarray(photo(*size, seed=sum(size))))


def test_label_mask_cache_stays_within_its_byte_budget():
    budget = 200_000
    cache = _SpriteCache(budget)
    layouts = [_layout_for("人工智能生成", side * 2, side) for side in range(300, 1300, 100)]
    sprites = [cache.get(layout, 1) for layout in layouts]
    assert sum(s.nbytes for s in sprites) > 2 * budget  # more than fits
    assert cache._used <= budget
    # the most recent is kept and handed out again, not re-rendered
    assert cache.get(layouts[-1], 1) is sprites[-1]
    # a rotated display gets its own, transposed masks
    assert cache.get(layouts[-1], 6).shape.size == sprites[-1].shape.size[::-1]
