"""Fixtures for the detector tests."""

from __future__ import annotations

import pytest

from detectors import ocr


@pytest.fixture(autouse=True)
def unhurried_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """What OCR reads is under test here, not how fast: a machine loaded by other
    jobs must not cut tesseract short (the test of the cut-off passes its own)."""
    monkeypatch.setattr(ocr, "TIMEOUT", 120.0)
