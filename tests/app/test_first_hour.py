"""What a new user meets first: where data lives, a quiet start, helpful messages.

Real settings, a real SQLite ledger migrated by Alembic, and the real app.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.ledger import head_revisions, make_engine, open_ledger, schema_at_head
from labelers.errors import InvalidOption
from labelers.pipeline import parse_positions
from tests.imagery import photo
from tests.support import PLATFORM, auth


def test_default_data_dir_is_per_user_not_per_working_directory(tmp_path: Path) -> None:
    code = "from app.settings import Settings; print(Settings().data_dir)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGC_", "XDG_"))}
    env |= {"HOME": str(tmp_path / "home"), "PYTHONPATH": str(Path.cwd())}
    seen = set()
    for cwd in (tmp_path, tmp_path / "elsewhere"):
        cwd.mkdir(exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        seen.add(out.stdout.strip())
    assert seen == {str(tmp_path / "home" / ".local" / "share" / "aigc-label")}
    env["AIGC_DATA_DIR"] = str(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(tmp_path / "mine")


def test_head_revisions_match_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from app.ledger import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revisions() == frozenset(ScriptDirectory.from_config(cfg).get_heads())


def test_migration_runs_once_then_is_skipped_at_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    assert not schema_at_head(engine)  # a new database
    open_ledger(url, tmp_path).engine.dispose()
    assert schema_at_head(engine)
    with engine.begin() as conn:  # a database behind head is migrated again
        conn.exec_driver_sql("DROP TABLE propagations")  # as a database at 0001 is
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    assert not schema_at_head(engine)
    open_ledger(url, tmp_path).engine.dispose()
    assert schema_at_head(engine)
    engine.dispose()


def test_alembic_info_lines_are_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    open_ledger(f"sqlite:///{tmp_path / 'a.sqlite3'}", tmp_path).engine.dispose()
    assert not [r for r in caplog.records if r.name.startswith("alembic")]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("aigc").setLevel(logging.DEBUG)
    try:
        open_ledger(f"sqlite:///{tmp_path / 'b.sqlite3'}", tmp_path).engine.dispose()
    finally:
        logging.getLogger("aigc").setLevel(logging.NOTSET)
    assert [r for r in caplog.records if r.name.startswith("alembic")]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("top-left", {"image": "top-left", "video": "top-left"}),
        ("header", {"document": "header"}),
        ("image=top,document=header", {"image": "top", "document": "header"}),
        (" document=footer , left ", {"document": "footer", "image": "left", "video": "left"}),
        ("image=top,video=bottom-left", {"image": "top", "video": "bottom-left"}),
    ],
)
def test_positions_per_kind(spec: str, expected: dict[str, str]) -> None:
    assert parse_positions(spec) == expected


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("middle", "applies to no kind"),
        ("image=header", "does not apply to images"),
        ("audio=top", "does not apply to audio"),
        ("sound=top", "unknown"),
        ("video=footer", "does not apply to videos"),
    ],
)
def test_positions_that_fit_nothing_are_refused(spec: str, names: str) -> None:
    with pytest.raises(InvalidOption, match=names):
        parse_positions(spec)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    photo(width, height).save(buf, "PNG")
    return buf.getvalue()


def test_too_small_image_error_shows_the_way_forward(client: TestClient) -> None:
    resp = client.post("/v1/label", files={"file": ("s.png", _png(100, 80))}, headers=auth())
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "100x80" in detail and "explicit=none" in detail and "omit_explicit" in detail
    # and the way it names works
    ok = client.post(
        "/v1/label",
        files={"file": ("s.png", _png(100, 80))},
        data={"explicit": "none", "omit_reason": "icon"},
        headers=auth("omit-key"),
    )
    assert ok.status_code == 200 and ok.headers["AIGC-Explicit"] == "none"


def test_label_2_rule_speaks_a_moderators_words(client: TestClient) -> None:
    shared = client.post(
        "/v1/propagate",
        files={"file": ("p.png", _png(320, 240))},
        data={"declared_ai": "true"},
        headers=auth("platform-key"),
    )
    assert shared.status_code == 200, shared.text
    report = client.post(
        "/v1/verify", files={"file": ("p.png", shared.content)}, headers=auth()
    ).json()
    assert report["record"]["Label"] == "2"
    assert report["record"]["ContentPropagator"] == PLATFORM
    assert report["classification"] == "possible"
    assert "possibly AI-generated" in report["rule"] and "not confirmed" in report["rule"]
    Image.open(io.BytesIO(shared.content)).verify()
