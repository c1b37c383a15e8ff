"""Container formats: sniffing, and the one reader/writer per container.

Each module here (jpeg, png, webp, tiff, gif, heif, pdf, ooxml, markdown,
html, plaintext) knows its container's bytes in both directions and exposes a
:class:`FormatHandler`. ``detectors/`` reads files only through these
handlers, so a container is parsed in exactly one place.

Media types are sniffed from magic numbers, never taken from a file name or a
client header.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from labelers.errors import UnsupportedMedia
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record


@dataclass
class FoundRecord:
    """A record (or something that tried to be one) found in a file."""

    carrier: str  # where it sat, e.g. "xmp:TC260:AIGC", "exif:UserComment", "png:tEXt:AIGC"
    raw: str  # the text as stored
    record: Record | None  # None when the text could not be parsed
    error: str | None = None  # why it could not be parsed


@dataclass
class Metadata:
    """What a handler reads from a file: records and the other evidence we use."""

    media_type: str
    records: list[FoundRecord] = field(default_factory=list)
    xmp: str | None = None  # the XMP packet, if any (detectors look for IPTC there)
    # other key/value metadata: PNG text chunks ("png:tEXt:parameters"), EXIF
    # ("exif:Software"), PDF Info ("pdf:Info:/Producer"), OOXML properties, ...
    properties: dict[str, str] = field(default_factory=dict)
    # visible text, for finding explicit labels (documents: whole text; PDF: per page)
    text_pages: list[str] | None = None
    # pixel size for images, for label-size checks
    size: tuple[int, int] | None = None
    # what a video's headers declare, read before any decode (limits, verify)
    video: VideoInfo | None = None


@dataclass(frozen=True)
class VideoInfo:
    """A video track as its container's headers describe it (nothing decoded)."""

    seconds: float  # duration; 0.0 when the headers do not say
    width: int  # coded frame size
    height: int
    frames: int | None  # sample count, None when the headers do not say
    bitrate: int | None  # bits per second of the video stream, None without a duration
    codec: str = ""  # the container's codec tag: avc1, hvc1, V_VP9, ...
    rotation: int = 0  # degrees, from the display matrix


#: domain separator of every content digest; bump the version when what a
#: format covers changes (signatures over old digests then stop verifying)
DIGEST_SCHEME = b"aigc-content-digest/1"


class ContentHasher:
    """SHA-256 over length-prefixed fields, so field boundaries are part of the digest.

    Without the prefixes, moving bytes from one field to the next (a segment
    boundary, a ZIP entry name into its data) would go unnoticed.
    """

    def __init__(self, kind: str) -> None:
        self._sha = hashlib.sha256()
        self.add(DIGEST_SCHEME, kind)

    def add(self, *fields: bytes | bytearray | memoryview | str | int) -> ContentHasher:
        for value in fields:
            if isinstance(value, str):
                value = value.encode("utf-8")
            elif isinstance(value, int):
                value = str(value).encode("ascii")
            self._sha.update(len(value).to_bytes(8, "big"))
            self._sha.update(value)
        return self

    def digest(self) -> bytes:
        return self._sha.digest()


def comment_text(raw: bytes) -> str:
    """A free-text comment (JPEG COM, GIF comment extension): UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8").strip("\x00 ")
    except UnicodeDecodeError:
        return raw.decode("latin-1").strip("\x00 ")


class Kind(StrEnum):
    """What a file's content is: which content and evidence stages apply to it."""

    IMAGE = "image"
    DOCUMENT = "document"
    TEXT = "text"
    AUDIO = "audio"
    VIDEO = "video"


