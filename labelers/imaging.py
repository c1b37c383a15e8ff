"""Decoding and re-encoding images whose pixels must change.

This module is the one place that opens an image for pixel edits (visible
label, watermark) and saves it back in the same format, keeping what the
source carried: encoder settings (JPEG quantisation tables, chroma
subsampling, progressive scan; WebP lossless flag; TIFF compression),
animation timing (per-frame durations, loop count, disposal, blending), and
metadata (ICC profile, EXIF with its orientation untouched, XMP, DPI, PNG
text and other ancillary chunks, JPEG APPn/COM segments, TIFF tags).

Writers in ``labelers/formats`` splice metadata into files whose pixels do not
change; they never come here. Limits are checked on the header, before any
pixel is decoded.

Known losses, all caused by the re-encode itself: a JPEG's trailing data after
EOI (MPF secondary images, motion-photo video) and its JFXX thumbnail are
dropped; an EXIF thumbnail is kept as it was (it shows the unlabelled
picture); WebP/AVIF lossy quality is estimated (WebP) or defaulted (AVIF)
because the files do not record it; GIF frames after the first are
re-quantised by Pillow to an adaptive palette; a multi-page TIFF keeps the
first page's tags on every page.

Colour modes the invisible watermark does not take as they are (CMYK and
YCCK, which Pillow decodes to CMYK; 16-bit grey; CIE L*a*b*) keep their mode:
:func:`luminance_plane` gives the watermark the luminance the mode has, and
:func:`with_luminance` writes the mark's change back into the mode's own
channels, so the other channels and the ICC profile stay as they were.

Pillow's process-wide decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``)
is raised, never lowered, to the largest ``max_pixels`` a caller passes, so
the configured limit, checked here first, is the one users meet.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFile, features
from PIL import JpegImagePlugin as _jpeg_plugin

from labelers.errors import CorruptInput, LimitExceeded, ServiceBusy, UnsupportedMedia
from labelers.formats import jpeg as jpeg_format
from labelers.formats import png as png_format
from labelers.formats import tiff as tiff_format
from labelers.formats import webp as webp_format
from labelers.limits import DEFAULT_LIMITS, Limits

# media type -> Pillow format name
_FORMATS: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/tiff": "TIFF",
    "image/gif": "GIF",
}
if features.check("avif"):
    _FORMATS["image/avif"] = "AVIF"

#: Media types :func:`open_raster` can open and :func:`save_raster` can write.
SUPPORTED_MEDIA_TYPES: frozenset[str] = frozenset(_FORMATS)

# AVIF files do not record the encoder quality; 90 keeps a labelled photo
# visually indistinguishable from its source at a moderate size.
_AVIF_DEFAULT_QUALITY = 90


# EXIF orientation -> the transpose that shows the stored pixels upright
# (the same table Pillow's ImageOps.exif_transpose uses).
ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: The transpose that turns an upright view back into the stored pixels.
ORIENTATION_UNDO: dict[int, Image.Transpose] = {
    **ORIENTATION_TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@dataclass
class Raster:
    """Decoded frames plus everything needed to write them back faithfully.

    ``frames`` may be edited in place (same size and mode); every other field
    describes the source and is used by :func:`save_raster`. Animated frames
    are full composited canvases, as Pillow yields them.
    """

    frames: list[Image.Image]
    media_type: str
    format: str  # Pillow format name: JPEG, PNG, WEBP, TIFF, GIF, AVIF
    orientation: int = 1  # EXIF orientation (1-8); pixels are stored un-rotated
    icc_profile: bytes | None = None
    # raw EXIF as Pillow carries it (JPEG: with "Exif\0\0"); TIFF: None, its
    # tags (EXIF and GPS sub-IFDs included) are in tiff_tags
    exif: bytes | None = None
    xmp: bytes | None = None  # the XMP packet
    dpi: tuple[float, float] | None = None
    comment: bytes | None = None  # GIF comment extension
    # animation
    durations: list[float] | None = None  # milliseconds per frame
    loop: int | None = None  # None: play once (no loop extension)
    disposals: list[int] | None = None  # GIF disposal method / APNG dispose_op per frame
    blends: list[int] | None = None  # APNG blend_op per frame
    background: Any = None  # GIF background index / WebP background colour
    transparency: Any = None  # palette index, tRNS bytes or colour key
    # JPEG
    qtables: dict[int, list[int]] | None = None
    subsampling: int = -1  # JpegImagePlugin.get_sampling: 0=4:4:4, 1=4:2:2, 2=4:2:0
    progressive: bool = False
    jpeg_segments: list[bytes] = field(default_factory=list)  # other APPn/COM, raw, in order
    # PNG: ancillary chunks other than iCCP/eXIf/pHYs/tRNS, raw (with length
    # and CRC), each with whether it came after the image data
    png_chunks: list[tuple[bytes, bool]] = field(default_factory=list)
    # decoded size / stored size: below 1 when decoded reduced (open_for_analysis)
    scale: float = 1.0
    # WebP / AVIF
    lossless: bool = False
    quality: int | None = None
    # TIFF
    compression: str | None = None
    tiff_tags: dict[int, tuple[Any, int]] = field(default_factory=dict)  # tag -> (value, type)

    @property
    def size(self) -> tuple[int, int]:
        """Stored (not displayed) width and height."""
        return self.frames[0].size

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as a viewer shows the image (EXIF orientation applied)."""
        w, h = self.size
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)


