"""Audio signal I/O: decode any supported audio file to PCM, re-encode it like the input.

This module owns everything that touches audio *samples* (the containers'
metadata belongs to ``labelers/formats``): decoding with PyAV (FFmpeg), the
audio limits checked from the stream headers before any decoding, re-encoding
with the input's codec, sample rate, channel layout and a bitrate no lower than
the input's, and :func:`apply_audio`, the signal half of labelling an audio
file (audible label, then watermark).

Only :func:`apply_audio` with ``audible="none"`` and no watermark key returns
the input bytes untouched; every other path re-encodes, so the caller (the
pipeline) carries the input's metadata over to the output afterwards.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np

from labelers.errors import CorruptInput, InvalidOption, UnsupportedMedia
from labelers.limits import DEFAULT_LIMITS, Limits

#: media type -> (demuxer hint, muxer used to write it back)
_CONTAINERS = {
    "audio/wav": ("wav", "wav"),
    "audio/mpeg": ("mp3", "mp3"),
    "audio/flac": ("flac", "flac"),
    "audio/ogg": ("ogg", "ogg"),
    "audio/mp4": ("mov", "ipod"),
}
MEDIA_TYPES = tuple(_CONTAINERS)

#: decoder name -> encoder name, where they differ (FFmpeg names decoders and
#: encoders apart: mp3float decodes what libmp3lame writes)
_ENCODERS = {
    "mp3": "libmp3lame",
    "mp3float": "libmp3lame",
    "opus": "libopus",
    "libopus": "libopus",
}
#: the constant bitrates LAME offers (kbit/s): an input's rate is rounded up to one
_MP3_RATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_ABR_HEADROOM = 1.12
_MAX_BIT_RATE_PER_CHANNEL = 1_000_000  # above this a lossy stream's declared bitrate is junk
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)

AUDIBLE_KINDS = ("rhythm", "speech", "none")
AUDIBLE_PLACES = ("start", "end", "both", "before", "after")


@dataclass(frozen=True)
class Pcm:
    """Decoded audio and what is needed to write it back like the input."""

    samples: np.ndarray  # float32, shape (channels, n), nominally in [-1, 1]
    rate: int  # samples per second per channel
    media_type: str  # one of MEDIA_TYPES
    codec: str  # FFmpeg decoder name of the input stream (mp3float, aac, flac, pcm_s16le, ...)
    layout: str  # FFmpeg channel layout name (mono, stereo, 5.1, ...)
    bit_rate: int | None = None  # input stream's bitrate, bit/s (None when lossless or unknown)
    sample_format: str | None = None  # the decoder's native sample format (s16, s32, fltp, ...)
    bits_per_sample: int | None = None  # for lossless: 16, 24, 32
    start: float = 0.0  # where ``samples`` begins in the file, seconds (partial decodes)
    duration: float | None = None  # the whole stream's duration, seconds, when known

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.rate

    def with_samples(self, samples: np.ndarray) -> Pcm:
        """The same stream description around new samples."""
        return Pcm(
            np.ascontiguousarray(samples, dtype=np.float32),
            self.rate,
            self.media_type,
            self.codec,
            self.layout,
            self.bit_rate,
            self.sample_format,
            self.bits_per_sample,
            self.start,
            self.duration,
        )


@dataclass(frozen=True)
class StreamInfo:
    """What the headers say about the first audio stream (nothing decoded)."""

    rate: int
    channels: int
    layout: str
    codec: str
    duration: float | None  # seconds; None when neither stream nor container says
    bit_rate: int | None


@dataclass(frozen=True)
class AudioOutcome:
    """The result of :func:`apply_audio`."""

    data: bytes  # the output file (the input bytes themselves when nothing was changed)
    audible: str  # "rhythm" | "speech" | "none": the audible label now in the audio
    watermark: str  # "embedded" | "off" | "skipped: <reason>"
    notes: list[str] = field(default_factory=list)
    #: how the audible label differs from its standard form ("" when it does not):
    #: a short clip's faster rhythm, e.g. "62 ms dots"
    audible_detail: str = ""


def _av():
    # PyAV loads FFmpeg's shared libraries (~100 ms): only runs that touch audio pay it
    import av

    return av


def _check_media_type(media_type: str) -> tuple[str, str]:
    try:
        return _CONTAINERS[media_type]
    except KeyError:
        raise UnsupportedMedia(
            f"{media_type} is not an audio format this service decodes "
            f"(supported: {', '.join(MEDIA_TYPES)})"
        ) from None


def _open(data: bytes, media_type: str):
    av = _av()
    demuxer, _ = _check_media_type(media_type)
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise CorruptInput(f"the {media_type} file cannot be opened: {exc}") from None
    streams = [s for s in container.streams if s.type == "audio"]
    if not streams:
        container.close()
        raise CorruptInput(f"the {media_type} file has no audio stream")
    return container, streams[0]


def _info(container, stream) -> StreamInfo:
    ctx = stream.codec_context
    if ctx is None:  # FFmpeg found a stream but no decoder for its codec tag
        raise CorruptInput("the audio stream's codec is unknown: it cannot be decoded")
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    rate = int(ctx.sample_rate or stream.rate or 0)
    layout = ctx.layout
    channels = int(layout.nb_channels if layout is not None else ctx.channels or 0)
    # Opus and some VBR streams declare no bitrate, and some Vorbis headers a nonsense
    # one (0xFFFFFFFE for "unset"): the container's average stands in
    channels_guess = max(1, int(ctx.channels or 1))
    declared = int(ctx.bit_rate or stream.bit_rate or 0)
    if not 0 < declared <= _MAX_BIT_RATE_PER_CHANNEL * channels_guess:
        declared = 0
    bit_rate = declared or int(container.bit_rate or 0) or None
    return StreamInfo(
        rate=rate,
        channels=channels,
        layout=layout.name if layout is not None else "",
        codec=ctx.name,
        duration=duration if duration is not None and duration > 0 else None,
        bit_rate=bit_rate,
    )


def _check_limits(info: StreamInfo, limits: Limits, seconds: float | None) -> None:
    """Refuse from the headers what would cost too much to decode."""
    if info.rate <= 0 or info.channels <= 0:
        raise CorruptInput("the audio stream declares no sample rate or no channels")
    if info.rate > limits.max_audio_sample_rate:
        raise limits.exceeded(
            "max_audio_sample_rate",
            info.rate,
            f"sample rate {info.rate} Hz exceeds {limits.max_audio_sample_rate} Hz",
        )
    limits.check("max_audio_channels", info.channels, "the audio stream")
    if info.duration is not None and info.duration > limits.max_audio_seconds:
        raise limits.exceeded(
            "max_audio_seconds",
            info.duration,
            f"audio of {info.duration:.0f} s exceeds {limits.max_audio_seconds:.0f} s",
        )
    span = seconds if seconds is not None else info.duration
    if span is not None and _decoded_bytes(info, span) > limits.max_audio_decoded_bytes:
        raise limits.exceeded(
            "max_audio_decoded_bytes",
            _decoded_bytes(info, span),
            f"decoding {span:.0f} s of {info.channels}-channel {info.rate} Hz audio needs "
            f"{_decoded_bytes(info, span) / 2**20:.0f} MiB, more than "
            f"{limits.max_audio_decoded_bytes / 2**20:.0f} MiB",
        )


def _decoded_bytes(info: StreamInfo, seconds: float) -> int:
    return int(seconds * info.rate * info.channels * 4)  # float32 samples


def probe(data: bytes, media_type: str, limits: Limits = DEFAULT_LIMITS) -> StreamInfo:
    """The first audio stream's parameters from its headers, limits checked; nothing decoded."""
    container, stream = _open(data, media_type)
    try:
        info = _info(container, stream)
    finally:
        container.close()
    _check_limits(info, limits, seconds=0.0)
    return info


