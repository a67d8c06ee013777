"""Draw the board onto any pygame Surface (1920×1080, 1280×720, 1024×768, portrait…).

``BoardRenderer.render(surface, model, now, wall=...)`` draws one frame and returns a ``Frame``
that lists every text box it drew (the text, its slot and where it landed) and the dirty
rectangles; ``next_redraw_at(model, now)`` says when the picture next changes by itself
(clock minute, blink, highlight end, ticker step), so the shell sleeps until then.

Everything scales with the surface: sizes are fractions of its height and width. Text is
fitted into its slot: the font shrinks, and as a last resort the text is ellipsized, so
nothing overflows. Fonts and rendered text are cached; a frame where only the ticker
moved redraws the ticker band alone.

Two times: ``now`` drives the effects (blink, highlight, ticker) and ``wall`` is the time the
clock shows. They are the same except in the demo, where the simulated wall clock runs
faster than real time but a call must still blink at a human pace.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import pygame

from displayd.config import BoardConfig, BoardLabels, Theme, word
from displayd.model import BoardModel, Call, CounterView, Highlight
from xephang.clock import VN_TZ, format_vi_datetime
from xephang.fonts import font_path
from xephang.terminal import BIDI_CONTROLS
from xephang.waittext import format_wait

log = logging.getLogger(__name__)

ELLIPSIS = "…"

# what SDL_ttf cannot draw, or draws as a box: control characters (a NUL raised ValueError and ended
# the daemon), lone surrogates (UnicodeEncodeError) and the text-direction controls. Whitespace
# controls become a space, the rest nothing: a name the hub sends is shown, never fatal.
_NOT_DRAWN = {**dict.fromkeys([*range(0x20), *range(0x7F, 0xA0), *BIDI_CONTROLS, *range(0xD800, 0xE000)]),
              **dict.fromkeys(map(ord, "\t\n\r\v\f\x85"), " ")}


def drawable(text: str) -> str:
    """``text`` as the board draws it: no control character, lone surrogate or direction override."""
    return text.translate(_NOT_DRAWN)


@dataclass(frozen=True, slots=True)
class TextBox:
    """One piece of text as drawn: ``rect`` is where it landed, ``slot`` where it had to fit."""

    role: str  # e.g. "call.number", "tile.label", "header.clock"
    text: str  # as drawn (maybe ellipsized)
    source: str  # as asked
    rect: pygame.Rect
    slot: pygame.Rect
    size: int  # font size in px
    weight: str
    ink: bool  # rect is the glyphs' ink box (numbers), not the line box
    counter: int | None = None

    @property
    def fits(self) -> bool:
        return self.slot.contains(self.rect)

    @property
    def ellipsized(self) -> bool:
        return self.text != self.source


@dataclass(slots=True)
class Frame:
    """What one ``render`` call did."""

    boxes: list[TextBox] = field(default_factory=list)
    dirty: list[pygame.Rect] = field(default_factory=list)
    full: bool = True  # the whole surface was redrawn
    regions: dict[str, pygame.Rect] = field(default_factory=dict)  # layout rects by name
    render_ms: float = 0.0

    def find(self, role: str, counter: int | None = None) -> list[TextBox]:
        """Boxes of ``role`` (prefix match on "role."), optionally of one counter."""
        return [
            b
            for b in self.boxes
            if (b.role == role or b.role.startswith(role + ".")) and (counter is None or b.counter == counter)
        ]

    def text(self, role: str) -> list[str]:
        return [b.text for b in self.find(role)]


class TextCache:
    """Fonts by (weight, size) and rendered text surfaces, both LRU-bounded (surfaces by
    count and by bytes: a 300 px number is ~1 MB, and a Pi has little memory to spare)."""

    def __init__(self, *, max_surfaces: int = 400, max_bytes: int = 32 << 20, max_fonts: int = 48) -> None:
        self._fonts: OrderedDict[tuple[str, int], pygame.font.Font] = OrderedDict()
        self._surfaces: OrderedDict[tuple, pygame.Surface] = OrderedDict()
        self._fits: OrderedDict[tuple, tuple[int, str]] = OrderedDict()
        self._ink_ratio: dict[str, float] = {}
        self._widths: dict[tuple[str, str, int], int] = {}
        self.max_surfaces, self.max_bytes, self.max_fonts = max_surfaces, max_bytes, max_fonts
        self.bytes = 0
        self.hits = self.misses = 0

    def font(self, weight: str, size: int) -> pygame.font.Font:
        key = (weight, size)
        f = self._fonts.get(key)
        if f is None:
            f = pygame.font.Font(font_path(weight), size)
            self._fonts[key] = f
            if len(self._fonts) > self.max_fonts:
                self._fonts.popitem(last=False)
        else:
            self._fonts.move_to_end(key)
        return f

    def surface(self, text: str, weight: str, size: int, colour: tuple[int, ...], *, ink: bool = False) -> pygame.Surface:
        """Antialiased text with alpha; ``ink`` crops it to the glyphs' bounding box. Text of no width
        (zero-width characters only: SDL_ttf raised "Text has zero width") is an empty surface."""
        text = drawable(text)
        key = (text, weight, size, colour, ink)
        s = self._surfaces.get(key)
        if s is not None:
            self.hits += 1
            self._surfaces.move_to_end(key)
            return s
        self.misses += 1
        font = self.font(weight, size)
        try:
            s = font.render(text, True, colour)
        except pygame.error:  # nothing to draw: zero width
            s = pygame.Surface((0, font.get_height()), pygame.SRCALPHA)
        if ink:
            r = s.get_bounding_rect()
            s = s.subsurface(r).copy() if r.w and r.h else s
        self._surfaces[key] = s
        self.bytes += s.get_width() * s.get_height() * s.get_bytesize()
        while len(self._surfaces) > 1 and (len(self._surfaces) > self.max_surfaces or self.bytes > self.max_bytes):
            _, old = self._surfaces.popitem(last=False)
            self.bytes -= old.get_width() * old.get_height() * old.get_bytesize()
        return s

    def width(self, text: str, weight: str, size: int) -> int:
        """Advance width of ``text`` (memoized: layouts ask for the same widths every frame)."""
        text = drawable(text)
        key = (text, weight, size)
        w = self._widths.get(key)
        if w is None:
            if len(self._widths) > 4096:
                self._widths.clear()
            w = self._widths[key] = self.font(weight, size).size(text)[0]
        return w

    def ink_ratio(self, weight: str) -> float:
        """Height of digits' ink per px of font size (about 0.76 for Be Vietnam Pro)."""
        r = self._ink_ratio.get(weight)
        if r is None:
            s = self.font(weight, 200).render("0123456789", True, (255, 255, 255))
            r = self._ink_ratio[weight] = max(0.3, s.get_bounding_rect().h / 200)
        return r

    def fit(
        self, text: str, weight: str, w: int, h: int, *, ink: bool = False, max_size: int | None = None, min_size: int = 8
    ) -> tuple[int, str]:
        """The largest font size (and the text, ellipsized if it does not fit even at
        ``min_size``) that fits in w×h."""
        text = drawable(text)
        key = (text, weight, w, h, ink, max_size, min_size)
        hit = self._fits.get(key)
        if hit is not None:
            return hit
        res = self._fit(text, weight, max(1, w), max(1, h), ink, max_size, max(1, min_size))
        self._fits[key] = res
        if len(self._fits) > self.max_surfaces:
            self._fits.popitem(last=False)
        return res

    def _measure(self, text: str, weight: str, size: int, ink: bool) -> tuple[int, int]:
        f = self.font(weight, size)
        if not ink:
            return f.size(text)
        # the glyphs' ink box from their metrics: no rendering while searching for a size
        mets = f.metrics(text)
        if not mets or any(m is None for m in mets):
            return f.size(text)
        x, right = 0, 0
        left: int | None = None
        tops: list[int] = []
        bottoms: list[int] = []
        for minx, maxx, miny, maxy, adv in mets:
            if maxx > minx:
                left = x + minx if left is None else min(left, x + minx)
                right = max(right, x + maxx)
                tops.append(maxy)
                bottoms.append(miny)
            x += adv
        if left is None:
            return f.size(text)
        top, bottom = max(tops), min(bottoms)
        # kerning and antialiasing can add a pixel or two: keep a small margin
        return math.ceil((right - left) * 1.015) + 2, math.ceil((top - bottom) * 1.015) + 2

    def _fit(self, text: str, weight: str, w: int, h: int, ink: bool, max_size: int | None, min_size: int) -> tuple[int, str]:
        # first guess from the height, then scale to the width, then step to the largest that fits
        size = int(h / self.ink_ratio(weight)) if ink else int(h * 100 / self.font(weight, 100).get_height())
        if max_size:
            size = min(size, max_size)
        size = max(1, size)
        min_size = min(min_size, size)  # a slot too low for min_size wins
        top_size = size

        def fits(sz: int) -> bool:
            tw, th = self._measure(text, weight, sz, ink)
            return tw <= w and th <= h

        tw, _ = self._measure(text, weight, size, ink)
        if tw > w:  # width scales about linearly with the size: jump close, then step
            size = max(min_size, int(size * w / tw))
        while size > min_size and not fits(size):
            size = max(min_size, size - max(1, size // 50))
        while size < top_size and fits(size + 1):
            size += 1
        if fits(size):
            return size, text
        # even the smallest size is too wide: cut the text and mark the cut
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            cand = text[:mid].rstrip() + ELLIPSIS
            if self._measure(cand, weight, size, ink)[0] <= w:
                lo = mid
            else:
                hi = mid - 1
        return size, (text[:lo].rstrip() + ELLIPSIS) if lo else ""


def _two_lines(text: str) -> str:
    """Break ``text`` at the space nearest its middle (after a comma if there is one near)."""
    words = text.split(" ")
    if len(words) < 2:
        return text
    best, best_score = 1, float("inf")
    for i in range(1, len(words)):
        a, b = " ".join(words[:i]), " ".join(words[i:])
        score = abs(len(a) - len(b)) - (3 if a.endswith(",") else 0)
        if score < best_score:
            best, best_score = i, score
    return " ".join(words[:best]) + "\n" + " ".join(words[best:])


def _rect(x: float, y: float, w: float, h: float) -> pygame.Rect:
    return pygame.Rect(round(x), round(y), max(0, round(w)), max(0, round(h)))


def _split_v(r: pygame.Rect, fractions: Iterable[float]) -> list[pygame.Rect]:
    """Cut ``r`` into horizontal bands whose heights are the given fractions of r.h."""
    out, y = [], r.y
    for f in fractions:
        hh = r.h * f
        out.append(_rect(r.x, y, r.w, hh))
        y += hh
    return out


def _inset(r: pygame.Rect, dx: float, dy: float | None = None) -> pygame.Rect:
    dy = dx if dy is None else dy
    return _rect(r.x + dx, r.y + dy, r.w - 2 * dx, r.h - 2 * dy)


def grid_shape(n: int, w: int, h: int, *, aspect: float = 1.5) -> tuple[int, int]:
    """Columns and rows for ``n`` tiles in w×h, making the tiles' usable height largest."""
    best, best_score = (1, max(1, n)), -1.0
    for cols in range(1, max(1, n) + 1):
        rows = math.ceil(max(1, n) / cols)
        score = min(h / rows, (w / cols) / aspect)
        if score > best_score + 1e-9:
            best, best_score = (cols, rows), score
    return best


class BoardRenderer:
    """Draws the hall layout or the counter layout, with caches kept between frames."""

    def __init__(self, *, config: BoardConfig | None = None, labels: BoardLabels | None = None) -> None:
        self.config = config or BoardConfig()
        self.labels = labels or BoardLabels()
        self.theme: Theme = self.config.resolved_theme()
        self.text = TextCache()
        self._last_key: tuple | None = None
        self._last_target: int | None = None
        self._config_gen = 0
        self._frame: Frame | None = None
        self._wall = 0.0  # the time the clock shows in the frame being drawn

    # ------------------------------------------------------------------ public

    def configure(self, *, config: BoardConfig | None = None, labels: BoardLabels | None = None) -> None:
        """New options or labels: the next frame is redrawn in full."""
        if config is not None:
            self.config = config
            self.theme = config.resolved_theme()
        if labels is not None:
            self.labels = labels
        self._config_gen += 1

    def render(self, surface: pygame.Surface, model: BoardModel, now: float, *, wall: float | None = None, force: bool = False) -> Frame:
        """Draw the frame for ``now`` (the clock shows ``wall``, default ``now``). Only the
        ticker band is redrawn when nothing else changed since the last frame on this same
        surface (unless ``force``)."""
        p0 = time.perf_counter()
        self._wall = now if wall is None else wall
        key = self._frame_key(surface, model, now, self._wall)
        same_target = self._last_target == id(surface)
        if not force and same_target and key == self._last_key and self._frame is not None:
            frame = Frame(boxes=self._frame.boxes, full=False, regions=self._frame.regions)
            band = self._frame.regions.get("ticker")
            if band is not None and model.ticker:
                self._draw_ticker(surface, band, model.ticker, now, frame, record=False)
                frame.dirty.append(band.copy())
        else:
            frame = Frame()
            if self.config.layout == "counter" and self.config.counter is not None:
                self._draw_counter(surface, model, now, frame, self.config.counter)
            else:
                self._draw_hall(surface, model, now, frame)
            frame.dirty.append(surface.get_rect())
            self._frame = frame
            self._last_key = key
            self._last_target = id(surface)
        frame.render_ms = (time.perf_counter() - p0) * 1000
        return frame

    def needs_full_redraw(self, surface: pygame.Surface, model: BoardModel, now: float, *, wall: float | None = None) -> bool:
        """True when more than the ticker changed since the last frame on ``surface``."""
        key = self._frame_key(surface, model, now, now if wall is None else wall)
        return self._last_target != id(surface) or key != self._last_key

    def next_redraw_at(self, model: BoardModel, now: float, *, wall: float | None = None, wall_rate: float = 1.0) -> float:
        """When (on the ``now`` timeline) the picture next changes with no new input: the
        earliest of the next clock minute, the next blink flip, the end of a highlight and
        the next ticker step. ``wall_rate``: wall-clock seconds per ``now`` second."""
        wall = now if wall is None else wall
        # Vietnam is a whole number of hours from UTC: its minutes start with UTC's
        times = [now + ((math.floor(wall / 60) + 1) * 60 - wall) / max(wall_rate, 1e-9)]
        h = self._highlight(model, now)
        if h is not None:
            times.append(h.until)
            half = self.config.blink_period_s / 2
            if half > 0:
                k = math.floor((now - h.since) / half) + 1
                times.append(h.since + k * half)
        nxt = model.next_change_at(now)
        if nxt is not None:
            times.append(nxt)
        if model.ticker and (self._frame is None or "ticker" in self._frame.regions):
            times.append(now + 1 / self.config.ticker_fps)
        return min(t for t in times if t > now) if any(t > now for t in times) else now + 1

    def _highlight(self, model: BoardModel, now: float) -> Highlight | None:
        """The highlight this screen shows: any call in the hall, its own on a counter screen."""
        if self.config.layout == "counter" and self.config.counter is not None:
            return model.counter_highlight(self.config.counter, now)
        return model.highlight(now)

    def blink_on(self, model: BoardModel, now: float) -> bool | None:
        """None when nothing is highlighted; else whether the blink is in its bright half."""
        h = self._highlight(model, now)
        if h is None:
            return None
        half = self.config.blink_period_s / 2
        if half <= 0:
            return True
        return math.floor((now - h.since) / half) % 2 == 0

    # ------------------------------------------------------------------ keys

    def _frame_key(self, surface: pygame.Surface, model: BoardModel, now: float, wall: float) -> tuple:
        return (
            surface.get_size(),
            self._config_gen,
            model.version,
            self._clock_text(wall),
            self.blink_on(model, now),
        )

    def _clock_text(self, wall: float) -> str:
        return format_vi_datetime(datetime.fromtimestamp(wall, VN_TZ), lang=self.config.lang)

    def _stacked(self, w: int, h: int) -> bool:
        """Call panel above the tiles: portrait screens, and 4:3 or 5:4 ones where a side
        panel would be too narrow for a number 1/6 of the screen high."""
        o = self.config.orientation
        if o != "auto":
            return o == "portrait"
        return w / h < 1.5

    # ------------------------------------------------------------------ drawing helpers

    def _draw_text(
        self,
        surface: pygame.Surface,
        frame: Frame,
        role: str,
        text: str,
        slot: pygame.Rect,
        colour: tuple[int, ...],
        *,
        weight: str = "bold",
        align: str = "center",
        ink: bool = False,
        max_size: int | None = None,
        min_size: int | None = None,
        counter: int | None = None,
    ) -> TextBox | None:
        """Fit ``text`` into ``slot`` and draw it. Below ``min_size`` (default: 55 % of what
        the slot's height allows) the text is ellipsized rather than shrunk further."""
        if not text or slot.w <= 0 or slot.h <= 0:
            return None
        if min_size is None:
            top, _ = self.text.fit("Ắy" if not ink else "0", weight, 100_000, slot.h, ink=ink)
            min_size = max(8, int(top * 0.55))
        size, shown = self.text.fit(text, weight, slot.w, slot.h, ink=ink, max_size=max_size, min_size=min_size)
        if not shown:
            return None
        s = self.text.surface(shown, weight, size, colour, ink=ink)
        r = s.get_rect()
        r.centery = slot.centery
        if align == "left":
            r.left = slot.left
        elif align == "right":
            r.right = slot.right
        else:
            r.centerx = slot.centerx
        surface.blit(s, r)
        box = TextBox(role=role, text=shown, source=text, rect=r, slot=slot.copy(), size=size, weight=weight, ink=ink, counter=counter)
        frame.boxes.append(box)
        return box

    def _common_size(self, texts: Iterable[str], weight: str, w: int, h: int, *, ink: bool = False, floor: float = 0.0) -> int:
        """One size for a group of texts (all tiles' numbers, all service names) so the
        board looks even: the smallest size any of them needs, but not below ``floor`` ×
        the size the slot height allows (longer texts are then ellipsized)."""
        top, _ = self.text.fit("Ắy" if not ink else "0", weight, 100_000, h, ink=ink)
        sizes = [self.text.fit(t, weight, w, h, ink=ink)[0] for t in texts if t]
        size = min(sizes) if sizes else top
        return max(size, int(top * floor)) if floor else size

    def _banner(self, model: BoardModel) -> str | None:
        lang = self.config.lang
        if model.stale:
            return word("offline_hub" if model.offline_reason == "hub" else "offline_broker", lang)
        if not model.synced:
            return word("connecting", lang)
        return None

    def _draw_banner(self, surface: pygame.Surface, r: pygame.Rect, text: str, frame: Frame) -> None:
        t = self.theme
        surface.fill(t.banner_bg, r)
        self._draw_text(surface, frame, "banner", text, _inset(r, r.h * 0.3, r.h * 0.12), t.banner_fg, weight="bold", min_size=8)

    def _draw_ticker(self, surface: pygame.Surface, band: pygame.Rect, text: str, now: float, frame: Frame, *, record: bool = True) -> None:
        t = self.theme
        surface.fill(t.ticker_bg, band)
        inner = _inset(band, 0, band.h * 0.12)
        size, _ = self.text.fit("Ắy", "medium", 10_000, inner.h)
        s = self.text.surface(text, "medium", size, t.ticker_fg)
        speed = self.config.ticker_speed * surface.get_width()
        travel = s.get_width() + band.w
        x = band.right - (now * speed) % travel
        r = s.get_rect(left=round(x), centery=inner.centery)
        clip = surface.get_clip()
        surface.set_clip(band)
        surface.blit(s, r)
        surface.set_clip(clip)
        if record:
            frame.boxes.append(TextBox(role="ticker", text=text, source=text, rect=r.clip(band), slot=band.copy(), size=size, weight="medium", ink=False))

    def _draw_header(self, surface: pygame.Surface, r: pygame.Rect, now: float, model: BoardModel, frame: Frame) -> None:
        t, lang = self.theme, self.config.lang
        surface.fill(t.header_bg, r)
        pad = r.h * 0.18
        inner = _inset(r, pad * 1.5, pad)
        clock = self._clock_text(self._wall)
        natural, _ = self.text.fit(clock, "semibold", 100_000, inner.h)
        clock_w = min(self.text.width(clock, "semibold", natural) + 2, inner.w * 0.5)
        name = self.config.centre_name or self.labels.centre(lang)
        name_slot = _rect(inner.x, inner.y, inner.w - clock_w - pad * 2, inner.h)
        clock_slot = _rect(inner.right - clock_w, inner.y, clock_w, inner.h)
        self._draw_text(surface, frame, "header.name", name, name_slot, t.header_fg, weight="bold", align="left")
        self._draw_text(surface, frame, "header.clock", clock, clock_slot, t.header_fg, weight="semibold", align="right", min_size=8)

    # ------------------------------------------------------------------ hall layout

    def hall_regions(self, w: int, h: int, model: BoardModel) -> dict[str, pygame.Rect]:
        """The hall layout's rectangles for a w×h screen (also used by the tests)."""
        cfg = self.config
        portrait = self._stacked(w, h)
        pad = round(h * 0.012)
        regions: dict[str, pygame.Rect] = {}
        y = 0.0
        head_h = h * (0.065 if h > w else 0.09)
        regions["header"] = _rect(0, 0, w, head_h)
        y += head_h
        if self._banner(model):
            bh = h * (0.05 if portrait else 0.075)
            regions["banner"] = _rect(0, y, w, bh)
            y += bh
        bottom = float(h)
        if model.ticker:
            th = h * (0.045 if portrait else 0.065)
            regions["ticker"] = _rect(0, h - th, w, th)
            bottom -= th
        if cfg.show_waiting:
            # with the hub's waits the bar holds two facts a service: a little taller
            wh = h * (0.07 if h > w else 0.075) * (1.45 if model.wait_ranges else 1.0)
            regions["waiting"] = _rect(0, bottom - wh, w, wh)
            bottom -= wh
        body = _rect(pad, y + pad, w - 2 * pad, bottom - y - 2 * pad)
        regions["body"] = body
        if portrait:
            recent_h = body.h * (0.16 if h > w else 0.2) if cfg.show_last_calls else 0
            call_h = body.h * (0.42 if h > w else 0.45)
            regions["call"] = _rect(body.x, body.y, body.w, call_h - pad)
            regions["tiles"] = _rect(body.x, body.y + call_h, body.w, body.h - call_h - recent_h)
            if recent_h:
                regions["recent"] = _rect(body.x, body.bottom - recent_h + pad, body.w, recent_h - pad)
        else:
            call_w = body.w * 0.41
            panel = _rect(body.x, body.y, call_w - pad, body.h)
            if cfg.show_last_calls:
                regions["call"] = _rect(panel.x, panel.y, panel.w, panel.h * 0.68 - pad / 2)
                regions["recent"] = _rect(panel.x, panel.y + panel.h * 0.68 + pad / 2, panel.w, panel.h * 0.32 - pad / 2)
            else:
                regions["call"] = panel
            regions["tiles"] = _rect(body.x + call_w, body.y, body.w - call_w, body.h)
        return regions

    def _draw_hall(self, surface: pygame.Surface, model: BoardModel, now: float, frame: Frame) -> None:
        t = self.theme
        w, h = surface.get_size()
        surface.fill(t.bg)
        regions = self.hall_regions(w, h, model)
        frame.regions = regions
        self._draw_header(surface, regions["header"], now, model, frame)
        banner = self._banner(model)
        if banner:
            self._draw_banner(surface, regions["banner"], banner, frame)
        self._draw_call_panel(surface, regions["call"], model, now, frame, screen_h=h)
        if "recent" in regions:
            self._draw_recent(surface, regions["recent"], model, frame)
        self._draw_tiles(surface, regions["tiles"], model, now, frame, pad=round(h * 0.012))
        if "waiting" in regions:
            self._draw_waiting(surface, regions["waiting"], model, frame)
        if "ticker" in regions:
            self._draw_ticker(surface, regions["ticker"], model.ticker, now, frame)

    def _draw_call_panel(self, surface: pygame.Surface, r: pygame.Rect, model: BoardModel, now: float, frame: Frame, *, screen_h: int) -> None:
        t, lang = self.theme, self.config.lang
        blink = self.blink_on(model, now)
        bright = blink is True
        bg = t.highlight_bg if bright else t.panel_bg
        fg = t.highlight_fg if bright else t.fg
        num_fg = t.highlight_fg if bright else (t.stale if model.stale else t.accent)
        surface.fill(bg, r)
        pygame.draw.rect(surface, t.accent if blink is not None else t.border, r, max(2, round(screen_h * 0.004)))
        inner = _inset(r, r.w * 0.04, r.h * 0.03)
        # the counter is half of the message: its line is a third of the panel, its number nearly as tall
        title, number, counter, service = _split_v(inner, (0.08, 0.47, 0.34, 0.11))
        call = model.newest
        self._draw_text(surface, frame, "call.title", word("now_calling", lang), _inset(title, 0, title.h * 0.1), fg, weight="semibold", min_size=8)
        if call is None:
            self._draw_text(surface, frame, "call.empty", word("no_call", lang), _inset(number, 0, number.h * 0.3), t.muted if not bright else fg, weight="medium", min_size=8)
            return
        self._draw_text(surface, frame, "call.number", call.number, _inset(number, 0, number.h * 0.04), num_fg, weight="black", ink=True, counter=call.counter)
        label = self.labels.counter(call.counter, lang, self._hub_label(model, call.counter))
        self._draw_call_counter(surface, frame, counter, label, call.counter, fg)
        svc = self.labels.service(call.service, lang)
        self._draw_text(surface, frame, "call.service", svc, service, fg if bright else t.muted, weight="medium", counter=call.counter)

    def _draw_call_counter(self, surface: pygame.Surface, frame: Frame, band: pygame.Rect, label: str, counter: int,
                           colour: tuple[int, ...]) -> None:
        """"đến Quầy 3": the words on the baseline of the counter's number, drawn in the number's
        weight and nearly the band's height, so the counter reads from as far as the ticket's
        number does. A label that does not end in the counter's number is one fitted line."""
        lang = self.config.lang
        words = f"{word('to_counter', lang)} {label}"
        head, _, digits = label.rpartition(" ")
        if digits != str(counter) or not head:
            self._draw_text(surface, frame, "call.counter", words, _inset(band, 0, band.h * 0.05), colour, weight="bold", counter=counter, min_size=8)
            return
        prefix = f"{word('to_counter', lang)} {head}"
        gap = band.h * 0.1
        d_h = band.h * 0.9
        d_size, _ = self.text.fit(digits, "black", int(band.w * 0.35), int(d_h), ink=True)
        d_ink = self.text.surface(digits, "black", d_size, colour, ink=True)
        # the words' capitals half as tall as the counter's number: the number carries the distance
        cap = self.text.ink_ratio("bold")
        p_size, _ = self.text.fit(prefix, "bold", int(band.w - d_ink.get_width() - gap), int(band.h),
                                  max_size=max(8, int(0.5 * d_ink.get_height() / cap)), min_size=8)
        font = self.text.font("bold", p_size)
        p_w = self.text.width(prefix, "bold", p_size)
        x0 = band.centerx - (p_w + gap + d_ink.get_width()) / 2
        baseline = band.bottom + font.get_descent()  # the descender of "y" stays inside the band
        d_slot = _rect(x0 + p_w + gap, baseline - d_ink.get_height(), d_ink.get_width(), d_ink.get_height())
        p_slot = _rect(x0, baseline - font.get_ascent(), p_w + 1, font.get_ascent() - font.get_descent())
        self._draw_text(surface, frame, "call.counter", prefix, p_slot, colour, weight="bold", max_size=p_size, min_size=p_size, counter=counter)
        self._draw_text(surface, frame, "call.counter_number", digits, d_slot, colour, weight="black", ink=True, max_size=d_size, min_size=8, counter=counter)

    def _hub_label(self, model: BoardModel, counter: int) -> str:
        c = model.counter(counter)
        return c.label if c is not None else ""

    def _draw_recent(self, surface: pygame.Surface, r: pygame.Rect, model: BoardModel, frame: Frame) -> None:
        t, lang = self.theme, self.config.lang
        surface.fill(t.panel_bg, r)
        calls: list[Call] = list(model.last_calls[1 : self.config.last_calls])
        rows = max(1, self.config.last_calls - 1)
        inner = _inset(r, r.w * 0.04, r.h * 0.04)
        title_h = inner.h * (0.26 if rows > 1 else 0.4)
        title = _rect(inner.x, inner.y, inner.w, title_h)
        self._draw_text(surface, frame, "recent.title", word("recent", lang), title, t.muted, weight="semibold", align="left", min_size=8)
        row_h = (inner.h - title_h) / rows
        num_col = inner.w * 0.42
        for i, call in enumerate(calls):
            row = _rect(inner.x, inner.y + title_h + i * row_h, inner.w, row_h)
            cells = _inset(row, 0, row_h * 0.1)
            colour = t.stale if model.stale else t.fg
            self._draw_text(surface, frame, "recent.number", call.number, _rect(cells.x, cells.y, num_col - inner.w * 0.03, cells.h), colour, weight="bold", align="left", counter=call.counter, min_size=8)
            ctr = self.labels.counter(call.counter, lang, self._hub_label(model, call.counter))
            self._draw_text(surface, frame, "recent.counter", ctr, _rect(cells.x + num_col, cells.y, cells.w - num_col, cells.h), t.fg, weight="semibold", align="left", counter=call.counter, min_size=8)

    def _draw_tiles(self, surface: pygame.Surface, r: pygame.Rect, model: BoardModel, now: float, frame: Frame, *, pad: int) -> None:
        counters = self._counters_to_show(model)
        if not counters:
            return
        cols, rows = grid_shape(len(counters), r.w, r.h)
        tw, th = (r.w + pad) / cols, (r.h + pad) / rows
        h = model.highlight(now)
        cells = [_rect(r.x + (i % cols) * tw, r.y + (i // cols) * th, tw - pad, th - pad) for i in range(len(counters))]
        # every tile has the same geometry: size the group once, from the first tile
        slots = self._tile_slots(cells[0], has_state=False)
        svc_slot = slots["service"]
        names = {c.number: self._tile_service_name(c.service, svc_slot) for c in counters if c.ticket}
        sizes = {
            "number": self._common_size([c.ticket for c in counters if c.ticket] or ["0000"], "black", slots["number"].w, slots["number"].h, ink=True),
            "service": self._common_size([n for n in names.values() if "\n" not in n], "medium", svc_slot.w, svc_slot.h, floor=0.75),
        }
        for cell, c in zip(cells, counters, strict=True):
            lit = h is not None and h.call.counter == c.number
            self._draw_tile(surface, cell, c, model, frame, lit=lit, sizes=sizes, service_name=names.get(c.number, ""))

    def _tile_service_name(self, service: str | None, slot: pygame.Rect) -> str:
        """The service's name as a tile shows it whole: the name if it fits at 3/4 of the slot's
        size, else the site's short name, else the name on two lines ("\n")."""
        lang = self.config.lang
        name = self.labels.service(service, lang)
        top, _ = self.text.fit("Ắy", "medium", 100_000, slot.h)
        floor = max(8, int(top * 0.75))
        if self.text.fit(name, "medium", slot.w, slot.h, min_size=floor)[1] == name:
            return name
        short = self.labels.service_short(service, lang)
        if short != name and self.text.fit(short, "medium", slot.w, slot.h, min_size=floor)[1] == short:
            return short
        return _two_lines(name)

    def _counters_to_show(self, model: BoardModel) -> list[CounterView]:
        """Counters the hub reports, plus the site's counters it has not mentioned yet."""
        seen = {c.number: c for c in model.counters}
        for n in self.labels.counters:
            seen.setdefault(n, CounterView(number=n, state="closed" if model.synced else "open"))
        return [seen[n] for n in sorted(seen)]

    @staticmethod
    def _tile_slots(cell: pygame.Rect, *, has_state: bool) -> dict[str, pygame.Rect]:
        edge = max(2, round(cell.h * 0.03))  # room for the highlight edge, lit or not: no jumping
        inner = _inset(cell, max(cell.w * 0.05, edge * 2), max(cell.h * 0.04, edge * 1.5))
        top, number, service = _split_v(inner, (0.24, 0.56, 0.20))
        label_w = top.w * (0.55 if has_state else 1.0)
        return {
            "label": _rect(top.x, top.y, label_w, top.h),
            "tag": _rect(top.x + label_w, top.y + top.h * 0.12, top.w - label_w, top.h * 0.76),
            "number": _inset(number, 0, number.h * 0.06),
            "service": service,
        }

    def _draw_tile(
        self, surface: pygame.Surface, cell: pygame.Rect, c: CounterView, model: BoardModel, frame: Frame, *, lit: bool,
        sizes: dict[str, int], service_name: str = "",
    ) -> None:
        t, lang = self.theme, self.config.lang
        surface.fill(t.panel_bg, cell)
        edge = max(2, round(cell.h * (0.03 if lit else 0.008)))
        pygame.draw.rect(surface, t.accent if lit else t.border, cell, edge)
        label = self.labels.counter(c.number, lang, c.label)
        state_txt = {"paused": word("paused", lang), "closed": word("closed", lang)}.get(c.state)
        slots = self._tile_slots(cell, has_state=bool(state_txt))
        self._draw_text(surface, frame, "tile.label", label, slots["label"], t.fg, weight="bold", align="left", counter=c.number, min_size=8)
        if state_txt:
            colour = t.paused if c.state == "paused" else t.closed
            tag = slots["tag"]
            pygame.draw.rect(surface, colour, tag, max(2, round(tag.h * 0.08)), border_radius=round(tag.h * 0.2))
            self._draw_text(surface, frame, "tile.state", state_txt, _inset(tag, tag.h * 0.25, tag.h * 0.12), colour, weight="bold", counter=c.number, min_size=8)
        if c.state == "closed":
            num_colour = t.closed
        elif model.stale:
            num_colour = t.stale
        elif c.state == "paused":
            num_colour = t.paused
        else:
            num_colour = t.accent
        n = sizes["number"]
        if c.ticket:
            self._draw_text(surface, frame, "tile.number", c.ticket, slots["number"], num_colour, weight="black", ink=True, max_size=n, min_size=n, counter=c.number)
        else:  # nobody at this counter: a dash, not a number-sized bar
            self._draw_text(surface, frame, "tile.number", word("free", lang), slots["number"], t.muted, weight="bold", max_size=n // 2, counter=c.number)
        svc = service_name if c.ticket else ""
        n = sizes["service"]
        if "\n" in svc:  # two lines, one size for both, each whole
            top, bottom = _split_v(slots["service"], (0.5, 0.5))
            first, second = svc.split("\n", 1)
            m = self._common_size([first, second], "medium", top.w, top.h)
            for role_line, slot in ((first, top), (second, bottom)):
                self._draw_text(surface, frame, "tile.service", role_line, slot, t.muted, weight="medium", max_size=m, min_size=8, counter=c.number)
        else:
            self._draw_text(surface, frame, "tile.service", svc, slots["service"], t.muted, weight="medium", max_size=n, min_size=8, counter=c.number)

    def _waiting_cells(self, inner: pygame.Rect, names: list[str], rows: int) -> list[tuple[pygame.Rect, pygame.Rect, pygame.Rect]]:
        """(cell, name slot, count slot) per service. Each name slot is in proportion to the
        name's width, so every name fits at one shared size."""
        per_row = math.ceil(len(names) / rows)
        row_h = inner.h / rows
        out = []
        for r in range(rows):
            count_w, gap = row_h * 1.5, row_h * 0.3
            chunk = names[r * per_row : (r + 1) * per_row]
            if not chunk:
                continue
            widths = [max(1, self.text.width(n, "medium", 40)) for n in chunk]
            # counts and gaps take at most half the row, however many services there are
            shrink = min(1.0, inner.w * 0.5 / (len(chunk) * (count_w + 2 * gap)))
            count_w, gap = count_w * shrink, gap * shrink
            k = (inner.w - len(chunk) * (count_w + 2 * gap)) / sum(widths)
            x = inner.x
            for wd in widths:
                cell = _rect(x, inner.y + r * row_h, wd * k + count_w + 2 * gap, row_h)
                out.append((cell, _rect(cell.x + gap, cell.y, wd * k, cell.h), _rect(cell.right - count_w, cell.y, count_w, cell.h)))
                x += wd * k + count_w + 2 * gap
        return out

    def _draw_waiting(self, surface: pygame.Surface, r: pygame.Rect, model: BoardModel, frame: Frame) -> None:
        t, lang = self.theme, self.config.lang
        surface.fill(t.panel_bg, r)
        waiting = model.waiting
        order = self.labels.service_order(waiting)
        inner = _inset(r, r.h * 0.3, r.h * 0.12)
        title = word("waiting", lang)
        natural, _ = self.text.fit(title, "semibold", 100_000, inner.h)
        title_w = min(self.text.width(title, "semibold", natural) + inner.h * 0.5, inner.w * 0.2)
        self._draw_text(surface, frame, "waiting.title", title, _rect(inner.x, inner.y, title_w, inner.h), t.muted, weight="semibold", align="left", min_size=8)
        if not order:
            return
        area = _rect(inner.x + title_w, inner.y, inner.w - title_w, inner.h)
        if any(sid in model.wait_ranges for sid in order):
            self._draw_waiting_with_waits(surface, area, model, order, frame)
            return
        names = [self.labels.service(sid, lang) for sid in order]
        # one to three rows: the layout that shows the most names whole, then the largest
        best: tuple[tuple[int, int], int, list] = ((-1, -1), 0, [])
        for rows in range(1, min(3, len(names)) + 1):
            cand = self._waiting_cells(area, names, rows)
            top, _ = self.text.fit("Ắy", "medium", 100_000, cand[0][1].h)
            floor = max(8, int(top * 0.6))  # smaller than this is unreadable: ellipsize instead
            fitted = [self.text.fit(name, "medium", slot.w, slot.h)[0] for name, (_, slot, _) in zip(names, cand, strict=True)]
            size = max(min(fitted), floor)
            whole = sum(f >= size for f in fitted)
            if (whole, size) > best[0]:
                best = ((whole, size), size, cand)
        _, n, cells = best
        for sid, name, (_, slot, count_slot) in zip(order, names, cells, strict=True):
            count = str(waiting.get(sid, 0))
            self._draw_text(surface, frame, "waiting.service", name, slot, t.fg, weight="medium", align="right", max_size=n, min_size=n)
            self._draw_text(surface, frame, "waiting.count", count, count_slot, t.stale if model.stale else t.accent, weight="black", align="left", max_size=int(n * 1.25))

    def _draw_waiting_with_waits(self, surface: pygame.Surface, area: pygame.Rect, model: BoardModel, order: list[str], frame: Frame) -> None:
        """One cell a service: its name and count on top, the hub's wait for a ticket taken now
        below ("20–35 phút"). A name that does not fit whole at one shared size gives way to
        the site's short name."""
        t, lang = self.theme, self.config.lang
        per_row = len(order) if len(order) <= 5 else math.ceil(len(order) / 2)
        rows = math.ceil(len(order) / per_row)
        cell_w, row_h = area.w / per_row, area.h / rows
        gap = cell_w * 0.04
        cells = []
        for i in range(len(order)):
            cell = _rect(area.x + (i % per_row) * cell_w + gap, area.y + (i // per_row) * row_h, cell_w - 2 * gap, row_h)
            top, bottom = _split_v(cell, (0.56, 0.44))
            count_w = top.h * 1.3
            cells.append((_rect(top.x, top.y, top.w - count_w, top.h), _rect(top.right - count_w, top.y, count_w, top.h), bottom))
        name_slot = cells[0][0]
        top_size, _ = self.text.fit("Ắy", "medium", 100_000, name_slot.h)
        floor = max(8, int(top_size * 0.8))
        names = []
        for sid in order:
            full = self.labels.service(sid, lang)
            fits = self.text.fit(full, "medium", name_slot.w, name_slot.h, min_size=floor)[1] == full
            names.append(full if fits else self.labels.service_short(sid, lang))
        n = self._common_size(names, "medium", name_slot.w, name_slot.h, floor=0.6)
        waits = {sid: format_wait(*model.wait_ranges[sid], lang, short=True) for sid in order if sid in model.wait_ranges}
        wn = self._common_size(list(waits.values()), "semibold", cells[0][2].w, cells[0][2].h)
        for sid, name, (slot, count_slot, wait_slot) in zip(order, names, cells, strict=True):
            self._draw_text(surface, frame, "waiting.service", name, slot, t.fg, weight="medium", align="right", max_size=n, min_size=8)
            count = str(model.waiting.get(sid, 0))
            self._draw_text(surface, frame, "waiting.count", count, _inset(count_slot, count_slot.h * 0.12, 0), t.stale if model.stale else t.accent,
                            weight="black", align="left", max_size=int(n * 1.25))
            if sid in waits:
                self._draw_text(surface, frame, "waiting.wait", waits[sid], wait_slot, t.muted, weight="semibold", align="right",
                                max_size=min(n, wn), min_size=8)

    # ------------------------------------------------------------------ counter layout

    def counter_regions(self, w: int, h: int, model: BoardModel) -> dict[str, pygame.Rect]:
        """The counter layout's rectangles."""
        regions: dict[str, pygame.Rect] = {}
        y = 0.0
        banner = self._banner(model)
        if banner:
            regions["banner"] = _rect(0, 0, w, h * 0.09)
            y = h * 0.09
        pad = h * 0.03
        body = _rect(pad, y + pad, w - 2 * pad, h - y - 2 * pad)
        label, number, service, foot = _split_v(body, (0.2, 0.52, 0.14, 0.14))
        regions.update(label=label, number=number, service=service, foot=foot)
        return regions

    def _draw_counter(self, surface: pygame.Surface, model: BoardModel, now: float, frame: Frame, counter: int) -> None:
        t, lang = self.theme, self.config.lang
        w, h = surface.get_size()
        c = model.counter(counter) or CounterView(number=counter, state="open")
        bright = self.blink_on(model, now) is True
        surface.fill(t.highlight_bg if bright else t.bg)
        regions = self.counter_regions(w, h, model)
        frame.regions = regions
        banner = self._banner(model)
        if banner:
            self._draw_banner(surface, regions["banner"], banner, frame)
        fg = t.highlight_fg if bright else t.fg
        label = self.labels.counter(counter, lang, c.label)
        self._draw_text(surface, frame, "counter.label", label, regions["label"], fg, weight="bold", counter=counter, min_size=8)
        slot = _inset(regions["number"], 0, regions["number"].h * 0.04)
        if c.state == "closed":
            self._draw_text(surface, frame, "counter.number", word("closed", lang), _inset(slot, 0, slot.h * 0.2), t.closed, weight="black", counter=counter)
        elif not c.ticket:  # open, nobody called yet: a dash, not a screen-high bar
            self._draw_text(surface, frame, "counter.number", word("free", lang), _inset(slot, 0, slot.h * 0.25), t.muted, weight="bold", counter=counter)
        else:
            colour = t.highlight_fg if bright else (t.stale if model.stale else (t.paused if c.state == "paused" else t.accent))
            self._draw_text(surface, frame, "counter.number", c.ticket, slot, colour, weight="black", ink=True, counter=counter)
        if c.ticket and c.state != "closed":
            self._draw_text(surface, frame, "counter.service", self.labels.service(c.service, lang), regions["service"], t.highlight_fg if bright else t.muted, weight="medium", counter=counter)
        foot = word("paused", lang) if c.state == "paused" else self._clock_text(self._wall)
        self._draw_text(surface, frame, "counter.foot", foot, _inset(regions["foot"], 0, regions["foot"].h * 0.15), t.paused if c.state == "paused" else (fg if bright else t.muted), weight="semibold", counter=counter, min_size=8)
