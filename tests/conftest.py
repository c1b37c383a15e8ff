"""Fixtures shared by the app tests: a real app on a temporary data directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.support import KEYS


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", api_keys=json.dumps(KEYS))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def pytest_configure(config: pytest.Config) -> None:
    """In CI the independent readers must be there: a skipped check is no check."""
    import os
    import shutil

    if os.environ.get("CI"):
        missing = [
            t
            for t in (
                "exiftool",
                "pdftotext",
                "pdftoppm",
                "qpdf",
                "soffice",
                "tesseract",
                "chromium",
            )
            if not shutil.which(t)
        ]
        if missing:
            raise pytest.UsageError(f"CI run without {', '.join(missing)}: see make system-deps")
