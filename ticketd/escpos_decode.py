"""Read back the ESC/POS bytes we send: raster images, feeds and cuts.

The inverse of what :mod:`ticketd.printer` builds, so tests (and the sim printer's PNG
preview) show exactly what the paper would show: the bytes are parsed command by command
(a naive search for ``GS v 0`` would also match inside image data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image, ImageOps

ESC, GS, DLE = 0x1B, 0x1D, 0x10


class DecodeError(ValueError):
    """The byte stream holds a command this decoder does not know, or is truncated."""


@dataclass
class DecodedJob:
    """What a printer would do with a byte stream."""

    rasters: list[Image.Image] = field(default_factory=list)  # mode "1", black = 0
    inits: int = 0
    cuts: int = 0
    feed_lines: int = 0
    status_queries: int = 0

    def image(self) -> Image.Image | None:
        """All raster fragments stacked, as printed (``None`` when there is none)."""
        if not self.rasters:
            return None
        width = max(r.width for r in self.rasters)
        out = Image.new("1", (width, sum(r.height for r in self.rasters)), 255)
        y = 0
        for r in self.rasters:
            out.paste(r, (0, y))
            y += r.height
        return out


def decode_job(data: bytes) -> DecodedJob:
    """Parse ``data`` (INIT, GS v 0 rasters, ESC d feeds, GS V cuts, LF, DLE EOT queries)."""
    job = DecodedJob()
    i, n = 0, len(data)

    def need(k: int) -> None:
        if i + k > n:
            raise DecodeError(f"truncated command at byte {i}")

    while i < n:
        b = data[i]
        if b == 0x0A:  # LF
            job.feed_lines += 1
            i += 1
        elif b == ESC:
            need(2)
            op = data[i + 1]
            if op == 0x40:  # ESC @
                job.inits += 1
                i += 2
            elif op == 0x64:  # ESC d n
                need(3)
                job.feed_lines += data[i + 2]
                i += 3
            else:
                raise DecodeError(f"unknown ESC 0x{op:02x} at byte {i}")
        elif b == GS:
            need(2)
            op = data[i + 1]
            if op == 0x76:  # GS v 0 m xL xH yL yH d1..dk
                need(8)
                if data[i + 2] not in (0x30, 0x00):
                    raise DecodeError(f"GS v {data[i + 2]} is not raster mode 0 at byte {i}")
                wb = data[i + 4] | data[i + 5] << 8
                h = data[i + 6] | data[i + 7] << 8
                size = wb * h
                i += 8
                if i + size > n:
                    raise DecodeError("truncated raster data")
                bits = Image.frombytes("1", (wb * 8, h), data[i:i + size])
                # ESC/POS: bit 1 = dot burnt (black); Pillow "1": 0 = black
                job.rasters.append(ImageOps.invert(bits.convert("L")).convert("1"))
                i += size
            elif op == 0x56:  # GS V m [n]
                need(3)
                m = data[i + 2]
                job.cuts += 1
                i += 4 if m in (0x41, 0x42, 65, 66) else 3
            else:
                raise DecodeError(f"unknown GS 0x{op:02x} at byte {i}")
        elif b == DLE:
            need(3)
            job.status_queries += 1
            i += 3
        else:
            raise DecodeError(f"unexpected byte 0x{b:02x} at {i}")
    return job
