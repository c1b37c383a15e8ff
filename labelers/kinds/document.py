"""The content stage of documents (PDF, Office, Markdown, HTML): the visible label
through the handler's ``draw_label``, then the text watermark where the handler
embeds one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labelers.errors import InvalidOption, UnsupportedMedia
from labelers.formats import Capability, Kind
from labelers.kinds import KINDS

if TYPE_CHECKING:
    from labelers.formats import FormatHandler
    from labelers.limits import Limits
    from labelers.pipeline import FileOptions, FileResult

PAGE_SELECTIONS = ("all", "first")


def apply(
    result: FileResult,
    handler: FormatHandler,
    options: FileOptions,
    watermark_key: int | None,
    limits: Limits,
) -> None:
    if options.explicit:
        placement = placement_for(handler, result.media_type, options)
        result.data = handler.draw_label(  # type: ignore[attr-defined]
            result.data, result.media_type, options.wording, placement, options.pages, limits
        )
        result.explicit = explicit_note(handler, result.media_type, placement, options)
    if options.watermark and Capability.WATERMARK in handler.capabilities:
        result.data = handler.embed_watermark(result.data, result.record, limits)  # type: ignore[attr-defined]
        result.watermark = "embedded"


def placement_for(handler: FormatHandler, media_type: str, options: FileOptions) -> str:
    """Where the label goes; InvalidOption for a position documents do not take,
    UnsupportedMedia when the handler cannot draw one."""
    if Capability.VISIBLE not in handler.capabilities:
        raise UnsupportedMedia(
            f"visible labels cannot be drawn into {media_type} files yet; label them with "
            "the explicit label omitted (which needs the omit permission)"
        )
    placement = KINDS[Kind.DOCUMENT].position(options.position)
    if options.pages not in PAGE_SELECTIONS:
        raise InvalidOption(f"pages must be all or first, not {options.pages!r}")
    return placement


def explicit_note(
    handler: FormatHandler, media_type: str, placement: str, options: FileOptions
) -> str:
    """What FileResult.explicit says: the placement, and "(first page)" when only
    the first of a paged document's pages (or slides) got it."""
    if media_type not in handler.paged_types or options.pages == "all":
        return placement
    return f"{placement} (first page)"
