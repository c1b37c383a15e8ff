"""MP3 files: the record in the leading ID3v2 tag's ``TXXX:AIGC`` frame.

Owns the MPEG audio stream's framing: where the coded frames start and end
(after the ID3v2 tags in front, before an APEv2 tag and the 128-byte ID3v1
tag at the end), the first frame header (sample rate, channels, bitrate) and
the Xing/Info or VBRI frame count (duration), all read without decoding.
ID3v2 bytes themselves belong to :mod:`labelers.formats.id3`.

Writing replaces the record frame in the first ID3v2 tag (adding a v2.4 tag
when the file has none), removes record frames from any further leading
tag, and copies the audio frames and the trailing tags byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labelers.errors import CorruptInput
from labelers.formats import (
    AUDIO_CAPABILITIES,
    Capability,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
    id3,
)
from labelers.limits import DEFAULT_LIMITS, Limits, check_audio
from labelers.record import Record

MEDIA_TYPE = "audio/mpeg"
ID3V1_SIZE = 128
APE_FOOTER = 32
# bitrates (kbit/s) by [MPEG-1?][layer III] index; sample rates by MPEG version
_BITRATES_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_BITRATES_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
#: how far into the audio the first frame header may be looked for (junk after ID3)
SYNC_SEARCH = 64 * 1024


@dataclass(frozen=True)
class FrameHeader:
    version: int  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    bitrate: int  # bit/s (0: free format)
    sample_rate: int
    channels: int
    size: int  # bytes of the whole frame (0 for free format)
    samples: int  # samples per channel in one frame


def frame_header(data: bytes, pos: int) -> FrameHeader | None:
    """The MPEG layer III frame header at ``pos``, or None if none is there."""
    if pos + 4 > len(data):
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    if data[pos] != 0xFF or b1 & 0xE0 != 0xE0:
        return None
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index == 15 or rate_index == 3:
        return None
    table = _BITRATES_V1 if version == 3 else _BITRATES_V2
    bitrate = table[bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    samples = 1152 if version == 3 else 576
    padding = (b2 >> 1) & 1
    size = samples // 8 * bitrate // rate + padding if bitrate else 0
    channels = 1 if b3 >> 6 == 3 else 2
    return FrameHeader(version, bitrate, rate, channels, size, samples)


def looks_like_mpeg(data: bytes, pos: int = 0) -> bool:
    """Two consecutive layer III frame headers at ``pos`` (one is too easy to hit by chance)."""
    first = frame_header(data, pos)
    if first is None or first.size < 4:
        return False
    second = frame_header(data, pos + first.size)
    return second is not None and second.sample_rate == first.sample_rate


@dataclass
class Layout:
    tags: list[id3.Tag]
    audio_start: int
    audio_end: int  # before an APEv2 and ID3v1 tag


def _layout(data: bytes, limits: Limits) -> Layout:
    limits.check("max_bytes", len(data), "the file")
    tags: list[id3.Tag] = []
    pos = 0
    while data[pos : pos + 3] == b"ID3" and len(tags) < 8:
        tag = id3.parse(data, pos)
        tags.append(tag)
        pos = tag.end
    end = len(data)
    if end - ID3V1_SIZE >= pos and data[end - ID3V1_SIZE : end - ID3V1_SIZE + 3] == b"TAG":
        end -= ID3V1_SIZE
    if end - APE_FOOTER >= pos and data[end - APE_FOOTER : end - APE_FOOTER + 8] == b"APETAGEX":
        (ape_size,) = struct.unpack("<I", data[end - 20 : end - 16])
        flags = struct.unpack("<I", data[end - 12 : end - 8])[0]
        total = ape_size + (APE_FOOTER if flags & 0x80000000 else 0)
        if ape_size < APE_FOOTER or total > end - pos:
            raise CorruptInput(f"the APEv2 tag declares {ape_size} bytes, more than the file")
        end -= total
    if end <= pos:
        raise CorruptInput("the MP3 file holds tags but no audio frames")
    return Layout(tags, pos, end)


def _first_frame(data: bytes, layout: Layout) -> tuple[int, FrameHeader]:
    stop = min(layout.audio_end, layout.audio_start + SYNC_SEARCH)
    pos = data.find(b"\xff", layout.audio_start, stop)
    while 0 <= pos < stop:
        if looks_like_mpeg(data, pos):
            header = frame_header(data, pos)
            assert header is not None
            return pos, header
        pos = data.find(b"\xff", pos + 1, stop)
    raise CorruptInput("no MPEG audio frame found after the MP3's tags")


def _checked_frames(data: bytes, layout: Layout) -> tuple[int, FrameHeader]:
    """The first frame, after making sure the stream was not cut short."""
    pos, header = _first_frame(data, layout)
    _check_whole(data, layout, pos, header)
    return pos, header


def _check_whole(data: bytes, layout: Layout, pos: int, header: FrameHeader) -> None:
    """CorruptInput when the stream was cut: it ends before the bytes its Xing/Info
    header declares, or (without one) inside its last frame."""
    declared = _vbr_byte_count(data, pos, header)
    if declared is not None:
        if pos + declared > layout.audio_end:
            raise CorruptInput(
                f"the MP3 is truncated: its Xing/Info header declares {declared} bytes of "
                f"audio, {layout.audio_end - pos} are there"
            )
        return
    while pos < layout.audio_end:
        frame = frame_header(data, pos)
        if frame is None or frame.size < 4:
            return  # junk or padding after the frames: not a cut
        if pos + frame.size > layout.audio_end:
            raise CorruptInput(f"the MP3 is truncated: its last frame at byte {pos} is cut short")
        pos += frame.size


@dataclass(frozen=True)
class StreamInfo:
    seconds: float
    sample_rate: int
    channels: int
    bitrate: int  # bit/s of the first frame (or the Xing average)


def stream_info(data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
    """Duration, rate, channels and bitrate from the frame headers; limits checked."""
    layout = _layout(data, limits)
    pos, header = _checked_frames(data, layout)
    frames = _vbr_frame_count(data, pos, header)
    if frames is not None:
        seconds = frames * header.samples / header.sample_rate
        bitrate = int((layout.audio_end - pos) * 8 / seconds) if seconds else header.bitrate
    else:
        if not header.bitrate:
            raise CorruptInput("free-format MP3 streams are not supported")
        seconds = (layout.audio_end - pos) * 8 / header.bitrate
        bitrate = header.bitrate
    info = StreamInfo(seconds, header.sample_rate, header.channels, bitrate)
    check_audio(
        limits,
        seconds=seconds,
        sample_rate=header.sample_rate,
        channels=header.channels,
        what="the MP3 stream",
    )
    return info


def _xing_at(pos: int, header: FrameHeader) -> int:
    """Where a Xing/Info header would start in the first frame (after the side info)."""
    if header.version == 3:
        return pos + 4 + (32 if header.channels == 2 else 17)
    return pos + 4 + (17 if header.channels == 2 else 9)


def _vbr_byte_count(data: bytes, pos: int, header: FrameHeader) -> int | None:
    """The stream's byte count a Xing/Info header declares (flag 2), if any."""
    xing = _xing_at(pos, header)
    if data[xing : xing + 4] not in (b"Xing", b"Info") or xing + 8 > len(data):
        return None
    (flags,) = struct.unpack(">I", data[xing + 4 : xing + 8])
    at = xing + 8 + (4 if flags & 1 else 0)
    if not flags & 2 or at + 4 > len(data):
        return None
    return struct.unpack(">I", data[at : at + 4])[0]


