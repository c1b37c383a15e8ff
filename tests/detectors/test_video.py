"""Reading the visible label and the watermark from a video's sampled frames."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from detectors import ocr
from detectors.video import inspect_video
from labelers.errors import CorruptInput
from labelers.limits import Limits
from labelers.video import apply_video
from tests.support import raises_limit

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")
needs_ocr = pytest.mark.skipif(not ocr.ocr_available(), reason="needs tesseract with chi_sim")

KEY = 0xFEDCBA9876543210


def clip(path: Path, seconds: float = 4.0, size: str = "640x360") -> bytes:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-threads", "1", "-f", "lavfi",
         "-i", f"testsrc2=s={size}:r=30,noise=alls=10:allf=t", "-t", str(seconds),
         "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return clip(tmp_path_factory.mktemp("video") / "src.mp4")


@needs_ocr
def test_a_two_second_label_measures_two_seconds_at_five_percent(source):
    out = apply_video(source, "video/mp4", wording="人工智能生成", position="bottom-left",
                      span="start:2", watermark_key=KEY).data  # fmt: skip
    evidence = inspect_video(out, "video/mp4")
    assert 1.75 <= evidence.label_seconds <= 2.25, evidence
    mark = evidence.label_boxes[0]
    assert "人工智能生成" in mark.phrases and mark.region == "bottom-left"
    assert mark.height_ratio >= 0.05
    assert evidence.watermark_key == KEY


@needs_ocr
def test_the_default_label_shows_for_the_whole_window(source):
    out = apply_video(source, "video/mp4", wording="AI生成", position="top-right",
                      span="start", watermark_key=None).data  # fmt: skip
    evidence = inspect_video(out, "video/mp4")
    assert evidence.label_seconds >= 3.0
    assert evidence.watermark_key is None


def test_an_unlabelled_clip_shows_no_label_and_no_mark(source):
    evidence = inspect_video(source, "video/mp4")
    assert evidence.label_seconds == 0 and evidence.label_boxes == []
    assert evidence.watermark_key is None


def test_bad_input_and_limits(source):
    with pytest.raises(CorruptInput):
        inspect_video(source[: len(source) // 3], "video/mp4")
    with pytest.raises(CorruptInput):
        inspect_video(b"\x1a\x45\xdf\xa3" + b"\x00" * 64, "video/webm")
    with raises_limit("max_video_frames"):
        inspect_video(source, "video/mp4", Limits(max_video_frames=10))