# --------------------------------------------------------------------------- luminance

#: modes labelers.watermark.image embeds in and decodes as they are
MARKABLE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P"})
#: 16- and 32-bit integer grey, as Pillow decodes 16-bit PNG and TIFF
WIDE_GRAY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I"})
_WIDE_STEP = 257  # one 8-bit level in 16-bit units (0 -> 0, 255 -> 65535)


def luminance_plane(frame: Image.Image) -> Image.Image | None:
    """The 8-bit luminance ("L") of ``frame`` for a mark to live in; None if it has none.

    CMYK: as Pillow converts it (R = 255 - C - K, then ITU-R 601 luma), which
    is what a reader of the file's pixels sees; 16-bit grey: the value in
    8-bit steps; LAB: its L* channel. Modes in :data:`MARKABLE_MODES` are
    their own plane (``frame.convert("L")``). Bilevel and float images have
    no luminance the mark can be written back into.
    """
    mode = frame.mode
    if mode in MARKABLE_MODES or mode == "CMYK":
        return frame.convert("L") if mode != "L" else frame
    if mode in WIDE_GRAY_MODES:
        values = np.asarray(frame, dtype=np.float64)
        return Image.fromarray((np.clip(values, 0, 65535) / _WIDE_STEP).round().astype(np.uint8))
    if mode == "LAB":
        return frame.getchannel("L")
    return None


def with_luminance(frame: Image.Image, before: Image.Image, after: Image.Image) -> Image.Image:
    """``frame`` (same mode) with the change ``after - before`` of its luminance plane.

    The change goes into the channels that carry luminance in that mode, so
    colour and the meaning of the ICC profile are kept: CMYK takes it in K
    (black), and what K cannot absorb at 0 or 255 in C, M and Y together;
    16-bit grey in 8-bit steps; LAB in L*.
    """
    delta = np.asarray(after, dtype=np.int32) - np.asarray(before, dtype=np.int32)
    mode = frame.mode
    if mode == "CMYK":
        cmyk = np.asarray(frame, dtype=np.int32).copy()
        k = np.clip(cmyk[..., 3] - delta, 0, 255)
        rest = delta - (cmyk[..., 3] - k)  # what K could not take
        cmyk[..., 3] = k
        cmyk[..., :3] = np.clip(cmyk[..., :3] - rest[..., None], 0, 255)
        return Image.fromarray(cmyk.astype(np.uint8), "CMYK")
    if mode in WIDE_GRAY_MODES:
        values = np.asarray(frame, dtype=np.int64) + delta * _WIDE_STEP
        top = 65535 if mode != "I" else np.iinfo(np.int32).max
        values = np.clip(values, 0, top)
        if mode == "I":
            return Image.fromarray(values.astype(np.int32))
        dtype = ">u2" if mode == "I;16B" else "<u2"
        height, width = values.shape
        return Image.frombuffer(
            mode, (width, height), values.astype(dtype).tobytes(), "raw", mode, 0, 1
        )
    if mode == "LAB":
        lab = np.asarray(frame, dtype=np.int32).copy()
        lab[..., 0] = np.clip(lab[..., 0] + delta, 0, 255)
        return Image.fromarray(lab.astype(np.uint8), "LAB")
    raise UnsupportedMedia(f"images in colour mode {mode} have no luminance to write back")


