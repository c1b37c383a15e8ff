"""PDF documents: the record in the Info dictionary and in the XMP metadata stream.

Owns PDF bytes for the whole project: opening untrusted PDFs safely
(:func:`open_pdf` inside :func:`guarded`), reading the record and the other
metadata detectors use, and writing exactly one record. ``labelers.visible.pdf``
opens and saves documents through the helpers here, so a PDF is parsed in one
place.

Carriers: the Info dictionary key ``/AIGC`` (the placement for PDF) holding the
wrapped compact JSON as a literal string, and ``TC260:AIGC`` in the document's
XMP packet (written through :mod:`labelers.formats.xmp`, which keeps every
other XMP property).

Writing goes through :class:`~labelers.formats.pdf_update.PdfEdit`
(:func:`~labelers.formats.pdf_update.open_edit`): one parse per run, written
as an incremental update where that is equivalent to a rewrite.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from typing import TYPE_CHECKING, Any

from pypdf import PasswordType, PdfReader, PdfWriter, apply_configuration
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NullObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

from labelers.errors import AigcError, CorruptInput, EncryptedInput, LimitExceeded
from labelers.formats import Capability, ContentHasher, Kind, Metadata
from labelers.formats import xmp as xmplib
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

if TYPE_CHECKING:
    from labelers.formats.pdf_update import PdfEdit

MEDIA_TYPE = "application/pdf"
INFO_KEY = "/AIGC"
INFO_CARRIER = "pdf:Info:/AIGC"

#: read() extracts text from at most this many pages: text extraction is the
#: slowest thing a read does (pure Python), and a label that is not on the first
#: pages of a long document is not a prominent one anyway.
TEXT_PAGE_CAP = 300
#: ... and stops once the pages' decoded content streams add up to this many
#: bytes, or after this many seconds: a hostile file can point hundreds of pages
#: at one stream that inflates to tens of megabytes.
TEXT_CONTENT_BUDGET = 32 * 1024 * 1024
TEXT_TIME_BUDGET = 5.0
#: Info values longer than this are cut in ``properties`` (they are evidence,
#: not content; a hostile file may hold megabytes there).
MAX_PROPERTY_CHARS = 4096
#: XMP packets larger than this are not parsed (pypdf uses the same bound).
MAX_XMP_BYTES = 5_000_000
#: page keys the content digest covers (read through pypdf's page objects, which
#: carry the inherited /Resources, /MediaBox, /CropBox and /Rotate)
DIGEST_PAGE_KEYS = (
    "/Resources",
    "/MediaBox",
    "/CropBox",
    "/Rotate",
    "/UserUnit",
    "/Group",
    "/Annots",
)
#: back-references the digest does not follow: they lead from a resource or an
#: annotation up into the page tree or the form-field tree, not to content
_DIGEST_SKIPPED_KEYS = frozenset({"/Parent", "/P", "/Length"})
#: the digest walks at most this many objects (a hostile file can reference
#: millions of tiny objects from one page)
DIGEST_MAX_OBJECTS = 2_000_000


# --------------------------------------------------------------- opening safely
@contextmanager
def guarded(limits: Limits, action: str) -> Iterator[None]:
    """Run pypdf work on untrusted bytes: bounded, and failing with our error types.

    pypdf is lenient (``strict=False`` repairs broken xref tables) and walks the
    page tree iteratively with its own cycle and depth checks; the page-tree
    entry budget is tied to ``limits.max_pages`` here so a huge or self-repeating
    tree stops early. Deeply nested objects hit Python's recursion limit, which
    is caught. Everything pypdf raises on malformed input becomes CorruptInput.
    """
    # A tree with N pages has fewer than N intermediate /Pages nodes when every
    # node has two or more kids; degenerate one-kid chains are cut off too.
    budget = 2 * limits.max_pages + 64
    try:
        with apply_configuration(page_tree_maximum_entries=budget):
            yield
    except AigcError:
        raise
    except LimitReachedError as exc:
        if "page tree" in str(exc).lower():
            raise LimitExceeded(
                f"PDF page tree is larger than the {limits.max_pages}-page limit allows: {exc}",
                limit="max_pages",
                value=limits.max_pages,
            ) from None
        raise LimitExceeded(f"PDF exceeds a parser safety limit while {action}: {exc}") from None
    except RecursionError:
        raise CorruptInput(
            f"PDF is corrupt or hostile: objects are nested too deeply (while {action})"
        ) from None
    except MemoryError:
        raise LimitExceeded(f"PDF needs too much memory while {action}") from None
    except Exception as exc:  # pypdf raises a zoo of types on malformed input
        raise CorruptInput(
            f"PDF cannot be parsed while {action}: {type(exc).__name__}: {exc}"
        ) from None


def open_pdf(data: bytes, limits: Limits = DEFAULT_LIMITS) -> PdfReader:
    """A reader for ``data`` with its page tree walked; call inside :func:`guarded`.

    Checks size, header, encryption (the empty user password is tried) and the
    page count before anything else is read.
    """
    if not data:
        raise CorruptInput("the PDF file is empty")
    limits.check("max_bytes", len(data), "the file")
    if b"%PDF-" not in data[:1024]:
        raise CorruptInput("not a PDF file: no %PDF- header in the first 1024 bytes")
    reader = PdfReader(BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except NotImplementedError as exc:
            raise EncryptedInput(
                f"PDF is encrypted with a method that cannot be opened here ({exc}); "
                "send the document unencrypted"
            ) from None
        if opened == PasswordType.NOT_DECRYPTED:
            raise EncryptedInput(
                "PDF is password-protected: it cannot be opened without its password; "
                "send the document unencrypted"
            )
    declared = _declared_page_count(reader)
    if declared is not None and declared > limits.max_pages:
        raise limits.exceeded(
            "max_pages",
            declared,
            f"PDF declares {declared} pages, more than the {limits.max_pages}-page limit",
        )
    count = len(reader.pages)  # walks the page tree, within the guarded budget
    if count > limits.max_pages:
        raise limits.exceeded(
            "max_pages",
            count,
            f"PDF has {count} pages, more than the {limits.max_pages}-page limit",
        )
    if count == 0:
        raise CorruptInput("PDF has no pages")
    return reader


def _declared_page_count(reader: PdfReader) -> int | None:
    pages = _get(reader.trailer["/Root"].get_object(), "/Pages")
    if not isinstance(pages, DictionaryObject):
        raise CorruptInput("PDF has no page tree (/Root /Pages is missing)")
    count = _get(pages, "/Count")
    return int(count) if isinstance(count, int) else None


def _get(obj: DictionaryObject, key: str) -> Any:
    """``obj[key]`` with an indirect reference resolved, or None (``dict.get`` does not resolve)."""
    value = obj.get(key)
    return value.get_object() if isinstance(value, IndirectObject) else value


def new_writer(reader: PdfReader) -> PdfWriter:
    """A writer holding a full clone of the document (call inside :func:`guarded`)."""
    return PdfWriter(clone_from=reader, keep_initial_header=True)


def save(writer: PdfWriter, reader: PdfReader) -> bytes:
    """The writer's document as bytes, encrypted again if the input was.

    A document that opened with the empty user password had restrictions set by
    its owner; they are kept (same permission bits and cipher). The owner
    password cannot be recovered, so a fresh random one is set.
    """
    encrypt_like(writer, reader)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypt_like(writer: PdfWriter, reader: PdfReader) -> None:
    if reader.is_encrypted:
        encrypt = reader.trailer["/Encrypt"].get_object()
        writer.encrypt(
            user_password="",
            owner_password=secrets.token_urlsafe(24),
            permissions_flag=int(_get(encrypt, "/P") or -4),
            algorithm=_cipher(encrypt),
        )


def _cipher(encrypt: DictionaryObject) -> str:
    version = int(_get(encrypt, "/V") or 0)
    revision = int(_get(encrypt, "/R") or 0)
    if version >= 5:
        return "AES-256-R5" if revision == 5 else "AES-256"
    if version == 4:
        filters = _get(encrypt, "/CF") or DictionaryObject()
        std = _get(filters, _get(encrypt, "/StmF") or "/StdCF") or DictionaryObject()
        return "AES-128" if _get(std, "/CFM") == "/AESV2" else "RC4-128"
    if version in (2, 3) and int(_get(encrypt, "/Length") or 40) > 40:
        return "RC4-128"
    return "RC4-40"


# ----------------------------------------------------------------------- read
def _string(value: Any) -> str:
    """An Info value as text: strings decoded, anything else in PDF syntax."""
    if isinstance(value, TextStringObject):
        return str(value)
    if isinstance(value, ByteStringObject):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def info_dictionary(reader: PdfReader) -> DictionaryObject | None:
    info = _get(reader.trailer, "/Info")
    return info if isinstance(info, DictionaryObject) else None


def xmp_bytes(root: DictionaryObject) -> bytes | None:
    stream = _get(root, "/Metadata")
    if not isinstance(stream, StreamObject) or len(stream._data) > MAX_XMP_BYTES:
        return None
    data = stream.get_data()
    return data if len(data) <= MAX_XMP_BYTES else None


def _page_texts(reader: PdfReader, limits: Limits) -> list[str]:
    """Text per page, from the first page on, within the budgets above.

    The list is shorter than the document when a budget ran out (the page
    count is in ``properties["pdf:pages"]``).
    """
    texts: list[str] = []
    total = 0
    content_left = TEXT_CONTENT_BUDGET
    deadline = time.monotonic() + TEXT_TIME_BUDGET
    for page in reader.pages[:TEXT_PAGE_CAP]:
        try:
            contents = page.get_contents()
            content_left -= len(contents.get_data()) if contents is not None else 0
            if content_left < 0 or time.monotonic() > deadline:
                break
            text = page.extract_text()
        except Exception:  # text is evidence only: a page whose text fails reads as ""
            text = ""
        # subset CJK fonts from some writers extract with NULs between glyphs
        text = text.replace("\x00", "")
        room = limits.max_text_chars - total
        texts.append(text[: max(room, 0)])
        total += len(text)
        if total >= limits.max_text_chars:
            break
    return texts


class PdfHandler:
    name = "PDF"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.DOCUMENT
    capabilities = frozenset(
        {
            Capability.RECORD,
            Capability.C2PA,
            Capability.VISIBLE,
            Capability.DIGEST,
            Capability.TEXT_PAGES,
            Capability.ONE_PASS,
            Capability.PAGE_RENDER,
        }
    )
    paged_types = (MEDIA_TYPE,)

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if data.startswith(b"%PDF-") else None

    def draw_label(
        self,
        data: bytes,
        media_type: str,
        wording: str,
        placement: str,
        pages: str,
        limits: Limits = DEFAULT_LIMITS,
    ) -> bytes:
        """``data`` with a visible label band (labelers.visible.pdf)."""
        from labelers.visible import pdf as visible_pdf

        return visible_pdf.stamp_pages(data, wording, placement, pages, limits=limits)

    def open_edit(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> PdfEdit:
        from labelers.formats.pdf_update import open_edit

        return open_edit(data, limits)

    def stamp(self, doc: PdfEdit, wording: str, placement: str, pages: str) -> None:
        """Draw the visible label on an open document (see open_edit)."""
        from labelers.visible import pdf as visible_pdf

        visible_pdf.stamp_document(doc, wording, placement, pages)

    def check_label_options(self, wording: str, placement: str, pages: str) -> None:
        from labelers.visible import pdf as visible_pdf

        visible_pdf.check_options(wording, placement, pages)

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        meta = Metadata(media_type=MEDIA_TYPE)
        with guarded(limits, "reading the document"):
            reader = open_pdf(data, limits)
            info = info_dictionary(reader)
            for key, value in (info or {}).items():
                text = _string(value.get_object())
                if key == INFO_KEY:
                    meta.records.append(xmplib.found_record(text, INFO_CARRIER))
                else:
                    meta.properties[f"pdf:Info:{key}"] = text[:MAX_PROPERTY_CHARS]
            meta.properties["pdf:pages"] = str(len(reader.pages))
            if reader.is_encrypted:
                meta.properties["pdf:encrypted"] = "opens with the empty user password"
            packet = xmp_bytes(reader.trailer["/Root"].get_object())
            if packet is not None:
                meta.xmp = xmplib.decode_packet(packet)
                meta.records.extend(xmplib.read_records(meta.xmp))
            meta.text_pages = _page_texts(reader, limits)
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        from labelers.formats.pdf_update import open_edit

        doc = open_edit(data, limits)
        doc.set_record(record)
        return doc.save()

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of what the pages show.

        Covers the page count and, for each page in order: its content streams,
        decoded and joined (the visible label the stamp drew is part of them);
        its resources (fonts, images, form XObjects, colour spaces, patterns,
        graphics states), geometry (/MediaBox, /CropBox, /Rotate, /UserUnit),
        transparency /Group and annotations (links, form widgets with their
        appearance streams). Objects are hashed by structure and value, never by
        object number or position: dictionaries by sorted key, numbers by value
        (``1`` and ``1.0`` alike), strings by their bytes, streams by their
        dictionary (without /Length) and their stored data, shared objects once.

        Left out: the Info dictionary and the XMP stream (both carry the record),
        the file identifier, object numbering, cross-reference layout,
        encryption (streams are hashed decrypted), document-level parts (outlines,
        AcroForm dictionary, structure tree, names and embedded files, where c2pa
        puts its manifest with an /AF entry in the catalog), and the /Parent and /P
        back-references. A cycle is cut where it closes.
        """
        with guarded(limits, "computing the content digest"):
            reader = open_pdf(data, limits)
            return pages_digest(reader.pages, limits)


