"""TIFF files, and the TIFF structure inside EXIF blocks of other containers.

Owns TIFF bytes in both directions: reading IFD0 (size, XMP tag 700, EXIF
text fields) and writing the record as XMP in tag 700 without touching pixel
data. EXIF blocks in JPEG, PNG (``eXIf``) and WebP are TIFF structures too, so
:func:`read_exif` / :func:`blank_exif_records` here serve those modules.

Writing: when the new XMP packet fits where the old one was, it is written in
place (the packet's padding absorbs the difference); otherwise the packet is
appended and IFD0 is rewritten at the end of the file with tag 700 pointing to
it, and the header offset is updated. Strips, tiles and every other IFD stay
where they were. BigTIFF is not supported.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from labelers.errors import CorruptInput, UnsupportedMedia
from labelers.formats import IMAGE_CAPABILITIES, ContentHasher, FoundRecord, Kind, Metadata
from labelers.formats import xmp as xmplib
from labelers.formats.parse_once import parsed_once
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "image/tiff"

TAG_XMP = 700
TAG_EXIF_IFD = 0x8769
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
# EXIF text fields the verifier looks at, as (IFD, tag) -> property name
_IFD0_TEXT = {
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0131: "Software",
    0x013B: "Artist",
    0x9C9C: "XPComment",
}
_EXIF_TEXT = {0x9286: "UserComment"}
# fields where a legacy {"AIGC":...} record has been seen; replaced on write
_RECORD_FIELDS = {"ImageDescription", "UserComment", "XPComment"}
#: tags that say how an image's data decodes into pixels (TIFF 6.0 baseline and
#: extensions); the content digest covers these and the data they point to
IMAGE_STRUCTURE_TAGS = frozenset(
    {
        254,
        255,
        256,
        257,
        258,
        259,
        262,
        263,
        264,
        265,
        266,
        274,
        277,
        278,
        284,
        290,
        291,
        292,
        293,
        301,
        317,
        318,
        319,
        320,
        321,
        322,
        323,
        332,
        334,
        338,
        339,
        340,
        341,
        347,
        512,
        529,
        530,
        531,
        532,
    }
)
#: (offsets tag, byte counts tag) pairs that locate image data: strips, tiles,
#: and old-style JPEG streams
_DATA_TAGS = ((273, 279), (324, 325), (513, 514))


@dataclass
class Entry:
    """One IFD entry; ``value_pos`` is where its value bytes start in the file."""

    tag: int
    type: int
    count: int
    pos: int  # position of the 12-byte entry
    value_pos: int
    size: int  # value size in bytes (0 for an unknown type)


@dataclass
class Ifd:
    offset: int
    entries: list[Entry]
    next_offset: int

    def get(self, tag: int) -> Entry | None:
        return next((e for e in self.entries if e.tag == tag), None)


def byte_order(data: bytes) -> str:
    """``<`` or ``>`` from a TIFF header; CorruptInput / UnsupportedMedia otherwise."""
    if len(data) < 8:
        raise CorruptInput("TIFF data is truncated: shorter than its 8-byte header")
    if data[:2] == b"II":
        bo = "<"
    elif data[:2] == b"MM":
        bo = ">"
    else:
        raise CorruptInput("TIFF data does not start with a byte-order mark (II or MM)")
    version = struct.unpack(bo + "H", data[2:4])[0]
    if version == 43:
        raise UnsupportedMedia("BigTIFF files are not supported")
    if version != 42:
        raise CorruptInput(f"TIFF header has version {version}, expected 42")
    return bo


def read_ifd(data: bytes, offset: int, bo: str) -> Ifd:
    """Parse the IFD at ``offset``; CorruptInput if it runs past the end of data."""
    if offset < 8 or offset + 2 > len(data):
        raise CorruptInput(f"TIFF IFD offset {offset} is outside the file")
    (count,) = struct.unpack(bo + "H", data[offset : offset + 2])
    end = offset + 2 + 12 * count
    if end + 4 > len(data):
        raise CorruptInput(f"TIFF IFD at offset {offset} with {count} entries runs past the end")
    entries = []
    for i in range(count):
        pos = offset + 2 + 12 * i
        tag, typ, n = struct.unpack(bo + "HHI", data[pos : pos + 8])
        size = _TYPE_SIZES.get(typ, 0) * n
        if size <= 4:
            value_pos = pos + 8
        else:
            (value_pos,) = struct.unpack(bo + "I", data[pos + 8 : pos + 12])
        entries.append(Entry(tag, typ, n, pos, value_pos, size))
    (next_offset,) = struct.unpack(bo + "I", data[end : end + 4])
    return Ifd(offset, entries, next_offset)


def value_bytes(data: bytes, entry: Entry) -> bytes:
    if entry.value_pos + entry.size > len(data):
        raise CorruptInput(f"TIFF tag {entry.tag} value runs past the end of the data")
    return data[entry.value_pos : entry.value_pos + entry.size]


def int_value(data: bytes, entry: Entry, bo: str) -> int:
    raw = value_bytes(data, entry)
    if entry.type == 3 and entry.count >= 1:
        return struct.unpack(bo + "H", raw[:2])[0]
    if entry.type in (4, 13) and entry.count >= 1:
        return struct.unpack(bo + "I", raw[:4])[0]
    raise CorruptInput(f"TIFF tag {entry.tag} is not an integer")


# ----------------------------------------------------------------------- EXIF
@dataclass
class ExifInfo:
    properties: dict[str, str] = field(default_factory=dict)
    records: list[FoundRecord] = field(default_factory=list)
    # (start, end) byte ranges, inside the TIFF block, of values holding records
    record_spans: list[tuple[int, int]] = field(default_factory=list)


def _decode_text(name: str, raw: bytes, bo: str) -> str:
    if name == "XPComment":  # UCS-2 little-endian, whatever the byte order
        return raw.decode("utf-16-le", errors="replace").rstrip("\x00")
    if name == "UserComment":
        head, body = raw[:8], raw[8:]
        if head.startswith(b"UNICODE"):
            # the EXIF byte order, though some writers ignore it: trust a BOM or NUL pattern
            enc = "utf-16-be" if bo == ">" else "utf-16-le"
            if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
                enc = "utf-16"
            elif len(body) >= 2 and body[0] == 0 and body[1] != 0:
                enc = "utf-16-be"
            elif len(body) >= 2 and body[1] == 0 and body[0] != 0:
                enc = "utf-16-le"
            return body.decode(enc, errors="replace").strip("\x00 ")
        if head.startswith((b"ASCII", b"JIS", b"\x00" * 8)):
            raw = body
        return raw.decode("utf-8", errors="replace").strip("\x00 ")
    text = raw.split(b"\x00", 1)[0]
    return text.decode("utf-8", errors="replace").strip()


def read_exif(tiff: bytes, strict: bool = False) -> ExifInfo:
    """Text properties and legacy records of an EXIF/TIFF block.

    A broken EXIF block inside another container yields what could be read
    (the image itself is still fine); with ``strict`` the error propagates.
    """
    info = ExifInfo()
    try:
        bo = byte_order(tiff)
        ifd0 = read_ifd(tiff, struct.unpack(bo + "I", tiff[4:8])[0], bo)
        fields = [(e, _IFD0_TEXT[e.tag]) for e in ifd0.entries if e.tag in _IFD0_TEXT]
        exif_entry = ifd0.get(TAG_EXIF_IFD)
        if exif_entry is not None:
            exif_ifd = read_ifd(tiff, int_value(tiff, exif_entry, bo), bo)
            fields += [(e, _EXIF_TEXT[e.tag]) for e in exif_ifd.entries if e.tag in _EXIF_TEXT]
        for entry, name in fields:
            try:
                raw = value_bytes(tiff, entry)
            except CorruptInput:
                if strict:
                    raise
                continue
            text = _decode_text(name, raw, bo)
            if not text:
                continue
            info.properties[f"exif:{name}"] = text
            if name in _RECORD_FIELDS and xmplib.looks_like_record(text):
                info.records.append(xmplib.found_record(text, f"exif:{name}"))
                info.record_spans.append((entry.value_pos, entry.value_pos + entry.size))
    except (CorruptInput, UnsupportedMedia, struct.error):
        if strict:
            raise
    return info


def blank_exif_records(tiff: bytes, info: ExifInfo) -> bytes:
    """``tiff`` with the values that held records zeroed (an empty string to readers).

    Zeroing in place keeps every offset of the block valid, so MakerNotes and
    other offset-laden data survive, which a re-serialisation would not promise.
    """
    if not info.record_spans:
        return tiff
    out = bytearray(tiff)
    for start, end in info.record_spans:
        out[start:end] = bytes(end - start)
    return bytes(out)


# ----------------------------------------------------------------------- TIFF
def _check_size(data: bytes, limits: Limits) -> None:
    if not data:
        raise CorruptInput("the TIFF file is empty")
    limits.check("max_bytes", len(data), "the file")


@parsed_once
def _parse(data: bytes, limits: Limits) -> tuple[str, Ifd, tuple[int, int]]:
    _check_size(data, limits)
    bo = byte_order(data)
    ifd0 = read_ifd(data, struct.unpack(bo + "I", data[4:8])[0], bo)
    width_e, height_e = ifd0.get(256), ifd0.get(257)
    if width_e is None or height_e is None:
        raise CorruptInput("TIFF IFD0 has no ImageWidth/ImageLength")
    size = (int_value(data, width_e, bo), int_value(data, height_e, bo))
    if size[0] * size[1] > limits.max_pixels:
        raise limits.exceeded(
            "max_pixels",
            size[0] * size[1],
            f"image of {size[0]}x{size[1]} pixels exceeds the {limits.max_pixels}-pixel limit",
        )
    if size[0] == 0 or size[1] == 0:
        raise CorruptInput(f"TIFF image has an empty size {size[0]}x{size[1]}")
    for entry in ifd0.entries:
        if entry.value_pos + entry.size > len(data):
            raise CorruptInput(
                f"TIFF is truncated: the value of tag {entry.tag} runs past the end of the file"
            )
    _check_image_data(data, bo, ifd0)
    return bo, ifd0, size


def _int_array(data: bytes, entry: Entry, bo: str) -> list[int]:
    raw = value_bytes(data, entry)
    code = {3: "H", 4: "I", 13: "I"}.get(entry.type)
    if code is None:
        raise CorruptInput(f"TIFF tag {entry.tag} is not an integer array")
    return list(struct.unpack(f"{bo}{entry.count}{code}", raw))


def _check_image_data(data: bytes, bo: str, ifd0: Ifd) -> None:
    """Strips or tiles of IFD0 must lie inside the file (a cut-off file fails here)."""
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        offsets_e, counts_e = ifd0.get(offsets_tag), ifd0.get(counts_tag)
        if offsets_e is None or counts_e is None:
            continue
        offsets, counts = _int_array(data, offsets_e, bo), _int_array(data, counts_e, bo)
        if len(offsets) != len(counts):
            raise CorruptInput("TIFF strip/tile offsets and byte counts differ in number")
        if any(o + c > len(data) for o, c in zip(offsets, counts, strict=True)):
            raise CorruptInput("TIFF is truncated: image data runs past the end of the file")
        return
    raise CorruptInput("TIFF IFD0 has no strip or tile offsets")


class TiffHandler:
    name = "TIFF"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.IMAGE
    capabilities = IMAGE_CAPABILITIES
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if data.startswith((b"II*\x00", b"MM\x00*")) else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        _, ifd0, size = _parse(data, limits)
        meta = Metadata(media_type=MEDIA_TYPE, size=size)
        xmp_entry = ifd0.get(TAG_XMP)
        if xmp_entry is not None:
            meta.xmp = xmplib.decode_packet(value_bytes(data, xmp_entry))
            meta.records.extend(xmplib.read_records(meta.xmp))
        exif = read_exif(data)
        meta.records.extend(exif.records)
        meta.properties.update(exif.properties)
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        bo, ifd0, _ = _parse(data, limits)
        data = blank_exif_records(data, read_exif(data))
        xmp_entry = ifd0.get(TAG_XMP)
        old = value_bytes(data, xmp_entry) if xmp_entry is not None else None
        packet = xmplib.set_record(old, record, padding=0).encode("utf-8")
        if xmp_entry is not None and xmp_entry.size > 4 and len(packet) <= xmp_entry.size:
            # fits where the old packet was: pad it to the same length, touch nothing else
            padded = xmplib.set_record(old, record, padding=xmp_entry.size - len(packet))
            packet = padded.encode("utf-8")
            out = bytearray(data)
            out[xmp_entry.value_pos : xmp_entry.value_pos + len(packet)] = packet
            return bytes(out)
        packet = xmplib.set_record(old, record).encode("utf-8")
        return _relocate_ifd0(data, bo, ifd0, packet)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the coded image of every page, without decoding pixels.

        Covers the byte order and, for each IFD of the main chain (IFD0 and the
        pages after it, in order): tag, type, count and value of each image
        structure tag (:data:`IMAGE_STRUCTURE_TAGS`: size, samples, compression,
        photometric, predictor, orientation, colour map, tile/strip layout,
        JPEG tables, YCbCr, ...), then the bytes of every strip, tile or old-style
        JPEG stream the IFD points to, by content, not by offset.

        Left out: where things sit in the file (IFD and data offsets; write_record
        and C2PA move IFD0 to the end), and every other tag: XMP (700), C2PA's
        manifest (tag 52545), EXIF/GPS IFDs, ICC profile, IPTC, Photoshop, text
        fields (ImageDescription, Software, Artist, ...), resolution; IFDs with no
        image structure tag at all (c2pa appends one holding only its manifest to
        a multi-page file). SubIFDs (reduced-resolution copies, tag 330) are not
        followed.
        """
        bo, ifd, _ = _parse(data, limits)
        hasher = ContentHasher("image/tiff")
        hasher.add(bo)
        view = memoryview(data)
        seen: set[int] = set()
        while True:
            seen.add(ifd.offset)
            if len(seen) > limits.max_pages:
                raise limits.exceeded(
                    "max_pages", len(seen), f"TIFF has more than {limits.max_pages} pages"
                )
            image_entries = [e for e in ifd.entries if e.tag in IMAGE_STRUCTURE_TAGS]
            if image_entries:
                hasher.add(b"IFD")
            # else not an image: c2pa appends an IFD holding only its manifest tag to
            # a multi-page file's chain, and such an IFD must not count as a page
            for entry in image_entries:
                hasher.add(entry.tag, entry.type, entry.count, value_bytes(data, entry))
            for offsets_tag, counts_tag in _DATA_TAGS:
                offsets_e, counts_e = ifd.get(offsets_tag), ifd.get(counts_tag)
                if offsets_e is None or counts_e is None:
                    continue
                offsets = _int_array(data, offsets_e, bo)
                counts = _int_array(data, counts_e, bo)
                if len(offsets) != len(counts):
                    raise CorruptInput("TIFF data offsets and byte counts differ in number")
                hasher.add(offsets_tag)
                for offset, count in zip(offsets, counts, strict=True):
                    if offset + count > len(data):
                        raise CorruptInput(
                            "TIFF is truncated: image data runs past the end of the file"
                        )
                    hasher.add(view[offset : offset + count])
            if ifd.next_offset == 0 or ifd.next_offset in seen:
                break  # a loop back to an earlier IFD ends the chain, as in libtiff
            ifd = read_ifd(data, ifd.next_offset, bo)
        return hasher.digest()


