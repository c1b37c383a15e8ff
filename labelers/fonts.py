"""The CJK font visible labels are drawn with.

Shipped as a Python dependency (pylopdf-fonts-zh-cn, SIL OFL 1.1: Noto Sans SC)
so nothing depends on fonts installed on the host.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path


@cache
def cjk_font_path() -> Path:
    """Path of Noto Sans SC Regular (OpenType/CFF), usable by Pillow and fpdf2."""
    return Path(str(files("pylopdf_fonts_zh_cn") / "NotoSansSC-Regular.otf"))
