"""Input limits, enforced before expensive work (decode, decompress, render).

The app builds one :class:`Limits` from settings; library calls take it as a
keyword argument and raise :class:`~labelers.errors.LimitExceeded` naming the
limit and its setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from labelers.errors import LimitExceeded


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 100 * 1024 * 1024  # AIGC_MAX_UPLOAD_BYTES
    max_pixels: int = 100_000_000  # AIGC_MAX_PIXELS (per frame: width x height)
    max_frames: int = 1000  # AIGC_MAX_FRAMES (animated GIF/WebP)
    max_pages: int = 2000  # AIGC_MAX_PAGES (PDF pages, slides)
    max_zip_ratio: float = 100.0  # AIGC_MAX_ZIP_RATIO (uncompressed/compressed)
    max_unzipped_bytes: int = 500 * 1024 * 1024  # AIGC_MAX_UNZIPPED_BYTES
    max_zip_entries: int = 10_000  # AIGC_MAX_ZIP_ENTRIES
    max_text_chars: int = 5_000_000  # AIGC_MAX_TEXT_CHARS
    # pixel amplification: an image may decode to more than ``pixel_budget_floor``
    # pixels only if its file has at least one byte per ``max_pixels_per_byte``
    # of them (a 196-byte PNG must not declare 10000x10000 and cost 1.4 GB)
    max_pixels_per_byte: int = 1000  # AIGC_MAX_PIXELS_PER_BYTE
    pixel_budget_floor: int = 16_000_000  # AIGC_PIXEL_BUDGET_FLOOR
    # audio, checked from the container's headers before any decode
    max_audio_seconds: float = 3600.0  # AIGC_MAX_AUDIO_SECONDS
    max_audio_sample_rate: int = 192_000  # AIGC_MAX_AUDIO_SAMPLE_RATE
    max_audio_channels: int = 8  # AIGC_MAX_AUDIO_CHANNELS
    # decoded as float32: seconds x rate x channels x 4 bytes
    max_audio_decoded_bytes: int = 2 * 1024**3  # AIGC_MAX_AUDIO_DECODED_BYTES
    # video, checked from the container's headers before any frame is decoded
    max_video_seconds: float = 600.0  # AIGC_MAX_VIDEO_SECONDS
    max_video_pixels: int = 4096 * 2160  # AIGC_MAX_VIDEO_PIXELS (per frame)
    max_video_frames: int = 36_000  # AIGC_MAX_VIDEO_FRAMES (10 minutes at 60 fps)
    max_video_bitrate: int = 100_000_000  # AIGC_MAX_VIDEO_BITRATE (bits per second)


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
        raise LimitExceeded(
            f"{what} has a sample rate of {sample_rate} Hz, over the limit of "
            f"{limits.max_audio_sample_rate} Hz (AIGC_MAX_AUDIO_SAMPLE_RATE)"
        )
    if channels > limits.max_audio_channels:
        raise LimitExceeded(
            f"{what} has {channels} channels, over the limit of {limits.max_audio_channels} "
            "(AIGC_MAX_AUDIO_CHANNELS)"
        )
    if seconds > limits.max_audio_seconds:
        raise LimitExceeded(
            f"{what} lasts {seconds:.1f} s, over the limit of {limits.max_audio_seconds:g} s "
            "(AIGC_MAX_AUDIO_SECONDS)"
        )
    decoded = int(seconds * sample_rate) * channels * AUDIO_SAMPLE_BYTES
    if decoded > limits.max_audio_decoded_bytes:
        raise LimitExceeded(
            f"{what} would decode to {decoded} bytes, over the limit of "
            f"{limits.max_audio_decoded_bytes} bytes (AIGC_MAX_AUDIO_DECODED_BYTES)"
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
        raise LimitExceeded(
            f"{what} lasts {seconds:.1f} s, over the limit of {limits.max_video_seconds:g} s "
            "(AIGC_MAX_VIDEO_SECONDS)"
        )
    if width * height > limits.max_video_pixels:
        raise LimitExceeded(
            f"{what}'s frames are {width}x{height} = {width * height} pixels, over the limit "
            f"of {limits.max_video_pixels} (AIGC_MAX_VIDEO_PIXELS)"
        )
    if frames is not None and frames > limits.max_video_frames:
        raise LimitExceeded(
            f"{what} has {frames} frames, over the limit of {limits.max_video_frames} "
            "(AIGC_MAX_VIDEO_FRAMES)"
        )
    if bitrate is not None and bitrate > limits.max_video_bitrate:
        raise LimitExceeded(
            f"{what}'s stream runs at {bitrate} bit/s, over the limit of "
            f"{limits.max_video_bitrate} bit/s (AIGC_MAX_VIDEO_BITRATE)"
        )
