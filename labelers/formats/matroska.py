"""Matroska and WebM: the record as the SimpleTag ``AIGC`` in ``Segment/Tags``.

Owns the bytes of EBML files. The record is a global ``Tag`` (empty
``Targets``: the whole segment) holding a ``SimpleTag`` whose ``TagName`` is
``AIGC`` and whose ``TagString`` is the inner seven-field JSON object. Reading
also takes a wrapped ``{"AIGC": ...}`` value, any capitalisation of the name,
and a record in any other tag; the rest (``MuxingApp``, ``WritingApp``,
``ENCODER`` and vendor tags, track names) comes back as properties for the
trace detectors.

Writing edits whole level-1 elements and nothing inside a ``Cluster``: an
existing ``Tags`` is rebuilt with the record (other tags kept), or a new one
goes after the last element when a ``SeekHead`` can point to it (with a new
``Seek`` entry), else before the first ``Cluster``. Every segment position
that moved is fixed: ``SeekHead`` entries, ``Cues`` cluster positions and
codec states, ``Cluster/Position``; growth of an element followed by an
``EbmlVoid`` is taken out of the void, so clusters usually stay where they
were. ``CRC-32`` children of rewritten elements are recomputed, and the
segment's size follows (an unknown-size segment, as live WebM writers leave
it, stays unknown). Unknown-size clusters are walked to the next top-level
element; other unknown-size elements are refused.

Hostile input: every size is checked against its parent, nesting depth and
element count are bounded.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from labelers.errors import CorruptInput, UnsupportedMedia
from labelers.formats import Capability, ContentHasher, FoundRecord, Kind, Metadata, VideoInfo
from labelers.formats.parse_once import parsed_once
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import InvalidRecord, Record

EBML_MAGIC = b"\x1a\x45\xdf\xa3"
MEDIA_TYPES = {"video/webm": "video", "video/x-matroska": "video"}
RECORD_KEY = "AIGC"
CARRIER = "mkv:Tags:SimpleTag:AIGC"
MAX_DEPTH = 16
MAX_ELEMENTS = 500_000  # walked per file; one per frame at most, plus headers

# element IDs (with their length marker, as they are written)
EBML = 0x1A45DFA3
DOCTYPE = 0x4282
SEGMENT = 0x18538067
SEEKHEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMP_SCALE, DURATION, TITLE = 0x1549A966, 0x2AD7B1, 0x4489, 0x7BA9
MUXING_APP, WRITING_APP = 0x4D80, 0x5741
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_UID, TRACK_TYPE = 0x1654AE6B, 0xAE, 0xD7, 0x73C5, 0x83
CODEC_ID, DEFAULT_DURATION, NAME = 0x86, 0x23E383, 0x536E
VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = 0xE0, 0xB0, 0xBA
PROJECTION, POSE_ROLL = 0x7670, 0x7675
CLUSTER, CLUSTER_POSITION, PREV_SIZE = 0x1F43B675, 0xA7, 0xAB
CUES, CUE_POINT, CUE_TRACK_POSITIONS = 0x1C53BB6B, 0xBB, 0xB7
CUE_CLUSTER_POSITION, CUE_CODEC_STATE, CUE_REFERENCE = 0xF1, 0xEA, 0xDB
CHAPTERS, ATTACHMENTS = 0x1043A770, 0x1941A469
TAGS, TAG, TARGETS, TAG_TRACK_UID = 0x1254C367, 0x7373, 0x63C0, 0x63C5
SIMPLE_TAG, TAG_NAME, TAG_STRING = 0x67C8, 0x45A3, 0x4487
VOID, CRC32 = 0xEC, 0xBF
LEVEL1 = frozenset({SEEKHEAD, INFO, TRACKS, CLUSTER, CUES, CHAPTERS, TAGS, ATTACHMENTS})
#: master elements this module descends into
_MASTERS = frozenset(
    {EBML, SEGMENT, SEEKHEAD, SEEK, INFO, TRACKS, TRACK_ENTRY, VIDEO, PROJECTION, CUES}
    | {CUE_POINT, CUE_TRACK_POSITIONS, CUE_REFERENCE, TAGS, TAG, TARGETS, SIMPLE_TAG}
)
#: children holding a segment position, per parent
_POSITIONS = {SEEK: SEEK_POSITION, CUE_TRACK_POSITIONS: CUE_CLUSTER_POSITION}


# ================================================================== the walker
@dataclass(frozen=True)
class Element:
    id: int
    start: int  # first byte of the ID
    header: int  # ID + size bytes
    end: int  # past the payload
    unknown_size: bool = False

    @property
    def body(self) -> int:
        return self.start + self.header


class _Budget:
    def __init__(self) -> None:
        self.count = 0

    def take(self, n: int = 1) -> None:
        self.count += n
        if self.count > MAX_ELEMENTS:
            raise CorruptInput(f"the file holds more than {MAX_ELEMENTS} EBML elements")


def _vint(data: bytes, pos: int, end: int, keep_marker: bool) -> tuple[int, int, bool]:
    """(value, length, all ones) of the EBML variable-length integer at ``pos``."""
    if pos >= end:
        raise CorruptInput(f"EBML number at byte {pos} is truncated")
    first = data[pos]
    if first == 0:
        raise CorruptInput(f"invalid EBML number at byte {pos}")
    length = 9 - first.bit_length()
    if pos + length > end:
        raise CorruptInput(f"EBML number at byte {pos} is truncated")
    value = int.from_bytes(data[pos : pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    ones = value == (1 << (7 * length)) - 1 and not keep_marker
    return value, length, ones


def header(data: bytes, pos: int, end: int) -> tuple[int, int, int | None]:
    """(ID, header length, size or None for unknown) of the element at ``pos``."""
    eid, id_len, _ = _vint(data, pos, end, keep_marker=True)
    if id_len > 4:
        raise CorruptInput(f"EBML element ID at byte {pos} is longer than 4 bytes")
    size, size_len, unknown = _vint(data, pos + id_len, end, keep_marker=False)
    return eid, id_len + size_len, None if unknown else size


def elements(
    data: bytes, start: int, end: int, budget: _Budget, level1: bool = False
) -> list[Element]:
    """The elements in ``data[start:end]``.

    ``level1``: these are a segment's children, where an unknown-size
    ``Cluster`` runs until the next top-level element.
    """
    out: list[Element] = []
    pos = start
    while pos < end:
        eid, head, size = header(data, pos, end)
        if size is None:
            if not level1 or eid != CLUSTER:
                raise UnsupportedMedia(
                    f"EBML element 0x{eid:X} at byte {pos} has an unknown size; only "
                    "clusters and the segment may"
                )
            stop = _unknown_cluster_end(data, pos + head, end, budget)
            out.append(Element(eid, pos, head, stop, unknown_size=True))
            pos = stop
            continue
        if pos + head + size > end:
            raise CorruptInput(
                f"EBML element 0x{eid:X} at byte {pos} declares {size} bytes but only "
                f"{end - pos - head} remain in its parent (truncated or lying size)"
            )
        out.append(Element(eid, pos, head, pos + head + size))
        pos += head + size
    budget.take(len(out))
    return out


def _unknown_cluster_end(data: bytes, pos: int, end: int, budget: _Budget) -> int:
    while pos < end:
        eid, head, size = header(data, pos, end)
        if eid in LEVEL1 or eid == EBML:
            return pos
        if size is None or pos + head + size > end:
            raise CorruptInput(f"cluster child 0x{eid:X} at byte {pos} has a bad size")
        budget.take()
        pos += head + size
    return end


def accept(head: bytes) -> str | None:
    """``video/webm`` or ``video/x-matroska`` from the EBML header's DocType, else None."""
    if not head.startswith(EBML_MAGIC):
        return None
    try:
        _, hlen, size = header(head, 0, len(head))
        body_end = min(len(head), hlen + (size or 0))
        for el in elements(head, hlen, body_end, _Budget()):
            if el.id == DOCTYPE:
                doc = head[el.body : el.end].rstrip(b"\x00")
                return {b"webm": "video/webm", b"matroska": "video/x-matroska"}.get(doc)
    except (CorruptInput, UnsupportedMedia):
        return None
    return None


