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
from dataclasses import dataclass, field
from typing import Protocol

from labelers.errors import LimitExceeded, UnsupportedMedia
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


class FormatHandler(Protocol):
    media_type: str

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


# magic-number table; the first match wins. Containers that need a closer look
# (RIFF, ISO-BMFF, ZIP) are resolved in sniff().
_MAGIC: list[tuple[bytes, str]] = [
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"%PDF-", "application/pdf"),
]
_FTYP_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
}
_OOXML_MAIN = {
    b"word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    b"xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def sniff(data: bytes) -> str:
    """The media type of ``data`` from its bytes; UnsupportedMedia if unknown."""
    if not data:
        raise UnsupportedMedia("the file is empty")
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    audio = _sniff_audio(data)
    if audio is not None:
        return audio
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _FTYP_BRANDS:
            return _FTYP_BRANDS[brand]
        movie = isobmff_accept(data[:128])
        if movie is not None:
            return movie
        # compatible brands follow the minor version
        size = int.from_bytes(data[:4], "big")
        for i in range(16, min(size, 64), 4):
            if data[i : i + 4] in _FTYP_BRANDS:
                return _FTYP_BRANDS[data[i : i + 4]]
    for accept in (isobmff_accept, matroska_accept):
        found = accept(data[:4096])
        if found is not None:
            return found
    if data.startswith(b"PK\x03\x04"):
        head = data[:65536]
        for marker, media_type in _OOXML_MAIN.items():
            if marker in head and b"[Content_Types].xml" in data:
                return media_type
        raise UnsupportedMedia("ZIP archive that is not a DOCX, PPTX or XLSX package")
    return _sniff_text(data)


def _sniff_audio(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data.startswith(b"fLaC"):
        return "audio/flac"
    from labelers.formats.mp3 import sniff as sniff_mp3  # ID3 in front: MP3, or FLAC

    return sniff_mp3(data)


def _sniff_text(data: bytes) -> str:
    head = data[:65536]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # tolerated only where our own slice cut a character: a file that ends
        # inside a character is not UTF-8 text
        if len(data) <= len(head) or exc.start < len(head) - 4:
            raise UnsupportedMedia(
                "unrecognised file type (not a supported image, document or UTF-8 text)"
            ) from None
        text = data[: exc.start].decode("utf-8")
    if "\x00" in text:
        raise UnsupportedMedia("unrecognised binary file type")
    head = text.lstrip("\ufeff \t\r\n").lower()
    if _looks_like_html(head):
        return "text/html"
    if head.startswith("---\n") or head.startswith("---\r\n"):
        # Jekyll/Hugo templates: YAML front matter over an HTML document. Its
        # record carrier is the HTML's <meta>; taken as Markdown, the old <meta>
        # stayed beside a new front-matter record (two records)
        from labelers.formats.markdown import split_front_matter

        fm = split_front_matter(head)
        if fm is not None and _looks_like_html(head[fm.body_start :].lstrip(" \t\r\n")):
            return "text/html"
        return "text/markdown"
    if _looks_like_markdown(text):
        return "text/markdown"
    return "text/plain"


def _looks_like_html(head: str) -> bool:
    """``head``: lower-cased text with leading whitespace removed."""
    return head.startswith(("<!doctype html", "<html")) or (
        head.startswith("<") and "<html" in head[:2048]
    )


def _looks_like_markdown(text: str) -> bool:
    lines = text.splitlines()[:200]
    marks = sum(
        1
        for line in lines
        if line.startswith(("# ", "## ", "### ", "```", "- ", "* ", "> ")) or "](" in line
    )
    return marks >= 2


# media type -> module under labelers.formats exposing HANDLER
_HANDLER_MODULES = {
    "image/jpeg": "jpeg",
    "image/png": "png",
    "image/webp": "webp",
    "image/tiff": "tiff",
    "image/gif": "gif",
    "image/avif": "heif",
    "image/heic": "heif",
    "image/heif": "heif",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "ooxml",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "ooxml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "ooxml",
    "text/markdown": "markdown",
    "text/html": "html",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "video/mp4": "isobmff",
    "video/quicktime": "isobmff",
    "video/x-m4v": "isobmff",
    "audio/mp4": "isobmff",
    "video/webm": "matroska",
    "video/x-matroska": "matroska",
}


def get_handler(media_type: str) -> FormatHandler:
    """The handler for ``media_type``; UnsupportedMedia if we have none."""
    import importlib

    name = _HANDLER_MODULES.get(media_type)
    if name is None:
        raise UnsupportedMedia(f"{media_type} files are not supported")
    try:
        module = importlib.import_module(f"labelers.formats.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"labelers.formats.{name}":
            raise UnsupportedMedia(f"{media_type} files are not supported yet") from None
        raise
    return module.HANDLER


def content_digest(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The content digest of ``data``: its media type sniffed, then the format's handler.

    Plain text has no handler (its record lives outside the text): its digest
    is over the text a reader sees, :func:`text_content_digest`.
    """
    media_type = sniff(data)
    if media_type == "text/plain":
        if len(data) > limits.max_bytes:
            raise LimitExceeded(
                f"file of {len(data)} bytes exceeds the {limits.max_bytes}-byte limit "
                "(AIGC_MAX_UPLOAD_BYTES)"
            )
        return text_content_digest(decode_plain_text(data), limits)
    return get_handler(media_type).content_digest(data, limits)


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

    if len(text) > limits.max_text_chars:
        raise LimitExceeded(
            f"the text has {len(text)} characters, over the limit of {limits.max_text_chars} "
            "(AIGC_MAX_TEXT_CHARS)"
        )
    return hashlib.sha256(visible_text(text.removeprefix("\ufeff")).encode("utf-8")).digest()


# the movie containers sniff themselves (imported last: they import this module)
from labelers.formats.isobmff import accept as isobmff_accept  # noqa: E402
from labelers.formats.matroska import accept as matroska_accept  # noqa: E402