# --------------------------------------------------------------------------- errors


def _sync_pillow_bomb_guard(limits: Limits) -> None:
    """Keep Pillow's process-wide bomb guard from rejecting what ``limits`` allow.

    Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that, on open.
    Our own check (below) is the authority and names the setting; the guard is
    only raised (never lowered) to the largest limit seen, so it stays a
    backstop for other Pillow users in the process.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < limits.max_pixels:
        Image.MAX_IMAGE_PIXELS = limits.max_pixels


@contextmanager
def _pillow_errors(what: str, limits: Limits) -> Iterator[None]:
    """Turn Pillow's exceptions on bad bytes into the project's error types."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(
            f"{what} is larger than the pixel limit of {limits.max_pixels}: {exc}",
            limit="max_pixels",
            value=limits.max_pixels,
        ) from None
    except Image.UnidentifiedImageError:
        raise CorruptInput(f"{what} cannot be read: not a valid image of this type") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        IndexError,
        KeyError,
        TypeError,
        zlib.error,
        RuntimeError,  # the AVIF plugin's decode errors ("Decoding of color planes failed")
    ) as exc:
        raise CorruptInput(f"{what} is corrupt or truncated: {exc}") from None
    except MemoryError:
        raise LimitExceeded(f"{what} needs more memory than is available to decode") from None


# --------------------------------------------------------------------------- open


def open_raster(data: bytes, media_type: str, limits: Limits = DEFAULT_LIMITS) -> Raster:
    """Decode ``data`` (of the sniffed ``media_type``) for pixel edits.

    Checks byte size, frame size (width x height against ``max_pixels``),
    frame count (``max_frames``) and the pixels of all frames together
    (``max_pixels`` again: an animation must not decode to more than one
    maximal still) from the header before decoding. Pixels keep their stored
    mode and orientation.

    Raises UnsupportedMedia, CorruptInput or LimitExceeded.
    """
    fmt, what = _editable_format(data, media_type, limits)
    with _pillow_errors(what, limits):
        im, n_frames = _open_checked(data, fmt, what, limits)
        cost = n_frames * im.size[0] * im.size[1] * max(len(im.getbands()), 1)
        with DECODE_GATE.admit(cost) as ticket:
            raster = _read(im, data, media_type, fmt, n_frames, limits)
            # the decoded pixels stay counted against the process's budget for
            # as long as the raster lives, not just while it is decoded
            ticket.hold_until_collected(raster)
    return raster


#: above this many pixels, :func:`open_for_analysis` decodes a JPEG at half
#: size. Half, not less: the watermark is found down to 0.3 of its embedded
#: scale, and a label's height is a share of the side, so both survive it.
ANALYSIS_PIXELS = 12_000_000


