"""Video end to end through the real app: POST /v1/label, then POST /v1/verify.

ffprobe (Debian's ffmpeg) reads the record and the packets, c2pa's Reader the
manifest; bad containers get a 4xx problem naming what is wrong.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator

import c2pa
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from labelers.formats import isobmff
from tests.support import KEYS, auth
from tests.videos import clip, format_tags, needs_ffmpeg, packets, probe, stream_summary, write

pytestmark = needs_ffmpeg


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    from app.main import create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("var"), api_keys=json.dumps(KEYS))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def label(client: TestClient, data: bytes, key: str = "gen-key", **form: str):
    return client.post("/v1/label", headers=auth(key), files={"file": ("clip", data)}, data=form)


def verify(client: TestClient, data: bytes, **form: str) -> dict:
    response = client.post(
        "/v1/verify", headers=auth("verify-key"), files={"file": ("clip", data)}, data=form
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("name", "media_type", "c2pa_state"),
    [
        ("h264-aac", "video/mp4", "signed"),
        ("h264-faststart", "video/mp4", "signed"),
        ("mov", "video/quicktime", "signed"),
        ("vp9-opus", "video/webm", "not available for video/webm"),
    ],
)
def test_metadata_only_label_keeps_every_stream_bit_exact_and_c2pa_validates(
    client, tmp_path, name, media_type, c2pa_state
):
    original = clip(name)
    response = label(client, original, "omit-key", explicit="none", watermark="false")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert response.headers["AIGC-Explicit"] == "none"
    assert response.headers["AIGC-C2PA"] == c2pa_state
    out = response.content
    before, after = write(tmp_path, original), write(tmp_path, out)
    record = json.loads(response.headers["AIGC-Record"])["AIGC"]
    assert json.loads(format_tags(after)["AIGC"]) == record
    assert packets(after) == packets(before)
    assert stream_summary(after) == stream_summary(before)
    if c2pa_state == "signed":
        reader = c2pa.Reader(media_type, io.BytesIO(out))
        assert reader.get_validation_state() in ("Valid", "Trusted"), reader.json()
        manifest = json.loads(reader.json())
        active = manifest["manifests"][manifest["active_manifest"]]
        labels = [a["label"] for a in active["assertions"]]
        assert "cn.tc260.aigc" in labels
    report = verify(client, out)
    assert report["classification"] == "confirmed"
    assert report["record"]["ProduceID"] == record["ProduceID"]


def test_relabelling_a_signed_video_keeps_one_record_and_one_valid_manifest(client, tmp_path):
    first = label(client, clip("h264-aac"), "omit-key", explicit="none", watermark="false")
    second = label(client, first.content, "omit-key", explicit="none", watermark="false")
    assert second.status_code == 200, second.text
    meta = isobmff.HANDLER.read(second.content)
    assert [f.record.produce_id for f in meta.records] == [second.headers["AIGC-Produce-ID"]]
    reader = c2pa.Reader("video/mp4", io.BytesIO(second.content))
    assert reader.get_validation_state() in ("Valid", "Trusted")
    assert packets(write(tmp_path, second.content)) == packets(write(tmp_path, clip("h264-aac")))


def test_the_visible_label_is_burned_in_and_verify_reads_it_from_the_opening_frames(client):
    # 640x360: on 320x240 frames OCR sometimes reads the label's 12-px line in neither
    # sampled frame (a known gap of the finder on tiny videos, see the closing note)
    original = clip("h264-aac", "640x360", 3.0)
    response = label(client, original, position="top-left", span="start:2.5", c2pa="false")
    assert response.status_code == 200, response.text
    assert response.headers["AIGC-Explicit"].startswith("top-left")
    report = verify(client, response.content)
    assert report["classification"] == "confirmed"
    seen = [e for e in report["evidence"] if e["carrier"] == "video:visible-ocr"]
    assert seen and seen[0]["data"]["region"].startswith("top")
    assert seen[0]["data"]["seconds"] >= 2.0
    assert not [f for f in report["findings"] if f["code"].startswith("explicit-label")]


def test_a_record_without_a_visible_label_is_a_finding(client):
    out = label(client, clip("h264-aac", "320x240", 2.0), "omit-key", explicit="none").content
    report = verify(client, out)
    assert report["classification"] == "confirmed"
    codes = [f["code"] for f in report["findings"]]
    assert "explicit-label-missing" in codes or "ocr-unavailable" in codes


@pytest.mark.parametrize(
    ("form", "needle"),
    [
        ({"position": "footer"}, "does not apply to videos"),
        ({"span": "start:1"}, "at least 2 s"),
        ({"span": "middle"}, "span must be"),
    ],
)
def test_bad_video_options_are_422(client, form, needle):
    response = label(client, clip("h264-aac"), **form)
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"]


def test_a_video_over_the_limits_is_413_before_decoding(tmp_path):
    from app.main import create_app

    settings = Settings(data_dir=tmp_path / "var", api_keys=json.dumps(KEYS), max_video_seconds=0.5)
    with TestClient(create_app(settings), raise_server_exceptions=False) as small:
        response = label(small, clip("h264-aac"))
        assert response.status_code == 413, response.text
        assert "AIGC_MAX_VIDEO_SECONDS" in response.json()["detail"]
        # metadata-only labelling decodes nothing, so the limit does not apply
        plain = label(small, clip("h264-aac"), "omit-key", explicit="none", watermark="false")
        assert plain.status_code == 200, plain.text
        report = verify(small, clip("h264-aac"))
        assert "video-frames-not-read" in [f["code"] for f in report["findings"]]


def _bad_movies() -> dict[str, bytes]:
    data = clip("h264-aac")
    moov = next(b for b in isobmff.boxes(data, 0, len(data)) if b.type == b"moov")
    lying = bytearray(data)
    struct.pack_into(">I", lying, moov.start, moov.end - moov.start + 999)
    loop = bytearray(data)
    stsz = data.find(b"stsz")
    struct.pack_into(">I", loop, stsz + 12, 0x3FFFFFFF)  # a sample count past the box
    nested = b"\x00\x00\x00\x10ftypisom\x00\x00\x02\x00"
    deep = b""
    for _ in range(30):
        deep = struct.pack(">I4s", len(deep) + 8, b"trak") + deep
    webm = clip("vp9-opus")
    return {
        "truncated moov": data[: moov.start + 200],
        "moov size lies": bytes(lying),
        "huge sample count": bytes(loop),
        "boxes nested 30 deep": nested + struct.pack(">I4s", len(deep) + 8, b"moov") + deep,
        "truncated webm": webm[:200],
        "ftyp only": nested,
    }


@pytest.mark.parametrize("case", list(_bad_movies()))
@pytest.mark.parametrize("endpoint", ["/v1/label", "/v1/verify"])
def test_bad_containers_are_4xx_naming_the_problem(client, case, endpoint):
    data = _bad_movies()[case]
    key = "omit-key" if endpoint == "/v1/label" else "verify-key"
    form = {"explicit": "none", "c2pa": "false"} if endpoint == "/v1/label" else {}
    response = client.post(endpoint, headers=auth(key), files={"file": ("x", data)}, data=form)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]


def test_a_platform_propagates_into_the_videos_one_record_streams_untouched(client, tmp_path):
    labelled = label(client, clip("h264-aac"), "omit-key", explicit="none", watermark="false")
    response = client.post(
        "/v1/propagate",
        headers=auth("platform-key"),
        files={"file": ("clip", labelled.content)},
        data={"propagate_id": "PLATFORM-VIDEO-1"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["AIGC-Classification"] == "confirmed"
    meta = isobmff.HANDLER.read(response.content)
    assert [f.record.propagate_id for f in meta.records] == ["PLATFORM-VIDEO-1"]
    after = write(tmp_path, response.content)
    assert json.loads(format_tags(after)["AIGC"])["PropagateID"] == "PLATFORM-VIDEO-1"
    assert packets(after) == packets(write(tmp_path, clip("h264-aac")))
    reader = c2pa.Reader("video/mp4", io.BytesIO(response.content))
    assert reader.get_validation_state() in ("Valid", "Trusted")


WQY = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def test_a_visible_label_shown_for_under_two_seconds_is_a_finding(client, tmp_path):
    """Another tool's label (ffmpeg drawtext, Debian's CJK font) shown for the first second."""
    import os
    import subprocess

    if not os.path.exists(WQY):
        pytest.skip("needs fonts-wqy-microhei")
    out = tmp_path / "short.mp4"
    caption = (
        f"drawtext=fontfile={WQY}:text='人工智能生成':fontsize=20:fontcolor=white:box=1:"
        "boxcolor=black@0.7:boxborderw=4:x=w-tw-10:y=h-th-10:enable='lt(t,1)'"
    )
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-f", "lavfi"),
            *("-i", "testsrc2=size=320x240:rate=25:duration=3", "-vf", caption),
            *("-c:v", "libx264", "-preset", "ultrafast", str(out)),
        ],
        check=True,
        timeout=120,
    )
    from labelers.record import Record

    record = Record.first_write("0011911100007109120X0010001", "01JSHORTLABEL0000000000001")
    report = verify(client, isobmff.HANDLER.write_record(out.read_bytes(), record))
    assert report["classification"] == "confirmed"
    shown = [e for e in report["evidence"] if e["carrier"] == "video:visible-ocr"]
    assert shown and shown[0]["data"]["seconds"] < 2
    assert "explicit-label-too-short" in [f["code"] for f in report["findings"]]


def test_a_dense_clip_labelled_under_a_low_bitrate_limit_verifies_under_the_same_limit(tmp_path):
    """Our own encode (CRF <= 23 for the mark) of a noisy CRF 18 clip ran at
    ~1.6x the input's rate: with a limit just above the input's, the service
    refused to verify what it had just labelled. The encode now has a rate
    ceiling below the limit."""
    import subprocess

    from app.main import create_app

    source = tmp_path / "noise.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-threads", "1",
         "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30,noise=alls=12:allf=t",
         "-f", "lavfi", "-i", "sine=f=440:d=3", "-t", "3", "-pix_fmt", "yuv420p",
         "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", "-c:a", "aac", str(source)],
        check=True,
    )  # fmt: skip

    def video_bitrate(path) -> int:
        stream = next(s for s in probe(path)["streams"] if s["codec_type"] == "video")
        return int(stream["bit_rate"])

    limit = int(video_bitrate(source) * 1.1)  # the input passes, with little room
    settings = Settings(
        data_dir=tmp_path / "var", api_keys=json.dumps(KEYS), max_video_bitrate=limit
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as small:
        response = label(small, source.read_bytes(), c2pa="false")
        assert response.status_code == 200, response.text
        assert response.headers["AIGC-Watermark"] == "embedded"
        out = write(tmp_path, response.content)
        assert video_bitrate(out) < limit
        report = verify(small, response.content)
    assert "video-frames-not-read" not in [f["code"] for f in report["findings"]]
    marks = [e for e in report["evidence"] if e["carrier"] == "video:watermark"]
    assert marks and marks[0]["data"]["in_ledger"], report["evidence"]
    assert report["classification"] == "confirmed"
