"""Ogg Vorbis and Ogg Opus files: the record as the Vorbis comment ``AIGC=<json>``.

Owns Ogg pages: their CRCs (checked on every page when reading), the
header packets of each logical stream (Vorbis: identification, comment,
setup; Opus: ``OpusHead``, ``OpusTags``) and where the audio pages start.
The comment list itself belongs to :mod:`labelers.formats.vorbis_comment`.

Writing replaces the comment packet of each Vorbis/Opus stream (the record
in the first stream's, removed from chained or multiplexed others), lays
the header packets out on new pages, and renumbers that stream's later
pages (fixing their CRCs) when the header took a different number of
pages. Audio pages keep their bodies, lacing and granule positions byte for
byte.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from labelers.errors import CorruptInput, LimitExceeded, UnsupportedMedia
from labelers.formats import (
    AUDIO_CAPABILITIES,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
)
from labelers.formats import vorbis_comment as vc
from labelers.formats.parse_once import parsed_once
from labelers.limits import DEFAULT_LIMITS, Limits, check_audio
from labelers.record import Record

MEDIA_TYPE = "audio/ogg"
CAPTURE = b"OggS"
PAGE_HEADER = 27
CONTINUED, BOS, EOS = 0x01, 0x02, 0x04
#: header packets per codec, and how the comment packet starts
HEADER_PACKETS = {"vorbis": 3, "opus": 2}
COMMENT_MAGIC = {"vorbis": b"\x03vorbis", "opus": b"OpusTags"}
MAX_HEADER_BYTES = 64 * 1024 * 1024  # a comment packet with pictures, bounded
_NO_GRANULE = -1

# Ogg's CRC-32 is the MSB-first one (poly 0x04C11DB7, init 0, no final xor);
# zlib's is its bit-reversed twin, so bytes are reversed on the way in and out
_BITSWAP = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def page_crc(page: bytes | bytearray) -> int:
    """The CRC of a page whose CRC field (bytes 22-25) is zero."""
    crc = (~zlib.crc32(bytes(page).translate(_BITSWAP), 0xFFFFFFFF)) & 0xFFFFFFFF
    return int.from_bytes(crc.to_bytes(4, "big").translate(_BITSWAP), "little")


def _stored_page_crc(view: memoryview, start: int, end: int) -> int:
    """The CRC of the page at ``start`` as it should be, without copying the page twice."""
    crc = zlib.crc32(view[start : start + 22].tobytes().translate(_BITSWAP), 0xFFFFFFFF)
    crc = zlib.crc32(b"\x00\x00\x00\x00", crc)
    crc = zlib.crc32(view[start + 26 : end].tobytes().translate(_BITSWAP), crc)
    crc = ~crc & 0xFFFFFFFF
    return int.from_bytes(crc.to_bytes(4, "big").translate(_BITSWAP), "little")


@dataclass
class Page:
    start: int
    end: int
    flags: int
    granule: int
    serial: int
    seqno: int
    lacing: bytes

    @property
    def body_start(self) -> int:
        return self.start + PAGE_HEADER + len(self.lacing)


@dataclass
class Stream:
    serial: int
    codec: str
    headers: list[bytes] = field(default_factory=list)
    header_pages: list[int] = field(default_factory=list)  # indexes into the page list
    comments: vc.Comments | None = None
    rate: int = 0
    channels: int = 0
    pre_skip: int = 0
    last_granule: int = 0


def _pages(data: bytes, limits: Limits) -> list[Page]:
    limits.check("max_bytes", len(data), "the file")
    pages: list[Page] = []
    pos, n = 0, len(data)
    view = memoryview(data)
    while pos < n:
        if data[pos : pos + 4] != CAPTURE:
            raise CorruptInput(f"Ogg page expected at byte {pos}: no OggS capture pattern")
        if pos + PAGE_HEADER > n:
            raise CorruptInput(f"the Ogg page at byte {pos} is truncated")
        version, flags, granule, serial, seqno, crc, nsegs = struct.unpack(
            "<BBqIIIB", data[pos + 4 : pos + PAGE_HEADER]
        )
        if version != 0:
            raise CorruptInput(f"the Ogg page at byte {pos} has unknown version {version}")
        lacing = data[pos + PAGE_HEADER : pos + PAGE_HEADER + nsegs]
        end = pos + PAGE_HEADER + nsegs + sum(lacing)
        if len(lacing) < nsegs or end > n:
            raise CorruptInput(f"the Ogg page at byte {pos} runs past the end of the file")
        if _stored_page_crc(view, pos, end) != crc:
            raise CorruptInput(f"the Ogg page at byte {pos} has a wrong CRC (damaged file)")
        pages.append(Page(pos, end, flags, granule, serial, seqno, lacing))
        pos = end
    if not pages:
        raise CorruptInput("the Ogg file has no pages")
    return pages


def _packets(data: bytes, page: Page) -> list[tuple[bytes, bool]]:
    """The page's packet pieces, each with whether it ends on this page."""
    out: list[tuple[bytes, bool]] = []
    pos, piece = page.body_start, 0
    for lace in page.lacing:
        piece += lace
        if lace < 255:
            out.append((data[pos : pos + piece], True))
            pos, piece = pos + piece, 0
    if piece:
        out.append((data[pos : pos + piece], False))
    return out


