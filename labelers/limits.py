"""Input limits, enforced before expensive work (decode, decompress, render).

The app builds one :class:`Limits` from settings; library calls take it as a
keyword argument and raise :class:`~labelers.errors.LimitExceeded` naming the
limit and its setting.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    max_audio_seconds: float = 3600.0  # AIGC_MAX_AUDIO_SECONDS
    max_audio_sample_rate: int = 192_000  # AIGC_MAX_AUDIO_SAMPLE_RATE
    max_audio_channels: int = 8  # AIGC_MAX_AUDIO_CHANNELS
    max_audio_decoded_bytes: int = 2 * 1024 * 1024 * 1024  # AIGC_MAX_AUDIO_DECODED_BYTES


DEFAULT_LIMITS = Limits()
