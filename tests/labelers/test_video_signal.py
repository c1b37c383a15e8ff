"""The video re-encode: visible label and watermark in one pass (labelers/video.py).

Clips are made here by Debian's ffmpeg; outputs are read back by ffprobe and
ffmpeg (independent of PyAV's bundled FFmpeg) and by tesseract for the label.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelers.errors import CorruptInput, InvalidOption
from labelers.limits import Limits
from labelers.video import apply_video, parse_span, probe
from labelers.watermark.video import FrameMarker
from tests.support import raises_limit

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")

WORDING = "人工智能生成"
KEY = 0x0123456789ABCDEF


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-threads", "1", *args], check=True)


def make_clip(
    path: Path,
    *,
    size: str = "320x240",
    seconds: float = 3.0,
    rate: int = 30,
    vcodec: str = "libx264",
    acodec: str = "aac",
    extra: tuple[str, ...] = (),
    vf: str = "",
) -> bytes:
    source = f"testsrc2=s={size}:r={rate}" + (f",{vf}" if vf else "")
    ffmpeg(
        "-f", "lavfi", "-i", source, "-f", "lavfi", "-i", f"sine=f=440:d={seconds}",
        "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", vcodec, *extra,
        "-c:a", acodec, str(path),
    )  # fmt: skip
    return path.read_bytes()


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


def packet_hashes(path: Path, stream: str) -> list[str]:
    """Per-packet MD5s of a stream, read by ffmpeg's framemd5 muxer (stream copy)."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            stream,
            "-c",
            "copy",
            "-f",
            "framemd5",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [
        line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if not line.startswith("#")
    ]


def frame_at(path: Path, seconds: float, tmp: Path, name: str) -> Image.Image:
    """The frame shown at ``seconds``, decoded by ffmpeg as a player shows it (rotation applied)."""
    png = tmp / f"{name}.png"
    ffmpeg("-ss", str(seconds), "-i", str(path), "-frames:v", "1", str(png))
    return Image.open(png).convert("RGB")


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "h264.mp4"
    make_clip(
        path,
        extra=("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"),
        seconds=4.0,
    )
    return path


@pytest.fixture(scope="module")
def h264_labelled(h264: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    outcome = apply_video(
        h264.read_bytes(),
        "video/mp4",
        wording=WORDING,
        position="bottom-right",
        span="start:2",
        watermark_key=None,
    )
    path = tmp_path_factory.mktemp("video") / "labelled.mp4"
    path.write_bytes(outcome.data)
    return path, outcome


def video_stream(info: dict) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == "video")


def test_reencode_keeps_codec_rate_frames_pixel_format_and_colour_tags(h264_labelled, h264):
    path, outcome = h264_labelled
    before, after = video_stream(ffprobe(h264)), video_stream(ffprobe(path))
    for key in ("codec_name", "pix_fmt", "r_frame_rate", "nb_read_frames", "width", "height",
                "color_primaries", "color_transfer", "color_space"):  # fmt: skip
        assert after.get(key) == before.get(key), key
    assert abs(float(after["duration"]) - float(before["duration"])) < 0.05
    assert outcome.explicit.startswith("bottom-right")


def test_reencode_copies_the_audio_packets_bit_exact(h264_labelled, h264):
    path, _ = h264_labelled
    original = packet_hashes(h264, "0:a")
    assert original and packet_hashes(path, "0:a") == original