def open_for_analysis(
    data: bytes,
    media_type: str,
    limits: Limits = DEFAULT_LIMITS,
    reduce_above: int | None = None,
) -> Raster:
    """Decode only what reading an image needs: its first frame, large JPEGs at half size.

    Verification and previews look at one frame and never write pixels back,
    so an animation's other frames are not decoded, and a JPEG of more than
    ``reduce_above`` pixels (default :data:`ANALYSIS_PIXELS`) is decoded by
    the codec's DCT scaling at half its size (a quarter of the time and
    memory). ``Raster.scale`` says how the frame relates to the stored size.
    The checks are those of :func:`open_raster`, on the declared size.
    """
    fmt, what = _editable_format(data, media_type, limits)
    with _pillow_errors(what, limits):
        im, _ = _open_checked(data, fmt, what, limits)
        width, height = im.size
        threshold = ANALYSIS_PIXELS if reduce_above is None else reduce_above
        scale = 1.0
        if fmt == "JPEG" and width * height > threshold:
            im.draft(im.mode, ((width + 1) // 2, (height + 1) // 2))
            scale = im.size[0] / width  # no orientation applied by the JPEG loader
        cost = im.size[0] * im.size[1] * max(len(im.getbands()), 1)
        with DECODE_GATE.admit(cost) as ticket:
            raster = _read(im, data, media_type, fmt, 1, limits)
            raster.scale = scale
            ticket.hold_until_collected(raster)
    return raster


def _editable_format(data: bytes, media_type: str, limits: Limits) -> tuple[str, str]:
    fmt = _FORMATS.get(media_type)
    if fmt is None:
        raise UnsupportedMedia(f"{media_type} images cannot be edited (no encoder here)")
    limits.check("max_bytes", len(data), "the file")
    _sync_pillow_bomb_guard(limits)
    return fmt, f"the {fmt} image"


def _open_checked(
    data: bytes, fmt: str, what: str, limits: Limits
) -> tuple[ImageFile.ImageFile, int]:
    """Open ``data`` lazily and check its declared size and frames against the limits."""
    im = Image.open(io.BytesIO(data), formats=[fmt])
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptInput(f"{what} has an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise limits.exceeded(
            "max_pixels",
            width * height,
            f"{what} is {width}x{height} = {width * height} pixels; the limit is "
            f"{limits.max_pixels}",
        )
    n_frames = getattr(im, "n_frames", 1)
    if n_frames > limits.max_frames:
        raise limits.exceeded(
            "max_frames",
            n_frames,
            f"{what} has {n_frames} frames; the limit is {limits.max_frames}",
        )
    if n_frames * width * height > limits.max_pixels:
        raise limits.exceeded(
            "max_pixels",
            n_frames * width * height,
            f"{what} has {n_frames} frames of {width}x{height}, "
            f"{n_frames * width * height} pixels in all; the limit is "
            f"{limits.max_pixels}",
        )
    check_pixel_budget(what, n_frames * width * height, len(data), limits)
    return im, n_frames  # type: ignore[return-value]


def check_pixel_budget(what: str, pixels: int, file_bytes: int, limits: Limits) -> None:
    """LimitExceeded when ``pixels`` is out of proportion to the file's size.

    Compression lets a few hundred bytes declare a 100-megapixel image that
    takes seconds and gigabytes to decode; real images need far more bytes
    per pixel than ``1 / max_pixels_per_byte``. Checked on the header, before
    decoding.
    """
    allowed = max(limits.pixel_budget_floor, file_bytes * limits.max_pixels_per_byte)
    if pixels > allowed:
        raise limits.exceeded(
            "max_pixels_per_byte",
            pixels / max(file_bytes, 1),
            f"{what} declares {pixels} pixels in a file of {file_bytes} bytes; above "
            f"{limits.pixel_budget_floor} pixels a file may hold "
            f"at most {limits.max_pixels_per_byte} pixels per byte",
        )


class DecodeGate:
    """Bounds how many decodes run at once in this process, and the memory they hold.

    A decode is admitted when fewer than ``max_decodes`` are running and the
    estimated bytes of decoded pixels already held plus its own fit in
    ``max_bytes`` (a decode alone is always admitted: the per-image limits
    bound it). A caller that cannot be admitted within ``wait_seconds`` gets
    ServiceBusy, which the service answers with 503 and Retry-After instead of
    letting concurrent decodes exhaust memory.
    """

    def __init__(
        self, max_decodes: int = 2, max_bytes: int = 1 << 30, wait_seconds: float = 5.0
    ) -> None:
        self._cond = threading.Condition()
        self.configure(max_decodes, max_bytes, wait_seconds)
        self.decoding = 0  # decodes running now
        self.held_bytes = 0  # estimated bytes of decoded pixels alive now
        #: called (under the gate's lock) with (decoding, held_bytes) on every change
        self.on_change: Callable[[int, int], None] | None = None

    def configure(self, max_decodes: int, max_bytes: int, wait_seconds: float) -> None:
        with self._cond:
            self.max_decodes = max(1, max_decodes)
            self.max_bytes = max_bytes
            self.wait_seconds = wait_seconds
            self._cond.notify_all()

    def admit(self, cost: int) -> _Ticket:
        deadline = time.monotonic() + self.wait_seconds
        with self._cond:
            while not self._fits(cost):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServiceBusy(
                        f"the service is decoding {self.decoding} images holding "
                        f"{self.held_bytes >> 20} MiB, its decode capacity; try again shortly"
                    )
                self._cond.wait(left)
            self.decoding += 1
            self.held_bytes += cost
            self._changed()
        return _Ticket(self, cost)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.decoding, self.held_bytes)

    def _fits(self, cost: int) -> bool:
        if self.decoding >= self.max_decodes:
            return False
        return self.held_bytes == 0 or self.held_bytes + cost <= self.max_bytes

    def _finish_decode(self) -> None:
        with self._cond:
            self.decoding -= 1
            self._changed()
            self._cond.notify_all()

    def _release(self, cost: int) -> None:
        with self._cond:
            self.held_bytes -= cost
            self._changed()
            self._cond.notify_all()


class _Ticket:
    def __init__(self, gate: DecodeGate, cost: int) -> None:
        self._gate, self._cost, self._held = gate, cost, False

    def hold_until_collected(self, owner: object) -> None:
        self._held = True
        weakref.finalize(owner, self._gate._release, self._cost)

    def __enter__(self) -> _Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self._gate._finish_decode()
        if not self._held:  # the decode failed: nothing to hold
            self._gate._release(self._cost)


#: the process's gate; the service sizes it from its settings at start
DECODE_GATE = DecodeGate()


def _read(
    im: ImageFile.ImageFile, data: bytes, media_type: str, fmt: str, n: int, limits: Limits
) -> Raster:
    info = dict(im.info)
    raster = Raster(frames=[], media_type=media_type, format=fmt)
    raster.icc_profile = info.get("icc_profile") or None
    exif = info.get("exif")
    raster.exif = bytes(exif) if exif else None
    xmp = info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    raster.xmp = xmp or None
    if "dpi" in info:
        raster.dpi = tuple(float(v) for v in info["dpi"])  # type: ignore[assignment]
    raster.orientation = _orientation(im)

    if fmt == "JPEG":
        assert isinstance(im, _jpeg_plugin.JpegImageFile)
        raster.qtables = {k: list(v) for k, v in getattr(im, "quantization", {}).items()}
        raster.subsampling = _jpeg_plugin.get_sampling(im)
        raster.progressive = bool(info.get("progressive") or info.get("progression"))
        raster.jpeg_segments = jpeg_format.segments_to_carry(data, limits)
    elif fmt == "PNG":
        raster.png_chunks = png_format.ancillary_chunks(data, limits)
        raster.transparency = info.get("transparency")
    elif fmt == "WEBP":
        raster.lossless, raster.quality = webp_format.coding(data, limits)
        raster.background = info.get("background")
        raster.loop = info.get("loop")
    elif fmt == "GIF":
        raster.loop = info.get("loop")
        raster.background = info.get("background")
        raster.transparency = info.get("transparency")
        comment = info.get("comment")
        raster.comment = comment if isinstance(comment, bytes) and comment else None
    elif fmt == "TIFF":
        raster.compression = info.get("compression")
        raster.tiff_tags = tiff_format.tags_to_carry(im, data)
    elif fmt == "AVIF":
        raster.quality = _AVIF_DEFAULT_QUALITY

    if n == 1:
        im.load()
        # keep the decoded file object itself: no copy of a 12 MP frame, and
        # it still knows its own qtables
        raster.frames = [_as_stored(im, fmt, raster.orientation)]
        return raster

    durations: list[float] = []
    disposals: list[int] = []
    blends: list[int] = []
    for index in range(n):
        im.seek(index)
        im.load()
        raster.frames.append(_as_stored(im.copy(), fmt, raster.orientation))
        durations.append(float(im.info.get("duration", 0) or 0))
        if fmt == "GIF":
            disposals.append(int(getattr(im, "disposal_method", 0) or 0))
        elif fmt == "PNG":
            disposals.append(int(im.info.get("disposal", 0) or 0))
            blends.append(int(im.info.get("blend", 0) or 0))
    if fmt in ("GIF", "PNG", "WEBP", "AVIF"):
        raster.durations = durations
    if disposals:
        raster.disposals = disposals
    if blends:
        raster.blends = blends
    if fmt == "PNG":
        raster.loop = im.info.get("loop", raster.loop)
    return raster


def _as_stored(frame: Image.Image, fmt: str, orientation: int) -> Image.Image:
    """Undo the rotation Pillow's TIFF loader applies, so pixels stay as stored."""
    if fmt == "TIFF" and orientation in ORIENTATION_UNDO:
        return frame.transpose(ORIENTATION_UNDO[orientation])
    return frame


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # an unreadable EXIF block must not stop labelling; treat as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# --------------------------------------------------------------------------- save


def save_raster(raster: Raster) -> bytes:
    """Encode ``raster`` in its source format, keeping the source's settings and metadata.

    Raises CorruptInput when the encoder refuses the frames (for instance a
    frame whose mode the format cannot hold).
    """
    out = io.BytesIO()
    first, rest = raster.frames[0], raster.frames[1:]
    options: dict[str, Any] = {}
    if rest:
        options["save_all"] = True
        options["append_images"] = rest
    try:
        if raster.format == "JPEG":
            _save_jpeg(raster, first, out, options)
        elif raster.format == "PNG":
            _save_png(raster, first, out, options)
        elif raster.format == "WEBP":
            _save_webp(raster, first, out, options)
        elif raster.format == "GIF":
            _save_gif(raster, first, out, options)
        elif raster.format == "TIFF":
            _save_tiff(raster, first, out, options)
        elif raster.format == "AVIF":
            _save_avif(raster, first, out, options)
        else:
            raise UnsupportedMedia(f"cannot write {raster.format} images")
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        struct.error,
        RuntimeError,
    ) as exc:
        # e.g. a TIFF whose tags the encoder cannot write back
        raise CorruptInput(f"the {raster.format} image could not be re-encoded: {exc}") from None
    data = out.getvalue()
    if raster.format == "PNG":
        data = png_format.splice_ancillary(data, raster.png_chunks)
    return data


