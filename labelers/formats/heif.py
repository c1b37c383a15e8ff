"""HEIF-family still images (AVIF, HEIC): the record as an XMP metadata item.

Owns ISO-BMFF item bytes for still images. Reading walks the ``meta`` box
without decoding anything: the primary item's size from its ``ispe``
property, XMP from the ``mime`` item of type ``application/rdf+xml``, EXIF
text fields (and legacy records) from the ``Exif`` item.

Writing puts the packet in an ``mdat`` box appended to the file, points an XMP
item at it (reusing the existing XMP item, or adding one with a ``cdsc``
reference to the primary item), rewrites ``iloc`` with every file offset that
lies after ``meta`` moved by the amount ``meta`` grew, and copies all coded
image data unchanged. A previous label's XMP-only ``mdat`` at the end of the
file is replaced rather than left behind. Image sequences (a ``moov`` box,
whose chunk offsets this module does not rewrite) are read but not written.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass, field

from labelers.errors import CorruptInput, UnsupportedMedia
from labelers.formats import (
    IMAGE_CAPABILITIES,
    Capability,
    ContentHasher,
    FoundRecord,
    Kind,
    Metadata,
)
from labelers.formats import xmp as xmplib
from labelers.formats.parse_once import parsed_once
from labelers.formats.tiff import blank_exif_records, read_exif
from labelers.limits import DEFAULT_LIMITS, Limits
from labelers.record import Record

XMP_CONTENT_TYPE = b"application/rdf+xml"
#: item types that carry metadata, not image content (XMP and other MIME
#: payloads, EXIF, URI-typed metadata); the content digest leaves them out
METADATA_ITEM_TYPES = frozenset({b"mime", b"Exif", b"uri "})


@dataclass
class Box:
    type: bytes
    start: int
    header: int
    end: int

    @property
    def body(self) -> int:
        return self.start + self.header


def boxes(data: bytes, start: int, end: int) -> list[Box]:
    """The boxes in ``data[start:end]``; CorruptInput if one runs past ``end``."""
    out: list[Box] = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise CorruptInput(f"ISO-BMFF box header at byte {pos} is truncated")
        size, btype = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise CorruptInput(f"ISO-BMFF box header at byte {pos} is truncated")
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise CorruptInput(
                f"ISO-BMFF box {btype!r} at byte {pos} runs past the end of its container"
            )
        out.append(Box(btype, pos, header, pos + size))
        pos += size
    return out


@dataclass
class Extent:
    index: int
    offset: int
    length: int


@dataclass
class Location:
    item_id: int
    method: int = 0
    dref: int = 0
    base: int = 0
    extents: list[Extent] = field(default_factory=list)


@dataclass
class Iloc:
    version: int
    index_size: int
    items: list[Location]


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if self.pos + size > self.end:
            raise CorruptInput("HEIF item location box is truncated")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "big")
        self.pos += size
        return value


def _parse_iloc(data: bytes, box: Box) -> Iloc:
    r = _Reader(data, box.body, box.end)
    version = r.uint(1)
    r.uint(3)
    sizes = r.uint(1)
    offset_size, length_size = sizes >> 4, sizes & 15
    sizes = r.uint(1)
    base_size, index_size = sizes >> 4, (sizes & 15 if version in (1, 2) else 0)
    if version > 2:
        raise UnsupportedMedia(f"HEIF item location box version {version} is not supported")
    count = r.uint(2 if version < 2 else 4)
    items = []
    for _ in range(count):
        loc = Location(r.uint(2 if version < 2 else 4))
        if version in (1, 2):
            loc.method = r.uint(2) & 0xF
        loc.dref = r.uint(2)
        loc.base = r.uint(base_size)
        for _ in range(r.uint(2)):
            index = r.uint(index_size)
            loc.extents.append(Extent(index, r.uint(offset_size), r.uint(length_size)))
        items.append(loc)
    return Iloc(version, index_size, items)


def _dump_iloc(iloc: Iloc, offset_size: int) -> bytes:
    """An iloc box; bases are folded into extent offsets (the sum is what counts)."""
    v = iloc.version
    out = bytearray(bytes((v, 0, 0, 0)))
    out.append(offset_size << 4 | offset_size)
    out.append(iloc.index_size if v in (1, 2) else 0)
    out += len(iloc.items).to_bytes(2 if v < 2 else 4, "big")
    for loc in iloc.items:
        out += loc.item_id.to_bytes(2 if v < 2 else 4, "big")
        if v in (1, 2):
            out += loc.method.to_bytes(2, "big")
        out += loc.dref.to_bytes(2, "big")
        out += len(loc.extents).to_bytes(2, "big")
        for ext in loc.extents:
            if v in (1, 2) and iloc.index_size:
                out += ext.index.to_bytes(iloc.index_size, "big")
            out += (loc.base + ext.offset).to_bytes(offset_size, "big")
            out += ext.length.to_bytes(offset_size, "big")
    return _box(b"iloc", bytes(out))


@dataclass
class _Info:
    item_id: int
    item_type: bytes
    content_type: bytes


def _parse_infe(data: bytes, box: Box) -> _Info | None:
    body = data[box.body : box.end]
    version = body[0] if body else 0
    if version < 2 or len(body) < 12:
        return None  # version 0/1 entries predate typed items; nothing we read
    if version == 2:
        item_id, pos = int.from_bytes(body[4:6], "big"), 8
    else:
        item_id, pos = int.from_bytes(body[4:8], "big"), 10
    item_type = body[pos : pos + 4]
    rest = body[pos + 4 :]
    _name, _, rest = rest.partition(b"\x00")
    content_type = rest.partition(b"\x00")[0] if item_type == b"mime" else b""
    return _Info(item_id, item_type, content_type)


@dataclass
class _Meta:
    box: Box
    children: list[Box]
    primary: int | None
    iloc_box: Box
    iloc: Iloc
    infos: list[_Info]
    size: tuple[int, int] | None
    top: list[Box]


def _child(meta_children: list[Box], btype: bytes) -> Box | None:
    return next((b for b in meta_children if b.type == btype), None)


@parsed_once
def _parse(data: bytes, limits: Limits) -> _Meta:
    if not data:
        raise CorruptInput("the HEIF file is empty")
    limits.check("max_bytes", len(data), "the file")
    top = boxes(data, 0, len(data))
    if not top or top[0].type != b"ftyp":
        raise CorruptInput("HEIF file does not start with an ftyp box")
    metas = [b for b in top if b.type == b"meta"]
    if len(metas) != 1:
        raise CorruptInput(f"HEIF file has {len(metas)} meta boxes, expected one")
    meta = metas[0]
    children = boxes(data, meta.body + 4, meta.end)
    pitm = _child(children, b"pitm")
    primary = None
    if pitm is not None:
        version = data[pitm.body]
        size = 2 if version == 0 else 4
        primary = int.from_bytes(data[pitm.body + 4 : pitm.body + 4 + size], "big")
    iloc_box = _child(children, b"iloc")
    iinf = _child(children, b"iinf")
    if iloc_box is None or iinf is None:
        raise CorruptInput("HEIF meta box has no item locations (iloc) or item infos (iinf)")
    iinf_version = data[iinf.body]
    entries = boxes(data, iinf.body + 4 + (2 if iinf_version == 0 else 4), iinf.end)
    infos = [i for i in (_parse_infe(data, b) for b in entries if b.type == b"infe") if i]
    parsed = _Meta(meta, children, primary, iloc_box, _parse_iloc(data, iloc_box), infos, None, top)
    parsed.size = _primary_size(data, children, primary)
    if parsed.size is None:
        raise CorruptInput("HEIF primary image has no size (ispe) property")
    width, height = parsed.size
    if width * height > limits.max_pixels:
        raise limits.exceeded(
            "max_pixels",
            width * height,
            f"image of {width}x{height} pixels exceeds the {limits.max_pixels}-pixel limit",
        )
    return parsed


def _primary_size(data: bytes, children: list[Box], primary: int | None) -> tuple[int, int] | None:
    iprp = _child(children, b"iprp")
    if iprp is None:
        return None
    parts = boxes(data, iprp.body, iprp.end)
    ipco = _child(parts, b"ipco")
    if ipco is None:
        return None
    props = boxes(data, ipco.body, ipco.end)
    ispes = [i for i, p in enumerate(props) if p.type == b"ispe"]
    if not ispes:
        return None
    chosen = ispes[0]
    for ipma in (p for p in parts if p.type == b"ipma"):
        version, flags = data[ipma.body], int.from_bytes(data[ipma.body + 1 : ipma.body + 4], "big")
        r = _Reader(data, ipma.body + 4, ipma.end)
        for _ in range(r.uint(4)):
            item_id = r.uint(2 if version < 1 else 4)
            indices = [
                r.uint(2 if flags & 1 else 1) & (0x7FFF if flags & 1 else 0x7F)
                for _ in range(r.uint(1))
            ]
            if item_id == primary:
                found = [i - 1 for i in indices if 0 < i <= len(props) and i - 1 in ispes]
                if found:
                    chosen = found[0]
    box = props[chosen]
    if box.end - box.body < 12:
        raise CorruptInput("HEIF ispe property is truncated")
    return struct.unpack(">II", data[box.body + 4 : box.body + 12])


def _item_bytes(data: bytes, meta: _Meta, loc: Location) -> bytes:
    if loc.dref != 0 or loc.method not in (0, 1):
        return b""
    base = 0
    if loc.method == 1:
        idat = _child(meta.children, b"idat")
        if idat is None:
            raise CorruptInput("HEIF item stored in idat, but there is no idat box")
        base = idat.body
    out = bytearray()
    for ext in loc.extents:
        start = base + loc.base + ext.offset
        length = ext.length or (len(data) - start)
        if start + length > len(data):
            raise CorruptInput(f"HEIF item {loc.item_id} data runs past the end of the file")
        out += data[start : start + length]
    return bytes(out)


def _blank_item(data: bytes, meta: _Meta, loc: Location) -> bytes:
    """``data`` with the item's stored bytes overwritten by spaces, offsets unchanged.

    The old XMP item is replaced by a new one at the end; left as it was, its
    packet (and the old record in it) would stay in the file, unreferenced
    but there for any byte scanner to find: a second record.
    """
    if loc.method != 0 or loc.dref != 0:
        return data
    out = bytearray(data)
    for ext in loc.extents:
        start = loc.base + ext.offset
        # length 0 means "to the end of the file": not a packet we can bound
        if ext.length == 0 or start >= len(out) or meta.box.start <= start < meta.box.end:
            continue
        stop = min(start + ext.length, len(out))
        if start < meta.box.start:
            stop = min(stop, meta.box.start)  # never into the meta box being rewritten
        out[start:stop] = b" " * (stop - start)
    return bytes(out)


def _location(meta: _Meta, item_id: int) -> Location | None:
    return next((loc for loc in meta.iloc.items if loc.item_id == item_id), None)


def _xmp_items(meta: _Meta) -> list[int]:
    return [
        i.item_id
        for i in meta.infos
        if i.item_type == b"mime" and i.content_type.lower() == XMP_CONTENT_TYPE
    ]


def _exif(data: bytes, meta: _Meta) -> tuple[Location, int, bytes] | None:
    """The Exif item's location, where its TIFF block starts in the file, and the block."""
    for info in meta.infos:
        if info.item_type != b"Exif":
            continue
        loc = _location(meta, info.item_id)
        if loc is None or loc.method != 0 or len(loc.extents) != 1:
            continue
        raw = _item_bytes(data, meta, loc)
        if len(raw) < 4:
            continue
        skip = 4 + int.from_bytes(raw[:4], "big")
        start = loc.base + loc.extents[0].offset + skip
        return loc, start, raw[skip:]
    return None


