"""The content stage of audio: the audible label and the audio watermark, in one
re-encode (labelers.sound), then the original's tags carried onto the new file by
the container's handler (``carry_metadata``).

The audio limits are checked from the headers before any decode (by the
container handlers when they parse, by labelers.sound before it decodes).
With no audible label and no watermark nothing is decoded: every coded frame
stays bit-exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labelers.errors import InvalidOption
from labelers.formats import Kind
from labelers.kinds import AUDIBLE_LABELS, KINDS

if TYPE_CHECKING:
    from labelers.formats import FormatHandler
    from labelers.limits import Limits
    from labelers.pipeline import FileOptions, FileResult


def apply(
    result: FileResult,
    handler: FormatHandler,
    options: FileOptions,
    watermark_key: int | None,
    limits: Limits,
) -> None:
    place = KINDS[Kind.AUDIO].position(options.position)
    if options.explicit and options.audible not in AUDIBLE_LABELS:
        raise InvalidOption(
            f"the audible label {options.audible!r} is unknown; use one of "
            + ", ".join(AUDIBLE_LABELS)
        )
    audible = options.audible if options.explicit else "none"
    key = watermark_key if options.watermark else None
    result.watermark = "off" if not options.watermark else "off: no watermark key given"
    if audible == "none" and key is None:
        return
    from labelers import sound

    outcome = sound.apply_audio(
        result.data,
        result.media_type,
        audible=audible,
        place=place,
        wording=options.wording,
        watermark_key=key,
        limits=limits,
    )
    if outcome.data is not result.data:
        result.data = handler.carry_metadata(result.data, outcome.data, limits)  # type: ignore[attr-defined]
    where = f"{place}, {outcome.audible_detail}" if outcome.audible_detail else place
    result.explicit = "none" if outcome.audible == "none" else f"{outcome.audible} ({where})"
    if key is not None:
        result.watermark = outcome.watermark
        if outcome.watermark == "embedded":
            result.watermark_key = key
    result.notes.extend(outcome.notes)
