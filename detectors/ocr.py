"""Finding visible AI labels and wordmarks in images by OCR (optional).

Owns the search for visible AI-generation wording at an image's edges and
corners: our own "人工智能生成" labels, and what other generators and phone AI
editors draw (Doubao's faint 豆包AI生成, Samsung's "Contenuti generati
dall'AI", ...), so that verification can call an image without a metadata
record *suspected* AI content (Measures Art. 6(3)) even after a re-upload
stripped its metadata, and notice a labelled image whose label is gone or too
small. It also owns the OCR-free edge analysis (:func:`analyse`) that the
brand-mark templates of :mod:`detectors.marks` share.

OCR is optional: it needs the ``tesseract`` program with its ``chi_sim`` data
(Debian: ``tesseract-ocr``, ``tesseract-ocr-chi-sim``). Without
them :func:`find_visible_label` returns None and the service works as before.

How, and why so:

- GB 45438 clause 5 puts an image's label at an edge or corner; generators
  draw theirs smaller than the 5% the standard asks (about 3%, phone editors
  2%), so text lines from 1.2% of the shortest side up are searched, only in
  the edge and corner zones (whole-image OCR was slow and misread).
- Candidate lines are found without OCR on a reduced grey copy: pixels
  brighter (or darker) than the ground under them are grouped into
  glyph-sized components, and components of similar height side by side into
  lines. The ground is judged two ways: against the local mean (text on a
  plate among a busy texture) and against the image with thin strokes opened
  away (faint semi-transparent white, which a mean pulled up by bold text
  would hide). A photo without text near its edges yields no line and costs
  no OCR at all.
- Each candidate line is cropped from the full-resolution image, scaled to a
  fixed text height, binarised as dark text on white (light-on-dark plates are
  inverted) and stacked into one strip: a single tesseract process reads every
  candidate, since starting tesseract with its Chinese model costs about as
  much as reading a few lines. chi_sim reads the Latin scripts of the phone
  editors' wordings well enough for the tolerant match below.
- The text is matched against the phrase table of
  :mod:`detectors.visible_phrases` after folding what OCR gets wrong (case,
  spaces, accents, apostrophes, I/l, the 生 of heavy fonts read as 主), with a
  few edits tolerated only in long Latin phrases.

The image must be passed as a viewer sees it (EXIF orientation applied, e.g.
``ImageOps.exif_transpose``); boxes are in its pixels. Text set vertically
(one character per row) is not searched.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from detectors.visible_phrases import BRAND_WORDMARKS, CONFUSABLES, LABEL_PHRASES, Phrase

#: The tesseract program: a name looked up on PATH, or a path. Deployments
#: with tesseract elsewhere (and tests simulating its absence) set this.
TESSERACT = "tesseract"
#: The time one search may take (seconds) before OCR is cut short.
TIMEOUT = 5.0
# chi_sim alone reads the Latin letters of "AI" and "AI-generated" as well as
# chi_sim+eng did here, and loads in 130 instead of 210 ms
_LANGUAGES = ("chi_sim",)

# The reduced copy candidates are searched on: its shortest side, in px. The
# smallest text searched (1.2%) is then about 9 px tall, a conforming label
# (5%) 36 px.
_ANALYSIS_SIDE = 720
# text heights searched, as fractions of the shortest side: the standard's
# minimum is 5%, but generators draw their marks smaller (Doubao about 3%,
# phone editors 2%) and a label that is too small is still a label; much
# larger is a title, not a caption
_MIN_TEXT = 0.012
_MAX_TEXT = 0.16
# a glyph must stand out from the ground under it by this much (0-255 grey):
# white blended at 40% over a mid-grey ground stands out by about 30
_CONTRAST = 24
# ... and against the mean of its neighbourhood (which bold text pulls up)
_STRONG_CONTRAST = 40
# a line counts as "at an edge" when it is this close to one (fraction of
# the image's side along that axis); glyphs farther in are not looked at
_EDGE_GAP = 0.12
# lines at the middle of the left or right edge are searched this far in
# (fraction of the width)
_SIDE_ZONE = 0.4
# more glyph-like components than this in one mask's edge zones is a texture
# or noise: nothing there is read (and the per-glyph work stays bounded)
_MAX_GLYPHS = 4000
# at most this many candidate blocks go to OCR (ranked by text-likeness)
_MAX_CANDIDATES = 8
# text height the crops are scaled to before OCR: tesseract reads CJK best
# with characters some 30-50 px tall
_OCR_TEXT_PX = 44
_SLOT_GAP = 28
_MIN_SIDE = 48  # images smaller than this carry no legible label to find
# OCR text longer than this (per block) is not matched against the phrases:
# a caption is short, and the approximate match costs len(phrase) * len(text)
_MAX_MATCH_CHARS = 160

_CJK = r"\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_CJK_SPACE = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_CJK_ASCII_SPACE = re.compile(rf"(?<=[{_CJK}])\s+(?=[A-Za-z])|(?<=[A-Za-z])\s+(?=[{_CJK}])")
# in sans-serif fonts "I" and "l" are the same shape: "Al" before a generation
# word is "AI" (only there, so ordinary words are left alone)
_MISREAD_AI = re.compile(
    r"(?<![A-Za-z])A[lI1|](?=\s*[-—–]?\s*(?:辅助)?(?:生成|合成|generated|synthesi[sz]ed))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class VisibleMark:
    """One visible mark read at an edge of the image.

    ``kind`` is ``"label"`` (an AI-generation wording, :data:`LABEL_PHRASES`)
    or ``"brand"`` (a generator's wordmark without generation wording).
    ``box`` is (left, top, width, height) in pixels of the image as passed
    (as the viewer sees it); ``height_px`` is the measured height of its text
    line, ``shortest_side`` the image's shortest side, both in those pixels.
    """

    kind: str
    phrases: list[str]
    region: str
    text: str
    box: tuple[int, int, int, int]
    height_px: int
    shortest_side: int
    brand: str | None = None
    generator: str | None = None

    @property
    def height_ratio(self) -> float:
        return self.height_px / self.shortest_side

    def to_data(self) -> dict:
        """The evidence ``data`` the report carries (and the UI draws the box from)."""
        return {
            "phrases": self.phrases,
            "region": self.region,
            "text": self.text,
            "box": list(self.box),
            "height_px": self.height_px,
            "shortest_side": self.shortest_side,
            "height_ratio": round(self.height_ratio, 4),
            "brand": self.brand,
            "generator": self.generator,
        }


@dataclass(frozen=True)
class VisibleLabelResult:
    """What the search saw.

    ``found`` is true when a label wording was read; ``phrases`` are the
    wordings read (e.g. ``["人工智能生成"]``); ``region`` says where the first
    one sits as the viewer sees the image (one of the label positions:
    top-left, top, top-right, left, right, bottom-left, bottom, bottom-right;
    "center" for text away from the edges; "" when nothing was found);
    ``text`` is the OCR text of the lines holding the phrases, or of every
    line read when none matched (trimmed). ``marks`` holds every label and
    brand wordmark read, with its box and measured size. ``candidates`` is
    how many text lines went to OCR; ``timed_out`` says the OCR was cut
    short, so absence of a label is not established.
    """

    found: bool
    phrases: list[str] = field(default_factory=list)
    region: str = ""
    text: str = ""
    candidates: int = 0
    timed_out: bool = False
    marks: list[VisibleMark] = field(default_factory=list)


# --------------------------------------------------------------------------- availability


def ocr_available() -> bool:
    """Whether tesseract with its Simplified Chinese data can be run (cached)."""
    return _tesseract(TESSERACT) is not None


@lru_cache(maxsize=8)
def _tesseract(binary: str) -> str | None:
    """The path of ``binary`` when it runs and has the languages we need."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--list-langs"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    # tesseract 4 lists on stderr, 5 on stdout
    listed = (done.stdout + done.stderr).decode("utf-8", "replace").split()
    if done.returncode != 0 or not all(lang in listed for lang in _LANGUAGES):
        return None
    return path


# --------------------------------------------------------------------------- grey copies


def _grey(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit grey; transparency is flattened onto white (a usual backdrop)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "I" and values.max(initial=0) <= 255:
            return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
        return Image.fromarray((np.clip(values, 0, 65535) / 257).round().astype(np.uint8))
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    if image.mode == "L":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(backdrop, rgba).convert("L")
    if image.mode in ("RGB", "1"):
        return image.convert("L")
    return image.convert("RGB").convert("L")


# --------------------------------------------------------------------------- candidate lines


@dataclass
class _Block:
    """One or more stacked text lines, in analysis-image pixels."""

    top: int
    bottom: int
    left: int
    right: int
    line_height: int
    bright: bool  # light text on a darker ground
    score: float
    lines: int = 1


def _glyph_boxes(
    mask: np.ndarray, hmin: int, hmax: int, zoned: bool = True
) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (top, bottom, left, right) of glyph-like components of
    ``mask``; when ``zoned``, only those in the edge and corner zones.

    The zones: bands along the top and bottom edges span the width (a caption
    may run along them); along the left and right edges a line is read up to
    ``_SIDE_ZONE`` of the width in (and followed further along its own rows
    by :func:`_run_on`). The middle of the image is never looked at.
    """
    labels, count = ndimage.label(mask)
    if not count:
        return []
    slices = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    rows, cols = mask.shape
    # the size and place tests in bulk first: noise makes tens of thousands
    # of specks, and only the survivors are looked at one by one
    boxes = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in slices])
    tops, bottoms, lefts, rights = boxes.T
    h, w = bottoms - tops, rights - lefts
    # parts of a CJK character may be a fifth of the line's height; a glyph
    # is never much wider than a line is tall; one cut by the frame is
    # background, not a caption
    keep = (h >= max(2, hmin // 5)) & (h <= hmax) & (w <= 2 * hmax)
    keep &= (tops > 0) & (lefts > 0) & (bottoms < rows) & (rights < cols)
    if zoned:
        band = _EDGE_GAP * rows + hmax
        side = _side_zone(cols, hmax)
        keep &= (tops < band) | (rows - bottoms < band) | (lefts < side) | (cols - rights < side)
    survivors = np.flatnonzero(keep)
    if survivors.size > _MAX_GLYPHS:
        return []  # a texture or noise, not a ground text can be read on
    out = []
    for index in (survivors + 1).tolist():
        top, bottom, left, right = boxes[index - 1].tolist()
        h, w = bottom - top, right - left
        density = areas[index] / (h * w)
        if density > 0.92 and h * w > 16:
            continue  # a solid blob (lamp, window), not a stroke
        if h >= hmin and density < 0.35 and _entangled(labels, slices, index):
            continue  # a plate's outline or a texture's blob, not a glyph
        out.append((top, bottom, left, right))
    return out


def _side_zone(cols: int, hmax: int) -> float:
    return max(_EDGE_GAP * cols + hmax, _SIDE_ZONE * cols)


def _run_on(
    mask: np.ndarray, line: tuple[int, int, int, int, list], hmin: int, hmax: int
) -> tuple[int, int, int, int, list]:
    """A line cut short by the side zone, followed along its own rows to its end."""
    rows, cols = mask.shape
    top, bottom, left, right, _ = line
    side = _side_zone(cols, hmax)
    if not (right > side - hmax or left < cols - side + hmax):
        return line
    pad = max(2, (bottom - top) // 2)
    y0, y1 = max(0, top - pad), min(rows, bottom + pad)
    longest = line
    for found in _lines(_glyph_boxes(mask[y0:y1], hmin, hmax, zoned=False), hmin, hmax):
        t, b, lf, rt, glyphs = found
        shifted = (t + y0, b + y0, lf, rt, [(g[0] + y0, g[1] + y0, g[2], g[3]) for g in glyphs])
        overlaps = min(rt, right) > max(lf, left)
        if overlaps and rt - lf > longest[3] - longest[2]:
            longest = shifted
    return longest


def _entangled(labels: np.ndarray, slices: list, index: int) -> bool:
    """Whether another component reaches into component ``index``'s box other than as a
    loose part of the same glyph.

    A glyph's box holds nothing but its own loose parts, which sit at the
    box's edge (the dot of 成). A plate's outline holds the glyphs clear of
    all its sides; a texture's blobs reach into each other's boxes.
    """
    outer = slices[index - 1]
    top, bottom = outer[0].start, outer[0].stop
    left, right = outer[1].start, outer[1].stop
    for other in np.unique(labels[outer]).tolist():
        if other in (0, index):
            continue
        inner = slices[other - 1]
        inside = (
            inner[0].start >= top
            and inner[0].stop <= bottom
            and inner[1].start >= left
            and inner[1].stop <= right
        )
        clear = (
            inner[0].start > top + 1
            and inner[0].stop < bottom - 1
            and inner[1].start > left + 1
            and inner[1].stop < right - 1
        )
        if not inside or clear:
            return True
    return False


def _lines(
    boxes: list[tuple[int, int, int, int]], hmin: int, hmax: int
) -> list[tuple[int, int, int, int, list[tuple[int, int, int, int]]]]:
    """Group glyph boxes side by side into lines: (top, bottom, left, right, glyphs).

    Two glyphs belong to one line when they are close horizontally (at most
    about a character apart: a word space or a hyphen between), share most
    of their rows and are of similar height. Parts of a character that do
    not (a CJK radical under another) are left out; the line's box still
    spans the character.
    """
    if not boxes:
        return []
    # sorted by left edge: a glyph's possible neighbours are a contiguous run
    ordered = sorted(boxes, key=lambda b: b[2])
    tops, bottoms, lefts, rights = (np.array(column) for column in zip(*ordered, strict=True))
    heights = bottoms - tops
    ends = np.searchsorted(lefts, rights + hmax, side="right")
    sources, targets = [], []
    for i in range(len(ordered)):
        j = np.arange(i + 1, max(i + 1, ends[i]))
        if not j.size:
            continue
        near = lefts[j] - rights[i] <= np.maximum(heights[i], heights[j])
        ratio = heights[j] / heights[i]
        shared = np.minimum(bottoms[i], bottoms[j]) - np.maximum(tops[i], tops[j])
        linked = (
            near
            & (ratio >= 0.4)
            & (ratio <= 2.5)
            & (shared >= 0.5 * np.minimum(heights[i], heights[j]))
        )
        targets.extend(j[linked].tolist())
        sources.extend([i] * int(linked.sum()))
    count = len(ordered)
    graph = coo_matrix((np.ones(len(sources)), (sources, targets)), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    groups: dict[int, list[tuple[int, int, int, int]]] = {}
    for box, group in zip(ordered, component.tolist(), strict=True):
        groups.setdefault(group, []).append(box)
    out = []
    for group in groups.values():
        if len(group) < 2:
            continue
        top = min(b[0] for b in group)
        bottom = max(b[1] for b in group)
        left = min(b[2] for b in group)
        right = max(b[3] for b in group)
        height = bottom - top
        # glyphs of about the full line height: a line of text has a few
        tall = sum(1 for b in group if b[1] - b[0] >= 0.55 * height)
        if height < hmin or height > hmax or tall < 2 or right - left < 1.4 * height:
            continue
        out.append((top, bottom, left, right, group))
    return out


def _region(block: _Block, rows: int, cols: int) -> str:
    """The label position a block is at: the edge(s) it is clearly nearer to.

    Judged by the free space on either side rather than by the block's
    centre, so a wide label at the left edge of a narrow image is "left".
    """

    def side(before: int, after: int, low: str, high: str) -> str:
        if abs(before - after) <= 0.25 * (before + after) + 2:
            return ""  # centred on this axis
        return low if before < after else high

    row = side(block.top, rows - block.bottom, "top", "bottom")
    col = side(block.left, cols - block.right, "left", "right")
    if row and col:
        return f"{row}-{col}"
    return row or col or "center"


def _ink_masks(small: np.ndarray, hmin: int, hmax: int) -> list[tuple[bool, np.ndarray]]:
    """Pixels standing out from their surroundings, as (light ink?, mask) pairs.

    Two views of the ground, each for light and for dark ink:

    - the local mean: strong contrast (``_STRONG_CONTRAST``) against the
      neighbourhood; separates text on a plate from a busy texture around it;
    - the image with every stroke thinner than a bold glyph of the largest
      searched size removed (a morphological opening for light ink, a closing
      for dark): not pulled towards bold text as a mean is, so a faint
      semi-transparent mark stands out by its whole contrast (``_CONTRAST``).
    """
    values = small.astype(np.float32)
    local = ndimage.uniform_filter(values, size=max(9, 2 * hmin + 1), mode="nearest")
    size = max(5, hmax // 3)
    return [
        (True, values > local + _STRONG_CONTRAST),
        (False, values < local - _STRONG_CONTRAST),
        (True, values - ndimage.grey_opening(values, size=(size, size)) > _CONTRAST),
        (False, ndimage.grey_closing(values, size=(size, size)) - values > _CONTRAST),
    ]


def _text_heights(shortest: int) -> tuple[int, int]:
    """The line heights searched on an analysis image with this shortest side, in px."""
    hmin = max(6, round(_MIN_TEXT * shortest))
    return hmin, max(hmin + 2, round(_MAX_TEXT * shortest))


def _candidates(small: np.ndarray, masks: list[tuple[bool, np.ndarray]]) -> list[_Block]:
    """Text blocks near an edge of the analysis image, most text-like first."""
    rows, cols = small.shape
    hmin, hmax = _text_heights(min(rows, cols))
    values = small.astype(np.float32)
    blocks: list[_Block] = []
    for bright, mask in masks:
        # longest lines first: only the first few are followed past the side zone
        lines = sorted(_lines(_glyph_boxes(mask, hmin, hmax), hmin, hmax), key=lambda x: -len(x[4]))
        followed = 0
        for line in lines:
            top, bottom, left, right, glyphs = line
            band = _EDGE_GAP * rows + hmax
            if rows - bottom >= band and top >= band and followed < _MAX_CANDIDATES:
                followed += 1
                top, bottom, left, right, glyphs = _run_on(mask, line, hmin, hmax)
            gap_x = min(left, cols - right) / cols
            gap_y = min(top, rows - bottom) / rows
            if min(gap_x, gap_y) > _EDGE_GAP:
                continue
            # text sits on a plain ground (a plate, sky, a wall); a texture's
            # bright specks do not: rank lines by how quiet their ground is
            ink = ndimage.binary_dilation(mask[top:bottom, left:right])
            ground = values[top:bottom, left:right][~ink]
            # (spread of the middle half: glyph edges left out of the mask are outliers)
            noise = float(np.subtract(*np.percentile(ground, [75, 25]))) if ground.size else 0.0
            score = len(glyphs) / (1.0 + noise / 10) / (1.0 + 10 * min(gap_x, gap_y))
            blocks.append(_Block(top, bottom, left, right, bottom - top, bright, score))
    return _distinct(_stack(blocks))


def _distinct(blocks: list[_Block]) -> list[_Block]:
    """``blocks`` (best first) with the ones two masks found for the same text
    merged: one mask may miss a glyph the other sees, so the union is kept."""
    kept: list[_Block] = []
    for block in blocks:
        area = (block.bottom - block.top) * (block.right - block.left)
        for other in kept:
            w = min(block.right, other.right) - max(block.left, other.left)
            h = min(block.bottom, other.bottom) - max(block.top, other.top)
            smaller = min(area, (other.bottom - other.top) * (other.right - other.left))
            if other.bright == block.bright and w > 0 and h > 0 and w * h >= 0.6 * smaller:
                other.top, other.bottom = min(other.top, block.top), max(other.bottom, block.bottom)
                other.left, other.right = min(other.left, block.left), max(other.right, block.right)
                other.line_height = max(other.line_height, block.line_height)
                break
        else:
            kept.append(block)
    return kept


def _stack(blocks: list[_Block]) -> list[_Block]:
    """Merge lines set one under the other (a wrapped label) into one block."""
    blocks.sort(key=lambda b: (b.bright, b.top))
    merged: list[_Block] = []
    for block in blocks:
        for prior in merged:
            gap = block.top - prior.bottom
            overlap = min(prior.right, block.right) - max(prior.left, block.left)
            if (
                prior.bright == block.bright
                and prior.lines < 2  # labels wrap to two lines at most
                and 0 <= gap <= 0.8 * prior.line_height
                and overlap > 0
                and 0.7 <= block.line_height / prior.line_height <= 1.45
            ):
                prior.bottom = block.bottom
                prior.line_height = max(prior.line_height, block.line_height)
                prior.left = min(prior.left, block.left)
                prior.right = max(prior.right, block.right)
                prior.score = max(prior.score, block.score)
                prior.lines += 1
                break
        else:
            merged.append(block)
    merged.sort(key=lambda b: -b.score)
    return merged


# --------------------------------------------------------------------------- OCR strip


def _binarised(crop: np.ndarray, bright: bool) -> np.ndarray:
    """Dark text on white (uint8) from a grey crop of one block; Otsu's threshold."""
    counts = np.bincount(crop.ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    levels = np.arange(256)
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * levels)
    between = (mass[-1] * weight / total - mass) ** 2 / np.maximum(weight * (total - weight), 1e-9)
    threshold = int(np.argmax(between))
    ink = crop > threshold if bright else crop <= threshold
    # ink reaching the crop's top or bottom, or as tall as the crop at its
    # sides, is the ground around a plate, not text (the crop has a margin
    # above and below the line; a glyph may touch a side if the line's box
    # was cut short)
    labels, count = ndimage.label(ink)
    if count:
        ground = set(np.unique(np.concatenate([labels[0], labels[-1]])).tolist())
        rows = crop.shape[0]
        for sl, index in zip(ndimage.find_objects(labels), range(1, count + 1), strict=True):
            if sl is None:
                continue
            at_side = sl[1].start == 0 or sl[1].stop == crop.shape[1]
            if at_side and sl[0].stop - sl[0].start >= 0.8 * rows:
                ground.add(index)
        ground.discard(0)
        if ground:
            ink &= ~np.isin(labels, list(ground))
    return np.where(ink, 0, 255).astype(np.uint8)


def _strip(
    grey: Image.Image, blocks: list[_Block], scale: float
) -> tuple[Image.Image, list[tuple[int, int]]]:
    """One white image holding every block as dark text, and each block's rows in it."""
    width, height = grey.size
    pieces = []
    for block in blocks:
        pad_y = 0.2 * block.line_height
        pad_x = 0.5 * block.line_height
        box = (
            max(0, int((block.left - pad_x) * scale)),
            max(0, int((block.top - pad_y) * scale)),
            min(width, int(np.ceil((block.right + pad_x) * scale))),
            min(height, int(np.ceil((block.bottom + pad_y) * scale))),
        )
        crop = grey.crop(box)
        factor = _OCR_TEXT_PX / max(1.0, block.line_height * scale)
        size = (max(1, round(crop.width * factor)), max(1, round(crop.height * factor)))
        crop = crop.resize(size, Image.Resampling.BICUBIC if factor > 1 else Image.Resampling.BOX)
        pieces.append(_binarised(np.asarray(crop), block.bright))
    strip_w = max(p.shape[1] for p in pieces) + 2 * _SLOT_GAP
    strip_h = sum(p.shape[0] for p in pieces) + (len(pieces) + 1) * _SLOT_GAP
    strip = np.full((strip_h, strip_w), 255, dtype=np.uint8)
    slots = []
    y = _SLOT_GAP
    for piece in pieces:
        h, w = piece.shape
        strip[y : y + h, _SLOT_GAP : _SLOT_GAP + w] = piece
        slots.append((y, y + h))
        y += h + _SLOT_GAP
    return Image.fromarray(strip), slots


def _read(path: str, strip: Image.Image, timeout: float) -> list[tuple[int, int, str]]:
    """Words tesseract reads in ``strip``: (centre row, left, text).

    Raises subprocess.TimeoutExpired (the process is killed) or OSError.
    """
    png = io.BytesIO()
    strip.save(png, "PNG", compress_level=1)
    env = dict(os.environ, OMP_THREAD_LIMIT="1")  # one small image: threads only cost
    done = subprocess.run(
        [
            path,
            "stdin",
            "stdout",
            "-l",
            "+".join(_LANGUAGES),
            "--psm",
            "6",
            # polarity is normalised here; tesseract's own inversion retry
            # doubles its time on low-confidence lines
            "-c",
            "tessedit_do_invert=0",
            "tsv",
        ],
        input=png.getvalue(),
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    words = []
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        parts = row.split("\t")
        if len(parts) < 12 or parts[0] != "5" or not parts[11].strip():
            continue
        left, top, height = int(parts[6]), int(parts[7]), int(parts[9])
        words.append((top + height // 2, left, parts[11].strip()))
    return words


def _read_blocks(
    path: str, flat: Image.Image, blocks: list[_Block], scale: float, timeout: float
) -> list[str]:
    """The tidied OCR text of each block, read in one tesseract run.

    (Two processes over halves of a busy image's candidates were slower
    here than one: the second model load outweighs the split.)
    """
    strip, slots = _strip(flat, blocks, scale)
    words = _read(path, strip, timeout)
    texts = []
    for top, bottom in slots:
        mine = sorted(
            (w for w in words if top - _SLOT_GAP // 2 <= w[0] < bottom + _SLOT_GAP // 2),
            key=lambda w: (w[0] // _OCR_TEXT_PX, w[1]),
        )
        texts.append(_tidy(" ".join(w[2] for w in mine)))
    return texts


def _tidy(text: str) -> str:
    """OCR text with the spaces tesseract puts between CJK characters removed,
    and "AI" restored where the sans-serif capital I was read as a small L."""
    text = _CJK_SPACE.sub("", text.strip())
    text = _CJK_ASCII_SPACE.sub("", text)
    return _MISREAD_AI.sub("AI", text)


# --------------------------------------------------------------------------- phrases


def _fold(text: str) -> str:
    """``text`` reduced to what OCR reads reliably: case-folded, letters and
    digits only (spaces, hyphens, apostrophes and accents come and go),
    confusable characters folded together."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(CONFUSABLES.get(ch, ch) for ch in text if ch.isalnum())


def _allowed_errors(folded: str) -> int:
    """Edits tolerated when matching a folded phrase: none for short or CJK
    phrases (one wrong character turns 生成 into 生活), one per eight Latin
    letters beyond four for long ones (OCR drops accents and apostrophes)."""
    if not folded.isascii():
        return 0
    return max(0, (len(folded) - 4) // 8)


def _contains(text: str, pattern: str, errors: int) -> bool:
    """Whether ``pattern`` occurs in ``text`` with at most ``errors`` edits
    (Sellers' approximate substring match; O(len(pattern) * len(text)))."""
    if errors == 0:
        return pattern in text
    # q-gram filter: each edit spoils at most three of the pattern's 3-grams,
    # so a text holding too few of them cannot match (and costs no DP)
    grams = [pattern[i : i + 3] for i in range(len(pattern) - 2)]
    if sum(gram in text for gram in grams) < len(grams) - 3 * errors:
        return False
    previous = list(range(len(pattern) + 1))
    for ch in text:
        current = [0]
        for i, want in enumerate(pattern, start=1):
            current.append(min(previous[i] + 1, current[i - 1] + 1, previous[i - 1] + (want != ch)))
        if current[-1] <= errors:
            return True
        previous = current
    return False


@lru_cache(maxsize=1)
def _folded_table() -> tuple[tuple[str, Phrase, str], ...]:
    rows = [("label", p, _fold(p.text)) for p in LABEL_PHRASES]
    rows += [("brand", p, _fold(p.text)) for p in BRAND_WORDMARKS]
    return tuple(rows)


def match_phrases(text: str) -> tuple[list[Phrase], list[Phrase]]:
    """The label phrases and brand wordmarks in OCR ``text``: (labels, brands).

    A phrase inside a longer one matched too is left out (豆包AI生成 holds
    AI生成); phrases the folding makes equal are reported once.
    """
    folded = _fold(text[:_MAX_MATCH_CHARS])
    found: dict[str, list[tuple[str, Phrase]]] = {"label": [], "brand": []}
    for kind, phrase, pattern in _folded_table():
        if pattern and _contains(folded, pattern, _allowed_errors(pattern)):
            found[kind].append((pattern, phrase))
    out = []
    for kind in ("label", "brand"):
        hits = found[kind]
        kept: dict[str, Phrase] = {}
        for pattern, phrase in hits:
            if pattern in kept or any(pattern in other for other, _ in hits if other != pattern):
                continue
            kept[pattern] = phrase
        out.append(list(kept.values()))
    return out[0], out[1]


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class EdgeAnalysis:
    """The cheap, OCR-free look at an image's edges that every visible-mark finder
    shares: the reduced grey copy, its ink masks and the candidate text blocks.

    ``scale`` maps analysis pixels to pixels of the image as passed.
    """

    size: tuple[int, int]
    grey: Image.Image
    small: np.ndarray
    scale: float
    masks: list[tuple[bool, np.ndarray]]
    blocks: list[_Block]

    @property
    def text_heights(self) -> tuple[int, int]:
        return _text_heights(min(self.small.shape))

    def box(self, top: int, bottom: int, left: int, right: int) -> tuple[int, int, int, int]:
        """An analysis-pixel box as (left, top, width, height) in image pixels."""
        width, height = self.size
        x0, y0 = max(0, round(left * self.scale)), max(0, round(top * self.scale))
        x1 = min(width, round(right * self.scale))
        y1 = min(height, round(bottom * self.scale))
        return x0, y0, x1 - x0, y1 - y0

    def near_edge(self, top: int, bottom: int, left: int, right: int) -> bool:
        """Whether an analysis-pixel box is at an edge or corner (as a label must be)."""
        rows, cols = self.small.shape
        gap_x = min(left, cols - right) / cols
        gap_y = min(top, rows - bottom) / rows
        return min(gap_x, gap_y) <= _EDGE_GAP

    def region(self, top: int, bottom: int, left: int, right: int) -> str:
        return _region(_Block(top, bottom, left, right, bottom - top, True, 0.0), *self.small.shape)


def analyse(image: Image.Image) -> EdgeAnalysis | None:
    """The edge analysis of ``image`` (as the viewer sees it), or None when it is
    too small to carry a legible mark. Never raises for image content."""
    width, height = image.size
    if min(width, height) < _MIN_SIDE:
        return None
    grey = _grey(image)
    scale = max(1.0, min(width, height) / _ANALYSIS_SIDE)
    if scale > 1:
        small_size = (max(1, round(width / scale)), max(1, round(height / scale)))
        small = grey.resize(small_size, Image.Resampling.BOX, reducing_gap=2.0)
        # the exact factor, so crops land where the lines are
        scale = width / small.width
    else:
        small = grey
    values = np.asarray(small)
    hmin, hmax = _text_heights(min(values.shape))
    masks = _ink_masks(values, hmin, hmax)
    return EdgeAnalysis(image.size, grey, values, scale, masks, _candidates(values, masks))


def find_visible_label(
    image: Image.Image, *, timeout: float | None = None, analysis: EdgeAnalysis | None = None
) -> VisibleLabelResult | None:
    """Search the edges and corners of ``image`` for a visible AI label.

    ``image`` is one frame as the viewer sees it (orientation applied), any
    Pillow mode; ``analysis`` is its :func:`analyse` when the caller already
    has it. Returns None when OCR is unavailable (no tesseract, or no
    chi_sim data); otherwise a :class:`VisibleLabelResult`. ``timeout``
    (seconds, default :data:`TIMEOUT`) bounds the whole search; when OCR is
    cut short the result says ``timed_out`` and ``found`` is false. Never
    raises for image content.
    """
    timeout = TIMEOUT if timeout is None else timeout
    path = _tesseract(TESSERACT)
    if path is None:
        return None
    started = time.monotonic()
    if analysis is None:
        analysis = analyse(image)
    if analysis is None:
        return VisibleLabelResult(found=False)
    blocks = analysis.blocks[:_MAX_CANDIDATES]
    if not blocks:
        return VisibleLabelResult(found=False)
    remaining = timeout - (time.monotonic() - started)
    if remaining <= 0:
        return VisibleLabelResult(found=False, candidates=len(blocks), timed_out=True)
    try:
        texts = _read_blocks(path, analysis.grey, blocks, analysis.scale, remaining)
    except subprocess.TimeoutExpired:
        return VisibleLabelResult(found=False, candidates=len(blocks), timed_out=True)
    except OSError:  # removed or broken since the availability check
        _tesseract.cache_clear()
        return None
    marks = []
    shortest = min(analysis.size)
    # blocks are ranked most text-like first: the first label names the region
    for block, text in zip(blocks, texts, strict=True):
        labels, brands = match_phrases(text)
        for kind, phrases in (("label", labels), ("brand", brands)):
            if not phrases:
                continue
            named = next((p for p in phrases if p.brand), None)
            # the measured height of the text: one line's height (a wrapped
            # label's lines are of one size)
            marks.append(
                VisibleMark(
                    kind=kind,
                    phrases=[p.text for p in phrases],
                    region=_region(block, *analysis.small.shape),
                    text=text,
                    box=analysis.box(block.top, block.bottom, block.left, block.right),
                    height_px=round(block.line_height * analysis.scale),
                    shortest_side=shortest,
                    brand=named.brand if named else None,
                    generator=named.generator if named else None,
                )
            )
    found = [m for m in marks if m.kind == "label"]
    if not found:
        return VisibleLabelResult(
            found=False,
            text="\n".join(t for t in texts if t),
            candidates=len(blocks),
            marks=marks,
        )
    return VisibleLabelResult(
        found=True,
        phrases=[phrase for mark in found for phrase in mark.phrases],
        region=found[0].region,
        text="\n".join(mark.text for mark in found),
        candidates=len(blocks),
        marks=marks,
    )
