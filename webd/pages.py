"""The pages' HTML, rendered on the server (no template engine: small functions that escape
every value). Vietnamese first with full diacritics; English when the visitor switches.

Live parts are fragments (``ticket_fragment``, ``hall_fragment``, ``dashboard_fragment``):
the first page load includes them, and the live stream sends them again when they change,
so the page works without JavaScript and a reconnect always shows the current truth.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from webd.live import Snapshot, TicketView
from xephang.site import Site
from xephang.terminal import shown
from xephang.waittext import format_wait, wait_range
from xephang_reports.build import BAD_PERIOD_WORDS

ASSET_VERSION = "6"
ALERT_TEXT_MAX = 300  # characters of an alert's message on the dashboard

T: dict[str, tuple[str, str]] = {
    "your_number": ("Số thứ tự của bạn", "Your number"),
    "service": ("Lĩnh vực", "Service"),
    "ahead": ("Số người chờ trước bạn", "People ahead of you"),
    "wait": ("Thời gian chờ dự kiến", "Estimated wait"),
    "called": ("Mời đến quầy {n}", "Please go to counter {n}"),
    "recalled": ("Mời lại: đến quầy {n}", "Called again: go to counter {n}"),
    "called_sub": ("Số {d} — mời công dân đến ngay", "Number {d} — please go now"),
    "done": ("Đã phục vụ xong. Xin cảm ơn!", "Served. Thank you!"),
    "no_show": ("Bạn đã vắng mặt khi được gọi. Vui lòng hỏi tại bàn hướng dẫn.",
                "You were not there when called. Please ask at the reception desk."),
    "voided": ("Số này đã bị hủy (phiếu không in được). Vui lòng lấy số mới.",
               "This number was cancelled (the ticket did not print). Please take a new one."),
    "expired": ("Phiếu này đã hết hạn. Vui lòng lấy số mới.", "This ticket has expired. Please take a new one."),
    "old": ("Phiếu ngày {day} đã hết hạn. Vui lòng lấy số mới.", "This ticket of {day} has expired. Please take a new one."),
    "transferred": ("Đã chuyển sang lĩnh vực: {s}", "Transferred to: {s}"),
    "syncing": ("Đang cập nhật thông tin…", "Updating…"),
    "unknown": ("Chưa có thông tin về số này. Vui lòng theo dõi bảng số trong sảnh.",
                "No information about this number yet. Please watch the board in the hall."),
    "live": ("Đang cập nhật trực tiếp", "Live"),
    "offline": ("Mất kết nối — đang kết nối lại…", "Connection lost — reconnecting…"),
    "sound": ("Bật âm báo khi được gọi", "Sound an alert when called"),
    "sound_on": ("Đã bật âm báo", "Alert sound on"),
    "hall": ("Bảng số trong sảnh", "The hall board"),
    "counter": ("Quầy", "Counter"),
    "serving": ("Đang phục vụ", "Serving"),
    "state": ("Trạng thái", "State"),
    "open": ("Đang mở", "Open"),
    "paused": ("Tạm dừng", "Paused"),
    "closed": ("Đóng", "Closed"),
    "last_calls": ("Số vừa gọi", "Latest calls"),
    "waiting": ("Đang chờ", "Waiting"),
    "waiting_per_service": ("Số người đang chờ theo lĩnh vực", "Waiting per service"),
    "guides": ("Hướng dẫn thủ tục", "Procedure guides"),
    "guide_for": ("Hướng dẫn thủ tục: {s}", "Procedure guide: {s}"),
    "wifi": ("Wi-Fi của trung tâm: {w}", "The centre's Wi-Fi: {w}"),
    "login": ("Đăng nhập", "Log in"),
    "logout": ("Đăng xuất", "Log out"),
    "username": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "bad_login": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong user name or password."),
    "throttled": ("Đăng nhập quá nhiều lần. Vui lòng thử lại sau {n} phút.",
                  "Too many logins. Please try again in {n} min."),
    "bad_form": ("Biểu mẫu đã hết hạn, vui lòng thử lại.", "The form expired, please try again."),
    "dashboard": ("Bảng điều hành", "Dashboard"),
    "reports": ("Báo cáo", "Reports"),
    "roster": ("Phân công quầy", "Counters today"),
    "voice": ("Giọng đọc", "Voice"),
    "today": ("Số liệu hôm nay", "Today's figures"),
    "figures_at": ("Số liệu lúc {at}", "Figures as of {at}"),
    "target": ("Mục tiêu chờ", "Target wait"),
    "est_wait": ("Chờ dự kiến", "Estimated wait"),
    "officer": ("Cán bộ", "Officer"),
    "alerts": ("Cảnh báo thiết bị", "Device alerts"),
    "no_alerts": ("Không có cảnh báo.", "No alerts."),
    "node_offline": ("{n}: mất kết nối", "{n}: offline"),
    "no_report": ("Chưa có số liệu (hub chưa trả lời).", "No figures yet (the hub has not answered)."),
    "period": ("Kỳ báo cáo", "Period"),
    "group_by": ("Theo", "By"),
    "show": ("Xem", "Show"),
    "download": ("Tải về", "Download"),
    "report_error": ("Không lấy được báo cáo: {e}", "Could not get the report: {e}"),
    "report_too_large": ("Báo cáo này quá lớn để máy chủ hàng đợi gửi trong một lần: hãy chọn khoảng thời gian ngắn "
                         "hơn hoặc cách nhóm khác (ví dụ theo tháng thay vì theo ngày).",
                         "This report is too large for the queue server to send at once: choose a shorter period "
                         "or another grouping (for example by month instead of by day)."),
    "report_timeout": ("Máy chủ hàng đợi chưa trả lời. Hãy thử lại sau ít phút.",
                       "The queue server did not answer. Try again in a few minutes."),
    "report_unavailable": ("Máy chủ hàng đợi chưa cài phần báo cáo.", "Reports are not installed on the queue server."),
    "bad_period": BAD_PERIOD_WORDS,  # xephang report says the same
    "min": ("phút", "min"),
    "over_target": ("vượt mục tiêu", "over target"),
    "est_wait_note": ("Chờ dự kiến: khoảng thời gian chờ của người lấy số bây giờ, như bảng hiển thị trong sảnh "
                      "và vé in ra. Dòng tô đỏ: ngay cả đầu dưới của khoảng đó đã vượt mục tiêu chờ.",
                      "Estimated wait: the range for a citizen taking a ticket now, as the hall board and the "
                      "printed ticket say it. A red row: even its lower end is over the target wait."),
    "lang_other": ("English", "Tiếng Việt"),
    "hub_offline": ("Máy chủ hàng đợi đang khởi động lại — số liệu sẽ cập nhật ngay khi có.",
                    "The queue server is restarting — figures update as soon as it is back."),
    "not_found": ("Không tìm thấy trang.", "Page not found."),
    "lost": ("Máy chủ hàng đợi vừa được thay: số này không còn trong hàng đợi. Vui lòng lấy số mới.",
             "The queue server was just replaced: this number is no longer in the queue. Please take a new ticket."),
    "bad_link": ("Đường dẫn không hợp lệ. Vui lòng quét lại mã QR trên phiếu.",
                 "This link is not valid. Please scan the QR code on your ticket again."),
    "expired_link": ("Phiếu này đã hết hạn. Vui lòng lấy số mới.", "This ticket has expired. Please take a new one."),
    "no_catalogue": ("Trung tâm chưa có danh mục thủ tục.", "The centre has no procedure catalogue yet."),
    "no_such_guide": ("Không có hướng dẫn cho lĩnh vực này.", "There is no guide for this service."),
    "all_guides": ("Xem hướng dẫn của mọi lĩnh vực", "See the guides of every service"),
    "no_such_counter": ("Trung tâm không có quầy số {n}: dưới đây là mọi lĩnh vực.",
                        "The centre has no counter {n}: here is every service."),
    "no_procedures": ("Chưa có hướng dẫn thủ tục của lĩnh vực này trên trang. Vui lòng hỏi cán bộ tại quầy.",
                      "No procedure guide for this service here yet. Please ask the officer at the counter."),
    "documents": ("Giấy tờ cần mang", "Documents to bring"),
    "fee": ("Lệ phí", "Fee"),
    "fee_free": ("Miễn lệ phí", "Fee-free cases"),
    "time": ("Thời gian giải quyết", "Processing time"),
    "portal": ("Xem trên Cổng Dịch vụ công quốc gia", "On the national public service portal"),
}
GROUPINGS = (("service", "Lĩnh vực", "Service"), ("counter", "Quầy", "Counter"), ("officer", "Cán bộ", "Officer"),
             ("day", "Ngày", "Day"), ("hour", "Giờ", "Hour"))


def t(key: str, lang: str, **kw: Any) -> str:
    vi, en = T[key]
    return (en if lang == "en" else vi).format(**kw)


e = html.escape


def dmy(day: str) -> str:
    try:
        return date.fromisoformat(day).strftime("%d/%m/%Y")
    except ValueError:
        return day


def page(title: str, body: str, *, lang: str, path: str = "/", head_extra: str = "", script: bool = True,
         nav: str = "") -> str:
    """A whole page: our CSS, our font, our few lines of JavaScript, and a language switch."""
    other = "en" if lang == "vi" else "vi"
    js = f'<script src="/static/app.js?v={ASSET_VERSION}" defer></script>' if script else ""
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<title>{e(title)}</title><link rel="stylesheet" href="/static/app.css?v={ASSET_VERSION}">'
            f'{head_extra}{js}</head><body><header><span class="brand">{e(title)}</span>{nav}'
            f'<a class="lang" href="/lang/{other}?next={e(path)}">{e(t("lang_other", lang))}</a></header>'
            f'<main>{body}</main></body></html>')


# ---------------------------------------------------------------------------------------- ticket

def ticket_fragment(v: TicketView, site: Site, snap: Snapshot, lang: str, day: str) -> str:
    """The live part of a ticket's page."""
    svc_name = _service_name(site, v.service, lang) if v.service else ""
    parts = [f'<div class="num-label">{e(t("your_number", lang))}</div><div class="num">{e(v.display)}</div>']
    if svc_name:
        parts.append(f'<div class="svc">{e(svc_name)}</div>')
    st = v.state
    if st == "called":
        key = "recalled" if v.last_kind == "recalled" else "called"
        parts.append(f'<div class="banner call" role="alert"><b>{e(t(key, lang, n=v.counter))}</b>'
                     f'<span>{e(_counter_label(site, v.counter, lang))}</span></div>')
    elif st == "waiting":
        if v.from_service and v.last_kind == "transferred":
            parts.append(f'<div class="note">{e(t("transferred", lang, s=svc_name))}</div>')
        if v.people_ahead is not None:
            parts.append(f'<div class="fig"><span>{e(t("ahead", lang))}</span><b class="ahead">{v.people_ahead}</b></div>')
        if v.wait is not None:  # the hub's range: the same words as the ticket and the board
            txt = format_wait(v.wait.low_min, v.wait.high_min, lang)
            parts.append(f'<div class="fig"><span>{e(t("wait", lang))}</span><b class="wait">{e(txt)}</b></div>')
    elif st == "done":
        parts.append(f'<div class="banner ok">{e(t("done", lang))}</div>')
    elif st == "no-show":
        parts.append(f'<div class="banner warn">{e(t("no_show", lang))}</div>')
    elif st == "voided":
        parts.append(f'<div class="banner warn">{e(t("voided", lang))}</div>')
    elif st == "expired":
        parts.append(f'<div class="banner warn">{e(t("expired", lang))}</div>')
    elif st == "old":
        parts.append(f'<div class="banner warn">{e(t("old", lang, day=dmy(day)))}</div>')
    elif st == "lost":
        parts.append(f'<div class="banner warn">{e(t("lost", lang))}</div>')
    elif st == "syncing":
        parts.append(f'<div class="banner wait">{e(t("syncing", lang))}</div>')
    else:
        parts.append(f'<div class="banner wait">{e(t("unknown", lang))}</div>')
    return f'<div class="ticket st-{e(st)}" data-state="{e(st)}">{"".join(parts)}</div>'