def _codec(packet: bytes) -> str | None:
    if packet.startswith(b"\x01vorbis"):
        return "vorbis"
    if packet.startswith(b"OpusHead"):
        return "opus"
    return None


def _streams(data: bytes, pages: list[Page]) -> list[Stream]:
    """Each logical stream with its header packets and the pages they fill."""
    streams: dict[int, Stream] = {}
    pending: dict[int, bytes] = {}
    for index, page in enumerate(pages):
        if page.flags & BOS:
            first = _packets(data, page)
            codec = _codec(first[0][0]) if first else None
            if codec is None:
                raise UnsupportedMedia("Ogg files are supported with Vorbis or Opus audio only")
            if page.serial in streams and len(streams[page.serial].headers) < HEADER_PACKETS[codec]:
                raise CorruptInput(f"Ogg stream {page.serial:08x} begins twice")
            streams[page.serial] = Stream(page.serial, codec)  # a chained stream may reuse it
            pending[page.serial] = b""
        stream = streams.get(page.serial)
        if stream is None:
            raise CorruptInput(f"Ogg page at byte {page.start} belongs to no begun stream")
        need = HEADER_PACKETS[stream.codec]
        if len(stream.headers) >= need:
            if page.granule != _NO_GRANULE:
                stream.last_granule = page.granule
            continue
        stream.header_pages.append(index)
        continued = bool(page.flags & CONTINUED)
        if not page.flags & BOS and continued != bool(pending[page.serial]):
            raise CorruptInput(f"Ogg page at byte {page.start} breaks its stream's packet chain")
        for piece, complete in _packets(data, page):
            packet = pending[page.serial] + piece
            if len(packet) > MAX_HEADER_BYTES:
                raise LimitExceeded(f"an Ogg header packet exceeds {MAX_HEADER_BYTES} bytes")
            if not complete:
                pending[page.serial] = packet
                continue
            pending[page.serial] = b""
            if len(stream.headers) >= need:
                raise CorruptInput(
                    f"Ogg stream {page.serial:08x} has audio on the page that ends its headers"
                )
            stream.headers.append(packet)
        if len(stream.headers) >= need and pending[page.serial]:
            raise CorruptInput(f"Ogg stream {page.serial:08x} has audio in its header pages")
    for stream in streams.values():
        if len(stream.headers) < HEADER_PACKETS[stream.codec]:
            raise CorruptInput(f"the Ogg {stream.codec} stream ends before its header packets do")
        _read_headers(stream)
    return list(streams.values())


def _read_headers(stream: Stream) -> None:
    ident, comment = stream.headers[0], stream.headers[1]
    magic = COMMENT_MAGIC[stream.codec]
    if not comment.startswith(magic):
        raise CorruptInput(f"the second Ogg {stream.codec} header is not a comment header")
    if stream.codec == "vorbis":
        if len(ident) < 30:
            raise CorruptInput("the Vorbis identification header is truncated")
        stream.channels, stream.rate = ident[11], struct.unpack("<I", ident[12:16])[0]
        if not stream.headers[2].startswith(b"\x05vorbis"):
            raise CorruptInput("the third Ogg Vorbis header is not a setup header")
    else:
        if len(ident) < 19:
            raise CorruptInput("the OpusHead header is truncated")
        stream.channels = ident[9]
        stream.pre_skip = struct.unpack("<H", ident[10:12])[0]
        stream.rate = 48000  # Opus granules count 48 kHz samples whatever the input rate
    if not stream.channels or not stream.rate:
        raise CorruptInput(f"the Ogg {stream.codec} header declares no channels or rate")
    stream.comments = vc.parse(comment[len(magic) :], f"Ogg {stream.codec}")