class Capability(StrEnum):
    """What a handler offers; a stage asks for a capability, never for a media type."""

    RECORD = "record"  # write_record() puts the one record in the file
    C2PA = "c2pa"  # the file can carry an embedded C2PA manifest we sign
    VISIBLE = "visible-label"  # an explicit label can be drawn into the content
    WATERMARK = "watermark"  # an invisible mark can be embedded in the content
    DIGEST = "content-digest"  # content_digest() covers the content essence
    TEXT_PAGES = "text-pages"  # read() gives the visible text (Metadata.text_pages)
    TEXT_BODY = "text-body"  # the file is text a reader sees (watermark and wording in it)
    ONE_PASS = "one-pass"  # open_edit(): visible label, digest and record in one parse
    PAGE_RENDER = "page-render"  # its first page renders as a picture (PDFium)


#: what audio containers offer: the audible label and the mark re-encode the audio
#: (labelers.sound); C2PA is added per format where c2pa writes it
AUDIO_CAPABILITIES = frozenset(
    {Capability.RECORD, Capability.VISIBLE, Capability.WATERMARK, Capability.DIGEST}
)


#: what the raster images offer (GIF takes away the watermark)
IMAGE_CAPABILITIES = frozenset(
    {
        Capability.RECORD,
        Capability.C2PA,
        Capability.VISIBLE,
        Capability.WATERMARK,
        Capability.DIGEST,
    }
)


