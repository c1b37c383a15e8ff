"""Video I/O for labelling: probe, and the one re-encode that carries the signal.

Owns reading a video's stream parameters (PyAV on its bundled FFmpeg), the
limits checked from them before any frame is decoded, and
:func:`apply_video`: decode the video stream once, draw the visible label
(:mod:`labelers.visible.video`) and embed the watermark
(:mod:`labelers.watermark.video`) on each frame in the same pass, and encode
it again with the input's codec, frame rate and timestamps, pixel format,
colour tags and a quality chosen from the input's bitrate. Every other stream
(audio, subtitles) is remuxed packet for packet. The container's own metadata
(records, tags) is not this module's business: the container modules carry
the original's metadata onto this output.

Memory is bounded: frames are handled one at a time and the output is
written to a temporary file, never collected in a list.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from labelers.errors import CorruptInput, InvalidOption, UnsupportedMedia
from labelers.limits import DEFAULT_LIMITS, Limits, check_video
from labelers.visible.video import PLANAR_FORMATS, FrameLabel, plane_array
from labelers.watermark import video as video_mark

logging.getLogger("libav").setLevel(logging.CRITICAL)

#: media type -> (demuxer, muxer) names of PyAV/FFmpeg
CONTAINERS = {
    "video/mp4": ("mov", "mp4"),
    "video/x-m4v": ("mov", "mp4"),
    "video/quicktime": ("mov", "mov"),
    "video/webm": ("matroska", "webm"),
    "video/x-matroska": ("matroska", "matroska"),
}

#: decoder name -> the encoder that writes the same codec
ENCODERS = {
    "h264": "libx264",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "vp8": "libvpx",
    "av1": "libsvtav1",
    "libdav1d": "libsvtav1",
    "mpeg4": "mpeg4",
    "prores": "prores_ks",
    "mjpeg": "mjpeg",
}
# when the input's codec has no encoder here: the muxer's usual codec
_FALLBACK = {"webm": "libvpx-vp9", "matroska": "libx264", "mp4": "libx264", "mov": "libx264"}

DEFAULT_SECONDS = 3.0  # the visible label's default span: the first 3 s

# Quality: a CRF from the input's bits per pixel per frame. Each codec has a
# reference point (a CRF that gives about that many bits per pixel on
# ordinary footage); 6 CRF steps double or halve the rate for x264/x265 (and
# roughly so for VP9/AV1 on their 0-63 scales). The output aims two steps
# *better* than the input's rate suggests, since it is a second generation.
_CRF = {
    # encoder: (crf at the reference bpp, reference bpp, lowest, highest crf)
    "libx264": (23, 0.10, 10, 30),
    "libx265": (28, 0.06, 12, 34),
    "libvpx-vp9": (33, 0.08, 10, 45),
    "libvpx": (20, 0.10, 4, 40),
    "libsvtav1": (35, 0.05, 10, 50),
}
_MARGIN_STEPS = 2
#: The highest CRF a watermarked encode uses (the first generation of a
#: mark that must survive a platform's CRF 28 re-encode). The bits-per-pixel
#: estimate above reads a smooth clip (a slow pan over a still) as a
#: low-quality one and picked CRF 30 for a CRF 18 input (672 kb/s at 720p30);
#: at that CRF x264's P-frames predict the moving content, mark and all,
#: from the previous frame and drop the residual that would put the still
#: mark back, so it survived in keyframes only (sync score 11.9 on the
#: keyframe, 4.3 = noise five frames later; 12-14 on every frame at CRF 23).
#: The others are these codecs' CRF 23 equivalents, not measured here.
_MARK_CRF_MAX = {"libx264": 23, "libx265": 28, "libvpx-vp9": 33, "libvpx": 20, "libsvtav1": 35}


@dataclass(frozen=True)
class VideoInfo:
    """What the headers (and the first frame) say about the video stream."""

    container: str  # the demuxer's format name
    codec: str
    width: int  # stored frame size, px
    height: int
    sample_aspect: Fraction  # pixel width / pixel height (1 for square pixels)
    rotation: int  # display matrix: degrees counter-clockwise (0, 90, 180, -90)
    fps: Fraction
    duration: float  # seconds
    frames: int  # from the headers or duration x fps
    pix_fmt: str
    color_range: int  # FFmpeg's enums: 1 limited (MPEG), 2 full (JPEG), 0 unknown
    colorspace: int
    color_primaries: int
    color_trc: int
    bitrate: int  # bits per second of the video stream (estimated when not declared)
    has_audio: bool = False
    streams: int = 1
    # declared bits per second of the other streams (copied as they are; 0 when undeclared)
    other_bitrate: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a viewer sees it: pixel aspect applied, then rotation."""
        w = max(1, round(self.width * self.sample_aspect))
        return (self.height, w) if abs(self.rotation) % 180 == 90 else (w, self.height)

    @property
    def full_range(self) -> bool:
        return self.color_range == 2 or self.pix_fmt.startswith("yuvj")


