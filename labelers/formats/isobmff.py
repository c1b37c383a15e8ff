"""ISO base media files (MP4, MOV, M4V, M4A): the record in ``moov/udta/meta``.

Owns the bytes of ISO-BMFF movie files. The record is an ``mdta`` key
``AIGC`` in a ``moov/udta/meta`` box whose handler is ``mdta`` (QuickTime
metadata: a ``keys`` box naming each key, an ``ilst`` box whose items are
numbered by key index), holding the inner seven-field JSON object.

Reading also takes the forms met in the wild: a second, bare ``meta`` box
(``moov/meta``, as Apple writes it), a keyless ``hdlr=mdir`` item list with an
``AIGC`` item, iTunes freeform ``----`` atoms named ``AIGC`` (any ``mean``),
and any text item whose value is a whole ``{"AIGC": ...}`` record. The other
metadata a generator leaves (encoder tags, vendor keys, handler names, the
brands) comes back as properties for the trace detectors.

Writing splices ``moov`` only: every other top-level box (``mdat``, ``free``,
``uuid``, fragments) is copied byte for byte, and the absolute offsets that
point past ``moov`` (``stco``/``co64`` chunk offsets, ``saio``, ``tfhd`` base
data offsets, ``tfra`` fragment offsets) move by the amount ``moov`` grew, so a
fast-start file stays fast-start and a file with ``moov`` at the end stays so.
Every other key, item, track and box survives; records in the other carriers
are removed (one record per file).

Hostile input: every size is checked against its container, nesting depth
and box count are bounded, and counts inside boxes must fit their payload.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from labelers.errors import CorruptInput, UnsupportedMedia
from labelers.formats import (
    AUDIO_CAPABILITIES,
    Capability,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
    VideoInfo,
)
from labelers.formats.parse_once import parsed_once
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import InvalidRecord, Record

#: media type -> content kind; one handler serves them all
MEDIA_TYPES = {
    "video/mp4": "video",
    "video/quicktime": "video",
    "video/x-m4v": "video",
    "audio/mp4": "audio",
}
_BRAND_TYPES = {
    b"qt  ": "video/quicktime",
    b"M4V ": "video/x-m4v",
    b"M4VH": "video/x-m4v",
    b"M4VP": "video/x-m4v",
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"M4P ": "audio/mp4",
    b"F4A ": "audio/mp4",
}
#: brands of plain MP4 (and its 3GPP/DASH relatives) we read and write
_MP4_BRANDS = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso3",
        b"iso4",
        b"iso5",
        b"iso6",
        b"iso7",
        b"iso8",
        b"iso9",
        b"mp41",
        b"mp42",
        b"mp71",
        b"avc1",
        b"dash",
        b"msdh",
        b"msix",
        b"MSNV",
        b"f4v ",
        b"3gp4",
        b"3gp5",
        b"3gp6",
        b"3g2a",
        b"mmp4",
        b"XAVC",
        b"cmfc",
        b"cmf2",
    }
)
#: boxes whose payload is a list of boxes (``meta`` and ``stsd`` have a prefix)
_CONTAINERS = frozenset(
    {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf", b"mvex"}
    | {b"moof", b"traf", b"mfra", b"ilst", b"tref", b"meta"}
)
MAX_DEPTH = 12  # real files nest 8 deep (moov/trak/mdia/minf/stbl/stsd/...)
MAX_BOXES = 100_000  # boxes walked per file; a 2-hour fragmented file has a few thousand
RECORD_KEY = "AIGC"
CARRIER = "mp4:mdta:AIGC"
_UTF8 = 1
_UTF16 = 2


# ================================================================= the walker
@dataclass(frozen=True)
class Box:
    """One box: its type and where it lies (``start`` of its header, ``end`` past it)."""

    type: bytes
    start: int
    header: int
    end: int

    @property
    def body(self) -> int:
        return self.start + self.header


class _Budget:
    def __init__(self) -> None:
        self.boxes = 0

    def take(self, n: int) -> None:
        self.boxes += n
        if self.boxes > MAX_BOXES:
            raise CorruptInput(f"the file holds more than {MAX_BOXES} boxes")


def boxes(data: bytes, start: int, end: int, budget: _Budget | None = None) -> list[Box]:
    """The boxes in ``data[start:end]``.

    Raises CorruptInput when a size is smaller than its header or runs past
    ``end``. A size of 0 means "to the end of the container". QuickTime's
    4-byte zero terminator at the end of a ``udta`` is tolerated.
    """
    out: list[Box] = []
    pos = start
    while pos < end:
        if end - pos < 8:
            if not any(data[pos:end]):
                break  # the zero terminator some QuickTime writers end udta with
            raise CorruptInput(f"box header at byte {pos} is truncated")
        size, btype = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise CorruptInput(f"box {_name(btype)} at byte {pos}: 64-bit size is truncated")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise CorruptInput(f"box {_name(btype)} at byte {pos} declares {size} bytes")
        if size > end - pos:
            raise CorruptInput(
                f"box {_name(btype)} at byte {pos} declares {size} bytes but only "
                f"{end - pos} remain in its container (truncated or lying size)"
            )
        out.append(Box(btype, pos, header, pos + size))
        pos += size
    if budget is not None:
        budget.take(len(out))
    return out


def _name(btype: bytes) -> str:
    return repr(btype.decode("latin-1"))


def meta_prefix(data: bytes, box: Box) -> int:
    """Bytes before ``meta``'s children: 4 (ISO full box) or 0 (QuickTime's bare form)."""
    if box.end - box.body >= 8 and data[box.body + 4 : box.body + 8] in (b"hdlr", b"keys"):
        return 0
    return 4


def children(data: bytes, box: Box, budget: _Budget | None = None) -> list[Box]:
    """The child boxes of a container box."""
    skip = meta_prefix(data, box) if box.type == b"meta" else 0
    if box.body + skip > box.end:
        raise CorruptInput(f"box {_name(box.type)} at byte {box.start} is truncated")
    return boxes(data, box.body + skip, box.end, budget)


def walk(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Iterator[tuple[tuple[bytes, ...], Box]]:
    """Every box in the file with its path of types, depth first; bounded."""
    limits.check("max_bytes", len(data), "the file")
    budget = _Budget()
    stack = [((), b) for b in reversed(boxes(data, 0, len(data), budget))]
    while stack:
        path, box = stack.pop()
        here = (*path, box.type)
        yield here, box
        if box.type in _CONTAINERS or _is_item(here):
            if len(here) >= MAX_DEPTH:
                raise CorruptInput(f"boxes nest deeper than {MAX_DEPTH} levels")
            try:
                kids = children(data, box, budget)
            except CorruptInput:
                if not _is_item(here):
                    raise
                continue  # an item list entry in a private layout: kept, not read
            stack.extend((here, b) for b in reversed(kids))


def _is_item(path: tuple[bytes, ...]) -> bool:
    """An item of an ``ilst`` (its children are ``data``, ``mean``, ``name``)."""
    return len(path) >= 2 and path[-2] == b"ilst"


# ================================================================== sniffing
def accept(head: bytes) -> str | None:
    """The media type of an ISO-BMFF movie from its first bytes, else None.

    Decided by the ``ftyp`` brands (the major brand first, then the
    compatible ones); a QuickTime file from before ``ftyp`` starts with
    ``moov``, ``mdat``, ``wide`` or ``free`` followed by a ``moov`` or ``mdat``.
    """
    if head[4:8] == b"ftyp":
        size = int.from_bytes(head[:4], "big")
        brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, 128), 4)]
        for brand in brands:
            if brand in _BRAND_TYPES:
                return _BRAND_TYPES[brand]
            if brand in _MP4_BRANDS:
                return "video/mp4"
        return None
    if head[4:8] == b"moov":
        return "video/quicktime"
    if head[4:8] in (b"mdat", b"wide", b"free", b"skip"):
        first = int.from_bytes(head[:4], "big")
        if 8 <= first <= len(head) - 8 and head[first + 4 : first + 8] in (b"moov", b"mdat"):
            return "video/quicktime"
    return None


# =================================================================== parsing
@dataclass
class Track:
    handler: bytes = b""  # 'vide', 'soun', 'text', 'sbtl', 'tmcd', ...
    handler_name: str = ""
    track_id: int = 0
    timescale: int = 0
    duration: int = 0
    samples: int = 0
    sample_bytes: int = 0
    codec: str = ""
    width: int = 0  # coded size from the visual sample entry
    height: int = 0
    rotation: int = 0  # degrees clockwise, from tkhd's display matrix
    compressor: str = ""


@dataclass
class Item:
    """One ``ilst`` item: its name and its text values."""

    name: str  # key name (mdta), 4cc (mdir), or "----:<mean>:<name>"
    values: list[str]


@dataclass
class MetaBox:
    path: str  # "moov/udta/meta", "moov/meta", ...
    handler: bytes
    items: list[Item] = field(default_factory=list)


@dataclass
class Movie:
    brands: list[str]
    moov: Box
    fragmented: bool
    timescale: int = 0
    duration: int = 0
    tracks: list[Track] = field(default_factory=list)
    metas: list[MetaBox] = field(default_factory=list)
    mdat_bytes: int = 0
    fragment_samples: dict[int, int] = field(default_factory=dict)  # track id -> trun count


@parsed_once
def parse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Movie:
    """The movie's structure, without reading any coded sample."""
    if not data:
        raise CorruptInput("the file is empty")
    brands: list[str] = []
    moov: Box | None = None
    fragmented = False
    movie_boxes: list[tuple[tuple[bytes, ...], Box]] = []
    mdat_bytes = 0
    fragment_samples: dict[int, int] = {}
    current_traf_track = 0
    for path, box in walk(data, limits):
        top = path[0]
        if len(path) == 1:
            if box.type == b"ftyp":
                body = data[box.body : box.end]
                brands = [body[i : i + 4].decode("latin-1") for i in range(0, len(body), 4)]
                del brands[1:2]  # the minor version
            elif box.type == b"moov":
                if moov is not None:
                    raise CorruptInput("the file holds two moov boxes")
                moov = box
            elif box.type == b"mdat":
                mdat_bytes += box.end - box.body
            elif box.type == b"moof":
                fragmented = True
        if top == b"moov":
            movie_boxes.append((path, box))
            if box.type == b"mvex":
                fragmented = True
        elif top == b"moof":
            if box.type == b"tfhd" and box.end - box.body >= 8:
                current_traf_track = int.from_bytes(data[box.body + 4 : box.body + 8], "big")
            elif box.type == b"trun" and box.end - box.body >= 8:
                count = int.from_bytes(data[box.body + 4 : box.body + 8], "big")
                fragment_samples[current_traf_track] = (
                    fragment_samples.get(current_traf_track, 0) + count
                )
    if moov is None:
        raise CorruptInput("the movie has no moov box (truncated, or not a movie)")
    movie = Movie(brands, moov, fragmented, mdat_bytes=mdat_bytes)
    movie.fragment_samples = fragment_samples
    _read_movie(data, movie, movie_boxes)
    return movie


