"""Be Vietnam Pro for the pages, served by webd itself (no CDN): cut down to the letters a
Vietnamese or English page uses (Latin, Latin-1, Latin Extended-A/B, the Vietnamese block,
punctuation) and packed as WOFF, about a quarter of the TTF. Made once per process."""

from __future__ import annotations

import io
from functools import cache

from xephang.fonts import font_path

FONT_FILES = {"be-vietnam-pro-400.woff": 400, "be-vietnam-pro-700.woff": 700}
UNICODES = [*range(0x20, 0x7F), *range(0xA0, 0x250), *range(0x300, 0x324), *range(0x1EA0, 0x1F00),
            *range(0x2000, 0x206F), 0x20AB, 0x2192, 0x2212]


@cache
def font_woff(weight: int) -> bytes:
    """The subset font of ``weight`` (400 or 700) as WOFF bytes."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(str(font_path(weight)))
    opts = subset.Options()
    opts.flavor = "woff"
    opts.layout_features = ["kern", "liga", "ccmp", "mark", "mkmk", "locl"]
    opts.name_IDs = [1, 2]
    opts.notdef_outline = True
    opts.hinting = False
    sub = subset.Subsetter(options=opts)
    sub.populate(unicodes=UNICODES)
    sub.subset(font)
    out = io.BytesIO()
    font.flavor = "woff"
    font.save(out)
    return out.getvalue()
