"""MP4 / MOV / M4V: the record as the mdta key AIGC, read back by ffprobe, exiftool
and mediainfo; streams, packets and the box layout untouched; wild forms read;
hostile boxes refused with the project's errors."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest

from labelers.errors import AigcError, CorruptInput
from labelers.formats import get_handler, isobmff, sniff
from labelers.record import Record
from tests.videos import (
    clip,
    exiftool_values,
    format_tags,
    mediainfo_text,
    needs_ffmpeg,
    packets,
    probe,
    stream_summary,
    write,
)

pytestmark = needs_ffmpeg


def contract_sample() -> bytes:
    """For the registry contract: 160x160, large enough for a legible caption."""
    from tests.fuzz.mutate import video_sample

    return video_sample("mp4", "libx264", side=160)


PRODUCER = "0011911100007109120X0010001"
HANDLER = isobmff.HANDLER


@pytest.fixture
def record() -> Record:
    return Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")


def top_level(data: bytes) -> list[bytes]:
    return [b.type for b in isobmff.boxes(data, 0, len(data))]


@pytest.mark.parametrize(
    ("name", "size", "media_type"),
    [
        ("h264-aac", "160x120", "video/mp4"),
        ("h264-faststart", "320x240", "video/mp4"),
        ("h265", "64x64", "video/mp4"),
        ("mov", "160x90", "video/quicktime"),
        ("m4v", "96x64", "video/x-m4v"),
        ("rotated", "160x120", "video/mp4"),
        ("fragmented", "160x120", "video/mp4"),
    ],
)
def test_record_round_trips_through_independent_readers_and_streams_stay_bit_exact(
    tmp_path, record, name, size, media_type
):
    original = clip(name, size, 2.0 if name == "fragmented" else 1.0)
    assert sniff(original) == media_type
    out = HANDLER.write_record(original, record)
    before, after = write(tmp_path, original), write(tmp_path, out)

    assert json.loads(format_tags(after)["AIGC"]) == record.as_dict()
    assert [json.loads(v) for v in exiftool_values(after)] == [record.as_dict()]
    assert record.produce_id in mediainfo_text(after)
    read = HANDLER.read(out)
    assert [(f.carrier, f.record) for f in read.records] == [(isobmff.CARRIER, record)]

    assert stream_summary(after) == stream_summary(before)
    assert packets(after) == packets(before)
    # the layout stays: a fast-start file keeps moov before mdat, and the reverse
    assert top_level(out) == top_level(original)
    assert HANDLER.content_digest(out) == HANDLER.content_digest(original)


def test_relabelling_replaces_the_record_and_keeps_every_other_tag(tmp_path, record):
    tagged = clip(
        "h264-aac",
        extra=(
            "-movflags",
            "use_metadata_tags",
            "-metadata",
            "title=Sea at dusk",
            "-metadata",
            "com.example.vendor=model-7",
        ),
    )
    first = HANDLER.write_record(tagged, record)
    second_record = record.with_fields(content_propagator="0011911100007109120X0020001")
    second = HANDLER.write_record(first, second_record)
    tags = format_tags(write(tmp_path, second))
    assert json.loads(tags["AIGC"]) == second_record.as_dict()
    assert tags["title"] == "Sea at dusk"
    assert tags["com.example.vendor"] == "model-7"
    assert len(exiftool_values(write(tmp_path, second))) == 1
    assert [f.record for f in HANDLER.read(second).records] == [second_record]


def test_rotation_and_headers_are_read_without_decoding():
    info = HANDLER.read(clip("rotated", "160x120")).video
    assert info is not None
    assert (info.width, info.height, info.frames, info.codec) == (160, 120, 25, "avc1")
    assert info.rotation in (90, 270)
    assert info.seconds == pytest.approx(1.0, abs=0.05)
    plain = HANDLER.read(clip("h264-aac")).video
    assert plain is not None and plain.rotation == 0


def test_generator_traces_come_back_as_properties():
    meta = HANDLER.read(clip("h264-aac"))
    assert meta.properties["video:encoder"].startswith("Lavf")
    assert meta.properties["mp4:trak1:handler"] == "VideoHandler"
    assert "libx264" in meta.properties["mp4:trak1:compressor"]


# ----------------------------------------------------------- the wild forms
def box(btype: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", len(body) + 8, btype) + body


def data_box(text: str) -> bytes:
    return box(b"data", b"\x00\x00\x00\x01\x00\x00\x00\x00" + text.encode())


def add_to_moov(data: bytes, extra: bytes, into_udta: bool = False) -> bytes:
    """``data`` (moov last, so no chunk offset moves) with ``extra`` appended to moov."""
    top = isobmff.boxes(data, 0, len(data))
    assert top[-1].type == b"moov"
    moov = top[-1]
    body = data[moov.body : moov.end]
    if into_udta:
        kids = isobmff.boxes(data, moov.body, moov.end)
        udta = next(k for k in kids if k.type == b"udta")
        new_udta = box(b"udta", data[udta.body : udta.end] + extra)
        body = data[moov.body : udta.start] + new_udta + data[udta.end : moov.end]
    else:
        body += extra
    return data[: moov.start] + box(b"moov", body)


def freeform(mean: str, name: str, value: str) -> bytes:
    return box(
        b"----",
        box(b"mean", b"\x00" * 4 + mean.encode())
        + box(b"name", b"\x00" * 4 + name.encode())
        + data_box(value),
    )


def test_wild_forms_are_read_and_replaced_by_one_record(tmp_path, record):
    base = clip("h264-aac")
    other = record.with_fields(produce_id="DOUBAO0000000000000000000000000A")
    # Doubao-like: a bare (QuickTime-style) meta directly in moov holding a keyless
    # mdir list with an AIGC item; plus an iTunes freeform atom in udta's meta
    bare_meta = box(
        b"meta",
        box(b"hdlr", b"\x00" * 8 + b"mdirappl" + b"\x00" * 9)
        + box(b"ilst", box(b"AIGC", data_box(other.dumps()))),
    )
    itunes = box(
        b"meta",
        b"\x00\x00\x00\x00"
        + box(b"hdlr", b"\x00" * 8 + b"mdirappl" + b"\x00" * 9)
        + box(
            b"ilst",
            freeform("com.apple.iTunes", "AIGC", other.dumps(wrapped=False))
            + box(b"\xa9cmt", data_box("kept comment")),
        ),
    )
    wild = add_to_moov(add_to_moov(base, itunes, into_udta=True), bare_meta)
    carriers = [f.carrier for f in HANDLER.read(wild).records]
    assert sorted(carriers) == [
        "mp4:moov/meta:mdir:AIGC",
        "mp4:moov/udta/meta:mdir:----:com.apple.iTunes:AIGC",
    ]
    assert all(f.record == other for f in HANDLER.read(wild).records)
    # exiftool reads the freeform atom too: the hand-made boxes are what readers expect
    assert any("DOUBAO" in v for v in exiftool_values(write(tmp_path, wild)))

    out = HANDLER.write_record(wild, record)
    assert [(f.carrier, f.record) for f in HANDLER.read(out).records] == [(isobmff.CARRIER, record)]
    meta = HANDLER.read(out)
    assert meta.properties["mp4:moov/udta/meta:mdir:©cmt"] == "kept comment"
    assert packets(write(tmp_path, out)) == packets(write(tmp_path, base))


def test_a_record_in_a_comment_item_is_read_and_replaced(record):
    old = record.with_fields(produce_id="OLD")
    wild = add_to_moov(
        clip("h264-aac"),
        box(
            b"meta",
            b"\x00" * 4
            + box(b"hdlr", b"\x00" * 8 + b"mdirappl" + b"\x00" * 9)
            + box(b"ilst", box(b"\xa9cmt", data_box(old.dumps()))),
        ),
        into_udta=True,
    )
    assert [f.record for f in HANDLER.read(wild).records] == [old]
    assert [f.record for f in HANDLER.read(HANDLER.write_record(wild, record)).records] == [record]


def test_a_keyed_record_under_a_damaged_handler_is_replaced_not_doubled(record):
    """A keys + ilst list whose hdlr no longer says mdta, holding a damaged
    record (a fuzz mutant: two flipped bytes): the reader still reports the
    key AIGC, so the writer must drop it by its key, not by its content, or
    the output carries two records."""
    damaged = record.with_fields(produce_id="OLD").dumps(wrapped=False).replace('":', '">', 1)
    keys = struct.pack(">II", 0, 1) + box(b"mdta", RECORD_KEY_BYTES)
    wild = add_to_moov(
        clip("h264-aac"),
        box(
            b"meta",
            b"\x00" * 4
            + box(b"hdlr", b"\x00" * 8 + b"mdtx" + b"\x00" * 13)
            + box(b"keys", keys)
            + box(b"ilst", box(struct.pack(">I", 1), data_box(damaged))),
        ),
        into_udta=True,
    )
    found = HANDLER.read(wild).records
    assert [(f.raw, f.record) for f in found] == [(damaged, None)]
    assert [f.record for f in HANDLER.read(HANDLER.write_record(wild, record)).records] == [record]


RECORD_KEY_BYTES = isobmff.RECORD_KEY.encode()


# ------------------------------------------------------- content and carry
def test_content_digest_follows_the_samples_not_the_metadata(record):
    data = clip("h264-aac")
    labelled = HANDLER.write_record(data, record)
    assert HANDLER.content_digest(labelled) == HANDLER.content_digest(data)
    mdat = next(b for b in isobmff.boxes(data, 0, len(data)) if b.type == b"mdat")
    edited = bytearray(data)
    edited[mdat.body + 100] ^= 0xFF
    assert HANDLER.content_digest(bytes(edited)) != HANDLER.content_digest(data)


def test_carry_metadata_puts_the_originals_tags_on_a_reencoded_file(tmp_path, record):
    original = HANDLER.write_record(
        clip("h264-aac", extra=("-metadata", "title=Original title")), record
    )
    src = write(tmp_path, original)
    reencoded_path = tmp_path / "re.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-i", str(src), "-map_metadata", "-1"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(reencoded_path)),
        ],
        check=True,
        timeout=120,
    )
    reencoded = reencoded_path.read_bytes()
    assert "title" not in format_tags(reencoded_path)
    carried = isobmff.carry_metadata(original, reencoded)
    out = write(tmp_path, carried)
    tags = format_tags(out)
    assert tags["title"] == "Original title"
    assert json.loads(tags["AIGC"]) == record.as_dict()
    assert packets(out) == packets(reencoded_path)


# ---------------------------------------------------------------- hostile
def moov_of(data: bytes) -> isobmff.Box:
    return next(b for b in isobmff.boxes(data, 0, len(data)) if b.type == b"moov")


def hostile_inputs() -> dict[str, bytes]:
    data = clip("h264-aac")
    moov = moov_of(data)
    lying = bytearray(data)
    struct.pack_into(">I", lying, moov.start, moov.end - moov.start + 5000)
    inner = bytearray(data)
    trak = isobmff.boxes(data, moov.body, moov.end)[1]
    struct.pack_into(">I", inner, trak.start, 3)  # smaller than its own header
    nested = box(b"ftyp", b"isom\x00\x00\x02\x00isom")
    deep = box(b"mvhd", b"\x00" * 100)
    for _ in range(40):
        deep = box(b"udta", deep)
    huge = bytearray(data)
    stco = data.find(b"stco")
    struct.pack_into(">I", huge, stco + 8, 0x7FFFFFFF)  # entry count past the box
    return {
        "truncated moov": data[: moov.start + (moov.end - moov.start) // 2],
        "moov size runs past the file": bytes(lying),
        "box smaller than its header": bytes(inner),
        "boxes nested 40 deep": nested + box(b"moov", deep),
        "chunk offset count past its box": bytes(huge),
        "no moov": data[: moov.start],
    }


@pytest.mark.parametrize("case", list(hostile_inputs()))
def test_hostile_boxes_raise_the_projects_errors(case, record):
    data = hostile_inputs()[case]
    with pytest.raises(AigcError) as caught:
        HANDLER.read(data)
        HANDLER.write_record(data, record)
    assert isinstance(caught.value, CorruptInput), caught.value
    assert caught.value.detail


def test_the_box_count_is_bounded():
    many = box(b"ftyp", b"isom\x00\x00\x02\x00isom") + box(b"free", b"") * (isobmff.MAX_BOXES + 1)
    with pytest.raises(CorruptInput, match="more than"):
        HANDLER.read(many)


def test_the_handler_is_registered_for_every_movie_type():
    for media_type, kind in isobmff.MEDIA_TYPES.items():
        handler = get_handler(media_type)
        assert handler is (HANDLER if kind == "video" else isobmff.AUDIO_HANDLER)
        assert handler.kind == kind
    assert shutil.which("ffprobe")
    assert probe  # the readers above are the independent ones
