"""The explicit (visible) label burned into video frames, per GB 45438 clause 5.

Owns how the label sits on a video frame: the image label's wording, sizing,
plate and placement (:func:`labelers.visible.image.label_sprite`, rendered
once per video) composited straight onto the decoded frame's Y'CbCr planes,
frame after frame, touching only the label's rectangle.

- Geometry: the label is laid out for the frame *as displayed*: the sample
  aspect ratio stretches the stored width, then the container's display
  matrix rotates it. The masks are drawn upright for that display and mapped
  back to stored pixels (rotation undone, width divided by the pixel aspect
  ratio), so the ink is >= 5% of the displayed shortest side and reads
  upright in every player.
- Colour: the plate and the text are neutral greys (Cb = Cr = mid-scale), so
  the drawing is the same in any matrix (BT.601, BT.709, BT.2020); levels
  follow the frame's range (limited 16-235 or full) and bit depth.
- Legibility: the plate's opacity is the image label's rule for the bright
  details under it, measured per frame; it only ever rises during a video (a
  plate that fades in and out with the background would flicker).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image

from labelers.errors import InvalidOption
from labelers.visible.image import PLATE_LUMA, TEXT_LUMA, label_sprite, plate_alpha_for

#: Planar Y'CbCr and grey pixel formats drawn on directly: name -> bit depth.
PLANAR_FORMATS = {
    "yuv420p": 8,
    "yuvj420p": 8,
    "yuv422p": 8,
    "yuvj422p": 8,
    "yuv440p": 8,
    "yuv444p": 8,
    "yuvj444p": 8,
    "gray": 8,
    "yuv420p10le": 10,
    "yuv422p10le": 10,
    "yuv444p10le": 10,
    "yuv420p12le": 12,
    "yuv422p12le": 12,
    "yuv444p12le": 12,
    "gray10le": 10,
    "gray12le": 12,
}

# display-matrix rotation (degrees counter-clockwise, as FFmpeg reads it) ->
# the EXIF orientation that names the same stored-to-displayed turn
_ORIENTATION = {0: 1, 90: 8, 180: 3, -180: 3, -90: 6, 270: 6}


def orientation_for(rotation: int) -> int:
    """The EXIF orientation (1, 3, 6, 8) for a display-matrix rotation."""
    return _ORIENTATION.get(round(rotation / 90.0) * 90, 1)


def plane_array(plane, height: int, width: int, depth: int) -> np.ndarray:
    """A writable (height x width) numpy view of one frame plane (no copy)."""
    dtype = np.dtype(np.uint8) if depth == 8 else np.dtype("<u2")
    per_row = plane.line_size // dtype.itemsize
    return np.frombuffer(plane, dtype=dtype).reshape(-1, per_row)[:height, :width]


def levels(depth: int, full_range: bool) -> tuple[float, float, float]:
    """(black, white, neutral chroma) code values for a depth and range."""
    scale = float(1 << (depth - 8))
    if full_range:
        return 0.0, ((1 << depth) - 1) * 1.0, 128.0 * scale
    return 16.0 * scale, 235.0 * scale, 128.0 * scale


@dataclass
class _Masks:
    box: tuple[int, int, int, int]  # stored pixels, aligned to the chroma grid
    shape: np.ndarray  # float32 0-1, the plate
    text: np.ndarray  # float32 0-1, the glyphs


class FrameLabel:
    """The label for one video's frames: masks rendered once, drawn per frame.

    ``width``/``height`` are the stored frame size, ``sample_aspect`` the pixel
    aspect ratio (width of a pixel over its height), ``rotation`` the display
    matrix's. Raises InvalidOption (from the image label's rules) for a frame
    too small for a legible label, a wording that does not fit, or a bad position.
    """

    def __init__(
        self,
        wording: str,
        position: str,
        width: int,
        height: int,
        *,
        pix_fmt: str,
        full_range: bool,
        sample_aspect: Fraction = Fraction(1),
        rotation: int = 0,
        chroma_shift: tuple[int, int] = (1, 1),
    ) -> None:
        if pix_fmt not in PLANAR_FORMATS:
            raise InvalidOption(f"video frames in pixel format {pix_fmt} cannot take a label")
        self.depth = PLANAR_FORMATS[pix_fmt]
        self.grey = pix_fmt.startswith("gray")
        self.shift = (0, 0) if self.grey else chroma_shift  # (x, y) log2 subsampling
        sar = sample_aspect if sample_aspect > 0 else Fraction(1)
        self.orientation = orientation_for(rotation)
        stretched = max(1, round(width * sar))  # the stored frame with square pixels
        box, shape, text, ink = label_sprite(wording, position, stretched, height, self.orientation)
        self.ink_px = ink  # in displayed pixels
        self.displayed_shortest = min(stretched, height)
        left, right = box[0] / float(sar), box[2] / float(sar)
        size = (max(1, round(right - left)), box[3] - box[1])
        if size != shape.size:  # non-square pixels: the masks are squeezed to stored pixels
            shape = shape.resize(size, Image.Resampling.LANCZOS)
            text = text.resize(size, Image.Resampling.LANCZOS)
        # align the box to the chroma grid, so that each chroma sample covers
        # whole label pixels (a shift of at most one pixel)
        sx, sy = 1 << self.shift[0], 1 << self.shift[1]
        x0 = min(max(0, int(left) // sx * sx), max(0, width - size[0]) // sx * sx)
        y0 = min(max(0, box[1] // sy * sy), max(0, height - size[1]) // sy * sy)
        pad = (-size[0] % sx, -size[1] % sy)
        w_in, h_in = min(size[0], width - x0), min(size[1], height - y0)
        shape_a = np.zeros((h_in + pad[1], w_in + pad[0]), np.float32)
        text_a = np.zeros_like(shape_a)
        shape_a[:h_in, :w_in] = np.asarray(shape, np.float32)[:h_in, :w_in] / 255.0
        text_a[:h_in, :w_in] = np.asarray(text, np.float32)[:h_in, :w_in] / 255.0
        h_all, w_all = shape_a.shape
        # the padding may stick out of an odd-sized frame: clip it
        h_all, w_all = min(h_all, height - y0), min(w_all, width - x0)
        self.masks = _Masks(
            (x0, y0, x0 + w_all, y0 + h_all), shape_a[:h_all, :w_all], text_a[:h_all, :w_all]
        )
        black, white, self.neutral = levels(self.depth, full_range)
        self.black, self.white = black, white
        # the image label's greys (sRGB levels) at this range and depth
        self.plate_level = black + (white - black) * PLATE_LUMA / 255.0
        self.text_level = black + (white - black) * TEXT_LUMA / 255.0
        self.alpha = 0.0
        self._plate: np.ndarray | None = None
        self._chroma_alpha: np.ndarray | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the label in stored pixels."""
        return self.masks.box

    def _opacity(self, region: np.ndarray) -> None:
        """Raise the plate's opacity to what this frame's background needs."""
        span = max(1.0, self.white - self.black)
        bright = (float(np.percentile(region, 95)) - self.black) * 255.0 / span
        needed = plate_alpha_for(bright)
        if needed > self.alpha:
            self.alpha = needed
            self._plate = self.masks.shape * np.float32(needed)
            combined = 1.0 - (1.0 - self._plate) * (1.0 - self.masks.text)
            sx, sy = 1 << self.shift[0], 1 << self.shift[1]
            h, w = combined.shape
            hc, wc = -(-h // sy), -(-w // sx)
            padded = np.zeros((hc * sy, wc * sx), np.float32)
            padded[:h, :w] = combined
            self._chroma_alpha = padded.reshape(hc, sy, wc, sx).mean(axis=(1, 3))

    def draw(self, frame) -> None:
        """Draw the label on ``frame`` (a PyAV VideoFrame in this label's format), in place."""
        x0, y0, x1, y1 = self.masks.box
        luma = plane_array(frame.planes[0], frame.height, frame.width, self.depth)
        region = luma[y0:y1, x0:x1]
        self._opacity(region)
        plate, text = self._plate, self.masks.text
        out = region.astype(np.float32)
        out += (self.plate_level - out) * plate
        out += (self.text_level - out) * text
        region[...] = np.rint(out).astype(region.dtype)
        if self.grey:
            return
        sx, sy = self.shift
        cx0, cy0 = x0 >> sx, y0 >> sy
        alpha = self._chroma_alpha
        for plane in frame.planes[1:3]:
            chroma = plane_array(plane, plane.height, plane.width, self.depth)
            part = chroma[cy0 : cy0 + alpha.shape[0], cx0 : cx0 + alpha.shape[1]]
            a = alpha[: part.shape[0], : part.shape[1]]
            c = part.astype(np.float32)
            c += (self.neutral - c) * a
            part[...] = np.rint(c).astype(part.dtype)
