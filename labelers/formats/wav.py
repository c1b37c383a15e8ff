"""WAV files (RIFF/WAVE): the record as a top-level ``AIGC`` chunk, by chunk splicing.

Owns RIFF/WAVE bytes. Reading walks the top-level chunks without touching
the samples: the format (``fmt ``), the sample count (``fact``), the size of
``data``, ``LIST/INFO`` entries as ``riff:INFO:<id>`` properties, records
in a top-level ``AIGC`` chunk (any letter case), in a ``LIST/INFO`` entry
``AIGC`` (the AVI carrier, met in WAV too) and in an ``id3 `` chunk's
``TXXX:AIGC`` frame. Writing puts the one record in an ``AIGC`` chunk holding
the bare JSON (padded to an even size), just before ``data`` or where the old
one was, removes the record from the other carriers, copies every other
chunk byte for byte and sets the RIFF size. A stream written to a pipe
(RIFF and ``data`` sizes 0 or 0xFFFFFFFF) is read to its end and comes out
with true sizes.
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
from labelers.formats import xmp as xmplib
from labelers.formats.parse_once import parsed_once
from labelers.limits import DEFAULT_LIMITS, Limits, check_audio
from labelers.record import Record

MEDIA_TYPE = "audio/wav"
RECORD_ID = b"AIGC"
#: chunks the content digest covers: the format, the sample count, the samples
ESSENCE_CHUNKS = (b"fmt ", b"fact", b"data")
_STREAMING_SIZES = (0, 0xFFFFFFFF)
MAX_CHUNKS = 10_000


@dataclass
class Chunk:
    id: bytes
    start: int  # the chunk header
    body_start: int
    body_end: int
    end: int  # after the pad byte (or the file's end when a final pad is missing)

    def body(self, data: bytes) -> bytes:
        return data[self.body_start : self.body_end]


@dataclass
class Riff:
    chunks: list[Chunk]
    end: int  # where the RIFF form ends; bytes after it are kept as they are


@parsed_once
def _parse(data: bytes, limits: Limits) -> Riff:
    limits.check("max_bytes", len(data), "the file")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise CorruptInput("not a WAV file: no RIFF/WAVE header")
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size in _STREAMING_SIZES:
        end = len(data)
    elif riff_size < 4:
        raise CorruptInput(f"the RIFF size {riff_size} is too small for a WAVE form")
    elif 8 + riff_size > len(data):
        raise CorruptInput(
            f"the WAV file is truncated: RIFF declares {riff_size + 8} bytes, "
            f"the file has {len(data)}"
        )
    else:
        end = 8 + riff_size
    chunks = _chunks(data, 12, end, streaming=riff_size in _STREAMING_SIZES)
    ids = [c.id for c in chunks]
    if b"fmt " not in ids:
        raise CorruptInput("the WAV file has no fmt chunk")
    if b"data" not in ids:
        raise CorruptInput("the WAV file has no data chunk")
    if ids.count(b"fmt ") > 1 or ids.count(b"data") > 1:
        raise CorruptInput("the WAV file has more than one fmt or data chunk")
    return Riff(chunks, end)


def _chunks(data: bytes, pos: int, end: int, streaming: bool = False) -> list[Chunk]:
    chunks: list[Chunk] = []
    while pos < end:
        if pos + 8 > end:
            if all(b == 0 for b in data[pos:end]):
                break  # a few zero bytes of slack before the end: harmless
            raise CorruptInput(f"RIFF chunk header at byte {pos} is truncated")
        cid, size = struct.unpack("<4sI", data[pos : pos + 8])
        body_start = pos + 8
        if cid == b"data" and size in _STREAMING_SIZES and (streaming or size == 0xFFFFFFFF):
            size = end - body_start  # written to a pipe: the samples run to the end
        body_end = body_start + size
        if body_end > end:
            raise CorruptInput(
                f"RIFF chunk {cid.decode('latin-1')!r} at byte {pos} declares {size} bytes, "
                f"more than the file holds ({end - body_start} left)"
            )
        # the pad byte of an odd final chunk is often missing: tolerated, and
        # written back on output
        chunk_end = min(body_end + (size & 1), end)
        chunks.append(Chunk(cid, pos, body_start, body_end, chunk_end))
        if len(chunks) > MAX_CHUNKS:
            raise CorruptInput(f"the WAV file holds more than {MAX_CHUNKS} chunks")
        pos = chunk_end
    return chunks


# Outputs are lists of parts joined once: the samples (most of the file) are
# copied a single time, as memoryview slices of the input.
Parts = list[bytes | memoryview]


def _chunk_bytes(cid: bytes, body: bytes | memoryview) -> Parts:
    pad = [b"\x00"] if len(body) & 1 else []
    return [struct.pack("<4sI", cid, len(body)), body, *pad]


def _copy(data: bytes, chunk: Chunk) -> Parts:
    """A chunk as stored, its size field made true and its pad byte present."""
    return _chunk_bytes(chunk.id, memoryview(data)[chunk.body_start : chunk.body_end])


def _info_entries(body: bytes) -> list[Chunk] | None:
    """The sub-chunks of a ``LIST`` body of form ``INFO``; None for other lists."""
    if body[:4] != b"INFO":
        return None
    try:
        return _chunks(body, 4, len(body))
    except CorruptInput:
        return None  # a damaged list is kept as it is, not read


def _info_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8").rstrip("\x00")
    except UnicodeDecodeError:
        return raw.decode("latin-1").rstrip("\x00")


def _embedded_tag(body: bytes) -> id3.Tag | None:
    """The ID3v2 tag of an ``id3 `` chunk; None when damaged (someone else's: kept as is)."""
    try:
        return id3.parse(body) if id3.tag_size(body) is not None else None
    except CorruptInput:
        return None


def _is_id3(chunk: Chunk) -> bool:
    return chunk.id in (b"id3 ", b"ID3 ")


@dataclass(frozen=True)
class StreamInfo:
    seconds: float
    sample_rate: int
    channels: int
    bits: int
    format_tag: int


def stream_info(data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
    """What ``fmt ``, ``fact`` and the ``data`` size declare; limits checked."""
    return _stream_info(data, _parse(data, limits), limits)


def _stream_info(data: bytes, riff: Riff, limits: Limits) -> StreamInfo:
    by_id = {c.id: c for c in riff.chunks}
    fmt = by_id[b"fmt "].body(data)
    if len(fmt) < 16:
        raise CorruptInput(f"the WAV fmt chunk is {len(fmt)} bytes, shorter than 16")
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format decides
        tag = struct.unpack("<H", fmt[24:26])[0]
    if not channels or not rate:
        raise CorruptInput(f"the WAV fmt chunk declares {channels} channels at {rate} Hz")
    data_bytes = by_id[b"data"].body_end - by_id[b"data"].body_start
    fact = by_id.get(b"fact")
    if tag != 1 and fact is not None and fact.body_end - fact.body_start >= 4:
        frames = struct.unpack("<I", fact.body(data)[:4])[0]
    elif block_align:
        frames = data_bytes // block_align
    elif byte_rate:
        frames = int(data_bytes / byte_rate * rate)
    else:
        raise CorruptInput("the WAV fmt chunk declares neither a block size nor a byte rate")
    info = StreamInfo(frames / rate, rate, channels, bits, tag)
    check_audio(limits, seconds=info.seconds, sample_rate=rate, channels=channels, what="the WAV")
    return info


class WavHandler:
    name = "WAV"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.AUDIO
    capabilities = AUDIO_CAPABILITIES | {Capability.C2PA}
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return sniff(data)

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        riff = _parse(data, limits)
        _stream_info(data, riff, limits)
        meta = Metadata(media_type=MEDIA_TYPE)
        own: list[FoundRecord] = []
        other: list[FoundRecord] = []
        for chunk in riff.chunks:
            if chunk.id.upper() == RECORD_ID:
                raw = _info_text(chunk.body(data))
                own.append(xmplib.found_record(raw, f"riff:{chunk.id.decode('latin-1')}"))
            elif chunk.id == b"LIST":
                for entry in _info_entries(chunk.body(data)) or []:
                    name = entry.id.decode("latin-1")
                    text = _info_text(entry.body(chunk.body(data)))
                    if entry.id.upper() == RECORD_ID:
                        other.append(xmplib.found_record(text, f"riff:LIST/INFO:{name}"))
                    else:
                        meta.properties.setdefault(f"riff:INFO:{name}", text)
            elif _is_id3(chunk):
                tag = _embedded_tag(chunk.body(data))
                if tag is not None:
                    id3.read(tag, "riff:id3:", other, meta.properties)
        meta.records = own + other
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        riff = _parse(data, limits)
        _stream_info(data, riff, limits)
        new = _chunk_bytes(RECORD_ID, record.dumps().encode("ascii"))
        parts: Parts = []
        placed = False
        for chunk in riff.chunks:
            if chunk.id.upper() == RECORD_ID:
                if not placed:
                    parts += new
                    placed = True
                continue
            if chunk.id == b"data" and not placed:
                parts += new
                placed = True
            parts += _without_records(data, chunk)
        return _form(parts, memoryview(data)[riff.end :])

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the ``fmt ``, ``fact`` and ``data`` chunk bodies, in file order.

        Left out: every other chunk (the ``AIGC`` record, ``LIST``, ``id3 ``,
        ``bext``, c2pa's ``C2PA`` manifest, ...), chunk order and pad bytes.
        """
        riff = _parse(data, limits)
        hasher = ContentHasher(MEDIA_TYPE)
        view = memoryview(data)
        for chunk in riff.chunks:
            if chunk.id in ESSENCE_CHUNKS:
                hasher.add(chunk.id, view[chunk.body_start : chunk.body_end])
        return hasher.digest()

    def carry_metadata(
        self, original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS
    ) -> bytes:
        """``original``'s chunks in their order, its ``fmt ``/``fact``/``data``
        replaced by ``reencoded``'s; the re-encoder's other chunks are dropped."""
        source = _parse(original, limits)
        target = _parse(reencoded, limits)
        fresh = {c.id: c for c in target.chunks if c.id in ESSENCE_CHUNKS}
        parts: Parts = []
        for chunk in source.chunks:
            if chunk.id not in ESSENCE_CHUNKS:
                parts += _copy(original, chunk)
                continue
            if chunk.id == b"data":  # a fact the re-encoder added goes before the samples
                for cid in (b"fmt ", b"fact"):
                    if cid in fresh and not any(c.id == cid for c in source.chunks):
                        parts += _copy(reencoded, fresh.pop(cid))
            replacement = fresh.pop(chunk.id, None)
            if replacement is not None:
                parts += _copy(reencoded, replacement)
        return _form(parts, memoryview(original)[source.end :])

    def stream_info(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
        return stream_info(data, limits)


def _without_records(data: bytes, chunk: Chunk) -> Parts:
    """``chunk`` copied, with an ``AIGC`` INFO entry or ``TXXX:AIGC`` frame removed."""
    if chunk.id not in (b"LIST", b"id3 ", b"ID3 "):
        return _copy(data, chunk)  # the samples above all: not sliced into a copy here
    body = chunk.body(data)
    if chunk.id == b"LIST":
        entries = _info_entries(body)
        if entries and any(e.id.upper() == RECORD_ID for e in entries):
            kept = [p for e in entries if e.id.upper() != RECORD_ID for p in _copy(body, e)]
            return _chunk_bytes(b"LIST", b"".join([b"INFO", *kept]))
    elif _is_id3(chunk):
        tag = _embedded_tag(body)
        if tag is not None and any(id3.is_record_frame(f) for f in tag.frames):
            return _chunk_bytes(chunk.id, id3.rebuild(body, tag, None) + body[tag.end :])
    return _copy(data, chunk)


def _form(chunks: Parts, trailer: memoryview) -> bytes:
    """The RIFF file of ``chunks``, then ``trailer`` (bytes after the form, kept)."""
    size = 4 + sum(len(c) for c in chunks)
    if size > 0xFFFFFFFF:
        raise LimitExceeded("the WAV would exceed the 4 GiB a RIFF file can hold")
    return b"".join([b"RIFF", struct.pack("<I", size), b"WAVE", *chunks, trailer])


def sniff(data: bytes) -> str | None:
    return MEDIA_TYPE if data[:4] == b"RIFF" and data[8:12] == b"WAVE" else None


HANDLER = WavHandler()
