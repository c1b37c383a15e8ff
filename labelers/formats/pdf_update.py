"""Writing a PDF: one document opened once for a labelling run.

Writing goes through :class:`PdfEdit` (:func:`open_edit`), one parse per run
whatever is changed (visible label, content digest, record), in one of two modes:

- *append* (an incremental update): the input's bytes are kept as they are and
  only the objects that changed (the labelled pages, a resource dictionary, the
  Info dictionary, the XMP stream) and the new ones (the label band) are written
  after them, with a new cross-reference section of the input's kind (table or
  stream). Nothing is cloned, and the objects in memory are written so that
  they read back hashing the same, so the content digest is computed in place
  (:meth:`PdfEdit.content_digest`). Used only when that is equivalent to a
  rewrite: the input is not encrypted and not linearized, carries no record
  anywhere in its bytes (an earlier revision would otherwise keep the old one),
  every object parses, and pypdf repaired nothing (startxref, xref entries,
  objects), so the new section does not point back at a broken one. The earlier
  revision, the document as it came in, stays in the file (a digital signature
  over it stays valid); C2PA signing rewrites the file and drops it.
- *rewrite*: pypdf clones the document (``PdfWriter(clone_from=reader)``):
  pages, text, annotations and links, outlines, AcroForm fields, the structure
  tree, Info entries and the file identifier are carried over object by
  object; nothing is re-rendered. Objects no longer referenced (an old record's
  XMP packet) are dropped. A document that opened with the empty user password
  is encrypted again with the same permissions and cipher.

Opening, reading and the record's carriers are :mod:`labelers.formats.pdf`'s.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from io import BytesIO
from typing import Any

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    EncodedStreamObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NullObject,
    NumberObject,
    PdfObject,
    StreamObject,
    TextStringObject,
    create_string_object,
    read_object,
)

from labelers.formats.pdf import (
    HANDLER,
    INFO_KEY,
    drop_records,
    encrypt_like,
    guarded,
    info_dictionary,
    new_writer,
    open_pdf,
    pages_digest,
    set_record,
    xmp_bytes,
    xmp_stream,
)
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

#: a record (Info /AIGC, XMP TC260:AIGC) anywhere in the raw bytes, perhaps in an
#: earlier revision; the label band's own resource name /AIGCLabel does not count
_RECORD_TRACE = re.compile(rb"AIGC(?!Label)")
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF")
_OBJ_HEADER = re.compile(rb"\d+\s+\d+\s+obj\b")
#: trailer keys that describe one cross-reference section, not the document
_SECTION_KEYS = frozenset(
    {
        "/Size",
        "/Prev",
        "/XRefStm",
        "/Type",
        "/W",
        "/Index",
        "/Filter",
        "/DecodeParms",
        "/Length",
        "/DL",
        "/F",
        "/FFilter",
        "/FDecodeParms",
    }
)
#: an append run parses every object up front; past this many, rewrite instead
APPEND_MAX_OBJECTS = 500_000


class _PypdfWarnings(logging.Handler):
    """Counts the warnings pypdf logs from this thread: each one is a repair it made."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.count += 1


