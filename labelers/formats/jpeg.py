"""JPEG files: the record as XMP in APP1, read and written by splicing segments.

Owns JPEG marker-segment bytes. Reading walks the segments up to the first
scan (SOS) and never decodes pixels: size from the frame header, XMP from the
``http://ns.adobe.com/xap/1.0/`` APP1, EXIF text fields (and legacy
``{"AIGC":...}`` records in UserComment / ImageDescription / XPComment), and
COM comments. Writing replaces the main XMP segment (or inserts one after
APP0/EXIF), zeroes legacy EXIF records in place and drops COM segments that
held one, and copies every other byte (EXIF, ICC, MPF, quantisation and
Huffman tables, entropy-coded data) unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labelers.errors import CorruptInput, LimitExceeded
from labelers.formats import (
    IMAGE_CAPABILITIES,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
    comment_text,
)
from labelers.formats import xmp as xmplib
from labelers.formats.parse_once import parsed_once
from labelers.formats.tiff import blank_exif_records, read_exif
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "image/jpeg"

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
EXIF_HEADER = b"Exif\x00"  # followed by \x00 (or, from a few writers, \xff)
MPF_HEADER = b"MPF\x00"
# a segment's length field counts itself: 65535 - 2 bytes of payload at most
MAX_PAYLOAD = 65533
MAX_XMP_PACKET = MAX_PAYLOAD - len(XMP_HEADER)

APP0, APP1, APP2, COM, SOS, EOI = 0xE0, 0xE1, 0xE2, 0xFE, 0xDA, 0xD9
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


@dataclass
class Segment:
    marker: int
    start: int  # first byte of the marker (including fill bytes)
    payload_start: int  # after the length field
    end: int

    def payload(self, data: bytes) -> bytes:
        return data[self.payload_start : self.end]


@dataclass
class _Parsed:
    segments: list[Segment]  # everything between SOI and SOS
    scan_start: int  # where the SOS marker starts; the rest is copied verbatim
    size: tuple[int, int]


@parsed_once
def _parse(data: bytes, limits: Limits) -> _Parsed:
    if not data:
        raise CorruptInput("the JPEG file is empty")
    limits.check("max_bytes", len(data), "the file")
    if not data.startswith(b"\xff\xd8"):
        raise CorruptInput("not a JPEG file: missing the SOI marker")
    n = len(data)
    pos = 2
    segments: list[Segment] = []
    size: tuple[int, int] | None = None
    while True:
        if pos >= n:
            raise CorruptInput("JPEG is truncated: it ends before the image data (no SOS)")
        if data[pos] != 0xFF:
            raise CorruptInput(f"JPEG is corrupt: expected a marker at byte {pos}")
        start = pos
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise CorruptInput("JPEG is truncated inside a marker")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == EOI:
            raise CorruptInput("JPEG has no image data: EOI before any scan")
        if pos + 2 > n:
            raise CorruptInput("JPEG is truncated inside a segment length")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > n:
            raise CorruptInput(
                f"JPEG segment 0x{marker:02X} at byte {start} runs past the end of the file"
            )
        if marker in _SOF:
            if length < 8:
                raise CorruptInput("JPEG frame header is too short")
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            size = (width, height)
            if width * height > limits.max_pixels:
                raise limits.exceeded(
                    "max_pixels",
                    width * height,
                    f"image of {width}x{height} pixels exceeds the {limits.max_pixels}-pixel limit",
                )
        if marker == SOS:
            if size is None:
                raise CorruptInput("JPEG has a scan but no frame header (SOF)")
            if pos + length >= n:
                raise CorruptInput("JPEG is truncated: no entropy-coded data after the scan header")
            # 0xFF 0xD9 cannot occur inside entropy-coded data (0xFF is stuffed), so a
            # file without it after the first scan was cut off; data appended after
            # the EOI (motion photos, MPF images) still contains it
            if data.rfind(b"\xff\xd9", pos + length) < 0:
                raise CorruptInput("JPEG is truncated: the image data has no end (EOI) marker")
            return _Parsed(segments, start, size)
        segments.append(Segment(marker, start, pos + 2, pos + length))
        pos += length


def _is_xmp(seg: Segment, data: bytes) -> bool:
    return seg.marker == APP1 and data.startswith(XMP_HEADER, seg.payload_start)


def _is_exif(seg: Segment, data: bytes) -> bool:
    return seg.marker == APP1 and data.startswith(EXIF_HEADER, seg.payload_start)


class JpegHandler:
    name = "JPEG"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.IMAGE
    capabilities = IMAGE_CAPABILITIES
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if data.startswith(b"\xff\xd8\xff") else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        parsed = _parse(data, limits)
        meta = Metadata(media_type=MEDIA_TYPE, size=parsed.size)
        legacy: list[FoundRecord] = []
        comments: list[str] = []
        for seg in parsed.segments:
            if _is_xmp(seg, data) and meta.xmp is None:
                # the main packet; extended XMP (xmp/extension) is not read
                meta.xmp = xmplib.decode_packet(seg.payload(data)[len(XMP_HEADER) :])
                meta.records.extend(xmplib.read_records(meta.xmp))
            elif _is_exif(seg, data):
                exif = read_exif(seg.payload(data)[6:])
                legacy.extend(exif.records)
                for key, value in exif.properties.items():
                    meta.properties.setdefault(key, value)
            elif seg.marker == COM:
                comments.append(comment_text(seg.payload(data)))
        meta.records.extend(legacy)
        xmplib.read_comments(meta, comments, "jpeg:comment", "jpeg:COM")
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        parsed = _parse(data, limits)
        segments = parsed.segments
        xmp_segs = [s for s in segments if _is_xmp(s, data)]
        old_packet = xmp_segs[0].payload(data)[len(XMP_HEADER) :] if xmp_segs else None
        packet = _packet(old_packet, record)
        new_xmp = _segment(APP1, XMP_HEADER + packet)

        # Keep the old packet's position when it precedes any MPF segment (MPF
        # offsets are relative to the MPF segment, so growing a segment after it
        # would break them); otherwise go right after SOI/APP0/EXIF.
        first_mpf = next(
            (i for i, s in enumerate(segments) if s.marker == APP2 and _has(s, data, MPF_HEADER)),
            len(segments),
        )
        insert_at = 0
        if xmp_segs and segments.index(xmp_segs[0]) < first_mpf:
            insert_at = segments.index(xmp_segs[0])
        else:
            while insert_at < len(segments) and (
                segments[insert_at].marker == APP0 or _is_exif(segments[insert_at], data)
            ):
                insert_at += 1

        parts: list[bytes] = [b"\xff\xd8"]
        for i, seg in enumerate(segments):
            if i == insert_at:
                parts.append(new_xmp)
            raw = data[seg.start : seg.end]
            if _is_xmp(seg, data):
                continue  # one main packet: ours replaces every copy
            if _is_exif(seg, data):
                info = read_exif(seg.payload(data)[6:])
                if info.record_spans:
                    offset = seg.payload_start + 6 - seg.start
                    tiff = blank_exif_records(raw[offset:], info)
                    raw = raw[:offset] + tiff
            elif seg.marker == COM and xmplib.looks_like_record(comment_text(seg.payload(data))):
                continue  # a legacy record in a comment: the XMP one replaces it
            parts.append(raw)
        if insert_at >= len(segments):
            parts.append(new_xmp)
        parts.append(data[parsed.scan_start :])
        return b"".join(parts)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the coded image, without decoding it.

        Covers, in file order, every marker segment before the first scan except
        APP0-APP15 and COM (so: quantisation and Huffman tables, frame header,
        restart interval, ...), each as marker + payload, then every byte from the
        first SOS marker to the end of the file (all scans, later tables of a
        progressive file, EOI, and data after it such as MPF secondary images).

        Left out: APPn and COM segments, i.e. JFIF, EXIF (orientation included),
        XMP, ICC profiles, MPF index, C2PA's APP11 JUMBF manifest, Photoshop IRB,
        comments; and fill bytes before markers. So the digest does not move when
        the record is written or replaced, legacy EXIF/COM records are cleared, or
        a C2PA manifest is added or replaced; it moves with any change to a table
        or to the entropy-coded data.
        """
        parsed = _parse(data, limits)
        hasher = ContentHasher("image/jpeg")
        view = memoryview(data)
        for seg in parsed.segments:
            if 0xE0 <= seg.marker <= 0xEF or seg.marker == COM:
                continue
            hasher.add(bytes((seg.marker,)), view[seg.payload_start : seg.end])
        hasher.add(view[parsed.scan_start :])
        return hasher.digest()