FINAL_STATES = ("done", "no-show", "voided", "expired", "old", "lost")  # no call to come: no sound to turn on


def ticket_page(frag: str, *, lang: str, path: str, stream: str, wifi: str, guide: str | None, title: str,
                hb: float = 15, state: str = "") -> str:
    extra = f'<p class="wifi">{e(t("wifi", lang, w=wifi))}</p>' if wifi else ""
    hidden = " hidden" if state in FINAL_STATES else ""  # the page's script hides it when the state ends so
    link = f'<p><a href="{e(guide)}" rel="noreferrer">{e(t("guides", lang))}</a></p>' if guide else ""
    body = (f'<section id="live" data-stream="{e(stream)}" data-kind="ticket" data-hb="{hb:g}">{frag}</section>'
            f'<p class="conn" id="conn" data-live="{e(t("live", lang))}" data-off="{e(t("offline", lang))}"></p>'
            f'<button id="sound" type="button" data-on="{e(t("sound_on", lang))}" '
            f'data-final="{" ".join(FINAL_STATES)}"{hidden}>{e(t("sound", lang))}</button>'
            f'{link}<p><a href="/hall">{e(t("hall", lang))}</a></p>{extra}')
    return page(title, body, lang=lang, path=path)


def message_page(title: str, text: str, *, lang: str, path: str = "/", back: tuple[str, str] | None = None) -> str:
    """A page of one message; ``back``: (href, words) of a link onwards."""
    more = f'<p><a href="{e(back[0])}">{e(back[1])}</a></p>' if back else ""
    return page(title, f'<div class="banner warn">{e(text)}</div>{more}', lang=lang, path=path, script=False)