@contextmanager
def _counting_pypdf_warnings() -> Iterator[_PypdfWarnings]:
    handler = _PypdfWarnings()
    logger = logging.getLogger("pypdf")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class PdfEdit:
    """One document opened once for a labelling run; see the module docstring.

    Callers edit :attr:`pages` in place (they are the document's own page
    dictionaries, inherited attributes included), add objects with :meth:`add`,
    report every existing indirect object they edited with :meth:`changed`,
    then ask for :meth:`content_digest`, :meth:`set_record` and :meth:`save`, in
    that order. Every method runs inside :func:`guarded`.
    """

    def __init__(self, data: bytes, reader: PdfReader, limits: Limits, append: bool) -> None:
        self.limits = limits
        self.reader = reader
        self._data = data
        self._writer = None if append else new_writer(reader)
        pages = self._writer.pages if self._writer is not None else reader.pages
        self.pages: list[DictionaryObject] = list(pages)
        # append mode: objects to write after the input's bytes, by number
        self._dirty: dict[int, tuple[int, PdfObject]] = {}
        self._bodies: dict[int, bytes] = {}  # serialised already (by content_digest)
        self._next_id = _next_free_id(reader) if append else 0
        self._info_ref: IndirectObject | None = None
        self._encrypted = False

    @property
    def appending(self) -> bool:
        """True when the output is the input plus an incremental update."""
        return self._writer is None

    def add(self, obj: PdfObject) -> IndirectObject:
        """``obj`` as a new indirect object of the document; its reference."""
        if self._writer is not None:
            return self._writer._add_object(obj)
        ref = IndirectObject(self._next_id, 0, self.reader)
        self._next_id += 1
        self._put(ref, obj)
        return ref

    def changed(self, obj: PdfObject, ref: IndirectObject | None = None) -> None:
        """Note that ``obj``, the indirect object ``ref`` of the document, was edited in place.

        ``ref`` defaults to ``obj.indirect_reference``. A direct object is
        reported through the indirect object that holds it.
        """
        if self._writer is not None:
            return
        ref = ref if ref is not None else obj.indirect_reference
        if ref is None:
            raise ValueError("changed() needs the reference of an indirect object")
        self._dirty[ref.idnum] = (ref.generation, obj)
        self._bodies.pop(ref.idnum, None)

    def content_digest(self) -> bytes:
        """What ``PdfHandler.content_digest`` returns for the output, computed in place."""
        if self._writer is not None:
            # the clone holds objects as pypdf will write them only after a
            # round trip (numbers, strings): hash what a reader will see
            return HANDLER.content_digest(self._render(), self.limits)
        with guarded(self.limits, "computing the content digest"):
            self._settle()
            return pages_digest(self.pages, self.limits)

    def set_record(self, record: Record) -> None:
        """Put ``record`` into the Info dictionary and XMP, replacing any other."""
        record.validate()
        with guarded(self.limits, "writing the record"):
            if self._writer is not None:
                set_record(self._writer, record)
                return
            self._append_record(record)

    def save(self) -> bytes:
        """The edited document as bytes."""
        with guarded(self.limits, "saving the document"):
            if self._writer is not None:
                return self._render()
            return self._append()

    # ---------------------------------------------------------------- rewrite
    def _render(self) -> bytes:
        assert self._writer is not None
        if not self._encrypted:
            encrypt_like(self._writer, self.reader)
            self._encrypted = True
        out = BytesIO()
        self._writer.write(out)
        return out.getvalue()

    # ----------------------------------------------------------------- append
    def _put(self, ref: IndirectObject, obj: PdfObject) -> None:
        """Make ``ref`` resolve to ``obj`` from now on, and write it."""
        self.reader.resolved_objects[(ref.generation, ref.idnum)] = obj
        obj.indirect_reference = ref
        self._dirty[ref.idnum] = (ref.generation, obj)
        self._bodies.pop(ref.idnum, None)

    def _settle(self) -> None:
        """Serialise every changed or new object not serialised yet.

        :func:`_pdf_bytes` writes objects so that reading them back gives
        objects that hash the same (numbers at full precision, strings as their
        bytes), so the digest of the objects in memory is the digest of the
        output. The rare object it cannot vouch for is written by pypdf and
        replaced by what a reader gets back from those bytes.
        """
        page_at: dict[int, int] | None = None
        for idnum, (generation, obj) in list(self._dirty.items()):
            if idnum in self._bodies:
                continue
            try:
                self._bodies[idnum] = _pdf_bytes(obj)
                continue
            except _Unsettled:
                body = _serialise(obj)
            parsed = read_object(BytesIO(body), self.reader)
            self._put(IndirectObject(idnum, generation, self.reader), parsed)
            self._bodies[idnum] = body
            if page_at is None:
                page_at = {
                    page.indirect_reference.idnum: i
                    for i, page in enumerate(self.pages)
                    if page.indirect_reference is not None
                }
            if idnum in page_at:
                self.pages[page_at[idnum]] = parsed

    def _append_record(self, record: Record) -> None:
        trailer = self.reader.trailer
        raw = trailer.raw_get("/Info") if "/Info" in trailer else None
        info = raw.get_object() if isinstance(raw, IndirectObject) else None
        if isinstance(raw, IndirectObject) and isinstance(info, DictionaryObject):
            self.changed(info, raw)
        else:
            # none, or a direct dictionary in the trailer: a new indirect one
            info = DictionaryObject(raw if isinstance(raw, DictionaryObject) else {})
            self._info_ref = self.add(info)
        drop_records(info)
        info[NameObject(INFO_KEY)] = TextStringObject(record.dumps(wrapped=True))

        root_ref = self.reader.trailer.raw_get("/Root")
        root = root_ref.get_object()
        old_ref = root.raw_get("/Metadata") if "/Metadata" in root else None
        old = old_ref.get_object() if isinstance(old_ref, IndirectObject) else None
        if isinstance(old_ref, IndirectObject) and isinstance(old, StreamObject):
            # the same object number, so the old packet is superseded, not orphaned
            self._put(old_ref, xmp_stream(xmp_bytes(root), record))
        else:
            root[NameObject("/Metadata")] = self.add(xmp_stream(None, record))
            self.changed(root, root_ref)

    def _append(self) -> bytes:
        out = bytearray(self._data)
        if not out.endswith((b"\n", b"\r")):
            out += b"\n"
        self._settle()
        offsets: dict[int, tuple[int, int]] = {}
        for idnum in sorted(self._dirty):
            generation = self._dirty[idnum][0]
            offsets[idnum] = (len(out), generation)
            out += b"%d %d obj\n%s\nendobj\n" % (idnum, generation, self._bodies[idnum])
        if not offsets:
            return self._data
        trailer = DictionaryObject(
            {NameObject(k): v for k, v in self.reader.trailer.items() if k not in _SECTION_KEYS}
        )
        if self._info_ref is not None:
            trailer[NameObject("/Info")] = self._info_ref
        trailer[NameObject("/Prev")] = NumberObject(self.reader._startxref)
        if self._data.startswith(b"xref", self.reader._startxref):
            _classic_section(out, offsets, trailer, self._next_id)
        else:
            _stream_section(out, offsets, trailer, self._next_id)
        return bytes(out)


