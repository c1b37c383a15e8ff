"""FLAC files: the record as the Vorbis comment ``AIGC=<json>``, by block splicing.

Owns FLAC's metadata blocks: ``STREAMINFO`` (rate, channels, sample count,
read for the limits without decoding), ``VORBIS_COMMENT`` (the record and
the tags), ``PICTURE``, ``SEEKTABLE``, ``PADDING`` and the rest, and where the
coded frames start. An ID3v2 tag in front of ``fLaC`` (c2pa keeps its
manifest there, in a ``GEOB`` frame; some taggers put tags there) is kept.

Writing changes only the first comment block (the record replaced or
added, every other entry kept), takes the size change out of a ``PADDING``
block when one is large enough (so the frames stay where they were), removes
records from further comment blocks and the ID3 tag, and copies the other
blocks and the frames byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labelers.errors import CorruptInput, LimitExceeded
from labelers.formats import (
    AUDIO_CAPABILITIES,
    Capability,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
    id3,
)
from labelers.formats import vorbis_comment as vc
from labelers.formats.parse_once import parsed_once
from labelers.limits import DEFAULT_LIMITS, Limits, check_audio
from labelers.record import Record

MEDIA_TYPE = "audio/flac"
STREAMINFO, PADDING, SEEKTABLE, VORBIS_COMMENT = 0, 1, 3, 4
MAX_BLOCKS = 10_000
MAX_BLOCK_BODY = (1 << 24) - 1


@dataclass
class Block:
    type: int
    start: int
    end: int

    def body(self, data: bytes) -> bytes:
        return data[self.start + 4 : self.end]


@dataclass
class Layout:
    tags: list[id3.Tag]  # ID3v2 tags before fLaC
    marker: int  # where fLaC is
    blocks: list[Block]
    frames_start: int
    frames_end: int  # before an ID3v1 tail


@parsed_once
def _parse(data: bytes, limits: Limits) -> Layout:
    limits.check("max_bytes", len(data), "the file")
    tags: list[id3.Tag] = []
    pos = 0
    while data[pos : pos + 3] == b"ID3" and len(tags) < 8:
        tags.append(id3.parse(data, pos))
        pos = tags[-1].end
    if data[pos : pos + 4] != b"fLaC":
        raise CorruptInput("not a FLAC file: no fLaC marker")
    marker = pos
    pos += 4
    blocks: list[Block] = []
    n = len(data)
    while True:
        if pos + 4 > n:
            raise CorruptInput("the FLAC file ends inside its metadata blocks")
        head = data[pos]
        kind, size = head & 0x7F, int.from_bytes(data[pos + 1 : pos + 4], "big")
        if kind == 127:
            raise CorruptInput(f"FLAC metadata block at byte {pos} has the invalid type 127")
        end = pos + 4 + size
        if end > n:
            raise CorruptInput(
                f"FLAC metadata block of type {kind} at byte {pos} declares {size} bytes, "
                f"more than the file holds ({n - pos - 4} left)"
            )
        blocks.append(Block(kind, pos, end))
        if len(blocks) > MAX_BLOCKS:
            raise CorruptInput(f"the FLAC file holds more than {MAX_BLOCKS} metadata blocks")
        pos = end
        if head & 0x80:
            break
    if blocks[0].type != STREAMINFO or blocks[0].end - blocks[0].start != 38:
        raise CorruptInput("the FLAC file does not start with a 34-byte STREAMINFO block")
    frames_end = n
    if n - 128 >= pos and data[n - 128 : n - 125] == b"TAG":
        frames_end = n - 128
    if frames_end - pos < 2 or data[pos] != 0xFF or data[pos + 1] & 0xFC != 0xF8:
        raise CorruptInput("no FLAC audio frame follows the metadata blocks")
    return Layout(tags, marker, blocks, pos, frames_end)


@dataclass(frozen=True)
class StreamInfo:
    seconds: float
    sample_rate: int
    channels: int
    bits: int
    samples: int  # per channel; 0 when the encoder did not know


def _stream_info(data: bytes, layout: Layout, limits: Limits) -> StreamInfo:
    body = layout.blocks[0].body(data)
    (packed,) = struct.unpack(">Q", body[10:18])
    rate = packed >> 44
    channels = ((packed >> 41) & 7) + 1
    bits = ((packed >> 36) & 31) + 1
    samples = packed & ((1 << 36) - 1)
    if not rate:
        raise CorruptInput("the FLAC STREAMINFO declares a sample rate of 0 Hz")
    if samples:
        seconds = samples / rate
    else:  # unknown length: bound it by what the frames could hold uncompressed at best
        seconds = (layout.frames_end - layout.frames_start) * 8 / (rate * channels)
    info = StreamInfo(seconds, rate, channels, bits, samples)
    check_audio(limits, seconds=seconds, sample_rate=rate, channels=channels, what="the FLAC")
    return info


def stream_info(data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
    return _stream_info(data, _parse(data, limits), limits)


def _block(kind: int, body: bytes, last: bool) -> bytes:
    if len(body) > MAX_BLOCK_BODY:
        raise LimitExceeded(
            f"a FLAC metadata block of {len(body)} bytes exceeds the format's 16 MiB"
        )
    return bytes(((0x80 if last else 0) | kind,)) + len(body).to_bytes(3, "big") + body


def _assemble(
    head: bytes, blocks: list[tuple[int, bytes]], frames: memoryview, tail: memoryview
) -> bytes:
    """One join, so the frames (most of the file) are copied once."""
    parts: list[bytes | memoryview] = [head, b"fLaC"]
    for i, (kind, body) in enumerate(blocks):
        parts.append(_block(kind, body, i == len(blocks) - 1))
    return b"".join([*parts, frames, tail])


def _head_without_records(data: bytes, layout: Layout) -> bytes:
    parts = []
    for tag in layout.tags:
        if any(id3.is_record_frame(f) for f in tag.frames):
            parts.append(id3.rebuild(data, tag, None))
        else:
            parts.append(data[tag.start : tag.end])
    return b"".join(parts)


class FlacHandler:
    name = "FLAC"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.AUDIO
    capabilities = AUDIO_CAPABILITIES | {Capability.C2PA}
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        """``fLaC``, or ID3v2 tags then ``fLaC`` (c2pa and some taggers put a tag first)."""
        if data.startswith(b"fLaC"):
            return MEDIA_TYPE
        try:
            pos = id3.leading_tags_end(data)
        except CorruptInput:
            return None
        return MEDIA_TYPE if pos and data[pos : pos + 4] == b"fLaC" else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        layout = _parse(data, limits)
        _stream_info(data, layout, limits)
        meta = Metadata(media_type=MEDIA_TYPE)
        own: list[FoundRecord] = []
        other: list[FoundRecord] = []
        for block in layout.blocks:
            if block.type == VORBIS_COMMENT:
                comments = vc.parse(block.body(data), "FLAC")
                vc.read(comments, "vorbis:", own, meta.properties)
        for tag in layout.tags:
            id3.read(tag, "id3:", other, meta.properties)
        meta.records = own + other
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        layout = _parse(data, limits)
        _stream_info(data, layout, limits)
        blocks = [(b.type, b.body(data)) for b in layout.blocks]
        old_size = sum(4 + len(body) for _, body in blocks)
        placed = False
        for i, (kind, body) in enumerate(blocks):
            if kind != VORBIS_COMMENT:
                continue
            comments = vc.parse(body, "FLAC")
            blocks[i] = (kind, vc.build(vc.with_record(comments, None if placed else record)))
            placed = True
        if not placed:
            fresh = vc.Comments(b"aigc-label", [], b"")
            at = 2 if len(blocks) > 1 and blocks[1][0] == SEEKTABLE else 1
            blocks.insert(at, (VORBIS_COMMENT, vc.build(vc.with_record(fresh, record))))
        _absorb_in_padding(blocks, old_size)
        return _assemble(
            _head_without_records(data, layout),
            blocks,
            memoryview(data)[layout.frames_start : layout.frames_end],
            memoryview(data)[layout.frames_end :],
        )

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of STREAMINFO's body and the coded frames.

        Left out: every other metadata block (comments with the record,
        pictures, padding, seek table, application blocks), an ID3v2 tag in
        front (c2pa's manifest) and an ID3v1 tag at the end.
        """
        layout = _parse(data, limits)
        view = memoryview(data)
        hasher = ContentHasher(MEDIA_TYPE)
        hasher.add(layout.blocks[0].body(data))
        return hasher.add(view[layout.frames_start : layout.frames_end]).digest()

    def carry_metadata(
        self, original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS
    ) -> bytes:
        """``reencoded``'s STREAMINFO, SEEKTABLE and frames with every other
        block of ``original`` (comments, pictures, padding, cue sheet, ...),
        its ID3 tag in front and its ID3v1 tail."""
        source = _parse(original, limits)
        target = _parse(reencoded, limits)
        blocks = [(b.type, b.body(reencoded)) for b in target.blocks if b.type == STREAMINFO]
        blocks += [(b.type, b.body(reencoded)) for b in target.blocks if b.type == SEEKTABLE]
        blocks += [
            (b.type, b.body(original))
            for b in source.blocks
            if b.type not in (STREAMINFO, SEEKTABLE)
        ]
        return _assemble(
            original[: source.marker],
            blocks,
            memoryview(reencoded)[target.frames_start : target.frames_end],
            memoryview(original)[source.frames_end :],
        )

    def stream_info(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
        return stream_info(data, limits)


def _absorb_in_padding(blocks: list[tuple[int, bytes]], old_size: int) -> None:
    """Shrink (or grow) the first PADDING block so the frames keep their offset."""
    grown = sum(4 + len(body) for _, body in blocks) - old_size
    for i, (kind, body) in enumerate(blocks):
        if kind == PADDING and len(body) >= grown:
            blocks[i] = (PADDING, b"\x00" * (len(body) - grown))
            return


HANDLER = FlacHandler()
