"""Each input limit agrees wherever it is stated: the library default (Limits),
the setting that overrides it (Settings, AIGC_*) and the README's settings table.

A limit the library enforces but no setting sets, or a README default that is
not the one the code uses, fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from app.settings import Settings
from labelers.limits import DEFAULT_LIMITS, Limits

README = Path(__file__).resolve().parents[2] / "README.md"
#: Limits fields whose setting has another name
SETTING_FOR = {"max_bytes": "max_upload_bytes"}


def _readme_defaults() -> dict[str, str]:
    rows = re.findall(r"^\| `(AIGC_[A-Z0-9_]+)` \| ([^|]*) \|", README.read_text("utf-8"), re.M)
    return {name: default.strip() for name, default in rows}


def test_every_limit_has_a_setting_that_reaches_it_with_the_same_default() -> None:
    settings = Settings()
    for field in dataclasses.fields(Limits):
        setting = SETTING_FOR.get(field.name, field.name)
        assert setting in Settings.model_fields, f"no AIGC_{setting.upper()} for {field.name}"
        assert getattr(settings, setting) == getattr(DEFAULT_LIMITS, field.name), setting
        # the setting reaches the library: a changed value shows in Settings.limits
        changed = Settings(**{setting: getattr(DEFAULT_LIMITS, field.name) + 1}).limits
        assert getattr(changed, field.name) == getattr(DEFAULT_LIMITS, field.name) + 1


def test_the_readme_states_each_limits_default() -> None:
    readme = _readme_defaults()
    for field in dataclasses.fields(Limits):
        env = "AIGC_" + SETTING_FOR.get(field.name, field.name).upper()
        assert env in readme, f"{env} is not in the README settings table"
        stated = readme[env]
        value = getattr(DEFAULT_LIMITS, field.name)
        assert float(stated) == value, f"README says {env}={stated}, the code uses {value}"