def _box_difference(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    pa = np.asarray(a.convert("L").crop((x0, y0, x1, y1)), dtype=np.float64)
    pb = np.asarray(b.convert("L").crop((x0, y0, x1, y1)), dtype=np.float64)
    return float(np.abs(pa - pb).mean())


def test_label_shows_in_the_first_seconds_and_is_gone_after(h264_labelled, h264, tmp_path):
    path, outcome = h264_labelled
    box = outcome.label_box
    assert box is not None
    # ink at least 5% of the shortest side (240 px)
    assert outcome.ink_px >= 0.05 * 240
    for t, shown in ((0.1, True), (1.0, True), (1.8, True), (2.5, False), (3.5, False)):
        labelled = frame_at(path, t, tmp_path, f"l{t}")
        original = frame_at(h264, t, tmp_path, f"o{t}")
        difference = _box_difference(labelled, original, box)
        if shown:
            assert difference > 20, (t, difference)
        else:
            assert difference < 4, (t, difference)


def test_rotated_input_is_labelled_upright_and_keeps_its_rotation(tmp_path):
    plain = tmp_path / "plain.mp4"
    make_clip(plain, size="320x240", seconds=2.5)
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    info = probe(rotated.read_bytes())
    assert info.rotation in (90, -90) and info.display_size == (240, 320)
    outcome = apply_video(
        rotated.read_bytes(), "video/mp4", wording=WORDING, position="bottom-right",
        span="start", watermark_key=None,
    )  # fmt: skip
    out = tmp_path / "out.mp4"
    out.write_bytes(outcome.data)
    assert probe(outcome.data).rotation == info.rotation
    shown = frame_at(out, 0.5, tmp_path, "shown")  # ffmpeg applies the rotation
    assert shown.size == (240, 320)
    # in the displayed frame the plate sits at the bottom right, wider than tall
    original = frame_at(rotated, 0.5, tmp_path, "orig")
    diff = np.abs(
        np.asarray(shown.convert("L"), np.int16) - np.asarray(original.convert("L"), np.int16)
    )
    ys, xs = np.nonzero(diff > 40)
    assert ys.min() > 320 * 0.75 and xs.max() > 240 * 0.75
    assert xs.max() - xs.min() > 2 * (ys.max() - ys.min())
    from detectors import ocr

    if ocr.ocr_available():
        # what OCR reads is under test, not how fast on a loaded machine
        result = ocr.find_visible_label(shown, timeout=120)
        assert result.found and result.region == "bottom-right"


def test_non_square_pixels_get_ink_of_five_percent_of_the_displayed_side(tmp_path):
    clip = tmp_path / "anamorphic.mp4"
    make_clip(clip, size="320x240", seconds=2.0, vf="setsar=2/1")
    info = probe(clip.read_bytes())
    assert info.sample_aspect == Fraction(2) and info.display_size == (640, 240)
    outcome = apply_video(
        clip.read_bytes(), "video/mp4", wording=WORDING, position="top-left", span="start",
        watermark_key=None,
    )  # fmt: skip
    assert outcome.ink_px >= 0.05 * 240
    x0, y0, _, _ = outcome.label_box
    assert x0 < 20 and y0 < 20


def test_watermark_survives_crf28_and_a_crop(tmp_path):
    from detectors.video import inspect_video

    clip = tmp_path / "clip.mp4"
    make_clip(clip, size="640x360", seconds=3.0, vf="noise=alls=12:allf=t")
    outcome = apply_video(
        clip.read_bytes(), "video/mp4", wording="", position="bottom-right", span="start",
        watermark_key=KEY,
    )  # fmt: skip
    assert outcome.watermark == "embedded" and outcome.explicit == "none"
    marked = tmp_path / "marked.mp4"
    marked.write_bytes(outcome.data)
    for name, args in (
        ("crf28", ["-c:v", "libx264", "-crf", "28"]),
        ("crop", ["-vf", "crop=iw*0.8:ih*0.8", "-c:v", "libx264", "-crf", "23"]),
    ):
        attacked = tmp_path / f"{name}.mp4"
        ffmpeg("-i", str(marked), *args, "-an", str(attacked))
        found = inspect_video(attacked.read_bytes(), "video/mp4", read_label=False)
        assert found.watermark_key == KEY, name
    assert inspect_video(clip.read_bytes(), "video/mp4", read_label=False).watermark_key is None
    # relabelling keeps the one mark (and says which key it carries)
    again = apply_video(outcome.data, "video/mp4", wording=WORDING, position="top",
                        span="start", watermark_key=KEY ^ 1)  # fmt: skip
    assert again.watermark.startswith("kept:") and again.watermark_key == KEY
    assert inspect_video(again.data, "video/mp4", read_label=False).watermark_key == KEY


def test_marked_frame_luma_psnr_is_at_least_40_db():
    rng = np.random.default_rng(7)
    base = np.asarray(
        Image.fromarray(rng.integers(0, 255, (90, 160), dtype=np.uint8)).resize((640, 360)),
        dtype=np.uint8,
    )
    luma = base.copy()
    FrameMarker(KEY, 640, 360).mark(luma)
    mse = float(np.mean((luma.astype(np.float64) - base) ** 2))
    assert mse > 0 and 10 * np.log10(255**2 / mse) >= 40


def test_small_clip_skips_the_watermark_with_a_reason_and_a_tiny_one_refuses_the_label(tmp_path):
    small = make_clip(tmp_path / "small.mp4", size="200x150", seconds=1.0)
    outcome = apply_video(
        small, "video/mp4", wording=WORDING, position="bottom", span="start", watermark_key=KEY
    )
    assert outcome.watermark.startswith("skipped:") and "240" in outcome.watermark
    assert outcome.explicit.startswith("bottom")
    assert any("2 s" in note for note in outcome.notes)  # a 1 s clip cannot show it for 2 s
    tiny = make_clip(tmp_path / "tiny.mp4", size="96x64", seconds=1.0)
    with pytest.raises(InvalidOption, match="too small"):
        apply_video(tiny, "video/mp4", wording=WORDING, position="bottom", span="start",
                    watermark_key=None)  # fmt: skip


def test_nothing_to_draw_and_no_key_returns_the_input_unchanged(h264):
    data = h264.read_bytes()
    out = apply_video(data, "video/mp4", wording="", position="bottom-right", span="start",
                      watermark_key=None)  # fmt: skip
    assert out.data is data


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[: len(d) // 2],  # truncated
        lambda d: b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8,  # no moov
        lambda d: b"",
    ],
    ids=["truncated", "no-moov", "empty"],
)
def test_bad_input_is_corrupt_input(h264, mutate):
    with pytest.raises(CorruptInput):
        apply_video(mutate(h264.read_bytes()), "video/mp4", wording=WORDING,
                    position="bottom-right", span="start", watermark_key=KEY)  # fmt: skip


