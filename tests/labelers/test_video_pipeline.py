"""The label pipeline on video: caption and mark re-encode the video stream only;
(H.264 through the whole service is in tests/app/test_video_api.py);
the original's tags, the audio packets and the stream layout survive; the record
is read by ffprobe, exiftool and mediainfo. Clips are made by Debian's ffmpeg."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from labelers.formats import get_handler
from labelers.pipeline import FileOptions, label_file
from labelers.record import Record
from tests.videos import (
    clip,
    exiftool_values,
    format_tags,
    mediainfo_text,
    needs_ffmpeg,
    packets,
    probe,
    write,
)

pytestmark = needs_ffmpeg
RECORD = Record.first_write("0011911100007109120X0010001", "01JABCDEFGHJKMNPQRSTVWXYZ0")
KEY = 0x0123456789ABCDEF
TITLE = ("-metadata", "title=Harbour at dawn")
FRAMES_DIR = Path("/tmp/aigc-video-frames")  # first frames as PNG, for a person to look at


def streams(path: Path) -> list[tuple]:
    return [
        (s["codec_type"], s["codec_name"], s.get("nb_read_packets")) for s in probe(path)["streams"]
    ]


def audio_packets(path: Path) -> list[str]:
    return [p for p in packets(path) if p.split(",")[1] == "1"]


@pytest.mark.parametrize(
    ("name", "size", "suffix"),
    [
        ("h265", "256x192", ".mp4"),
        ("mov", "320x180", ".mov"),
        ("vp9-opus", "320x240", ".webm"),
        ("rotated", "320x240", ".mp4"),
    ],
)
def test_caption_and_mark_reencode_the_video_only_and_keep_everything_else(
    tmp_path, name, size, suffix
):
    original = clip(name, size, 1.2, extra=TITLE if name != "rotated" else ())
    result = label_file(original, RECORD, FileOptions(c2pa=False), watermark_payload=KEY)
    assert result.explicit.startswith("bottom-right"), result.explicit
    before, after = write(tmp_path, original, suffix), write(tmp_path, result.data, suffix)

    tags = format_tags(after)
    assert json.loads(tags["AIGC"]) == RECORD.as_dict()
    if name != "rotated":
        assert tags.get("title") == "Harbour at dawn"
    if name == "mov":  # the other readers, once (the container tests run them on each)
        assert [json.loads(v) for v in exiftool_values(after)] == [RECORD.as_dict()]
        assert RECORD.produce_id in mediainfo_text(after)
    assert [f.record for f in get_handler(result.media_type).read(result.data).records] == [RECORD]
    # same streams, codecs and frame counts; the audio is copied packet for packet
    assert streams(after) == streams(before)
    if any(s[0] == "audio" for s in streams(before)):
        assert audio_packets(after) == audio_packets(before)
    old_v = next(s for s in probe(before)["streams"] if s["codec_type"] == "video")
    new_v = next(s for s in probe(after)["streams"] if s["codec_type"] == "video")
    assert (new_v["width"], new_v["height"]) == (old_v["width"], old_v["height"])
    assert new_v.get("side_data_list") == old_v.get("side_data_list")  # the rotation
    assert float(probe(after)["format"]["duration"]) == pytest.approx(
        float(probe(before)["format"]["duration"]), abs=0.05
    )
    FRAMES_DIR.mkdir(exist_ok=True)
    first = FRAMES_DIR / f"{name}.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(after), "-frames:v", "1", str(first)],
        check=True,
    )


def test_no_caption_and_no_mark_leave_every_stream_bit_exact(tmp_path):
    original = clip("h264-aac", "160x120", 1.0, extra=TITLE)
    options = FileOptions(explicit=False, watermark=False, c2pa=False)
    result = label_file(original, RECORD, options, watermark_payload=KEY)
    assert (result.explicit, result.watermark) == ("none", "off")
    assert packets(write(tmp_path, result.data)) == packets(write(tmp_path, original))
