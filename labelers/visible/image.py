"""The explicit (visible) label on images, per GB 45438 clause 5.

Owns how the label looks and where it sits: white CJK text on a rounded,
semi-opaque dark plate at an edge or corner, its glyph ink at least 5% of the
image's shortest side (aiming at 6%), placed in the orientation a viewer sees
(EXIF orientation) while the stored pixels stay un-rotated. Only the label's
rectangle is converted and drawn; the rest of the frame is not touched, so a
large photo costs little more than its decode and encode.

Speed: the label's masks (glyph coverage and rounded plate) are rendered once
per wording, ink size and orientation and kept in a byte-bounded, thread-safe
LRU (:class:`_SpriteCache`); layouts are cached per wording and image size. A
request then only measures the background under the label, scales the plate
mask to the opacity it needs and pastes two small solid images through the
masks (RGB and L frames, in place) or composites the small region in RGBA
(other modes). Cached masks and layouts are shared and never mutated.

Sizing rules (documented minimum):

- ink height ``t = max(ceil(5% of the shortest side), round(6% of it), 10 px)``;
  10 px is the smallest height at which the CJK wording stays legible;
- an image whose shortest side is under :data:`MIN_SHORT_SIDE` (120 px) is
  refused with :class:`InvalidOption`: a legible label would cover more than
  8% of it (the caller may omit the explicit label under Art. 9 instead);
- a wording too wide for the image is first drawn at the 5% minimum height,
  then wrapped into two lines (at a space or between CJK characters, first at
  ``t`` then at the minimum); if two lines still do not fit,
  :class:`InvalidOption` names the image size and the width needed.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from labelers.errors import InvalidOption
from labelers.fonts import cjk_font_path
from labelers.imaging import ORIENTATION_UNDO, Raster, luminance_plane

POSITIONS = (
    "top-left",
    "top",
    "top-right",
    "left",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
)
#: Smallest ink height (px) at which the CJK wording stays legible.
MIN_INK_PX = 10
#: Smallest shortest side (px): a 10 px label is then under 10% of it.
MIN_SHORT_SIDE = 120
MIN_FRACTION = 0.05  # GB 45438 clause 5: text height >= 5% of the shortest side
TARGET_FRACTION = 0.06
# ink rows count only where glyph coverage is at least this (of 255): the
# height is measured on solid ink, not on the anti-aliased fringe
_INK_COVERAGE = 204
_TEXT_RGB = (255, 255, 255)
_PLATE_RGB = (20, 20, 20)
# the plate darkens the background under the text to at most this sRGB level
# (white text on it keeps a contrast ratio above 6:1)
_MAX_UNDER_TEXT = 80
_PLATE_ALPHA_RANGE = (0.45, 0.9)
_SUPERSAMPLE = 4  # plate corners are drawn large and reduced: smooth rounded corners

_DIRECT_MODES = {"RGB", "RGBA", "L", "LA", "CMYK", "1", "LAB"}


def _srgb_lightness(level: int) -> int:
    """CIE L* of the sRGB grey ``level`` (0-255), scaled to 0-255 as Pillow's LAB stores it."""
    c = level / 255
    y = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    lightness = 116 * y ** (1 / 3) - 16 if y > 216 / 24389 else y * 24389 / 27
    return round(lightness * 255 / 100)


# modes drawn on directly: (plate fill, text fill) for paste()
_BLEND_FILLS: dict[str, tuple[int | tuple[int, ...], int | tuple[int, ...]]] = {
    "RGB": (_PLATE_RGB, _TEXT_RGB),
    # the plate's and the text's luma (ITU-R 601, as Pillow's convert("L"))
    "L": (
        round(0.299 * _PLATE_RGB[0] + 0.587 * _PLATE_RGB[1] + 0.114 * _PLATE_RGB[2]),
        round(0.299 * _TEXT_RGB[0] + 0.587 * _TEXT_RGB[1] + 0.114 * _TEXT_RGB[2]),
    ),
    # CIE L*a*b*: the same neutral greys (a* = b* = 0 is 128), L* scaled to 0-255;
    # blending in L*a*b* keeps them neutral, and the image needs no round trip
    # through a colour space Pillow cannot convert it to
    "LAB": ((_srgb_lightness(_PLATE_RGB[0]), 128, 128), (_srgb_lightness(_TEXT_RGB[0]), 128, 128)),
}
_WIDE_GRAY_MODES = {"I;16", "I;16L", "I;16B", "I"}


