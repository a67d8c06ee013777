"""Read back the ESC/POS bytes we send: what the paper shows.

The inverse of :mod:`ticketd.escpos_job` (and of the old one-raster jobs), so tests, the
tty printer and the sim printer's PNG preview show exactly what the paper would show. The
bytes are parsed command by command (a naive search for ``GS v 0`` would also match inside
image data) and laid out on a strip of paper ``paper_px`` dots wide: rasters where the
justification puts them (double-width, double-height and quadruple ``GS v 0`` rasters, m = 1-3,
enlarged as the printer enlarges them), ``ESC J`` feeds in dot lines (the unit ``GS P`` set), printer-drawn
QR codes (``GS ( k``) drawn as a printer would draw them, NV graphics (``GS ( L`` / ``GS 8 L``
fn 67 define, fn 69 print) kept in a store that outlives the job, as the printer's NV memory does,
and page mode (``ESC L``, ``ESC W`` print area, ``ESC $`` / ``GS $`` positions in the units ``GS P``
set, NV graphics placed with their bottom-left corner on the print position, ``FF`` prints the area
and moves the paper by its height, ``ESC S`` discards it). Line feeds (``LF``, ``ESC d``) only
move paper towards the cutter after the ticket: they are counted, not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image, ImageOps

ESC, GS, DLE = 0x1B, 0x1D, 0x10
HEAD_DPI = 203  # the heads our tickets are drawn for (8 dots/mm)
QR_ECC_NAMES = {48: "L", 49: "M", 50: "Q", 51: "H"}
# GS v 0 m: (x, y) dots per data bit; normal, double width, double height, quadruple (Epson, and 48-51 alike)
RASTER_SCALES = {0: (1, 1), 1: (2, 1), 2: (1, 2), 3: (2, 2), 48: (1, 1), 49: (2, 1), 50: (1, 2), 51: (2, 2)}


class DecodeError(ValueError):
    """The byte stream holds a command this decoder does not know, or is truncated."""


class Truncated(DecodeError):
    """The bytes end inside a command (a stream read so far may still bring the rest)."""


@dataclass
class DecodedQr:
    """A QR code the printer was asked to draw (``GS ( k``)."""

    data: str
    module_px: int
    ecc: str
    x: int
    y: int
    size: int  # dots, square

    def image(self) -> Image.Image:
        """The symbol as a printer draws it: the smallest model-2 version for the data, no quiet zone."""
        import qrcode  # only a job with a printer-drawn QR needs it

        levels = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
                  "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}
        return qr_symbol(self.data, module_px=self.module_px, error_correction=levels[self.ecc])


def qr_symbol(data: str, *, module_px: int, error_correction: int) -> Image.Image:
    """A mode "1" QR symbol, ``module_px`` dots per module, no quiet zone."""
    import qrcode

    qr = qrcode.QRCode(error_correction=error_correction, border=0, box_size=1)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    n = len(matrix)
    small = Image.new("1", (n, n), 255)
    small.putdata([0 if dark else 255 for row in matrix for dark in row])
    return small.resize((n * module_px, n * module_px), Image.Resampling.NEAREST)


@dataclass
class DecodedJob:
    """What a printer would do with a byte stream."""

    paper_px: int | None = None  # print area width; None: as wide as the widest raster
    rasters: list[Image.Image] = field(default_factory=list)  # mode "1", black = 0, in order
    placed: list[tuple[int, int, Image.Image]] = field(default_factory=list)  # (x, y, raster or QR)
    qr_codes: list[DecodedQr] = field(default_factory=list)
    inits: int = 0
    cuts: int = 0
    feed_lines: int = 0  # LF / ESC d: text lines towards the cutter
    feed_dots: int = 0  # ESC J, in dot lines
    status_queries: int = 0
    nv: dict[bytes, Image.Image] = field(default_factory=dict)  # the printer's NV graphics, by key code
    nv_defines: list[bytes] = field(default_factory=list)  # key codes written (NV writes) by this job
    nv_missing: list[bytes] = field(default_factory=list)  # printed key codes the printer did not have
    y: int = 0  # dot lines of paper moved by rasters, QR codes and ESC J
    align: int = 0  # ESC a: 0 left, 1 centre, 2 right
    unit_y: int = 0  # GS P y (0: the printer's default, taken as one dot)
    unit_x: int = 0  # GS P x (0: the printer's default, taken as one dot)
    page: Image.Image | None = None  # page mode: the print area being composed (None: standard mode)
    page_x: int = 0  # page mode: the print position, dots from the area's left edge and top
    page_y: int = 0
    pages: int = 0  # pages printed (FF)
    _qr_data: bytes = b""
    _qr_module: int = 3
    _qr_ecc: str = "L"

    def _x(self, width: int) -> int:
        area = self.paper_px or width
        return {0: 0, 1: (area - width) // 2, 2: area - width}.get(self.align, 0)

    def image(self) -> Image.Image | None:
        """The paper from the first dot line to the last one moved (``None``: nothing printed)."""
        if not self.placed:
            return None
        width = self.paper_px or max(x + img.width for x, _, img in self.placed)
        out = Image.new("1", (width, max(1, self.y)), 255)
        for x, y, img in self.placed:
            out.paste(img, (x, y))
        return out

    def place(self, img: Image.Image) -> None:
        self.placed.append((self._x(img.width), self.y, img))
        self.y += img.height


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
        if op in (0x64, 0x4A, 0x61):  # ESC d n, ESC J n, ESC a n
            return 3
        if op in (0x4C, 0x53):  # ESC L (page mode), ESC S (standard mode)
            return 2
        if op == 0x24:  # ESC $ nL nH
            return 4
        if op == 0x57:  # ESC W xL xH yL yH dxL dxH dyL dyH
            return 10
        raise DecodeError(f"unknown ESC 0x{op:02x} at byte {i}")
    if b == GS:
        need(2)
        op = data[i + 1]
        if op == 0x76:  # GS v 0 m xL xH yL yH d1..dk
            need(8)
            if data[i + 2] not in (0x30, 0x00):
                raise DecodeError(f"GS v {data[i + 2]} is not raster mode 0 at byte {i}")
            if data[i + 3] not in RASTER_SCALES:
                raise DecodeError(f"GS v 0 mode m = {data[i + 3]} at byte {i} is not one of 0-3, 48-51")
            return 8 + (data[i + 4] | data[i + 5] << 8) * (data[i + 6] | data[i + 7] << 8)
        if op == 0x72:  # GS r n: transmit status (paper sensor), answered after the data before it
            return 3
        if op == 0x56:  # GS V m [n]
            need(3)
            return 4 if data[i + 2] in (0x41, 0x42) else 3
        if op in (0x50, 0x24):  # GS P x y, GS $ nL nH
            return 4
        if op == 0x38:  # GS 8 L p1 p2 p3 p4 m fn ...
            need(7)
            if data[i + 2] != 0x4C:
                raise DecodeError(f"GS 8 {data[i + 2]:#04x} at byte {i} is not a graphics command")
            return 7 + int.from_bytes(data[i + 3:i + 7], "little")
        if op == 0x28:  # GS ( k / GS ( L pL pH ...
            need(5)
            if data[i + 2] == 0x4C:
                return 5 + (data[i + 3] | data[i + 4] << 8)
            if data[i + 2] != 0x6B:
                raise DecodeError(f"GS ( {data[i + 2]:#04x} at byte {i} is not a symbol command")
            return 5 + (data[i + 3] | data[i + 4] << 8)
        raise DecodeError(f"unknown GS 0x{op:02x} at byte {i}")
    if b == DLE:  # DLE EOT n: real-time status
        return 3
    if b == 0x0C:  # FF: in page mode, print the page and return to standard mode
        return 1
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


def decode_job(data: bytes, *, paper_px: int | None = None, nv: dict[bytes, Image.Image] | None = None) -> DecodedJob:
    """Parse ``data`` (INIT, GS v 0 rasters, ESC J / ESC d feeds, ESC a, GS P, GS ( k QR
    codes, GS ( L NV graphics, GS V cuts, LF, DLE EOT and GS r queries) onto paper
    ``paper_px`` dots wide. ``nv``: the printer's NV graphics before the job (updated in place)."""
    job = DecodedJob(paper_px=paper_px, nv={} if nv is None else nv)
    i, n = 0, len(data)
    while i < n:
        k = command_length(data, i)
        if i + k > n:
            raise Truncated(f"truncated command at byte {i}")
        apply_command(job, data[i:i + k])
        i += k
    return job


def raster_image(cmd: bytes) -> Image.Image:
    """The picture of one ``GS v 0`` command as printed (mode "1", black = 0): in double-width,
    double-height or quadruple mode (m = 1, 2, 3) each data bit is 2 dots wide, tall, or both."""
    wb, h = cmd[4] | cmd[5] << 8, cmd[6] | cmd[7] << 8
    bits = Image.frombytes("1", (wb * 8, h), cmd[8:])
    # ESC/POS: bit 1 = dot burnt (black); Pillow "1": 0 = black
    img = ImageOps.invert(bits.convert("L")).convert("1")
    sx, sy = RASTER_SCALES.get(cmd[3], (1, 1))
    if (sx, sy) != (1, 1):
        img = img.resize((img.width * sx, img.height * sy), Image.Resampling.NEAREST)
    return img


def apply_command(job: DecodedJob, cmd: bytes) -> None:
    """What one whole command (from :func:`split_commands`) does to the paper."""
    b = cmd[0]
    if job.page is not None or cmd[:2] == b"\x1bL":
        if not _page_command(job, cmd):
            raise DecodeError(f"command {cmd[:3]!r} in page mode is not decoded")
        return
    if cmd[:2] in (b"\x1bS", b"\x1b$", b"\x1d$", b"\x1bW") or b == 0x0C:
        return  # page mode commands outside page mode: nothing on paper
    if b == 0x0A:
        job.feed_lines += 1
    elif b == ESC:
        if cmd[1] == 0x40:  # ESC @ resets the modes the job may have set
            job.inits += 1
            job.align, job.unit_y, job.unit_x = 0, 0, 0
        elif cmd[1] == 0x4A:
            dots = cmd[2] * HEAD_DPI // job.unit_y if job.unit_y else cmd[2]
            job.feed_dots += dots
            job.y += dots
        elif cmd[1] == 0x61:
            job.align = cmd[2] % 48 if cmd[2] >= 48 else cmd[2]
        else:
            job.feed_lines += cmd[2]
    elif b == GS and cmd[1] == 0x76:
        img = raster_image(cmd)
        job.rasters.append(img)
        job.place(img)
    elif b == GS and cmd[1] == 0x56:
        job.cuts += 1
    elif b == GS and cmd[1] == 0x50:
        job.unit_x, job.unit_y = cmd[2], cmd[3]
    elif b == GS and cmd[1] == 0x38:
        _apply_graphics(job, cmd[7:])
    elif b == GS and cmd[1] == 0x28 and cmd[2] == 0x4C:
        _apply_graphics(job, cmd[5:])
    elif b == GS and cmd[1] == 0x28:
        _apply_symbol(job, cmd)
    else:  # GS r, DLE EOT
        job.status_queries += 1


def _dots(n: int, unit: int) -> int:
    return n * HEAD_DPI // unit if unit else n


def _page_command(job: DecodedJob, cmd: bytes) -> bool:
    """Page mode: the commands ticketd sends around glyph graphics (``False``: not one of them).
    ``ESC L`` enters it."""
    b, op = cmd[0], cmd[1] if len(cmd) > 1 else 0
    if job.page is None:  # ESC L
        job.page = Image.new("1", (job.paper_px or 576, 1), 255)  # until ESC W: a print area of one line
        job.page_x = job.page_y = 0
        return True
    if b == ESC and op == 0x57:  # ESC W: x0 y0 dx dy (only x0 = y0 = 0 is decoded)
        x0, y0 = _dots(cmd[2] | cmd[3] << 8, job.unit_x), _dots(cmd[4] | cmd[5] << 8, job.unit_y)
        dx, dy = _dots(cmd[6] | cmd[7] << 8, job.unit_x), _dots(cmd[8] | cmd[9] << 8, job.unit_y)
        if x0 or y0 or not dx or not dy:
            raise DecodeError(f"page mode print area at {x0}, {y0}, {dx} x {dy} dots is not decoded")
        job.page = Image.new("1", (dx, dy), 255)
    elif b == ESC and op == 0x24:
        job.page_x = _dots(cmd[2] | cmd[3] << 8, job.unit_x)
    elif b == GS and op == 0x24:
        job.page_y = _dots(cmd[2] | cmd[3] << 8, job.unit_y)
    elif b == GS and op == 0x50:
        job.unit_x, job.unit_y = cmd[2], cmd[3]
    elif b == GS and op == 0x28 and cmd[2] == 0x4C and cmd[6] == 69:  # NV graphics into the page
        key = cmd[7:9]
        if cmd[9:11] != b"\x01\x01":
            raise DecodeError(f"NV graphics {key!r} printed enlarged in page mode: not decoded")
        img = job.nv.get(key)
        if img is None:
            job.nv_missing.append(key)
            return True
        # its bottom-left corner on the print position; dots outside the area are not printed
        mask = ImageOps.invert(img.convert("L"))
        job.page.paste(0, (job.page_x, job.page_y - img.height), mask)
        job.page_x += img.width  # assumed; ticketd sets ESC $ before every glyph, so its jobs do not rely on it
    elif b == 0x0C:  # FF: the area is printed, the paper moves by its height, standard mode again
        job.placed.append((0, job.y, job.page))
        job.y += job.page.height
        job.page = None
        job.pages += 1
    elif b == ESC and op == 0x53:  # ESC S: the page is dropped
        job.page = None
    else:
        return False
    return True


def _apply_symbol(job: DecodedJob, cmd: bytes) -> None:
    cn, fn = cmd[5], cmd[6]
    if cn != 0x31:
        raise DecodeError(f"GS ( k symbol type {cn:#04x} is not QR")
    if fn == 0x43:  # module size
        job._qr_module = cmd[7]
    elif fn == 0x45:  # error correction
        job._qr_ecc = QR_ECC_NAMES.get(cmd[7], "L")
    elif fn == 0x50:  # store
        job._qr_data = cmd[8:]
    elif fn == 0x51:  # print
        qr = DecodedQr(data=job._qr_data.decode("utf-8"), module_px=job._qr_module, ecc=job._qr_ecc,
                       x=0, y=job.y, size=0)
        img = qr.image()
        qr.x, qr.size = job._x(img.width), img.width
        job.qr_codes.append(qr)
        job.place(img)


def _apply_graphics(job: DecodedJob, p: bytes) -> None:
    """``GS ( L`` / ``GS 8 L`` after the length: m fn ... (NV graphics define 67, print 69)."""
    fn = p[1]
    if fn == 67:  # a kc1 kc2 b xL xH yL yH c d1...dk: raster, one colour
        key, x, y = p[3:5], p[6] | p[7] << 8, p[8] | p[9] << 8
        wb = (x + 7) // 8
        data = p[11:]
        if p[5] != 1 or len(data) != wb * y:
            raise DecodeError(f"NV graphics {key!r}: {p[5]} colours, {len(data)} bytes for {x} x {y} dots")
        img = raster_image(b"\x1dv0\x00" + bytes([wb & 0xFF, wb >> 8, y & 0xFF, y >> 8]) + data)
        job.nv[key] = img.crop((0, 0, x, y)) if x != wb * 8 else img
        job.nv_defines.append(key)
    elif fn == 69:  # kc1 kc2 x y: print at 1 x 1
        key = p[2:4]
        if p[4:6] != b"\x01\x01":
            raise DecodeError(f"NV graphics {key!r} printed enlarged ({p[4]} x {p[5]}): not decoded")
        img = job.nv.get(key)
        if img is None:  # a real printer prints nothing for a key it does not have
            job.nv_missing.append(key)
            return
        job.place(img)
    else:
        raise DecodeError(f"GS ( L function {fn} is not decoded")
