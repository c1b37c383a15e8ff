"""Service settings, all from ``AIGC_*`` environment variables.

Every setting is documented in README.md ("Settings"); keep the two in step.

Declared once, in :class:`Fields` (a standard-library dataclass: name, type,
default, description). Two readers derive from that declaration:

* :class:`Settings`, a pydantic-settings model built from it on first use
  (the service and everything that constructs settings with keywords);
* :func:`from_env`, the same environment variables read without pydantic,
  for a one-shot command-line run: importing pydantic-settings cost such a
  run a fifth of its time. It reads the names, converts the types and falls
  back to the defaults exactly as Settings does (tests/app/test_settings_env.py
  holds the two to each other, field by field).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from labelers.limits import Limits, setting_name

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

ENV_PREFIX = "AIGC_"


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/aigc-label`` on Linux).

    One place for every process a user runs, wherever it starts: a default
    relative to the working directory gave the CLI run outside the clone a
    second development key, ledger and signing key, so its labels verified
    as ``unknown-key`` against the server.
    """
    from platformdirs import user_data_path

    return user_data_path("aigc-label", appauthor=False)


def _about(description: str) -> dict[str, str]:
    """A setting's description (the README's, pydantic's), as dataclass field metadata."""
    return {"description": description}


class _Derived:
    """What both readers compute from the values."""

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"

    @cached_property
    def limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, setting_name(f.name)) for f in fields(Limits)})


#: the input limits as settings: each Limits field under its setting's name, with
#: the library's default and description (declared there, once)
_LimitSettings = dataclasses.make_dataclass(
    "_LimitSettings",
    [
        (
            setting_name(f.name),
            f.type,
            field(default=f.default, metadata=_about(f.metadata["about"])),
        )
        for f in fields(Limits)
    ],
)


@dataclass
class Fields(_Derived, _LimitSettings):
    """Every setting (``AIGC_<NAME>``): the one declaration both readers use."""

    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata=_about("SQLite ledger and development keys; default: the per-user data directory"),
    )
    database_url: str | None = field(
        default=None, metadata=_about("SQLAlchemy URL; default SQLite file")
    )

    api_keys_file: Path | None = field(default=None, metadata=_about("JSON file of API keys"))
    api_keys: str | None = field(default=None, metadata=_about("the same JSON, inline"))

    c2pa_chain: Path | None = field(
        default=None, metadata=_about("PEM chain (leaf first) for C2PA signing")
    )
    c2pa_key: Path | None = field(default=None, metadata=_about("PEM private key for C2PA signing"))
    trust_anchors: Path | None = field(
        default=None, metadata=_about("PEM CA certificates trusted by verify")
    )
    software_agent: str = "aigc-label"
    record_scheme: Literal["ed25519", "sm2"] = field(
        default="ed25519",
        metadata=_about("ReservedCode1/2 signature scheme: ed25519 or sm2 (SM2 with SM3)"),
    )
    record_format: Literal["compact", "tc260"] = field(
        default="compact",
        metadata=_about(
            "what ReservedCode1/2 hold: compact (<scheme>.<kid>.<digest>.<signature>) "
            "or tc260 (TC260-PG-202511A SecurityData JSON; needs record_scheme sm2)"
        ),
    )
    record_key: Path | None = field(
        default=None,
        metadata=_about(
            "Ed25519 or SM2 PKCS#8 PEM key signing ReservedCode1/2 (must match "
            "record_scheme); default: generated in data dir"
        ),
    )
    record_public_keys: Path | None = field(
        default=None,
        metadata=_about('JSON {"<provider code>": "<PEM public key>"} of other parties'),
    )

    # the input limits (max_upload_bytes, max_pixels, ...) come from _LimitSettings
    max_json_bytes: int = 10 * 1024 * 1024
    max_concurrent_decodes: int = 2
    decode_memory_bytes: int = 1024 * 1024 * 1024
    decode_wait_seconds: float = 2.0
    body_read_timeout_seconds: float = 30.0
    keep_alive_seconds: int = 5
    shutdown_grace_seconds: int = 30

    log_level: str = "INFO"


def limit_setting(limit: str) -> str:
    """The variable that sets the library limit ``limit`` (a Limits field name)."""
    return ENV_PREFIX + setting_name(limit).upper()


def explained(exc: BaseException) -> str:
    """``exc``'s message for the person who sent the input; a LimitExceeded also
    names the setting that raises its limit (the library knows no settings)."""
    detail = getattr(exc, "detail", None) or str(exc)
    limit = getattr(exc, "limit", None)
    return f"{detail} (set by {limit_setting(limit)})" if limit else detail


class SettingsError(ValueError):
    """An ``AIGC_*`` variable holds a value its setting cannot take."""


_INT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?")


def _convert(hint: Any, raw: str) -> Any:
    """``raw`` as pydantic's lax mode reads a string into ``hint`` (the types used above)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None: an empty value is still X
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, raw)
    if origin is Literal:
        if raw in args:
            return raw
        raise ValueError("expected " + " or ".join(repr(a) for a in args))
    if hint is str:
        return raw
    if hint is Path:
        return Path(raw)
    text = raw.strip()
    if hint is int:
        if not (text.isascii() and _INT.fullmatch(text)):
            raise ValueError("expected an integer")
        return int(text.partition(".")[0])
    if hint is float:
        if not text.isascii():
            raise ValueError("expected a number")
        return float(text)  # its ValueError names the value
    raise TypeError(f"no environment reader for {hint!r}: teach app.settings._convert")


def from_env(environ: typing.Mapping[str, str] | None = None) -> Fields:
    """The settings from ``AIGC_*`` variables, without pydantic (names case-insensitive,
    as pydantic-settings reads them); SettingsError names a variable that holds a bad value."""
    env = {k.lower(): v for k, v in (os.environ if environ is None else environ).items()}
    hints = typing.get_type_hints(Fields)
    given: dict[str, Any] = {}
    for f in dataclasses.fields(Fields):
        raw = env.get((ENV_PREFIX + f.name).lower())
        if raw is None:
            continue
        try:
            given[f.name] = _convert(hints[f.name], raw)
        except ValueError as exc:
            raise SettingsError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: {exc}") from None
    return Fields(**given)


def _settings_model() -> type[BaseSettings]:
    """The pydantic-settings model of :class:`Fields`: same names, types, defaults."""
    from pydantic import Field, create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _Base(_Derived, BaseSettings):
        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    hints = typing.get_type_hints(Fields)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(Fields):
        default = (
            {"default_factory": f.default_factory}
            if f.default_factory is not dataclasses.MISSING
            else {"default": f.default}
        )
        fields[f.name] = (
            hints[f.name],
            Field(**default, description=f.metadata.get("description")),
        )
    model = create_model("Settings", __base__=_Base, __module__=__name__, **fields)
    model.__doc__ = "The settings, validated by pydantic (the service, tests)."
    return model


if TYPE_CHECKING:
    Settings = Fields  # for readers: Settings has Fields' attributes
else:

    def __getattr__(name: str) -> Any:
        """``Settings`` is built (and pydantic imported) only when first asked for."""
        if name == "Settings":
            model = _settings_model()
            globals()["Settings"] = model
            return model
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