def open_edit(data: bytes, limits: Limits = DEFAULT_LIMITS) -> PdfEdit:
    """``data`` opened once for labelling, in append mode when that is equivalent.

    Refuses bad input (size, header, encryption, page count) like
    :func:`open_pdf`, before anything else is read.
    """
    with guarded(limits, "opening the document"), _counting_pypdf_warnings() as warnings:
        reader = open_pdf(data, limits)
        # any warning is a repair pypdf made (counted before _appendable, whose
        # strict reader warns about things the lenient one accepted)
        if warnings.count or not _appendable(reader, data):
            return PdfEdit(data, reader, limits, append=False)
        before = warnings.count
        parsed = _parses_cleanly(reader)
        if parsed and warnings.count == before:
            return PdfEdit(data, reader, limits, append=True)
        if parsed:  # pypdf repaired something: a rewrite writes a clean file
            return PdfEdit(data, reader, limits, append=False)
    with guarded(limits, "opening the document"):
        # a fresh reader: a failed parse can leave the first one half-way
        return PdfEdit(data, open_pdf(data, limits), limits, append=False)


def _appendable(reader: PdfReader, data: bytes) -> bool:
    """Whether an incremental update of ``data`` is equivalent to rewriting it."""
    if reader.is_encrypted or not data.startswith(b"%PDF-"):
        return False
    if reader.xref_index and not _xref_as_written(reader, data):
        return False
    if not isinstance(reader.trailer.raw_get("/Root"), IndirectObject):
        return False
    if b"/Linearized" in data[:1024]:
        return False  # an update would leave hint tables that describe another file
    if _RECORD_TRACE.search(data):
        return False
    info = info_dictionary(reader)
    if info is not None and any(str(k).lower() == INFO_KEY.lower() for k in info):
        return False  # in an object stream, out of the byte scan's sight
    packet = xmp_bytes(reader.trailer["/Root"].get_object())
    if packet is not None and b"AIGC" in packet:
        return False
    # the last startxref must be the section pypdf read, unrepaired
    tail = list(_STARTXREF.finditer(data, max(0, len(data) - 1024)))
    start = reader._startxref
    if not tail or int(tail[-1].group(1)) != start:
        return False
    if not (data.startswith(b"xref", start) or _OBJ_HEADER.match(data, start)):
        return False
    # every page an indirect object of its own, listed once
    refs = [page.indirect_reference for page in reader.pages]
    if any(ref is None for ref in refs):
        return False
    return len({(ref.idnum, ref.generation) for ref in refs}) == len(refs)