# --------------------------------------------------------------------------- fonts and sizing


@lru_cache(maxsize=8)
def _threshold_lut(level: int) -> list[int]:
    """A point() table: 255 from ``level`` up, else 0."""
    return [0] * level + [255] * (256 - level)


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(cjk_font_path()), size)


@lru_cache(maxsize=256)
def _ink_rows(size: int, text: str) -> tuple[int, int]:
    """(top, bottom) of the solid ink of ``text`` relative to its baseline."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    canvas = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), text, fill=255, font=font, anchor="ls")
    box = canvas.point(_threshold_lut(_INK_COVERAGE)).getbbox()
    if box is None:
        return 0, 0
    return box[1] - 2 + top, box[3] - 2 + top


def _ink_height(size: int, text: str) -> int:
    top, bottom = _ink_rows(size, text)
    return bottom - top


def _cjk_part(wording: str) -> str:
    # the standard's text height is that of the Chinese characters; Latin
    # descenders or small caps must not decide the size
    cjk = "".join(c for c in wording if ord(c) >= 0x2E80 and not c.isspace())
    return cjk or wording


@lru_cache(maxsize=256)
def _font_size_for_ink(ink: int, sample: str) -> int:
    """Smallest font size whose solid ink of ``sample`` is at least ``ink`` px tall."""
    size = max(4, round(ink / 0.93))
    while _ink_height(size, sample) < ink:
        size += 1
    while size > 4 and _ink_height(size - 1, sample) >= ink:
        size -= 1
    return size


def ink_targets(shortest_side: int) -> tuple[int, int]:
    """(minimum, aimed) ink height in px for an image with this shortest side."""
    minimum = max(math.ceil(MIN_FRACTION * shortest_side - 1e-9), MIN_INK_PX)
    aimed = max(minimum, round(TARGET_FRACTION * shortest_side))
    return minimum, aimed


class _Layout:
    """The label's plate size and where each line's baseline sits inside it.

    Layouts are cached and shared between threads: never mutated after construction.
    """

    def __init__(self, lines: list[str], size: int, ink: int) -> None:
        self.lines = tuple(lines)
        self.size = size
        self.font = _font(size)
        self.ink = ink
        boxes = [self.font.getbbox(line, anchor="ls") for line in lines]
        top = min(b[1] for b in boxes)
        bottom = max(b[3] for b in boxes)
        self.pad_x = max(2, round(0.45 * ink))
        self.pad_y = max(2, round(0.3 * ink))
        gap = max(1, round(0.3 * ink))
        line_h = bottom - top
        widths = [b[2] - b[0] for b in boxes]
        self.width = max(widths) + 2 * self.pad_x
        self.height = len(lines) * line_h + (len(lines) - 1) * gap + 2 * self.pad_y
        # (x, y) of each line's left baseline, lines centred on the plate
        self.origins = [
            (
                self.pad_x + (max(widths) - widths[i]) / 2 - boxes[i][0],
                self.pad_y - top + i * (line_h + gap),
            )
            for i in range(len(lines))
        ]
        self.margin = max(2, round(0.4 * ink))
        self.radius = max(1, round(0.3 * ink))

    def fits(self, width: int, height: int) -> bool:
        return self.width + 2 * self.margin <= width and self.height + 2 * self.margin <= height


# words a line break should not split, and marks a line break likes to follow
_KEEP_TOGETHER = ("人工智能", "生成", "合成", "AI")
_BREAK_AFTER = "，、；：。！？,;:/ "


def _two_lines(wording: str, font: ImageFont.FreeTypeFont) -> list[str] | None:
    """Split ``wording`` into two lines of even width, or None if it cannot break.

    Breaks at a space or next to a CJK character; a break after punctuation is
    preferred, one inside "人工智能", "生成" or "合成" avoided.
    """
    inside = set()
    for word in _KEEP_TOGETHER:
        start = wording.find(word)
        while start >= 0:
            inside.update(range(start + 1, start + len(word)))
            start = wording.find(word, start + 1)
    best: tuple[float, list[str]] | None = None
    for i in range(1, len(wording)):
        before, after = wording[i - 1], wording[i]
        breakable = (
            before.isspace() or after.isspace() or ord(before) >= 0x2E80 or ord(after) >= 0x2E80
        )
        if not breakable:
            continue
        first, second = wording[:i].rstrip(), wording[i:].lstrip()
        if not first or not second:
            continue
        score = max(font.getlength(first), font.getlength(second))
        if before in _BREAK_AFTER:
            score *= 0.85
        if i in inside:
            score *= 1.4
        if best is None or score < best[0]:
            best = (score, [first, second])
    return best[1] if best else None


@lru_cache(maxsize=512)
def _layout_for(wording: str, width: int, height: int) -> _Layout:
    """The layout for ``wording`` on a ``width`` x ``height`` display (cached: many
    images share a size, and measuring glyph boxes costs more than drawing)."""
    shortest = min(width, height)
    if shortest < MIN_SHORT_SIDE:
        raise InvalidOption(
            f"the image is {width}x{height} px, too small for a legible explicit label: "
            f"the label text must be at least 5% of the shortest side and at least "
            f"{MIN_INK_PX} px tall, which needs a shortest side of at least "
            f"{MIN_SHORT_SIDE} px. To label it implicitly only (record, watermark, C2PA), "
            "send explicit=none (CLI: --explicit none); that needs the omit_explicit "
            "permission and is logged with omit_reason (Measures Art. 9)"
        )
    minimum, aimed = ink_targets(shortest)
    sample = _cjk_part(wording)
    tried: list[_Layout] = []
    for lines_wanted in (1, 2):
        for ink in dict.fromkeys((aimed, minimum)):
            size = _font_size_for_ink(ink, sample)
            if lines_wanted == 1:
                lines = [wording]
            else:
                split = _two_lines(wording, _font(size))
                if split is None:
                    continue
                lines = split
            layout = _Layout(lines, size, ink)
            if layout.fits(width, height):
                return layout
            tried.append(layout)
    needed = min(tried, key=lambda lay: lay.width)
    raise InvalidOption(
        f"the wording {wording!r} does not fit a {width}x{height} px image: at the minimum "
        f"text height of {minimum} px (5% of the shortest side) it needs "
        f"{needed.width + 2 * needed.margin}x{needed.height + 2 * needed.margin} px even "
        "on two lines; use a shorter wording"
    )


def _place(position: str, layout: _Layout, width: int, height: int) -> tuple[int, int]:
    m = layout.margin
    if position.endswith("left") or position == "left":
        x = m
    elif position.endswith("right") or position == "right":
        x = width - m - layout.width
    else:
        x = (width - layout.width) // 2
    if position.startswith("top"):
        y = m
    elif position.startswith("bottom"):
        y = height - m - layout.height
    else:
        y = (height - layout.height) // 2
    return x, y


# --------------------------------------------------------------------------- drawing


def _stored_box(
    box: tuple[int, int, int, int], orientation: int, stored: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The stored-pixel rectangle that a viewer sees at display rectangle ``box``."""
    w, h = stored

    def to_stored(x: float, y: float) -> tuple[float, float]:
        return {
            1: (x, y),
            2: (w - x, y),
            3: (w - x, h - y),
            4: (x, h - y),
            5: (y, x),
            6: (y, h - x),
            7: (w - y, h - x),
            8: (w - y, x),
        }[orientation]

    (ax, ay), (bx, by) = to_stored(box[0], box[1]), to_stored(box[2], box[3])
    return int(min(ax, bx)), int(min(ay, by)), int(max(ax, bx)), int(max(ay, by))


