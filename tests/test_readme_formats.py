"""The README's format table agrees with the format registry.

Every registered handler's formats have a row, every row names a registered
format, and the watermark and C2PA columns say "yes" exactly where a handler
offers that capability: a new container cannot land undocumented, and the
table cannot promise what the code does not do.
"""

from __future__ import annotations

import re
from pathlib import Path

from labelers.formats import REGISTRY, Capability, handlers

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### What `/v1/label` does to each format"


def _rows() -> list[list[str]]:
    text = README.read_text("utf-8")
    section = text[text.index(SECTION) :]
    table = next(block for block in section.split("\n\n") if block.startswith("| format"))
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|")
    ]
    header, _rule, *body = rows
    assert header[:1] == ["format"] and "watermark" in header and "C2PA" in header
    return [header, *body]


def _names(cell: str) -> set[str]:
    cell = re.sub(r"\([^)]*\)", "", cell)
    return {part.strip() for part in re.split(r"[,/]", cell) if part.strip()}


def _says_yes(cell: str) -> bool:
    return bool(cell) and not cell.lower().startswith(("no", "not "))


def test_every_registered_format_has_a_row_and_every_row_a_handler() -> None:
    _header, *rows = _rows()
    listed = set().union(*(_names(row[0]) for row in rows))
    served = set().union(*(_names(h.name) for h in handlers()))
    assert served - listed == set(), "formats missing from the README table"
    assert listed - served == set(), "README rows for formats no handler serves"
    assert len(list(handlers())) == len(REGISTRY)


def test_the_watermark_and_c2pa_columns_match_the_capabilities() -> None:
    header, *rows = _rows()
    column = {name: header.index(name) for name in ("watermark", "C2PA")}
    for handler in handlers():
        mine = [row for row in rows if _names(row[0]) & _names(handler.name)]
        for name, capability in (("watermark", Capability.WATERMARK), ("C2PA", Capability.C2PA)):
            offered = capability in handler.capabilities
            said = any(_says_yes(row[column[name]]) for row in mine)
            assert said == offered, f"{handler.name}: README {name} column vs capabilities"