def _xref_as_written(reader: PdfReader, data: bytes) -> bool:
    """Whether pypdf's cross-reference table is the one in the file.

    A table whose first subsection does not start at object 0 (normal in an
    update) makes pypdf renumber entries it finds off by that amount, without a
    warning. A strict reader reads the tables as written: any difference is a
    repair.
    """
    try:
        return PdfReader(BytesIO(data), strict=True).xref == reader.xref
    except Exception:  # strict refuses what the lenient reader repaired
        return False


def _parses_cleanly(reader: PdfReader) -> bool:
    """Parse every object once, as a rewrite would; False if any needed a repair or failed.

    A rewrite refuses a document with an object that cannot be parsed (too
    deeply nested, say) if the object is in use; deciding that here would need
    the reachability walk the rewrite does, so such documents take that path.
    """
    before = {generation: dict(table) for generation, table in reader.xref.items()}
    numbers = [
        (generation, idnum)
        for generation, table in before.items()
        for idnum in table
        if not reader.xref_free_entry.get(generation, {}).get(idnum, False)
    ]
    numbers += [(0, idnum) for idnum in reader.xref_objStm]
    if len(numbers) > APPEND_MAX_OBJECTS:
        return False
    try:
        for generation, idnum in numbers:
            reader.get_object(IndirectObject(idnum, generation, reader))
    except Exception:  # any failure: the rewrite decides, and reports it properly
        return False
    return reader.xref == before


def _next_free_id(reader: PdfReader) -> int:
    size = reader.trailer.get("/Size")
    used = [idnum for table in reader.xref.values() for idnum in table]
    used += list(reader.xref_objStm)
    return max(int(size) if isinstance(size, int) else 0, max(used, default=0) + 1)


def _serialise(obj: PdfObject) -> bytes:
    out = BytesIO()
    obj.write_to_stream(out)
    return out.getvalue()


class _Unsettled(Exception):
    """An object _pdf_bytes cannot write so that it reads back hashing the same."""


#: bytes a name may hold as they are (PDF "regular characters"); others are #XX
_NAME_BYTES = frozenset(set(range(0x21, 0x7F)) - set(b"#()<>[]{}/%"))
_NAME_PLAIN = re.compile(r"/[!\"$&'*+,\-.0-9:;=?@A-Z\\^_`a-z|~]*")
_LITERAL_SAFE = re.compile(rb"[ -~]*")


def _pdf_bytes(obj: Any) -> bytes:
    """``obj`` in PDF syntax, written so that pypdf reads back an equal object.

    Equal as the content digest sees it: numbers keep their exact value (pypdf
    itself writes at most 8 significant digits), strings their bytes, names
    their text. Raises _Unsettled for anything else.
    """
    if isinstance(obj, IndirectObject):
        return b"%d %d R" % (obj.idnum, obj.generation)
    if isinstance(obj, NameObject):
        if _NAME_PLAIN.fullmatch(obj):
            return obj.encode("ascii")
        return b"/" + b"".join(
            bytes((c,)) if c in _NAME_BYTES else b"#%02X" % c for c in obj[1:].encode("utf-8")
        )
    if isinstance(obj, BooleanObject):
        return b"true" if obj else b"false"
    if isinstance(obj, NumberObject):
        return b"%d" % int(obj)
    if isinstance(obj, FloatObject):
        return _float_bytes(float(obj))
    if isinstance(obj, TextStringObject | ByteStringObject):
        return _string_bytes(obj)
    if obj is None or isinstance(obj, NullObject):
        return b"null"
    if isinstance(obj, ArrayObject):
        return b"[" + b" ".join(_pdf_bytes(item) for item in obj) + b"]"
    if isinstance(obj, StreamObject):
        if type(obj) not in (DecodedStreamObject, EncodedStreamObject, StreamObject):
            raise _Unsettled  # a ContentStream keeps its data as operations
        data = obj._data or b""
        head = _dictionary_bytes(obj, skip="/Length", extra=b"/Length %d" % len(data))
        return head + b"\nstream\n" + data + b"\nendstream"
    if isinstance(obj, DictionaryObject):
        return _dictionary_bytes(obj)
    raise _Unsettled