def test_limits_are_checked_before_decoding(h264):
    data = h264.read_bytes()
    with raises_limit("max_video_seconds"):
        probe(data, Limits(max_video_seconds=1.0))
    with raises_limit("max_video_pixels"):
        apply_video(data, "video/mp4", wording=WORDING, position="bottom-right", span="start",
                    watermark_key=None, limits=Limits(max_video_pixels=320 * 239))  # fmt: skip


def test_span_options():
    assert parse_span("start", 10) == [(0.0, 3.0)]
    assert parse_span("start:5", 10) == [(0.0, 5.0)]
    assert parse_span("start+end", 10) == [(0.0, 3.0), (7.0, float("inf"))]
    assert parse_span("whole", 10) == [(0.0, float("inf"))]
    for bad in ("start:1", "start:x", "middle"):
        with pytest.raises(InvalidOption):
            parse_span(bad, 10)


@pytest.mark.parametrize(
    ("suffix", "media_type", "vcodec", "acodec", "codec", "audio"),
    [
        ("mp4", "video/mp4", "libx265", "aac", "hevc", "aac"),
        ("webm", "video/webm", "libvpx-vp9", "libopus", "vp9", "opus"),
        ("mov", "video/quicktime", "libx264", "aac", "h264", "aac"),
    ],
    ids=["hevc-mp4", "vp9-webm", "h264-mov"],
)
def test_other_codecs_keep_their_codec_and_audio(tmp_path, suffix, media_type, vcodec, acodec,
                                                 codec, audio):  # fmt: skip
    src = tmp_path / f"in.{suffix}"
    make_clip(src, size="320x240", seconds=2.0, vcodec=vcodec, acodec=acodec,
              extra=("-x265-params", "log-level=error") if vcodec == "libx265" else ())  # fmt: skip
    outcome = apply_video(src.read_bytes(), media_type, wording=WORDING, position="top",
                          span="start", watermark_key=KEY)  # fmt: skip
    out = tmp_path / f"out.{suffix}"
    out.write_bytes(outcome.data)
    streams = {s["codec_type"]: s for s in ffprobe(out)["streams"]}
    before = {s["codec_type"]: s for s in ffprobe(src)["streams"]}
    assert streams["video"]["codec_name"] == codec and streams["audio"]["codec_name"] == audio
    assert streams["video"]["nb_read_frames"] == before["video"]["nb_read_frames"]
    assert streams["video"]["pix_fmt"] == before["video"]["pix_fmt"]
    assert packet_hashes(out, "0:a") == packet_hashes(src, "0:a")


def _smooth_pan(path: Path, work: Path, seconds: float = 2.0) -> None:
    """A slow pan over a smooth picture: the input's bits per pixel are low
    (the rate estimate reads it as a low-quality input) and the content
    moves under the still mark."""
    rng = np.random.default_rng(3)
    coarse = rng.integers(40, 215, (12, 20, 3), dtype=np.uint8)
    still = work / "smooth.png"
    Image.fromarray(coarse).resize((1100, 640), Image.Resampling.BICUBIC).save(still)
    ffmpeg(
        "-loop", "1", "-framerate", "30", "-i", str(still), "-t", str(seconds),
        "-vf", f"crop=640:360:x='(iw-ow)*t/{seconds}':y='(ih-oh)*t/{seconds}',format=yuv420p",
        "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", str(path),
    )  # fmt: skip


