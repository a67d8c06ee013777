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


class Truncated(DecodeError):
    """The bytes end inside a command (a stream read so far may still bring the rest)."""


def command_length(data: bytes, i: int) -> int:
    """Length of the command starting at ``data[i]``; :class:`Truncated` if it is cut off,
    :class:`DecodeError` if it is not one we know."""
    n = len(data)

    def need(k: int) -> None:
        if i + k > n:
            raise Truncated(f"truncated command at byte {i}")

    b = data[i]
    if b == 0x0A:  # LF
        return 1
    if b == ESC:
        need(2)
        op = data[i + 1]
        if op == 0x40:  # ESC @
            return 2
        if op == 0x64:  # ESC d n
            return 3
        raise DecodeError(f"unknown ESC 0x{op:02x} at byte {i}")
    if b == GS:
        need(2)
        op = data[i + 1]
        if op == 0x76:  # GS v 0 m xL xH yL yH d1..dk
            need(8)
            if data[i + 2] not in (0x30, 0x00):
                raise DecodeError(f"GS v {data[i + 2]} is not raster mode 0 at byte {i}")
            return 8 + (data[i + 4] | data[i + 5] << 8) * (data[i + 6] | data[i + 7] << 8)
        if op == 0x72:  # GS r n: transmit status (paper sensor), answered after the data before it
            return 3
        if op == 0x56:  # GS V m [n]
            need(3)
            return 4 if data[i + 2] in (0x41, 0x42) else 3
        raise DecodeError(f"unknown GS 0x{op:02x} at byte {i}")
    if b == DLE:  # DLE EOT n: real-time status
        return 3
    raise DecodeError(f"unexpected byte 0x{b:02x} at {i}")


def split_commands(data: bytes) -> tuple[list[bytes], int]:
    """The whole commands at the start of ``data`` and how many bytes they take; a command
    cut off at the end is left for more bytes (a printer reading its input as it comes)."""
    out: list[bytes] = []
    i = 0
    while i < len(data):
        try:
            k = command_length(data, i)
        except Truncated:
            break
        if i + k > len(data):
            break
        out.append(data[i:i + k])
        i += k
    return out, i


def decode_job(data: bytes) -> DecodedJob:
    """Parse ``data`` (INIT, GS v 0 rasters, ESC d feeds, GS V cuts, LF, DLE EOT and GS r queries)."""
    job = DecodedJob()
    i, n = 0, len(data)
    while i < n:
        k = command_length(data, i)
        if i + k > n:
            raise Truncated(f"truncated command at byte {i}")
        apply_command(job, data[i:i + k])
        i += k
    return job


def apply_command(job: DecodedJob, cmd: bytes) -> None:
    """What one whole command (from :func:`split_commands`) does to the paper."""
    b = cmd[0]
    if b == 0x0A:
        job.feed_lines += 1
    elif b == ESC:
        if cmd[1] == 0x40:
            job.inits += 1
        else:
            job.feed_lines += cmd[2]
    elif b == GS and cmd[1] == 0x76:
        wb, h = cmd[4] | cmd[5] << 8, cmd[6] | cmd[7] << 8
        bits = Image.frombytes("1", (wb * 8, h), cmd[8:])
        # ESC/POS: bit 1 = dot burnt (black); Pillow "1": 0 = black
        job.rasters.append(ImageOps.invert(bits.convert("L")).convert("1"))
    elif b == GS and cmd[1] == 0x56:
        job.cuts += 1
    else:  # GS r, DLE EOT
        job.status_queries += 1