def _common_metadata(raster: Raster, options: dict[str, Any]) -> None:
    if raster.icc_profile:
        options["icc_profile"] = raster.icc_profile
    if raster.exif:
        options["exif"] = raster.exif
    if raster.xmp:
        options["xmp"] = raster.xmp


def _save_jpeg(raster: Raster, first: Image.Image, out: io.BytesIO, opts: dict) -> None:
    _common_metadata(raster, opts)
    if raster.qtables:
        opts["qtables"] = raster.qtables
    else:
        opts["quality"] = 95
    opts["subsampling"] = raster.subsampling
    opts["progressive"] = raster.progressive
    if raster.dpi:
        opts["dpi"] = raster.dpi
    # libjpeg writes "extra" verbatim right after its own JFIF/Adobe header
    opts["extra"] = b"".join(raster.jpeg_segments)
    opts["comment"] = b""  # COM segments travel raw in jpeg_segments, in their place
    opts.pop("save_all", None)
    opts.pop("append_images", None)
    first.save(out, "JPEG", **opts)


def _save_png(raster: Raster, first: Image.Image, out: io.BytesIO, opts: dict) -> None:
    _common_metadata(raster, opts)
    opts.pop("xmp", None)  # the XMP iTXt chunk travels raw with the other text chunks
    if raster.dpi:
        opts["dpi"] = raster.dpi
    if raster.transparency is not None and first.mode in ("P", "L", "RGB", "I", "I;16", "1"):
        opts["transparency"] = raster.transparency
    if len(raster.frames) > 1:
        if raster.durations:
            opts["duration"] = raster.durations
        if raster.disposals:
            opts["disposal"] = raster.disposals
        if raster.blends:
            opts["blend"] = raster.blends
        opts["loop"] = raster.loop if raster.loop is not None else 0
    # zlib level 6 is libpng's default and the usual balance of size and time
    first.save(out, "PNG", compress_level=6, **opts)


