"""A ZIP package rewritten without zipfile's writer: entries that did not change
are copied byte for byte (local header, data, data descriptor), edited ones
are written fresh, and the central directory is rebuilt.

zipfile would recompress or re-timestamp what it copies; a raw copy keeps
every unchanged part (and its signature, if the package is signed per part)
exactly as it was. OOXML (DOCX/PPTX/XLSX) is the user; the bytes are ZIP's.
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from labelers.errors import CorruptInput, LimitExceeded


def rewrite(
    data: bytes,
    entries: list[tuple[str, zipfile.ZipInfo | None]],
    replaced: dict[str, bytes],
    comment: bytes,
    check: Callable[[str], object],
) -> bytes:
    """The package ``data`` with its ``entries`` in order (name, its info in
    ``data`` or None for a new one), those in ``replaced`` written with the new
    bytes. ``check(name)`` is called on each entry copied raw before it is
    copied (to inflate and refuse a damaged one)."""
    out = io.BytesIO()
    central: list[bytes] = []
    extents = []
    for name, info in entries:
        offset = out.tell()
        if name in replaced:
            header, body, cdir = _new_entry(name, replaced[name], info)
            out.write(header)
            out.write(body)
        else:
            assert info is not None, name
            if not name.endswith("/"):
                check(name)
            start, end = _extent(data, info)
            extents.append((start, end, name))
            out.write(data[start:end])
            cdir = _central_entry(info, _strip_zip64(info.extra))
        central.append(cdir(offset))
    _check_no_overlap(extents)
    start_dir = out.tell()
    for rec in central:
        out.write(rec)
    size_dir = out.tell() - start_dir
    count = len(central)
    if count > 0xFFFF or out.tell() > 0xFFFFFFFF:
        raise LimitExceeded("the package is too large to rewrite without ZIP64")
    comment = comment[:0xFFFF]
    out.write(
        struct.pack(
            "<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, size_dir, start_dir, len(comment)
        )
    )
    out.write(comment)
    return out.getvalue()


def _extent(data: bytes, info: zipfile.ZipInfo) -> tuple[int, int]:
    """Byte range of the entry's local header, data and data descriptor."""
    start = info.header_offset
    head = data[start : start + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise CorruptInput(f"package entry {info.filename!r} has no valid local header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    extra = data[start + 30 + name_len : start + 30 + name_len + extra_len]
    end = start + 30 + name_len + extra_len + info.compress_size
    if info.flag_bits & 0x8:
        zip64 = any(tag == 1 for tag, _ in _extra_fields(extra))
        size = 4 + (16 if zip64 else 8)
        if data[end : end + 4] == b"PK\x07\x08":
            size += 4
        end += size
    if end > len(data):
        raise CorruptInput(f"package entry {info.filename!r} runs past the end of the file")
    return start, end


def _extra_fields(extra: bytes) -> Iterator[tuple[int, bytes]]:
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[i : i + 4])
        yield tag, extra[i + 4 : i + 4 + size]
        i += 4 + size


def _strip_zip64(extra: bytes) -> bytes:
    # we write 32-bit sizes and offsets in the central directory, so a zip64
    # field there would be stale (and misread); everything else is kept.
    return b"".join(
        struct.pack("<HH", tag, len(body)) + body for tag, body in _extra_fields(extra) if tag != 1
    )


def _dos_time(date_time: tuple[int, ...]) -> tuple[int, int]:
    y, mo, d, h, mi, s = date_time[:6]
    y = max(1980, min(2107, y))
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


def _central_entry(info: zipfile.ZipInfo, extra: bytes) -> Any:
    # zipfile decoded the name as UTF-8 (flag bit 11) or cp437; both round-trip
    name = info.filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    dostime, dosdate = _dos_time(info.date_time)
    comment = info.comment

    def build(offset: int) -> bytes:
        return (
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                (info.create_system << 8) | (info.create_version & 0xFF),
                info.extract_version,
                info.flag_bits,
                info.compress_type,
                dostime,
                dosdate,
                info.CRC,
                info.compress_size,
                info.file_size,
                len(name),
                len(extra),
                len(comment),
                0,
                info.internal_attr,
                info.external_attr,
                offset,
            )
            + name
            + extra
            + comment
        )

    return build


def _new_entry(name: str, data: bytes, old: zipfile.ZipInfo | None) -> tuple[bytes, bytes, Any]:
    method = old.compress_type if old is not None else zipfile.ZIP_DEFLATED
    if method == zipfile.ZIP_DEFLATED:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = comp.compress(data) + comp.flush()
    else:
        body = data
    info = zipfile.ZipInfo(name, old.date_time if old is not None else (1980, 1, 1, 0, 0, 0))
    info.compress_type = method
    info.CRC = zlib.crc32(data)
    info.file_size = len(data)
    info.compress_size = len(body)
    info.flag_bits = 0 if name.isascii() else 0x800
    info.create_system = old.create_system if old is not None else 0
    info.create_version = 20
    info.extract_version = 20
    info.external_attr = old.external_attr if old is not None else 0
    encoded = name.encode("utf-8")
    dostime, dosdate = _dos_time(info.date_time)
    header = struct.pack(
        "<4s5H3L2H",
        b"PK\x03\x04",
        20,
        info.flag_bits,
        method,
        dostime,
        dosdate,
        info.CRC,
        len(body),
        len(data),
        len(encoded),
        0,
    )
    return header + encoded, body, _central_entry(info, b"")


def _check_no_overlap(extents: list[tuple[int, int, str]]) -> None:
    extents.sort()
    for (_, end, name), (start, _, other) in itertools.pairwise(extents):
        if start < end:
            raise CorruptInput(f"package entries {name!r} and {other!r} overlap (a crafted ZIP)")