class FormatHandler(Protocol):
    """One container's bytes, both directions; registered in :data:`REGISTRY`."""

    name: str  # what users call the format, e.g. "JPEG", "DOCX/PPTX/XLSX"
    media_type: str  # the main media type
    media_types: tuple[str, ...]  # every media type this handler serves
    kind: Kind
    #: what the handler offers; one serving several media types may offer less
    #: for some of them (see :func:`capabilities_of`)
    capabilities: frozenset[Capability]
    #: media types whose Metadata.text_pages are real pages (PDF pages, slides)
    paged_types: tuple[str, ...]

    def accept(self, data: bytes) -> str | None:
        """The media type of ``data`` if it is this handler's container (its magic), else None."""

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        """Parse ``data``; raise CorruptInput / LimitExceeded on bad input."""

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """Return ``data`` with exactly one record, in this format's carrier.

        Replaces records in every carrier this format knows (one record per
        file), keeps all other metadata, and does not re-encode content.
        """

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 (32 raw bytes) of the content essence of ``data``.

        Covers pixels / document content and leaves out the metadata that
        labelling, propagation and C2PA signing rewrite, so it is the same
        before and after :meth:`write_record` and a C2PA signature, and changes
        when the content does. Each handler's docstring says what it covers.
        """


def capabilities_of(handler: FormatHandler, media_type: str) -> frozenset[Capability]:
    """What ``handler`` offers for files of ``media_type``.

    A handler that serves several media types may narrow its capabilities per
    type with a ``capabilities_for(media_type)`` method (HEIC/HEIF share the
    AVIF handler, but no HEIC encoder ships here to draw a label with).
    """
    narrowed = getattr(handler, "capabilities_for", None)
    return narrowed(media_type) if narrowed is not None else handler.capabilities


class SignedRecordWriter(Protocol):
    """What a handler may offer beside :class:`FormatHandler`: the content digest and
    the record written on *one* parse of the file (the pipeline uses it when it signs).

    ``sign`` gets the content digest (what :meth:`FormatHandler.content_digest`
    returns) and gives back the record to write; the result is the record and
    the file, as ``write_record(data, sign(content_digest(data)))`` would give.
    """

    def write_signed_record(
        self,
        data: bytes,
        sign: Callable[[bytes], Record],
        limits: Limits = DEFAULT_LIMITS,
    ) -> tuple[Record, bytes]: ...


#: every container, in the order sniff() asks them: one line per module under
#: labelers.formats, each exposing HANDLER. Text comes last: plain text accepts
#: whatever valid UTF-8 is left. A module is imported only when sniff() reaches
#: it, so a JPEG never loads the PDF or Office parsers.
REGISTRY: list[str] = [
    "jpeg",
    "png",
    "gif",
    "webp",
    "tiff",
    "heif",
    "isobmff",
    "m4a",
    "matroska",
    "wav",
    "flac",
    "ogg",
    "mp3",
    "ooxml",
    "pdf",
    "html",
    "markdown",
    "plaintext",
]

_loaded: list[FormatHandler] = []
#: importing a handler on first use must not race: two threads that both saw the list
#: one short appended the same handler twice, and every later index named the wrong
#: format (a server worker then read Markdown as plain text for the rest of its life)
_loading = threading.RLock()


def handlers() -> Iterator[FormatHandler]:
    """The registered handlers in sniffing order, each imported on first use."""
    for i in range(len(REGISTRY)):
        if i >= len(_loaded):
            _load_through(i)
        yield _loaded[i]


def _load_through(i: int) -> None:
    import importlib

    with _loading:
        while len(_loaded) <= i:  # each append is the next name of REGISTRY, in order
            name = REGISTRY[len(_loaded)]
            _loaded.append(importlib.import_module(f"labelers.formats.{name}").HANDLER)


def sniff(data: bytes) -> str:
    """The media type of ``data`` from its bytes; UnsupportedMedia if unknown."""
    return sniff_handler(data)[1]


def sniff_handler(data: bytes) -> tuple[FormatHandler, str]:
    """The handler whose container ``data`` is, and the media type it names."""
    if not data:
        raise UnsupportedMedia("the file is empty")
    for handler in handlers():
        media_type = handler.accept(data)
        if media_type is not None:
            return handler, media_type
    raise UnsupportedMedia(_unrecognised(data))


def _unrecognised(data: bytes) -> str:
    """Why no handler took ``data``, in the words of the nearest miss."""
    if data.startswith(b"PK\x03\x04"):
        return "ZIP archive that is not a DOCX, PPTX or XLSX package"
    if _decoded_head(data) is not None:  # UTF-8, but with NUL
        return "unrecognised binary file type"
    return "unrecognised file type (not a supported image, document or UTF-8 text)"


#: how much of a file the text sniffers decode
TEXT_HEAD = 65536


def text_head(data: bytes) -> str | None:
    """The first 64 KiB of ``data`` as UTF-8 text, or None if it is not text (or holds NUL)."""
    text = _decoded_head(data)
    return None if text is None or "\x00" in text else text


def _decoded_head(data: bytes) -> str | None:
    """The first 64 KiB decoded; a character cut by our own slice is tolerated,
    a file that ends inside a character is not UTF-8 text."""
    head = data[:TEXT_HEAD]
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) <= len(head) or exc.start < len(head) - 4:
            return None
        return data[: exc.start].decode("utf-8")


def get_handler(media_type: str) -> FormatHandler:
    """The handler for ``media_type``; UnsupportedMedia if we have none."""
    for handler in handlers():
        if media_type in handler.media_types:
            return handler
    raise UnsupportedMedia(f"{media_type} files are not supported")


def media_types() -> list[str]:
    """Every media type a registered handler serves, in registry order."""
    return [t for handler in handlers() for t in handler.media_types]


def content_digest(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The content digest of ``data``: its media type sniffed, then the format's handler."""
    return sniff_handler(data)[0].content_digest(data, limits)


def decode_plain_text(data: bytes) -> str:
    """``data`` (sniffed as text/plain from its first 64 KiB) as text, BOM dropped.

    The sniffer reads only the head, so invalid UTF-8 further on is found here.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedMedia(
            f"plain text must be UTF-8; byte {exc.start} is not valid UTF-8"
        ) from None


def text_content_digest(text: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """SHA-256 of the UTF-8 of ``labelers.watermark.text.visible_text(text)``.

    The invisible watermark frames are left out (they carry the ProduceID, not
    content); every visible character, the explicit label included, counts. A
    leading BOM is dropped. Returned raw, 32 bytes; no domain prefix, so anyone
    can recompute it with a one-line SHA-256.
    """
    from labelers.watermark.text import visible_text  # imported late: it is a heavier module

    limits.check("max_text_chars", len(text), "the text")
    return hashlib.sha256(visible_text(text.removeprefix("\ufeff")).encode("utf-8")).digest()
