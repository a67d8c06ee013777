"""Where the bundled Vietnamese-capable font lives.

Be Vietnam Pro ships on PyPI (`fontpkg-be-vietnam-pro`); every daemon that draws text
(ticket, board) takes its TTF paths from here so there is one place to change the font.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fontpkg

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