def _u(data: bytes, pos: int, size: int, end: int) -> int:
    if pos + size > end:
        raise CorruptInput(f"box field at byte {pos} runs past its box")
    return int.from_bytes(data[pos : pos + size], "big")


def _read_movie(data: bytes, movie: Movie, found: list[tuple[tuple[bytes, ...], Box]]) -> None:
    track: Track | None = None
    meta: MetaBox | None = None
    item_box: Box | None = None
    item: Item | None = None
    keys: list[str] = []
    for path, box in found:
        kind, b, e = box.type, box.body, box.end
        if kind == b"mvhd":
            version = _u(data, b, 1, e)
            if version == 1:
                movie.timescale, movie.duration = _u(data, b + 20, 4, e), _u(data, b + 24, 8, e)
            else:
                movie.timescale, movie.duration = _u(data, b + 12, 4, e), _u(data, b + 16, 4, e)
        elif kind == b"trak":
            track = Track()
            movie.tracks.append(track)
        elif track is not None and path[:2] == (b"moov", b"trak"):
            _read_track_box(data, track, path, box)
        if kind == b"meta":
            meta = MetaBox("/".join(p.decode("latin-1") for p in path), b"")
            movie.metas.append(meta)
            keys = []
        elif meta is not None and len(path) >= 2 and path[-2] == b"meta":
            if kind == b"hdlr":
                meta.handler = data[b + 8 : b + 12]
            elif kind == b"keys":
                keys = _parse_keys(data, box)
        elif meta is not None and _is_item(path):
            item_box = box
            item = Item(_item_name(kind, keys, meta.handler), [])
            meta.items.append(item)
        elif item is not None and item_box is not None and box.start < item_box.end:
            if kind == b"data":
                value = _data_text(data, box)
                if value is not None:
                    item.values.append(value)
            elif kind in (b"mean", b"name") and item.name.startswith("----"):
                text = data[b + 4 : e].decode("utf-8", "replace")
                mean, _, name = item.name[5:].partition(":")
                item.name = f"----:{text}:{name}" if kind == b"mean" else f"----:{mean}:{text}"


