"""Vorbis comments, the tag structure FLAC, Ogg Vorbis and Opus share.

Owns the comment list's bytes (vendor string, ``KEY=value`` entries, all
lengths little-endian 32-bit). The record is the entry ``AIGC=<json>``; keys
compare case-insensitively, as the Vorbis spec says. Entries other than the
record, ``METADATA_BLOCK_PICTURE`` included, are kept byte for byte and in
order; the record goes last.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labelers.errors import CorruptInput
from labelers.formats import FoundRecord
from labelers.formats import xmp as xmplib
from labelers.record import Record

RECORD_KEY = "AIGC"
#: entries a comment list may hold before we call it hostile
MAX_ENTRIES = 100_000


@dataclass
class Comments:
    vendor: bytes
    entries: list[bytes]
    rest: bytes  # what follows the list (Vorbis: the framing bit; Opus: padding)


def parse(body: bytes, what: str) -> Comments:
    """The comment list at the start of ``body``; CorruptInput when a length lies."""
    n = len(body)
    if n < 8:
        raise CorruptInput(f"the {what} comment header is truncated")
    (vendor_len,) = struct.unpack("<I", body[:4])
    pos = 4 + vendor_len
    if pos + 4 > n:
        raise CorruptInput(f"the {what} comment vendor string runs past the header")
    vendor = body[4:pos]
    (count,) = struct.unpack("<I", body[pos : pos + 4])
    pos += 4
    # each entry needs at least its 4-byte length: a count above that lies
    if count > (n - pos) // 4 or count > MAX_ENTRIES:
        raise CorruptInput(
            f"the {what} comment header declares {count} entries, more than it holds"
        )
    entries: list[bytes] = []
    for i in range(count):
        if pos + 4 > n:
            raise CorruptInput(f"the {what} comment entry {i} is truncated")
        (length,) = struct.unpack("<I", body[pos : pos + 4])
        if pos + 4 + length > n:
            raise CorruptInput(
                f"the {what} comment entry {i} declares {length} bytes, past its end"
            )
        entries.append(body[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return Comments(vendor, entries, body[pos:])


def build(comments: Comments) -> bytes:
    parts = [struct.pack("<I", len(comments.vendor)), comments.vendor]
    parts.append(struct.pack("<I", len(comments.entries)))
    for entry in comments.entries:
        parts += [struct.pack("<I", len(entry)), entry]
    parts.append(comments.rest)
    return b"".join(parts)


def split(entry: bytes) -> tuple[str, str] | None:
    key, sep, value = entry.partition(b"=")
    if not sep:
        return None
    return key.decode("ascii", "replace"), value.decode("utf-8", "replace")


def is_record(entry: bytes) -> bool:
    kv = split(entry)
    return kv is not None and kv[0].upper() == RECORD_KEY


def read(
    comments: Comments, prefix: str, records: list[FoundRecord], properties: dict[str, str]
) -> None:
    """Records (``<prefix><KEY>``) and the other entries as properties (pictures left out)."""
    for entry in comments.entries:
        kv = split(entry)
        if kv is None:
            continue
        key, value = kv
        if key.upper() == RECORD_KEY:
            records.append(xmplib.found_record(value, f"{prefix}{key}"))
        elif key.upper() != "METADATA_BLOCK_PICTURE":
            properties.setdefault(f"{prefix}{key.upper()}", value)
    vendor = comments.vendor.decode("utf-8", "replace")
    if vendor:
        properties.setdefault(f"{prefix}vendor", vendor)


def with_record(comments: Comments, record: Record | None) -> Comments:
    entries = [e for e in comments.entries if not is_record(e)]
    if record is not None:
        entries.append(f"{RECORD_KEY}={record.dumps()}".encode("ascii"))
    return Comments(comments.vendor, entries, comments.rest)