# ================================================================== parsing
@dataclass
class Track:
    number: int = 0
    uid: int = 0
    type: int = 0  # 1 video, 2 audio, 17 subtitle
    codec: str = ""
    name: str = ""
    default_duration: int = 0  # ns per frame
    width: int = 0
    height: int = 0
    rotation: int = 0


@dataclass
class SimpleTag:
    name: str
    value: str
    track_uid: int = 0  # 0: global


@dataclass
class Segment:
    element: Element
    children: list[Element]
    doctype: str
    timestamp_scale: int = 1_000_000
    duration: float = 0.0  # in timestamp units
    title: str = ""
    muxing_app: str = ""
    writing_app: str = ""
    tracks: list[Track] = field(default_factory=list)
    tags: list[SimpleTag] = field(default_factory=list)

    @property
    def data_start(self) -> int:
        return self.element.body


def _uint(data: bytes, el: Element) -> int:
    if el.end - el.body > 8:
        raise CorruptInput(f"EBML integer 0x{el.id:X} at byte {el.start} is longer than 8 bytes")
    return int.from_bytes(data[el.body : el.end], "big")


def _float(data: bytes, el: Element) -> float:
    raw = data[el.body : el.end]
    if len(raw) == 4:
        return struct.unpack(">f", raw)[0]
    if len(raw) == 8:
        return struct.unpack(">d", raw)[0]
    return 0.0


