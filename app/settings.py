"""Service settings, all from ``AIGC_*`` environment variables.

Every setting is documented in README.md ("Settings"); keep the two in step.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from labelers.limits import Limits


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/aigc-label`` on Linux).

    One place for every process a user runs, wherever it starts: a default
    relative to the working directory gave the CLI run outside the clone a
    second development key, ledger and signing key, so its labels verified
    as ``unknown-key`` against the server.
    """
    from platformdirs import user_data_path

    return user_data_path("aigc-label", appauthor=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIGC_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="SQLite ledger and development keys; default: the per-user data directory",
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file")

    api_keys_file: Path | None = Field(None, description="JSON file of API keys")
    api_keys: str | None = Field(None, description="the same JSON, inline")

    c2pa_chain: Path | None = Field(None, description="PEM chain (leaf first) for C2PA signing")
    c2pa_key: Path | None = Field(None, description="PEM private key for C2PA signing")
    trust_anchors: Path | None = Field(None, description="PEM CA certificates trusted by verify")
    software_agent: str = "aigc-label"
    record_scheme: Literal["ed25519", "sm2"] = Field(
        "ed25519", description="ReservedCode1/2 signature scheme: ed25519 or sm2 (SM2 with SM3)"
    )
    record_format: Literal["compact", "tc260"] = Field(
        "compact",
        description="what ReservedCode1/2 hold: compact (<scheme>.<kid>.<digest>.<signature>) "
        "or tc260 (TC260-PG-202511A SecurityData JSON; needs record_scheme sm2)",
    )
    record_key: Path | None = Field(
        None,
        description="Ed25519 or SM2 PKCS#8 PEM key signing ReservedCode1/2 (must match "
        "record_scheme); default: generated in data dir",
    )
    record_public_keys: Path | None = Field(
        None, description='JSON {"<provider code>": "<PEM public key>"} of other parties'
    )

    max_upload_bytes: int = 100 * 1024 * 1024
    max_json_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_frames: int = 1000
    max_pages: int = 2000
    max_zip_ratio: float = 100.0
    max_unzipped_bytes: int = 500 * 1024 * 1024
    max_zip_entries: int = 10_000
    max_text_chars: int = 5_000_000
    max_pixels_per_byte: int = 1000
    pixel_budget_floor: int = 16_000_000
    max_audio_seconds: float = 3600.0
    max_audio_sample_rate: int = 192_000
    max_audio_channels: int = 8
    max_audio_decoded_bytes: int = 2 * 1024**3
    max_video_seconds: float = 600.0
    max_video_pixels: int = 4096 * 2160
    max_video_frames: int = 36_000
    max_video_bitrate: int = 100_000_000
    max_concurrent_decodes: int = 2
    decode_memory_bytes: int = 1024 * 1024 * 1024
    decode_wait_seconds: float = 2.0
    body_read_timeout_seconds: float = 30.0
    keep_alive_seconds: int = 5
    shutdown_grace_seconds: int = 30

    log_level: str = "INFO"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"

    @cached_property
    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_upload_bytes,
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            max_pages=self.max_pages,
            max_zip_ratio=self.max_zip_ratio,
            max_unzipped_bytes=self.max_unzipped_bytes,
            max_zip_entries=self.max_zip_entries,
            max_text_chars=self.max_text_chars,
            max_pixels_per_byte=self.max_pixels_per_byte,
            pixel_budget_floor=self.pixel_budget_floor,
            max_audio_seconds=self.max_audio_seconds,
            max_audio_sample_rate=self.max_audio_sample_rate,
            max_audio_channels=self.max_audio_channels,
            max_audio_decoded_bytes=self.max_audio_decoded_bytes,
            max_video_seconds=self.max_video_seconds,
            max_video_pixels=self.max_video_pixels,
            max_video_frames=self.max_video_frames,
            max_video_bitrate=self.max_video_bitrate,
        )
