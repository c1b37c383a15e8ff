"""Short audio files made by real encoders for the audio tests, and independent readers.

Files are made in the test run (a fraction of a second each): by Debian's
ffmpeg command and by PyAV (the FFmpeg libraries in its wheel), so two
muxer builds write the containers. Readers: ffprobe (tags, duration),
ffmpeg (decoded samples), exiftool and mutagen.
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

#: format name -> (file suffix, ffmpeg codec, PyAV container format, PyAV codec)
FORMATS = {
    "wav": (".wav", "pcm_s16le", "wav", "pcm_s16le"),
    "mp3": (".mp3", "libmp3lame", "mp3", "libmp3lame"),
    "flac": (".flac", "flac", "flac", "flac"),
    "vorbis": (".ogg", "libvorbis", "ogg", "vorbis"),
    "opus": (".opus", "libopus", "ogg", "libopus"),
    "m4a": (".m4a", "aac", "ipod", "aac"),
}
MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "vorbis": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
}


def ffmpeg_file(
    fmt: str,
    rate: int = 44100,
    channels: int = 2,
    seconds: float = 0.5,
    tags: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> bytes:
    """A tone (with a little noise, so lossy codecs have something to code) by ffmpeg."""
    suffix, codec, _, _ = FORMATS[fmt]
    if fmt == "opus" and rate not in (8000, 12000, 16000, 24000, 48000):
        rate = 48000
    source = f"sine=frequency=440:duration={seconds}:sample_rate={rate}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"out{suffix}"
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source]
        cmd += ["-ac", str(channels), "-c:a", codec]
        for key, value in (tags or {}).items():
            cmd += ["-metadata", f"{key}={value}"]
        subprocess.run([*cmd, *extra, str(out)], check=True, capture_output=True)
        return out.read_bytes()


def pyav_file(fmt: str, rate: int = 48000, channels: int = 1, seconds: float = 0.5) -> bytes:
    """The same kind of tone, muxed by PyAV."""
    import av

    _, _, container_format, codec = FORMATS[fmt]
    # FFmpeg's own Vorbis encoder is experimental and codes stereo only
    options = {"strict": "experimental"} if codec == "vorbis" else {}
    if codec == "vorbis":
        channels = 2
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.layout = "stereo" if channels == 2 else "mono"
        n = int(rate * seconds)
        t = np.arange(n) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        samples = np.tile(tone, (channels, 1))
        frame_size = stream.codec_context.frame_size or 1024
        fmt_name = "fltp" if codec != "pcm_s16le" else "s16"
        for start in range(0, n, frame_size):
            block = samples[:, start : start + frame_size]
            if fmt_name == "s16":
                block = (block * 32767).astype(np.int16).T.reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(block, format="s16", layout=stream.layout)
            else:
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(block), format="fltp", layout=stream.layout
                )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def _tmpfile(data: bytes, suffix: str = "") -> tempfile._TemporaryFileWrapper:
    f = tempfile.NamedTemporaryFile(suffix=suffix)  # noqa: SIM115 (closed by the caller)
    f.write(data)
    f.flush()
    return f


def ffprobe(data: bytes) -> dict:
    """ffprobe's format and stream tags (keys lower-cased), duration and stream parameters."""
    with _tmpfile(data) as f:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", f.name],
            capture_output=True,
            text=True,
            check=True,
        )
    info = json.loads(out.stdout)
    stream = info["streams"][0]
    tags = {k.lower(): v for k, v in info["format"].get("tags", {}).items()}
    tags |= {k.lower(): v for k, v in stream.get("tags", {}).items()}
    return {
        "tags": tags,
        "duration": float(info["format"].get("duration", stream.get("duration", 0))),
        "codec": stream["codec_name"],
        "sample_rate": int(stream["sample_rate"]),
        "channels": int(stream["channels"]),
    }


def decoded(data: bytes) -> bytes:
    """The samples ffmpeg decodes, as raw 32-bit floats (errors fail the test)."""
    with _tmpfile(data) as f:
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-xerror", "-i", f.name, "-map", "0:a:0", "-f", "f32le", "-"],
            capture_output=True,
            check=True,
        )
    assert not out.stderr, out.stderr.decode(errors="replace")
    return out.stdout


def exiftool(data: bytes, *tags: str) -> dict:
    """exiftool's JSON for a file (-U shows unknown RIFF chunks such as AIGC)."""
    with _tmpfile(data) as f:
        out = subprocess.run(
            ["exiftool", "-j", "-a", "-G1", "-U", "-b", *tags, f.name],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout)[0]


def mediainfo(data: bytes) -> str:
    with _tmpfile(data) as f:
        return subprocess.run(
            ["mediainfo", "--Full", f.name], capture_output=True, text=True, check=True
        ).stdout


def exiftool_riff_record(data: bytes) -> str:
    """The WAV ``AIGC`` chunk as exiftool extracts it (binary values come base64-encoded)."""
    import base64

    value = exiftool(data, "-RIFF:Unknown_AIGC")["RIFF:Unknown_AIGC"]
    if value.startswith("base64:"):
        value = base64.b64decode(value[7:]).decode("ascii")
    return value.rstrip("\x00")


def exiftool_records(data: bytes) -> list:
    """Every AIGC record exiftool reads in the file, whatever the carrier
    (RIFF:Unknown_AIGC, ID3 UserDefinedText "(AIGC) ...", Vorbis:Aigc, Keys:AIGC)."""
    import base64

    from labelers.record import Record

    found = []
    for key, value in exiftool(data).items():
        for item in value if isinstance(value, list) else [value]:
            text = str(item)
            if text.startswith("base64:"):
                text = base64.b64decode(text[7:]).decode("utf-8", "replace").rstrip("\x00")
            if key.split(":")[-1].upper().endswith("AIGC"):
                found.append(Record.parse(text))
            elif key.endswith("UserDefinedText") and text.upper().startswith("(AIGC) "):
                found.append(Record.parse(text[7:]))
    return found
