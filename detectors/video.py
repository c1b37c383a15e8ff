"""Finding the visible label and the watermark in a video, on a few sampled frames.

Owns what verification reads from a video's pixels: how long the opening
frames show a visible AI label (GB 45438: at least 2 s, text at least 5% of
the shortest side, at an edge or corner) and the watermark's ledger key.
Records in the container are the container modules' business.

Bounded work, whatever the video's length:

- the label: the opening :data:`LABEL_WINDOW` seconds are decoded (at most
  :data:`MAX_DECODED` frames, whatever the timestamps say); one frame near
  the start goes to the OCR finder of :mod:`detectors.ocr` (edges and
  corners, as displayed: pixel aspect and rotation applied), and the label
  it read is then followed through frames sampled every
  :data:`SAMPLE_STEP` s by comparing the pixels in its box with those of the
  frame it was read on (the glyphs stay where they were, brighter than the
  plate: no second OCR per frame);
- the watermark: a few frames from the opening window plus the keyframes
  (and the frames right after them) at :data:`SEEKS` points spread over the
  whole clip, reached by seeking, so a 1-hour video costs what a 1-minute
  one does; their whitened lumas are averaged and decoded as one, then the
  keyframes' alone, then the first frame alone (at most 3 decodes, each
  frame whitened once; :mod:`labelers.watermark.video`, whose false-alarm
  bound covers its :data:`~labelers.watermark.video.WINDOWS` = 4 decodes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from detectors import ocr
from labelers.errors import CorruptInput
from labelers.imaging import ORIENTATION_TRANSPOSE
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.video import _header_info, _open, _reason, _video_stream, check_limits
from labelers.visible.video import PLANAR_FORMATS, orientation_for, plane_array
from labelers.watermark import video as video_mark

#: Seconds from the start searched for the visible label (the rule asks 2 s).
LABEL_WINDOW = 3.5
#: Interval (s) between the frames the label is followed through.
SAMPLE_STEP = 0.25
#: Frames decoded at most from the opening window.
MAX_DECODED = 240
#: Points over the clip where keyframes are sampled for the watermark.
SEEKS = 3
#: Frames taken at each point (the keyframe and the ones right after it).
FRAMES_PER_SEEK = 4
# the label counts as still shown when its box correlates this well with
# the frame it was read on, and its glyphs keep this share of their contrast
_MIN_CORRELATION = 0.6
_MIN_CONTRAST = 0.6


@dataclass
class VideoEvidence:
    """What the sampled frames show.

    ``label_seconds``: how long the visible label read near the start stays
    on screen without a break (0 when none was read), measured over the
    opening :data:`LABEL_WINDOW` s: a value equal to the window means "at
    least that long". ``label_boxes``: the labels read
    (:class:`detectors.ocr.VisibleMark`, boxes in displayed pixels).
    ``watermark_key``: the decoded 64-bit ledger key, or None.
    """

    label_seconds: float = 0.0
    label_boxes: list = field(default_factory=list)
    watermark_key: int | None = None
    notes: list[str] = field(default_factory=list)
    watermark_score: float | None = None


@dataclass
class _Sample:
    t: float  # seconds from the first frame
    luma: Image.Image  # "L", stored orientation and size


def _luma(frame) -> Image.Image:
    fmt = frame.format.name
    if fmt not in PLANAR_FORMATS:
        frame = frame.reformat(format="gray")
        fmt = "gray"
    depth = PLANAR_FORMATS[fmt]
    y = plane_array(frame.planes[0], frame.height, frame.width, depth)
    if depth > 8:
        y = (y >> (depth - 8)).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(y), "L")


def _displayed(luma: Image.Image, sar: Fraction, orientation: int) -> Image.Image:
    if sar != 1:
        luma = luma.resize(
            (max(1, round(luma.width * sar)), luma.height), Image.Resampling.BILINEAR
        )
    transpose = ORIENTATION_TRANSPOSE.get(orientation)
    return luma.transpose(transpose) if transpose is not None else luma


def inspect_video(
    data: bytes, media_type: str, limits: Limits = DEFAULT_LIMITS, *, read_label: bool = True
) -> VideoEvidence:
    """Read the visible label's duration and the watermark from sampled frames.

    ``read_label`` False skips the OCR (callers that only want the mark).

    Raises CorruptInput for a file whose video cannot be read,
    LimitExceeded when its headers declare more than ``limits``.
    """
    evidence = VideoEvidence()
    with _open(data, media_type) as container:
        stream = _video_stream(container, media_type)
        head = _header_info(container, stream, len(data))
        check_limits(head, limits)
        stream.thread_type = "AUTO"
        opening, rotation = _opening(container, stream, evidence)
        keyframes = _keyframes(container, stream, head["duration"], evidence)
    orientation = orientation_for(rotation)
    if read_label:
        _label(opening, head["sample_aspect"], orientation, evidence)
    _watermark([s.luma for s in opening], keyframes, evidence)
    return evidence


def _opening(container, stream, evidence: VideoEvidence) -> tuple[list[_Sample], int]:
    """Frames every SAMPLE_STEP s of the opening window, and the display rotation."""
    samples: list[_Sample] = []
    rotation = 0
    first = None
    decoded = 0
    next_t = 0.0
    try:
        for frame in container.decode(stream):
            decoded += 1
            t_abs = frame.time if frame.time is not None else decoded / 25.0
            if first is None:
                first = t_abs
                rotation = round(frame.rotation or 0)
            t = t_abs - first
            if t >= next_t - 1e-6:
                samples.append(_Sample(t, _luma(frame)))
                next_t = t + SAMPLE_STEP
            if t >= LABEL_WINDOW or decoded >= MAX_DECODED:
                break
    except av.FFmpegError as exc:
        if not samples:
            raise CorruptInput(f"the video stream cannot be decoded: {_reason(exc)}") from None
        evidence.notes.append(f"decoding stopped at {samples[-1].t:.2f} s: {_reason(exc)}")
    if not samples:
        raise CorruptInput("the video stream holds no decodable frame")
    return samples, rotation


def _keyframes(container, stream, duration: float, evidence: VideoEvidence) -> list[Image.Image]:
    """A few frames at each of SEEKS points spread over the clip (after the opening)."""
    if duration <= LABEL_WINDOW + 1.0 or not stream.time_base:
        return []
    frames: list[Image.Image] = []
    seen: set[int] = set()
    for k in range(SEEKS):
        target = duration * (k + 1) / (SEEKS + 1)
        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            for taken, frame in enumerate(container.decode(stream), 1):
                if frame.pts is None or frame.pts in seen:
                    break
                seen.add(frame.pts)
                frames.append(_luma(frame))
                if taken >= FRAMES_PER_SEEK:
                    break
        except av.FFmpegError as exc:
            evidence.notes.append(f"a seek to {target:.1f} s failed: {_reason(exc)}")
    return frames


def _label(
    samples: list[_Sample], sar: Fraction, orientation: int, evidence: VideoEvidence
) -> None:
    if not ocr.ocr_available():
        evidence.notes.append(
            "OCR is not available (tesseract with chi_sim): visible label not read"
        )
        return
    # the first frame, and one a second in (a fade or a title may cover the first)
    later = next((s for s in samples if s.t >= 1.0 - 1e-6), None)
    reference = None
    tries = [samples[0]] + ([later] if later is not None and later is not samples[0] else [])
    for sample in tries:
        shown = _displayed(sample.luma, sar, orientation)
        result = ocr.find_visible_label(shown)
        if result is not None and result.timed_out:
            evidence.notes.append("OCR was cut short: the visible label is not established")
            return
        if result is not None and result.found:
            reference = (sample, shown, [m for m in result.marks if m.kind == "label"])
            break
    if reference is None:
        return
    ref_sample, ref_shown, marks = reference
    evidence.label_boxes = marks
    box = marks[0].box
    start = end = ref_sample.t
    ref_region = _region(ref_shown, box)

    def shows_label(sample: _Sample) -> bool:
        return _same_label(ref_region, _region(_displayed(sample.luma, sar, orientation), box))

    # OCR may first read the label a second in: follow its box back to where it starts
    for sample in reversed([s for s in samples if s.t < ref_sample.t]):
        if not shows_label(sample):
            break
        start = sample.t
    for sample in samples:
        if sample.t <= ref_sample.t:
            continue
        if not shows_label(sample):
            break
        end = sample.t
    # the last frame seen with the label stands for the interval up to the next sample
    window_end = samples[-1].t
    end = window_end if end >= window_end else end + SAMPLE_STEP
    evidence.label_seconds = round(max(0.0, end - start), 3)
    if start > 0.5:
        evidence.notes.append(f"the visible label first shows at {start:.2f} s, not at the start")


def _region(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, width, height = box
    return np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.float32)


def _same_label(reference: np.ndarray, region: np.ndarray) -> bool:
    """Whether ``region`` still shows the glyphs of ``reference`` (the same box).

    The glyphs are the reference's brightest pixels, the plate its darkest:
    the label is there when the two sets keep most of their contrast and the
    pixels correlate with the reference's (a moving background under a
    semi-opaque plate changes the plate a little, not the glyphs).
    """
    if reference.size < 16 or reference.shape != region.shape:
        return False
    ink = reference >= np.percentile(reference, 85)
    ground = reference <= np.percentile(reference, 40)
    ref_contrast = float(reference[ink].mean() - reference[ground].mean())
    if ref_contrast <= 8:
        return False
    contrast = float(region[ink].mean() - region[ground].mean())
    a, b = reference - reference.mean(), region - region.mean()
    corr = float((a * b).sum() / max(1e-6, np.sqrt((a * a).sum() * (b * b).sum())))
    return contrast >= _MIN_CONTRAST * ref_contrast and corr >= _MIN_CORRELATION


def _watermark(
    opening: list[Image.Image], keyframes: list[Image.Image], evidence: VideoEvidence
) -> None:
    frames = opening + keyframes
    if not frames:
        return
    width, height = frames[0].size
    reason = video_mark.check_size(width, height)
    if reason is not None and min(width, height) < 2 * 32:
        evidence.notes.append(f"watermark not searched: {reason}")
        return
    # the average of the opening every 0.5 s and the keyframes, then the
    # keyframes alone (coded best), then the first frame alone: a decode
    # starts on a keyframe, and on a pan a re-encoder's P-frames drag the
    # still mark along with the content, so averaging them in blurs what the
    # keyframe holds (a CRF 28 re-encode of a pan: sync 4.3 averaged, 12.5 on
    # the first frame); last, every sampled frame, filtered against heavy
    # per-frame grain (see decode_whitened). Four decodes at most:
    # video_mark.WINDOWS, which the sync threshold covers, counts them.
    # Each frame is whitened once (most of a decode's cost) and reused.
    zs = [video_mark.whiten(f) for f in frames]
    if any(z is None for z in zs):
        return
    n_open = len(opening)
    keyframe_ids = list(range(n_open, len(frames)))
    half_second = list(range(0, n_open, max(1, round(0.5 / SAMPLE_STEP)))) + keyframe_ids
    tried: list[tuple[list[int], bool]] = []
    attempts = (
        (half_second, False),
        (keyframe_ids, False),
        ([0][:n_open], False),
        (list(range(len(frames))), True),
    )
    for group, low_pass in attempts:
        if not group or (group, low_pass) in tried:
            continue
        tried.append((group, low_pass))
        result = video_mark.decode_whitened((zs[i] for i in group), low_pass=low_pass)
        if result is not None:
            evidence.watermark_key = result.payload
            evidence.watermark_score = round(result.score, 2)
            return
