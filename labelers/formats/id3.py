"""ID3v2 tags (v2.2, v2.3, v2.4): frames read and the record's ``TXXX`` frame spliced.

Owns ID3v2 bytes wherever they sit: in front of MP3 streams, in front of FLAC
files (where c2pa puts its manifest, in a ``GEOB`` frame) and inside WAV
``id3 `` chunks. The record is a ``TXXX`` frame with the description
``AIGC`` holding ``{"AIGC":{...}}``; MiniMax writes ``TXXX:aigc`` holding
``{"aigc":{...}}``, read too (descriptions compare case-insensitively).

Writing keeps every other frame byte for byte, flags included, and the
tag's version. Two things change: a v2.3 tag-level unsynchronisation is
undone (the frames are written as they decode; unsynchronisation only served
players from before 1999), and an extended header is dropped (its CRC and
restrictions describe the old frames).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from labelers.errors import CorruptInput
from labelers.formats import FoundRecord
from labelers.formats import xmp as xmplib
from labelers.record import Record

RECORD_DESCRIPTION = "AIGC"
HEADER_SIZE = 10
#: frames a tag may hold before we call it hostile (real tags hold tens)
MAX_FRAMES = 10_000
_ENCODINGS = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}
# v2.3 frame flags (second byte): compression, encryption; v2.4: compression,
# encryption, unsynchronisation, data length indicator
_V3_OPAQUE = 0x80 | 0x40
_V4_OPAQUE = 0x08 | 0x04
_V4_UNSYNC = 0x02
_V4_LENGTH = 0x01
_V4_GROUP = 0x40


@dataclass
class Frame:
    id: str
    raw: bytes  # the whole frame as stored (header and body), after tag-level de-unsync
    body: bytes  # the frame's content, frame-level unsync and length indicator removed
    opaque: bool = False  # compressed or encrypted: the body is not readable text


@dataclass
class Tag:
    version: int  # 2, 3 or 4
    start: int
    end: int  # after the tag, footer included
    frames: list[Frame] = field(default_factory=list)
    padding: int = 0
    footer: bool = False


def syncsafe(raw: bytes, what: str) -> int:
    if any(b & 0x80 for b in raw):
        raise CorruptInput(f"{what} is not a sync-safe integer (a byte has its top bit set)")
    value = 0
    for b in raw:
        value = value << 7 | b
    return value


def to_syncsafe(value: int, width: int = 4) -> bytes:
    if value >= 1 << (7 * width):
        raise CorruptInput(f"an ID3 size of {value} bytes does not fit {width} sync-safe bytes")
    return bytes((value >> (7 * i)) & 0x7F for i in reversed(range(width)))


def deunsync(data: bytes) -> bytes:
    return data.replace(b"\xff\x00", b"\xff")


def tag_size(data: bytes, pos: int = 0) -> int | None:
    """The byte length of the ID3v2 tag at ``pos`` (header and footer included), or None."""
    if data[pos : pos + 3] != b"ID3" or len(data) < pos + HEADER_SIZE:
        return None
    size = syncsafe(data[pos + 6 : pos + 10], "the ID3 tag size")
    footer = data[pos + 3] == 4 and bool(data[pos + 5] & 0x10)
    return HEADER_SIZE + size + (HEADER_SIZE if footer else 0)


def leading_tags_end(data: bytes, limit: int = 8) -> int:
    """Where the ID3v2 tags at the start of ``data`` end (0 without a tag)."""
    pos = 0
    for _ in range(limit):
        size = tag_size(data, pos)
        if size is None:
            break
        if pos + size > len(data):
            raise CorruptInput(
                f"the ID3 tag at byte {pos} declares {size} bytes, more than the file holds"
            )
        pos += size
    return pos


def parse(data: bytes, pos: int = 0) -> Tag:
    """The ID3v2 tag at ``pos``; CorruptInput when its sizes or structure lie."""
    size = tag_size(data, pos)
    if size is None:
        raise CorruptInput(f"no ID3v2 tag at byte {pos}")
    end = pos + size
    if end > len(data):
        raise CorruptInput(f"the ID3 tag at byte {pos} declares {size} bytes, more than the file")
    version, flags = data[pos + 3], data[pos + 5]
    if version not in (2, 3, 4):
        raise CorruptInput(f"ID3v2.{version} tags are not a known ID3 version")
    footer = version == 4 and bool(flags & 0x10)
    body = data[pos + HEADER_SIZE : end - (HEADER_SIZE if footer else 0)]
    if version < 4 and flags & 0x80:
        body = deunsync(body)
    if version == 2 and flags & 0x40:
        raise CorruptInput("ID3v2.2 tag uses compression, which the ID3v2.2 spec never defined")
    start = 0
    if version >= 3 and flags & 0x40:
        start = _extended_header_size(body, version)
    tag = Tag(version, pos, end, footer=footer)
    _frames(tag, body, start, tag_unsync=version == 4 and bool(flags & 0x80))
    return tag


def _extended_header_size(body: bytes, version: int) -> int:
    if len(body) < 4:
        raise CorruptInput("the ID3 extended header is truncated")
    if version == 3:
        size = struct.unpack(">I", body[:4])[0] + 4
    else:
        size = syncsafe(body[:4], "the ID3 extended header size")
    if size < 6 or size > len(body):
        raise CorruptInput(f"the ID3 extended header declares {size} bytes, more than the tag")
    return size


def _frames(tag: Tag, body: bytes, pos: int, tag_unsync: bool) -> None:
    head, id_len = (6, 3) if tag.version == 2 else (10, 4)
    n = len(body)
    while pos + head <= n:
        if body[pos] == 0:
            tag.padding = n - pos
            return
        fid = body[pos : pos + id_len]
        if not all(48 <= c <= 57 or 65 <= c <= 90 for c in fid):
            raise CorruptInput(f"ID3 frame at byte {pos} of the tag has an invalid ID {fid!r}")
        if tag.version == 2:
            size = int.from_bytes(body[pos + 3 : pos + 6], "big")
            fflags = 0
        elif tag.version == 3:
            size = struct.unpack(">I", body[pos + 4 : pos + 8])[0]
            fflags = body[pos + 9]
        else:
            size = syncsafe(body[pos + 4 : pos + 8], f"the size of ID3 frame {fid.decode()}")
            fflags = body[pos + 9]
        end = pos + head + size
        if end > n:
            raise CorruptInput(
                f"ID3 frame {fid.decode()} declares {size} bytes, more than its tag holds"
            )
        content = body[pos + head : end]
        opaque = False
        if tag.version == 3:
            opaque = bool(fflags & _V3_OPAQUE)
            if fflags & 0x20:  # grouping identity byte
                content = content[1:]
        elif tag.version == 4:
            opaque = bool(fflags & _V4_OPAQUE)
            if fflags & _V4_GROUP:
                content = content[1:]
            if fflags & _V4_LENGTH:
                content = content[4:]
            if (fflags & _V4_UNSYNC or tag_unsync) and not opaque:
                content = deunsync(content)
        tag.frames.append(Frame(fid.decode("ascii"), body[pos:end], content, opaque))
        if len(tag.frames) > MAX_FRAMES:
            raise CorruptInput(f"the ID3 tag holds more than {MAX_FRAMES} frames")
        pos = end
    tag.padding = n - pos


def _text(raw: bytes, encoding: int) -> str:
    return raw.decode(_ENCODINGS[encoding], "replace").rstrip("\x00")


def _split_terminated(raw: bytes, encoding: int) -> tuple[bytes, bytes]:
    """``raw`` split at its first terminator (two zero bytes, aligned, in UTF-16)."""
    if encoding in (1, 2):
        for i in range(0, len(raw) - 1, 2):
            if raw[i : i + 2] == b"\x00\x00":
                return raw[:i], raw[i + 2 :]
        return raw, b""
    head, _, rest = raw.partition(b"\x00")
    return head, rest


def user_text(frame: Frame) -> tuple[str, str] | None:
    """(description, value) of a TXXX (v2.2: TXX) frame; None when it is not one."""
    if frame.id not in ("TXXX", "TXX") or frame.opaque or not frame.body:
        return None
    encoding = frame.body[0]
    if encoding not in _ENCODINGS:
        return None
    desc, value = _split_terminated(frame.body[1:], encoding)
    return _text(desc, encoding), _text(value, encoding)


def text_frame(frame: Frame) -> str | None:
    """The text of a T*** frame other than TXXX (title, artist, encoder, ...)."""
    if not frame.id.startswith("T") or frame.id in ("TXXX", "TXX") or frame.opaque:
        return None
    if not frame.body or frame.body[0] not in _ENCODINGS:
        return None
    return _text(frame.body[1:], frame.body[0]).replace("\x00", "/")


def is_record_frame(frame: Frame) -> bool:
    text = user_text(frame)
    return text is not None and text[0].upper() == RECORD_DESCRIPTION


def read(tag: Tag, prefix: str, records: list[FoundRecord], properties: dict[str, str]) -> None:
    """The tag's records (``<prefix>TXXX:<description>``) and text frames as properties."""
    for frame in tag.frames:
        text = user_text(frame)
        if text is not None:
            desc, value = text
            if desc.upper() == RECORD_DESCRIPTION:
                records.append(xmplib.found_record(value, f"{prefix}TXXX:{desc}"))
            else:
                properties.setdefault(f"{prefix}TXXX:{desc}", value)
            continue
        value = text_frame(frame)
        if value is not None:
            properties.setdefault(f"{prefix}{frame.id}", value)


