"""GIF files (still and animated): the record as an XMP application extension.

Owns GIF block bytes. Reading walks the blocks by their sub-block lengths
without LZW-decoding anything: logical screen size, frame count, XMP from the
``XMP DataXMP`` application extension, comment extensions (``gif:comment``,
and legacy ``{"AIGC":...}`` records in them). Writing replaces the XMP
extension (or inserts one before the first frame, after the global colour
table and any leading application extensions such as the NETSCAPE2.0 loop),
drops comments that held a record, and copies every other block unchanged.

The XMP extension stores the packet raw, followed by the 258-byte "magic
trailer" from the XMP specification (part 3): a GIF reader skipping the
packet as sub-blocks lands on the trailer's final zero, whatever the text.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labelers.errors import CorruptInput
from labelers.formats import (
    IMAGE_CAPABILITIES,
    Capability,
    ContentHasher,
    Kind,
    Metadata,
    comment_text,
)
from labelers.formats import xmp as xmplib
from labelers.formats.parse_once import parsed_once
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

MEDIA_TYPE = "image/gif"
XMP_APP_ID = b"XMP DataXMP"
MAGIC_TRAILER = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"

EXTENSION, IMAGE, TRAILER = 0x21, 0x2C, 0x3B
APPLICATION, COMMENT, GRAPHIC_CONTROL = 0xFF, 0xFE, 0xF9


@dataclass
class Block:
    kind: int  # EXTENSION or IMAGE
    label: int  # extension label (0 for images)
    start: int
    end: int
    data_start: int  # first sub-block (after the identifier for application extensions)
    app_id: bytes = b""


@dataclass
class _Parsed:
    header_end: int  # after the logical screen descriptor and global colour table
    blocks: list[Block]
    size: tuple[int, int]


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    n = len(data)
    while True:
        if pos >= n:
            raise CorruptInput("GIF is truncated inside a data block")
        length = data[pos]
        pos += 1 + length
        if length == 0:
            return pos


def _pixel_check(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise limits.exceeded(
            "max_pixels",
            width * height,
            f"image of {width}x{height} pixels exceeds the {limits.max_pixels}-pixel limit",
        )


@parsed_once
def _parse(data: bytes, limits: Limits) -> _Parsed:
    if not data:
        raise CorruptInput("the GIF file is empty")
    limits.check("max_bytes", len(data), "the file")
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise CorruptInput("not a GIF file: bad signature")
    if len(data) < 13:
        raise CorruptInput("GIF is truncated inside its logical screen descriptor")
    width, height, packed = struct.unpack("<HHB", data[6:11])
    if width == 0 or height == 0:
        raise CorruptInput(f"GIF has an empty size {width}x{height}")
    _pixel_check(width, height, limits)
    pos = 13
    if packed & 0x80:
        pos += 3 << ((packed & 7) + 1)
    header_end = pos
    n = len(data)
    blocks: list[Block] = []
    frames = 0
    while True:
        if pos >= n:
            if frames:  # a missing trailer alone is common and harmless
                break
            raise CorruptInput("GIF is truncated: it ends before any image")
        kind = data[pos]
        if kind == TRAILER:
            break
        if kind == EXTENSION:
            if pos + 2 > n:
                raise CorruptInput("GIF is truncated inside an extension")
            label = data[pos + 1]
            data_start = pos + 2
            app_id = b""
            if label == APPLICATION and pos + 3 <= n and data[pos + 2] == 11:
                app_id = data[pos + 3 : pos + 14]
                data_start = pos + 14
            end = _skip_sub_blocks(data, data_start)
            blocks.append(Block(kind, label, pos, end, data_start, app_id))
        elif kind == IMAGE:
            if pos + 10 > n:
                raise CorruptInput("GIF is truncated inside an image descriptor")
            fw, fh, fpacked = struct.unpack("<HHB", data[pos + 5 : pos + 10])
            _pixel_check(fw, fh, limits)
            p = pos + 10
            if fpacked & 0x80:
                p += 3 << ((fpacked & 7) + 1)
            end = _skip_sub_blocks(data, p + 1)  # after the LZW minimum code size
            blocks.append(Block(kind, 0, pos, end, p))
            frames += 1
            if frames > limits.max_frames:
                raise limits.exceeded(
                    "max_frames", frames, f"animation has more than {limits.max_frames} frames"
                )
        else:
            raise CorruptInput(f"GIF is corrupt: unknown block 0x{kind:02X} at byte {pos}")
        pos = end
    if not frames:
        raise CorruptInput("GIF has no image")
    return _Parsed(header_end, blocks, (width, height))


def _sub_block_text(data: bytes, block: Block) -> bytes:
    out = bytearray()
    pos = block.data_start
    while data[pos]:
        out += data[pos + 1 : pos + 1 + data[pos]]
        pos += 1 + data[pos]
    return bytes(out)


def _xmp_packet(data: bytes, block: Block) -> bytes:
    raw = data[block.data_start : block.end]
    if raw.endswith(MAGIC_TRAILER):
        return raw[: -len(MAGIC_TRAILER)]
    # a writer that got the trailer wrong: cut after the packet's end marker
    end = raw.rfind(b"<?xpacket end")
    if end >= 0:
        close = raw.find(b"?>", end)
        return raw[: close + 2] if close >= 0 else raw
    return raw.rstrip(b"\x00\x01")


def _comment(data: bytes, block: Block) -> str:
    return comment_text(_sub_block_text(data, block))


class GifHandler:
    name = "GIF"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.IMAGE
    # 256-colour palettes (and frame-difference coding) quantise a watermark away
    capabilities = IMAGE_CAPABILITIES - {Capability.WATERMARK}
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if data.startswith((b"GIF87a", b"GIF89a")) else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        parsed = _parse(data, limits)
        meta = Metadata(media_type=MEDIA_TYPE, size=parsed.size)
        comments: list[str] = []
        for block in parsed.blocks:
            if block.app_id == XMP_APP_ID and meta.xmp is None:
                meta.xmp = xmplib.decode_packet(_xmp_packet(data, block))
                meta.records.extend(xmplib.read_records(meta.xmp))
            elif block.kind == EXTENSION and block.label == COMMENT:
                comments.append(_comment(data, block))
        xmplib.read_comments(meta, comments, "gif:comment", "gif:comment")
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        parsed = _parse(data, limits)
        blocks = parsed.blocks
        xmp_blocks = [b for b in blocks if b.app_id == XMP_APP_ID]
        old = _xmp_packet(data, xmp_blocks[0]) if xmp_blocks else None
        packet = xmplib.set_record(old, record).encode("utf-8")
        new_block = b"\x21\xff\x0b" + XMP_APP_ID + packet + MAGIC_TRAILER

        first_image = next(i for i, b in enumerate(blocks) if b.kind == IMAGE)
        if xmp_blocks and blocks.index(xmp_blocks[0]) < first_image:
            insert_at = blocks.index(xmp_blocks[0])
        else:
            # after the leading application extensions (NETSCAPE2.0 loop first, as
            # some decoders expect), before the first frame's graphic control
            insert_at = 0
            while insert_at < first_image and blocks[insert_at].label == APPLICATION:
                insert_at += 1

        # extensions need GIF89a; upgrading the version changes nothing else
        parts = [b"GIF89a", data[6 : parsed.header_end]]
        for i, block in enumerate(blocks):
            if i == insert_at:
                parts.append(new_block)
            if block.app_id == XMP_APP_ID:
                continue
            if (
                block.kind == EXTENSION
                and block.label == COMMENT
                and xmplib.looks_like_record(_comment(data, block))
            ):
                continue  # a legacy record: the XMP one replaces it
            parts.append(data[block.start : block.end])
        parts.append(data[blocks[-1].end :] or b"\x3b")
        return b"".join(parts)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the coded image, without LZW-decoding it.

        Covers the logical screen descriptor and global colour table, then in
        file order every image (descriptor, local colour table, LZW data) and
        every extension other than application and comment extensions: graphic
        control (delay, disposal, transparency) and plain-text extensions.

        Left out: the version in the signature (write_record turns GIF87a into
        GIF89a), application extensions (XMP, C2PA's ``C2PA_GIF`` manifest, also
        the NETSCAPE2.0 loop count and ICC profiles), comment extensions, and
        whatever follows the last block (trailer, junk).
        """
        parsed = _parse(data, limits)
        hasher = ContentHasher("image/gif")
        view = memoryview(data)
        hasher.add(view[6 : parsed.header_end])
        for block in parsed.blocks:
            if block.kind == EXTENSION and block.label in (APPLICATION, COMMENT):
                continue
            hasher.add(view[block.start : block.end])
        return hasher.digest()


HANDLER = GifHandler()
