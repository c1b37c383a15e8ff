"""Each input limit is declared once (labelers.limits.Limits: default, description,
unit, setting name); the settings derive from it and the README's settings table
must agree with it; a LimitExceeded carries the limit, and the service and the
CLI name the setting that raises it.

A limit the library enforces but no setting sets, or a README default or
description that is not the one the code uses, fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.settings import Settings, explained
from labelers.errors import LimitExceeded
from labelers.limits import DEFAULT_LIMITS, Limits
from tests.support import KEYS, auth

README = Path(__file__).resolve().parents[2] / "README.md"
#: Limits fields whose setting has another name
SETTING_FOR = {"max_bytes": "max_upload_bytes"}


def _readme_rows() -> dict[str, tuple[str, str]]:
    rows = re.findall(
        r"^\| `(AIGC_[A-Z0-9_]+)` \| ([^|]*) \| (.*) \|$", README.read_text("utf-8"), re.M
    )
    return {name: (default.strip(), about.strip()) for name, default, about in rows}


def test_every_limit_has_a_setting_that_reaches_it_with_the_same_default() -> None:
    settings = Settings()
    for field in dataclasses.fields(Limits):
        setting = SETTING_FOR.get(field.name, field.name)
        assert setting in Settings.model_fields, f"no AIGC_{setting.upper()} for {field.name}"
        assert getattr(settings, setting) == getattr(DEFAULT_LIMITS, field.name), setting
        # the setting reaches the library: a changed value shows in Settings.limits
        changed = Settings(**{setting: getattr(DEFAULT_LIMITS, field.name) + 1}).limits
        assert getattr(changed, field.name) == getattr(DEFAULT_LIMITS, field.name) + 1


def test_the_readme_states_each_limits_default_and_description() -> None:
    readme = _readme_rows()
    for field in dataclasses.fields(Limits):
        env = "AIGC_" + SETTING_FOR.get(field.name, field.name).upper()
        assert env in readme, f"{env} is not in the README settings table"
        stated, about = readme[env]
        value = getattr(DEFAULT_LIMITS, field.name)
        assert float(stated) == value, f"README says {env}={stated}, the code uses {value}"
        assert about == field.metadata["about"], f"README describes {env} as {about!r}"
        assert Settings.model_fields[SETTING_FOR.get(field.name, field.name)].description == about


LIBRARY = [Path(__file__).resolve().parents[2] / d for d in ("labelers", "detectors")]
#: how library code names the limit an error is about
_LIMIT_USE = re.compile(r"""limits\.(?:exceeded|check)\(\s*"(\w+)"|limit="(\w+)\"""")


def _library_sources() -> dict[Path, str]:
    return {p: p.read_text("utf-8") for d in LIBRARY for p in sorted(d.rglob("*.py"))}


def test_every_limit_the_library_raises_is_a_declared_limit() -> None:
    declared = {f.name for f in dataclasses.fields(Limits)}
    used: set[str] = set()
    for path, text in _library_sources().items():
        for found in _LIMIT_USE.findall(text):
            name = next(n for n in found if n)
            assert name in declared, f"{path.name} raises an undeclared limit {name!r}"
            used.add(name)
    # each limit (bar the floor, which only widens max_pixels_per_byte) is enforced
    assert declared - used == {"pixel_budget_floor"}, declared - used


def _string_literals(text: str) -> Iterator[str]:
    """Every string constant in the module's code (f-string parts too), docstrings left out."""
    tree = ast.parse(text)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.value


def test_library_messages_name_no_setting_and_no_http_path() -> None:
    """The library does not know how it is deployed: settings and routes are app/'s."""
    for path, text in _library_sources().items():
        for literal in _string_literals(text):
            assert not re.search(r"AIGC_[A-Z]", literal), f"{path.name}: {literal!r}"
            assert "/v1/" not in literal, f"{path.name}: {literal!r}"


def test_the_limit_check_reads_as_a_sentence_and_carries_the_numbers() -> None:
    limits = Limits(max_bytes=100)
    with pytest.raises(LimitExceeded) as err:
        limits.check("max_bytes", 104_857_601, "the file")
    exc = err.value
    assert (exc.limit, exc.value, exc.amount) == ("max_bytes", 100, 104_857_601)
    assert exc.detail == "the file has 104857601 bytes, over the limit of 100 bytes"
    limits.check("max_bytes", 100, "the file")  # at the limit is within it
    assert explained(exc) == exc.detail + " (set by AIGC_MAX_UPLOAD_BYTES)"
    assert explained(LimitExceeded("the WAV would exceed 4 GiB")) == "the WAV would exceed 4 GiB"


def test_a_413_names_the_setting_its_value_and_the_measured_amount(tmp_path: Path) -> None:
    from app.main import create_app

    settings = Settings(
        data_dir=tmp_path / "var", api_keys=json.dumps(KEYS), max_pixels=64 * 64 - 1
    )
    image = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 140, 200)).save(image, "PNG")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/label",
            files={"file": ("a.png", image.getvalue(), "image/png")},
            headers=auth(),
        )
    assert response.status_code == 413, response.text
    problem = response.json()
    assert problem["type"].endswith("/limit-exceeded")
    assert problem["limit"] == "AIGC_MAX_PIXELS"
    assert problem["limit_value"] == 64 * 64 - 1 and problem["amount"] == 64 * 64
    assert problem["detail"].endswith("(set by AIGC_MAX_PIXELS)")


def test_the_cli_names_the_setting_when_a_file_is_over_a_limit(tmp_path: Path) -> None:
    image = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 140, 200)).save(image, "PNG")
    from tests.app.test_cli import run_here

    env = {"AIGC_DATA_DIR": str(tmp_path / "var"), "AIGC_MAX_PIXELS": "100"}
    done = run_here("label", "-", env=env, stdin=image.getvalue())
    assert done.returncode == 1, done.stderr
    assert done.stderr.decode().strip().endswith("(set by AIGC_MAX_PIXELS)"), done.stderr