def _dictionary_bytes(obj: DictionaryObject, skip: str = "", extra: bytes = b"") -> bytes:
    parts = [
        _pdf_bytes(NameObject(key) if not isinstance(key, NameObject) else key)
        + b" "
        + _pdf_bytes(value)
        for key, value in dict.items(obj)
        if key != skip
    ]
    if extra:
        parts.append(extra)
    return b"<<" + b"\n".join(parts) + b">>"


def _float_bytes(value: float) -> bytes:
    if value != value or value in (float("inf"), float("-inf")):
        raise _Unsettled
    text = repr(value)  # the shortest text that reads back as the same float
    if "e" in text or "E" in text:  # PDF has no exponent notation
        text = format(Decimal(text), "f")
    return text.encode("ascii")


def _string_bytes(obj: TextStringObject | ByteStringObject) -> bytes:
    raw = obj.get_original_bytes() if isinstance(obj, TextStringObject) else bytes(obj)
    back = create_string_object(raw)  # what pypdf makes of these bytes when it reads them
    if _canonical_string(back) != raw:
        raise _Unsettled
    if _LITERAL_SAFE.fullmatch(raw):
        escaped = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        return b"(" + escaped + b")"
    return b"<" + raw.hex().encode("ascii") + b">"


def _canonical_string(obj: Any) -> bytes:
    if isinstance(obj, TextStringObject):
        return obj.get_original_bytes()
    return bytes(obj)


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive object numbers grouped as (first, count), for xref subsections."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][0] + runs[-1][1] == n:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((n, 1))
    return runs


def _classic_section(
    out: bytearray, offsets: dict[int, tuple[int, int]], trailer: DictionaryObject, size: int
) -> None:
    """An xref table and trailer, for an input whose last section is a table."""
    start = len(out)
    out += b"xref\n"
    numbers = sorted(offsets)
    for first, count in _runs(numbers):
        out += b"%d %d\n" % (first, count)
        for n in range(first, first + count):
            offset, generation = offsets[n]
            out += b"%010d %05d n \n" % (offset, generation)
    trailer[NameObject("/Size")] = NumberObject(size)
    out += b"trailer\n" + _serialise(trailer)
    out += b"\nstartxref\n%d\n%%%%EOF\n" % start


def _stream_section(
    out: bytearray, offsets: dict[int, tuple[int, int]], trailer: DictionaryObject, size: int
) -> None:
    """A cross-reference stream, for an input whose last section is one (PDF 1.5+)."""
    xref_id = size
    start = len(out)
    offsets = {**offsets, xref_id: (start, 0)}
    numbers = sorted(offsets)
    width = max(4, (start.bit_length() + 7) // 8)
    rows = b"".join(
        b"\x01" + offsets[n][0].to_bytes(width, "big") + offsets[n][1].to_bytes(2, "big")
        for n in numbers
    )
    stream = DecodedStreamObject()
    stream.update(trailer)
    stream.update(
        {
            NameObject("/Type"): NameObject("/XRef"),
            NameObject("/Size"): NumberObject(xref_id + 1),
            NameObject("/W"): ArrayObject([NumberObject(1), NumberObject(width), NumberObject(2)]),
            NameObject("/Index"): ArrayObject(
                [NumberObject(v) for run in _runs(numbers) for v in run]
            ),
        }
    )
    stream.set_data(rows)
    out += b"%d 0 obj\n%s\nendobj\n" % (xref_id, _serialise(stream))
    out += b"startxref\n%d\n%%%%EOF\n" % start