def _save_webp(raster: Raster, first: Image.Image, out: io.BytesIO, opts: dict) -> None:
    _common_metadata(raster, opts)
    if raster.lossless:
        opts["lossless"] = True
        opts["exact"] = True  # keep RGB under fully transparent pixels, as the source had
        opts["quality"] = 80
    else:
        opts["quality"] = raster.quality or webp_format.DEFAULT_QUALITY
    if len(raster.frames) > 1:
        if raster.durations:
            opts["duration"] = [round(d) for d in raster.durations]
        opts["loop"] = raster.loop if raster.loop is not None else 0
        if raster.background is not None:
            opts["background"] = raster.background
    first.save(out, "WEBP", **opts)


def _save_gif(raster: Raster, first: Image.Image, out: io.BytesIO, opts: dict) -> None:
    if raster.xmp:
        opts["xmp"] = raster.xmp
    if raster.durations:
        opts["duration"] = raster.durations if len(raster.frames) > 1 else raster.durations[0]
    elif "duration" in first.info:
        opts["duration"] = first.info["duration"]
    if raster.loop is not None:
        opts["loop"] = raster.loop
    if raster.disposals:
        opts["disposal"] = raster.disposals
    if raster.background is not None:
        opts["background"] = raster.background
    if raster.comment:
        opts["comment"] = raster.comment
    if raster.transparency is not None and first.mode in ("P", "L"):
        opts["transparency"] = raster.transparency
    first.save(out, "GIF", **opts)


