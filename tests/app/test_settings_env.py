"""The pydantic-free settings reader (app.settings.from_env) against pydantic-settings.

The command line reads its settings with from_env, the service with Settings;
both derive from the one declaration (app.settings.Fields). These tests set
every variable to values of every shape and require the same outcome from
both: the same value of the same type, or a refusal from both.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from app.settings import Fields, Settings, SettingsError, from_env

FIELDS = dataclasses.fields(Fields)
HINTS = typing.get_type_hints(Fields)

NUMBERS = [
    "12",
    " 12 ",
    "12\n",
    "\t5",
    "5\xa0",
    "+3",
    "-4",
    "0",
    "00012",
    "1_000",
    "1__0",
    "_1",
    "1_",
    "1.0",
    "1.00",
    "1.",
    ".5",
    "1.5",
    "1_0.5",
    "1e3",
    "1E3",
    "1e-3",
    "1e",
    "0x10",
    "0b1",
    "inf",
    "-nan",
    "Infinity",
    "9" * 25,
    "1,000",
    "١٢",  # Arabic-Indic digits: Python's int() takes them, pydantic does not
    "",
    " ",
    "abc",
]
TEXTS = ["x", "", " a ", "/tmp/some where", "日本"]


def candidates(hint: Any) -> list[str]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    inner = args[0] if typing.get_origin(hint) in (typing.Union, type(int | None)) else hint
    if typing.get_origin(inner) is Literal:
        return [*typing.get_args(inner), "", "x", str(typing.get_args(inner)[0]).upper()]
    if inner in (int, float):
        return NUMBERS
    return TEXTS


def outcome(read: Any) -> tuple[str, Any]:
    try:
        value = read()
    except (ValidationError, SettingsError):
        return ("refused", None)
    return ("ok", value)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith("AIGC_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_the_defaults_are_the_same(clean_env: pytest.MonkeyPatch) -> None:
    ours, theirs = from_env(), Settings()
    for f in FIELDS:
        assert same(getattr(ours, f.name), getattr(theirs, f.name)), f.name
    assert ours.resolved_database_url == theirs.resolved_database_url
    assert ours.limits == theirs.limits


def test_the_model_is_the_declaration() -> None:
    assert list(Settings.model_fields) == [f.name for f in FIELDS]
    for f in FIELDS:
        field = Settings.model_fields[f.name]
        assert field.annotation == HINTS[f.name], f.name
        assert field.description == f.metadata.get("description"), f.name


@pytest.mark.parametrize("name", [f.name for f in FIELDS])
def test_every_value_reads_the_same_or_is_refused_by_both(
    clean_env: pytest.MonkeyPatch, name: str
) -> None:
    for raw in candidates(HINTS[name]):
        clean_env.setenv(f"AIGC_{name.upper()}", raw)
        ours = outcome(lambda: getattr(from_env(), name))
        theirs = outcome(lambda: getattr(Settings(), name))
        assert ours[0] == theirs[0], (name, raw, ours, theirs)
        assert same(ours[1], theirs[1]), (name, raw, ours, theirs)
    # names are case-insensitive for both
    clean_env.delenv(f"AIGC_{name.upper()}")
    raw = candidates(HINTS[name])[0]
    clean_env.setenv(f"aigc_{name}", raw)
    assert same(getattr(from_env(), name), getattr(Settings(), name))


def test_a_refusal_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AIGC_MAX_PIXELS", "lots")
    with pytest.raises(SettingsError, match="AIGC_MAX_PIXELS='lots'"):
        from_env()
