"""Input limits, enforced before expensive work (decode, decompress, render).

The app builds one :class:`Limits` from settings; library calls take it as a
keyword argument and raise :class:`~labelers.errors.LimitExceeded` carrying
the limit's field name, its value and the amount measured. Library messages
say what was too large; the app adds which setting raises the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from labelers.errors import LimitExceeded


def _limit(default: Any, about: str, unit: str = "", setting: str | None = None) -> Any:
    """A limit's one declaration: default, what it bounds (the README's and the
    setting's description), the unit its values are stated in, and the name of
    the setting that overrides it when that is not the field's own name."""
    return field(default=default, metadata={"about": about, "unit": unit, "setting": setting})


MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Every input limit, declared once: the app's settings, their descriptions
    and the README's settings table are derived from or checked against these."""

    max_bytes: int = _limit(
        100 * MiB, "largest multipart upload", "bytes", setting="max_upload_bytes"
    )
    max_pixels: int = _limit(
        100_000_000, "largest image (width x height), checked before decoding", "pixels"
    )
    max_frames: int = _limit(1000, "most frames in an animated image", "frames")
    max_pages: int = _limit(2000, "most pages in a PDF (slides, sheets, TIFF pages)", "pages")
    max_zip_ratio: float = _limit(
        100.0, "largest uncompressed/compressed ratio in OOXML packages", "x"
    )
    max_unzipped_bytes: int = _limit(
        500 * MiB, "largest uncompressed OOXML package (and decoded PDF page content)", "bytes"
    )
    max_zip_entries: int = _limit(10_000, "most entries in an OOXML package", "entries")
    max_text_chars: int = _limit(5_000_000, "longest text to label", "characters")
    # pixel amplification: an image may decode to more than ``pixel_budget_floor``
    # pixels only if its file has at least one byte per ``max_pixels_per_byte``
    # of them (a 196-byte PNG must not declare 10000x10000 and cost 1.4 GB)
    max_pixels_per_byte: int = _limit(
        1000,
        "above the floor below, most pixels an image may declare per byte of its file "
        "(pixel-amplification bombs)",
        "pixels per byte",
    )
    pixel_budget_floor: int = _limit(
        16_000_000, "pixels any image may have whatever its file size", "pixels"
    )
    # audio, checked from the container's headers before any decode
    max_audio_seconds: float = _limit(
        3600.0,
        "longest audio (duration from the container's headers, checked before decoding)",
        "s",
    )
    max_audio_sample_rate: int = _limit(192_000, "highest audio sample rate (Hz)", "Hz")
    max_audio_channels: int = _limit(8, "most audio channels", "channels")
    # decoded as float32: seconds x rate x channels x 4 bytes
    max_audio_decoded_bytes: int = _limit(
        2 * 1024**3,
        "largest decoded audio (seconds x rate x channels x 4 bytes of float32)",
        "bytes",
    )
    # video, checked from the container's headers before any frame is decoded
    max_video_seconds: float = _limit(
        600.0,
        "longest video to decode (visible label, watermark, verify's frame sampling), "
        "from the container's headers before decoding",
        "s",
    )
    max_video_pixels: int = _limit(
        4096 * 2160, "largest video frame (width x height; 4096x2160)", "pixels"
    )
    max_video_frames: int = _limit(
        36_000, "most frames in a video (10 minutes at 60 fps)", "frames"
    )
    max_video_bitrate: int = _limit(
        100_000_000, "highest video stream bit rate, in bits per second", "bit/s"
    )

    def exceeded(self, limit: str, amount: float, detail: str) -> LimitExceeded:
        """The error for ``amount`` over the limit named ``limit`` (a field name);
        ``detail`` says what was measured, in the input's terms."""
        return LimitExceeded(detail, limit=limit, value=getattr(self, limit), amount=amount)

    def check(self, limit: str, amount: float, what: str) -> None:
        """Raise LimitExceeded when ``amount`` is over the limit named ``limit``.

        ``what`` names the thing measured ("the PNG file", "the text"); the
        message reads "the PNG file has 123 bytes, over the limit of 100 bytes".
        """
        value = getattr(self, limit)
        if amount > value:
            unit = UNITS[limit]
            raise self.exceeded(
                limit,
                amount,
                f"{what} has {_number(amount)} {unit}, over the limit of {_number(value)} {unit}",
            )


def _number(x: float) -> str:
    """``x`` as a person reads it: whole numbers in full (never 1.04858e+08)."""
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0")


#: the unit each limit is stated in, by field name
UNITS: dict[str, str] = {f.name: f.metadata["unit"] for f in fields(Limits)}
#: the setting that overrides each limit, by field name (most share the name)
SETTINGS: dict[str, str] = {f.name: f.metadata["setting"] or f.name for f in fields(Limits)}


def setting_name(limit: str) -> str:
    """The name of the setting that overrides the limit ``limit`` (a Limits field)."""
    return SETTINGS[limit]


DEFAULT_LIMITS = Limits()

#: bytes per decoded sample: audio is decoded to 32-bit floats
AUDIO_SAMPLE_BYTES = 4


def check_audio(
    limits: Limits, *, seconds: float, sample_rate: int, channels: int, what: str = "the audio"
) -> None:
    """Raise LimitExceeded when a stream's header values pass a limit.

    Called with what a container's headers declare, before anything is
    decoded; ``what`` names the stream in the message ("the MP3 stream").
    """
    if sample_rate > limits.max_audio_sample_rate:
        raise limits.exceeded(
            "max_audio_sample_rate",
            sample_rate,
            f"{what} has a sample rate of {sample_rate} Hz, over the limit of "
            f"{limits.max_audio_sample_rate} Hz",
        )
    limits.check("max_audio_channels", channels, what)
    if seconds > limits.max_audio_seconds:
        raise limits.exceeded(
            "max_audio_seconds",
            seconds,
            f"{what} lasts {seconds:.1f} s, over the limit of {limits.max_audio_seconds:g} s",
        )
    decoded = int(seconds * sample_rate) * channels * AUDIO_SAMPLE_BYTES
    if decoded > limits.max_audio_decoded_bytes:
        raise limits.exceeded(
            "max_audio_decoded_bytes",
            decoded,
            f"{what} would decode to {decoded} bytes, over the limit of "
            f"{limits.max_audio_decoded_bytes} bytes",
        )


def check_video(
    limits: Limits,
    *,
    seconds: float,
    width: int,
    height: int,
    frames: int | None,
    bitrate: int | None,
    what: str = "the video",
) -> None:
    """Raise LimitExceeded when a video's declared size is over a limit.

    Called with what the container's headers say, before decoding, so a
    bomb costs nothing; the decoder stops at the same limits in case the
    headers lied (they may understate what the stream holds).
    """
    if seconds > limits.max_video_seconds:
        raise limits.exceeded(
            "max_video_seconds",
            seconds,
            f"{what} lasts {seconds:.1f} s, over the limit of {limits.max_video_seconds:g} s",
        )
    if width * height > limits.max_video_pixels:
        raise limits.exceeded(
            "max_video_pixels",
            width * height,
            f"{what}'s frames are {width}x{height} = {width * height} pixels, over the limit "
            f"of {limits.max_video_pixels}",
        )
    if frames is not None:
        limits.check("max_video_frames", frames, what)
    if bitrate is not None and bitrate > limits.max_video_bitrate:
        raise limits.exceeded(
            "max_video_bitrate",
            bitrate,
            f"{what}'s stream runs at {bitrate} bit/s, over the limit of "
            f"{limits.max_video_bitrate} bit/s",
        )
