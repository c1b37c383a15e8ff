"""The content stage of videos: the caption burned into the opening frames and the mark.

Both go into one re-encode of the video stream (labelers.video.apply_video);
the container's handler then carries the original's metadata (every tag,
chapter and the record's carrier) onto the new file, before the pipeline
writes the record and signs C2PA. With neither a caption nor a mark nothing
is decoded and every stream stays bit-exact. The video limits are checked
from the container's headers before anything is decoded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from labelers.errors import InvalidOption, UnsupportedMedia
from labelers.formats import Kind
from labelers.kinds import KINDS
from labelers.limits import check_video

if TYPE_CHECKING:
    from labelers.formats import FormatHandler
    from labelers.limits import Limits
    from labelers.pipeline import FileOptions, FileResult

#: how long the caption shows: the first 3 s, the first N s, all of it, the first and last 3 s
SPANS = ("start", "start:N", "whole", "start+end")
#: GB 45438 clause 5: a video's label shows for at least this long
MIN_SECONDS = 2.0


def check_span(span: str) -> None:
    """InvalidOption unless ``span`` is one of :data:`SPANS` (``start:N`` with N >= 2)."""
    if span in ("start", "whole", "start+end"):
        return
    head, _, seconds = span.partition(":")
    try:
        value = float(seconds) if head == "start" else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise InvalidOption(
            "span must be start (the first 3 s), start:N (the first N seconds), whole or "
            f"start+end, not {span!r}"
        )
    if value < MIN_SECONDS:
        raise InvalidOption(
            f"span {span!r}: GB 45438 asks a video's label to show for at least 2 s"
        )


def apply(
    result: FileResult,
    handler: FormatHandler,
    options: FileOptions,
    watermark_key: int | None,
    limits: Limits,
) -> None:
    position = KINDS[Kind.VIDEO].position(options.position)
    check_span(options.span)
    want_mark = options.watermark and watermark_key is not None
    result.watermark = "off" if not options.watermark else "off: no watermark key given"
    if not options.explicit and not want_mark:
        return
    info = handler.read(result.data, limits).video
    if info is None:
        raise UnsupportedMedia(f"the {result.media_type} file has no video track")
    check_video(
        limits,
        seconds=info.seconds,
        width=info.width,
        height=info.height,
        frames=info.frames,
        bitrate=info.bitrate,
    )
    from labelers.video import apply_video

    original = result.data
    outcome = apply_video(
        original,
        result.media_type,
        wording=options.wording if options.explicit else "",
        position=position,
        span=options.span,
        watermark_key=watermark_key if want_mark else None,
        limits=limits,
    )
    if outcome.data is not original:
        result.data = handler.carry_metadata(original, outcome.data, limits)
    result.explicit = outcome.explicit
    if want_mark:
        result.watermark = outcome.watermark
        if outcome.watermark == "embedded":
            result.watermark_key = watermark_key
    result.notes.extend(outcome.notes)