def _read_track_box(data: bytes, track: Track, path: tuple[bytes, ...], box: Box) -> None:
    kind, b, e = box.type, box.body, box.end
    if kind == b"tkhd":
        version = _u(data, b, 1, e)
        track.track_id = _u(data, b + (20 if version == 1 else 12), 4, e)
        matrix = b + (52 if version == 1 else 40)
        if matrix + 36 <= e:
            a, bb = struct.unpack_from(">ii", data, matrix)
            track.rotation = round(math.degrees(math.atan2(bb, a))) % 360
    elif kind == b"mdhd":
        version = _u(data, b, 1, e)
        if version == 1:
            track.timescale, track.duration = _u(data, b + 20, 4, e), _u(data, b + 24, 8, e)
        else:
            track.timescale, track.duration = _u(data, b + 12, 4, e), _u(data, b + 16, 4, e)
    elif kind == b"hdlr" and path[-2] == b"mdia":
        track.handler = data[b + 8 : b + 12]
        track.handler_name = _cstring(data[b + 24 : e])
    elif kind == b"stsd":
        # first sample entry: its 4cc names the codec; a visual entry holds its size
        if b + 16 <= e:
            entry_size = _u(data, b + 8, 4, e)
            track.codec = data[b + 12 : b + 16].decode("latin-1")
            entry = b + 16  # past the entry's size and type
            if track.handler == b"vide" and entry + 74 <= min(e, b + 8 + entry_size):
                track.width = _u(data, entry + 24, 2, e)
                track.height = _u(data, entry + 26, 2, e)
                n = data[entry + 42]
                track.compressor = data[entry + 43 : entry + 43 + min(n, 31)].decode(
                    "latin-1", "replace"
                )
    elif kind == b"stsz":
        track.samples = _u(data, b + 8, 4, e)
        uniform = _u(data, b + 4, 4, e)
        if uniform:
            track.sample_bytes = uniform * track.samples
        else:
            if b + 12 + 4 * track.samples > e:
                raise CorruptInput(
                    f"stsz declares {track.samples} samples but holds room for {(e - b - 12) // 4}"
                )
            sizes = struct.unpack_from(f">{track.samples}I", data, b + 12)
            track.sample_bytes = sum(sizes)


