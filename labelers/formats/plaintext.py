"""Plain UTF-8 text: the container with no place for a record.

Its record lives in the ledger; the text carries the explicit label and the
invisible watermark (labelers.watermark.text) that leads back to it. This
handler is the last one sniff() asks: it takes whatever valid UTF-8 the
image, document and markup handlers left.
"""

from __future__ import annotations

from labelers.errors import UnsupportedMedia
from labelers.formats import (
    Capability,
    Kind,
    Metadata,
    decode_plain_text,
    text_content_digest,
    text_head,
)
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "text/plain"


class PlainTextHandler:
    name = "plain text"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.TEXT
    # no RECORD: there is no metadata carrier; the watermark carries the ProduceID
    capabilities = frozenset(
        {Capability.VISIBLE, Capability.WATERMARK, Capability.DIGEST, Capability.TEXT_BODY}
    )
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if text_head(data) is not None else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        _check_size(data, limits)
        return Metadata(media_type=MEDIA_TYPE, text_pages=[decode_plain_text(data)])

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        raise UnsupportedMedia(
            "plain text has no metadata carrier for a record; label it as text "
            "(the label and the mark go into the words), or send Markdown or HTML"
        )

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the text a reader sees (see labelers.formats.text_content_digest)."""
        _check_size(data, limits)
        return text_content_digest(decode_plain_text(data), limits)


def _check_size(data: bytes, limits: Limits) -> None:
    limits.check("max_bytes", len(data), "the file")


HANDLER = PlainTextHandler()
