"""PNG files (and APNG): the record as XMP in an ``iTXt`` chunk, by chunk splicing.

Owns PNG chunk bytes. Reading walks the chunks without inflating image data:
size from IHDR, XMP from the ``XML:com.adobe.xmp`` iTXt chunk, every text chunk
(tEXt, zTXt, iTXt) as a ``png:tEXt:<keyword>`` property (Stable Diffusion
WebUI ``parameters``, ComfyUI ``prompt``/``workflow``, ...), legacy records in
text chunks with the keyword ``AIGC``, and EXIF (``eXIf``) text fields.
Writing replaces the XMP chunk (or inserts one before the first IDAT), drops
``AIGC`` text chunks, zeroes legacy EXIF records, and copies every other chunk
byte for byte.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from labelers.errors import CorruptInput, LimitExceeded
from labelers.formats import IMAGE_CAPABILITIES, ContentHasher, FoundRecord, Kind, Metadata
from labelers.formats import xmp as xmplib
from labelers.formats.parse_once import parsed_once
from labelers.formats.tiff import blank_exif_records, read_exif
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "image/png"
SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
RECORD_KEYWORD = "AIGC"
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
#: chunks the content digest covers: the critical ones, transparency, and APNG
#: animation (frame control and frame data decide what each frame shows)
ESSENCE_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fcTL", b"fdAT"})
# inflated text chunks are capped: a few KB of zTXt can expand to gigabytes
MAX_TEXT_CHUNK = 16 * 1024 * 1024


@dataclass
class Chunk:
    type: bytes
    start: int  # the length field
    end: int  # after the CRC

    def body(self, data: bytes) -> bytes:
        return data[self.start + 8 : self.end - 4]


@dataclass
class TextChunk:
    keyword: str
    text: str


@parsed_once
def _parse(data: bytes, limits: Limits) -> tuple[list[Chunk], tuple[int, int]]:
    if not data:
        raise CorruptInput("the PNG file is empty")
    limits.check("max_bytes", len(data), "the file")
    if not data.startswith(SIGNATURE):
        raise CorruptInput("not a PNG file: bad signature")
    chunks = _chunks(data)
    size = _ihdr(data, chunks[0], limits)
    if not any(c.type == b"IDAT" for c in chunks):
        raise CorruptInput("PNG has no image data (IDAT)")
    return chunks, size


def _chunks(data: bytes) -> list[Chunk]:
    """The chunks from the signature to IEND (a PNG's one walker)."""
    n = len(data)
    pos = len(SIGNATURE)
    chunks: list[Chunk] = []
    while True:
        if pos + 8 > n:
            raise CorruptInput("PNG is truncated: it ends before the IEND chunk")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise CorruptInput(f"PNG chunk {ctype!r} at byte {pos} runs past the end of the file")
        chunks.append(Chunk(ctype, pos, end))
        pos = end
        if ctype == b"IEND":
            return chunks


def _ihdr(data: bytes, chunk: Chunk, limits: Limits) -> tuple[int, int]:
    if chunk.type != b"IHDR" or chunk.end - chunk.start != 25:
        raise CorruptInput("PNG does not start with a valid IHDR chunk")
    _check_crc(data, chunk)
    width, height = struct.unpack(">II", chunk.body(data)[:8])
    if width == 0 or height == 0:
        raise CorruptInput(f"PNG has an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise limits.exceeded(
            "max_pixels",
            width * height,
            f"image of {width}x{height} pixels exceeds the {limits.max_pixels}-pixel limit",
        )
    return width, height


def _check_crc(data: bytes, chunk: Chunk) -> None:
    (stored,) = struct.unpack(">I", data[chunk.end - 4 : chunk.end])
    if zlib.crc32(data[chunk.start + 4 : chunk.end - 4]) != stored:
        raise CorruptInput(f"PNG chunk {chunk.type.decode('latin-1')!r} has a bad CRC")


def _inflate(raw: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, MAX_TEXT_CHUNK)
    except zlib.error as exc:
        raise CorruptInput(f"PNG compressed text chunk does not inflate: {exc}") from None
    if inflater.unconsumed_tail:
        raise LimitExceeded(f"a PNG compressed text chunk inflates beyond {MAX_TEXT_CHUNK} bytes")
    return out


def _text_chunk(data: bytes, chunk: Chunk) -> TextChunk | None:
    """Keyword and text of a tEXt/zTXt/iTXt chunk; None if malformed."""
    body = chunk.body(data)
    keyword, sep, rest = body.partition(b"\x00")
    if not sep:
        return None
    try:
        if chunk.type == b"tEXt":
            text = rest.decode("latin-1")
        elif chunk.type == b"zTXt":
            text = _inflate(rest[1:]).decode("latin-1")
        else:
            if len(rest) < 2:
                return None
            compressed = rest[0] == 1
            _lang, _, rest = rest[2:].partition(b"\x00")
            _translated, _, payload = rest.partition(b"\x00")
            text = (_inflate(payload) if compressed else payload).decode("utf-8", "replace")
    except CorruptInput:
        return None
    return TextChunk(keyword.decode("latin-1"), text)


class PngHandler:
    name = "PNG"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.IMAGE
    capabilities = IMAGE_CAPABILITIES
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if data.startswith(b"\x89PNG\r\n\x1a\n") else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        chunks, size = _parse(data, limits)
        meta = Metadata(media_type=MEDIA_TYPE, size=size)
        legacy: list[FoundRecord] = []
        for chunk in chunks:
            if chunk.type in _TEXT_TYPES:
                text = _text_chunk(data, chunk)
                if text is None:
                    continue
                if text.keyword == XMP_KEYWORD.decode():
                    if meta.xmp is None:
                        meta.xmp = xmplib.decode_packet(text.text)
                        meta.records.extend(xmplib.read_records(meta.xmp))
                    continue
                meta.properties.setdefault(f"png:tEXt:{text.keyword}", text.text)
                if text.keyword.upper() == RECORD_KEYWORD:
                    carrier = f"png:{chunk.type.decode()}:{text.keyword}"
                    legacy.append(xmplib.found_record(text.text, carrier))
            elif chunk.type == b"eXIf":
                exif = read_exif(chunk.body(data))
                legacy.extend(exif.records)
                for key, value in exif.properties.items():
                    meta.properties.setdefault(key, value)
        meta.records.extend(legacy)
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        chunks, _ = _parse(data, limits)
        old_packet: str | None = None
        first_idat = next(i for i, c in enumerate(chunks) if c.type == b"IDAT")
        insert_at = first_idat
        drop: set[int] = set()
        for i, chunk in enumerate(chunks):
            if chunk.type not in _TEXT_TYPES:
                continue
            text = _text_chunk(data, chunk)
            if text is None:
                continue
            if text.keyword == XMP_KEYWORD.decode():
                if old_packet is None:
                    old_packet = text.text
                    if i < first_idat:
                        insert_at = i  # replace in place
                drop.add(i)
            elif text.keyword.upper() == RECORD_KEYWORD:
                drop.add(i)  # a legacy record: the XMP one replaces it
        packet = xmplib.set_record(old_packet, record).encode("utf-8")
        new_chunk = make_chunk(b"iTXt", XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + packet)

        parts = [SIGNATURE]
        for i, chunk in enumerate(chunks):
            if i == insert_at:
                parts.append(new_chunk)
            if i in drop:
                continue
            if chunk.type == b"eXIf":
                info = read_exif(chunk.body(data))
                if info.record_spans:
                    parts.append(make_chunk(b"eXIf", blank_exif_records(chunk.body(data), info)))
                    continue
            parts.append(data[chunk.start : chunk.end])
        parts.append(data[chunks[-1].end :])  # whatever trails IEND, kept as it was
        return b"".join(parts)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the coded image, without inflating it.

        Covers, in file order, the type and body of every IHDR, PLTE, IDAT,
        IEND, tRNS, acTL, fcTL and fdAT chunk (:data:`ESSENCE_CHUNKS`): size, bit
        depth, colour type, palette, transparency, the compressed pixels and the
        APNG frames with their timing. CRCs are not hashed (they follow from the
        bodies).

        Left out: every other ancillary chunk, i.e. text (tEXt/zTXt/iTXt: XMP and
        legacy AIGC records), eXIf, C2PA's caBX manifest, colour information
        (iCCP, sRGB, gAMA, cHRM, cICP, sBIT), pHYs, bKGD, tIME, private chunks,
        and bytes after IEND. Splitting the same compressed stream into IDAT
        chunks differently changes the digest (nothing here re-chunks).
        """
        chunks, _ = _parse(data, limits)
        hasher = ContentHasher("image/png")
        view = memoryview(data)
        for chunk in chunks:
            if chunk.type in ESSENCE_CHUNKS:
                hasher.add(chunk.type, view[chunk.start + 8 : chunk.end - 4])
        return hasher.digest()


def make_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


# ------------------------------------------------------- carried through a re-encode

# written by the encoder from the frames (or from Raster fields), never copied
ENCODER_CHUNKS = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"acTL",
    b"fcTL",
    b"fdAT",
    b"iCCP",
    b"eXIf",
    b"pHYs",
}


def ancillary_chunks(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[tuple[bytes, bool]]:
    """The chunks a re-encode must carry over: (raw chunk, after the image data)."""
    out: list[tuple[bytes, bool]] = []
    seen_data = False
    for chunk in _parse(data, limits)[0]:
        if chunk.type in (b"IDAT", b"fdAT"):
            seen_data = True
        if chunk.type in ENCODER_CHUNKS:
            continue
        out.append((data[chunk.start : chunk.end], seen_data))
    return out


def splice_ancillary(encoded: bytes, chunks: list[tuple[bytes, bool]]) -> bytes:
    """Put the source's ancillary chunks into the encoder's output.

    Chunks that preceded the image data go right after IHDR (where cHRM,
    gAMA, sRGB must be: before PLTE), except bKGD/hIST/sPLT which need PLTE
    first and go just before the first frame chunk; the rest go before IEND.
    """
    if not chunks:
        return encoded
    early = [c for c, after in chunks if not after and c[4:8] not in (b"bKGD", b"hIST")]
    late_pre = [c for c, after in chunks if not after and c[4:8] in (b"bKGD", b"hIST")]
    post = [c for c, after in chunks if after]
    out = bytearray(SIGNATURE)
    first_frame_chunk_done = False
    for chunk in _chunks(encoded):  # the encoder's own output
        ctype, start, end = chunk.type, chunk.start, chunk.end
        if ctype in (b"acTL", b"fcTL", b"IDAT") and not first_frame_chunk_done:
            out += b"".join(late_pre)
            first_frame_chunk_done = True
        if ctype == b"IEND":
            out += b"".join(post)
        out += encoded[start:end]
        if ctype == b"IHDR":
            out += b"".join(early)
    return bytes(out)


HANDLER = PngHandler()