def _plate_alpha(background: Image.Image) -> float:
    """How opaque the plate must be so that white text reads on this background."""
    _low, high = _PLATE_ALPHA_RANGE
    if background.mode == "RGBA" and np.asarray(background.getchannel("A")).mean() < 128:
        # mostly transparent: the viewer's backdrop is unknown, the plate must
        # carry the contrast itself
        return high
    # 95th percentile of luma from a histogram: the bright details decide
    luma = luminance_plane(background) if background.mode != "L" else background
    counts = np.asarray(luma.histogram(), dtype=np.float64)
    bright = float(np.searchsorted(np.cumsum(counts), 0.95 * counts.sum()))
    return plate_alpha_for(bright)


#: The plate's grey level (sRGB 0-255 luma) and the text's.
PLATE_LUMA = 0.299 * _PLATE_RGB[0] + 0.587 * _PLATE_RGB[1] + 0.114 * _PLATE_RGB[2]
TEXT_LUMA = 0.299 * _TEXT_RGB[0] + 0.587 * _TEXT_RGB[1] + 0.114 * _TEXT_RGB[2]


def plate_alpha_for(bright: float) -> float:
    """Plate opacity that darkens a background whose bright details reach luma
    ``bright`` (0-255, its 95th percentile) to at most the level white text reads on."""
    low, high = _PLATE_ALPHA_RANGE
    alpha = (bright - _MAX_UNDER_TEXT) / max(1.0, bright - PLATE_LUMA)
    return min(high, max(low, alpha))


