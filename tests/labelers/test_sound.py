"""labelers/sound.py: decode any audio file, re-encode it like the input, refuse bad input.

Inputs are made by Debian's ffmpeg (an encoder that is not ours); what comes
out is read back by ffprobe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from labelers import sound
from labelers.errors import CorruptInput, LimitExceeded, UnsupportedMedia
from labelers.limits import Limits
from tests.support import raises_limit

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="needs Debian's ffmpeg/ffprobe",
)

# (name, media type, ffmpeg output options, rate, channels)
CASES = [
    ("wav16", "audio/wav", ["-c:a", "pcm_s16le", "-f", "wav"], 44100, 2),
    ("wav24", "audio/wav", ["-c:a", "pcm_s24le", "-f", "wav"], 48000, 1),
    ("mp3", "audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "160k", "-f", "mp3"], 44100, 2),
    ("mp3-mono", "audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"], 22050, 1),
    ("flac24", "audio/flac", ["-c:a", "flac", "-sample_fmt", "s32", "-f", "flac"], 96000, 2),
    ("vorbis", "audio/ogg", ["-c:a", "libvorbis", "-b:a", "96k", "-f", "ogg"], 44100, 1),
    ("opus", "audio/ogg", ["-c:a", "libopus", "-b:a", "64k", "-f", "ogg"], 48000, 2),
    ("m4a", "audio/mp4", ["-c:a", "aac", "-b:a", "128k", "-f", "ipod"], 44100, 2),
]


def ffmpeg_clip(options: list[str], rate: int, channels: int, seconds: float = 2.0) -> bytes:
    """Music-like test audio (a chord, its harmonics and noise) encoded by ffmpeg."""
    src = (
        f"sine=f=220:d={seconds}:r={rate}[a];sine=f=331:d={seconds}:r={rate}[b];"
        f"anoisesrc=d={seconds}:r={rate}:a=0.05:c=pink[c];"
        f"[a][b][c]amix=inputs=3,aformat=channel_layouts={'mono' if channels == 1 else 'stereo'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip"  # a file, not a pipe: muxers write their headers' sizes
        subprocess.run(
            ["ffmpeg", "-v", "error", "-filter_complex", src, "-ar", str(rate), *options, path],
            check=True,
        )
        return path.read_bytes()


def ffprobe(data: bytes) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe"  # a pipe hides the duration of most containers
        path.write_bytes(data)
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path],
            check=True,
            capture_output=True,
        ).stdout
    info = json.loads(out)
    return {"stream": info["streams"][0], "format": info["format"]}


def stream_bit_rate(probe: dict, data: bytes) -> float:
    """The audio's bitrate: the stream's own figure, or the file's average where the
    container keeps none (Ogg Opus)."""
    rate = probe["stream"].get("bit_rate") or probe["format"].get("bit_rate")
    return float(rate) if rate else len(data) * 8 / float(probe["format"]["duration"])


@pytest.mark.parametrize("name,media_type,options,rate,channels", CASES, ids=[c[0] for c in CASES])
def test_reencode_keeps_codec_rate_channels_and_bitrate(name, media_type, options, rate, channels):
    data = ffmpeg_clip(options, rate, channels)
    before = ffprobe(data)
    pcm = sound.decode(data, media_type)
    assert pcm.channels == channels and pcm.rate == int(before["stream"]["sample_rate"])
    out = sound.encode_like(pcm, pcm)
    after = ffprobe(out)
    for key in ("codec_name", "sample_rate", "channels"):
        assert after["stream"][key] == before["stream"][key], key
    assert after["format"]["format_name"] == before["format"]["format_name"]
    if before["stream"]["codec_name"] in ("pcm_s24le", "flac"):
        assert after["stream"].get("bits_per_raw_sample") == before["stream"].get(
            "bits_per_raw_sample"
        ) or after["stream"].get("bits_per_sample") == before["stream"].get("bits_per_sample")
    if before["stream"]["codec_name"] in ("mp3", "aac", "vorbis", "opus"):
        assert stream_bit_rate(after, out) >= 0.99 * stream_bit_rate(before, data)
    # still plays: decodes to the same duration (codec priming trimmed by the container)
    assert abs(float(after["format"]["duration"]) - float(before["format"]["duration"])) < 0.06


def test_lossless_reencode_is_sample_exact():
    data = ffmpeg_clip(["-c:a", "flac", "-f", "flac"], 44100, 2)
    pcm = sound.decode(data, "audio/flac")
    again = sound.decode(sound.encode_like(pcm, pcm), "audio/flac")
    assert np.array_equal(again.samples, pcm.samples)


def test_nothing_to_do_returns_the_input_bytes():
    data = ffmpeg_clip(["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"], 44100, 2)
    out = sound.apply_audio(
        data, "audio/mpeg", audible="none", place="start", wording=None, watermark_key=None
    )
    assert out.data is data and out.audible == "none" and out.watermark == "off"


def test_partial_decode_reads_the_window_asked_for():
    data = ffmpeg_clip(["-c:a", "pcm_s16le", "-f", "wav"], 16000, 1, seconds=10.0)
    whole = sound.decode(data, "audio/wav")
    tail = sound.decode(data, "audio/wav", start=-3.0, seconds=3.0)
    assert tail.start == pytest.approx(7.0, abs=0.01)
    assert tail.samples.shape[1] == 3 * 16000
    i = round(tail.start * 16000)
    assert np.allclose(tail.samples, whole.samples[:, i : i + 3 * 16000], atol=1e-6)


@pytest.mark.parametrize(
    "media_type", ["audio/wav", "audio/mpeg", "audio/flac", "audio/ogg", "audio/mp4"]
)
def test_garbage_is_corrupt_input(media_type):
    rng = np.random.default_rng(3)
    with pytest.raises(CorruptInput):
        sound.decode(rng.bytes(5000), media_type)


def test_truncated_header_is_corrupt_input():
    data = ffmpeg_clip(["-c:a", "flac", "-f", "flac"], 44100, 1)
    with pytest.raises(CorruptInput):
        sound.decode(data[:30], "audio/flac")


def test_unknown_media_type_is_unsupported():
    with pytest.raises(UnsupportedMedia):
        sound.decode(b"RIFF", "audio/x-unknown")


def test_limits_are_checked_from_the_headers():
    data = ffmpeg_clip(["-c:a", "pcm_s16le", "-f", "wav"], 48000, 2, seconds=3.0)
    with raises_limit("max_audio_sample_rate"):
        sound.decode(data, "audio/wav", Limits(max_audio_sample_rate=44100))
    with raises_limit("max_audio_channels"):
        sound.decode(data, "audio/wav", Limits(max_audio_channels=1))
    with raises_limit("max_audio_seconds"):
        sound.decode(data, "audio/wav", Limits(max_audio_seconds=2.0))
    with raises_limit("max_audio_decoded_bytes"):
        sound.decode(data, "audio/wav", Limits(max_audio_decoded_bytes=100_000))
    with pytest.raises(LimitExceeded):
        sound.apply_audio(
            data,
            "audio/wav",
            audible="none",
            place="start",
            wording=None,
            watermark_key=None,
            limits=Limits(max_audio_seconds=2.0),
        )


THEME = Path("/usr/share/sounds/freedesktop/stereo")


@pytest.mark.skipif(not THEME.is_dir(), reason="needs Debian's sound-theme-freedesktop")
@pytest.mark.parametrize(
    "name", ["phone-outgoing-busy.oga", "camera-shutter.oga", "service-login.oga"]
)
def test_real_vorbis_files_reencode_like_themselves(name):
    # other encoders' Ogg Vorbis: 8 kHz mono, 96 kHz stereo with an "unset" bitrate, 22 kHz
    data = (THEME / name).read_bytes()
    before = ffprobe(data)
    pcm = sound.decode(data, "audio/ogg")
    out = sound.encode_like(pcm, pcm)
    after = ffprobe(out)
    for key in ("codec_name", "sample_rate", "channels"):
        assert after["stream"][key] == before["stream"][key], key
    assert abs(float(after["format"]["duration"]) - float(before["format"]["duration"])) < 0.06