def pages_digest(pages: Sequence[DictionaryObject], limits: Limits) -> bytes:
    """The content digest of ``pages`` (see :meth:`PdfHandler.content_digest`)."""
    hasher = ContentHasher(MEDIA_TYPE)
    hasher.add(b"pages", len(pages))
    canon = _Canonical()
    content_left = limits.max_unzipped_bytes
    for page in pages:
        content = _page_content(page)
        content_left -= len(content)
        if content_left < 0:
            raise limits.exceeded(
                "max_unzipped_bytes",
                limits.max_unzipped_bytes - content_left,
                "the PDF's page content streams decode to more than "
                f"{limits.max_unzipped_bytes} bytes",
            )
        hasher.add(b"page", content)
        for key in DIGEST_PAGE_KEYS:
            if key in page:
                hasher.add(key, canon.of(page.raw_get(key)))
    return hasher.digest()


def _page_content(page: DictionaryObject) -> bytes:
    """The page's content streams decoded and joined (without parsing operators)."""
    contents = _get(page, "/Contents")
    streams = contents if isinstance(contents, ArrayObject) else [contents]
    parts = []
    for item in streams:
        stream = item.get_object() if isinstance(item, IndirectObject) else item
        if isinstance(stream, StreamObject):
            parts.append(stream.get_data())
    # the spec reads an array of streams as one, with whitespace between them
    return b"\n".join(parts)