def _cstring(raw: bytes) -> str:
    # QuickTime handler names are Pascal strings; ISO's are NUL-terminated
    if raw and raw[0] == len(raw) - 1 and raw[0] > 0:
        raw = raw[1:]
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()


def _parse_keys(data: bytes, box: Box) -> list[str]:
    b, e = box.body, box.end
    count = _u(data, b + 4, 4, e)
    if count * 8 > e - b - 8:
        raise CorruptInput(f"keys box declares {count} keys, more than its {e - b} bytes hold")
    keys: list[str] = []
    pos = b + 8
    for _ in range(count):
        size = _u(data, pos, 4, e)
        if size < 8 or pos + size > e:
            raise CorruptInput(f"keys entry at byte {pos} declares {size} bytes")
        keys.append(data[pos + 8 : pos + size].decode("utf-8", "replace"))
        pos += size
    return keys


def _item_name(kind: bytes, keys: list[str], handler: bytes) -> str:
    if kind == b"----":
        return "----::"
    if handler == b"mdta" or (keys and kind[0] == 0):
        index = int.from_bytes(kind, "big")
        return keys[index - 1] if 0 < index <= len(keys) else f"#{index}"
    return kind.decode("latin-1")


def _data_text(data: bytes, box: Box) -> str | None:
    b, e = box.body, box.end
    if e - b < 8:
        return None
    type_code = _u(data, b, 4, e) & 0xFFFFFF
    raw = data[b + 8 : e]
    if type_code == _UTF8:
        return raw.decode("utf-8", "replace")
    if type_code == _UTF16:
        return raw.decode("utf-16-be", "replace")
    return None


# ================================================================ the handler
def _looks_like_record(name: str, value: str) -> bool:
    if name.rsplit(":", 1)[-1].upper() == RECORD_KEY:
        return True
    head = value.lstrip()[:32]
    return head.startswith("{") and '"aigc"' in head.lower()


def _carrier(meta: MetaBox, item: Item) -> str:
    if meta.handler == b"mdta":
        where = "mp4:mdta" if meta.path == "moov/udta/meta" else f"mp4:{meta.path}:mdta"
        return f"{where}:{item.name}"
    return f"mp4:{meta.path}:{meta.handler.decode('latin-1') or '?'}:{item.name}"


def _found(raw: str) -> FoundRecord:
    try:
        return FoundRecord("", raw, Record.parse(raw))
    except InvalidRecord as exc:
        return FoundRecord("", raw, None, exc.detail)


def video_info(movie: Movie, file_bytes: int) -> VideoInfo | None:
    """What the headers say about the first video track (None without one)."""
    video = next((t for t in movie.tracks if t.handler == b"vide"), None)
    if video is None:
        return None
    if video.timescale and video.duration:
        seconds = video.duration / video.timescale
    elif movie.timescale:
        seconds = movie.duration / movie.timescale
    else:
        seconds = 0.0
    frames = video.samples + movie.fragment_samples.get(video.track_id, 0)
    stream_bytes = video.sample_bytes or file_bytes
    if movie.fragmented:
        stream_bytes = max(stream_bytes, movie.mdat_bytes)
    bitrate = round(8 * stream_bytes / seconds) if seconds > 0 else None
    return VideoInfo(
        seconds=seconds,
        width=video.width,
        height=video.height,
        frames=frames,
        bitrate=bitrate,
        codec=video.codec,
        rotation=video.rotation,
    )


