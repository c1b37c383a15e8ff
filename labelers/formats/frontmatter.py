"""Front matter: the YAML (``---``) or TOML (``+++``) block that opens a Markdown
file (and a Jekyll/Hugo HTML template), as static-site generators read it.

One splitter for every stage that must know where the block is: the Markdown
handler writes the record into it, the visible label and the text mark go
after it (anything put before or inside it would change how it parses, or
stop it being front matter at all), and HTML sniffing looks past it.

Only the block's extent is found here, in linear time (two anchored matches
and one forward search); parsing its YAML or TOML is the Markdown handler's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

YAML = "yaml"
TOML = "toml"

# the opening fence, at the very start (after an optional BOM)
_OPEN = re.compile(r"\ufeff?(---|\+\+\+)[ \t]*\r?\n")
# the closing fence, at the start of a line: YAML ends with "---" or "...",
# TOML with "+++" (Hugo's convention)
_CLOSE = {
    YAML: re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.MULTILINE),
    TOML: re.compile(r"^\+\+\+[ \t]*(?:\r?\n|\Z)", re.MULTILINE),
}


@dataclass(frozen=True)
class FrontMatter:
    """Where the block sits in the text it was found in (offsets into it)."""

    syntax: str  # YAML or TOML
    inner_start: int  # the first character after the opening fence line
    inner_end: int  # the start of the closing fence line
    body_start: int  # just after the closing fence line

    def inner(self, text: str) -> str:
        """The YAML or TOML text between the fences."""
        return text[self.inner_start : self.inner_end]


def split(text: str) -> FrontMatter | None:
    """The front matter opening ``text``, or None.

    A leading ``---`` with no closing fence is a thematic break, not front
    matter, and so is one that does not open the text.
    """
    opening = _OPEN.match(text)
    if opening is None:
        return None
    syntax = YAML if opening.group(1) == "---" else TOML
    closing = _CLOSE[syntax].search(text, opening.end())
    if closing is None:
        return None
    return FrontMatter(syntax, opening.end(), closing.start(), closing.end())


def body_start(text: str) -> int:
    """Where the text after the front matter begins; 0 when there is none."""
    found = split(text)
    return found.body_start if found else 0