@dataclass
class Layout:
    pages: list[Page]
    streams: list[Stream]


@parsed_once
def _parse(data: bytes, limits: Limits) -> Layout:
    pages = _pages(data, limits)
    return Layout(pages, _streams(data, pages))


@dataclass(frozen=True)
class StreamInfo:
    seconds: float
    sample_rate: int
    channels: int
    codec: str


def _stream_info(layout: Layout, limits: Limits) -> StreamInfo:
    first = layout.streams[0]
    seconds = sum(max(s.last_granule - s.pre_skip, 0) / s.rate for s in layout.streams)
    channels = max(s.channels for s in layout.streams)
    info = StreamInfo(seconds, first.rate, channels, first.codec)
    check_audio(limits, seconds=seconds, sample_rate=first.rate, channels=channels, what="the Ogg")
    return info


def stream_info(data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
    return _stream_info(_parse(data, limits), limits)


def _comment_packet(codec: str, comments: vc.Comments) -> bytes:
    return COMMENT_MAGIC[codec] + vc.build(comments)


def _paginate(packets: list[bytes], serial: int, seqno: int, first_flags: int) -> list[bytes]:
    """Header packets on pages: the first alone (as the spec wants the ID header),
    the others packed up to 255 segments a page."""
    pages: list[bytes] = []
    groups = [packets[:1], packets[1:]] if packets else []
    for group in groups:
        segments: list[tuple[int, int, bool]] = []  # (packet, lacing value, ends packet)
        for pi, packet in enumerate(group):
            full, rest = divmod(len(packet), 255)
            segments += [(pi, 255, False)] * full + [(pi, rest, True)]
        pos = 0
        continued = False
        offsets = [0] * len(group)
        while pos < len(segments):
            chunk = segments[pos : pos + 255]
            pos += len(chunk)
            body = bytearray()
            for pi, lace, _ in chunk:
                body += group[pi][offsets[pi] : offsets[pi] + lace]
                offsets[pi] += lace
            flags = (CONTINUED if continued else 0) | (first_flags if not pages else 0)
            granule = 0 if any(ends for _, _, ends in chunk) else _NO_GRANULE
            lacing = bytes(lace for _, lace, _ in chunk)
            pages.append(_page(flags, granule, serial, seqno + len(pages), lacing, bytes(body)))
            continued = not chunk[-1][2]
    return pages


def _page(flags: int, granule: int, serial: int, seqno: int, lacing: bytes, body: bytes) -> bytes:
    head = CAPTURE + struct.pack("<BBqIIIB", 0, flags, granule, serial, seqno, 0, len(lacing))
    page = bytearray(head + lacing + body)
    page[22:26] = struct.pack("<I", page_crc(page))
    return bytes(page)


def _renumbered(data: bytes, page: Page, shift: int) -> bytes | memoryview:
    if not shift:
        return memoryview(data)[page.start : page.end]  # as it was: copied once, by the join
    raw = bytearray(data[page.start : page.end])
    raw[18:22] = struct.pack("<I", (page.seqno + shift) & 0xFFFFFFFF)
    raw[22:26] = b"\x00\x00\x00\x00"
    raw[22:26] = struct.pack("<I", page_crc(raw))
    return bytes(raw)


def _rewrite(data: bytes, layout: Layout, comments: dict[int, vc.Comments]) -> bytes:
    """``data`` with each stream's comment packet replaced by ``comments[id(stream)]``."""
    pages = layout.pages
    replaced: dict[int, bytes] = {}  # first header page index -> the new header pages
    skip: set[int] = set()
    shift_at: dict[int, tuple[int, int]] = {}  # serial -> (first later page index, shift)
    for stream in layout.streams:
        new_comments = comments.get(id(stream))
        if new_comments is None:
            continue
        packets = list(stream.headers)
        packets[1] = _comment_packet(stream.codec, new_comments)
        first = pages[stream.header_pages[0]]
        new_pages = _paginate(packets, stream.serial, first.seqno, first.flags & BOS)
        replaced[stream.header_pages[0]] = b"".join(new_pages)
        skip.update(stream.header_pages)
        shift = len(new_pages) - len(stream.header_pages)
        shift_at[stream.serial] = (stream.header_pages[-1], shift)
    out: list[bytes | memoryview] = []
    shifts: dict[int, int] = {}
    for index, page in enumerate(pages):
        if index in replaced:
            out.append(replaced[index])
        if index in skip:
            continue
        since = shift_at.get(page.serial)
        if since is not None and index > since[0]:
            shifts[page.serial] = since[1]
        out.append(_renumbered(data, page, shifts.get(page.serial, 0)))
    return b"".join(out)


def _write(data: bytes, layout: Layout, record: Record) -> bytes:
    comments: dict[int, vc.Comments] = {}
    for i, stream in enumerate(layout.streams):
        assert stream.comments is not None
        if i == 0 or any(vc.is_record(e) for e in stream.comments.entries):
            comments[id(stream)] = vc.with_record(stream.comments, record if i == 0 else None)
    return _rewrite(data, layout, comments)


def _digest(data: bytes, layout: Layout) -> bytes:
    """See :meth:`OggHandler.content_digest`."""
    hasher = ContentHasher(MEDIA_TYPE)
    header_pages = {i for s in layout.streams for i in s.header_pages}
    for stream in layout.streams:
        hasher.add(stream.codec, stream.headers[0], *stream.headers[2:])
    view = memoryview(data)
    for index, page in enumerate(layout.pages):
        if index not in header_pages:
            # granule (8 bytes LE), the continued/EOS flags, then lacing and body
            head = struct.pack("<qB", page.granule, page.flags & (CONTINUED | EOS))
            hasher.add(head + page.lacing, view[page.body_start : page.end])
    return hasher.digest()


class OggHandler:
    name = "Ogg Vorbis/Opus"
    media_type = MEDIA_TYPE
    media_types = (MEDIA_TYPE,)
    kind = Kind.AUDIO
    capabilities = AUDIO_CAPABILITIES  # c2pa has no Ogg support
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return sniff(data)

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        layout = _parse(data, limits)
        _stream_info(layout, limits)
        meta = Metadata(media_type=MEDIA_TYPE)
        records: list[FoundRecord] = []
        for stream in layout.streams:
            assert stream.comments is not None
            vc.read(stream.comments, "vorbis:", records, meta.properties)
        meta.records = records
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        layout = _parse(data, limits)
        _stream_info(layout, limits)
        return _write(data, layout, record)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of each stream's identification and setup headers and of its audio
        pages' granule positions, lacing and bodies.

        Left out: the comment packets (the record and the tags, pictures
        included), page sequence numbers and CRCs (rewritten when the comment
        header takes another number of pages), and the header pages' layout.
        """
        return _digest(data, _parse(data, limits))

    def write_signed_record(
        self, data: bytes, sign: Callable[[bytes], Record], limits: Limits = DEFAULT_LIMITS
    ) -> tuple[Record, bytes]:
        """The digest and the record on one parse: every page's CRC is checked once."""
        layout = _parse(data, limits)
        _stream_info(layout, limits)
        record = sign(_digest(data, layout))
        record.validate()
        return record, _write(data, layout, record)

    def carry_metadata(
        self, original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS
    ) -> bytes:
        """``reencoded`` with ``original``'s comments (tags, pictures, record) in its
        first stream; the vendor string stays the re-encoder's (it names the
        library that coded the audio)."""
        source = _parse(original, limits)
        target = _parse(reencoded, limits)
        old, new = source.streams[0].comments, target.streams[0].comments
        assert old is not None and new is not None
        rest = old.rest if source.streams[0].codec == target.streams[0].codec else new.rest
        carried = vc.Comments(new.vendor, list(old.entries), rest)
        return _rewrite(reencoded, target, {id(target.streams[0]): carried})

    def stream_info(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
        return stream_info(data, limits)


def sniff(data: bytes) -> str | None:
    return MEDIA_TYPE if data.startswith(CAPTURE) else None


HANDLER = OggHandler()
