"""Tiny video clips made by Debian's ffmpeg (an encoder and muxer independent of
ours), and ffprobe / exiftool / mediainfo as the independent readers.

Clips are made once per test process and cached by their recipe: each is a
second or two of a moving test pattern at 64x64 to 320x240, so the whole set
takes well under a second of ffmpeg per process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None or shutil.which("ffprobe") is None, reason="needs Debian ffmpeg/ffprobe"
)

#: name -> (ffmpeg output arguments, file suffix); inputs: a moving pattern and a tone
RECIPES: dict[str, tuple[list[str], str]] = {
    "h264-aac": (["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], ".mp4"),
    "h264-faststart": (
        ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-movflags", "+faststart"],
        ".mp4",
    ),
    "h265": (["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1", "-an"], ".mp4"),
    "mov": (["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], ".mov"),
    "m4v": (["-c:v", "libx264", "-preset", "ultrafast", "-an", "-f", "ipod"], ".m4v"),
    # made as h264-aac, then remuxed with a display matrix (see clip())
    "rotated": (["-c", "copy", "-metadata:s:v:0", "rotate=90"], ".mp4"),
    "fragmented": (
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-c:a",
            "aac",
            "-movflags",
            "frag_keyframe+empty_moov",
        ],
        ".mp4",
    ),
    "vp9-opus": (
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
        ".webm",
    ),
    "mkv-h264": (["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], ".mkv"),
}


@functools.cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="aigc-videos-"))


@functools.cache
def clip(
    name: str, size: str = "160x120", seconds: float = 1.0, extra: tuple[str, ...] = ()
) -> bytes:
    """The bytes of clip ``name`` (a key of RECIPES) at ``size``, ``seconds`` long.

    ``extra``: more output options (e.g. ``-metadata title=...``).
    """
    args, suffix = RECIPES[name]
    key = hashlib.sha1(repr((name, size, seconds, extra)).encode()).hexdigest()[:12]
    out = _workdir() / f"{name}-{key}{suffix}"
    if name == "rotated":  # ffmpeg 5 sets a display matrix only when stream-copying
        source = _workdir() / f"source-{key}.mp4"
        source.write_bytes(clip("h264-aac", size, seconds, extra))
        inputs = ["-i", str(source)]
    else:
        inputs = [
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate=25:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-shortest",
        ]
    command = [FFMPEG or "ffmpeg", "-v", "error", "-y", *inputs, *args, *extra, str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return out.read_bytes()


def write(tmp_path: Path, data: bytes, suffix: str = ".mp4") -> Path:
    path = tmp_path / f"clip-{hashlib.sha1(data).hexdigest()[:10]}{suffix}"
    path.write_bytes(data)
    return path


def probe(path: Path) -> dict:
    """ffprobe's view: format tags and every stream's codec, duration and frame count."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-count_packets",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def stream_summary(path: Path) -> list[tuple]:
    """What must not change when only metadata does: per stream codec, size, timing."""
    return [
        (
            s["index"],
            s["codec_type"],
            s["codec_name"],
            s.get("width"),
            s.get("height"),
            s.get("duration"),
            s.get("nb_read_packets"),
            s.get("r_frame_rate"),
        )
        for s in probe(path)["streams"]
    ]


def packets(path: Path) -> list[str]:
    """Every packet's stream, timing, flags and a SHA-256 of its bytes, as ffprobe reads them."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_packets",
            "-show_data_hash",
            "sha256",
            "-show_entries",
            "packet=stream_index,pts,dts,duration,size,flags,data_hash",
            "-of",
            "csv",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out.stdout.decode().splitlines()


def format_tags(path: Path) -> dict[str, str]:
    return probe(path)["format"].get("tags", {})


def exiftool_values(path: Path, tag: str = "AIGC") -> list[str]:
    """Every value exiftool finds for ``tag`` (all groups, duplicates included)."""
    out = subprocess.run(
        ["exiftool", "-a", "-j", "-G1", f"-{tag}", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    found = json.loads(out.stdout)[0]
    return [v for k, v in found.items() if k.split(":")[-1].lower() == tag.lower()]


def mediainfo_text(path: Path) -> str:
    out = subprocess.run(["mediainfo", str(path)], check=True, capture_output=True, timeout=60)
    return out.stdout.decode("utf-8", "replace")
