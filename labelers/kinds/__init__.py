"""The content stage of each kind of file, and the options each kind takes.

A labelling run is visible label -> watermark -> record -> C2PA (see
labelers.pipeline). The first two depend on what the content is, not on the
container: every image is drawn on and marked the same way whatever its
format, every document the same way through its handler's ``draw_label``.
So they are looked up here by the handler's :class:`~labelers.formats.Kind`.

A new kind (audio, video) is one module in this package and one line in
:data:`KINDS`. The module exposes::

    def apply(result: FileResult, handler: FormatHandler, options: FileOptions,
              watermark_key: int | None, limits: Limits) -> None

which reads ``result.data`` and sets ``result.data`` (the new bytes),
``result.explicit`` (where the explicit label went, or "none"),
``result.watermark`` (what the watermark step did) and
``result.watermark_key``; the pipeline then writes the record through the
handler and signs C2PA last. A stage raises InvalidOption for an option value
its kind does not take, UnsupportedMedia for a capability the handler lacks.

The values a kind takes for ``position`` are declared here once, so the CLI,
the HTTP API and the batch runner validate them from one table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from labelers.errors import InvalidOption, UnsupportedMedia
from labelers.formats import Kind

if TYPE_CHECKING:
    from labelers.formats import FormatHandler
    from labelers.limits import Limits
    from labelers.pipeline import FileOptions, FileResult


class ContentStage(Protocol):
    def __call__(
        self,
        result: FileResult,
        handler: FormatHandler,
        options: FileOptions,
        watermark_key: int | None,
        limits: Limits,
    ) -> None: ...


@dataclass(frozen=True)
class KindSpec:
    kind: Kind
    #: the module under labelers.kinds holding this kind's ``apply`` content stage
    module: str
    #: where an explicit label may go (``FileOptions.position``); the first is the default.
    #: Empty: the kind takes no position (plain text's label starts the text)
    positions: tuple[str, ...] = ()
    #: what messages call content of this kind
    noun: str = ""

    def content_stage(self) -> ContentStage:
        return importlib.import_module(f"labelers.kinds.{self.module}").apply

    def position(self, given: str | None) -> str:
        """``given`` (None: the default) if this kind takes it; else InvalidOption."""
        position = given or self.positions[0]
        if position not in self.positions:
            raise InvalidOption(
                f"position {position!r} does not apply to {self.noun}; use one of "
                + ", ".join(self.positions)
            )
        return position


IMAGE_POSITIONS = (
    "bottom-right",
    "bottom-left",
    "top-right",
    "top-left",
    "bottom",
    "top",
    "left",
    "right",
)
DOCUMENT_POSITIONS = ("footer", "header")
#: a video's caption goes where an image's does, in the frames as a viewer sees them
VIDEO_POSITIONS = IMAGE_POSITIONS
#: where the audible label plays: mixed into the programme at its start, end or both, or
#: outside it, before or after (the file gets longer: only on request)
AUDIO_POSITIONS = ("start", "end", "both", "before", "after")
#: what the audible label is: the Morse "AI" rhythm (GB 45438 clause 5) or the spoken wording
AUDIBLE_LABELS = ("rhythm", "speech")

#: one line per kind of content
KINDS: dict[Kind, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(Kind.IMAGE, "image", IMAGE_POSITIONS, "images"),
        KindSpec(Kind.DOCUMENT, "document", DOCUMENT_POSITIONS, "documents"),
        KindSpec(Kind.TEXT, "text", noun="text"),
        KindSpec(Kind.VIDEO, "video", VIDEO_POSITIONS, "videos"),
        KindSpec(Kind.AUDIO, "audio", AUDIO_POSITIONS, "audio"),
    )
}


def spec_for(kind: Kind) -> KindSpec:
    """The stages of ``kind``; UnsupportedMedia while nothing labels that kind."""
    spec = KINDS.get(kind)
    if spec is None:
        raise UnsupportedMedia(f"{kind} content cannot be labelled yet")
    return spec


def positions() -> dict[str, tuple[str, ...]]:
    """The positions each kind takes, for the kinds that take one."""
    return {str(spec.kind): spec.positions for spec in KINDS.values() if spec.positions}
