"""WebP files (still and animated): the record as XMP in the ``XMP `` RIFF chunk.

Owns WebP RIFF chunk bytes. Reading walks the chunks without decoding:
canvas size from VP8X (or the VP8/VP8L bitstream header of a simple file),
XMP from the ``XMP `` chunk, EXIF text fields (legacy records in UserComment /
ImageDescription) from the ``EXIF`` chunk, frame count from ``ANMF`` chunks.
Writing replaces the XMP chunk (or adds one after the image and EXIF chunks),
turns a simple VP8/VP8L file into the extended format with a VP8X header so
it may carry metadata, sets the XMP flag, zeroes legacy EXIF records in place
and copies every other chunk unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from labelers.errors import CorruptInput
from labelers.formats import IMAGE_CAPABILITIES, ContentHasher, FoundRecord, Kind, Metadata
from labelers.formats import xmp as xmplib
from labelers.formats.parse_once import parsed_once
from labelers.formats.tiff import blank_exif_records, read_exif
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "image/webp"

# VP8X flag bits
FLAG_ICC, FLAG_ALPHA, FLAG_EXIF, FLAG_XMP, FLAG_ANIMATION = 0x20, 0x10, 0x08, 0x04, 0x02
_IMAGE_CHUNKS = {b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"}


@dataclass
class Chunk:
    fourcc: bytes
    start: int  # the fourcc
    end: int  # after the payload, before any pad byte

    def payload(self, data: bytes) -> bytes:
        return data[self.start + 8 : self.end]

    def raw(self, data: bytes) -> bytes:
        """The chunk as stored, with its pad byte (added if the file lacked it)."""
        out = data[self.start : self.end]
        if (self.end - self.start) % 2:
            out += b"\x00"
        return out


@dataclass
class _Parsed:
    chunks: list[Chunk]
    size: tuple[int, int]
    alpha: bool  # simple lossless file whose bitstream says it uses alpha
    trailer: bytes  # bytes after the RIFF payload, kept as they were


@parsed_once
def _parse(data: bytes, limits: Limits) -> _Parsed:
    if not data:
        raise CorruptInput("the WebP file is empty")
    limits.check("max_bytes", len(data), "the file")
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CorruptInput("not a WebP file: bad RIFF/WEBP header")
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = 8 + riff_size
    if end > len(data):
        raise CorruptInput(
            f"WebP is truncated: the RIFF header says {end} bytes, the file has {len(data)}"
        )
    pos = 12
    chunks: list[Chunk] = []
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        chunk_end = pos + 8 + size
        if chunk_end > end:
            raise CorruptInput(f"WebP chunk {fourcc!r} at byte {pos} runs past the end of the file")
        chunks.append(Chunk(fourcc, pos, chunk_end))
        pos = chunk_end + (size & 1)
    if not chunks:
        raise CorruptInput("WebP file has no chunks")
    first = chunks[0]
    alpha = False
    payload = first.payload(data)
    if first.fourcc == b"VP8X":
        if len(payload) < 10:
            raise CorruptInput("WebP VP8X chunk is too short")
        width = int.from_bytes(payload[4:7], "little") + 1
        height = int.from_bytes(payload[7:10], "little") + 1
    elif first.fourcc == b"VP8 ":
        if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a":
            raise CorruptInput("WebP VP8 bitstream has no valid frame header")
        width = struct.unpack("<H", payload[6:8])[0] & 0x3FFF
        height = struct.unpack("<H", payload[8:10])[0] & 0x3FFF
    elif first.fourcc == b"VP8L":
        if len(payload) < 5 or payload[0] != 0x2F:
            raise CorruptInput("WebP VP8L bitstream has no valid header")
        (bits,) = struct.unpack("<I", payload[1:5])
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        alpha = bool((bits >> 28) & 1)
    else:
        raise CorruptInput(f"WebP starts with an unknown chunk {first.fourcc!r}")
    if width == 0 or height == 0:
        raise CorruptInput(f"WebP has an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise limits.exceeded(
            "max_pixels",
            width * height,
            f"image of {width}x{height} pixels exceeds the {limits.max_pixels}-pixel limit",
        )
    frames = sum(1 for c in chunks if c.fourcc == b"ANMF")
    if frames > limits.max_frames:
        raise limits.exceeded(
            "max_frames",
            frames,
            f"animation of {frames} frames exceeds the {limits.max_frames}-frame limit",
        )
    if not any(c.fourcc in (b"VP8 ", b"VP8L", b"ANMF") for c in chunks):
        raise CorruptInput("WebP has no image data")
    # A still image has one bitstream. Decoders differ on a second one: Pillow
    # shows the first of a simple file, libwebp refuses the extended file a
    # metadata write turns it into; refuse it rather than return a broken file.
    for fourcc in (b"VP8 ", b"VP8L", b"ALPH"):
        count = sum(1 for c in chunks if c.fourcc == fourcc)
        if count > 1 or (fourcc != b"ALPH" and count and frames):
            raise CorruptInput(f"WebP holds {count} {fourcc.decode().strip()} image chunks")
    if sum(1 for c in chunks if c.fourcc in (b"VP8 ", b"VP8L")) > 1:
        raise CorruptInput("WebP holds both a VP8 and a VP8L image chunk")
    return _Parsed(chunks, (width, height), alpha, data[end:])


def _exif_tiff(payload: bytes) -> tuple[int, bytes]:
    """Offset of the TIFF data in an EXIF chunk (some writers keep JPEG's Exif\\0\\0)."""
    skip = 6 if payload.startswith(b"Exif\x00") else 0
    return skip, payload[skip:]


class WebpHandler:
    name = "WebP"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.IMAGE
    capabilities = IMAGE_CAPABILITIES
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        parsed = _parse(data, limits)
        meta = Metadata(media_type=MEDIA_TYPE, size=parsed.size)
        legacy: list[FoundRecord] = []
        for chunk in parsed.chunks:
            if chunk.fourcc == b"XMP " and meta.xmp is None:
                meta.xmp = xmplib.decode_packet(chunk.payload(data))
                meta.records.extend(xmplib.read_records(meta.xmp))
            elif chunk.fourcc == b"EXIF":
                exif = read_exif(_exif_tiff(chunk.payload(data))[1])
                legacy.extend(exif.records)
                for key, value in exif.properties.items():
                    meta.properties.setdefault(key, value)
        meta.records.extend(legacy)
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        parsed = _parse(data, limits)
        chunks = parsed.chunks
        xmp_chunks = [c for c in chunks if c.fourcc == b"XMP "]
        old = xmp_chunks[0].payload(data) if xmp_chunks else None
        packet = xmplib.set_record(old, record).encode("utf-8")
        new_xmp = _chunk(b"XMP ", packet)

        # the spec's order: VP8X, ICCP, ANIM, image data, EXIF, XMP, unknown chunks
        if xmp_chunks:
            insert_after = chunks.index(xmp_chunks[0]) - 1
        else:
            insert_after = max(
                i for i, c in enumerate(chunks) if c.fourcc in _IMAGE_CHUNKS | {b"EXIF"}
            )
        body: list[bytes] = []
        if chunks[0].fourcc != b"VP8X":
            body.append(_vp8x(parsed, chunks, data))
        for i, chunk in enumerate(chunks):
            if chunk.fourcc == b"XMP ":
                pass  # one packet: ours replaces every copy
            elif chunk.fourcc == b"VP8X":
                payload = bytearray(chunk.payload(data))
                payload[0] |= FLAG_XMP
                body.append(_chunk(b"VP8X", bytes(payload)))
            elif chunk.fourcc == b"EXIF":
                skip, tiff = _exif_tiff(chunk.payload(data))
                info = read_exif(tiff)
                if info.record_spans:
                    payload = chunk.payload(data)[:skip] + blank_exif_records(tiff, info)
                    body.append(_chunk(b"EXIF", payload))
                else:
                    body.append(chunk.raw(data))
            else:
                body.append(chunk.raw(data))
            if i == insert_after:
                body.append(new_xmp)
        riff = b"WEBP" + b"".join(body)
        return b"RIFF" + struct.pack("<I", len(riff)) + riff + parsed.trailer

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the coded image, without decoding it.

        Covers the canvas size (from VP8X, or from the bitstream of a simple
        file) and, in file order, the fourcc and payload of every VP8, VP8L,
        ALPH, ANIM and ANMF chunk: the lossy or lossless bitstream, the alpha
        plane, the animation's loop and background, and every frame (its offset,
        size, timing, blending and coded data).

        Left out: the VP8X flags (write_record adds the XMP flag, or a whole VP8X
        header to a simple file), ICCP, EXIF, XMP, C2PA's ``C2PA`` chunk, unknown
        chunks, pad bytes and bytes after the RIFF payload.
        """
        parsed = _parse(data, limits)
        hasher = ContentHasher("image/webp")
        width, height = parsed.size
        hasher.add(width, height)
        view = memoryview(data)
        for chunk in parsed.chunks:
            if chunk.fourcc in _IMAGE_CHUNKS:
                hasher.add(chunk.fourcc, view[chunk.start + 8 : chunk.end])
        return hasher.digest()


def _vp8x(parsed: _Parsed, chunks: list[Chunk], data: bytes) -> bytes:
    """A VP8X header for a simple file, so it may carry metadata chunks."""
    flags = FLAG_XMP
    if parsed.alpha:
        flags |= FLAG_ALPHA
    if any(c.fourcc == b"EXIF" for c in chunks):
        flags |= FLAG_EXIF
    if any(c.fourcc == b"ICCP" for c in chunks):
        flags |= FLAG_ICC
    width, height = parsed.size
    payload = (
        bytes((flags, 0, 0, 0))
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    return _chunk(b"VP8X", payload)


def _chunk(fourcc: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) % 2 else b""
    return fourcc + struct.pack("<I", len(payload)) + payload + pad


# ------------------------------------------------------- coding, for a re-encode
# Used when a lossy WebP's quantiser cannot be read.
DEFAULT_QUALITY = 90


def riff_chunks(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    pos = start
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if body + size > end:
            return
        yield fourcc, body, body + size
        pos = body + size + (size & 1)


def coding(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[bool, int | None]:
    """(lossless, estimated quality) of a WebP: lossless if its image data is VP8L."""
    bitstreams: list[tuple[bytes, int, int]] = []
    for chunk in _parse(data, limits).chunks:
        fourcc, start, end = chunk.fourcc, chunk.start + 8, chunk.end
        if fourcc in (b"VP8 ", b"VP8L"):
            bitstreams.append((fourcc, start, end))
        elif fourcc == b"ANMF":  # an animation frame: its own chunks follow a 16-byte header
            for inner, s, e in riff_chunks(data, start + 16, end):
                if inner in (b"VP8 ", b"VP8L"):
                    bitstreams.append((inner, s, e))
    if not bitstreams:
        return False, DEFAULT_QUALITY
    if all(fourcc == b"VP8L" for fourcc, _, _ in bitstreams):
        return True, None
    fourcc, start, end = next(b for b in bitstreams if b[0] == b"VP8 ")
    q_index = _vp8_base_quantiser(data[start:end])
    if q_index is None:
        return False, DEFAULT_QUALITY
    return False, _webp_quality_from_quantiser(q_index)


class _BoolDecoder:
    """The VP8 boolean entropy decoder (RFC 6386 section 7), enough for the frame header."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 2
        self.value = int.from_bytes(buf[:2], "big") if len(buf) >= 2 else 0
        self.range = 255
        self.bit_count = 0

    def bool(self, prob: int) -> int:
        split = 1 + (((self.range - 1) * prob) >> 8)
        big_split = split << 8
        if self.value >= big_split:
            bit = 1
            self.range -= split
            self.value -= big_split
        else:
            bit = 0
            self.range = split
        while self.range < 128:
            self.value <<= 1
            self.range <<= 1
            self.bit_count += 1
            if self.bit_count == 8:
                self.bit_count = 0
                if self.pos < len(self.buf):
                    self.value |= self.buf[self.pos]
                self.pos += 1
        return bit

    def literal(self, bits: int) -> int:
        v = 0
        for _ in range(bits):
            v = (v << 1) | self.bool(128)
        return v

    def signed(self, bits: int) -> int:
        v = self.literal(bits)
        return -v if self.bool(128) else v