def _vbr_frame_count(data: bytes, pos: int, header: FrameHeader) -> int | None:
    """Frames declared by a Xing/Info or VBRI header in the first frame, if any."""
    xing = _xing_at(pos, header)
    if data[xing : xing + 4] in (b"Xing", b"Info") and xing + 12 <= len(data):
        (flags,) = struct.unpack(">I", data[xing + 4 : xing + 8])
        if flags & 1:
            return struct.unpack(">I", data[xing + 8 : xing + 12])[0]
    vbri = pos + 36
    if data[vbri : vbri + 4] == b"VBRI" and vbri + 18 <= len(data):
        return struct.unpack(">I", data[vbri + 14 : vbri + 18])[0]
    return None


class Mp3Handler:
    name = "MP3"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.AUDIO
    capabilities = AUDIO_CAPABILITIES | {Capability.C2PA}
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return MEDIA_TYPE if sniff(data) == MEDIA_TYPE else None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        layout = _layout(data, limits)
        _checked_frames(data, layout)
        meta = Metadata(media_type=MEDIA_TYPE)
        records: list[FoundRecord] = []
        for tag in layout.tags:
            id3.read(tag, "id3:", records, meta.properties)
        meta.records = records
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        layout = _layout(data, limits)
        _checked_frames(data, layout)
        if not layout.tags:
            return b"".join([id3.new_tag(record), data])
        parts: list[bytes | memoryview] = [id3.rebuild(data, layout.tags[0], record)]
        parts += [id3.rebuild(data, tag, None) for tag in layout.tags[1:]]
        parts.append(memoryview(data)[layout.audio_start :])  # copied once, by the join
        return b"".join(parts)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the MPEG audio frames: every byte between the leading ID3v2
        tags and the trailing APEv2 / ID3v1 tags (the Xing/LAME info frame
        included). Left out: the tags, where the record and c2pa's ``GEOB``
        manifest live."""
        layout = _layout(data, limits)
        _checked_frames(data, layout)
        view = memoryview(data)
        return ContentHasher(MEDIA_TYPE).add(view[layout.audio_start : layout.audio_end]).digest()

    def carry_metadata(
        self, original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS
    ) -> bytes:
        """``reencoded``'s audio frames under ``original``'s ID3v2 tags, with its
        APEv2 / ID3v1 tail: the re-encoder's own tags are dropped."""
        source = _layout(original, limits)
        target = _layout(reencoded, limits)
        _first_frame(reencoded, target)
        frames = memoryview(reencoded)[target.audio_start : target.audio_end]
        original_view = memoryview(original)
        return b"".join(
            [original_view[: source.audio_start], frames, original_view[source.audio_end :]]
        )

    def stream_info(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
        return stream_info(data, limits)


def sniff(data: bytes) -> str | None:
    """``audio/mpeg`` for an ID3v2-tagged or bare MPEG layer III stream, else None.

    A tag followed by ``fLaC`` is a FLAC file (c2pa puts its manifest there).
    """
    pos = 0
    try:
        pos = id3.leading_tags_end(data)
    except CorruptInput:
        if data.startswith(b"ID3"):
            return MEDIA_TYPE  # a damaged tag: the handler says what is wrong
    if pos:
        if data[pos : pos + 4] == b"fLaC":
            return "audio/flac"
        return MEDIA_TYPE
    return MEDIA_TYPE if looks_like_mpeg(data) else None


HANDLER = Mp3Handler()