class IsoBmffHandler:
    """MP4, MOV and M4V (and, as :data:`AUDIO_HANDLER`, M4A): the ``mdta`` key ``AIGC``."""

    paged_types = ()

    def __init__(self, kind: Kind, name: str, capabilities: frozenset[Capability]) -> None:
        self.kind = kind
        self.name = name
        self.capabilities = capabilities
        self.media_types = tuple(t for t, k in MEDIA_TYPES.items() if k == kind)
        self.media_type = self.media_types[0]

    def accept(self, data: bytes) -> str | None:
        found = accept(data[:128])
        return found if found in self.media_types else None

    def carry_metadata(
        self, original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS
    ) -> bytes:
        """See :func:`carry_metadata`."""
        return carry_metadata(original, reencoded, limits)

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        movie = parse(data, limits)
        media_type = accept(data[:128]) or "video/mp4"
        meta = Metadata(media_type=media_type)
        ours: list[FoundRecord] = []
        others: list[FoundRecord] = []
        for box in movie.metas:
            for item in box.items:
                carrier = _carrier(box, item)
                for value in item.values:
                    if _looks_like_record(item.name, value):
                        found = _found(value)
                        found.carrier = carrier
                        (ours if carrier == CARRIER else others).append(found)
                    elif value:
                        meta.properties.setdefault(carrier, value[:4096])
        meta.records = ours + others  # the format's own carrier first
        if movie.brands:
            meta.properties["mp4:ftyp"] = " ".join(movie.brands)
        for i, track in enumerate(movie.tracks, 1):
            if track.handler_name:
                meta.properties[f"mp4:trak{i}:handler"] = track.handler_name
            if track.compressor:
                meta.properties[f"mp4:trak{i}:compressor"] = track.compressor
        encoder = next(
            (
                v
                for k, v in meta.properties.items()
                if k.endswith((":©too", ":encoder", ":com.apple.quicktime.software", ":©swr"))
            ),
            None,
        )
        if encoder:
            meta.properties["video:encoder"] = encoder
        video = next((t for t in movie.tracks if t.handler == b"vide" and t.handler_name), None)
        if video is not None:
            meta.properties["video:handler"] = video.handler_name
        meta.video = video_info(movie, len(data))
        if meta.video is not None:
            meta.size = (meta.video.width, meta.video.height)
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """Exactly one record: the ``mdta`` key ``AIGC`` in ``moov/udta/meta``."""
        movie = parse(data, limits)
        tree = _Node.parse(data, movie.moov)
        for meta in tree.find_all(b"meta"):
            _drop_records(meta)
        _put_record(tree, record.dumps(wrapped=False))
        return _replace_moov(data, movie, tree, limits)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 over the payload of every ``mdat`` box, in file order.

        The coded samples live there; ``moov`` (sample tables, metadata,
        the record) and C2PA's ``uuid`` box do not count, so the digest is the
        same before and after a record is written or a manifest is signed.
        """
        hasher = ContentHasher("isobmff")
        found = False
        limits.check("max_bytes", len(data), "the file")
        # the top level is enough: mdat is never nested, and write_record and
        # read walk (and check) the movie's own boxes
        for box in boxes(data, 0, len(data)):
            if box.type == b"mdat":
                hasher.add(memoryview(data)[box.body : box.end])
                found = True
        if not found:
            raise CorruptInput("the movie has no mdat box: no coded samples to digest")
        return hasher.digest()


HANDLER = IsoBmffHandler(
    Kind.VIDEO,
    "MP4/MOV/M4V",
    frozenset(
        {
            Capability.RECORD,
            Capability.C2PA,
            Capability.VISIBLE,
            Capability.WATERMARK,
            Capability.DIGEST,
        }
    ),
)
#: M4A/M4B audio in the same container (registered by labelers.formats.m4a)
AUDIO_HANDLER = IsoBmffHandler(Kind.AUDIO, "M4A", AUDIO_CAPABILITIES | {Capability.C2PA})


def carry_metadata(original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """``reencoded`` with ``original``'s movie-level and track-level metadata.

    After a re-encode of the video stream (which keeps the streams but loses
    or rewrites tags), the new file gets the original's ``moov/udta`` and
    ``moov/meta`` (every key, item and record), and each track gets the
    ``udta`` of the original track with the same handler at the same rank.
    Sample tables, sample data and the new encoder's stream settings stay.
    """
    old = parse(original, limits)
    new = parse(reencoded, limits)
    old_tree = _Node.parse(original, old.moov)
    new_tree = _Node.parse(reencoded, new.moov)
    new_tree.children = [c for c in new_tree.children if c.type not in (b"udta", b"meta")]
    new_tree.children += [c for c in old_tree.children if c.type in (b"udta", b"meta")]
    old_tracks = _tracks_by_handler(old_tree)
    for handler, tracks in _tracks_by_handler(new_tree).items():
        for rank, trak in enumerate(tracks):
            source = old_tracks.get(handler, [])
            if rank >= len(source):
                continue
            trak.children = [c for c in trak.children if c.type != b"udta"]
            trak.children += [c for c in source[rank].children if c.type == b"udta"]
    return _replace_moov(reencoded, new, new_tree, limits)


def _tracks_by_handler(moov: _Node) -> dict[bytes, list[_Node]]:
    out: dict[bytes, list[_Node]] = {}
    for trak in (c for c in moov.children if c.type == b"trak"):
        hdlr = trak.path(b"mdia", b"hdlr")
        handler = hdlr.payload[8:12] if hdlr is not None else b""
        out.setdefault(handler, []).append(trak)
    return out


# ============================================================ the moov tree
@dataclass
class _Node:
    """A box as an editable tree: containers hold children, leaves their payload."""

    type: bytes
    prefix: bytes = b""  # bytes before the children (meta's full-box header)
    payload: bytes = b""  # leaves only
    children: list[_Node] = field(default_factory=list)
    container: bool = False
    large: bool = False  # written with a 64-bit size, as it was read

    @classmethod
    def parse(cls, data: bytes, box: Box, depth: int = 0, in_ilst: bool = False) -> _Node:
        if depth > MAX_DEPTH:
            raise CorruptInput(f"boxes nest deeper than {MAX_DEPTH} levels")
        node = cls(box.type, large=box.header == 16)
        if box.type in _CONTAINERS or in_ilst:
            skip = meta_prefix(data, box) if box.type == b"meta" else 0
            try:
                kids = children(data, box)
            except CorruptInput:
                if not in_ilst:
                    raise
                node.payload = data[box.body : box.end]  # a private item layout, kept whole
                return node
            node.container = True
            node.prefix = data[box.body : box.body + skip]
            node.children = [
                cls.parse(data, kid, depth + 1, in_ilst=box.type == b"ilst") for kid in kids
            ]
            used = kids[-1].end if kids else box.body + skip
            node.payload = data[used : box.end]  # a zero terminator, kept as it was
        else:
            node.payload = data[box.body : box.end]
        return node

    def dump(self) -> bytes:
        if self.container:
            body = self.prefix + b"".join(c.dump() for c in self.children) + self.payload
        else:
            body = self.payload
        if self.large or len(body) + 8 > 0xFFFFFFFF:
            return struct.pack(">I4sQ", 1, self.type, len(body) + 16) + body
        return struct.pack(">I4s", len(body) + 8, self.type) + body

    def child(self, btype: bytes) -> _Node | None:
        return next((c for c in self.children if c.type == btype), None)

    def path(self, *types: bytes) -> _Node | None:
        node: _Node | None = self
        for btype in types:
            node = node.child(btype) if node is not None else None
        return node

    def find_all(self, btype: bytes) -> Iterator[_Node]:
        for c in self.children:
            if c.type == btype:
                yield c
            if c.container and c.type != b"ilst":
                yield from c.find_all(btype)


def _leaf(btype: bytes, payload: bytes) -> _Node:
    return _Node(btype, payload=payload)


def _handler_of(meta: _Node) -> bytes:
    hdlr = meta.child(b"hdlr")
    return hdlr.payload[8:12] if hdlr is not None and len(hdlr.payload) >= 12 else b""


def _keys_of(meta: _Node) -> list[bytes]:
    """The raw entries (namespace + name) of a meta's keys box."""
    keys = meta.child(b"keys")
    if keys is None:
        return []
    raw = keys.payload
    if len(raw) < 8:
        raise CorruptInput("keys box is truncated")
    count = int.from_bytes(raw[4:8], "big")
    if count * 8 > len(raw) - 8:
        raise CorruptInput(f"keys box declares {count} keys, more than it holds")
    out, pos = [], 8
    for _ in range(count):
        size = int.from_bytes(raw[pos : pos + 4], "big")
        if size < 8 or pos + size > len(raw):
            raise CorruptInput(f"keys entry declares {size} bytes")
        out.append(raw[pos + 4 : pos + size])
        pos += size
    return out


