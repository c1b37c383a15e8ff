"""WebM / Matroska: the record as the global SimpleTag AIGC, read back by ffprobe,
exiftool and mediainfo; packets, chapters and subtitles untouched; SeekHead and Cues
still point at their elements; hostile EBML refused with the project's errors."""

from __future__ import annotations

import functools
import json
import subprocess

import pytest

from labelers.errors import AigcError
from labelers.formats import get_handler, matroska, sniff
from labelers.record import Record
from tests.videos import (
    FFMPEG,
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
from tests.videos import _workdir as _workdir

pytestmark = needs_ffmpeg


def contract_sample() -> bytes:
    """For the registry contract: 160x160, large enough for a legible caption."""
    from tests.fuzz.mutate import video_sample

    return video_sample("webm", "libvpx-vp9", side=160)


PRODUCER = "0011911100007109120X0010001"
HANDLER = matroska.HANDLER


@pytest.fixture
def record() -> Record:
    return Record.first_write(PRODUCER, "01JABCDEFGHJKMNPQRSTVWXYZ0")


def remux(tmp_path, data: bytes, *args: str, suffix: str = ".webm", inputs=()) -> bytes:
    src = write(tmp_path, data, suffix)
    out = tmp_path / f"remux-{abs(hash(args))}{suffix}"
    command = [FFMPEG or "ffmpeg", "-v", "error", "-y", "-i", str(src), *inputs, *args, str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return out.read_bytes()


@functools.cache
def chaptered() -> bytes:
    """An MKV (H.264/AAC) with two chapters, an SRT subtitle track and a title."""
    work = _workdir()
    chapters = work / "chapters.txt"
    chapters.write_text(
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=Intro\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Main\n"
    )
    subs = work / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:00,900\nHello subtitle\n")
    return remux(
        work,
        clip("mkv-h264", "160x120"),
        *("-map", "0", "-map", "2", "-map_chapters", "1", "-c", "copy", "-c:s", "srt"),
        *("-metadata", "title=Chaptered"),
        suffix=".mkv",
        inputs=("-i", str(chapters), "-i", str(subs)),
    )


@functools.cache
def layout(case: str) -> bytes:
    webm = clip("vp9-opus", "160x120")
    if case == "webm vp9/opus":
        return webm
    if case == "webm 320x240":
        return clip("vp9-opus", "320x240")
    if case == "live webm (unknown sizes)":
        return remux(_workdir(), webm, "-c", "copy", "-live", "1")
    if case == "cues before clusters":
        return remux(_workdir(), webm, "-c", "copy", "-reserve_index_space", "300")
    return chaptered()


@pytest.mark.parametrize(
    "case",
    [
        "webm vp9/opus",
        "webm 320x240",
        "live webm (unknown sizes)",
        "cues before clusters",
        "mkv h264 with chapters and subtitles",
    ],
)
def test_record_round_trips_and_every_stream_chapter_and_tag_stays(tmp_path, record, case):
    original = layout(case)
    out = HANDLER.write_record(original, record)
    before, after = write(tmp_path, original, ".mkv"), write(tmp_path, out, ".mkv")

    assert json.loads(format_tags(after)["AIGC"]) == record.as_dict()
    assert [json.loads(v) for v in exiftool_values(after)] == [record.as_dict()]
    assert record.produce_id in mediainfo_text(after)
    assert [(f.carrier, f.record) for f in HANDLER.read(out).records] == [
        (matroska.CARRIER, record)
    ]
    assert stream_summary(after) == stream_summary(before)
    assert packets(after) == packets(before)
    old, new = probe(before), probe(after)
    assert {k: v for k, v in new["format"]["tags"].items() if k != "AIGC"} == old["format"]["tags"]
    assert [s.get("tags") for s in new["streams"]] == [s.get("tags") for s in old["streams"]]
    assert HANDLER.content_digest(out) == HANDLER.content_digest(original)
    assert_positions_point_at_their_elements(out)


def assert_positions_point_at_their_elements(data: bytes) -> None:
    """Every SeekHead entry and cue lands on the start of the element it names."""
    seg = matroska.parse(data)
    starts = {el.start - seg.data_start: el.id for el in seg.children}
    budget = matroska._Budget()
    checked = 0
    for el in seg.children:
        if el.id == matroska.SEEKHEAD:
            for seek in matroska.elements(data, el.body, el.end, budget):
                if seek.id != matroska.SEEK:
                    continue  # its CRC-32
                kids = {c.id: c for c in matroska.elements(data, seek.body, seek.end, budget)}
                target = int.from_bytes(data[kids[0x53AB].body : kids[0x53AB].end], "big")
                pos = matroska._uint(data, kids[0x53AC])
                assert starts.get(pos) == target, (hex(target), pos)
                checked += 1
        elif el.id == matroska.CUES:
            for point in matroska.elements(data, el.body, el.end, budget):
                if point.id != matroska.CUE_POINT:
                    continue
                for tp in matroska.elements(data, point.body, point.end, budget):
                    if tp.id != matroska.CUE_TRACK_POSITIONS:
                        continue
                    for c in matroska.elements(data, tp.body, tp.end, budget):
                        if c.id == matroska.CUE_CLUSTER_POSITION:
                            assert starts.get(matroska._uint(data, c)) == matroska.CLUSTER
                            checked += 1
    assert checked or seg.element.unknown_size


def test_chapters_and_subtitles_survive(tmp_path, record):
    out = write(tmp_path, HANDLER.write_record(chaptered(), record), ".mkv")
    info = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(out)],
        check=True,
        capture_output=True,
    )
    titles = [c["tags"]["title"] for c in json.loads(info.stdout)["chapters"]]
    assert titles == ["Intro", "Main"]
    subtitle = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-map", "0:s:0", "-f", "srt", "-"],
        check=True,
        capture_output=True,
    )
    assert b"Hello subtitle" in subtitle.stdout
    assert format_tags(out)["title"] == "Chaptered"


