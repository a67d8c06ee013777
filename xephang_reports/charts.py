"""Report charts as PNG, drawn with Pillow and Be Vietnam Pro (no plotting library on a Pi).

Three charts from a report dict (``xephang_reports.build``): arrivals per hour of the day, the wait
distribution per service, and the load of each counter (serving / paused / idle). Each
``chart_*`` function returns a Pillow image; ``write_charts`` saves all three into a folder
and ``chart_pngs`` gives their bytes (for the HTML report and the spreadsheet).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from xephang.fonts import font_path

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 1400, 700  # drawn at twice the printed size: sharp on paper and on screens
BG, INK, GRID, MUTED = (255, 255, 255), (33, 37, 41), (222, 226, 230), (108, 117, 125)
BLUE, ORANGE, GREY = (31, 119, 180), (240, 140, 40), (190, 196, 202)
# green → red for wait bins: short waits look good, long waits look bad
BIN_COLOURS = ((26, 152, 80), (102, 189, 99), (166, 217, 106), (217, 239, 139), (254, 224, 139),
               (253, 174, 97), (244, 109, 67), (215, 48, 39))

TEXT = {
    "arrivals_title": ("Lượt lấy số theo giờ trong ngày", "Tickets issued per hour of day"),
    "arrivals_sub": ("trung bình mỗi ngày làm việc, {days} ngày", "mean per working day, {days} days"),
    "waits_title": ("Phân bố thời gian chờ theo lĩnh vực", "Wait distribution per service"),
    "waits_sub": ("từ lúc lấy số đến lúc được gọi; vạch đứt = mục tiêu", "from issue to first call; dashed mark = target"),
    "load_title": ("Tải của các quầy", "Counter load"),
    "load_sub": ("số giờ phục vụ, tạm dừng và chờ khách trong giờ hoạt động",
                 "hours serving, paused and idle while open"),
    "busy": ("Phục vụ", "Serving"),
    "paused": ("Tạm dừng", "Paused"),
    "idle": ("Chờ khách", "Idle"),
    "target": ("mục tiêu", "target"),
    "minutes": ("phút", "min"),
    "hours_unit": ("giờ", "h"),
    "no_data": ("Không có dữ liệu trong kỳ này", "No data in this period"),
}


def _t(key: str, lang: str, **kw: Any) -> str:
    vi, en = TEXT[key]
    return (en if lang == "en" else vi).format(**kw)


@cache
def _font(size: int, weight: str = "regular") -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(weight)), size)


def _num(x: float, lang: str, digits: int = 1) -> str:
    s = f"{x:,.{digits}f}"
    if lang == "vi":  # 1.234,5 in Vietnamese
        s = s.replace(",", " ").replace(".", ",").replace(" ", ".")
    return s


def _canvas(title: str, subtitle: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (WIDTH, HEIGHT), BG)
    d = ImageDraw.Draw(img)
    d.text((40, 28), title, font=_font(36, "bold"), fill=INK)
    d.text((40, 76), subtitle, font=_font(24), fill=MUTED)
    return img, d


def _no_data(d: ImageDraw.ImageDraw, lang: str) -> None:
    d.text((WIDTH // 2, HEIGHT // 2), _t("no_data", lang), font=_font(30), fill=MUTED, anchor="mm")


def _nice_step(top: float, ticks: int = 5) -> float:
    raw = max(top, 1e-9) / ticks
    mag = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag  # pragma: no cover


def _fit(d: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float, lines: int = 2) -> list[str]:
    """``text`` wrapped on spaces into at most ``lines`` lines of ``width`` px (the last one cut with …)."""
    out: list[str] = []
    words = text.split(" ")
    while words and len(out) < lines:
        line = words.pop(0)
        while words and d.textlength(line + " " + words[0], font=font) <= width:
            line += " " + words.pop(0)
        out.append(line)
    if words:
        last = out[-1] + " " + " ".join(words)
        while last and d.textlength(last + "…", font=font) > width:
            last = last[:-1]
        out[-1] = last.rstrip() + "…"
    return out


def _legend(d: ImageDraw.ImageDraw, items: list[tuple[str, tuple[int, int, int]]], x: int, y: int) -> None:
    f = _font(22)
    for label, colour in items:
        d.rectangle((x, y + 4, x + 22, y + 26), fill=colour)
        d.text((x + 30, y), label, font=f, fill=INK)
        x += 30 + int(d.textlength(label, font=f)) + 28


def chart_arrivals(report: dict[str, Any]) -> Image.Image:
    """Vertical bars: tickets issued per hour of day, averaged over the days with tickets."""
    lang = report.get("lang", "vi")
    days = max(1, int(report.get("open_days") or 0))
    img, d = _canvas(_t("arrivals_title", lang), _t("arrivals_sub", lang, days=report.get("open_days") or 0))
    counts = list(report.get("arrivals_by_hour") or [0] * 24)
    hours = [h for h in range(24) if counts[h]]
    if not hours:
        _no_data(d, lang)
        return img
    h0, h1 = min(hours), max(hours)
    shown = list(range(h0, h1 + 1))
    vals = [counts[h] / days for h in shown]
    left, right, top, bottom = 110, WIDTH - 40, 140, HEIGHT - 80
    step = _nice_step(max(vals))
    ymax = step * (int(max(vals) / step) + 1)
    f = _font(22)
    y_at: Callable[[float], float] = lambda v: bottom - (bottom - top) * v / ymax  # noqa: E731
    v = 0.0
    while v <= ymax + 1e-9:
        y = y_at(v)
        d.line((left, y, right, y), fill=GRID, width=2)
        d.text((left - 14, y), _num(v, lang, 0 if step >= 1 else 1), font=f, fill=MUTED, anchor="rm")
        v += step
    slot = (right - left) / len(shown)
    bar = slot * 0.7
    peak = max(vals)
    for i, (h, val) in enumerate(zip(shown, vals, strict=True)):
        x0 = left + i * slot + (slot - bar) / 2
        colour = ORANGE if val == peak else BLUE
        d.rectangle((x0, y_at(val), x0 + bar, bottom), fill=colour)
        if val:
            d.text((x0 + bar / 2, y_at(val) - 6), _num(val, lang), font=_font(20, "semibold"), fill=INK, anchor="md")
        d.text((x0 + bar / 2, bottom + 12), f"{h}h", font=f, fill=INK, anchor="mt")
    d.line((left, bottom, right, bottom), fill=INK, width=2)
    return img


# bars the wait chart draws at most: the services with most waits. A province's report holds every
# service any centre's events named, and a centre's account can name 20,000: drawn one by one they
# took 128 s, for every chart, HTML and XLSX of the province report (a bar is 2 px high by then)
WAIT_CHART_MAX_SERVICES = 24


def chart_waits(report: dict[str, Any]) -> Image.Image:
    """100 % stacked horizontal bars: the share of waits in each band, per service (the
    ``WAIT_CHART_MAX_SERVICES`` with most waits when there are more, in the report's order)."""
    lang = report.get("lang", "vi")
    img, d = _canvas(_t("waits_title", lang), _t("waits_sub", lang))
    hist = report.get("wait_hist") or []
    if len(hist) > WAIT_CHART_MAX_SERVICES:
        keep = sorted(range(len(hist)), key=lambda i: -sum(hist[i]["counts"]))[:WAIT_CHART_MAX_SERVICES]
        hist = [hist[i] for i in sorted(keep)]
    edges = list(report.get("wait_bins_min") or [])
    if not hist or not any(sum(h["counts"]) for h in hist):
        _no_data(d, lang)
        return img
    unit = _t("minutes", lang)
    names = [f"< {edges[0]}"] + [f"{a}–{b}" for a, b in zip(edges, edges[1:], strict=False)] + [f"≥ {edges[-1]}"]
    _legend(d, [(n + (f" {unit}" if i == len(names) - 1 else ""), BIN_COLOURS[i % len(BIN_COLOURS)])
                for i, n in enumerate(names)], 40, 118)
    f, fb = _font(22), _font(22, "semibold")
    label_w = min(360, max(int(d.textlength(h["label"], font=fb)) for h in hist) + 20)
    left, right, top, bottom = 40 + label_w, WIDTH - 150, 180, HEIGHT - 30
    row_h = min(120, (bottom - top) / len(hist))
    bar_h = row_h * 0.55
    for i, h in enumerate(hist):
        n = sum(h["counts"])
        y0 = top + i * row_h + (row_h - bar_h) / 2
        lines = _fit(d, h["label"], fb, label_w - 20)
        if h.get("target_min") is not None:
            lines.append(f"{_t('target', lang)} {_num(h['target_min'], lang, 0)} {unit}")
        ly = y0 + bar_h / 2 - 13 * (len(lines) - 1)
        for k, line in enumerate(lines):
            is_target = k == len(lines) - 1 and h.get("target_min") is not None
            d.text((40, ly + 26 * k), line, font=_font(18) if is_target else fb, fill=MUTED if is_target else INK,
                   anchor="lm")
        x = float(left)
        if n == 0:
            d.rectangle((left, y0, right, y0 + bar_h), outline=GRID, width=2)
            continue
        for b, c in enumerate(h["counts"]):
            w = (right - left) * c / n
            if w <= 0:
                continue
            d.rectangle((x, y0, x + w, y0 + bar_h), fill=BIN_COLOURS[b % len(BIN_COLOURS)])
            if w > 58:
                d.text((x + w / 2, y0 + bar_h / 2), f"{round(100 * c / n)}%", font=_font(18, "semibold"),
                       fill=INK, anchor="mm")
            x += w
        target = h.get("target_min")
        if target in edges:  # the target falls on a band edge: mark where it cuts the bar
            within = sum(h["counts"][: edges.index(target) + 1])
            tx = left + (right - left) * within / n
            for yy in range(int(y0 - 10), int(y0 + bar_h + 10), 8):
                d.line((tx, yy, tx, yy + 4), fill=INK, width=3)
        d.text((right + 12, y0 + bar_h / 2), f"n={_num(n, lang, 0)}", font=f, fill=MUTED, anchor="lm")
    return img


def chart_counter_load(report: dict[str, Any]) -> Image.Image:
    """Stacked horizontal bars per counter: hours serving, paused and idle."""
    lang = report.get("lang", "vi")
    img, d = _canvas(_t("load_title", lang), _t("load_sub", lang))
    load = report.get("counter_load") or []
    totals = [(c["busy_s"] + c["paused_s"] + c["idle_s"]) / 3600 for c in load]
    if not load or not any(totals):
        _no_data(d, lang)
        return img
    _legend(d, [(_t("busy", lang), BLUE), (_t("paused", lang), ORANGE), (_t("idle", lang), GREY)], 40, 118)
    f, fb = _font(22), _font(22, "semibold")
    labels = [c["label"] + (f" · {c['officer']}" if c.get("officer") else "") for c in load]
    label_w = min(460, max(int(d.textlength(s, font=fb)) for s in labels) + 24)
    left, right, top, bottom = 40 + label_w, WIDTH - 150, 180, HEIGHT - 70
    hmax = max(totals)
    step = _nice_step(hmax)
    xmax = step * (int(hmax / step) + 1)
    x_at: Callable[[float], float] = lambda v: left + (right - left) * v / xmax  # noqa: E731
    v = 0.0
    while v <= xmax + 1e-9:
        x = x_at(v)
        d.line((x, top - 6, x, bottom), fill=GRID, width=2)
        d.text((x, bottom + 10), _num(v, lang, 0 if step >= 1 else 1), font=f, fill=MUTED, anchor="mt")
        v += step
    row_h = min(100, (bottom - top) / len(load))
    bar_h = row_h * 0.6
    for i, (c, label, tot) in enumerate(zip(load, labels, totals, strict=True)):
        y0 = top + i * row_h + (row_h - bar_h) / 2
        d.text((40, y0 + bar_h / 2), _fit(d, label, fb, label_w - 20, lines=1)[0], font=fb, fill=INK, anchor="lm")
        x = left
        for key, colour in (("busy_s", BLUE), ("paused_s", ORANGE), ("idle_s", GREY)):
            w = x_at(c[key] / 3600) - left
            if w > 0:
                d.rectangle((x, y0, x + w, y0 + bar_h), fill=colour)
                x += w
        d.text((x + 10, y0 + bar_h / 2), f"{_num(tot, lang)} {_t('hours_unit', lang)}", font=f, fill=INK, anchor="lm")
    return img


CHARTS: dict[str, Callable[[dict[str, Any]], Image.Image]] = {
    "arrivals-per-hour": chart_arrivals,
    "wait-distribution": chart_waits,
    "counter-load": chart_counter_load,
}


def chart_pngs(report: dict[str, Any]) -> dict[str, bytes]:
    """name → PNG bytes of every chart."""
    out = {}
    for name, fn in CHARTS.items():
        buf = io.BytesIO()
        fn(report).save(buf, format="PNG", optimize=True)
        out[name] = buf.getvalue()
    return out


def write_charts(report: dict[str, Any], folder: Path | str) -> list[Path]:
    """Save every chart as ``<folder>/<name>.png``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in chart_pngs(report).items():
        p = folder / f"{name}.png"
        p.write_bytes(data)
        paths.append(p)
    log.info("charts written to %s", folder)
    return paths