def _dump_keys(entries: list[bytes]) -> bytes:
    out = bytearray(b"\x00\x00\x00\x00" + len(entries).to_bytes(4, "big"))
    for entry in entries:
        out += (len(entry) + 4).to_bytes(4, "big") + entry
    return bytes(out)


def _item_values(item: _Node) -> list[str]:
    out = []
    for d in item.children:
        if d.type == b"data" and len(d.payload) >= 8:
            code = int.from_bytes(d.payload[:4], "big") & 0xFFFFFF
            if code == _UTF8:
                out.append(d.payload[8:].decode("utf-8", "replace"))
            elif code == _UTF16:
                out.append(d.payload[8:].decode("utf-16-be", "replace"))
    return out


def _freeform_name(item: _Node) -> str:
    name = item.child(b"name")
    return name.payload[4:].decode("utf-8", "replace") if name is not None else ""


def _drop_records(meta: _Node) -> None:
    """Remove every record this meta box holds, in any of the forms read.

    In an ``mdta`` list the remaining keys are renumbered and their items
    follow them; an item whose key index points nowhere is kept as it was.
    """
    ilst = meta.child(b"ilst")
    if ilst is None:
        return
    mdta = _handler_of(meta) == b"mdta"
    # keyed items as the reader names them (_item_name): every item of an
    # mdta list, and index-typed items of any list with a keys box (a meta
    # whose handler was damaged still carries a readable record)
    keys = _keys_of(meta)
    drop_keys = {
        i
        for i, entry in enumerate(keys, 1)
        if entry[4:].decode("utf-8", "replace").upper() == RECORD_KEY
    }

    def keyed(item: _Node) -> bool:
        return item.type != b"----" and (mdta or (bool(keys) and item.type[0] == 0))

    def is_record(item: _Node) -> bool:
        if keyed(item) and int.from_bytes(item.type, "big") in drop_keys:
            return True
        if item.type == b"----":
            name = _freeform_name(item)
        elif keyed(item):
            name = ""
        else:
            name = item.type.decode("latin-1")
        return any(_looks_like_record(name, v) for v in _item_values(item))

    kept = [item for item in ilst.children if not is_record(item)]
    if drop_keys:
        renumber = {}
        new_keys = []
        for i, entry in enumerate(keys, 1):
            if i not in drop_keys:
                new_keys.append(entry)
                renumber[i] = len(new_keys)
        for item in kept:
            index = int.from_bytes(item.type, "big")
            if keyed(item) and index in renumber:
                item.type = renumber[index].to_bytes(4, "big")
        keys_node = meta.child(b"keys")
        assert keys_node is not None
        keys_node.payload = _dump_keys(new_keys)
    ilst.children = kept