def test_seeking_still_finds_the_same_frames(tmp_path, record):
    original = clip("vp9-opus", "160x120", 2.0)
    labelled = HANDLER.write_record(original, record)

    def frame_at(data: bytes) -> bytes:
        path = write(tmp_path, data, ".webm")
        return subprocess.run(
            [
                *("ffmpeg", "-v", "error", "-ss", "1.2", "-i", str(path)),
                *("-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"),
            ],
            check=True,
            capture_output=True,
        ).stdout

    assert frame_at(labelled) == frame_at(original)


def test_relabelling_replaces_the_record_and_a_new_tags_element_is_made_when_missing(record):
    webm = clip("vp9-opus")
    seg = matroska.parse(webm)
    tags = next(el for el in seg.children if el.id == matroska.TAGS)
    edits = {tags.start: matroska._Edit(tags.start, tags.end, None)}
    untagged = matroska._apply(webm, seg, edits, matroska.DEFAULT_LIMITS)
    assert not any(el.id == matroska.TAGS for el in matroska.parse(untagged).children)
    assert_positions_point_at_their_elements(untagged)

    first = HANDLER.write_record(untagged, record)
    assert_positions_point_at_their_elements(first)
    second_record = record.with_fields(propagate_id="PLATFORM-7")
    second = HANDLER.write_record(first, second_record)
    assert [f.record for f in HANDLER.read(second).records] == [second_record]
    assert sum(el.id == matroska.TAGS for el in matroska.parse(second).children) == 1


def test_wild_forms_are_read_and_replaced(tmp_path, record):
    old = record.with_fields(produce_id="WILD-1")
    wild = remux(tmp_path, clip("vp9-opus"), "-c", "copy", "-metadata", f"aigc={old.dumps()}")
    assert [f.record for f in HANDLER.read(wild).records] == [old]
    out = HANDLER.write_record(wild, record)
    assert [f.record for f in HANDLER.read(out).records] == [record]
    assert "aigc" not in {k.lower() for k in format_tags(write(tmp_path, out)) if k != "AIGC"}