def _relocate_ifd0(data: bytes, bo: str, ifd0: Ifd, packet: bytes) -> bytes:
    """Append ``packet`` and a copy of IFD0 whose tag 700 points to it."""
    out = bytearray(data)
    if len(out) % 2:
        out.append(0)  # TIFF values and IFDs start on word boundaries
    packet_pos = len(out)
    out += packet
    if len(out) % 2:
        out.append(0)
    ifd_pos = len(out)
    new_entry = struct.pack(bo + "HHII", TAG_XMP, 1, len(packet), packet_pos)
    raw_entries = [(e.tag, data[e.pos : e.pos + 12]) for e in ifd0.entries if e.tag != TAG_XMP]
    raw_entries.append((TAG_XMP, new_entry))
    raw_entries.sort(key=lambda item: item[0])  # TIFF requires ascending tags
    out += struct.pack(bo + "H", len(raw_entries))
    for _, raw in raw_entries:
        out += raw
    out += struct.pack(bo + "I", ifd0.next_offset)
    out[4:8] = struct.pack(bo + "I", ifd_pos)
    return bytes(out)


# ------------------------------------------------------- carried through a re-encode

# structure tags the encoder writes from the pixels; copying them would lie
ENCODER_TAGS = {
    254,
    255,
    256,
    257,
    258,
    259,
    262,
    273,
    277,
    278,
    279,
    284,
    317,
    320,
    322,
    323,
    324,
    325,
    330,
    338,
    339,
    347,
    34665,
    34853,
    40965,
    513,
    514,
    530,
    532,
}