def _put_record(moov: _Node, value: str) -> None:
    """Add the ``AIGC`` key and its item to ``moov/udta/meta`` (made when missing)."""
    udta = moov.child(b"udta")
    if udta is None:
        udta = _Node(b"udta", container=True)
        moov.children.append(udta)
    meta = next((m for m in udta.children if m.type == b"meta" and _handler_of(m) == b"mdta"), None)
    if meta is None:
        # before any iTunes (mdir) list: readers that take the first meta see the record
        meta = _Node(
            b"meta",
            prefix=b"\x00\x00\x00\x00",
            container=True,
            children=[
                _leaf(b"hdlr", b"\x00" * 8 + b"mdta" + b"\x00" * 13),
                _leaf(b"keys", _dump_keys([])),
                _Node(b"ilst", container=True),
            ],
        )
        first_meta = next((i for i, c in enumerate(udta.children) if c.type == b"meta"), None)
        udta.children.insert(len(udta.children) if first_meta is None else first_meta, meta)
    if meta.child(b"keys") is None:
        meta.children.insert(1, _leaf(b"keys", _dump_keys([])))
    if meta.child(b"ilst") is None:
        meta.children.append(_Node(b"ilst", container=True))
    keys = _keys_of(meta)
    keys_node, ilst = meta.child(b"keys"), meta.child(b"ilst")
    assert keys_node is not None and ilst is not None
    # items whose key index points nowhere (no reader can name them) are kept,
    # but past every key: a new key must not give one of them its name
    orphans = [
        item
        for item in ilst.children
        if item.type != b"----" and not 0 < int.from_bytes(item.type, "big") <= len(keys)
    ]
    keys.append(b"mdta" + RECORD_KEY.encode())
    data_box = _leaf(b"data", _UTF8.to_bytes(4, "big") + b"\x00" * 4 + value.encode("utf-8"))
    ilst.children.append(_Node(len(keys).to_bytes(4, "big"), container=True, children=[data_box]))
    # keys of another namespace go last: FFmpeg (5.x) misreads every key after
    # one whose namespace is not mdta, and the record must stay readable
    order = [i for i, k in enumerate(keys, 1) if k[:4] == b"mdta"]
    order += [i for i, k in enumerate(keys, 1) if k[:4] != b"mdta"]
    renumber = {old: new for new, old in enumerate(order, 1)}
    for item in ilst.children:
        index = int.from_bytes(item.type, "big")
        if index in renumber and not any(item is orphan for orphan in orphans):
            item.type = renumber[index].to_bytes(4, "big")
    for past, orphan in enumerate(orphans, len(keys) + 1):
        orphan.type = past.to_bytes(4, "big")
    keys_node.payload = _dump_keys([keys[i - 1] for i in order])


# ==================================================== splicing the new moov
def _replace_moov(data: bytes, movie: Movie, tree: _Node, limits: Limits) -> bytes:
    """``data`` with ``moov`` replaced by ``tree``, every absolute offset fixed.

    Offsets at or past the old ``moov``'s end move by the growth; a 32-bit
    chunk offset table that would overflow becomes a 64-bit one, which grows
    ``moov`` again, so the growth is settled in a few rounds.
    """
    old = movie.moov
    offset_nodes = [(n, n.type, n.payload) for t in (b"stco", b"co64") for n in tree.find_all(t)]
    saio_nodes = [(n, n.payload) for n in tree.find_all(b"saio")]
    delta = 0
    for _ in range(4):
        for node, btype, payload in offset_nodes:
            _shift_chunk_offsets(node, btype, payload, old.end, delta)
        for node, payload in saio_nodes:
            node.payload = _shift_saio(payload, old.end, delta)
        new_moov = tree.dump()
        grown = len(new_moov) - (old.end - old.start)
        if grown == delta:
            break
        delta = grown
    else:
        raise CorruptInput("the movie's chunk offsets could not be settled")
    size = len(data) + delta
    if size > limits.max_bytes:
        raise limits.exceeded(
            "max_bytes",
            size,
            f"the labelled file would be {size} bytes, over the {limits.max_bytes}-byte limit",
        )
    # one copy of the samples: joined from views, not sliced and appended
    view = memoryview(data)
    out = b"".join((view[: old.start], new_moov, view[old.end :]))
    if delta and movie.fragmented:
        patched = bytearray(out)
        _shift_fragments(patched, old.start + len(new_moov), old.end, delta, limits)
        out = bytes(patched)
    return out