def _text(data: bytes, el: Element) -> str:
    return data[el.body : el.end].split(b"\x00", 1)[0].decode("utf-8", "replace")


@parsed_once
def parse(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Segment:
    """The segment's structure and metadata, without reading any frame."""
    limits.check("max_bytes", len(data), "the file")
    if not data.startswith(EBML_MAGIC):
        raise CorruptInput("not an EBML file")
    budget = _Budget()
    _, hlen, size = header(data, 0, len(data))
    if size is None or hlen + size > len(data):
        raise CorruptInput("the EBML header is truncated")
    doctype = ""
    for el in elements(data, hlen, hlen + size, budget):
        if el.id == DOCTYPE:
            doctype = _text(data, el)
    pos = hlen + size
    while pos < len(data):
        eid, head, seg_size = header(data, pos, len(data))
        if eid == SEGMENT:
            break
        if seg_size is None or pos + head + seg_size > len(data):
            raise CorruptInput(f"element 0x{eid:X} before the segment has a bad size")
        pos += head + seg_size
    else:
        raise CorruptInput("the file has no Matroska segment (truncated?)")
    end = len(data) if seg_size is None else pos + head + seg_size
    if end > len(data):
        raise CorruptInput(
            f"the segment declares {seg_size} bytes but the file holds {len(data) - pos - head} "
            "(truncated or lying size)"
        )
    seg_el = Element(SEGMENT, pos, head, end, unknown_size=seg_size is None)
    seg = Segment(seg_el, elements(data, seg_el.body, end, budget, level1=True), doctype)
    for el in seg.children:
        if el.id == INFO:
            _read_info(data, seg, el, budget)
        elif el.id == TRACKS:
            for entry in elements(data, el.body, el.end, budget):
                if entry.id == TRACK_ENTRY:
                    seg.tracks.append(_read_track(data, entry, budget))
        elif el.id == TAGS:
            _read_tags(data, seg, el, budget)
    return seg


def _read_info(data: bytes, seg: Segment, el: Element, budget: _Budget) -> None:
    for child in elements(data, el.body, el.end, budget):
        if child.id == TIMESTAMP_SCALE:
            seg.timestamp_scale = _uint(data, child) or 1_000_000
        elif child.id == DURATION:
            seg.duration = _float(data, child)
        elif child.id == TITLE:
            seg.title = _text(data, child)
        elif child.id == MUXING_APP:
            seg.muxing_app = _text(data, child)
        elif child.id == WRITING_APP:
            seg.writing_app = _text(data, child)


def _read_track(data: bytes, entry: Element, budget: _Budget) -> Track:
    track = Track()
    for child in elements(data, entry.body, entry.end, budget):
        if child.id == TRACK_NUMBER:
            track.number = _uint(data, child)
        elif child.id == TRACK_UID:
            track.uid = _uint(data, child)
        elif child.id == TRACK_TYPE:
            track.type = _uint(data, child)
        elif child.id == CODEC_ID:
            track.codec = _text(data, child)
        elif child.id == NAME:
            track.name = _text(data, child)
        elif child.id == DEFAULT_DURATION:
            track.default_duration = _uint(data, child)
        elif child.id == VIDEO:
            for v in elements(data, child.body, child.end, budget):
                if v.id == PIXEL_WIDTH:
                    track.width = _uint(data, v)
                elif v.id == PIXEL_HEIGHT:
                    track.height = _uint(data, v)
                elif v.id == PROJECTION:
                    for p in elements(data, v.body, v.end, budget):
                        if p.id == POSE_ROLL:
                            track.rotation = round(-_float(data, p)) % 360
    return track


def _read_tags(data: bytes, seg: Segment, el: Element, budget: _Budget) -> None:
    for tag in elements(data, el.body, el.end, budget):
        if tag.id != TAG:
            continue
        uid = 0
        kids = elements(data, tag.body, tag.end, budget)
        for child in kids:
            if child.id == TARGETS:
                for t in elements(data, child.body, child.end, budget):
                    if t.id == TAG_TRACK_UID:
                        uid = _uint(data, t)
        for child in kids:
            if child.id == SIMPLE_TAG:
                _read_simple_tag(data, seg, child, uid, budget, 0)


def _read_simple_tag(
    data: bytes, seg: Segment, el: Element, uid: int, budget: _Budget, depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise CorruptInput(f"SimpleTags nest deeper than {MAX_DEPTH} levels")
    name = value = ""
    for child in elements(data, el.body, el.end, budget):
        if child.id == TAG_NAME:
            name = _text(data, child)
        elif child.id == TAG_STRING:
            value = _text(data, child)
        elif child.id == SIMPLE_TAG:
            _read_simple_tag(data, seg, child, uid, budget, depth + 1)
    seg.tags.append(SimpleTag(name, value, uid))


def _is_record(name: str, value: str) -> bool:
    if name.upper() == RECORD_KEY:
        return True
    head = value.lstrip()[:32]
    return head.startswith("{") and '"aigc"' in head.lower()


def video_info(seg: Segment, file_bytes: int) -> VideoInfo | None:
    video = next((t for t in seg.tracks if t.type == 1), None)
    if video is None:
        return None
    seconds = seg.duration * seg.timestamp_scale / 1e9
    frames = None
    if seconds > 0 and video.default_duration:
        frames = round(seconds * 1e9 / video.default_duration)
    bitrate = round(8 * file_bytes / seconds) if seconds > 0 else None
    return VideoInfo(
        seconds=seconds,
        width=video.width,
        height=video.height,
        frames=frames,
        bitrate=bitrate,
        codec=video.codec,
        rotation=video.rotation,
    )


# ================================================================= the handler
class MatroskaHandler:
    """WebM and Matroska: the record as the global SimpleTag ``AIGC``."""

    name = "WebM/MKV"
    media_type = "video/webm"
    media_types = tuple(MEDIA_TYPES)
    kind = Kind.VIDEO
    # no C2PA: the bundled c2pa cannot write Matroska
    capabilities = frozenset(
        {Capability.RECORD, Capability.VISIBLE, Capability.WATERMARK, Capability.DIGEST}
    )
    paged_types = ()

    def accept(self, data: bytes) -> str | None:
        return accept(data[:4096])

    def carry_metadata(
        self, original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS
    ) -> bytes:
        """See :func:`carry_metadata`."""
        return carry_metadata(original, reencoded, limits)

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        seg = parse(data, limits)
        meta = Metadata(media_type="video/webm" if seg.doctype == "webm" else "video/x-matroska")
        ours, others = [], []
        for tag in seg.tags:
            where = "" if not tag.track_uid else f"track{tag.track_uid}:"
            if _is_record(tag.name, tag.value):
                carrier = (
                    CARRIER
                    if not where and tag.name == RECORD_KEY
                    else (f"mkv:Tags:{where}SimpleTag:{tag.name}")
                )
                try:
                    found = FoundRecord(carrier, tag.value, Record.parse(tag.value))
                except InvalidRecord as exc:
                    found = FoundRecord(carrier, tag.value, None, exc.detail)
                (ours if carrier == CARRIER else others).append(found)
            elif tag.value:
                meta.properties.setdefault(f"mkv:tag:{where}{tag.name}", tag.value[:4096])
        meta.records = ours + others
        for key, value in (
            ("mkv:Info:MuxingApp", seg.muxing_app),
            ("mkv:Info:WritingApp", seg.writing_app),
            ("mkv:Info:Title", seg.title),
        ):
            if value:
                meta.properties[key] = value
        for i, track in enumerate(seg.tracks, 1):
            if track.name:
                meta.properties[f"mkv:track{i}:name"] = track.name
        encoder = meta.properties.get("mkv:tag:ENCODER") or seg.writing_app
        if encoder:
            meta.properties["video:encoder"] = encoder
        video = next((t for t in seg.tracks if t.type == 1 and t.name), None)
        if video is not None:
            meta.properties["video:handler"] = video.name
        meta.video = video_info(seg, len(data))
        if meta.video is not None:
            meta.size = (meta.video.width, meta.video.height)
        return meta

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """Exactly one record: the global SimpleTag ``AIGC`` (other tags kept)."""
        seg = parse(data, limits)
        record_tag = _simple_tag(RECORD_KEY, record.dumps(wrapped=False))
        edits: dict[int, _Edit] = {}
        placed = False
        for el in seg.children:
            if el.id != TAGS:
                continue
            tags = _Node.parse(data, el, _Budget())
            _drop_records(tags)
            if not placed:
                _global_tag(tags).children.append(record_tag)
                placed = True
            edits[el.start] = _Edit(el.start, el.end, tags)
        if not placed:
            new = _Node(TAGS, children=[_Node(TAG, children=[_Node(TARGETS), record_tag])])
            heads = [el for el in seg.children if el.id == SEEKHEAD]
            clusters = [el for el in seg.children if el.id == CLUSTER]
            if heads or not clusters:
                at = seg.element.end
                _add_seek_entry(data, seg, heads, at, edits)
            else:
                at = clusters[0].start
            edits[at] = _Edit(at, at, new, insert=True)
        return _apply(data, seg, edits, limits)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 over every cluster's timestamp and blocks, in file order.

        Frames live in clusters; ``Tags``, ``Cues``, ``SeekHead`` and the
        cluster's own position (which moves when a header element grows)
        do not count, so writing a record leaves the digest unchanged.
        """
        seg = parse(data, limits)
        hasher = ContentHasher("matroska")
        budget = _Budget()
        found = False
        for el in seg.children:
            if el.id != CLUSTER:
                continue
            found = True
            hasher.add(b"cluster")
            for child in elements(data, el.body, el.end, budget):
                if child.id not in (CLUSTER_POSITION, PREV_SIZE, CRC32, VOID):
                    hasher.add(child.id, memoryview(data)[child.body : child.end])
        if not found:
            raise CorruptInput("the file has no clusters: no frames to digest")
        return hasher.digest()


HANDLER = MatroskaHandler()


def carry_metadata(original: bytes, reencoded: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """``reencoded`` with ``original``'s Tags, Chapters and Attachments.

    Each replaces the re-encode's element of the same kind in place, or goes
    before the first cluster. A tag aimed at a track follows the track: its
    ``TagTrackUID`` is mapped to the UID of the re-encoded track of the same
    type and rank.
    """
    old = parse(original, limits)
    new = parse(reencoded, limits)
    uid_map = _track_uid_map(old, new)
    edits: dict[int, _Edit] = {}
    clusters = [el for el in new.children if el.id == CLUSTER]
    at = clusters[0].start if clusters else new.element.end
    inserted: list[_Node] = []
    for kind in (TAGS, CHAPTERS, ATTACHMENTS):
        theirs = [el for el in new.children if el.id == kind]
        ours = [_carried(original, el, uid_map) for el in old.children if el.id == kind]
        for i, el in enumerate(theirs):
            edits[el.start] = _Edit(el.start, el.end, ours[0] if i == 0 and ours else None)
        if ours and not theirs:
            inserted.append(ours[0])
    if inserted:
        edits[at] = _Edit(at, at, _Group(inserted), insert=True)
    _carry_title(original, old, reencoded, new, edits)
    return _apply(reencoded, new, edits, limits)


def _carry_title(
    original: bytes, old: Segment, reencoded: bytes, new: Segment, edits: dict[int, _Edit]
) -> None:
    """The segment title lives in Info, not in Tags: it is carried into the new Info."""
    info = next((el for el in new.children if el.id == INFO), None)
    if info is None:
        return
    node = _Node.parse(reencoded, info, _Budget())
    node.children = [c for c in node.children if c.id != TITLE]
    if old.title:
        node.children.append(_Node(TITLE, payload=old.title.encode("utf-8")))
    edits[info.start] = _Edit(info.start, info.end, node)


def _carried(data: bytes, el: Element, uid_map: dict[int, int]) -> _Node | _Raw:
    if el.id != TAGS:
        return _Raw(data[el.start : el.end])
    node = _Node.parse(data, el, _Budget())
    for uid_node in node.find_all(TAG_TRACK_UID):
        uid = int.from_bytes(uid_node.payload, "big")
        if uid in uid_map:
            uid_node.payload = _uint_bytes(uid_map[uid], len(uid_node.payload))
    return node


@dataclass
class _Raw:
    """An element copied byte for byte (chapters, attachments)."""

    raw: bytes
    id: int = 0

    def dump(self) -> bytes:
        return self.raw


def _track_uid_map(old: Segment, new: Segment) -> dict[int, int]:
    out = {}
    for kind in {t.type for t in old.tracks}:
        for a, b in zip(
            [t for t in old.tracks if t.type == kind],
            [t for t in new.tracks if t.type == kind],
            strict=False,
        ):
            out[a.uid] = b.uid
    return out


# ============================================================ editable nodes
def _encode_id(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def _size_bytes(size: int, width: int = 0) -> bytes:
    need = 1
    while size >= (1 << (7 * need)) - 1:
        need += 1
    width = max(width, need)
    if width > 8:
        raise CorruptInput("EBML element too large")
    return ((1 << (7 * width)) | size).to_bytes(width, "big")


def _uint_bytes(value: int, width: int = 0) -> bytes:
    need = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(max(need, min(width, 8)), "big")


@dataclass
class _Node:
    """An EBML element as an editable tree (masters listed in _MASTERS hold children)."""

    id: int
    payload: bytes = b""
    children: list[_Node] = field(default_factory=list)
    size_width: int = 0  # the width its size was written with, kept when it fits

    @property
    def master(self) -> bool:
        return self.id in _MASTERS

    @classmethod
    def parse(cls, data: bytes, el: Element, budget: _Budget, depth: int = 0) -> _Node:
        if depth > MAX_DEPTH:
            raise CorruptInput(f"EBML elements nest deeper than {MAX_DEPTH} levels")
        node = cls(el.id, size_width=el.header - len(_encode_id(el.id)))
        if el.id in _MASTERS:
            node.children = [
                cls.parse(data, c, budget, depth + 1)
                for c in elements(data, el.body, el.end, budget)
            ]
        else:
            node.payload = data[el.body : el.end]
        return node

    def dump(self) -> bytes:
        if self.master:
            kids = [c for c in self.children if c.id != CRC32]
            body = b"".join(c.dump() for c in kids)
            if len(kids) != len(self.children):  # it had a checksum: keep one, recomputed
                body = _encode_id(CRC32) + b"\x84" + struct.pack("<I", zlib.crc32(body)) + body
        else:
            body = self.payload
        return _encode_id(self.id) + _size_bytes(len(body), self.size_width) + body

    def find_all(self, eid: int) -> list[_Node]:
        out = []
        for c in self.children:
            if c.id == eid:
                out.append(c)
            if c.master:
                out.extend(c.find_all(eid))
        return out


@dataclass
class _Group:
    """Several new level-1 elements written at one place."""

    nodes: list[_Node | _Raw]

    def dump(self) -> bytes:
        return b"".join(n.dump() for n in self.nodes)


def _simple_tag(name: str, value: str) -> _Node:
    return _Node(
        SIMPLE_TAG,
        children=[
            _Node(TAG_NAME, payload=name.encode()),  # TagLanguage left at its default, und
            _Node(TAG_STRING, payload=value.encode("utf-8")),
        ],
    )


def _tag_text(node: _Node, eid: int) -> str:
    child = next((c for c in node.children if c.id == eid), None)
    return child.payload.split(b"\x00", 1)[0].decode("utf-8", "replace") if child else ""


def _drop_records(tags: _Node) -> None:
    def prune(node: _Node) -> None:
        node.children = [
            c
            for c in node.children
            if not (
                c.id == SIMPLE_TAG and _is_record(_tag_text(c, TAG_NAME), _tag_text(c, TAG_STRING))
            )
        ]
        for c in node.children:
            if c.id in (TAG, SIMPLE_TAG):
                prune(c)

    prune(tags)
    # a Tag left with nothing but its Targets says nothing: drop it
    tags.children = [
        t for t in tags.children if t.id != TAG or any(c.id == SIMPLE_TAG for c in t.children)
    ]


def _global_tag(tags: _Node) -> _Node:
    """The Tags' Tag that targets the whole segment (made when there is none)."""
    aimed = (0x63C5, 0x63C9, 0x63C4, 0x63C6)  # track, edition, chapter, attachment UIDs
    for tag in (c for c in tags.children if c.id == TAG):
        targets = next((c for c in tag.children if c.id == TARGETS), None)
        kids = targets.children if targets is not None else []
        level = next((int.from_bytes(c.payload, "big") for c in kids if c.id == 0x68CA), 50)
        if level == 50 and not any(c.id in aimed for c in kids):
            return tag
    tag = _Node(TAG, children=[_Node(TARGETS)])
    tags.children.append(tag)
    return tag


# ================================================================== splicing
@dataclass
class _Edit:
    """Replace ``data[start:end]`` (absolute) with ``node`` (None: delete it)."""

    start: int
    end: int
    node: _Node | _Group | None
    insert: bool = False
    out: bytes = b""
    covered: int = 0  # where the bytes it replaces end, a void it took in included
    #: SeekPosition nodes aimed at an insertion: (node, absolute input position)
    fresh: list[tuple[_Node, int]] = field(default_factory=list)

    def render(self, voids: dict[int, Element]) -> None:
        self.out = self.node.dump() if self.node is not None else b""
        self.covered = self.end
        void = voids.get(self.end)
        if void is None or self.insert or self.node is None:
            return
        # growth taken out of the EbmlVoid right after: what follows stays put
        room = (void.end - void.start) - (len(self.out) - (self.end - self.start))
        filler = b"" if room == 0 else _void(room)
        if room >= 0 and len(filler) == room:
            self.out += filler
            self.covered = void.end


class _Shift:
    """Where a position of the input (an element's start) lies in the output."""

    def __init__(self, edits: list[_Edit]) -> None:
        self.edits = edits

    def map(self, pos: int, landing: bool = False) -> int:
        """``landing``: the position of bytes inserted at ``pos`` (before the element there)."""
        moved = 0
        for e in self.edits:
            if e.insert:
                if e.start < pos or (e.start == pos and not landing):
                    moved += len(e.out)
            elif e.covered <= pos:
                moved += len(e.out) - (e.covered - e.start)
        return pos + moved


def _void(total: int) -> bytes:
    """An EbmlVoid element exactly ``total`` bytes long (``total`` >= 2), else b""."""
    for width in range(1, 9):
        size = total - 1 - width
        if 0 <= size < (1 << (7 * width)) - 1:
            return b"\xec" + _size_bytes(size, width) + b"\x00" * size
    return b""


def _add_seek_entry(
    data: bytes, seg: Segment, heads: list[Element], at: int, edits: dict[int, _Edit]
) -> None:
    """Point the first SeekHead at new Tags inserted at ``at``."""
    if not heads:
        return
    head = _Node.parse(data, heads[0], _Budget())
    position = _Node(SEEK_POSITION, payload=_uint_bytes(at - seg.data_start, 4))
    head.children.append(_Node(SEEK, children=[_Node(SEEK_ID, payload=_encode_id(TAGS)), position]))
    edits[heads[0].start] = _Edit(heads[0].start, heads[0].end, head, fresh=[(position, at)])


def _apply(data: bytes, seg: Segment, edits: dict[int, _Edit], limits: Limits) -> bytes:
    """Apply ``edits`` and fix every segment position that moved.

    SeekHeads and Cues are rewritten from the positions as read, mapped to
    where their elements now start; that can change their own size, so the
    layout settles over a few rounds. A Seek entry aimed at a deleted
    element goes with it.
    """
    budget = _Budget()
    base = seg.data_start
    for el in seg.children:
        if el.id in (SEEKHEAD, CUES) and el.start not in edits:
            edits[el.start] = _Edit(el.start, el.end, _Node.parse(data, el, budget))
    deleted = {e.start for e in edits.values() if e.node is None}
    positions: list[tuple[_Node, int, bool]] = []  # node, absolute input position, landing
    for edit in edits.values():
        if not isinstance(edit.node, _Node) or edit.node.id not in (SEEKHEAD, CUES):
            continue
        fresh = {id(n) for n, _ in edit.fresh}
        positions += [(n, at, True) for n, at in edit.fresh]
        for parent in edit.node.find_all(SEEK) + edit.node.find_all(CUE_TRACK_POSITIONS):
            for n in parent.children:
                if (
                    n.id in (SEEK_POSITION, CUE_CLUSTER_POSITION, CUE_CODEC_STATE)
                    and id(n) not in fresh
                ):
                    positions.append((n, base + int.from_bytes(n.payload, "big"), False))
        if edit.node.id == SEEKHEAD and deleted:
            edit.node.children = [
                seek
                for seek in edit.node.children
                if not any(
                    n.id == SEEK_POSITION and base + int.from_bytes(n.payload, "big") in deleted
                    for n in seek.children
                )
            ]
    voids = {el.start: el for el in seg.children if el.id == VOID}
    ordered = sorted(edits.values(), key=lambda e: (e.start, not e.insert))
    for edit in ordered:
        edit.render(voids)
    for _ in range(8):
        shift = _Shift(ordered)
        for node, pos, landing in positions:
            node.payload = _uint_bytes(shift.map(pos, landing) - base, len(node.payload))
        before = [e.out for e in ordered]
        for edit in ordered:
            edit.render(voids)
        if [e.out for e in ordered] == before:
            break
    else:
        raise CorruptInput("the segment's positions could not be settled")
    # the output is joined once from views of the input (the frames are copied once)
    view = memoryview(data)
    grown = sum(len(e.out) - (e.covered - e.start) for e in ordered)
    if len(data) + grown > limits.max_bytes:
        raise limits.exceeded(
            "max_bytes",
            len(data) + grown,
            f"the labelled file would be {len(data) + grown} bytes, over the "
            f"{limits.max_bytes}-byte limit",
        )
    el = seg.element
    pieces: list[bytes | memoryview] = [view[: el.start], _segment_header(data, seg, grown)]
    pos = el.body
    for edit in ordered:
        pieces += [view[pos : edit.start], edit.out]
        pos = max(pos, edit.covered)
    pieces.append(view[pos:])
    return _fix_cluster_positions(b"".join(pieces), limits)


def _segment_header(data: bytes, seg: Segment, grown: int) -> bytes:
    """The segment's ID and size after it grew by ``grown`` (an unknown size stays so)."""
    el = seg.element
    if el.unknown_size:
        return data[el.start : el.body]
    width = el.header - 4  # the segment's ID is 4 bytes
    return _encode_id(SEGMENT) + _size_bytes(el.end - el.body + grown, width)


def _fix_cluster_positions(data: bytes, limits: Limits) -> bytes:
    """Rewrite each Cluster/Position (its own segment position) in place, same width.

    Only the children before a cluster's first block are looked at; muxers
    write a position in every cluster or in none, so a first cluster without
    one ends the search.
    """
    seg = parse(data, limits)
    out: bytearray | None = None
    for el in seg.children:
        if el.id != CLUSTER:
            continue
        position = _cluster_position(data, el)
        if position is None:
            if out is None:
                return data
            continue
        value = el.start - seg.data_start
        width = position.end - position.body
        if value.bit_length() > 8 * width:
            raise UnsupportedMedia("a cluster's position no longer fits its field")
        out = out if out is not None else bytearray(data)
        out[position.body : position.end] = value.to_bytes(width, "big")
    return bytes(out) if out is not None else data


def _cluster_position(data: bytes, cluster: Element) -> Element | None:
    pos = cluster.body
    while pos < cluster.end:
        eid, head, size = header(data, pos, cluster.end)
        if size is None or eid in (0xA3, 0xA0):  # the blocks start: no position before them
            return None
        if eid == CLUSTER_POSITION:
            return Element(eid, pos, head, min(pos + head + size, cluster.end))
        pos += head + size
    return None