class _Canonical:
    """Canonical bytes of PDF objects, independent of numbering and serialisation."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int], bytes] = {}
        self._on_path: set[tuple[int, int]] = set()
        self._visited = 0

    def of(self, obj: Any) -> bytes:
        self._visited += 1
        if self._visited > DIGEST_MAX_OBJECTS:
            raise LimitExceeded(
                f"PDF pages reference more than {DIGEST_MAX_OBJECTS} objects; "
                "the content digest stops there"
            )
        if isinstance(obj, IndirectObject):
            key = (obj.idnum, obj.generation)
            if key in self._memo:
                return self._memo[key]
            if key in self._on_path:
                return b"cycle"
            self._on_path.add(key)
            inner = self.of(obj.get_object())
            self._on_path.discard(key)
            # an object is stood for by its hash, so a font shared by 300 pages
            # costs one hash and its bytes do not pile up in the parents
            digest = b"R" + hashlib.sha256(inner).digest()
            self._memo[key] = digest
            return digest
        if isinstance(obj, StreamObject):
            sha = hashlib.sha256(self._dictionary(obj))
            sha.update(obj._data or b"")  # as stored (filters applied), decrypted by pypdf
            return b"S" + sha.digest()
        if isinstance(obj, DictionaryObject):
            return self._dictionary(obj)
        if isinstance(obj, ArrayObject):
            return b"[" + b"".join(_framed(self.of(item)) for item in obj) + b"]"
        if isinstance(obj, BooleanObject):
            return b"true" if obj else b"false"
        if isinstance(obj, NumberObject | FloatObject):
            value = float(obj)
            return b"n" + (str(int(value)) if value.is_integer() else repr(value)).encode()
        if isinstance(obj, NameObject):
            return b"/" + str(obj).encode("utf-8")
        if isinstance(obj, TextStringObject):
            return b"(" + obj.get_original_bytes()
        if isinstance(obj, ByteStringObject):
            return b"(" + bytes(obj)
        if obj is None or isinstance(obj, NullObject):
            return b"null"
        return b"?" + type(obj).__name__.encode()

    def _dictionary(self, obj: DictionaryObject) -> bytes:
        out = [b"<<"]
        for key in sorted(str(k) for k in obj):
            if key in _DIGEST_SKIPPED_KEYS:
                continue
            out.append(_framed(key.encode("utf-8")))
            out.append(_framed(self.of(obj.raw_get(key))))
        out.append(b">>")
        return b"".join(out)


def _framed(value: bytes) -> bytes:
    return len(value).to_bytes(8, "big") + value


def set_record(writer: PdfWriter, record: Record) -> None:
    """Put ``record`` into the writer's Info dictionary and XMP, replacing any other."""
    info = writer._info  # pypdf creates it on first assignment when the input had none
    if info is not None:
        drop_records(info)
    writer.add_metadata({INFO_KEY: record.dumps(wrapped=True)})

    root = writer.root_object
    old_ref = root.raw_get("/Metadata") if "/Metadata" in root else None
    old = old_ref.get_object() if old_ref is not None else None
    stream = xmp_stream(xmp_bytes(root) if isinstance(old, StreamObject) else None, record)
    if isinstance(old_ref, IndirectObject) and isinstance(old, StreamObject):
        # replace in place: a new object would leave the old packet (and its old
        # record) in the file as an orphan
        writer._replace_object(old_ref, stream)
    else:
        root[NameObject("/Metadata")] = writer._add_object(stream)


def drop_records(info: DictionaryObject) -> None:
    for key in [k for k in info if str(k).lower() == INFO_KEY.lower()]:
        del info[key]


def xmp_stream(packet: bytes | None, record: Record) -> DecodedStreamObject:
    """The XMP metadata stream holding ``record`` and every other property of ``packet``."""
    try:
        text = xmplib.set_record(packet, record)
    except CorruptInput as exc:
        raise CorruptInput(f"PDF XMP metadata stream cannot be updated: {exc.detail}") from None
    # Uncompressed, as PDF/A asks, so simple scanners find the packet too.
    stream = DecodedStreamObject()
    stream.set_data(text.encode("utf-8"))
    stream[NameObject("/Type")] = NameObject("/Metadata")
    stream[NameObject("/Subtype")] = NameObject("/XML")
    return stream


HANDLER = PdfHandler()
