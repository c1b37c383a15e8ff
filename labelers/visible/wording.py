"""Explicit-label wording (GB 45438 clause 5).

A wording must contain an AI element ("人工智能" or "AI") and a generation
element ("生成" or "合成"). Presets cover the common choices; custom wording is
checked against the rule before anything is drawn.
"""

from __future__ import annotations

from labelers.errors import InvalidWording

DEFAULT_WORDING = "人工智能生成"
#: Named presets a client may pass instead of literal wording.
PRESETS = {
    "zh": DEFAULT_WORDING,
    "zh-short": "AI生成",
    "zh-synthetic": "人工智能合成",
    "bilingual": "AI生成 / AI-generated",
}
_AI_ELEMENTS = ("人工智能", "AI")
_GENERATION_ELEMENTS = ("生成", "合成")
MAX_WORDING_CHARS = 80


def resolve_wording(wording: str | None) -> str:
    """The wording to draw: a preset name, literal wording, or the default.

    Raises :class:`InvalidWording` naming the missing element.
    """
    if wording is None or not wording.strip():
        return DEFAULT_WORDING
    wording = PRESETS.get(wording.strip(), wording.strip())
    problems = wording_problems(wording)
    if problems:
        raise InvalidWording(
            f"wording {wording!r} "
            + " and ".join(problems)
            + ' (GB 45438 clause 5; e.g. "人工智能生成", "AI生成", "AI合成")'
        )
    return wording


def wording_problems(wording: str) -> list[str]:
    out = []
    if len(wording) > MAX_WORDING_CHARS:
        out.append(f"is longer than {MAX_WORDING_CHARS} characters")
    if not any(e in wording for e in _AI_ELEMENTS):
        out.append('lacks an AI element ("人工智能" or "AI")')
    if not any(e in wording for e in _GENERATION_ELEMENTS):
        out.append('lacks a generation element ("生成" or "合成")')
    return out


def find_wording(text: str) -> list[str]:
    """Explicit-label phrases present in ``text`` (for verification).

    Matches an AI element followed closely by a generation element, so
    "AI生成", "人工智能生成", "由人工智能合成" and "AI-generated" are found.
    """
    import re

    pattern = re.compile(
        r"(人工智能|AI)\s*[-—–]?\s*(辅助)?(生成|合成)|\bAI[- ](generated|synthesi[sz]ed)\b",
        re.IGNORECASE,
    )
    return [m.group(0) for m in pattern.finditer(text)]
