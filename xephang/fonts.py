"""Where the bundled Vietnamese-capable font lives.

Be Vietnam Pro ships on PyPI (`fontpkg-be-vietnam-pro`); every daemon that draws text
(ticket, board) takes its TTF paths from here so there is one place to change the font.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import fontpkg

if TYPE_CHECKING:
    from PIL import ImageFont

FAMILY = "Be Vietnam Pro"

# weight names used across the project -> CSS-style numeric weight
WEIGHTS = {"regular": 400, "medium": 500, "semibold": 600, "bold": 700, "extrabold": 800, "black": 900}


@cache
def font_path(weight: str | int = "regular") -> Path:
    """Path of the Be Vietnam Pro TTF for ``weight`` ("regular", "bold", 700 …)."""
    w = WEIGHTS[weight] if isinstance(weight, str) else int(weight)
    path = Path(fontpkg.path(FAMILY, weight=w))
    if not path.is_file():  # pragma: no cover - a broken install
        raise FileNotFoundError(f"font {FAMILY} weight {w} not found at {path}")
    return path


def wrap_text(text: str, font: ImageFont.FreeTypeFont, width: int, *, balance: bool = False) -> list[str]:
    """Word wrap to ``width`` pixels; a word wider than the line is split by letters.

    With ``balance`` the same number of lines is kept but made as even as possible (no lone
    last word under a centred title: "…xã Tường / Linh" becomes "…công / xã Tường Linh").
    """
    lines = _greedy_wrap(text, font, width)
    if not balance or len(lines) < 2:
        return lines
    longest_word = max((font.getlength(w) for w in unicodedata.normalize("NFC", text).split()), default=0)
    lo, hi = max(1, int(longest_word)), width
    while lo < hi:  # the narrowest width that still needs no more lines
        mid = (lo + hi) // 2
        if len(_greedy_wrap(text, font, mid)) <= len(lines):
            hi = mid
        else:
            lo = mid + 1
    return _greedy_wrap(text, font, hi)


def _greedy_wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for para in unicodedata.normalize("NFC", text).split("\n"):
        if font.getlength(para) <= width:  # the usual case: one measure, no word loop
            lines.append(para.strip())
            continue
        line = ""
        for word in para.split():
            cand = f"{line} {word}" if line else word
            if font.getlength(cand) <= width:
                line = cand
                continue
            if line:
                lines.append(line)
            line = ""
            if font.getlength(word) <= width:
                line = word
                continue
            for ch in word:  # a monster word: break it rather than overflow the paper
                if font.getlength(line + ch) > width and line:
                    lines.append(line)
                    line = ""
                line += ch
        if line:
            lines.append(line)
    return lines or [""]
