"""One labelling run, composed in a fixed order.

visible label -> watermark -> metadata record -> C2PA signature last (the C2PA
hard binding covers every byte written before it; any rewrite after it breaks
it). The pipeline takes a record already minted by the caller; it never talks
to a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labelers import kinds
from labelers.errors import InvalidOption
from labelers.formats import Capability, get_handler, sniff_handler
from labelers.formats.parse_once import shares_walks
from labelers.kinds import DOCUMENT_POSITIONS, IMAGE_POSITIONS  # noqa: F401 (their old home)
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record
from labelers.visible import text as visible_text
from labelers.visible.wording import DEFAULT_WORDING
from labelers.watermark import text as text_watermark

# The stages that need numpy/scipy, pypdf, fpdf2, c2pa, YAML or the OOXML
# parsers import them where they run: a one-shot CLI call that only writes a
# record must not pay seconds of imports for the stages it skips.
if TYPE_CHECKING:
    from labelers.formats import FormatHandler
    from labelers.integrity import RecordSigner
    from labelers.provenance import C2paSigner

EXPLICIT_TEXT_PLACES = ("start", "end", "both", "none")


def label_text(
    text: str,
    record: Record,
    explicit: str = "start",
    wording: str = DEFAULT_WORDING,
    watermark: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Explicit label (unless ``none``), then the invisible payload carrying the ProduceID."""
    limits.check("max_text_chars", len(text), "the text")
    if explicit not in EXPLICIT_TEXT_PLACES:
        raise InvalidOption(f"explicit must be one of {', '.join(EXPLICIT_TEXT_PLACES)}")
    out = visible_text.add_explicit(text, wording, explicit)
    if watermark:
        out = text_watermark.embed(out, record.produce_id)
    return out


# --------------------------------------------------------------------- files
#: the positions each kind of file takes (plain text has none: its label starts the text)
POSITIONS = kinds.positions()


def position_kind(media_type: str) -> str | None:
    """Which of :data:`POSITIONS` a file of ``media_type`` takes (None: no position)."""
    kind = str(get_handler(media_type).kind)
    return kind if kind in POSITIONS else None


def parse_positions(spec: str) -> dict[str, str]:
    """``top-left`` or ``image=top-left,document=header``: the position per kind.

    For a run over a mixed tree. A bare value goes to every kind it fits
    (``top-left`` to images, ``header`` to documents); the other kinds keep
    their default. Raises InvalidOption for a value that fits no kind, or a
    ``kind=value`` whose value that kind does not take.
    """
    positions: dict[str, str] = {}
    for raw in spec.split(","):
        part = raw.strip()
        kind, sep, value = part.partition("=")
        if sep:
            kind, value = kind.strip(), value.strip()
            if kind not in POSITIONS:
                raise InvalidOption(
                    f"position kind {kind!r} is unknown; write "
                    + " and/or ".join(f"{k}=..." for k in POSITIONS)
                )
            if value not in POSITIONS[kind]:
                raise InvalidOption(
                    f"position {value!r} does not apply to {kind}s; use one of "
                    + ", ".join(POSITIONS[kind])
                )
            positions[kind] = value
            continue
        fits = [k for k, values in POSITIONS.items() if part in values]
        if not fits:
            raise InvalidOption(
                f"position {part!r} applies to no kind of file: "
                + "; ".join(f"{k}s take {', '.join(v)}" for k, v in POSITIONS.items())
                + " (per kind: image=top-left,video=top,document=header)"
            )
        positions.update(dict.fromkeys(fits, part))
    return positions


#: the ``explicit`` values a caller may send for files: ``on`` is each kind's default
#: label (the rhythm for audio), ``rhythm``/``speech`` choose the audible one
EXPLICIT_CHOICES = ("on", *kinds.AUDIBLE_LABELS, "none")


def explicit_choice(value: str) -> dict[str, bool | str]:
    """``FileOptions`` fields for an ``explicit`` value of :data:`EXPLICIT_CHOICES`."""
    if value not in EXPLICIT_CHOICES:
        raise InvalidOption(f"explicit must be one of {', '.join(EXPLICIT_CHOICES)}")
    audible = value if value in kinds.AUDIBLE_LABELS else kinds.AUDIBLE_LABELS[0]
    return {"explicit": value != "none", "audible": audible}


@dataclass(frozen=True)
class FileOptions:
    """What a caller may choose for one file; validated per media type."""

    explicit: bool = True  # False only with the omit permission (checked by the caller)
    position: str | None = None  # image corner/edge, or footer/header for documents
    pages: str = "all"  # PDF pages / PPTX slides that get the visible label: all | first
    span: str = "start"  # video: how long the label shows (labelers.kinds.video.SPANS)
    wording: str = DEFAULT_WORDING
    watermark: bool = True
    c2pa: bool = True
    audible: str = "rhythm"  # audio: the rhythm or the spoken wording (kinds.AUDIBLE_LABELS)


