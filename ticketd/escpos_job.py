"""A ticket image as the fewest ESC/POS bytes that print the same paper.

Pure: an image (and where its QR code sits) in, bytes out; no device, no python-escpos.
The inverse is :mod:`ticketd.escpos_decode`, which the tests use to prove that the paper
does not change.

A rendered ticket is mostly white. The old job sent it as one ``GS v 0`` raster, 72 bytes
for every dot line at 576 px, white or not. Here:

- **white bands travel as paper feed**: ``ESC J n`` (n dot lines, after ``GS P 0 203`` made
  the vertical motion unit one dot of a 203-dpi head), or, for a printer whose feed unit is
  not a dot, as a raster one byte wide (``white_bands = "raster"``);
- **ink bands are separate rasters**, each at most ``raster_max_lines`` lines tall (cheap
  printers have small raster buffers) and cut at its last inked byte on the right (a raster
  prints from the left margin, so the white on its right need not be sent), and a band is
  cut where that sends fewer bytes (:func:`split_band`: an accent or a digit's top, narrower
  than the lines under it, goes as its own narrower raster);
- with ``center_bands`` a band is also cut on the left by as much as on the right and
  printed centred (``ESC a 1``): fewer bytes, but only for printers that apply justification
  to raster images (many cheap ones print every raster at the left edge);
- with ``native_qr`` the QR code is sent as its URL and drawn by the printer
  (``GS ( k``, model 2, the renderer's module size and error correction), centred;
- with ``half_res_number`` a block the renderer drew in 2 x 2-dot cells (the big number, when the
  printer has that capability) goes at half resolution as quadruple rasters (``GS v 0`` m = 3: each
  data bit prints 2 dots wide and 2 tall), a quarter of its bytes; the paper is the rendered one;
- with ``nv_graphics`` the blocks every ticket shares (header, service name, footer, …) are
  kept in the printer's NV graphics memory (``GS ( L`` fn 67, written by
  :mod:`ticketd.nv_graphics` only when a block changes) and a ticket refers to each by its
  key code (fn 69: 11 bytes instead of a few KB);
- with ``nv_digits`` the big number is printed from **glyph graphics** kept in the same NV memory
  (one per digit and prefix letter at the number's font size, each cut to its ink), placed side by
  side in **page mode**: ``GS P`` (one dot per unit), ``ESC L``, ``ESC W`` (a print area from the
  number's first inked line to its last), then per glyph ``ESC $`` x, ``GS $`` the line under the
  glyph (a graphic's bottom edge sits on the vertical print position) and fn 69, and ``FF`` (print
  the page, back to standard mode): ~90 bytes instead of ~8.9 KB. Only where the renderer proved that
  the glyphs, so placed, are the rendered number dot for dot.

The job ends as before: ``ESC d 6`` (feed to the cutter) and ``GS V`` (cut).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

ESC_INIT = b"\x1b@"
FEED_UNIT_ONE_DOT = b"\x1dP\x00\xcb"  # GS P 0 203: vertical motion unit 1/203 inch (one dot), horizontal default
ALIGN_LEFT, ALIGN_CENTER = b"\x1ba\x00", b"\x1ba\x01"
CUT_FEED = b"\x1bd\x06"  # ESC d 6: as python-escpos' cut(): the ticket's end clears the cutter
CUTS = {"full": b"\x1dV\x00", "part": b"\x1dV\x01"}
QR_ECC = {"L": 48, "M": 49, "Q": 50, "H": 51}
RASTER_HEADER_BYTES = 8
FEED_BYTES = 3
MAX_RASTER_LINES = 2303  # the GS v 0 height limit of the ESC/POS reference (yH ≤ 8)
_INVERT = bytes(255 - i for i in range(256))  # Pillow "1": bit 1 = white; ESC/POS: bit 1 = a dot burnt


@dataclass(frozen=True, slots=True)
class JobOptions:
    """How a printer takes a ticket (``[printer]`` settings)."""

    cut: Literal["full", "part"] = "full"
    white_bands: Literal["feed", "raster"] = "feed"
    raster_max_lines: int = 255
    center_bands: bool = False
    native_qr: bool = False
    nv_graphics: bool = False
    half_res_number: bool = False  # blocks drawn in 2 x 2-dot cells go as quadruple rasters (GS v 0 m = 3)
    nv_digits: bool = False  # the big number from NV glyph graphics placed in page mode (needs nv_graphics)


@dataclass(frozen=True, slots=True)
class QrSpot:
    """Where the renderer drew a QR code: the URL, and the square it occupies in the image."""

    url: str
    top: int
    left: int
    size: int  # dots, square
    module_px: int  # dots per module
    ecc: Literal["L", "M", "Q", "H"] = "M"


@dataclass(frozen=True, slots=True)
class TicketBlock:
    """A block of the ticket, dot lines ``top`` to ``top + height``: ``key`` names it. ``shared``:
    drawn the same on every ticket of a layout (the centre's header, a service's name, the
    footer, …), so a printer may keep it; else drawn for this ticket (number, time, …)."""

    key: str
    top: int
    height: int
    shared: bool = True
    half_res: bool = False  # drawn in 2 x 2-dot cells from its top line and the left edge (may go as GS v 0 m = 3)
    glyphs: tuple[GlyphSpot, ...] = field(default=(), compare=False)  # its glyphs, when it is exactly them


@dataclass(frozen=True, slots=True, eq=False)
class GlyphSpot:
    """One glyph of a block (a digit or letter of the big number) as the renderer drew it: ``key``
    names the glyph at its size; its picture (``image``, mode "1", cut to its ink) lies at dots
    ``left``, ``top`` of the ticket."""

    key: str
    image: Image.Image
    left: int
    top: int


@dataclass(frozen=True, slots=True)
class PlacedGlyph:
    """A stored glyph graphic printed in page mode: its left edge at ``x`` dots, its bottom edge on
    the line ``bottom`` dots under the area's top (the vertical print position)."""

    key_code: bytes
    x: int
    bottom: int


