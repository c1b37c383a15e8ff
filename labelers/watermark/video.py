"""The invisible video watermark: the image mark in every frame's luma.

Owns embedding the 64-bit ledger key in video frames and decoding it from a
handful of sampled frames.

How it works
------------
* The image mark's tile (:mod:`labelers.watermark.image`: sync chips, CRC-24
  and rate-1/3 convolutional code, the same 64-bit key) is repeated over
  every frame, at the same place in every frame: a still pattern under the
  moving content. Its chips are larger than an image's of the same size
  (``shortest side / 120``): video is downscaled and quantised harder than a
  photo (H.264 CRF 28 at 480p keeps little above a quarter of the Nyquist
  band), and a larger chip keeps the pattern below what the codec discards.
* Embedding works on the decoded Y plane in place (no RGB round trip), with
  the image mark's perceptual mask computed per frame on a reduced copy,
  with the video's own ceiling and PSNR budget (~41.5 dB per frame, measured
  on luma code values); chroma
  is never touched. The pattern and the dither are rendered once per video.
* Decoding whitens each sampled frame (the image decoder's normalised
  residual), *averages* them (the mark is the same in every frame; content
  that moves, and the codec's noise, average out), and runs the image
  decoder's lattice search, fold, sync and Viterbi once on the average.
  Because the tile repeats everywhere and the lattice search recovers scale
  and rotation, a cut (any start), a crop, a rescale, a frame-rate change or
  a re-encode leave it decodable: none of them moves the pattern relative to
  the frame's content in a way the fold cannot follow.
* Motion: an encoder's P-frames predict moving content from the previous
  frame, mark included, and code only the residual; at a high CRF that
  residual is dropped, so on a pan the still mark is dragged along with the
  content between keyframes. The first-generation encode is therefore
  capped at CRF 23 (``labelers.video._MARK_CRF_MAX``), which keeps the mark
  in every frame of our output; after a platform's harder re-encode, its
  keyframes hold the mark best, and verification also decodes the first
  frame (a keyframe) alone (``detectors.video``).

False alarms
------------
One decode scans the image decoder's alignments (sub-chip offsets x cyclic
shifts x 8 symmetries x lattice hypotheses) and is bounded by Hoeffding as in
:mod:`labelers.watermark.image`. A verifier may decode several sampled
windows of one video (and their average); each window is one more decode,
so the sync threshold is raised to :func:`image.threshold_for` (``windows``)
and the union bound stays at ``SYNC_FALSE_POSITIVE_BOUND`` for the whole
search; the CRC-24 multiplies it by 2^-24, as for images
(:data:`FALSE_POSITIVE_BOUND`). Averaging frames does not change the bound:
the average of the whitened frames of an unmarked video is again a field
whose folded chip signs are fair coins given their magnitudes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from PIL import Image
from scipy import ndimage

from labelers.errors import InvalidOption
from labelers.watermark import image as image_mark
from labelers.watermark.image import PAYLOAD_BITS, WatermarkResult

#: Smallest shortest side (stored px) of a video that takes the mark: a
#: downscale to 480p must still leave chips the decoder can read.
MIN_SIDE = 240
# chips across the shortest side: embedder and decoder must agree on it, so
# it is a constant of the mark, not a setting
_CHIPS_PER_SIDE = 120
_MIN_CHIP = 4
#: Strength floor (luma levels, 8-bit) on flat areas, see _video_strength.
FLAT_FLOOR = 1.5
# the per-frame ceiling and budget the video mark was tuned with (the image
# mark's before it lowered its ceiling): a frame goes through a harder codec
# than a photo, and these values carry the video robustness numbers
_A_MAX = 6.0
_TARGET_PSNR = 41.5
_BUDGET = 255.0**2 / 10 ** (_TARGET_PSNR / 10) - 1.0 / 12.0
#: Decodes one verification may run (sampled windows and their average): the
#: sync threshold covers all of them.
WINDOWS = 4
THRESHOLD = image_mark.threshold_for(WINDOWS)
FALSE_POSITIVE_BOUND = image_mark.SYNC_FALSE_POSITIVE_BOUND * 2.0**-image_mark._CRC_BITS


def chip_size(width: int, height: int) -> int:
    return max(_MIN_CHIP, round(min(width, height) / _CHIPS_PER_SIDE))


def check_size(width: int, height: int) -> str | None:
    """Why a ``width`` x ``height`` video cannot take the mark, or None."""
    if min(width, height) < MIN_SIDE:
        return (
            f"the video is {width}x{height} px; the invisible watermark needs a shortest "
            f"side of at least {MIN_SIDE} px"
        )
    return None


class FrameMarker:
    """Embeds ``payload`` in the luma of frames of one size, frame after frame.

    ``depth`` is the luma's bit depth (8-16). The marked frame's
    luma PSNR against the unmarked one stays at or above ~41 dB.
    """

    def __init__(self, payload: int, width: int, height: int, *, depth: int = 8) -> None:
        if isinstance(payload, bool) or not isinstance(payload, int):
            raise InvalidOption("watermark payload must be an integer in [0, 2**64)")
        if not 0 <= payload < 1 << PAYLOAD_BITS:
            raise InvalidOption(f"watermark payload {payload} is outside [0, 2**64)")
        reason = check_size(width, height)
        if reason:
            raise InvalidOption(reason)
        self.width, self.height = width, height
        self.chip = chip_size(width, height)
        tile = image_mark._render_tile(payload, self.chip)
        self.period = tile.shape[0]
        # the pattern repeats every period rows: one period across the frame's
        # width, plus a band's rows so that a band starting anywhere in the
        # period reads on without wrapping (a quarter of a whole frame's
        # pattern at 720p: the embed streams less memory per frame)
        rows = self.period + _BAND + self.chip
        reps = (-(-rows // self.period), -(-width // self.period))
        self.pattern_rows = np.tile(tile, reps)[:rows, :width].astype(np.float32)
        rng = np.random.default_rng(image_mark._SEED)
        # dither instead of rounding: a sub-level change becomes fine grain
        # whose local mean is the change (the same grain in every frame, so
        # it does not shimmer)
        self.pattern_dither = rng.random((height, width), dtype=np.float32)
        self.scale = float(1 << (depth - 8))
        self.depth = depth
        top = (1 << depth) - 1
        # only the code range bounds the result: limited-range video may hold
        # super-blacks and super-whites, which the mark must not clip away
        self.low, self.high = 0.0, float(top)
        self._columns: tuple | None = None

    def mark(self, luma: np.ndarray) -> None:
        """Add the mark to ``luma`` (height x width, uint8 or uint16) in place.

        Row bands of ``_BAND`` rows keep the float work in the CPU cache (a
        whole-frame float array is several MB); the mask is stretched
        linearly across columns and held for each group of ``f`` rows (its
        reduction factor), as the image mark does.
        """
        y8 = luma if self.depth == 8 else (luma >> (self.depth - 8)).astype(np.uint8)
        amp, f = image_mark._strength(
            Image.fromarray(np.ascontiguousarray(y8), "L"), self.chip, _A_MAX, _TARGET_PSNR
        )
        amp = _video_strength(amp)
        if self.scale != 1.0:
            amp *= np.float32(self.scale)
        w, h = self.width, self.height
        amp_rows = self._stretch(amp, f)
        rows = f * -(-_BAND // f)
        buf = np.empty((rows, w), np.float32)
        top = np.float32(self.high + 0.999)  # truncation below is a floor: clip just under top + 1
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            n = y1 - y0
            groups = -(-n // f)
            a = amp_rows[y0 // f : y0 // f + groups]
            if a.shape[0] < groups:
                a = np.concatenate([a, a[-1:].repeat(groups - a.shape[0], axis=0)])
            band = buf[: groups * f].reshape(groups, f, w)
            p0 = y0 % self.period
            pattern = self.pattern_rows[p0 : p0 + groups * f].reshape(groups, f, w)
            np.multiply(pattern, a[:, None, :], out=band)
            out = buf[:n]
            out += luma[y0:y1]
            out += self.pattern_dither[y0:y1]
            np.clip(out, self.low, top, out=out)
            luma[y0:y1] = out  # float -> int truncates: with the dither, a floor

    def _stretch(self, amp: np.ndarray, f: int) -> np.ndarray:
        """``amp`` (reduced f times) linearly interpolated to the frame's width;
        the sample positions are worked out once per video, not per frame."""
        if self._columns is None or self._columns[0] != (f, amp.shape[1]):
            x = (np.arange(self.width, dtype=np.float32) + 0.5) / f - 0.5
            x0 = np.clip(np.floor(x).astype(np.int64), 0, amp.shape[1] - 1)
            x1 = np.minimum(x0 + 1, amp.shape[1] - 1)
            t = np.clip(x - x0, 0.0, 1.0).astype(np.float32)
            self._columns = ((f, amp.shape[1]), x0, x1, t)
        _, x0, x1, t = self._columns
        left = amp[:, x0]
        right = amp[:, x1]
        right -= left
        right *= t
        right += left
        return right


_BAND = 48  # rows per band of the embed (see FrameMarker.mark)


def _video_strength(amp: np.ndarray) -> np.ndarray:
    """The image mask, with a higher floor on flat areas.

    An image's flat areas keep ~0.4 levels (a still is looked at closely,
    and JPEG keeps that much); a video codec's quantiser zeroes such a faint
    residual on every flat block, and a video frame is seen for 1/30 s. The
    floor is still within the image mark's per-frame PSNR budget.
    """
    amp = np.maximum(amp, np.float32(FLAT_FLOOR))
    mse = float(np.mean(amp * amp))
    if mse > _BUDGET:
        amp *= np.float32(math.sqrt(_BUDGET / mse))
    return amp


def whiten(frame: Image.Image | np.ndarray) -> np.ndarray | None:
    """One frame's whitened luma (the image decoder's normalised residual),
    or None for a frame too small to hold a tile."""
    if isinstance(frame, np.ndarray):
        frame = Image.fromarray(frame if frame.dtype == np.uint8 else (frame >> 2).astype(np.uint8))
    if min(frame.size) < 2 * image_mark._P:
        return None
    return image_mark.whitened(frame)


def decode_whitened(
    whitened: Iterable[np.ndarray], threshold: float = THRESHOLD, *, low_pass: bool = False
) -> WatermarkResult | None:
    """The mark in the average of whitened frames of one video (see
    :func:`whiten`), or None. Frames of another size than the first are
    skipped (a stream that changes size). A caller that decodes several
    subsets of the same frames whitens each frame once.

    ``low_pass``: filter the average with a box of one chip first (the
    matched filter of a chip). Heavy grain that is new in every frame (film
    grain, sensor noise; ~14 levels RMS where the mark has ~2) is white down
    to the pixel, survives the whitening and drowns the lattice search: the
    plain average of 64 such frames still shows no mark, while the filtered
    average of 15 gives the exact key. On clean frames the filter only
    blurs, so it is a decode of its own, not a change to the others. Linear
    and sign-symmetric: an unmarked average stays a field of fair-coin chip
    signs, so it is one more decode under :data:`WINDOWS`."""
    total: np.ndarray | None = None
    count = 0
    for z in whitened:
        if total is not None and z.shape != total.shape:
            continue
        total = z.copy() if total is None else total + z
        count += 1
    if total is None:
        return None
    total /= count
    if low_pass:
        total = ndimage.uniform_filter(total, _CHIP_AT_WORK, mode="reflect")
    total -= total.mean()
    return image_mark.detect_whitened(total, threshold)[1]


#: A chip's side in a whitened frame, px: the decoder works at a shortest side
#: of at most image_mark._WORK px, which holds _CHIPS_PER_SIDE chips, and
#: smaller frames have chips of _MIN_CHIP (4 px either way today).
_CHIP_AT_WORK = max(_MIN_CHIP, round(image_mark._WORK / _CHIPS_PER_SIDE))


def decode_frames(
    frames: Iterable[Image.Image | np.ndarray], threshold: float = THRESHOLD
) -> WatermarkResult | None:
    """The mark in a few frames of one video (same size, as decoded), or None.

    Frames are whitened one by one and averaged; the cost is one image
    decode plus a luma reduction per frame.
    """
    zs = []
    for frame in frames:
        z = whiten(frame)
        if z is None:
            return None
        zs.append(z)
    return decode_whitened(zs, threshold)


def decode_unmoved(frames: Iterable[Image.Image | np.ndarray]) -> WatermarkResult | None:
    """The mark as :class:`FrameMarker` lays it in frames of this size, without
    the lattice search: one axis-aligned hypothesis at the tile size this
    module uses for the frames' size, any offset (as
    :func:`labelers.watermark.image.decode_unmoved`). The check labelling
    makes before embedding, to keep our own earlier mark; a mark rescaled or
    rotated since is not seen here (:func:`decode_frames` finds it). One
    hypothesis is fewer than a search, so :data:`THRESHOLD` bounds it."""
    zs = []
    size = None
    for frame in frames:
        z = whiten(frame)
        if z is None:
            return None
        if size is None:
            size = frame.shape[::-1] if isinstance(frame, np.ndarray) else frame.size
        zs.append(z)
    if not zs:
        return None
    z = zs[0] if len(zs) == 1 else np.mean(zs, axis=0)
    z = z - z.mean()
    w, h = size
    scale = min(1.0, image_mark._WORK / min(w, h))
    period = chip_size(w, h) * image_mark._P * scale
    basis = np.array([[period, 0.0], [0.0, period]])
    hypothesis = image_mark._align(image_mark._fold(z, basis))
    return image_mark._decide([hypothesis], THRESHOLD)[1]