def raw_value(data: bytes, wanted: int) -> bytes | None:
    """The stored bytes of tag ``wanted`` in a classic TIFF's first IFD."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    endian = "<" if data[:2] == b"II" else ">"
    first = struct.unpack(endian + "L", data[4:8])[0]
    if first + 2 > len(data):
        return None
    (count,) = struct.unpack(endian + "H", data[first : first + 2])
    for i in range(first + 2, min(first + 2 + 12 * count, len(data) - 11), 12):
        tag, kind, n = struct.unpack(endian + "HHL", data[i : i + 8])
        if tag != wanted:
            continue
        size = _TYPE_SIZES.get(kind, 1) * n
        if size <= 4:
            return data[i + 8 : i + 8 + size]
        offset = struct.unpack(endian + "L", data[i + 8 : i + 12])[0]
        return data[offset : offset + size] if offset + size <= len(data) else None
    return None


def tags_to_carry(im: Any, data: bytes) -> dict[int, tuple[Any, int]]:
    """Descriptive tags of the first page; EXIF and GPS sub-IFDs as dicts."""
    tags: dict[int, tuple[Any, int]] = {}
    tag_v2 = getattr(im, "tag_v2", None)
    if tag_v2 is None:
        return tags
    for key in list(tag_v2.keys()):
        if key in ENCODER_TAGS or key in (34675, 700):  # ICC, XMP: own fields
            continue
        value, tagtype = tag_v2[key], tag_v2.tagtype.get(key, 0)
        if key == 33723 and tagtype not in (1, 7):
            # IPTC-NAA stored as LONG words (exiftool, Photoshop): Pillow's
            # reader keeps only the first word and its encoder takes bytes, so
            # the block is read from the file as stored
            raw = raw_value(data, key)
            if raw is None:
                continue
            value, tagtype = raw, 7  # UNDEFINED
        tags[key] = (value, tagtype)
    exif = im.getexif()
    for pointer in (0x8769, 0x8825):  # EXIF (camera data) and GPS sub-IFDs
        if pointer in tag_v2:
            sub = dict(exif.get_ifd(pointer))
            if sub:
                tags[pointer] = (sub, 0)
    return tags


def add_sub_ifds(data: bytes, subs: dict[int, dict]) -> bytes:
    """Append EXIF/GPS sub-IFDs to a classic TIFF and point its first IFD at them.

    Pillow's libtiff path (every compressed TIFF) cannot write sub-IFDs, so
    they are added after encoding: each sub-IFD goes at the end of the file,
    and the first IFD is rewritten after them with the pointer entries added
    (its out-of-line values stay where they are).
    """
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return data  # BigTIFF or unknown: leave as encoded
    endian = "<" if data[:2] == b"II" else ">"
    first = struct.unpack(endian + "L", data[4:8])[0]
    (count,) = struct.unpack(endian + "H", data[first : first + 2])
    end = first + 2 + 12 * count
    entries = {
        struct.unpack(endian + "H", data[i : i + 2])[0]: data[i : i + 12]
        for i in range(first + 2, end, 12)
    }
    next_ifd = data[end : end + 4]
    out = bytearray(data)
    for tag, values in sorted(subs.items()):
        if len(out) % 2:
            out += b"\x00"
        sub = ImageFileDirectory_v2(ifh=data[:8])
        for key, value in values.items():
            sub[key] = value
        offset = len(out)
        out += sub.tobytes(offset)
        entries[tag] = struct.pack(endian + "HHLL", tag, 4, 1, offset)  # LONG offset
    if len(out) % 2:
        out += b"\x00"
    new_first = len(out)
    out += struct.pack(endian + "H", len(entries))
    out += b"".join(entries[tag] for tag in sorted(entries))
    out += next_ifd
    out[4:8] = struct.pack(endian + "L", new_first)
    return bytes(out)


HANDLER = TiffHandler()