@dataclass(frozen=True, slots=True)
class PageBand:
    """Dot lines ``top`` to ``top + height`` of the ticket are stored glyph graphics side by side
    (printed in page mode, an area ``height`` lines tall)."""

    top: int
    height: int
    glyphs: tuple[PlacedGlyph, ...]


@dataclass(frozen=True, slots=True)
class StoredBand:
    """Dot lines ``top`` to ``top + height`` of the ticket are a graphic the printer keeps under ``key_code``."""

    top: int
    height: int
    key_code: bytes  # kc1 kc2, each 32-126


# python-escpos has no NV / download graphics commands (GS ( L / GS 8 L): the encoders are ours
def _graphics_command(payload: bytes) -> bytes:
    """``GS ( L`` with its 2-byte length, or ``GS 8 L`` (4-byte length) for a payload over 65,535 bytes."""
    n = len(payload)
    if n <= 0xFFFF:
        return b"\x1d(L" + n.to_bytes(2, "little") + payload
    return b"\x1d8L" + n.to_bytes(4, "little") + payload


def nv_define(key_code: bytes, width_bytes: int, rows: bytes, *, width_dots: int | None = None) -> bytes:
    """``GS ( L`` fn 67: define NV graphics ``key_code``, raster format, one colour (bit 1 = a dot burnt),
    ``width_dots`` wide (default: every bit of the rows; fewer: the last byte's spare bits are not part of it).

    Each execution is a write of the printer's NV memory (Epson: fewer than 10 a day)."""
    height = len(rows) // width_bytes
    x = width_bytes * 8 if width_dots is None else width_dots
    if len(key_code) != 2 or not all(32 <= c <= 126 for c in key_code):
        raise ValueError(f"NV graphics key codes are two bytes 32-126, not {key_code!r}")
    if not (1 <= x <= 8192 and (x + 7) // 8 == width_bytes and 1 <= height <= 2304):
        raise ValueError(f"NV graphics are at most 8192 x 2304 dots (got {x} x {height} in {width_bytes} bytes a line)")
    return _graphics_command(b"\x30\x43\x30" + key_code + b"\x01" + x.to_bytes(2, "little")
                             + height.to_bytes(2, "little") + b"\x31" + rows)


def nv_print(key_code: bytes) -> bytes:
    """``GS ( L`` fn 69: print NV graphics ``key_code`` at normal size (x 1, y 1)."""
    return b"\x1d(L\x06\x00\x30\x45" + key_code + b"\x01\x01"


def page_of_glyphs(band: PageBand, width: int) -> bytes:
    """``band`` in page mode: ``GS P`` (one dot per horizontal and vertical unit), ``ESC L``, ``ESC W``
    (print area: the full width, ``band.height`` lines), then each glyph: ``ESC $`` its left edge,
    ``GS $`` the line under it (its bottom edge there), fn 69; ``FF`` prints the page and returns to
    standard mode. Starts and ends at the beginning of a line."""
    out = bytearray(b"\x1dP\xcb\xcb" + b"\x1bL" + b"\x1bW" + bytes([0, 0, 0, 0]) + width.to_bytes(2, "little")
                    + band.height.to_bytes(2, "little"))
    for g in band.glyphs:
        out += b"\x1b$" + g.x.to_bytes(2, "little") + b"\x1d$" + g.bottom.to_bytes(2, "little") + nv_print(g.key_code)
    return bytes(out + b"\x0c")


RASTER_NORMAL, RASTER_QUADRUPLE = 0, 3  # GS v 0 m: one dot per bit; 2 x 2 dots per bit (Epson: "Quadruple")


def raster(width_bytes: int, rows: bytes, *, mode: int = RASTER_NORMAL) -> bytes:
    """``GS v 0`` for ``rows`` (``width_bytes`` per line, bit 1 = black); ``mode`` 3 prints each bit as 2 x 2 dots."""
    height = len(rows) // width_bytes
    return b"\x1dv0" + bytes([mode, width_bytes & 0xFF, width_bytes >> 8, height & 0xFF, height >> 8]) + rows


def feed(lines: int) -> bytes:
    """``ESC J`` feeds of ``lines`` dot lines in all (at most 255 per command)."""
    out = bytearray()
    while lines > 0:
        n = min(255, lines)
        out += b"\x1bJ" + bytes([n])
        lines -= n
    return bytes(out)


def qr_commands(url: str, *, module_px: int, ecc: str) -> bytes:
    """``GS ( k`` model 2, module size, error correction, store ``url``, print."""
    data = url.encode("utf-8")
    if not 1 <= module_px <= 16 or len(data) > 7089:
        raise ValueError(f"a printer QR takes 1-16 dots per module and ≤ 7089 bytes (got {module_px}, {len(data)})")
    store = len(data) + 3
    return (b"\x1d(k\x04\x001A2\x00"  # fn 165: model 2
            + b"\x1d(k\x03\x001C" + bytes([module_px])  # fn 167: module size in dots
            + b"\x1d(k\x03\x001E" + bytes([QR_ECC[ecc]])  # fn 169: error correction level
            + b"\x1d(k" + bytes([store & 0xFF, store >> 8]) + b"1P0" + data  # fn 180: store the data
            + b"\x1d(k\x03\x001Q0")  # fn 181: print the stored symbol


def _ink_rows(image: Image.Image) -> tuple[bytes, int]:
    """The image as ESC/POS raster bytes (bit 1 = black) and the bytes per line."""
    img = image if image.mode == "1" else image.convert("1")
    if img.width % 8:  # pad with white: Pillow pads rows with 0 bits, which would print black
        padded = Image.new("1", ((img.width + 7) // 8 * 8, img.height), 255)
        padded.paste(img, (0, 0))
        img = padded
    return img.tobytes().translate(_INVERT), img.width // 8


def _qr_fits_natively(rows: bytes, wb: int, qr: QrSpot) -> bool:
    """Only the QR itself is inked in its lines (else its lines go as raster)."""
    x0, x1 = qr.left // 8, (qr.left + qr.size + 7) // 8
    for y in range(qr.top, qr.top + qr.size):
        line = rows[y * wb:(y + 1) * wb]
        if any(line[:x0]) or any(line[x1:]):
            return False
    return 1 <= qr.module_px <= 16


def band_rows(image: Image.Image, top: int, height: int) -> tuple[bytes, int]:
    """Dot lines ``top`` to ``top + height`` of ``image`` as raster bytes (bit 1 = black), and the bytes per line."""
    rows, wb = _ink_rows(image.crop((0, top, image.width, top + height)))
    return rows, wb


def half_res_rows(image: Image.Image, top: int, height: int) -> tuple[bytes, int, int, int] | None:
    """Dot lines ``top`` to ``top + height`` at half resolution, if they are made of 2 x 2-dot cells
    (counted from ``top`` and the left edge) and the image is a whole number of half-width bytes
    (so that a centred quadruple raster lands where the dots are): the ink's half-resolution lines
    as raster bytes, the bytes per line, and the first and end half line with ink. ``None``: the
    block is not made of cells (it then goes at full resolution; the paper never changes)."""
    if image.width % 16 or height < 2:
        return None
    block = image.crop((0, top, image.width, top + height)).convert("1")
    half = block.resize((image.width // 2, (height + 1) // 2), Image.Resampling.NEAREST)
    if half.resize((image.width, 2 * half.height), Image.Resampling.NEAREST).crop(
            (0, 0, image.width, height)).tobytes() != block.tobytes():
        return None
    rows, wb = _ink_rows(half)
    zero = bytes(wb)
    inked = [y for y in range(half.height) if rows[y * wb:(y + 1) * wb] != zero]
    if not inked or 2 * (inked[-1] + 1) > height:  # no ink, or a last half line that would print past the block
        return None
    return rows, wb, inked[0], inked[-1] + 1


def split_band(extents: list[tuple[int, int]], wb: int, *, center: bool,
               white_cost: Callable[[int], int]) -> list[tuple[int, int]]:
    """Where to cut a band into rasters so that the fewest bytes go: each raster costs its
    header and its lines at the width of its widest line (cut on both sides by the same amount
    when centred), so a few narrow lines (accents, a digit's top) are cheaper as their own
    raster. ``extents``: per line (first inked byte, last inked byte + 1), ``(wb, 0)`` when white.
    Returns ``(start, end)`` line ranges; the paper is the same.

    A cut inside a run of lines of equal extent is never cheaper than at one of its ends (the
    cost is linear in where it falls), so only run ends are tried: a few dozen, not every line."""
    ends = [i for i in range(1, len(extents)) if extents[i] != extents[i - 1]] + [len(extents)]
    starts = [0] + ends[:-1]
    n = len(ends)
    best = [0] + [1 << 60] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        lead, right = wb, 0
        for i in range(j - 1, -1, -1):  # the segment of runs i..j-1, growing upwards
            run_lead, run_right = extents[starts[i]]
            lead, right = min(lead, run_lead), max(right, run_right)
            lines = ends[j - 1] - starts[i]
            if right == 0:
                cost = white_cost(lines)
            else:
                cost = RASTER_HEADER_BYTES + lines * (wb - 2 * min(lead, wb - right) if center else right)
            if best[i] + cost < best[j]:
                best[j], cut[j] = best[i] + cost, i
    out = []
    j = n
    while j > 0:
        out.append((starts[cut[j]], ends[j - 1]))
        j = cut[j]
    return out[::-1]


def build_ticket_job(image: Image.Image, *, qr: QrSpot | None = None, options: JobOptions = JobOptions(),
                     stored: tuple[StoredBand, ...] = (), blocks: tuple[TicketBlock, ...] = (),
                     pages: tuple[PageBand, ...] = ()) -> bytes:
    """The whole job for one ticket: init, the image as bands and feeds (the QR natively if
    asked and possible, ``stored`` bands by their key code, ``pages`` as stored glyphs placed in
    page mode with ``nv_digits``, ``blocks`` marked ``half_res`` as quadruple rasters with
    ``half_res_number``), feed to the cutter, cut."""
    rows, wb = _ink_rows(image)
    height = image.height
    max_lines = max(1, min(options.raster_max_lines, MAX_RASTER_LINES))
    zero = bytes(wb)
    inked = [rows[y * wb:(y + 1) * wb] != zero for y in range(height)]
    native = qr if (options.native_qr and qr is not None and qr.top + qr.size <= height
                    and _qr_fits_natively(rows, wb, qr)) else None

    out = bytearray(ESC_INIT)
    if options.white_bands == "feed":
        out += FEED_UNIT_ONE_DOT
    if options.center_bands:
        out += ALIGN_CENTER

    def white(lines: int) -> None:
        if lines <= 0:
            return
        if options.white_bands == "feed":
            out.extend(feed(lines))
            return
        while lines > 0:  # a narrow white raster: exactly `lines` dot lines, whatever the feed unit
            n = min(lines, max_lines)
            out.extend(raster(1, bytes(n)))
            lines -= n

    def white_cost(lines: int) -> int:
        if options.white_bands == "feed":
            return FEED_BYTES * -(-lines // 255)
        return RASTER_HEADER_BYTES * -(-lines // max_lines) + lines

    def band(y0: int, y1: int, rows: bytes = rows, wb: int = wb, scale: int = 1) -> None:
        """Lines ``y0`` to ``y1`` of ``rows``; ``scale`` 2: half-resolution lines, printed as quadruple
        rasters (2 x 2 dots a bit) no taller on paper than ``max_lines``, their gaps fed twice as far."""
        step = max_lines // scale
        for y_top in range(y0, y1, step):
            y_bottom = min(y1, y_top + step)
            extents = []
            for y in range(y_top, y_bottom):
                line = rows[y * wb:(y + 1) * wb]
                right = len(line.rstrip(b"\x00"))
                extents.append((len(line) - len(line.lstrip(b"\x00")) if right else wb, right))
            for a, b in split_band(extents, wb, center=options.center_bands,
                                   white_cost=lambda n: white_cost(n * scale)):
                top, bottom = y_top + a, y_top + b
                right = max(r for _, r in extents[a:b])
                if right == 0:  # a short gap kept inside the band, alone in its block (a raster needs ink)
                    white((bottom - top) * scale)
                    continue
                left = 0
                if options.center_bands:
                    left = min(min(lead for lead, _ in extents[a:b]), wb - right)
                    right = wb - left
                out.extend(raster(right - left, b"".join(rows[y * wb + left:y * wb + right] for y in range(top, bottom)),
                                  mode=RASTER_QUADRUPLE if scale == 2 else RASTER_NORMAL))

    # the stored bands (in order, inside the image, not overlapping each other or a printer-drawn QR)
    taken = [(native.top, native.top + native.size)] if native is not None else []
    graphics: dict[int, StoredBand] = {}
    for s in sorted(stored, key=lambda s: s.top) if options.nv_graphics else ():
        span = (s.top, s.top + s.height)
        if s.height > 0 and span[1] <= height and all(span[1] <= a or span[0] >= b for a, b in taken):
            graphics[s.top] = s
            taken.append(span)
    glyph_pages: dict[int, PageBand] = {}
    for p in sorted(pages, key=lambda p: p.top) if options.nv_graphics and options.nv_digits else ():
        span = (p.top, p.top + p.height)
        if p.height > 0 and p.glyphs and span[1] <= height and all(span[1] <= a or span[0] >= b for a, b in taken):
            glyph_pages[p.top] = p
            taken.append(span)
    # the blocks drawn in 2 x 2-dot cells, from their first to their last inked cell line
    halves: dict[int, tuple[int, bytes, int, int, int]] = {}  # top → (dot lines, half-res rows, bytes a line, a, b)
    for blk in blocks if options.half_res_number and max_lines >= 2 else ():
        half = half_res_rows(image, blk.top, blk.height) if blk.half_res and blk.top + blk.height <= height else None
        if half is None:
            continue
        h_rows, h_wb, a, b = half
        span = (blk.top + 2 * a, blk.top + 2 * b)
        if all(span[1] <= x or span[0] >= z for x, z in taken):
            halves[span[0]] = (span[1] - span[0], h_rows, h_wb, a, b)
            taken.append(span)
    tops = sorted(a for a, _ in taken)

    y = 0
    while y < height:
        if y in graphics:
            out.extend(nv_print(graphics[y].key_code))
            y += graphics[y].height
            continue
        if y in glyph_pages:
            out.extend(page_of_glyphs(glyph_pages[y], image.width))
            y += glyph_pages[y].height
            continue
        if y in halves:
            lines, h_rows, h_wb, a, b = halves[y]
            band(a, b, h_rows, h_wb, 2)
            y += lines
            continue
        if native is not None and y == native.top:
            out.extend(b"" if options.center_bands else ALIGN_CENTER)
            out.extend(qr_commands(native.url, module_px=native.module_px, ecc=native.ecc))
            out.extend(b"" if options.center_bands else ALIGN_LEFT)
            y += native.size
            continue
        stop = next((t for t in tops if t > y), height)
        if not inked[y]:
            y1 = y
            while y1 < stop and not inked[y1]:
                y1 += 1
            white(y1 - y)
            y = y1
            continue
        # an ink band runs on across short white gaps that would cost more as a feed and a new header
        y1 = y
        width = 1
        while y1 < stop:
            if inked[y1]:
                width = max(width, len(rows[y1 * wb:(y1 + 1) * wb].rstrip(b"\x00")))
                y1 += 1
                continue
            gap_end = y1
            while gap_end < stop and not inked[gap_end]:
                gap_end += 1
            if gap_end >= stop or (gap_end - y1) * width > FEED_BYTES + RASTER_HEADER_BYTES:
                break
            y1 = gap_end
        band(y, y1)
        y = y1
    if options.center_bands:
        out += ALIGN_LEFT
    out += CUT_FEED + CUTS[options.cut]
    return bytes(out)
