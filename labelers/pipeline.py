"""One labelling run, composed in a fixed order.

visible label -> watermark -> metadata record -> C2PA signature last (the C2PA
hard binding covers every byte written before it; any rewrite after it breaks
it). The pipeline takes a record already minted by the caller; it never talks
to a database.
"""

from __future__ import annotations

from labelers.errors import InvalidOption, LimitExceeded
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record
from labelers.visible import text as visible_text
from labelers.watermark import text as text_watermark

EXPLICIT_TEXT_PLACES = ("start", "end", "both", "none")


def label_text(
    text: str,
    record: Record,
    explicit: str = "start",
    wording: str = "人工智能生成",
    watermark: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Explicit label (unless ``none``), then the invisible payload carrying the ProduceID."""
    if len(text) > limits.max_text_chars:
        raise LimitExceeded(
            f"text of {len(text)} characters exceeds {limits.max_text_chars} "
            "(limit set by AIGC_MAX_TEXT_CHARS)"
        )
    if explicit not in EXPLICIT_TEXT_PLACES:
        raise InvalidOption(f"explicit must be one of {', '.join(EXPLICIT_TEXT_PLACES)}")
    out = visible_text.add_explicit(text, wording, explicit)
    if watermark:
        out = text_watermark.embed(out, record.produce_id)
    return out