# ---------------------------------------------------------------------------------------- hall

def hall_fragment(snap: Snapshot, site: Site, lang: str) -> str:
    rows = []
    for c in snap.counters:
        num = c.serving.display if c.serving else "—"
        rows.append(f'<tr><td>{e(_counter_label(site, c.number, lang))}</td><td class="big">{e(num)}</td>'
                    f'<td>{e(t(c.state, lang))}</td></tr>')
    calls = "".join(f'<li><b>{e(x.display)}</b> → {e(_counter_label(site, x.counter, lang))}</li>'
                    for x in snap.last_calls[:6])
    waits = "".join(f'<tr><td>{e(_service_name(site, s.id, lang))}</td><td class="n">{s.waiting}</td></tr>'
                    for s in snap.services)
    warn = "" if snap.synced else f'<div class="banner wait">{e(t("syncing", lang))}</div>'
    return (f'{warn}<table class="hall"><thead><tr><th>{e(t("counter", lang))}</th><th>{e(t("serving", lang))}</th>'
            f'<th>{e(t("state", lang))}</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<h2>{e(t("last_calls", lang))}</h2><ul class="calls">{calls}</ul>'
            f'<h2>{e(t("waiting_per_service", lang))}</h2><table><tbody>{waits}</tbody></table>')