def decode(
    data: bytes,
    media_type: str,
    limits: Limits = DEFAULT_LIMITS,
    *,
    start: float = 0.0,
    seconds: float | None = None,
) -> Pcm:
    """Decode the first audio stream (or ``seconds`` of it from ``start``) to float32 PCM.

    Limits are checked from the headers first, then again while decoding (a
    header may lie or say nothing about the duration). A negative ``start``
    counts from the end (needs a duration in the headers).
    """
    av = _av()
    container, stream = _open(data, media_type)
    try:
        info = _info(container, stream)
        _check_limits(info, limits, seconds)
        if start < 0:
            start = max(0.0, (info.duration or 0.0) + start)
        budget = limits.max_audio_seconds if seconds is None else min(seconds, 1e12)
        max_samples = math.ceil(budget * info.rate)
        max_decoded = limits.max_audio_decoded_bytes // (4 * info.channels)
        if start > 0 and stream.time_base is not None:
            try:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
        resampler = av.AudioResampler(format="fltp", layout=info.layout or None, rate=info.rate)
        expect = max_samples
        if info.duration is not None:
            expect = min(expect, math.ceil((info.duration - start + 1.0) * info.rate))
        chunks = _Samples(info.channels, expect)
        first = None  # the first kept sample's time, seconds
        have = 0
        fmt = None
        for packet in container.demux(stream):
            for frame in packet.decode():
                fmt = fmt or frame.format.name
                t0 = float(frame.pts * frame.time_base) if frame.pts is not None else None
                for out in resampler.resample(frame):
                    arr = out.to_ndarray()
                    if t0 is not None and t0 + arr.shape[1] / info.rate <= start:
                        continue  # before the window (a seek lands on or before it)
                    if first is None:
                        skip = round((start - t0) * info.rate) if t0 is not None else 0
                        skip = max(0, min(skip, arr.shape[1]))
                        arr = arr[:, skip:]
                        first = start if t0 is not None and skip else (t0 or 0.0)
                    chunks.add(arr)
                    have += arr.shape[1]
                if have >= max_samples:
                    break
                if have > max_decoded:
                    raise limits.exceeded(
                        "max_audio_decoded_bytes",
                        have * 4 * info.channels,
                        "the decoded audio exceeds "
                        f"{limits.max_audio_decoded_bytes / 2**20:.0f} MiB",
                    )
            if have >= max_samples:
                break
        if seconds is None and have > max_samples:
            raise limits.exceeded(
                "max_audio_seconds",
                have / info.rate,
                f"audio exceeds {limits.max_audio_seconds:.0f} s",
            )
        if seconds is None or have < max_samples:
            for out in resampler.resample(None):
                chunks.add(out.to_ndarray())
    except (av.FFmpegError, ValueError) as exc:
        # ValueError: PyAV refusing what the stream declares (an unnamed channel layout, ...)
        raise CorruptInput(f"the {media_type} audio cannot be decoded: {exc}") from None
    finally:
        container.close()
    samples = chunks.result()
    if seconds is not None:
        samples = samples[:, :max_samples]
    if samples.shape[1] == 0:
        raise CorruptInput(f"the {media_type} file holds no decodable audio")
    bits = _bits_per_sample(info.codec, fmt)
    return Pcm(
        samples=samples,  # a view of the decode buffer (rows not adjacent): no copy
        rate=info.rate,
        media_type=media_type,
        codec=info.codec,
        layout=info.layout or ("mono" if info.channels == 1 else "stereo"),
        bit_rate=info.bit_rate if not info.codec.startswith(("pcm_", "flac", "alac")) else None,
        sample_format=fmt,
        bits_per_sample=bits,
        start=first or 0.0,
        duration=info.duration,
    )