def _has(seg: Segment, data: bytes, header: bytes) -> bool:
    return data.startswith(header, seg.payload_start)


def _packet(old: bytes | None, record: Record) -> bytes:
    packet = xmplib.set_record(old, record).encode("utf-8")
    if len(packet) > MAX_XMP_PACKET:
        # the padding is only a convenience; drop it before giving up
        packet = xmplib.set_record(old, record, padding=0).encode("utf-8")
    if len(packet) > MAX_XMP_PACKET:
        raise LimitExceeded(
            f"the XMP packet would be {len(packet)} bytes, more than the {MAX_XMP_PACKET} "
            "bytes one JPEG APP1 segment can hold"
        )
    return packet


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


# ------------------------------------------------------- carried through a re-encode


def segments_to_carry(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[bytes]:
    """APPn and COM segments that the JPEG encoder does not write itself.

    Left out: JFIF/JFXX APP0 and Adobe APP14 (the encoder writes its own,
    matching the new scan), EXIF APP1, the main XMP APP1 and ICC APP2 (kept
    through their own fields), and MPF APP2 (its offsets point at images
    after EOI that a re-encode drops).
    """
    keep: list[bytes] = []
    for seg in _parse(data, limits).segments:
        marker, body = seg.marker, seg.payload(data)
        segment = data[seg.payload_start - 4 : seg.end]  # 0xFF, marker, length, payload
        if marker == 0xFE:
            keep.append(segment)
        elif 0xE0 <= marker <= 0xEF:
            if marker == 0xE0 and body[:5] in (b"JFIF\0", b"JFXX\0"):
                continue
            if marker == 0xEE and body.startswith(b"Adobe"):
                continue
            if marker == 0xE1 and (
                body.startswith(b"Exif\0") or body.startswith(b"http://ns.adobe.com/xap/1.0/\0")
            ):
                continue
            if marker == 0xE2 and (body.startswith(b"ICC_PROFILE\0") or body.startswith(b"MPF\0")):
                continue
            keep.append(segment)
    return keep


HANDLER = JpegHandler()