def live_page(title: str, frag: str, *, lang: str, path: str, stream: str, kind: str, nav: str = "",
              before: str = "", after: str = "", hb: float = 15) -> str:
    body = (f'{before}<section id="live" data-stream="{e(stream)}" data-kind="{e(kind)}" data-hb="{hb:g}">{frag}</section>'
            f'<p class="conn" id="conn" data-live="{e(t("live", lang))}" data-off="{e(t("offline", lang))}"></p>{after}')
    return page(title, body, lang=lang, path=path, nav=nav)


# ---------------------------------------------------------------------------------------- head

def head_nav(lang: str, csrf: str, user: str, *, voice_href: str = "/head/voice") -> str:
    """The head's menu; ``voice_href``: the recording page, on the HTTPS listener when there is one."""
    return (f'<nav><a href="/head">{e(t("dashboard", lang))}</a> <a href="/head/reports">{e(t("reports", lang))}</a> '
            f'<a href="/head/roster">{e(t("roster", lang))}</a> <a href="{e(voice_href)}" id="nav-voice">'
            f'{e(t("voice", lang))}</a> '
            f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<button type="submit">{e(t("logout", lang))} ({e(user)})</button></form></nav>')


def login_page(*, lang: str, csrf: str, error: str = "", next_url: str = "/head") -> str:
    err = f'<div class="banner warn" id="error">{e(error)}</div>' if error else ""
    body = (f'<h1>{e(t("login", lang))}</h1>{err}<form method="post" action="/login" class="login">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="next" value="{e(next_url)}">'
            f'<label>{e(t("username", lang))}<input name="username" autocomplete="username" required></label>'
            f'<label>{e(t("password", lang))}<input name="password" type="password" autocomplete="current-password" required>'
            f'</label><button type="submit" id="submit">{e(t("login", lang))}</button></form>')
    return page(t("login", lang), body, lang=lang, path="/login", script=False)


def figures_table(report: dict[str, Any] | None, lang: str) -> str:
    """Today's figures: the report's totals through the report code's own columns and formats
    (``xephang_reports.render``), so they read exactly as ``xephang report`` prints them."""
    if not report:
        return f'<p class="muted">{e(t("no_report", lang))}</p>'
    from xephang_reports.render import COUNT_COLUMNS, TIME_COLUMNS, cell_text, notes, shown_columns
    from xephang_reports.render import tr as report_tr

    tot = report["totals"]
    cells = "".join(f'<div class="kpi"><span>{e(c.heading(lang))}{" (" + t("min", lang) + ")" if c.kind == "min" else ""}</span><b data-key="{e(c.key)}">'
                    f'{e(cell_text(tot, c, lang))}</b></div>' for c in shown_columns(report, (*COUNT_COLUMNS, *TIME_COLUMNS)))
    # the same definitions as every report prints, folded (the figures are the report's own)
    defs = (f'<details class="notes" id="figures-notes"><summary>{e(report_tr("notes", lang))}</summary><ul>'
            + "".join(f"<li>{e(n)}</li>" for n in notes({**report, "lang": lang})) + "</ul></details>")
    # the figures are the hub's report, asked at most every report_refresh_s: say when they were made
    at = f'<p class="muted" id="figures-at">{e(t("figures_at", lang, at=report.get("generated_local", "")))}</p>'
    return f'<div class="kpis" id="figures" data-generated="{e(report.get("generated_local", ""))}">{cells}</div>{at}{defs}'


def dashboard_fragment(snap: Snapshot, site: Site, lang: str, report: dict[str, Any] | None) -> str:
    targets = {s.id: s.target_wait_min for s in site.services}
    srows = []
    for s in snap.services:
        tgt = targets.get(s.id)
        # the hub's range for a citizen taking a ticket now, in the board's and the ticket's words (an
        # older hub's median alone: as a figure); over the target when even its lower end is
        rng = wait_range(s.est_wait_low_min, s.est_wait_high_min, s.est_wait_open)
        shown = format_wait(*rng, lang, short=True) if rng is not None else _fmt_min(s.est_wait_min, lang)
        over = tgt is not None and (rng[0] > tgt if rng is not None else s.est_wait_min > tgt)
        srows.append(f'<tr class="{"over" if over else ""}" data-service="{e(s.id)}"><td>{e(_service_name(site, s.id, lang))}</td>'
                     f'<td class="n">{s.waiting}</td><td class="n est">{e(shown)}</td>'
                     f'<td class="n">{_fmt_min(tgt, lang)}</td></tr>')
    crows = []
    for c in snap.counters:
        crows.append(f'<tr><td>{e(_counter_label(site, c.number, lang))}</td><td>{e(t(c.state, lang))}'
                     f'{(" — " + e(c.pause_reason)) if c.pause_reason else ""}</td><td>{e(c.officer or "—")}</td>'
                     f'<td class="big">{e(c.serving.display if c.serving else "—")}</td></tr>')
    alerts = [f'<li class="sev-{e(a.severity)}"><b>{e(a.node)}</b>: {e(device_text(a.message_en if lang == "en" and a.message_en else a.message_vi or a.id))}'
              f' <code>{e(a.id)}</code></li>' for a in snap.alerts]
    alerts += [f'<li class="sev-critical">{e(t("node_offline", lang, n=n))}</li>'
               for n, on in sorted(snap.nodes.items()) if not on and not n.startswith("tech")]
    warn = "" if snap.synced else f'<div class="banner wait">{e(t("hub_offline", lang))}</div>'
    return (f'{warn}<h2>{e(t("today", lang))}</h2>{figures_table(report, lang)}'
            f'<h2>{e(t("waiting_per_service", lang))}</h2><div class="scroll"><table><thead><tr><th>{e(t("service", lang))}</th>'
            f'<th>{e(t("waiting", lang))}</th><th>{e(t("est_wait", lang))}</th><th>{e(t("target", lang))}</th></tr>'
            f'</thead><tbody>{"".join(srows)}</tbody></table></div><p class="muted note">{e(t("est_wait_note", lang))}</p>'
            f'<h2>{e(t("counter", lang))}</h2><div class="scroll"><table><thead><tr><th>{e(t("counter", lang))}</th><th>{e(t("state", lang))}</th>'
            f'<th>{e(t("officer", lang))}</th><th>{e(t("serving", lang))}</th></tr></thead><tbody>{"".join(crows)}</tbody></table></div>'
            f'<h2>{e(t("alerts", lang))}</h2><ul class="alerts" id="alerts">'
            f'{"".join(alerts) or "<li>" + e(t("no_alerts", lang)) + "</li>"}</ul>')


def report_form(lang: str, period: str, group_by: str, *, action: str = "/head/reports",
                placeholder: str = "today, 2026-11, 2026-Q4, 2026-11-01..2026-11-30",
                groupings: Sequence[tuple[str, str, str]] = GROUPINGS,
                label: Callable[[str, str], str] = t) -> str:
    """The period and grouping form above a report: the centre's (defaults) and the province's
    (its action, examples, groupings and words)."""
    opts = "".join(f'<option value="{g}"{" selected" if g == group_by else ""}>{e(en if lang == "en" else vi)}</option>'
                   for g, vi, en in groupings)
    return (f'<form method="get" action="{e(action)}" class="report"><label>{e(label("period", lang))}'
            f'<input name="period" value="{e(period)}" placeholder="{e(placeholder)}"></label>'
            f'<label>{e(label("group_by", lang))}<select name="group_by">{opts}</select></label>'
            f'<button type="submit">{e(label("show", lang))}</button></form>')


def device_text(text: str, n: int = ALERT_TEXT_MAX) -> str:
    """A device's own words (an alert, a role) as a page shows them: cut, so one alert cannot fill the
    page (the bus allows 64 KiB), and with control characters and text-direction overrides as '?'
    (``xephang.terminal.shown``): HTML escaping stops markup, not U+202E turning the line around."""
    text = shown(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def period_problem(period: str, today: date, lang: str) -> str | None:
    """The readable message for a report period the report code cannot read, in ``lang`` (the
    code's own error is English and names its grammar); None when it reads."""
    from xephang_reports.build import BadPeriod, parse_period

    try:
        parse_period(period, today)
    except BadPeriod:
        return t("bad_period", lang, p=period[:40])
    return None


def report_body(report: dict[str, Any], charts: dict[str, bytes], query: str, lang: str) -> str:
    """The report in the page: the report code's own tables, notes and charts, plus downloads."""
    import base64

    from xephang_reports.render import (
        busiest_text,
        cell_text,
        group_heading,
        load_table,
        notes,
        table_sections,
        title_lines,
    )
    from xephang_reports.render import tr as report_tr

    site, heading, generated = title_lines(report)
    gh = group_heading(report)
    out = [f'<h1>{e(heading)}</h1><p class="muted">{e(site)} · {e(generated)}</p>',
           f'<p class="downloads">{e(t("download", lang))}: '
           + " ".join(f'<a id="dl-{x}" href="/head/report.{x}?{e(query)}">{x.upper()}</a>' for x in ("csv", "xlsx", "html"))
           + "</p>"]
    NUM = ' class="n"'  # noqa: N806 - a cell's class, not a constant of the module
    # the same sections as `xephang report` and its HTML: tickets, calls, times, counters' hours,
    # busiest hours, then the notes that define them
    for title, cols in table_sections(report):
        head = "".join(f"<th>{e(c.heading(lang))}</th>" for c in cols)
        body = "".join(f'<tr><td>{e(r["label"])}</td>' + "".join(f'<td class="n">{e(cell_text(r, c, lang))}</td>' for c in cols)
                       + "</tr>" for r in report["rows"])
        tot = report["totals"]
        body += (f'<tr class="total"><td>{e(tot["label"])}</td>'
                 + "".join(f'<td class="n">{e(cell_text(tot, c, lang))}</td>' for c in cols) + "</tr>")
        out.append(f'<h2>{e(title)}</h2><div class="scroll"><table><thead><tr><th>{e(gh)}</th>{head}</tr></thead>'
                   f'<tbody>{body}</tbody></table></div>')
    if report.get("counter_load"):
        heads, rows = load_table(report)
        out.append(f'<h2>{e(report_tr("load", lang))}</h2><div class="scroll"><table id="counter-hours"><thead><tr>'
                   + "".join(f"<th>{e(h)}</th>" for h in heads) + "</tr></thead><tbody>"
                   + "".join("<tr>" + "".join(f'<td{"" if i < 2 else NUM}>{e(c)}</td>' for i, c in enumerate(r))
                             + "</tr>" for r in rows) + "</tbody></table></div>")
    out.append(f'<p id="busiest">{e(busiest_text(report))}</p>')
    out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes(report)) + "</ul>")
    out += [f'<img class="chart" alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            for name, png in charts.items()]
    return "".join(out)


# ---------------------------------------------------------------------------------------- helpers

def _service_name(site: Site, sid: str, lang: str) -> str:
    try:
        return site.service(sid).label(lang)
    except KeyError:
        return sid


def _counter_label(site: Site, n: int | None, lang: str) -> str:
    if n is None:
        return ""
    try:
        return site.counter(n).label(lang)
    except KeyError:
        return f"Quầy {n}" if lang == "vi" else f"Counter {n}"


def report_problem(code: str, message: str, lang: str) -> str:
    """Why a report could not be shown, in the head's language where the code is known (the hub's
    own message is English: it stays only for the rest)."""
    known = {"too-large": "report_too_large", "timeout": "report_timeout", "unavailable": "report_unavailable"}
    if code in known:
        return t(known[code], lang)
    return t("report_error", lang, e=f"{code}: {message}" if message else code)


def _fmt_min(x: float | None, lang: str) -> str:
    if x is None:
        return "—"
    s = f"{x:.0f}"
    return f"{s} {t('min', lang)}"


def join(parts: Iterable[str]) -> str:
    return "".join(parts)