def _save_tiff(raster: Raster, first: Image.Image, out: io.BytesIO, opts: dict) -> None:
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    ifd = ImageFileDirectory_v2()
    sub_ifds: dict[int, dict] = {}
    for tag, (value, tagtype) in raster.tiff_tags.items():
        if isinstance(value, dict):
            sub_ifds[tag] = value
            continue
        ifd[tag] = value
        if tagtype:
            ifd.tagtype[tag] = tagtype
    if raster.xmp:
        ifd[700] = raster.xmp
        ifd.tagtype[700] = 1  # BYTE, as the TIFF/XMP specification stores the packet
    opts["tiffinfo"] = ifd
    if raster.icc_profile:
        opts["icc_profile"] = raster.icc_profile
    if raster.compression:
        opts["compression"] = raster.compression
    if raster.compression == "jpeg":
        opts["quality"] = 90
    if raster.dpi:
        opts["dpi"] = raster.dpi
    first.save(out, "TIFF", **opts)
    if sub_ifds:
        data = tiff_format.add_sub_ifds(out.getvalue(), sub_ifds)
        out.seek(0)
        out.truncate()
        out.write(data)


def _save_avif(raster: Raster, first: Image.Image, out: io.BytesIO, opts: dict) -> None:
    _common_metadata(raster, opts)
    opts["quality"] = raster.quality or _AVIF_DEFAULT_QUALITY
    if len(raster.frames) > 1 and raster.durations:
        opts["duration"] = [round(d) for d in raster.durations]
    first.save(out, "AVIF", **opts)
