"""One labelling run, composed in a fixed order.

visible label -> watermark -> metadata record -> C2PA signature last (the C2PA
hard binding covers every byte written before it; any rewrite after it breaks
it). The pipeline takes a record already minted by the caller; it never talks
to a database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labelers.errors import InvalidOption, LimitExceeded, UnsupportedMedia
from labelers.formats import decode_plain_text, get_handler, sniff
from labelers.limits import DEFAULT_LIMITS, Limits, check_video
from labelers.record import Record
from labelers.visible import text as visible_text
from labelers.visible.wording import DEFAULT_WORDING
from labelers.watermark import text as text_watermark

# The stages that need numpy/scipy, pypdf, fpdf2, c2pa, YAML or the OOXML
# parsers import them where they run: a one-shot CLI call that only writes a
# record must not pay seconds of imports for the stages it skips.
if TYPE_CHECKING:
    from labelers.imaging import Raster
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


# --------------------------------------------------------------------- files
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
#: where in the programme the audible label plays
AUDIO_POSITIONS = ("start", "end", "both")
#: what the audible label is: the Morse "AI" rhythm (GB 45438 clause 5) or the spoken wording
AUDIBLE_LABELS = ("rhythm", "speech")
#: a video's caption goes where an image's does, in the frames as a viewer sees them
VIDEO_POSITIONS = IMAGE_POSITIONS
#: the positions each kind of file takes (plain text has none: its label starts the text)
POSITIONS = {
    "image": IMAGE_POSITIONS,
    "document": DOCUMENT_POSITIONS,
    "video": VIDEO_POSITIONS,
    "audio": AUDIO_POSITIONS,
}
#: how long a video's caption shows: the first 3 s, the first N s, all of it, or also the end
VIDEO_SPANS = ("start", "start:N", "whole", "start+end")


def position_kind(media_type: str) -> str | None:
    """Which of :data:`POSITIONS` a file of ``media_type`` takes (None: plain text)."""
    if media_type == "text/plain":
        return None
    if media_type.startswith("image/"):
        return "image"
    kind = media_kind(media_type)
    if kind in ("video", "audio") or media_type.startswith("audio/"):
        return kind or "audio"
    return "document"


def media_kind(media_type: str) -> str | None:
    """The content kind a format handler declares for ``media_type`` (None: it declares none)."""
    try:
        handler = get_handler(media_type)
    except UnsupportedMedia:
        return None
    kind = getattr(handler, "kind", None)
    return kind(media_type) if callable(kind) else None


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
                    f"position kind {kind!r} is unknown; write image=..., video=... and/or "
                    "document=..."
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
                f"position {part!r} applies to no kind of file: images take "
                + ", ".join(IMAGE_POSITIONS)
                + "; documents take "
                + ", ".join(DOCUMENT_POSITIONS)
                + "; audio takes "
                + ", ".join(AUDIO_POSITIONS)
                + " (per kind: image=top-left,document=header,audio=end)"
            )
        positions.update(dict.fromkeys(fits, part))
    return positions


#: the ``explicit`` values a caller may send for files: ``on`` is each kind's default
#: label (the rhythm for audio), ``rhythm``/``speech`` choose the audible one
EXPLICIT_CHOICES = ("on", *AUDIBLE_LABELS, "none")


def explicit_choice(value: str) -> dict[str, bool | str]:
    """``FileOptions`` fields for an ``explicit`` value of :data:`EXPLICIT_CHOICES`."""
    if value not in EXPLICIT_CHOICES:
        raise InvalidOption(f"explicit must be one of {', '.join(EXPLICIT_CHOICES)}")
    return {"explicit": value != "none", "audible": value if value in AUDIBLE_LABELS else "rhythm"}


@dataclass(frozen=True)
class FileOptions:
    """What a caller may choose for one file; validated per media type."""

    explicit: bool = True  # False only with the omit permission (checked by the caller)
    position: str | None = None  # image corner/edge, or footer/header for documents
    pages: str = "all"  # PDF pages / PPTX slides that get the visible label: all | first
    span: str = "start"  # video: how long the label shows (VIDEO_SPANS)
    wording: str = DEFAULT_WORDING
    watermark: bool = True
    c2pa: bool = True
    audible: str = "rhythm"  # audio: the rhythm or the spoken wording (AUDIBLE_LABELS)


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


def label_file(
    data: bytes,
    record: Record,
    options: FileOptions,
    signer: C2paSigner | None = None,
    watermark_payload: int | None = None,
    software_agent: str = "aigc-label",
    limits: Limits = DEFAULT_LIMITS,
    record_signer: RecordSigner | None = None,
) -> FileResult:
    """Label one file: visible -> watermark -> record -> C2PA, in that order.

    ``watermark_payload`` is the 64-bit key an image watermark carries (the
    ledger derives it from the ProduceID). With ``record_signer`` the record's
    ReservedCode1 carries the producer's signature over its fields and the
    content digest (labelers.integrity). The returned ``record`` is the one
    written. The output is built in memory; nothing partial is ever returned.
    """
    check_size(data, limits)
    record.validate()
    media_type = sniff(data)
    if media_type == "text/plain":
        return _label_plain_text(data, record, options, limits)
    # no upfront handler.read(): every stage below parses with the limits before
    # its expensive work, and a PDF read would extract the text of every page
    handler = get_handler(media_type)
    # image and Markdown paths overwrite this when they embed (or skip) a mark
    watermark = f"not available for {media_type}" if options.watermark else "off"
    result = FileResult(data, media_type, record, "none", watermark, "off")
    if media_type == "application/pdf":
        _label_pdf(result, options, limits, record_signer)
    else:
        if media_kind(media_type) == "video":
            _video_content(result, options, watermark_payload, limits)
        else:
            apply_content(result, options, watermark_payload, limits)
        if record_signer is not None:
            result.record = record_signer.sign_producer(
                record, handler.content_digest(result.data, limits)
            )
        result.data = handler.write_record(result.data, result.record, limits)
    if options.c2pa and signer is not None:
        if media_type in c2pa_media_types():
            result.data = signer.sign(
                result.data, media_type, result.record, software_agent, limits=limits
            )
            result.c2pa = "signed"
        else:
            result.c2pa = f"not available for {media_type}"
    elif options.c2pa:
        result.c2pa = "no signer configured"
    return result


def apply_content(
    result: FileResult, options: FileOptions, payload: int | None, limits: Limits
) -> None:
    """The content stage: visible label and watermark, before any metadata."""
    if result.media_type.startswith("image/"):
        _image_content(result, options, payload, limits)
    elif result.media_type.startswith("audio/"):
        _audio_content(result, options, payload, limits)
    else:
        _document_content(result, options, limits)


def c2pa_media_types() -> frozenset[str]:
    """Media types we embed C2PA manifests in.

    c2pa lists the OOXML types, but the build we ship cannot read deflated ZIP
    entries ("compression method not supported: 8"), which every real Office
    file uses; those files get their record without a manifest.
    """
    from labelers.formats.ooxml import OOXML_TYPES
    from labelers.provenance import supported_media_types

    return supported_media_types() - frozenset(OOXML_TYPES)


def check_size(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_bytes:
        raise LimitExceeded(
            f"the file is {len(data)} bytes, over the limit of {limits.max_bytes} bytes "
            "(AIGC_MAX_UPLOAD_BYTES)"
        )


def _image_content(
    result: FileResult, options: FileOptions, payload: int | None, limits: Limits
) -> None:
    position = options.position or "bottom-right"
    if position not in IMAGE_POSITIONS:
        raise InvalidOption(
            f"position {position!r} does not apply to images; use one of "
            + ", ".join(IMAGE_POSITIONS)
        )
    want_mark = options.watermark and payload is not None
    if options.watermark and payload is None:
        result.watermark = "off: no watermark key given"
    if not options.explicit and not want_mark:
        return
    from labelers.imaging import open_raster, save_raster
    from labelers.visible.image import label_frames

    raster = open_raster(result.data, result.media_type, limits)
    if options.explicit:
        raster = label_frames(raster, options.wording, position)
        result.explicit = position
    if want_mark:
        result.watermark, result.watermark_key = _embed_image_watermark(raster, payload)
    result.data = save_raster(raster)


def _embed_image_watermark(raster: Raster, payload: int) -> tuple[str, int | None]:
    from labelers.imaging import MARKABLE_MODES, luminance_plane, with_luminance
    from labelers.watermark import image as image_watermark

    width, height = raster.frames[0].size
    if min(width, height) < image_watermark.MIN_SIDE:
        return (
            f"skipped: the image's shorter side is {min(width, height)} px, "
            f"below the watermark minimum of {image_watermark.MIN_SIDE} px"
        ), None
    if raster.media_type == "image/gif" or len(raster.frames) > 1:
        # 256-colour palettes (and frame-difference coding) quantise the mark away
        return "skipped: GIF and animated images cannot carry the invisible watermark", None
    frame = raster.frames[0]
    # CMYK, 16-bit grey, LAB: marked in the luminance the mode has, kept in its mode
    plane = frame if frame.mode in MARKABLE_MODES else luminance_plane(frame)
    if plane is None:
        return f"skipped: {frame.mode} images have no luminance the watermark can live in", None
    # relabelling a marked image: a second mark on top would interfere with
    # the first and neither might decode; keep the one there, whose key the
    # ledger already maps to the image's first label
    found = image_watermark.decode(plane)
    if found is not None:
        return f"kept: the image already carries watermark key {found.payload:016x}", found.payload
    marked = image_watermark.embed(plane, payload)
    raster.frames[0] = marked if plane is frame else with_luminance(frame, plane, marked)
    return "embedded", payload


def _audio_content(
    result: FileResult, options: FileOptions, payload: int | None, limits: Limits
) -> None:
    """The audible label and the audio watermark (labelers.sound), then the
    original's tags put back on the re-encoded audio (the container's handler).

    The audio limits are checked from the headers before any decode (by the
    container handlers when they parse, by labelers.sound before it decodes).
    With no audible label and no watermark nothing is decoded: the audio stays
    bit-exact.
    """
    place = options.position or "start"
    if place not in AUDIO_POSITIONS:
        raise InvalidOption(
            f"position {place!r} does not apply to audio; use one of " + ", ".join(AUDIO_POSITIONS)
        )
    if options.explicit and options.audible not in AUDIBLE_LABELS:
        raise InvalidOption(
            f"the audible label {options.audible!r} is unknown; use one of "
            + ", ".join(AUDIBLE_LABELS)
        )
    handler = get_handler(result.media_type)
    audible = options.audible if options.explicit else "none"
    key = payload if options.watermark else None
    if options.watermark and payload is None:
        result.watermark = "off: no watermark key given"
    elif not options.watermark:
        result.watermark = "off"
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
        result.data = handler.carry_metadata(result.data, outcome.data, limits)
    result.explicit = "none" if outcome.audible == "none" else f"{outcome.audible} ({place})"
    result.watermark = outcome.watermark
    if outcome.watermark == "embedded":
        result.watermark_key = key
    result.notes.extend(outcome.notes)


def _video_content(
    result: FileResult, options: FileOptions, payload: int | None, limits: Limits
) -> None:
    """The caption burned into the opening frames and the mark, in one re-encode.

    Only the video stream is re-encoded (labelers.video); the container's
    metadata (every tag, chapter and the record's carrier) is then carried
    from the original onto the new file by the container's handler. With
    neither a caption nor a mark nothing is decoded and every stream stays
    bit-exact. Limits are checked from the container's headers first.
    """
    position = options.position or "bottom-right"
    if position not in VIDEO_POSITIONS:
        raise InvalidOption(
            f"position {position!r} does not apply to videos; use one of "
            + ", ".join(VIDEO_POSITIONS)
        )
    check_span(options.span)
    want_mark = options.watermark and payload is not None
    result.watermark = "off" if not options.watermark else "off: no watermark key given"
    if not options.explicit and not want_mark:
        return
    handler = get_handler(result.media_type)
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
        watermark_key=payload if want_mark else None,
        limits=limits,
    )
    if outcome.data is not original:
        result.data = handler.carry_metadata(original, outcome.data, limits)
    result.explicit = outcome.explicit
    if want_mark:
        result.watermark = outcome.watermark
        if outcome.watermark == "embedded":
            result.watermark_key = payload
    result.notes.extend(outcome.notes)


def check_span(span: str) -> None:
    """InvalidOption unless ``span`` is one of VIDEO_SPANS (``start:N`` with N >= 2)."""
    if span in ("start", "whole", "start+end"):
        return
    head, _, seconds = span.partition(":")
    try:
        value = float(seconds) if head == "start" else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise InvalidOption(
            f"span must be start (the first 3 s), start:N (the first N seconds), whole or "
            f"start+end, not {span!r}"
        )
    if value < 2:
        raise InvalidOption(
            f"span {span!r}: GB 45438 asks a video's label to show for at least 2 s"
        )


def _document_content(result: FileResult, options: FileOptions, limits: Limits) -> None:
    media_type = result.media_type
    if options.explicit:
        _document_visible(result, options, limits)
    if media_type == "text/markdown" and options.watermark:
        # Markdown is text: the invisible payload survives copying a paragraph
        # out of the rendered page; front matter, code and URLs stay untouched
        from labelers.formats import markdown as markdown_format

        doc = markdown_format.decode(result.data, limits)
        marked = text_watermark.embed(doc.text, result.record.produce_id, limits=limits)
        result.data = markdown_format.encode(doc, marked)
        result.watermark = "embedded"


def _document_visible(result: FileResult, options: FileOptions, limits: Limits) -> None:
    media_type = result.media_type
    from labelers.formats.ooxml import OOXML_TYPES
    from labelers.visible import markup as visible_markup
    from labelers.visible import office as visible_office
    from labelers.visible import pdf as visible_pdf

    placement = _document_placement(options)
    if media_type == "application/pdf":
        result.data = visible_pdf.stamp_pages(
            result.data, options.wording, placement, options.pages, limits=limits
        )
    elif media_type in OOXML_TYPES:
        result.data = visible_office.add_visible_label(
            result.data, media_type, options.wording, placement, options.pages, limits=limits
        )
    elif media_type == "text/markdown":
        result.data = visible_markup.label_markdown(result.data, options.wording, placement)
    elif media_type == "text/html":
        result.data = visible_markup.label_html(result.data, options.wording, placement)
    result.explicit = _document_explicit(media_type, placement, options)


def _document_placement(options: FileOptions) -> str:
    placement = options.position or "footer"
    if placement not in DOCUMENT_POSITIONS:
        raise InvalidOption(
            f"position {placement!r} does not apply to documents; use footer or header"
        )
    if options.pages not in ("all", "first"):
        raise InvalidOption(f"pages must be all or first, not {options.pages!r}")
    return placement


def _document_explicit(media_type: str, placement: str, options: FileOptions) -> str:
    if media_type != "application/pdf" or options.pages == "all":
        return placement
    return f"{placement} (first page)"


def _label_pdf(
    result: FileResult, options: FileOptions, limits: Limits, record_signer: RecordSigner | None
) -> None:
    """Visible label, content digest and record in one parse of the PDF.

    The same steps as for other documents (apply_content, content_digest,
    write_record), but the document is opened once and saved once, in append
    mode when it can be (labelers.formats.pdf.PdfEdit): parsing and writing
    are most of what each of those steps costs on its own.
    """
    from labelers.formats import pdf as pdf_format
    from labelers.visible import pdf as visible_pdf

    placement = ""
    if options.explicit:
        placement = _document_placement(options)
        visible_pdf.check_options(options.wording, placement, options.pages)
    doc = pdf_format.open_edit(result.data, limits)
    if options.explicit:
        visible_pdf.stamp_document(doc, options.wording, placement, options.pages)
        result.explicit = _document_explicit(result.media_type, placement, options)
    if record_signer is not None:
        result.record = record_signer.sign_producer(result.record, doc.content_digest())
    doc.set_record(result.record)
    result.data = doc.save()


def _label_plain_text(
    data: bytes, record: Record, options: FileOptions, limits: Limits
) -> FileResult:
    text = decode_plain_text(data)
    explicit = "start" if options.explicit else "none"
    labelled = label_text(text, record, explicit, options.wording, options.watermark, limits)
    return FileResult(
        labelled.encode("utf-8"),
        "text/plain",
        record,
        explicit,
        "embedded" if options.watermark else "off",
        "not available for text/plain",
    )