@dataclass
class VideoOutcome:
    """The re-encoded file and what went into it."""

    data: bytes
    explicit: str  # where the visible label went ("bottom-right, 0-3 s"), or "none"
    watermark: str  # "embedded", "off", or why it was skipped
    notes: list[str] = field(default_factory=list)
    # the label's box (left, top, right, bottom) in stored pixels and its ink in displayed px
    label_box: tuple[int, int, int, int] | None = None
    ink_px: int = 0
    # the key the output's watermark carries: the one given, or the one the
    # input already carried (relabelling keeps a single mark); None without one
    watermark_key: int | None = None


# --------------------------------------------------------------------------- probing


def _open(data: bytes, media_type: str) -> av.container.InputContainer:
    if media_type not in CONTAINERS:
        raise UnsupportedMedia(f"{media_type} is not a video container this service reads")
    demuxer = CONTAINERS[media_type][0]
    try:
        return av.open(io.BytesIO(data), mode="r", format=demuxer)
    except av.FFmpegError as exc:
        raise CorruptInput(f"the {media_type} file cannot be read: {_reason(exc)}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise CorruptInput(f"the {media_type} file cannot be read: {exc}") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":", 1)[-1].strip() if ":" in text and "Errno" in text else text


def _video_stream(container, media_type: str):
    if not container.streams.video:
        raise CorruptInput(f"the {media_type} file holds no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        # FFmpeg has no decoder for the stream's codec tag (unknown, or damaged)
        raise UnsupportedMedia(
            f"the {media_type} file's video stream is in a codec this service cannot decode"
        )
    return stream


def _header_info(container, stream, size: int) -> dict:
    ctx = stream.codec_context
    width, height = ctx.width or 0, ctx.height or 0
    if width <= 0 or height <= 0:
        raise CorruptInput("the video stream declares no frame size")
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(0)
    fps = Fraction(fps) if fps else Fraction(0)
    duration = 0.0
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    if duration <= 0 and container.duration:
        duration = container.duration / 1_000_000
    frames = stream.frames or (round(duration * fps) if fps and duration else 0)
    bitrate = stream.bit_rate or container.bit_rate or 0
    if not bitrate and duration > 0:
        bitrate = round(size * 8 / duration)
    sar = ctx.sample_aspect_ratio or stream.sample_aspect_ratio
    sar = Fraction(sar) if sar else Fraction(1)
    if sar <= 0 or sar > 16 or sar < Fraction(1, 16):
        sar = Fraction(1)
    return {
        "width": width,
        "height": height,
        "fps": fps,
        "duration": duration,
        "frames": int(frames),
        "bitrate": int(bitrate),
        "sample_aspect": sar,
        "codec": ctx.name,
        "pix_fmt": ctx.pix_fmt or "",
    }


def check_limits(head: dict, limits: Limits) -> None:
    """Raise LimitExceeded when the headers declare more than ``limits`` allow."""
    check_video(
        limits,
        seconds=head["duration"],
        width=head["width"],
        height=head["height"],
        frames=head["frames"],
        bitrate=head["bitrate"],
    )


def probe(data: bytes, limits: Limits = DEFAULT_LIMITS, media_type: str = "video/mp4") -> VideoInfo:
    """Read the video stream's parameters; limits are checked before any decoding.

    The rotation and colour tags come from the first decoded frame (the
    headers alone do not carry the display matrix through PyAV), which is
    decoded only after the declared size, length and rate passed the limits.
    Raises CorruptInput, LimitExceeded or UnsupportedMedia.
    """
    return _probe(data, limits, media_type, 0)[0]


def _probe(
    data: bytes, limits: Limits, media_type: str, opening: int
) -> tuple[VideoInfo, list[np.ndarray]]:
    """:func:`probe`, and the 8-bit luma of the first ``opening`` frames (none for
    0), from the same open and decode: labelling looks for an earlier mark in
    them."""
    with _open(data, media_type) as container:
        stream = _video_stream(container, media_type)
        head = _header_info(container, stream, len(data))
        check_limits(head, limits)
        frames = _opening_frames(container, stream, max(1, opening))
        info = _info(container, stream, head, frames[0])
        return info, [frame.to_ndarray(format="gray") for frame in frames[:opening]]


def _opening_frames(container, stream, count: int) -> list:
    frames = []
    try:
        for frame in container.decode(stream):
            frames.append(frame)
            if len(frames) >= count:
                break
    except av.FFmpegError as exc:
        if not frames:
            raise CorruptInput(f"the video stream cannot be decoded: {_reason(exc)}") from None
    if not frames:
        raise CorruptInput("the video stream holds no decodable frame")
    return frames


def _info(container, stream, head: dict, frame) -> VideoInfo:
    ctx = stream.codec_context
    return VideoInfo(
        container=container.format.name,
        codec=head["codec"],
        width=head["width"],
        height=head["height"],
        sample_aspect=head["sample_aspect"],
        rotation=round(frame.rotation or 0),
        fps=head["fps"],
        duration=head["duration"],
        frames=head["frames"],
        pix_fmt=frame.format.name or head["pix_fmt"],
        color_range=int(frame.color_range or ctx.color_range or 0),
        colorspace=int(frame.colorspace or 2),
        color_primaries=int(frame.color_primaries or 2),
        color_trc=int(frame.color_trc or 2),
        bitrate=head["bitrate"],
        has_audio=bool(container.streams.audio),
        streams=len(container.streams),
        other_bitrate=sum(s.bit_rate or 0 for s in container.streams if s is not stream),
    )


# --------------------------------------------------------------------------- spans


def parse_span(span: str, duration: float) -> list[tuple[float, float]]:
    """The time ranges (seconds from the first frame) that get the visible label.

    ``start`` (the first 3 s), ``start:N`` (the first N s), ``whole``,
    ``start+end`` (the first and the last 3 s).
    """
    span = (span or "start").strip()
    if span == "whole":
        return [(0.0, math.inf)]
    if span == "start":
        return [(0.0, DEFAULT_SECONDS)]
    if span == "start+end":
        return [(0.0, DEFAULT_SECONDS), (max(0.0, duration - DEFAULT_SECONDS), math.inf)]
    if span.startswith("start:"):
        try:
            seconds = float(span.split(":", 1)[1])
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds >= 2.0):
            raise InvalidOption(
                f"span {span!r}: the label must show for at least 2 s (GB 45438 5.3); "
                "use start:N with N >= 2"
            )
        return [(0.0, seconds)]
    raise InvalidOption(f"span must be start, start:N, whole or start+end, not {span!r}")


# --------------------------------------------------------------------------- encoding


def _encoder_for(info: VideoInfo, muxer: str, notes: list[str]) -> str:
    name = ENCODERS.get(info.codec)
    if name is not None:
        try:
            av.Codec(name, "w")
            return name
        except (av.FFmpegError, ValueError):
            pass
    fallback = _FALLBACK[muxer]
    notes.append(f"no {info.codec} encoder here: the video stream is re-encoded with {fallback}")
    return fallback


def _encoder_format(encoder: str, pix_fmt: str, notes: list[str]) -> str:
    formats = [f.name for f in (av.Codec(encoder, "w").video_formats or [])]
    if not formats or pix_fmt in formats:
        return pix_fmt
    deep = any(tag in pix_fmt for tag in ("10", "12", "16"))
    choice = next((f for f in formats if ("10" in f) == deep and f in PLANAR_FORMATS), formats[0])
    notes.append(f"{encoder} cannot write {pix_fmt}: the video is written as {choice}")
    return choice


def quality_options(
    encoder: str, info: VideoInfo, *, marked: bool = False, ceiling: int | None = None
) -> dict[str, str]:
    """Encoder options for a quality no worse than the input's (see _CRF);
    ``marked``: the frames carry the watermark (see _MARK_CRF_MAX);
    ``ceiling``: the average bit rate (bit/s) the video stream must stay
    under (see :func:`rate_ceiling`), None for none."""
    pixels_per_second = info.width * info.height * float(info.fps or 25)
    bpp = info.bitrate / pixels_per_second if info.bitrate and pixels_per_second else 0.0
    if encoder in _CRF:
        crf0, ref, low, high = _CRF[encoder]
        crf = crf0 if bpp <= 0 else crf0 - 6.0 * math.log2(bpp / ref)
        crf = int(min(high, max(low, round(crf - _MARGIN_STEPS))))
        if marked:
            crf = min(crf, _MARK_CRF_MAX[encoder])
        options = {"crf": str(crf)}
        if encoder == "libx264":
            options["preset"] = "fast"
        elif encoder == "libx265":
            options.update({"preset": "fast", "x265-params": "log-level=error"})
        elif encoder in ("libvpx-vp9", "libvpx"):
            # b=0: constant quality; with a ceiling, b is the constrained-quality cap
            options.update({"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"})
        else:
            options["preset"] = "8"
        if ceiling is not None:
            options.update(_vbv(encoder, ceiling, info.duration))
        return options
    # codecs without a constant-quality mode here: the input's rate and a quarter
    rate = max(200_000, int(info.bitrate * 1.25)) if info.bitrate else 8_000_000
    if ceiling is None:
        return {"b": str(rate)}
    vbv = _vbv(encoder, ceiling, info.duration)
    return {"b": str(min(rate, int(vbv["maxrate"]))), **vbv}


#: Share of ``max_video_bitrate`` our own re-encode aims under: the rest is
#: the container's own bytes, which a reader may count with the stream's (a
#: Matroska file's rate is read from its size), and the encoder's slack.
RATE_HEADROOM = 0.9
#: The VBV buffer in seconds of the ceiling, at most (a quarter of a short clip).
_VBV_SECONDS = 1.0


def rate_ceiling(limits: Limits, other_bitrate: int = 0) -> int:
    """The average bit rate (bit/s) our re-encoded video stream must stay under
    so that the output passes ``limits.max_video_bitrate`` when it is verified
    (with the same limits): the headroom below the limit, less what the
    copied streams (``other_bitrate``) add in readers that count the whole file."""
    return int(limits.max_video_bitrate * RATE_HEADROOM) - max(0, other_bitrate)


def _vbv(encoder: str, ceiling: int, duration: float) -> dict[str, str]:
    """Rate-control options that keep the stream's average under ``ceiling``.

    A VBV buffer of B seconds starts (nearly) full, so an encode of T
    seconds may spend up to maxrate x (T + B) bits: maxrate is set to
    ceiling x T / (T + B) so the whole clip's average stays under the
    ceiling, with B at most a quarter of the clip. With CRF this is
    "capped CRF": an easy clip keeps its CRF's rate. libvpx has no VBV
    in constant quality; its ``b`` is the constrained-quality cap.
    """
    seconds = duration if duration and duration > 0 else 4 * _VBV_SECONDS
    buffer_s = min(_VBV_SECONDS, seconds / 4)
    maxrate = max(1, int(ceiling * seconds / (seconds + buffer_s)))
    options = {"maxrate": str(maxrate), "bufsize": str(max(1, int(maxrate * buffer_s)))}
    if encoder in ("libvpx-vp9", "libvpx"):
        options["b"] = str(maxrate)
    return options


def _work_format(pix_fmt: str) -> str:
    """The pixel format frames are drawn in: the input's when it is planar Y'CbCr."""
    if pix_fmt in PLANAR_FORMATS:
        return pix_fmt
    deep = any(tag in pix_fmt for tag in ("10", "12", "16"))
    return "yuv420p10le" if deep else "yuv420p"


def _chroma_shift(pix_fmt: str) -> tuple[int, int]:
    if "420" in pix_fmt:
        return 1, 1
    if "422" in pix_fmt:
        return 1, 0
    if "440" in pix_fmt:
        return 0, 1
    return 0, 0


def _in_spans(t: float, spans: list[tuple[float, float]]) -> bool:
    return any(start <= t < end for start, end in spans)


def apply_video(
    data: bytes,
    media_type: str,
    *,
    wording: str,
    position: str,
    span: str = "start",
    watermark_key: int | None,
    limits: Limits = DEFAULT_LIMITS,
) -> VideoOutcome:
    """Burn the visible label into the video and embed the watermark, in one re-encode.

    ``wording`` empty (or ``span`` "none") draws no label; ``watermark_key``
    None embeds no mark; with neither the input comes back unchanged. Only
    the video stream is re-encoded; audio and other streams are copied
    packet for packet. The container's metadata is not carried here (see the
    container modules). Raises CorruptInput, LimitExceeded, InvalidOption,
    UnsupportedMedia.
    """
    draw = bool(wording) and span != "none"
    if not draw and watermark_key is None:
        return VideoOutcome(data, "none", "off")
    opening = EXISTING_MARK_FRAMES if watermark_key is not None else 0
    info, opening_lumas = _probe(data, limits, media_type, opening)
    notes: list[str] = []
    spans = parse_span(span, info.duration) if draw else []
    watermark = "off"
    carried = None
    if watermark_key is not None:
        reason = video_mark.check_size(info.width, info.height)
        watermark = "embedded" if reason is None else f"skipped: {reason}"
        if reason is None:
            existing = _existing_mark(opening_lumas)
            if existing is not None:
                # relabelling: one mark per video (two superimposed marks
                # would blur each other); the ledger already knows this key
                watermark = f"kept: the video already carries watermark key {existing:016x}"
                carried = existing
            else:
                carried = watermark_key
    if not draw and watermark != "embedded":
        return VideoOutcome(data, "none", watermark, watermark_key=carried)
    work_fmt = _work_format(info.pix_fmt)
    label = None
    if draw:
        label = FrameLabel(
            wording,
            position,
            info.width,
            info.height,
            pix_fmt=work_fmt,
            full_range=info.full_range,
            sample_aspect=info.sample_aspect,
            rotation=info.rotation,
            chroma_shift=_chroma_shift(work_fmt),
        )
        if info.duration and info.duration < 2.0:
            notes.append(
                f"the video is {info.duration:.2f} s long: the label shows for all of it, "
                "less than the 2 s GB 45438 asks"
            )
    marker = None
    if watermark == "embedded":
        marker = video_mark.FrameMarker(
            watermark_key,
            info.width,
            info.height,
            depth=PLANAR_FORMATS[work_fmt],
        )
    # a mark kept from an earlier labelling needs the marked encode's CRF cap as much as a new one
    out = _reencode(
        data, media_type, info, work_fmt, label, marker, spans, limits, notes,
        marked=carried is not None,
    )  # fmt: skip
    explicit = "none"
    if label is not None:
        explicit = f"{position}, {span or 'start'}"
    return VideoOutcome(
        out,
        explicit,
        watermark,
        notes,
        label_box=label.box if label else None,
        ink_px=label.ink_px if label else 0,
        watermark_key=carried,
    )


#: Opening frames decoded to look for a mark already there before embedding one
#: (our own output keeps the mark in every frame: see _MARK_CRF_MAX).
EXISTING_MARK_FRAMES = 4


def _existing_mark(lumas: list[np.ndarray]) -> int | None:
    """The key of a watermark the video's opening frames already carry, or None."""
    # our own earlier mark sits unmoved: one fold, not the lattice search
    found = video_mark.decode_unmoved(lumas) if lumas else None
    return found.payload if found is not None else None


#: Re-encodes with a lower ceiling when the encoder overshot it (libvpx's
#: one-pass constrained quality ran 2x over its cap on a short, dense clip).
_RATE_RETRIES = 2


def _reencode(
    data: bytes,
    media_type: str,
    info: VideoInfo,
    work_fmt: str,
    label: FrameLabel | None,
    marker: video_mark.FrameMarker | None,
    spans: list[tuple[float, float]],
    limits: Limits,
    notes: list[str],
    *,
    marked: bool,
) -> bytes:
    """The re-encoded file, its streams under ``limits.max_video_bitrate``.

    ``marked``: the frames carry a watermark (embedded now or kept), which
    caps the CRF (see _MARK_CRF_MAX).

    The encoder gets a rate ceiling (:func:`quality_options`); the rate
    actually written is measured, and an encode over the budget is redone
    with the ceiling lowered by the overshoot, so that the service can
    verify its own output under the limits it labelled it with.
    """
    muxer = CONTAINERS[media_type][1]
    encoder = _encoder_for(info, muxer, notes)
    out_fmt = _encoder_format(encoder, work_fmt, notes)
    budget = rate_ceiling(limits)  # the whole file's share: no copied stream subtracted
    ceiling = rate_ceiling(limits, info.other_bitrate)
    written_rate = info.other_bitrate  # what the copied streams alone take, until measured
    for attempt in range(_RATE_RETRIES + 1):
        if ceiling <= 0:
            break
        out, written = _encode_once(
            data, media_type, info, encoder, out_fmt, work_fmt, label, marker, spans, limits,
            notes if attempt == 0 else [], ceiling, marked,
        )  # fmt: skip
        written_rate = written.rate
        if written_rate <= budget:
            if attempt:
                notes.append(
                    f"re-encoded at a lower rate ({written_rate} bit/s) to stay under the "
                    f"limit of {limits.max_video_bitrate} bit/s"
                )
            return out
        # aim the video stream at what the budget leaves, less the overshoot seen
        room = budget - written.others_rate
        ceiling = int(ceiling * room / max(1, written.video_rate) * RATE_HEADROOM)
    raise limits.exceeded(
        "max_video_bitrate",
        written_rate if written_rate > limits.max_video_bitrate else None,
        f"the re-encoded video runs at {written_rate} bit/s and cannot be kept under "
        f"{RATE_HEADROOM:.0%} of the limit of {limits.max_video_bitrate} bit/s",
    )


@dataclass(frozen=True)
class _Written:
    """What one encode wrote: bytes of the video stream and of the copied streams."""

    video_bytes: int
    other_bytes: int
    seconds: float

    @property
    def video_rate(self) -> int:
        return round(8 * self.video_bytes / self.seconds) if self.seconds > 0 else 0

    @property
    def others_rate(self) -> int:
        return round(8 * self.other_bytes / self.seconds) if self.seconds > 0 else 0

    @property
    def rate(self) -> int:
        """The whole file's stream rate: what a reader counting every stream sees."""
        return self.video_rate + self.others_rate


def _encode_once(
    data, media_type, info, encoder, out_fmt, work_fmt, label, marker, spans, limits, notes,
    ceiling, marked,
) -> tuple[bytes, _Written]:  # fmt: skip
    muxer = CONTAINERS[media_type][1]
    fd, path = tempfile.mkstemp(suffix="." + muxer)
    os.close(fd)
    try:
        with _open(data, media_type) as source:
            vin = _video_stream(source, media_type)
            vin.thread_type = "AUTO"
            options = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
            with av.open(path, mode="w", format=muxer, options=options) as sink:
                vout = _video_output(sink, vin, encoder, out_fmt, info, marked, ceiling)
                copies = {}
                for stream in source.streams:
                    if stream is vin or stream.type not in ("audio", "subtitle"):
                        if stream is not vin:
                            notes.append(
                                f"a {stream.type} stream "
                                f"({stream.codec_context.name}) is not copied"
                            )
                        continue
                    try:
                        copies[stream.index] = sink.add_stream_from_template(stream)
                    except (av.FFmpegError, ValueError) as exc:
                        notes.append(
                            f"the {stream.type} stream {stream.index} is not copied: {exc}"
                        )
                written = _transcode(
                    source,
                    vin,
                    sink,
                    vout,
                    copies,
                    info,
                    work_fmt,
                    out_fmt,
                    label,
                    marker,
                    spans,
                    limits,
                )
        with open(path, "rb") as f:
            return f.read(), written
    finally:
        os.unlink(path)


def _video_output(
    sink, vin, encoder: str, out_fmt: str, info: VideoInfo, marked: bool, ceiling: int | None
):
    rate = info.fps if info.fps else Fraction(25)
    options = quality_options(encoder, info, marked=marked, ceiling=ceiling)
    vout = sink.add_stream(encoder, rate=rate, options=options)
    ctx = vout.codec_context
    ctx.width, ctx.height = info.width, info.height
    ctx.pix_fmt = out_fmt
    ctx.time_base = vin.time_base
    vout.time_base = vin.time_base
    ctx.sample_aspect_ratio = info.sample_aspect
    ctx.color_range = info.color_range
    ctx.colorspace = info.colorspace
    ctx.color_primaries = info.color_primaries
    ctx.color_trc = info.color_trc
    ctx.thread_type = "AUTO"
    if info.rotation:
        vout.set_display_rotation(info.rotation)
    for key in ("language", "handler_name"):
        if key in vin.metadata:
            vout.metadata[key] = vin.metadata[key]
    return vout


def _transcode(
    source, vin, sink, vout, copies, info, work_fmt, out_fmt, label, marker, spans, limits
):
    first_pts = None
    last_pts = None
    count = 0
    video_bytes = other_bytes = 0
    time_base = vin.time_base
    depth = PLANAR_FORMATS[work_fmt]

    def paint(work, pts: int, labelled: bool):
        """Label and mark one frame (on the painter thread: numpy and Pillow
        release the GIL, so this overlaps the next frame's decode)."""
        if labelled:
            label.draw(work)
        if marker is not None:
            marker.mark(plane_array(work.planes[0], work.height, work.width, depth))
        if out_fmt != work_fmt:
            work = work.reformat(format=out_fmt)
        work.pts = pts
        work.time_base = time_base
        return work

    def encode(work) -> None:
        nonlocal video_bytes
        for out_packet in vout.encode(work):
            video_bytes += out_packet.size
            sink.mux(out_packet)

    # one frame in flight: frames are painted in order (the label's plate
    # opacity carries from frame to frame) and encoded in order
    painter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-paint")
    pending = None
    try:
        for packet in source.demux():
            if packet.stream.index in copies:
                if packet.dts is None:
                    continue
                packet.stream = copies[packet.stream.index]
                other_bytes += packet.size
                sink.mux(packet)
                continue
            if packet.stream is not vin:
                continue
            for frame in packet.decode():
                count += 1
                if count > limits.max_video_frames:
                    raise limits.exceeded(
                        "max_video_frames",
                        count,
                        f"the video has more than {limits.max_video_frames} frames",
                    )
                pts = (
                    frame.pts
                    if frame.pts is not None
                    else (last_pts + 1 if last_pts is not None else 0)
                )
                if last_pts is not None and pts <= last_pts:
                    pts = last_pts + 1
                if first_pts is None:
                    first_pts = pts
                t = (
                    float((pts - first_pts) * time_base)
                    if time_base
                    else count / float(info.fps or 25)
                )
                if t > limits.max_video_seconds:
                    raise limits.exceeded(
                        "max_video_seconds",
                        t,
                        f"the video runs longer than {limits.max_video_seconds} s",
                    )
                last_pts = pts
                work = _as_work(frame, work_fmt, info)
                labelled = label is not None and _in_spans(t, spans)
                painted = painter.submit(paint, work, pts, labelled)
                if pending is not None:
                    encode(pending.result())
                pending = painted
        if pending is not None:
            encode(pending.result())
            pending = None
        encode(None)
    except av.FFmpegError as exc:
        raise CorruptInput(f"the video cannot be decoded or written: {_reason(exc)}") from None
    finally:
        if pending is not None:
            pending.cancel()
        painter.shutdown(wait=True)
    if count == 0:
        raise CorruptInput("the video stream holds no decodable frame")
    # the span the frames cover, one frame's duration included (as a muxer counts it)
    frame_s = 1.0 / float(info.fps) if info.fps else 1.0 / 25
    span = float((last_pts - first_pts) * time_base) if time_base else (count - 1) * frame_s
    return _Written(video_bytes, other_bytes, span + frame_s)


def _as_work(frame, work_fmt: str, info: VideoInfo):
    """The decoded frame as a writable frame of the working format and the stream's size."""
    if frame.format.name != work_fmt or frame.width != info.width or frame.height != info.height:
        return frame.reformat(width=info.width, height=info.height, format=work_fmt)
    frame.make_writable()
    return frame
