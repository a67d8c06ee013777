"""Render a ticket as a 1-bit image at the printer's width (Pillow + Be Vietnam Pro).

Never printer code pages: every letter, with its stacked Vietnamese marks, is drawn here
and sent as a raster. The renderer caches what does not change per ticket (fonts, the
centre's header, each service's block, the footer, QR codes that carry no number), so a
ticket costs a few milliseconds: only the number, the time, the queue figures and
possibly the QR are drawn per ticket.

Layout, top to bottom: centre name, address, rule, "SỐ THỨ TỰ", the number (as large as
the width allows), priority box (inverted) when it applies, service name (wrapped, shrunk
to fit, never overflowing), rule, date and time (Asia/Ho_Chi_Minh), people ahead and
estimated wait, QR code + caption, footer.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ticketd.config import TEXTS_EN, TEXTS_VI, TicketLayout, TicketTexts
from ticketd.escpos_job import GlyphSpot, QrSpot, TicketBlock
from ticketd.glyphs import missing_glyphs
from xephang.clock import VN_TZ, format_vi_datetime
from xephang.fonts import font_path, wrap_text
from xephang.site import Site, format_number

log = logging.getLogger(__name__)

WHITE, BLACK = 255, 0
PRINTER_DPI = 203
# lines a citizen must read (time, people ahead, wait, footer) are at least 10 pt on paper, whatever
# the paper's width (a 58 mm printer has the same dots per inch as an 80 mm one)
MIN_READ_PT = 10.0
READ_PX = math.ceil(MIN_READ_PT / 72 * PRINTER_DPI)  # 29 px
FONT_WEIGHTS = ("regular", "semibold", "bold", "black")
VIETNAMESE_SAMPLE = "ĂÂĐÊÔƠƯ ăâđêôơư · á à ả ã ạ · Ấ Ầ Ẩ Ẫ Ậ · ố ồ ổ ỗ ộ · ứ ừ ử ữ ự · 0123456789"
# the test print's checks of how the printer takes our jobs (docs/printers.md)
FEED_CHECK = {"vi": "Khoảng trắng giữa hai vạch cao bằng ô đen (8 mm)",
              "en": "The gap between the two lines is as tall as the black box (8 mm)"}
CENTRE_CHECK = {"vi": "Dấu nhỏ nằm ngay trên vạch dài giữa thước",
                "en": "The small mark sits right above the long middle tick"}
NV_DIGITS_CHECK = {"vi": "Hai số dưới đây giống hệt nhau, khoảng trắng dưới mỗi số bằng nhau",
                   "en": "The two numbers below are the same, with the same gap under each"}
NV_DIGITS_SAMPLE = 1001  # the test print's number, once as raster and once from stored glyphs (page mode)
HALF_RES_CHECK = {"vi": "Hai ô đen bằng nhau, ô dưới ngay dưới ô trên",
                  "en": "The two black boxes are the same size, one right under the other"}
CHECK_DOTS = 64  # 8 mm at 203 dpi


@dataclass(frozen=True, slots=True)
class TicketView:
    """What one ticket shows (from the hub's reply; ``issued_at`` from the hub's clock)."""

    number: int
    service_id: str
    issued_at: datetime
    priority: bool = False
    priority_group: str | None = None
    people_ahead: int | None = None
    est_wait_min: float | None = None  # the median; printed alone only when the hub sent no range
    est_wait_low_min: int | None = None
    est_wait_high_min: int | None = None
    est_wait_open: bool = False  # "more than est_wait_low_min minutes"
    reprint: bool = False
    ticket_id: int | None = None  # the ledger id and service day: the live page's link (xephang.ticketlink)
    day: str | None = None


@lru_cache(maxsize=64)
def _font(weight: str, size: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: our text is NFC (precomposed letters), so no shaping is needed, and it is faster
    return ImageFont.truetype(str(font_path(weight)), size, layout_engine=ImageFont.Layout.BASIC)


class TicketRenderer:
    """Renders tickets for one site and layout; keeps its caches between tickets.

    :param site: the site model (names, services, priority groups, URLs).
    :param layout: width, language, texts, QR template.
    :param half_res_number: draw the big number in 2 x 2-dot cells (the printer's ``half_res_number``:
        it then goes as a quadruple raster, a quarter of the bytes); same size and place, coarser edges.
    :param nv_digits: say where the big number's glyphs are (the printer's ``nv_digits``: it then
        prints them from stored glyph graphics), when the number is exactly those glyphs side by side;
        the number is drawn as always.
    """

    def __init__(self, site: Site, layout: TicketLayout = TicketLayout(), *, link_secret: bytes | None = None,
                 half_res_number: bool = False, nv_digits: bool = False) -> None:
        self.site = site
        self.half_res_number = half_res_number
        self.nv_digits = nv_digits and not half_res_number  # a number in cells is not the glyphs
        self.link_secret = link_secret  # signs the {token} of the live page's link
        self.layout = layout
        self.texts: TicketTexts = layout.resolved_texts()
        self.width = layout.width_px
        self.scale = self.width / 576
        self.inner = self.width - 2 * layout.margin_px
        self._lut = [WHITE if p >= layout.threshold else BLACK for p in range(256)]
        self._header = self._build_header()
        self._footer = self._build_footer()
        self._blocks: dict[tuple[str, ...], Image.Image] = {}
        self._qr_cache: OrderedDict[str, tuple[Image.Image, int]] = OrderedDict()
        self._glyph_sets: dict[int, dict[str, tuple[Image.Image, int, int]]] = {}

    # --- public ---

    def render(self, view: TicketView) -> Image.Image:
        """The ticket as a mode "1" image, ``layout.width_px`` wide."""
        return self.render_with_qr(view)[0]

    def render_with_qr(self, view: TicketView) -> tuple[Image.Image, QrSpot | None]:
        """The ticket image and where its QR code is (a printer may draw that one itself)."""
        image, spot, _ = self.render_for_print(view)
        return image, spot

    def render_for_print(self, view: TicketView) -> tuple[Image.Image, QrSpot | None, tuple[TicketBlock, ...]]:
        """The ticket image, where its QR code is, and where its blocks are (those that every
        ticket of this layout shares are marked: a printer may keep them in its own memory)."""
        service = self.site.service(view.service_id)
        parts: list[Image.Image | int] = []
        # index in parts → (block key, shared, half_res, glyphs at dots from the block's top)
        keys: dict[int, tuple[str, bool, bool, tuple[GlyphSpot, ...]]] = {}

        def add(key: str, block: Image.Image, *, shared: bool, half_res: bool = False,
                glyphs: tuple[GlyphSpot, ...] = ()) -> None:
            keys[len(parts)] = (key, shared, half_res, glyphs)
            parts.append(block)

        add("header", self._header, shared=True)
        if view.reprint:
            add("reprint", self._cached(("reprint",), lambda: self._text(self.texts.reprint, "semibold", 22)),
                shared=False)  # rare: not worth a write of the printer's memory
        number = format_number(view.number, service.prefix)
        number_block = self._number_block(number)
        add("number", number_block, shared=False, half_res=self.half_res_number,
            glyphs=self._number_glyphs(number, number_block) if self.nv_digits else ())
        if view.priority:
            parts.append(self._s(6))
            add(f"priority:{view.priority_group or ''}", self._cached(
                ("priority", view.priority_group or ""), lambda: self._priority_block(view.priority_group)), shared=True)
        parts.append(self._s(8))
        add(f"service:{service.id}", self._cached(("service", service.id),
                                                  lambda: self._service_block(service.label(self.layout.lang))),
            shared=True)
        parts.append(self._s(10))
        add("rule", self._cached(("rule",), self._rule), shared=True)
        parts.append(self._s(10))
        add("time", self._text(self.issued_line(view), "regular", READ_PX, readable=True), shared=False)
        for i, line in enumerate(self.queue_lines(view)):
            parts.append(self._s(6))
            key = "people-ahead" if i == 0 and view.people_ahead is not None else "wait"
            add(key, self._text(line, "semibold", READ_PX, readable=True), shared=False)
        url = self.qr_url(view) if self.layout.show_qr else ""
        spot: QrSpot | None = None
        qr = self._qr_or_none(url) if url else None
        if qr is not None:
            qr_img, module_px = qr
            parts.append(self._s(14))
            top = sum(p if isinstance(p, int) else p.height for p in parts)
            # the block is as tall as the square symbol, centred as _qr pastes it
            spot = QrSpot(url=url, top=top, left=(self.width - qr_img.height) // 2, size=qr_img.height,
                          module_px=module_px, ecc="M")
            add("qr", qr_img, shared=False)
            parts.append(self._s(6))
            caption = self.qr_caption(self.qr_is_live(view))
            add("qr-caption", self._cached(("qr-caption", caption), lambda: self._text(
                caption, "regular", READ_PX, readable=True)), shared=True)
        parts.append(self._s(12))
        add("footer", self._footer, shared=True)
        blocks: list[TicketBlock] = []
        y = 0
        for i, p in enumerate(parts):
            h = p if isinstance(p, int) else p.height
            if i in keys:
                key, shared, half_res, glyphs = keys[i]
                blocks.append(TicketBlock(key=key, top=y, height=h, shared=shared, half_res=half_res,
                                          glyphs=_moved(glyphs, y)))
            y += h
        return self._stack(parts), spot, tuple(blocks)

    def render_test(self, now: datetime) -> Image.Image:
        """A technician's test print: header, test title, time, every Vietnamese mark, a ruler."""
        return self.render_test_for_print(now)[0]

    def render_test_for_print(self, now: datetime) -> tuple[Image.Image, tuple[TicketBlock, ...]]:
        """The test print and its blocks: with ``half_res_number`` it also checks that the printer
        enlarges a quadruple raster (an 8 mm box drawn in 2 x 2-dot cells, sent at a quarter of its
        dots, must come out as large as the full-resolution box above it); with ``nv_digits`` that it
        places stored glyphs in page mode (a big number as raster, then the same number from its
        glyphs, must look the same, with the same gap under each)."""
        ruler = Image.new("1", (self.width, 16), 255)
        d = ImageDraw.Draw(ruler)
        for x in range(0, self.width, 8):
            d.line([(x, 0), (x, 15 if x % 64 == 0 else 7)], fill=0)
        d.line([(self.width - 1, 0), (self.width - 1, 15)], fill=0)
        mid = self.width // 2
        d.line([(mid, 0), (mid, 15)], fill=0)
        d.line([(mid - 1, 0), (mid - 1, 15)], fill=0)
        lang = self.layout.lang
        # white travels as paper feed: its gap must come out as tall as the black box (a raster)
        box = Image.new("1", (self.width, CHECK_DOTS), 255)
        box.paste(0, (mid - 40, 0, mid + 40, CHECK_DOTS))
        line = Image.new("1", (self.width, 2), 255)
        line.paste(0, (mid - 40, 0, mid + 40, 2))
        # a narrow band (cropped, perhaps centred by the printer) above the full-width ruler
        mark = Image.new("1", (self.width, 10), 255)
        mark.paste(0, (mid - 4, 0, mid + 4, 10))
        feed_check: list[Image.Image | int] = [
            self._text(FEED_CHECK[lang], "regular", 18), self._s(6),
            box, self._s(8), line, CHECK_DOTS, line, self._s(8),
        ]
        half_box: Image.Image | None = None
        half_res_check: list[Image.Image | int] = []
        if self.half_res_number:  # the same box twice: at full resolution, then in cells (GS v 0 m = 3)
            square = Image.new("1", (self.width, CHECK_DOTS), 255)
            square.paste(0, (mid - mid % 2 - CHECK_DOTS // 2, 0, mid - mid % 2 + CHECK_DOTS // 2, CHECK_DOTS))
            half_box = square.copy()
            half_res_check = [self._text(HALF_RES_CHECK[lang], "regular", 18), self._s(6), square, self._s(6),
                              half_box, self._s(8)]
        glyph_box: Image.Image | None = None
        glyph_spots: tuple[GlyphSpot, ...] = ()
        nv_digits_check: list[Image.Image | int] = []
        if self.nv_digits:  # the same number twice: as raster, then from stored glyphs in page mode
            sample = format_number(NV_DIGITS_SAMPLE)
            raster_copy = self._number_block(sample)
            glyph_box = raster_copy.copy()
            glyph_spots = self._number_glyphs(sample, glyph_box)
            nv_digits_check = [self._text(NV_DIGITS_CHECK[lang], "regular", 18), self._s(6), raster_copy, self._s(6),
                               glyph_box, self._s(8)]
        # last, right above the ruler: the mark must sit on its long middle tick
        centre_check: list[Image.Image | int] = [self._text(CENTRE_CHECK[lang], "regular", 18), self._s(6), mark, 4]
        checks = [*feed_check, *half_res_check, *nv_digits_check, *centre_check]
        parts: list[Image.Image | int] = [
            self._header,
            self._text(self.texts.test_title, "bold", 30),
            self._s(8),
            self._text(format_vi_datetime(now.astimezone(VN_TZ), lang=self.layout.lang), "regular", 22),
            self._s(8),
            self._text(VIETNAMESE_SAMPLE, "regular", 24),
            self._s(8),
            *checks,
            ruler,
            self._s(8),
            self._footer,
        ]
        blocks: tuple[TicketBlock, ...] = ()
        if half_box is not None:
            top = _top_of(parts, half_box)
            blocks = (TicketBlock(key="half-res-check", top=top, height=CHECK_DOTS, shared=False, half_res=True),)
        if glyph_box is not None and glyph_spots:
            top = _top_of(parts, glyph_box)
            blocks += (TicketBlock(key="nv-digits-check", top=top, height=glyph_box.height, shared=False,
                                   glyphs=_moved(glyph_spots, top)),)
        return self._stack(parts), blocks

    def issued_line(self, view: TicketView) -> str:
        """'Giờ lấy số: Thứ Hai, 23/11/2026 08:05' in Vietnam time."""
        when = format_vi_datetime(view.issued_at.astimezone(VN_TZ), lang=self.layout.lang)
        return self.texts.issued_at.format(datetime=when)

    def queue_lines(self, view: TicketView) -> list[str]:
        """People ahead and estimated wait, as far as the hub told us."""
        lines: list[str] = []
        if view.people_ahead is not None:
            lines.append(self.texts.people_ahead.format(n=view.people_ahead))
        low, high = view.est_wait_low_min, view.est_wait_high_min
        if low is not None and view.est_wait_open:
            lines.append(self.texts.wait_over.format(low=low) if low > 0 else self.texts.wait_unknown)
        elif low is not None and high is not None:
            if high <= 0:
                lines.append(self.texts.wait_none)
            elif low <= 0:
                lines.append(self.texts.wait_under.format(high=high))
            else:
                lines.append(self.texts.wait_range.format(low=low, high=high))
        elif view.est_wait_min is not None:  # a hub that sends one figure
            minutes = max(0, math.ceil(view.est_wait_min))
            lines.append(self.texts.wait_estimate.format(minutes=minutes) if minutes else self.texts.wait_none)
        return lines

    def _qr_template(self, view: TicketView) -> str:
        return self.layout.qr_url or self.site.service(view.service_id).guide_url or self.site.site.queue_url

    def qr_is_live(self, view: TicketView) -> bool:
        """Does the QR open the ticket's own live page (a signed link), not a guide?"""
        return "{token}" in self._qr_template(view)

    def qr_caption(self, live: bool) -> str:
        """The line under the QR: what it opens. The live page is on the centre's LAN, so with the
        hall's Wi-Fi name it says to join it first. A technician's own ``qr_caption`` (the way
        before the live captions) is kept while the live captions are the built-in ones."""
        t, wifi = self.texts, self.layout.wifi_name
        if not live:
            return t.qr_caption.format(wifi=wifi)
        built_in = TEXTS_EN if self.layout.lang == "en" else TEXTS_VI
        if t.qr_caption != built_in.qr_caption and (t.qr_caption_live, t.qr_caption_live_wifi) == (
                built_in.qr_caption_live, built_in.qr_caption_live_wifi):
            return t.qr_caption.format(wifi=wifi)
        return (t.qr_caption_live_wifi if wifi else t.qr_caption_live).format(wifi=wifi)

    def qr_url(self, view: TicketView) -> str:
        """The QR target: the layout's template, else the service's guide, else the queue page."""
        service = self.site.service(view.service_id)
        number = format_number(view.number, service.prefix)
        template = self._qr_template(view)
        if not template:
            return ""
        token = ""
        if "{token}" in template:  # the live page: signed, or no QR at all (never a link that fails)
            if self.link_secret is None or view.ticket_id is None or not view.day:
                log.warning("qr_url needs {token} but no link secret or ticket id: QR skipped")
                return ""
            from xephang.ticketlink import ticket_token

            token = ticket_token(self.link_secret, self.site.site.slug, view.day, view.ticket_id, number)
        try:
            return template.format(site=self.site.site.slug, service=service.id, number=number,
                                   day=view.day or "", id=view.ticket_id or 0, token=token)
        except (KeyError, IndexError, ValueError):
            log.warning("qr_url template %r has unknown fields; QR skipped", template)
            return ""

    def printed_strings(self, view: TicketView | None = None) -> list[str]:
        """Every string this renderer can print (all configured texts, names, services, groups).

        With ``view``, also that ticket's own lines (number, time, queue figures).
        """
        out = [self.site.site.name_vi if self.layout.lang == "vi" else (self.site.site.name_en or self.site.site.name_vi),
               self.site.site.address, VIETNAMESE_SAMPLE, FEED_CHECK[self.layout.lang],
               CENTRE_CHECK[self.layout.lang], NV_DIGITS_CHECK[self.layout.lang], *self.texts.all_strings(),
               self.qr_caption(False), self.qr_caption(True)]  # with the hall's own Wi-Fi name
        out += [s.label(self.layout.lang) for s in self.site.services]
        out += [self._group_name(g.id) for g in self.site.priority.groups]
        if view is not None:
            service = self.site.service(view.service_id)
            out += [format_number(view.number, service.prefix), self.issued_line(view), *self.queue_lines(view)]
        return out

    def missing_glyphs(self, view: TicketView | None = None) -> dict[str, list[str]]:
        """String → characters no font we use can draw (empty dict: everything prints)."""
        bad: dict[str, list[str]] = {}
        for text in self.printed_strings(view):
            miss = sorted({c for w in FONT_WEIGHTS for c in missing_glyphs(text, font_path(w))})
            if miss:
                bad[text] = miss
        return bad

    # --- blocks ---

    def _s(self, px: float) -> int:
        return max(1, round(px * self.scale))

    def _size(self, px: float, *, readable: bool = False) -> int:
        return max(READ_PX if readable else 10, round(px * self.scale))

    def _cached(self, key: tuple[str, ...], build) -> Image.Image:  # noqa: ANN001
        img = self._blocks.get(key)
        if img is None:
            img = self._blocks[key] = build()
        return img

    def _threshold(self, img: Image.Image) -> Image.Image:
        return img.point(self._lut, "1")

    def _text(self, text: str, weight: str, size_px: float, *, gap: float = 6, readable: bool = False) -> Image.Image:
        """Centred, wrapped (balanced) lines as a 1-bit block exactly as tall as its ink; ``readable``
        lines never shrink below ``READ_PX`` on narrow paper."""
        font = _font(weight, self._size(size_px, readable=readable))
        return self._lines(wrap_text(text, font, self.inner, balance=True), font, gap=self._s(gap))

    def _lines(self, lines: list[str], font: ImageFont.FreeTypeFont, *, gap: int) -> Image.Image:
        boxes = [font.getbbox(line, anchor="ls") for line in lines]
        asc = max(-b[1] for b in boxes)
        desc = max(b[3] for b in boxes)
        line_h = asc + desc
        height = max(1, line_h * len(lines) + gap * (len(lines) - 1))
        img = Image.new("L", (self.width, height), WHITE)
        d = ImageDraw.Draw(img)
        for i, (line, box) in enumerate(zip(lines, boxes, strict=True)):
            w = box[2] - box[0]
            x = (self.width - w) // 2 - box[0]
            d.text((x, i * (line_h + gap) + asc), line, font=font, fill=BLACK, anchor="ls")
        return self._threshold(img)

    def _rule(self) -> Image.Image:
        img = Image.new("1", (self.width, self._s(3)), 255)
        ImageDraw.Draw(img).rectangle([self.layout.margin_px, 0, self.width - self.layout.margin_px - 1, img.height - 1], fill=0)
        return img

    def _build_header(self) -> Image.Image:
        info = self.site.site
        name = info.name_en if self.layout.lang == "en" and info.name_en else info.name_vi
        parts: list[Image.Image | int] = [self._s(4), self._text(name, "bold", 24)]
        if info.address:
            parts += [self._s(6), self._text(info.address, "regular", 19)]
        parts += [self._s(10), self._rule(), self._s(12), self._text(self.texts.title, "bold", 38)]
        return self._stack(parts)

    def _build_footer(self) -> Image.Image:
        return self._stack([self._text(self.texts.footer, "regular", READ_PX, readable=True), self._s(6)])

    def _number_font(self, number: str) -> ImageFont.FreeTypeFont:
        """The largest size (from 200 px at 576, in steps of 8 %) at which ``number`` fits the width."""
        size = self._size(200)
        font = _font("black", size)
        while size > 20 and font.getlength(number) > self.inner:
            size = int(size * 0.92)
            font = _font("black", size)
        return font

    def _number_origin(self, number: str, font: ImageFont.FreeTypeFont) -> tuple[int, int, int]:
        """Where ``number`` is drawn in its block (x, y of its text origin) and the block's height."""
        x0, y0, x1, y1 = font.getbbox(number)
        pad = self._s(14)
        return (self.width - (x1 - x0)) // 2 - x0, pad - y0, (y1 - y0) + 2 * pad

    def _number_block(self, number: str) -> Image.Image:
        font = self._number_font(number)
        x, y, height = self._number_origin(number, font)
        img = Image.new("L", (self.width, height), WHITE)
        ImageDraw.Draw(img).text((x, y), number, font=font, fill=BLACK)
        block = self._threshold(img)
        return _in_cells(block) if self.half_res_number else block

    def _glyph_set(self, font: ImageFont.FreeTypeFont) -> dict[str, tuple[Image.Image, int, int]]:
        """Each character a number can hold (digits, the services' prefixes) drawn alone at ``font``'s
        size, thresholded as the number is: character → (its picture, cut to its ink, and the left
        edge and top of that ink from the text origin)."""
        size = int(font.size)
        hit = self._glyph_sets.get(size)
        if hit is not None:
            return hit
        out: dict[str, tuple[Image.Image, int, int]] = {}
        margin = size
        for ch in sorted(set("0123456789" + "".join(s.prefix for s in self.site.services)) - {" "}):
            img = Image.new("L", (int(font.getlength(ch)) + 2 * margin, 3 * size), WHITE)
            ImageDraw.Draw(img).text((margin, margin), ch, font=font, fill=BLACK)
            glyph = self._threshold(img)
            box = ImageOps.invert(glyph.convert("L")).getbbox()
            if box is not None:
                out[ch] = (glyph.crop(box), box[0] - margin, box[1] - margin)
        self._glyph_sets[size] = out
        return out

    def _number_glyphs(self, number: str, block: Image.Image) -> tuple[GlyphSpot, ...]:
        """The number's glyphs where they lie in ``block``, if ``block`` is exactly those glyphs side by
        side (checked dot for dot, so a printer that places them prints the rendered number); else ()."""
        font = self._number_font(number)
        x, y, _ = self._number_origin(number, font)
        glyphs = self._glyph_set(font)
        spots: list[GlyphSpot] = []
        composed = Image.new("1", block.size, 255)
        pen = x
        for ch in number:
            if ch in glyphs:
                img, dx, dy = glyphs[ch]
                spot = GlyphSpot(key=f"glyph:{font.size}:{ch}", image=img, left=pen + dx, top=y + dy)
                if spot.left < 0 or spot.top < 0 or spot.left + img.width > block.width or spot.top + img.height > block.height:
                    return ()
                composed.paste(0, (spot.left, spot.top), ImageOps.invert(img.convert("L")))
                spots.append(spot)
            elif not ch.isspace():
                return ()
            pen += int(font.getlength(ch))
        if not spots or composed.tobytes() != block.tobytes():
            log.debug("number %s is not its glyphs side by side: sent as raster", number)
            return ()
        return tuple(spots)

    def _service_block(self, name: str) -> Image.Image:
        # the largest size at which the name fits in three lines (always fits: wrap never overflows)
        for px in (36, 32, 28, 24, 20):
            font = _font("bold", self._size(px))
            lines = wrap_text(name, font, self.inner, balance=True)
            if len(lines) <= 3:
                break
        return self._lines(lines, font, gap=self._s(6))

    def _group_name(self, group_id: str | None) -> str:
        for g in self.site.priority.groups:
            if g.id == group_id:
                return g.name_en if self.layout.lang == "en" and g.name_en else g.name_vi
        return ""

    def _priority_block(self, group_id: str | None) -> Image.Image:
        pad = self._s(8)
        parts: list[Image.Image | int] = [pad, self._text(self.texts.priority, "black", 34)]
        group = self._group_name(group_id)
        if group:
            parts += [self._s(4), self._text(group, "semibold", 22)]
        parts.append(pad)
        block = self._stack(parts)
        inv = ImageOps.invert(block.convert("L")).convert("1")
        # keep the margins white so the black box sits inside the paper's printable area
        m = self.layout.margin_px
        out = Image.new("1", block.size, 255)
        out.paste(inv.crop((m, 0, self.width - m, block.height)), (m, 0))
        return out

    def _qr_or_none(self, url: str) -> tuple[Image.Image, int] | None:
        """The QR block, or None when ``url`` does not fit a QR code (a site's guide_url template
        that fills a very long line): the ticket is printed without it, never voided for it."""
        try:
            return self._qr(url)
        except (qrcode.exceptions.DataOverflowError, ValueError) as exc:
            log.warning("QR code of %d characters cannot be made (%s): printed without it", len(url), exc)
            return None

    def _qr(self, url: str) -> tuple[Image.Image, int]:
        """The QR code in a full-width block, and its dots per module."""
        hit = self._qr_cache.get(url)
        if hit is not None:
            self._qr_cache.move_to_end(url)
            return hit
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
        qr.add_data(url)
        qr.make(fit=True)
        matrix = qr.get_matrix()
        n = len(matrix)
        box = max(2, self._s(220) // n)
        small = Image.frombytes("1", (n, n), _pack_rows(matrix))
        big = small.resize((n * box, n * box), Image.Resampling.NEAREST)
        img = Image.new("1", (self.width, big.height), 255)
        img.paste(big, ((self.width - big.width) // 2, 0))
        self._qr_cache[url] = (img, box)
        if len(self._qr_cache) > 32:
            self._qr_cache.popitem(last=False)
        return img, box

    def _stack(self, parts: list[Image.Image | int]) -> Image.Image:
        """Paste blocks top to bottom; an int is that many white pixels."""
        height = sum(p if isinstance(p, int) else p.height for p in parts)
        out = Image.new("1", (self.width, height), 255)
        y = 0
        for p in parts:
            if isinstance(p, int):
                y += p
            else:
                out.paste(p, (0, y))
                y += p.height
        return out


def _top_of(parts: list[Image.Image | int], block: Image.Image) -> int:
    """The dot line where ``block`` (one of ``parts``, by identity) begins in the stacked image."""
    top = 0
    for p in parts:
        if p is block:
            break
        top += p if isinstance(p, int) else p.height
    return top


def _moved(glyphs: tuple[GlyphSpot, ...], dy: int) -> tuple[GlyphSpot, ...]:
    """``glyphs`` moved ``dy`` dots down (from a block's top to the ticket's)."""
    return tuple(GlyphSpot(key=g.key, image=g.image, left=g.left, top=g.top + dy) for g in glyphs)


def _in_cells(block: Image.Image) -> Image.Image:
    """``block`` in 2 x 2-dot cells (from its top-left corner), a cell black where any of its dots is:
    the ink's outline moves out by at most one dot, so the digits keep their size and place."""
    w, h = block.size
    grey = block.convert("L")
    if w % 2 or h % 2:  # whole cells: pad with white, cut back after
        padded = Image.new("L", (w + w % 2, h + h % 2), WHITE)
        padded.paste(grey, (0, 0))
        grey = padded
    cells = grey.reduce(2).point(lambda v: WHITE if v == WHITE else BLACK, "1")  # box mean: white only if all 4 are
    return cells.resize((cells.width * 2, cells.height * 2), Image.Resampling.NEAREST).crop((0, 0, w, h))


def _pack_rows(matrix: list[list[bool]]) -> bytes:
    """QR modules → mode "1" raw bytes (1 = white), rows padded to whole bytes."""
    out = bytearray()
    for row in matrix:
        bits = 0
        nbits = 0
        for dark in row:
            bits = (bits << 1) | (0 if dark else 1)
            nbits += 1
            if nbits == 8:
                out.append(bits)
                bits = nbits = 0
        if nbits:
            out.append(bits << (8 - nbits))
    return bytes(out)


@lru_cache(maxsize=8)
def _renderer(site: Site, layout: TicketLayout) -> TicketRenderer:
    return TicketRenderer(site, layout)


def render_ticket(view: TicketView, *, site: Site, layout: TicketLayout = TicketLayout()) -> Image.Image:
    """Render ``view`` as a 1-bit ticket image, reusing a cached renderer for (site, layout)."""
    return _renderer(site, layout).render(view)