def _shift_chunk_offsets(node: _Node, btype: bytes, payload: bytes, at: int, delta: int) -> None:
    """Set ``node`` to the table ``btype``/``payload`` as read, offsets past ``at`` moved."""
    if len(payload) < 8:
        raise CorruptInput(f"{_name(btype)} box is truncated")
    count = int.from_bytes(payload[4:8], "big")
    wide = 8 if btype == b"co64" else 4
    if 8 + count * wide > len(payload):
        raise CorruptInput(
            f"{_name(btype)} declares {count} chunk offsets, more than its "
            f"{len(payload)} bytes hold"
        )
    offsets = [
        o + delta if o >= at else o
        for o in struct.unpack_from(f">{count}{'Q' if wide == 8 else 'I'}", payload, 8)
    ]
    node.type = btype
    if wide == 4 and offsets and max(offsets) > 0xFFFFFFFF:
        node.type, wide = b"co64", 8  # a 32-bit table that no longer fits
    fmt = f">{count}{'Q' if wide == 8 else 'I'}"
    node.payload = (
        payload[:8]
        + struct.pack(fmt, *offsets)
        + payload[8 + count * (8 if btype == b"co64" else 4) :]
    )


def _shift_saio(payload: bytes, at: int, delta: int) -> bytes:
    """Sample auxiliary information offsets (encryption), absolute outside fragments."""
    if len(payload) < 8:
        raise CorruptInput("saio box is truncated")
    version, flags = payload[0], int.from_bytes(payload[1:4], "big")
    pos = 4 + (8 if flags & 1 else 0)
    count = int.from_bytes(payload[pos : pos + 4], "big")
    wide = 8 if version else 4
    if pos + 4 + count * wide > len(payload):
        raise CorruptInput(f"saio declares {count} offsets, more than it holds")
    fmt = f">{count}{'Q' if wide == 8 else 'I'}"
    offsets = [o + delta if o >= at else o for o in struct.unpack_from(fmt, payload, pos + 4)]
    if wide == 4 and offsets and max(offsets) > 0xFFFFFFFF:
        raise UnsupportedMedia("the file's encryption offsets would overflow 32 bits")
    return payload[: pos + 4] + struct.pack(fmt, *offsets) + payload[pos + 4 + count * wide :]


def _shift_fragments(out: bytearray, start: int, at: int, delta: int, limits: Limits) -> None:
    """Fix ``tfhd`` base data offsets and ``tfra`` moof offsets after ``moov`` grew.

    They are absolute file offsets in fragmented files; offsets relative to
    a ``moof`` (``default-base-is-moof``, ``trun`` data offsets) need nothing.
    """
    budget = _Budget()
    data = bytes(out)
    for top in boxes(data, start, len(data), budget):
        if top.type not in (b"moof", b"mfra"):
            continue
        for box in children(data, top, budget):
            if box.type == b"traf":
                for sub in children(data, box, budget):
                    if sub.type == b"tfhd" and sub.end - sub.body >= 16:
                        flags = int.from_bytes(data[sub.body + 1 : sub.body + 4], "big")
                        if flags & 1:
                            pos = sub.body + 8
                            (base,) = struct.unpack_from(">Q", data, pos)
                            if base >= at:
                                struct.pack_into(">Q", out, pos, base + delta)
            elif box.type == b"tfra":
                _shift_tfra(data, out, box, at, delta)


def _shift_tfra(data: bytes, out: bytearray, box: Box, at: int, delta: int) -> None:
    b, e = box.body, box.end
    version = _u(data, b, 1, e)
    sizes = _u(data, b + 8, 4, e)
    count = _u(data, b + 12, 4, e)
    wide = 8 if version == 1 else 4
    skip = ((sizes >> 4) & 3) + ((sizes >> 2) & 3) + (sizes & 3) + 3
    entry = 2 * wide + skip
    if b + 16 + count * entry > e:
        raise CorruptInput(f"tfra declares {count} entries, more than it holds")
    for i in range(count):
        pos = b + 16 + i * entry + wide
        value = int.from_bytes(data[pos : pos + wide], "big")
        if value >= at:
            if wide == 4 and value + delta > 0xFFFFFFFF:
                raise UnsupportedMedia("the fragment index offsets would overflow 32 bits")
            out[pos : pos + wide] = (value + delta).to_bytes(wide, "big")