def record_frame(version: int, record: Record, unsync: bool = False) -> bytes:
    """The TXXX frame holding ``record`` (ASCII JSON: Latin-1 encoding, byte 0)."""
    body = b"\x00" + RECORD_DESCRIPTION.encode("ascii") + b"\x00" + record.dumps().encode("ascii")
    if version == 2:
        return b"TXX" + len(body).to_bytes(3, "big") + body
    if version == 3:
        return b"TXXX" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    # the record is ASCII: unsynchronising it changes nothing, but a tag that
    # declares every frame unsynchronised gets the frame flag to match
    return b"TXXX" + to_syncsafe(len(body)) + b"\x00" + (b"\x02" if unsync else b"\x00") + body


def rebuild(data: bytes, tag: Tag, record: Record | None) -> bytes:
    """The tag's bytes with every record frame gone and, if given, ``record`` added last."""
    frames = [f.raw for f in tag.frames if not is_record_frame(f)]
    tag_unsync = tag.version == 4 and bool(data[tag.start + 5] & 0x80)
    if record is not None:
        frames.append(record_frame(tag.version, record, tag_unsync))
    return build(tag.version, frames, tag.padding, tag.footer, tag_unsync)


def build(
    version: int, frames: list[bytes], padding: int = 0, footer: bool = False, unsync: bool = False
) -> bytes:
    body = b"".join(frames) + b"\x00" * padding
    flags = (0x10 if footer else 0) | (0x80 if unsync else 0)
    header = b"ID3" + bytes((version, 0, flags)) + to_syncsafe(len(body))
    return header + body + (b"3DI" + header[3:] if footer else b"")


def new_tag(record: Record) -> bytes:
    """A fresh ID3v2.4 tag holding only the record."""
    return build(4, [record_frame(4, record)])