def test_headers_and_traces_are_read_without_decoding():
    meta = HANDLER.read(clip("vp9-opus", "320x240", 2.0))
    assert meta.video is not None
    assert (meta.video.width, meta.video.height, meta.video.codec) == (320, 240, "V_VP9")
    assert meta.video.seconds == pytest.approx(2.0, abs=0.05)
    assert meta.properties["video:encoder"].startswith("Lavf")
    assert sniff(clip("vp9-opus")) == "video/webm"
    assert sniff(clip("mkv-h264")) == "video/x-matroska"
    assert get_handler("video/x-matroska") is HANDLER


def test_carry_metadata_puts_the_originals_tags_and_chapters_on_a_reencode(tmp_path, record):
    original = HANDLER.write_record(chaptered(), record)
    reencoded = remux(
        tmp_path,
        original,
        *("-map", "0:v", "-map", "0:a", "-map_metadata", "-1", "-map_chapters", "-1"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy"),
        suffix=".mkv",
    )
    assert "title" not in format_tags(write(tmp_path, reencoded, ".mkv"))
    carried = write(tmp_path, matroska.carry_metadata(original, reencoded), ".mkv")
    tags = format_tags(carried)
    assert tags["title"] == "Chaptered"
    assert json.loads(tags["AIGC"]) == record.as_dict()
    chapters = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(carried)],
        check=True,
        capture_output=True,
    )
    assert len(json.loads(chapters.stdout)["chapters"]) == 2
    assert packets(carried) == packets(write(tmp_path, reencoded, ".mkv"))
    assert_positions_point_at_their_elements(matroska.carry_metadata(original, reencoded))


# ----------------------------------------------------------------- hostile
def hostile() -> dict[str, bytes]:
    webm = clip("vp9-opus")
    seg = matroska.parse(webm)
    lying = bytearray(webm)
    tracks = next(el for el in seg.children if el.id == matroska.TRACKS)
    lying[tracks.start + 4] = 0x01  # size: 8-byte vint follows...
    lying[tracks.start + 5 : tracks.start + 12] = b"\x00\x00\x00\x7f\xff\xff\xff"
    deep = b""
    for _ in range(40):
        deep = b"\x67\xc8" + bytes([0x80 | len(deep)]) + deep if len(deep) < 127 else deep
    return {
        "truncated header": webm[:30],
        "truncated in the tracks": webm[: tracks.start + 20],
        "a size that lies": bytes(lying),
        "a zero byte where an ID belongs": webm[: tracks.start] + b"\x00" * 16,
        "no segment": webm[: seg.element.start],
    }


@pytest.mark.parametrize("case", list(hostile()))
def test_hostile_ebml_raises_the_projects_errors(case, record):
    data = hostile()[case]
    with pytest.raises(AigcError) as caught:
        HANDLER.read(data)
        HANDLER.write_record(data, record)
        HANDLER.content_digest(data)
    assert caught.value.detail


def test_element_count_is_bounded(monkeypatch):
    monkeypatch.setattr(matroska, "MAX_ELEMENTS", 2000)  # the bound, not its size, is tested
    webm = clip("vp9-opus")
    seg = matroska.parse(webm)
    # a Tags element holding a million empty Void children
    voids = b"\xec\x80" * (matroska.MAX_ELEMENTS + 1)
    size = len(voids)
    tags = b"\x12\x54\xc3\x67" + (0x0100000000000000 | size).to_bytes(8, "big") + voids
    body = webm[seg.element.body :] + tags
    bomb = (
        webm[: seg.element.start]
        + b"\x18\x53\x80\x67"
        + (0x0100000000000000 | len(body)).to_bytes(8, "big")
        + body
    )
    with pytest.raises(AigcError, match="more than"):
        HANDLER.read(bomb)
