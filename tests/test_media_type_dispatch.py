"""Only the format modules (and the visible/watermark modules of a kind) compare
media-type strings; everything else dispatches on a handler's kind and capabilities.

A new container then needs no edit outside its own module: a stage that asked
``media_type == "application/pdf"`` would silently skip it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: where media-type strings belong: the containers, and the per-kind renderers
#: that work on one container's bytes
ALLOWED = ("labelers/formats/", "labelers/visible/", "labelers/watermark/")
#: a media-type literal (or a module's table of them, FOO_TYPES) being compared,
#: or a media_type compared for equality or prefix. Membership in what a handler
#: declares (handler.media_types, handler.paged_types) is how dispatch is meant to go.
COMPARISON = re.compile(
    r"""(==|!=|\bin\b|startswith\()\s*[(\[{]?\s*["'](image|application|text|audio|video)/"""
    r"""|\bin\s+[A-Z_]*TYPES\b|media_type\s*(==|!=)|media_type\.startswith"""
)
#: HTTP content negotiation is about the request, not a file's container
HTTP = re.compile(r"\bctype\b|content_type|Content-Type", re.IGNORECASE)


def _offences() -> list[str]:
    found = []
    for package in ("app", "detectors", "labelers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(ALLOWED):
                continue
            for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if COMPARISON.search(code) and not HTTP.search(code):
                    found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_no_media_type_comparisons_outside_the_format_modules() -> None:
    assert _offences() == []


def test_the_check_sees_a_comparison_when_there_is_one() -> None:
    assert COMPARISON.search('if media_type == "application/pdf":')
    assert COMPARISON.search('elif kind.startswith("image/"):')
    assert COMPARISON.search("if report.media_type in PAGED_TYPES:")
    assert COMPARISON.search('if media_type in ("text/markdown", "text/html"):')
    assert not COMPARISON.search("if media_type in handler.paged_types:")
    assert not COMPARISON.search("if handler.kind == Kind.IMAGE:")