def _scaled(mask: Image.Image, alpha: float) -> Image.Image:
    """``mask`` with every value multiplied by ``alpha`` (0-1), as a new image."""
    return Image.blend(Image.new("L", mask.size, 0), mask, alpha)


def _plate_shape(width: int, height: int, radius: int) -> Image.Image:
    """A rounded rectangle mask (255 inside) with anti-aliased corners."""
    radius = max(1, min(radius, width // 2, height // 2))
    s = _SUPERSAMPLE
    disc = Image.new("L", (2 * radius * s, 2 * radius * s), 0)
    ImageDraw.Draw(disc).ellipse((0, 0, 2 * radius * s - 1, 2 * radius * s - 1), fill=255)
    disc = disc.resize((2 * radius, 2 * radius), Image.Resampling.BOX)
    mask = Image.new("L", (width, height), 255)
    r = radius
    for (dx, dy), (x, y) in zip(
        ((0, 0), (r, 0), (0, r), (r, r)),
        ((0, 0), (width - r, 0), (0, height - r), (width - r, height - r)),
        strict=True,
    ):
        mask.paste(disc.crop((dx, dy, dx + r, dy + r)), (x, y))
    return mask


@dataclass(frozen=True)
class _Sprite:
    """The label's two masks for one layout, in the stored orientation.

    Shared between requests and threads through :data:`_SPRITES`: only ever
    read (as paste masks, point() sources), never drawn on.
    """

    shape: Image.Image  # "L": the plate, 255 inside, anti-aliased rounded corners
    text: Image.Image  # "L": the glyphs' coverage

    @property
    def nbytes(self) -> int:
        width, height = self.shape.size
        return 2 * width * height


def _render_sprite(layout: _Layout, orientation: int) -> _Sprite:
    shape = _plate_shape(layout.width, layout.height, layout.radius)
    text = Image.new("L", (layout.width, layout.height), 0)
    draw = ImageDraw.Draw(text)
    for line, origin in zip(layout.lines, layout.origins, strict=True):
        draw.text(origin, line, fill=255, font=layout.font, anchor="ls")
    undo = ORIENTATION_UNDO.get(orientation)
    if undo is not None:  # drawn upright as displayed, stored un-rotated
        shape, text = shape.transpose(undo), text.transpose(undo)
    return _Sprite(shape, text)


class _SpriteCache:
    """A thread-safe LRU of rendered sprites, bounded by their bytes.

    Rendering the glyphs and the plate costs more than drawing the label on
    a frame, and the same wording at the same ink size recurs (generators
    emit a few fixed sizes; every frame of an animation is the same size).
    A byte bound, not a count: a 100 MP image's sprite is ~8 MB, a 1 MP
    one's ~60 KB.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._used = 0
        self._items: OrderedDict[tuple, _Sprite] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, layout: _Layout, orientation: int) -> _Sprite:
        key = (layout.lines, layout.size, layout.ink, orientation)
        with self._lock:
            sprite = self._items.get(key)
            if sprite is not None:
                self._items.move_to_end(key)
                return sprite
        # rendered outside the lock: two threads may both render a new key,
        # which costs a little time but never blocks the others
        sprite = _render_sprite(layout, orientation)
        with self._lock:
            if key not in self._items and sprite.nbytes <= self._budget:
                self._items[key] = sprite
                self._used += sprite.nbytes
                while self._used > self._budget:
                    _, old = self._items.popitem(last=False)
                    self._used -= old.nbytes
        return sprite

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used = 0


_SPRITES = _SpriteCache(budget=32 * 1024 * 1024)


def _to_rgba(region: Image.Image) -> Image.Image:
    if region.mode in _WIDE_GRAY_MODES:
        arr = np.asarray(region, dtype=np.float64)
        eight_bit = (np.clip(arr, 0, 65535) / 257).round().astype(np.uint8)
        return Image.fromarray(eight_bit).convert("RGBA")
    return region.convert("RGBA")


def _from_rgba(labelled: Image.Image, original: Image.Image, frame: Image.Image) -> Image.Image:
    """``labelled`` (RGBA) back in the mode of ``original`` (a crop of ``frame``)."""
    mode = original.mode
    if mode in ("RGBA", "RGB", "L", "LA", "CMYK"):
        return labelled.convert(mode)
    if mode == "1":
        return labelled.convert("L").point(_threshold_lut(128)).convert("1")
    if mode in _WIDE_GRAY_MODES:
        # 8-bit label luma spread over the 16-bit range (0 -> 0, 255 -> 65535)
        luma = np.asarray(labelled.convert("L"), dtype=np.int64) * 257
        return _wide_gray(luma, mode)
    if mode == "P":
        return _to_palette(labelled, original, frame)
    raise InvalidOption(f"images in colour mode {mode} cannot take a visible label")


def _wide_gray(values: np.ndarray, mode: str) -> Image.Image:
    """A 16- or 32-bit grey image of ``mode`` holding ``values`` (rows x columns)."""
    if mode == "I":
        return Image.fromarray(values.astype(np.int32))
    dtype = ">u2" if mode == "I;16B" else "<u2"
    height, width = values.shape
    return Image.frombuffer(
        mode, (width, height), values.astype(dtype).tobytes(), "raw", mode, 0, 1
    )


def _to_palette(labelled: Image.Image, original: Image.Image, frame: Image.Image) -> Image.Image:
    """Map the label's colours onto the frame's palette, adding them if there is room.

    Transparent palette entries are never chosen, so the plate stays opaque.
    """
    palette = frame.getpalette() or []
    colours = np.array(palette, dtype=np.int32).reshape(-1, 3)
    alphas = np.full(len(colours), 255)
    transparency = frame.info.get("transparency")
    if isinstance(transparency, int) and transparency < len(colours):
        alphas[transparency] = 0
    elif isinstance(transparency, bytes):
        alphas[: len(transparency)] = np.frombuffer(transparency, np.uint8)[: len(colours)]
    wanted = [(255, 255, 255), _PLATE_RGB]
    added = False
    for colour in wanted:
        usable = colours[alphas == 255]
        nearest = np.abs(usable - colour).sum(axis=1).min() if len(usable) else 999
        if nearest > 24 and len(colours) < 256:
            colours = np.vstack([colours, colour])
            alphas = np.append(alphas, 255)
            added = True
    if added:
        frame.putpalette(colours.astype(np.uint8).ravel().tolist())
        if isinstance(transparency, bytes):
            frame.info["transparency"] = bytes(alphas.astype(np.uint8).tolist())
    candidates = np.flatnonzero(alphas == 255)
    if not len(candidates):  # a full palette of transparent entries: nothing opaque to use
        candidates = np.arange(len(colours))
    # nearest opaque colour per pixel, in C: Pillow maps onto a palette of the
    # usable entries only (padded with the first), and the index each pixel
    # gets there is translated back to the frame's palette
    usable = np.empty((256, 3), np.uint8)
    usable[: len(candidates)] = colours[candidates]
    usable[len(candidates) :] = colours[candidates[0]]
    reference = Image.new("P", (1, 1))
    reference.putpalette(usable.tobytes())
    mapped = labelled.convert("RGB").quantize(palette=reference, dither=Image.Dither.NONE)
    to_frame = np.full(256, candidates[0], np.uint8)
    to_frame[: len(candidates)] = candidates
    out = original.copy()
    out.frombytes(to_frame[np.asarray(mapped)].tobytes())
    return out


def draw_label(
    frame: Image.Image,
    wording: str,
    position: str = "bottom-right",
    *,
    orientation: int = 1,
    inplace: bool = False,
) -> Image.Image:
    """Draw the explicit label ``wording`` at ``position`` of ``frame``.

    ``position`` is an edge or corner as the viewer sees the image:
    top-left, top, top-right, left, right, bottom-left, bottom, bottom-right.
    ``orientation`` is the image's EXIF orientation: the label is drawn
    upright at that displayed position while the stored pixels keep their
    orientation. The output has the input's mode and size; only the label's
    rectangle changes. With ``inplace`` the frame itself is drawn on and
    returned (no full-frame copy).

    Raises InvalidOption for an unknown position, an image too small for a
    legible label (shortest side under 120 px), a wording that does not fit
    even on two lines at 5% height, or a colour mode that cannot be drawn on.
    """
    if position not in POSITIONS:
        raise InvalidOption(f"position must be one of {', '.join(POSITIONS)}, not {position!r}")
    if frame.mode not in _DIRECT_MODES | _WIDE_GRAY_MODES | {"P"}:
        raise InvalidOption(f"images in colour mode {frame.mode} cannot take a visible label")
    w, h = frame.size
    display = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    layout = _layout_for(wording, *display)
    x, y = _place(position, layout, *display)
    box = _stored_box((x, y, x + layout.width, y + layout.height), orientation, (w, h))
    sprite = _SPRITES.get(layout, orientation)

    target = frame if inplace else frame.copy()
    original = target.crop(box)
    if target.mode in _BLEND_FILLS:
        # opaque 8-bit pixels: paste-with-mask is exactly "over" compositing,
        # done in place on the label's rectangle only (no mode round trip,
        # pixels under a zero mask stay bit-identical); a solid image pastes
        # twice as fast as a fill colour
        plate_fill, text_fill = _BLEND_FILLS[target.mode]
        size = original.size
        plate = _scaled(sprite.shape, _plate_alpha(original))
        target.paste(Image.new(target.mode, size, plate_fill), box, plate)
        target.paste(Image.new(target.mode, size, text_fill), box, sprite.text)
        return target
    # alpha, palette, CMYK, bilevel and 16-bit frames: composite in RGBA, convert back
    work = _to_rgba(original)
    plate = _scaled(sprite.shape, _plate_alpha(work))
    plate_layer = Image.new("RGBA", work.size, (*_PLATE_RGB, 0))
    plate_layer.putalpha(plate)
    text_layer = Image.new("RGBA", work.size, (*_TEXT_RGB, 0))
    text_layer.putalpha(sprite.text)
    labelled = Image.alpha_composite(Image.alpha_composite(work, plate_layer), text_layer)
    result = _from_rgba(labelled, original, target)
    # only pixels the label covers are replaced: untouched ones stay bit-identical
    # even where a mode round trip (CMYK, palette, 16-bit) would shift them
    covered = sprite.shape.point(_threshold_lut(1))
    if target.mode in _WIDE_GRAY_MODES:
        # Pillow's masked paste addresses 16-bit pixels as bytes (the label
        # would land at half its x, half its width): merge here, paste whole
        merged = np.where(np.asarray(covered) > 0, np.asarray(result), np.asarray(original))
        target.paste(_wide_gray(merged, target.mode), box[:2])
    else:
        target.paste(result, box[:2], covered)
    return target


def label_sprite(
    wording: str, position: str, width: int, height: int, orientation: int = 1
) -> tuple[tuple[int, int, int, int], Image.Image, Image.Image, int]:
    """The label for a ``width`` x ``height`` stored frame, for callers that composite
    it themselves (video draws it on YUV planes, frame after frame).

    Returns the box (left, top, right, bottom) in stored pixels, the plate
    and glyph masks ("L", the box's size, in the stored orientation) and the
    ink height in displayed pixels. The same layout and sizing rules as
    :func:`draw_label`, and the same errors.
    """
    if position not in POSITIONS:
        raise InvalidOption(f"position must be one of {', '.join(POSITIONS)}, not {position!r}")
    display = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    layout = _layout_for(wording, *display)
    x, y = _place(position, layout, *display)
    box = _stored_box((x, y, x + layout.width, y + layout.height), orientation, (width, height))
    sprite = _SPRITES.get(layout, orientation)
    return box, sprite.shape, sprite.text, layout.ink


def label_frames(raster: Raster, wording: str, position: str = "bottom-right") -> Raster:
    """Draw the label on every frame of ``raster`` (in place) and return it.

    The label is placed in the displayed orientation (``raster.orientation``).
    """
    for frame in raster.frames:
        if frame.mode == "P" and raster.format == "GIF" and raster.transparency is not None:
            frame.info.setdefault("transparency", raster.transparency)
        draw_label(frame, wording, position, orientation=raster.orientation, inplace=True)
    return raster


# --------------------------------------------------------------------------- measuring


def _as_rgb_array(image: Image.Image) -> np.ndarray:
    return np.asarray(_to_rgba(image).convert("RGB"), dtype=np.int16)


def measure_ink_height(labelled: Image.Image, original: Image.Image) -> int:
    """Height in px of one line of label text in ``labelled``, found by diffing ``original``.

    The label's plate is the rectangle where the pixels differ; its text is
    the bright (luma >= 200) solid ink inside the plate, away from the
    rounded ends. For a two-line label the taller line counts. Returns 0
    when no label is found. Both images must be in the stored orientation.
    """
    new, old = _as_rgb_array(labelled), _as_rgb_array(original)
    changed = np.any(new != old, axis=2)
    if not changed.any():
        return 0
    rows = np.flatnonzero(changed.any(axis=1))
    cols = np.flatnonzero(changed.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    plate = new[top:bottom, left:right]
    luma = plate[..., 0] * 0.299 + plate[..., 1] * 0.587 + plate[..., 2] * 0.114
    bright = luma >= 200
    # the rounded corners may show a bright background: skip both ends by the
    # plate's short side (the corner radius is well under it)
    end = min(plate.shape[0], plate.shape[1]) // 2
    if plate.shape[1] >= plate.shape[0]:
        bright[:, :end] = False
        bright[:, plate.shape[1] - end :] = False
        ink_axis = 1
    else:  # a label drawn for a rotated display runs top to bottom in storage
        bright[:end, :] = False
        bright[plate.shape[0] - end :, :] = False
        ink_axis = 0
    lines = bright.any(axis=ink_axis)
    best = run = 0
    for has_ink in lines:
        run = run + 1 if has_ink else 0
        best = max(best, run)
    return int(best)
