"""Which characters a TrueType font really has (its ``cmap``), to prove a ticket prints whole.

Pillow draws a missing character as an empty box or nothing, silently. A citizen holding
"Chng thc" instead of "Chứng thực" is a bug we must catch in tests and at start-up, so
we read the font's character map ourselves (formats 4 and 12, what every modern TTF has).
"""

from __future__ import annotations

import struct
import unicodedata
from functools import cache
from pathlib import Path


@cache
def font_charset(path: Path | str) -> frozenset[int]:
    """Code points the font at ``path`` maps to a real glyph (not ``.notdef``)."""
    data = Path(path).read_bytes()
    (num_tables,) = struct.unpack_from(">H", data, 4)
    cmap_off = None
    for i in range(num_tables):
        tag, _check, off, _len = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        if tag == b"cmap":
            cmap_off = off
            break
    if cmap_off is None:
        raise ValueError(f"{path}: no cmap table")
    (_ver, n_sub) = struct.unpack_from(">HH", data, cmap_off)
    subtables: dict[tuple[int, int], int] = {}
    for i in range(n_sub):
        pid, eid, off = struct.unpack_from(">HHI", data, cmap_off + 4 + 8 * i)
        subtables[(pid, eid)] = cmap_off + off
    # full Unicode (format 12) first, then the BMP map (format 4)
    for key in ((3, 10), (0, 4), (0, 6), (3, 1), (0, 3), (0, 1), (0, 0)):
        if key in subtables:
            off = subtables[key]
            (fmt,) = struct.unpack_from(">H", data, off)
            if fmt == 12:
                return frozenset(_format12(data, off))
            if fmt == 4:
                return frozenset(_format4(data, off))
    raise ValueError(f"{path}: no Unicode cmap subtable of format 4 or 12")


def _format4(data: bytes, off: int) -> set[int]:
    seg_x2 = struct.unpack_from(">H", data, off + 6)[0]
    seg = seg_x2 // 2
    ends_at = off + 14
    starts_at = ends_at + seg_x2 + 2
    deltas_at = starts_at + seg_x2
    ranges_at = deltas_at + seg_x2
    ends = struct.unpack_from(f">{seg}H", data, ends_at)
    starts = struct.unpack_from(f">{seg}H", data, starts_at)
    deltas = struct.unpack_from(f">{seg}h", data, deltas_at)
    range_offs = struct.unpack_from(f">{seg}H", data, ranges_at)
    out: set[int] = set()
    for i in range(seg):
        for c in range(starts[i], ends[i] + 1):
            if c == 0xFFFF:
                continue
            if range_offs[i] == 0:
                gid = (c + deltas[i]) & 0xFFFF
            else:
                # idRangeOffset is relative to its own slot in the array (the spec's pointer trick)
                at = ranges_at + 2 * i + range_offs[i] + 2 * (c - starts[i])
                gid = struct.unpack_from(">H", data, at)[0]
                if gid:
                    gid = (gid + deltas[i]) & 0xFFFF
            if gid:
                out.add(c)
    return out


def _format12(data: bytes, off: int) -> set[int]:
    (n_groups,) = struct.unpack_from(">I", data, off + 12)
    out: set[int] = set()
    for i in range(n_groups):
        start, end, gid = struct.unpack_from(">III", data, off + 16 + 12 * i)
        for c in range(start, end + 1):
            if gid + (c - start):
                out.add(c)
    return out


def missing_glyphs(text: str, path: Path | str) -> list[str]:
    """Characters of ``text`` (after NFC, as the ticket draws it) the font cannot draw.

    Whitespace and control characters are ignored. Returns them in first-seen order.
    """
    charset = font_charset(path)
    seen: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if ch.isspace() or unicodedata.category(ch).startswith("C"):
            continue
        if ord(ch) not in charset and ch not in seen:
            seen.append(ch)
    return seen