_FTYP_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
}


class HeifHandler:
    name = "AVIF/HEIC/HEIF"
    media_type = "image/heif"
    media_types = ("image/avif", "image/heic", "image/heif")
    kind = Kind.IMAGE
    capabilities = IMAGE_CAPABILITIES
    paged_types = ()

    def capabilities_for(self, media_type: str) -> frozenset[Capability]:
        """The visible label and the watermark re-encode the pixels: only where
        Pillow here has an encoder for the type (AVIF, when built with it)."""
        from labelers.imaging import SUPPORTED_MEDIA_TYPES

        if media_type in SUPPORTED_MEDIA_TYPES:
            return self.capabilities
        return self.capabilities - {Capability.VISIBLE, Capability.WATERMARK}

    def accept(self, data: bytes) -> str | None:
        if data[4:8] != b"ftyp":
            return None
        brand = data[8:12]
        if brand in _FTYP_BRANDS:
            return _FTYP_BRANDS[brand]
        # compatible brands follow the minor version
        size = int.from_bytes(data[:4], "big")
        for i in range(16, min(size, 64), 4):
            if data[i : i + 4] in _FTYP_BRANDS:
                return _FTYP_BRANDS[data[i : i + 4]]
        return None

    def read(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Metadata:
        meta = _parse(data, limits)
        out = Metadata(media_type=_media_type(data), size=meta.size)
        legacy: list[FoundRecord] = []
        for item_id in _xmp_items(meta):
            loc = _location(meta, item_id)
            if loc is None:
                continue
            packet = xmplib.decode_packet(_item_bytes(data, meta, loc))
            if out.xmp is None:
                out.xmp = packet
            out.records.extend(xmplib.read_records(packet))
        exif = _exif(data, meta)
        if exif is not None:
            info = read_exif(exif[2])
            legacy.extend(info.records)
            out.properties.update(info.properties)
        out.records.extend(legacy)
        return out

    def write_record(self, data: bytes, record: Record, limits: Limits = DEFAULT_LIMITS) -> bytes:
        record.validate()
        meta = _parse(data, limits)
        if any(b.type == b"moov" for b in meta.top):
            raise UnsupportedMedia("HEIF/AVIF image sequences cannot be labelled yet")
        if meta.primary is None:
            raise CorruptInput("HEIF file has no primary item (pitm)")

        # legacy EXIF records: zeroed in place, no offsets change
        exif = _exif(data, meta)
        if exif is not None:
            info = read_exif(exif[2])
            if info.record_spans:
                start = exif[1]
                blanked = blank_exif_records(exif[2], info)
                data = data[:start] + blanked + data[start + len(blanked) :]

        xmp_ids = _xmp_items(meta)
        old_loc = _location(meta, xmp_ids[0]) if xmp_ids else None
        old = _item_bytes(data, meta, old_loc) if old_loc is not None else None
        packet = xmplib.set_record(old, record).encode("utf-8")

        # drop our previous XMP-only mdat if it is the last box (so relabelling does not grow)
        end = len(data)
        last = meta.top[-1]
        if (
            old_loc is not None
            and last.type == b"mdat"
            and last.start > meta.box.end
            and old_loc.method == 0
            and len(old_loc.extents) == 1
            and old_loc.base + old_loc.extents[0].offset == last.body
            and old_loc.extents[0].length == last.end - last.body
        ):
            end = last.start
        elif old_loc is not None:
            data = _blank_item(data, meta, old_loc)

        item_id = xmp_ids[0] if xmp_ids else max([0, *(i.item_id for i in meta.infos)]) + 1
        children = _new_children(data, meta, item_id, new_item=not xmp_ids)
        iloc = copy.deepcopy(meta.iloc)  # the parsed one is shared (parse_once)
        if item_id > 0xFFFF and iloc.version < 2:
            iloc.version = 2
        iloc.items = [loc for loc in iloc.items if loc.item_id != item_id]
        new_loc = Location(item_id, extents=[Extent(0, 0, len(packet))])
        iloc.items.append(new_loc)
        largest = max(
            [end + len(packet) + 65536]
            + [loc.base + e.offset + 65536 for loc in iloc.items for e in loc.extents]
            + [e.length for loc in iloc.items for e in loc.extents]
        )
        if largest >= 2**64:
            raise CorruptInput("HEIF item location values are out of range")
        offset_size = 4 if largest < 2**32 else 8

        meta_body_len = 4 + sum(len(c) for c in children if c) + len(_dump_iloc(iloc, offset_size))
        new_meta_len = 8 + meta_body_len
        delta = new_meta_len - (meta.box.end - meta.box.start)
        for loc in iloc.items:
            if loc is new_loc or loc.method != 0 or loc.dref != 0:
                continue
            for ext in loc.extents:
                if loc.base + ext.offset >= meta.box.end:
                    ext.offset += delta
        suffix = data[meta.box.end : end]
        new_loc.extents[0].offset = meta.box.start + new_meta_len + len(suffix) + 8
        iloc_bytes = _dump_iloc(iloc, offset_size)
        body = data[meta.box.body : meta.box.body + 4] + b"".join(
            iloc_bytes if c is None else c for c in children
        )
        new_meta = _box(b"meta", body)
        return data[: meta.box.start] + new_meta + suffix + _box(b"mdat", packet)

    def content_digest(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
        """SHA-256 of the coded still image(s), without decoding them.

        Covers the primary item ID; the item properties box ``iprp`` as stored
        (size ``ispe``, codec configuration ``av1C``/``hvcC``, colour ``colr``,
        ``pixi``, rotation/mirror/crop, and which item has which property); the
        item references other than ``cdsc`` (grid tiles ``dimg``, alpha and depth
        ``auxl``, thumbnails ``thmb``); and, by item ID, the type and bytes of every
        item that is not metadata (coded images, grids, overlays, alpha planes),
        wherever they sit in the file.

        Left out: ``mime``/``Exif``/``uri`` items (:data:`METADATA_ITEM_TYPES`: XMP
        with the record, EXIF), their ``cdsc`` references, box positions and
        iloc offsets (write_record grows ``meta``; C2PA inserts a top-level
        ``uuid`` box before it and shifts every offset), ``ftyp``, ``hdlr`` and
        top-level boxes other than ``meta``. For an image sequence (a ``moov``
        box) only the still items are covered, not the track's samples.
        """
        meta = _parse(data, limits)
        hasher = ContentHasher("image/heif")
        hasher.add(b"pitm", -1 if meta.primary is None else meta.primary)
        iprp = _child(meta.children, b"iprp")
        hasher.add(b"iprp", b"" if iprp is None else data[iprp.body : iprp.end])
        iref = _child(meta.children, b"iref")
        if iref is not None:
            for ref in boxes(data, iref.body + 4, iref.end):
                if ref.type != b"cdsc":
                    hasher.add(ref.type, data[ref.body : ref.end])
        types = {info.item_id: info.item_type for info in meta.infos}
        for loc in sorted(meta.iloc.items, key=lambda item: item.item_id):
            item_type = types.get(loc.item_id, b"")
            if item_type in METADATA_ITEM_TYPES:
                continue
            hasher.add(b"item", loc.item_id, item_type, _item_bytes(data, meta, loc))
        return hasher.digest()


def _new_children(data: bytes, meta: _Meta, item_id: int, new_item: bool) -> list[bytes | None]:
    """meta's children as bytes, iinf/iref extended for a new XMP item; None marks iloc."""
    out: list[bytes | None] = []
    has_iref = any(c.type == b"iref" for c in meta.children)
    for child in meta.children:
        raw = data[child.start : child.end]
        if child.type == b"iloc":
            out.append(None)  # rebuilt once the new offsets are known
            continue
        if new_item and child.type == b"iinf":
            raw = _iinf_with_xmp(data, child, item_id)
        elif new_item and child.type == b"iref":
            raw = _iref_with_cdsc(data, child, item_id, meta.primary or 0)
        out.append(raw)
        if new_item and child.type == b"iinf" and not has_iref:
            out.append(_iref_with_cdsc(None, None, item_id, meta.primary or 0))
    return out


def _infe(item_id: int) -> bytes:
    if item_id <= 0xFFFF:
        body = bytes((2, 0, 0, 0)) + item_id.to_bytes(2, "big")
    else:
        body = bytes((3, 0, 0, 0)) + item_id.to_bytes(4, "big")
    body += b"\x00\x00" + b"mime" + b"XMP\x00" + XMP_CONTENT_TYPE + b"\x00"
    return _box(b"infe", body)


def _iinf_with_xmp(data: bytes, iinf: Box, item_id: int) -> bytes:
    version = data[iinf.body]
    count_size = 2 if version == 0 else 4
    count = int.from_bytes(data[iinf.body + 4 : iinf.body + 4 + count_size], "big")
    if count + 1 >= 1 << (8 * count_size):
        raise UnsupportedMedia("HEIF file has too many items to add one")
    head = data[iinf.body : iinf.body + 4] + (count + 1).to_bytes(count_size, "big")
    entries = data[iinf.body + 4 + count_size : iinf.end]
    return _box(b"iinf", head + entries + _infe(item_id))


def _iref_with_cdsc(data: bytes | None, iref: Box | None, item_id: int, primary: int) -> bytes:
    version = data[iref.body] if data is not None and iref is not None else 0
    if version == 0 and max(item_id, primary) > 0xFFFF:
        raise UnsupportedMedia("HEIF item IDs too large for the file's item references")
    size = 2 if version == 0 else 4
    ref = _box(
        b"cdsc",
        item_id.to_bytes(size, "big") + (1).to_bytes(2, "big") + primary.to_bytes(size, "big"),
    )
    if data is None or iref is None:
        return _box(b"iref", bytes((0, 0, 0, 0)) + ref)
    return _box(b"iref", data[iref.body : iref.end] + ref)


def _box(btype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body) + 8) + btype + body


def _media_type(data: bytes) -> str:
    return HeifHandler.accept(HANDLER, data) or "image/heif"


HANDLER = HeifHandler()
