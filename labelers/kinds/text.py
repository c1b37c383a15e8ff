"""The content stage of plain text: the explicit label starts the text, the
invisible watermark carries the ProduceID (the text has no record carrier)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labelers.formats import decode_plain_text

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
    from labelers.pipeline import label_text

    explicit = "start" if options.explicit else "none"
    text = decode_plain_text(result.data)
    labelled = label_text(text, result.record, explicit, options.wording, options.watermark, limits)
    result.data = labelled.encode("utf-8")
    result.explicit = explicit
    result.watermark = "embedded" if options.watermark else "off"
