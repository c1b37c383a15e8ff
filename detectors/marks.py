"""Finding generators' brand marks at the edges of an image, from templates drawn here.

Some generators mark their images with a logo rather than a wording: Gemini
a four-pointed sparkle, Jimeng (ByteDance) a swept-sail logo followed by its
wordmark 即梦AI. Neither carries the generation element (生成 / 合成) GB
45438 clause 5 asks for, so they are a generator trace, not a label.

How: the templates are drawn by this module (no vendor artwork is shipped)
as filled outlines in a unit box. Each ink component at an edge or corner
of the reduced copy (the same :func:`detectors.ocr.analyse` the OCR finder
uses: light and dark ink against the ground under it) is cut out at its own
bounding box, resampled to the template's grid and compared by overlap
(intersection over union). Resampling to the component's box matches every
scale at once; the component's aspect ratio must agree with the template's.
A shape alone is weak evidence, so a template also states its context: the
Jimeng logo must be followed by a text line of its height (the wordmark),
the sparkle must stand alone (phone editors draw a sparkle *before* their
AI-generation phrase; that is a label, found by OCR).

Needs no OCR: brand marks are found with or without tesseract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from detectors.ocr import EdgeAnalysis, VisibleMark

_GRID = 32  # templates and components are compared on a grid this size
_DRAW = 256  # templates are drawn at this size, then reduced to the grid
# shapes this close to a template's threshold on the reduced copy are
# compared again at full resolution
_REFINE_MARGIN = 0.12
# shapes of a mark's size compared per mask at most (bounds the work on noise)
_MAX_SHAPES = 2000


@dataclass(frozen=True)
class MarkTemplate:
    name: str
    brand: str
    generator: str
    outline: Callable[[], list[tuple[float, float]]]  # polygon in a unit box
    aspect: float  # width / height of the mark
    context: str  # "wordmark-right" | "alone"
    min_overlap: float = 0.72


def _sparkle() -> list[tuple[float, float]]:
    """A four-pointed sparkle with concave sides: |x|^k + |y|^k = 1, k < 1."""
    k = 0.7
    points = []
    for t in np.linspace(0, 2 * np.pi, 240, endpoint=False):
        c, s = np.cos(t), np.sin(t)
        x = np.sign(c) * abs(c) ** (2 / k)
        y = np.sign(s) * abs(s) ** (2 / k)
        points.append((0.5 + 0.5 * x, 0.5 + 0.5 * y))
    return points


def _sail() -> list[tuple[float, float]]:
    """A swept sail: a tip at the top, a long point to the right, a foot at the
    bottom left; the upper edge curves in, the back is nearly upright."""
    return [
        (0.17, 0.0),
        (0.23, 0.12),
        (0.30, 0.26),
        (0.42, 0.34),
        (0.60, 0.39),
        (1.0, 0.43),
        (1.0, 0.50),
        (0.82, 0.58),
        (0.64, 0.66),
        (0.50, 0.77),
        (0.37, 0.88),
        (0.17, 1.0),
        (0.0, 1.0),
        (0.08, 0.84),
        (0.15, 0.72),
        (0.21, 0.60),
        (0.22, 0.30),
        (0.18, 0.10),
    ]


#: The brand marks searched for. Add a row for a new vendor's mark.
TEMPLATES: tuple[MarkTemplate, ...] = (
    MarkTemplate("gemini-sparkle", "Gemini", "Google Gemini", _sparkle, 1.0, "alone"),
    MarkTemplate(
        "jimeng-logo", "Jimeng", "ByteDance Jimeng", _sail, 36 / 32, "wordmark-right", 0.66
    ),
)


@dataclass(frozen=True)
class BrandMark:
    template: str
    overlap: float
    mark: VisibleMark


@cache
def _template_grid(name: str) -> np.ndarray:
    template = next(t for t in TEMPLATES if t.name == name)
    canvas = Image.new("L", (_DRAW, _DRAW), 0)
    ImageDraw.Draw(canvas).polygon(
        [(x * (_DRAW - 1), y * (_DRAW - 1)) for x, y in template.outline()], fill=255
    )
    return _to_grid(np.asarray(canvas) > 127)


def _to_grid(shape: np.ndarray) -> np.ndarray:
    """A boolean shape resampled to the comparison grid (area-weighted)."""
    image = Image.fromarray(shape.astype(np.uint8) * 255)
    return np.asarray(image.resize((_GRID, _GRID), Image.Resampling.BOX)) > 127


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def find_brand_marks(analysis: EdgeAnalysis | None) -> list[BrandMark]:
    """The brand marks at the edges and corners of the analysed image."""
    if analysis is None:
        return []
    rows, cols = analysis.small.shape
    hmin, hmax = analysis.text_heights
    found: list[BrandMark] = []
    for bright, mask in analysis.masks:
        labels, count = ndimage.label(mask)
        if not count:
            continue
        slices = ndimage.find_objects(labels)
        # size and place in bulk: noise makes tens of thousands of specks
        boxes = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in slices])
        tops, bottoms, lefts, rights = boxes.T
        heights = bottoms - tops
        keep = (heights >= max(8, hmin)) & (heights <= 2 * hmax)
        # (a shape cut by the frame is background)
        keep &= (tops > 0) & (lefts > 0) & (bottoms < rows) & (rights < cols)
        for index in (np.flatnonzero(keep)[:_MAX_SHAPES] + 1).tolist():
            sl = slices[index - 1]
            top, bottom, left, right = boxes[index - 1].tolist()
            h, w = bottom - top, right - left
            fitting = [t for t in TEMPLATES if 0.8 <= (w / h) / t.aspect <= 1.25]
            if not fitting or not analysis.near_edge(top, bottom, left, right):
                continue
            grid = _to_grid(ndimage.binary_fill_holes(labels[sl] == index))
            for template in fitting:
                score = _overlap(grid, _template_grid(template.name))
                if score < template.min_overlap - _REFINE_MARGIN:
                    continue
                if score < template.min_overlap:
                    # a small mark is coarse on the reduced copy: look again
                    # at full resolution before giving up on it
                    score = max(score, _full_resolution_overlap(analysis, template, bright, sl))
                    if score < template.min_overlap:
                        continue
                box = _in_context(template, analysis, bright, (top, bottom, left, right))
                if box is not None:
                    mark = _mark(analysis, template, box, h)
                    found.append(BrandMark(template.name, round(score, 3), mark))
    return _best_per_place(found)


def _full_resolution_overlap(
    analysis: EdgeAnalysis, template: MarkTemplate, bright: bool, sl: tuple[slice, slice]
) -> float:
    """The template's overlap with the shape cut from the full-resolution image
    (Otsu's threshold in the shape's box and a margin around it)."""
    left, top, width, height = analysis.box(sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
    margin = max(2, height // 4)
    crop = np.asarray(
        analysis.grey.crop(
            (left - margin, top - margin, left + width + margin, top + height + margin)
        )
    )
    ink = crop > _otsu(crop) if bright else crop <= _otsu(crop)
    labels, count = ndimage.label(ink)
    if not count:
        return 0.0
    # the shape is the largest component inside the margin
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    for frame in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        areas[np.unique(frame)] = 0
    areas[0] = 0
    index = int(np.argmax(areas))
    if not areas[index]:
        return 0.0
    shape_sl = ndimage.find_objects((labels == index).astype(np.int32))[0]
    shape = ndimage.binary_fill_holes(labels[shape_sl] == index)
    h, w = shape.shape
    if not 0.8 <= (w / h) / template.aspect <= 1.25:
        return 0.0
    return _overlap(_to_grid(shape), _template_grid(template.name))


def _otsu(values: np.ndarray) -> int:
    counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * np.arange(256))
    between = (mass[-1] * weight / total - mass) ** 2 / np.maximum(weight * (total - weight), 1e-9)
    return int(np.argmax(between))


def _best_per_place(found: list[BrandMark]) -> list[BrandMark]:
    """One mark per place: the light and dark views, or both masks, may find the same."""
    kept: list[BrandMark] = []
    for candidate in sorted(found, key=lambda m: -m.overlap):
        l1, t1, w1, h1 = candidate.mark.box
        if not any(
            min(l1 + w1, k.mark.box[0] + k.mark.box[2]) > max(l1, k.mark.box[0])
            and min(t1 + h1, k.mark.box[1] + k.mark.box[3]) > max(t1, k.mark.box[1])
            for k in kept
        ):
            kept.append(candidate)
    return kept


def _in_context(
    template: MarkTemplate,
    analysis: EdgeAnalysis,
    bright: bool,
    shape: tuple[int, int, int, int],
) -> tuple[int, int, int, int] | None:
    """The whole mark's box (top, bottom, left, right) when the shape sits in its
    template's context, else None."""
    top, bottom, left, right = shape
    h, w = bottom - top, right - left

    def beside(block) -> bool:
        shared = min(block.bottom, bottom) - max(block.top, top)
        return block.bright == bright and shared >= 0.5 * min(block.line_height, h)

    if template.context == "wordmark-right":
        for block in analysis.blocks:
            if (
                beside(block)
                and 0.3 * h <= block.line_height <= 1.6 * h
                and block.right > right + w
                and block.left < right + 1.5 * w
            ):
                return (
                    min(top, block.top),
                    max(bottom, block.bottom),
                    left,
                    max(right, block.right),
                )
        return None
    # alone: no text line runs on from it to either side
    for block in analysis.blocks:
        runs_on = block.right > left - 1.5 * w and block.left < right + 1.5 * w
        if beside(block) and runs_on and block.right - block.left > 2 * w:
            return None
    return top, bottom, left, right


def _mark(
    analysis: EdgeAnalysis, template: MarkTemplate, box: tuple[int, int, int, int], height: int
) -> VisibleMark:
    top, bottom, left, right = box
    return VisibleMark(
        kind="brand",
        phrases=[],
        region=analysis.region(top, bottom, left, right),
        text="",
        box=analysis.box(top, bottom, left, right),
        height_px=round(height * analysis.scale),
        shortest_side=min(analysis.size),
        brand=template.brand,
        generator=template.generator,
    )