class _Samples:
    """The decoded samples, in one buffer sized from the headers' duration (growing by
    half when a header under-states it): the peak is the audio, not the audio twice."""

    def __init__(self, channels: int, expect: int) -> None:
        self.buf = np.empty((channels, max(1, min(expect, 1 << 26))), dtype=np.float32)
        self.n = 0

    def add(self, arr: np.ndarray) -> None:
        k = arr.shape[1]
        if arr.shape[0] != self.buf.shape[0]:
            raise CorruptInput("the audio stream changes its channel count midway")
        if self.n + k > self.buf.shape[1]:
            grown = np.empty(
                (self.buf.shape[0], max(self.n + k, self.buf.shape[1] * 3 // 2)), np.float32
            )
            grown[:, : self.n] = self.buf[:, : self.n]
            self.buf = grown
        self.buf[:, self.n : self.n + k] = arr
        self.n += k

    def result(self) -> np.ndarray:
        if self.n * 5 < self.buf.shape[1] * 4:  # much slack: give it back
            return self.buf[:, : self.n].copy()
        return self.buf[:, : self.n]


def _bits_per_sample(codec: str, sample_format: str | None) -> int | None:
    """Lossless bit depth: from the PCM codec name, or the decoder's format for FLAC/ALAC
    (FFmpeg decodes 24-bit FLAC to s32 and re-encodes s32 as 24-bit)."""
    if codec.startswith("pcm_"):
        digits = "".join(ch for ch in codec[5:] if ch.isdigit())
        return int(digits) if digits else None
    if codec in ("flac", "alac") and sample_format:
        return 16 if sample_format.startswith("s16") else 24
    return None


def _encoder(original: Pcm):
    av = _av()
    name = _ENCODERS.get(original.codec, original.codec)
    try:
        return av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        raise UnsupportedMedia(
            f"audio coded as {original.codec} cannot be re-encoded here (no {name} encoder)"
        ) from None


def _sample_format(codec, original: Pcm) -> str:
    formats = [f.name for f in (codec.audio_formats or [])]
    if not formats:
        return "fltp"
    wanted = original.sample_format
    if original.bits_per_sample and original.bits_per_sample > 16:
        # 24-bit FLAC/WAV decode to s32: keep the depth (FLAC's s16 would drop 8 bits)
        for f in ("s32", "s32p"):
            if f in formats:
                return f
    if wanted in formats:
        return wanted
    packed = wanted.rstrip("p") if wanted else None
    for f in (packed, f"{packed}p" if packed else None, "fltp", "flt", "s16", "s16p"):
        if f in formats:
            return f
    return formats[0]


def _bit_rate(original: Pcm) -> int | None:
    if original.bit_rate is None:
        return None
    if original.codec in ("mp3", "mp3float"):
        kbps = original.bit_rate / 1000
        return 1000 * next((r for r in _MP3_RATES if r >= kbps - 0.5), _MP3_RATES[-1])
    # FFmpeg's AAC and Vorbis encoders land a few per cent under their target:
    # aim above the input so the output's bitrate is no lower than it
    return int(original.bit_rate * _ABR_HEADROOM)


#: libsndfile's Vorbis quality steps tried, best compression first, until the
#: output's bitrate reaches the input's (Vorbis is VBR: only a result can say)
_VORBIS_LEVELS = (0.7, 0.55, 0.4, 0.25, 0.1, 0.0)


def _encode_vorbis(samples: np.ndarray, rate: int, original: Pcm) -> bytes:
    """Ogg Vorbis through libsndfile's libvorbis: PyAV's wheels carry no libvorbis, and
    FFmpeg's own Vorbis encoder writes stereo only."""
    import soundfile

    seconds = samples.shape[1] / rate
    target = original.bit_rate or 0
    data = b""
    for level in _VORBIS_LEVELS:
        buf = io.BytesIO()
        try:
            soundfile.write(
                buf, samples.T, rate, format="OGG", subtype="VORBIS", compression_level=level
            )
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
            raise UnsupportedMedia(f"the audio cannot be re-encoded as Vorbis: {exc}") from None
        data = buf.getvalue()
        if len(data) * 8 / max(seconds, 1e-3) >= target:
            break
    return data


def encode_like(pcm: Pcm, original: Pcm) -> bytes:
    """``pcm`` written in the container, codec, rate, layout and (at least) bitrate of
    ``original``."""
    av = _av()
    if original.codec == "vorbis":
        if pcm.rate != original.rate or pcm.channels != original.channels:
            raise InvalidOption("re-encoding keeps the sample rate and channel count")
        return _encode_vorbis(np.clip(pcm.samples, -1.0, 1.0), pcm.rate, original)
    _, muxer = _check_media_type(original.media_type)
    codec = _encoder(original)
    samples = np.ascontiguousarray(np.clip(pcm.samples, -1.0, 1.0), dtype=np.float32)
    if samples.shape[0] != original.channels:
        raise InvalidOption("re-encoding keeps the channel count: the PCM has a different one")
    rate = original.rate
    if codec.name == "libopus" and rate not in _OPUS_RATES:
        rate = 48000  # Opus streams always decode at one of these
    buf = io.BytesIO()
    out = av.open(buf, mode="w", format=muxer)
    try:
        stream = out.add_stream(codec.name, rate=rate, layout=original.layout)
        stream.format = _sample_format(codec, original)
        bit_rate = _bit_rate(original)
        if bit_rate:
            stream.bit_rate = bit_rate
        if codec.name == "libopus":
            # libopus's VBR spends far below its target on simple audio: constant bitrate
            # is the one way to promise "no lower than the input's"
            stream.codec_context.options = {"vbr": "off"}
        block = 1 << 15
        for i in range(0, samples.shape[1], block):
            frame = av.AudioFrame.from_ndarray(
                samples[:, i : i + block], format="fltp", layout=original.layout
            )
            frame.sample_rate = pcm.rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    except (av.FFmpegError, ValueError) as exc:
        raise UnsupportedMedia(f"the audio cannot be re-encoded as {codec.name}: {exc}") from None
    finally:
        out.close()
    return buf.getvalue()


def apply_audio(
    data: bytes,
    media_type: str,
    *,
    audible: str = "rhythm",
    place: str = "start",
    wording: str | None = None,
    watermark_key: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> AudioOutcome:
    """The signal half of labelling an audio file: audible label, then watermark.

    ``audible`` is ``rhythm`` (Morse "AI"), ``speech`` (the wording spoken) or
    ``none``; ``place`` is ``start``, ``end`` or ``both``. With ``audible="none"``
    and no key the input bytes come back unchanged (no re-encode). Otherwise
    the audio is decoded, changed and re-encoded like the input; the caller
    carries the container's metadata over.
    """
    from labelers.visible import audio as visible_audio
    from labelers.watermark import audio as audio_watermark

    if audible not in AUDIBLE_KINDS:
        raise InvalidOption(f"audible label must be one of {', '.join(AUDIBLE_KINDS)}")
    if place not in AUDIBLE_PLACES:
        raise InvalidOption(f"audible label place must be one of {', '.join(AUDIBLE_PLACES)}")
    _check_media_type(media_type)
    if audible == "none" and watermark_key is None:
        probe(data, media_type, limits)  # a damaged file is refused the same on every path
        return AudioOutcome(data, "none", "off")
    original = decode(data, media_type, limits)
    samples = original.samples
    notes: list[str] = []
    detail = ""
    if audible != "none":
        samples = visible_audio.add_audible(samples, original.rate, audible, place, wording)
        if place in visible_audio.EXTEND_PLACES:
            added = (samples.shape[1] - original.samples.shape[1]) / original.rate
            notes.append(
                f"the audible label plays {place} the programme: the file is {added:.2f} s longer"
            )
        elif audible == "rhythm":
            seconds = samples.shape[1] / original.rate
            unit = visible_audio.rhythm_unit(seconds, place)
            if unit < visible_audio.DOT_S:
                detail = f"{unit * 1000:.0f} ms dots"
                notes.append(
                    f"audio of {seconds:.2f} s is shorter than the "
                    f"{visible_audio.rhythm_need(place):.2f} s the rhythm needs at its standard "
                    f"speed: it plays faster, {unit * 1000:.0f} ms dots "
                    f"({visible_audio.RHYTHM_UNITS * unit:.2f} s a rhythm)"
                )
    mark = "off"
    if watermark_key is not None:
        seconds = samples.shape[1] / original.rate
        if seconds < audio_watermark.MIN_SECONDS:
            mark = (
                f"skipped: {seconds:.1f} s of audio is shorter than the "
                f"{audio_watermark.MIN_SECONDS:.0f} s the audio watermark needs"
            )
        else:
            samples = audio_watermark.embed(samples, original.rate, watermark_key)
            mark = "embedded"
    out = encode_like(original.with_samples(samples), original)
    return AudioOutcome(out, audible, mark, notes, detail)