def test_watermark_is_in_every_frame_of_a_smooth_pan_and_survives_a_cut(tmp_path):
    """Encoded at the CRF a smooth pan's low rate suggests (30), x264's
    P-frames carried the moving content's prediction and dropped the still
    mark, which only keyframes kept: a cut that starts between keyframes
    lost it. A marked encode is capped at CRF 23."""
    import av

    from detectors.video import inspect_video
    from labelers.video import quality_options
    from labelers.watermark.video import decode_frames

    clip = tmp_path / "pan.mp4"
    _smooth_pan(clip, tmp_path)
    info = probe(clip.read_bytes(), Limits(), "video/mp4")
    assert int(quality_options("libx264", info)["crf"]) > 23  # what the rate alone picks
    assert int(quality_options("libx264", info, marked=True)["crf"]) <= 23
    outcome = apply_video(clip.read_bytes(), "video/mp4", wording="", position="bottom-right",
                          span="start", watermark_key=KEY)  # fmt: skip
    marked = tmp_path / "marked.mp4"
    marked.write_bytes(outcome.data)
    with av.open(str(marked)) as c:
        lumas = [f.to_ndarray(format="gray") for f in c.decode(c.streams.video[0])]
    for i in (10, 30, 50):  # P/B frames, each alone
        found = decode_frames([lumas[i]])
        assert found is not None and found.payload == KEY, i
    cut = tmp_path / "cut.mp4"
    ffmpeg("-ss", "1", "-i", str(marked), "-c:v", "libx264", "-crf", "23", "-an", str(cut))
    assert inspect_video(cut.read_bytes(), "video/mp4", read_label=False).watermark_key == KEY


def test_watermark_is_found_under_heavy_grain_that_is_new_in_every_frame(tmp_path):
    """Uniform grain of ~14 levels RMS, new in every frame, survives the
    whitening and hides the mark from the plain average of sampled frames;
    verify's last decode filters the average with a chip-sized box."""
    import av

    from detectors.video import inspect_video
    from labelers.watermark.video import decode_whitened, whiten

    clip = tmp_path / "grain.mp4"
    ffmpeg("-f", "lavfi", "-i", "gradients=s=960x540:r=30:speed=0.02:seed=5,"
           "noise=alls=25:allf=t+u:all_seed=5", "-t", "4", "-pix_fmt", "yuv420p",
           "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", str(clip))  # fmt: skip
    outcome = apply_video(clip.read_bytes(), "video/mp4", wording="", position="bottom-right",
                          span="start", watermark_key=KEY)  # fmt: skip
    with av.open(io.BytesIO(outcome.data)) as c:
        lumas = [f.to_ndarray(format="gray") for f in c.decode(c.streams.video[0])]
    sampled = [whiten(luma) for luma in lumas[:105:8]]  # 14 frames of the opening 3.5 s
    assert decode_whitened(sampled) is None  # the grain wins without the filter
    found = decode_whitened(sampled, low_pass=True)
    assert found is not None and found.payload == KEY
    assert inspect_video(outcome.data, "video/mp4", read_label=False).watermark_key == KEY


@pytest.mark.parametrize("encoder", ["libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4"])
@pytest.mark.parametrize("seconds", [0.5, 3.0, 60.0, 0.0])
def test_the_rate_ceiling_bounds_the_whole_clip_average(encoder, seconds):
    """A VBV buffer starts nearly full: over T seconds an encoder may spend
    maxrate x T + bufsize bits, which must stay under the ceiling x T."""
    from labelers.video import VideoInfo, quality_options, rate_ceiling

    info = VideoInfo(container="mov", codec="h264", width=1280, height=720,
                     sample_aspect=Fraction(1), rotation=0, fps=Fraction(30), duration=seconds,
                     frames=round(30 * seconds), pix_fmt="yuv420p", color_range=1, colorspace=1,
                     color_primaries=1, color_trc=1, bitrate=90_000_000)  # fmt: skip
    limits = Limits(max_video_bitrate=10_000_000)
    ceiling = rate_ceiling(limits, other_bitrate=128_000)
    assert ceiling < limits.max_video_bitrate - 128_000
    options = quality_options(encoder, info, marked=True, ceiling=ceiling)
    maxrate, bufsize = int(options["maxrate"]), int(options["bufsize"])
    span = seconds or 4.0  # an unknown duration is taken as 4 s
    assert maxrate * span + bufsize <= ceiling * span
    if encoder == "libvpx-vp9":  # constrained quality: b is the cap
        assert int(options["b"]) == maxrate
    if encoder == "mpeg4":
        assert int(options["b"]) <= maxrate


def test_a_limit_the_copied_audio_alone_fills_refuses_the_reencode(tmp_path):
    """The video must stay under the limit with the audio, which is copied as
    it is: with no room left, a clear LimitExceeded rather than an output the
    service would refuse to verify."""
    clip = tmp_path / "flat.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=320x240:r=25", "-f", "lavfi", "-i",
           "anoisesrc=d=2:a=0.5", "-t", "2", "-pix_fmt", "yuv420p", "-c:v", "libx264",
           "-c:a", "aac", "-b:a", "192k", str(clip))  # fmt: skip
    data = clip.read_bytes()
    info = probe(data)
    assert info.bitrate < 100_000 < info.other_bitrate
    with raises_limit("max_video_bitrate"):
        apply_video(data, "video/mp4", wording=WORDING, position="bottom-right", span="start",
                    watermark_key=KEY, limits=Limits(max_video_bitrate=100_000))  # fmt: skip