@dataclass
class FileResult:
    data: bytes
    media_type: str
    record: Record
    explicit: str  # where the visible label went, or "none"
    watermark: str  # "embedded", "off", or why it was skipped
    c2pa: str  # "signed", "off", or why not
    notes: list[str] = field(default_factory=list)
    # the 64-bit key the output's image watermark carries: the one given, or
    # the one already in the image (relabelling keeps a single mark)
    watermark_key: int | None = None


@dataclass(frozen=True)
class LabelContext:
    """What a labelling service holds for every file it labels."""

    #: signs the C2PA manifest; None: no manifest is embedded
    signer: C2paSigner | None = None
    #: signs the record's ReservedCode1 over its fields and the content digest
    #: (labelers.integrity); None: the record is written unsigned
    record_signer: RecordSigner | None = None
    #: the name manifests give the software that labelled the file
    software_agent: str = "aigc-label"
    limits: Limits = DEFAULT_LIMITS


@shares_walks
def label_file(
    data: bytes,
    record: Record,
    options: FileOptions,
    context: LabelContext = LabelContext(),
    watermark_payload: int | None = None,
) -> FileResult:
    """Label one file: visible -> watermark -> record -> C2PA, in that order.

    ``watermark_payload`` is the 64-bit key an image watermark carries (the
    ledger derives it from the ProduceID). The returned ``record`` is the one
    written (signed when ``context`` has a record signer). The output is built
    in memory; nothing partial is ever returned.
    """
    signer, record_signer, limits = context.signer, context.record_signer, context.limits
    check_size(data, limits)
    record.validate()
    handler, media_type = sniff_handler(data)
    stage = kinds.spec_for(handler.kind)
    # no upfront handler.read(): every stage below parses with the limits before
    # its expensive work, and a PDF read would extract the text of every page
    # the content stage overwrites this when it embeds (or skips) a mark
    watermark = f"not available for {media_type}" if options.watermark else "off"
    result = FileResult(data, media_type, record, "none", watermark, "off")
    if Capability.ONE_PASS in handler.capabilities:
        _label_in_one_pass(result, handler, options, limits, record_signer)
    else:
        stage.content_stage()(result, handler, options, watermark_payload, limits)
        if Capability.RECORD in handler.capabilities:
            one_parse = getattr(handler, "write_signed_record", None)  # SignedRecordWriter
            if record_signer is not None and one_parse is not None:
                signer_ = record_signer
                result.record, result.data = one_parse(
                    result.data, lambda digest: signer_.sign_producer(record, digest), limits
                )
            else:
                if record_signer is not None:
                    result.record = record_signer.sign_producer(
                        record, handler.content_digest(result.data, limits)
                    )
                result.data = handler.write_record(result.data, result.record, limits)
    if not options.c2pa:
        pass
    elif Capability.C2PA not in handler.capabilities:
        result.c2pa = f"not available for {media_type}"
    elif signer is None:  # said before can_sign_c2pa() imports c2pa
        result.c2pa = "no signer configured"
    elif not can_sign_c2pa(handler, media_type):
        result.c2pa = f"not available for {media_type}"
    else:
        result.data = signer.sign(
            result.data, media_type, result.record, context.software_agent, limits=limits
        )
        result.c2pa = "signed"
    return result


def apply_content(
    result: FileResult, options: FileOptions, payload: int | None, limits: Limits
) -> None:
    """The content stage of the file's kind: visible label and watermark, before any metadata."""
    handler = get_handler(result.media_type)
    kinds.spec_for(handler.kind).content_stage()(result, handler, options, payload, limits)


def can_sign_c2pa(handler: FormatHandler, media_type: str) -> bool:
    """Whether we embed a C2PA manifest in this file: the handler offers it and
    the c2pa build we ship writes the type."""
    if Capability.C2PA not in handler.capabilities:
        return False
    from labelers.provenance import supported_media_types

    return media_type in supported_media_types()


def check_size(data: bytes, limits: Limits) -> None:
    limits.check("max_bytes", len(data), "the file")


def _label_in_one_pass(
    result: FileResult,
    handler: FormatHandler,
    options: FileOptions,
    limits: Limits,
    record_signer: RecordSigner | None,
) -> None:
    """Visible label, content digest and record in one parse of the file.

    The same steps as the content stage, content_digest and write_record, but
    the document is opened once and saved once (for PDF in append mode when
    it can be, labelers.formats.pdf_update.PdfEdit): parsing and writing are most of
    what each of those steps costs on its own.
    """
    from labelers.kinds import document

    placement = ""
    if options.explicit:
        placement = document.placement_for(handler, result.media_type, options)
        handler.check_label_options(options.wording, placement, options.pages)  # type: ignore[attr-defined]
    doc = handler.open_edit(result.data, limits)  # type: ignore[attr-defined]
    if options.explicit:
        handler.stamp(doc, options.wording, placement, options.pages)  # type: ignore[attr-defined]
        result.explicit = document.explicit_note(handler, result.media_type, placement, options)
    if record_signer is not None:
        result.record = record_signer.sign_producer(result.record, doc.content_digest())
    doc.set_record(result.record)
    result.data = doc.save()