def _vp8_base_quantiser(frame: bytes) -> int | None:
    """The mean luma AC quantiser index (0-127) from a VP8 key frame header."""
    if len(frame) < 11 or frame[3:6] != b"\x9d\x01\x2a" or frame[0] & 1:
        return None
    first_partition = (int.from_bytes(frame[:3], "little") >> 5) & 0x7FFFF
    d = _BoolDecoder(frame[10 : 10 + first_partition])
    d.literal(1)  # colour space
    d.literal(1)  # clamping type
    segment_q: list[int] | None = None
    absolute = False
    if d.literal(1):  # segmentation enabled
        update_map = d.literal(1)
        if d.literal(1):  # update segment feature data
            absolute = bool(d.literal(1))
            segment_q = [d.signed(7) if d.literal(1) else 0 for _ in range(4)]
            for _ in range(4):  # loop filter deltas
                if d.literal(1):
                    d.signed(6)
        if update_map:
            for _ in range(3):
                if d.literal(1):
                    d.literal(8)
    d.literal(1)  # filter type
    d.literal(6)  # loop filter level
    d.literal(3)  # sharpness
    if d.literal(1) and d.literal(1):  # loop filter adjustments, updated
        for _ in range(8):
            if d.literal(1):
                d.signed(6)
    d.literal(2)  # log2 of partitions
    base = d.literal(7)
    if segment_q is None:
        return base
    values = segment_q if absolute else [base + q for q in segment_q]
    values = [min(127, max(0, v)) for v in values]
    return round(sum(values) / len(values))


def _webp_quality_from_quantiser(q_index: int) -> int:
    """Invert libwebp's quality -> quantiser curve (quant_enc.c), ignoring per-segment SNS."""
    c = max(0.0, 1.0 - q_index / 127.0)
    linear = c**3
    quality = linear * 1.5 if linear < 0.5 else (linear + 1.0) / 2.0
    return max(1, min(100, round(quality * 100)))


HANDLER = WebpHandler()
