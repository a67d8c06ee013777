"""webd at the province: the head's and technicians' pages over the province PostgreSQL.

When ``[web] province_dsn`` is set, webd serves no centre: no MQTT, no hub, no site file. It
reads the province database the ingester fills (``docs/province.md``) through the same functions
the ``xephang province`` commands use:

- ``/province``: every centre (reachable, or unreachable since when; devices online; open alerts;
  time unreachable and link cuts this quarter) and every device (online, offline, or *unreachable*
  while its centre's link is down; downtime this quarter; its open alerts) —
  ``province.devices.list_links`` and ``list_devices``;
- ``/province/report``: the report figures across centres (default: this quarter by centre) from
  ``province.reports.build_province_report``, from the rollups where they apply.

Logins, sessions, CSRF and throttling are the centre's (``webd.app.WebApp``); only head and
technician accounts see these pages. Vietnamese first, English on the switch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from webd import pages
from webd.app import HEAD_ROLES, WebApp
from webd.auth import Session
from webd.config import WebSettings

log = logging.getLogger(__name__)

e = pages.e
REFRESH_S = 30  # the devices page reloads itself this often (a meta refresh: works without JavaScript)
REPORT_RETRY_S = 30  # a report refused for now: try again after this long (Retry-After)

T: dict[str, tuple[str, str]] = {
    "title": ("Giám sát các trung tâm", "Centres and devices"),
    "report": ("Báo cáo toàn tỉnh", "Province report"),
    "centres": ("Trung tâm", "Centres"),
    "centre": ("Trung tâm", "Centre"),
    "link": ("Liên lạc", "Link"),
    "reachable": ("liên lạc được", "reachable"),
    "unreachable": ("không liên lạc được", "unreachable"),
    "unreachable_since": ("không liên lạc được từ {t}", "unreachable since {t}"),
    "link_unknown": ("chưa rõ", "unknown"),
    "devices_online": ("Thiết bị trực tuyến", "Devices online"),
    "open_alerts": ("Cảnh báo đang mở", "Open alerts"),
    "cut_time": ("Mất liên lạc trong kỳ", "Unreachable this period"),
    "cuts": ("{n} lần, tổng {d}", "{n} time(s), {d} in all"),
    "devices": ("Thiết bị", "Devices"),
    "node": ("Thiết bị", "Device"),
    "role": ("Vai trò", "Role"),
    "state": ("Trạng thái", "State"),
    "since": ("Từ", "Since"),
    "downtime": ("Thời gian mất kết nối trong kỳ", "Downtime this period"),
    "alerts": ("Cảnh báo", "Alerts"),
    "online": ("trực tuyến", "online"),
    "offline": ("mất kết nối", "offline"),
    "period": ("Kỳ", "Period"),
    "period_note": ("Thời gian tính trong kỳ {p}; giờ theo đồng hồ của tỉnh (lúc tỉnh nhận được tin).",
                    "Times within {p}; by the province's clock (when the province learned of it)."),
    "no_devices": ("Chưa có thiết bị nào báo về.", "No device has reported yet."),
    "no_centres": ("Chưa có trung tâm nào.", "No centre yet."),
    "db_error": ("Không đọc được CSDL tỉnh: {e}", "Cannot read the province database: {e}"),
    "group_by": ("Theo", "By"),
    "show": ("Xem", "Show"),
    "method": ("Tính từ {m} trong {s} giây", "Computed from {m} in {s} s"),
    "rollups": ("bảng tổng hợp", "the rollups"),
    "full": ("toàn bộ phiếu", "every ticket"),
    "not_yours": ("Trang này dành cho lãnh đạo và kỹ thuật viên của tỉnh.",
                  "These pages are for the province's heads and technicians."),
    "bad_report": ("Không lập được báo cáo: {e}", "Could not make the report: {e}"),
    "report_yours": ("Báo cáo trước của bạn vẫn đang được lập. Vui lòng đợi báo cáo đó xong rồi thử lại.",
                     "Your previous report is still being made. Please wait until it is done, then try again."),
    "report_busy": ("Máy chủ đang lập {n} báo cáo khác. Vui lòng thử lại sau ít phút.",
                    "The server is making {n} other reports. Please try again in a few minutes."),
    "bad_site": ("Mã trung tâm không hợp lệ: “{s}” (chữ thường không dấu, số và dấu gạch ngang; tối đa {n} mã).",
                 "Not a centre id: “{s}” (lower-case letters, digits and hyphens; {n} ids at most)."),
}
SITE_ID = re.compile(r"[a-z0-9-]{1,64}")  # a site slug, as in the topics
MAX_SITES = 200
GROUPINGS = (("site", "Trung tâm", "Centre"), ("service", "Lĩnh vực", "Service"),
             ("site,service", "Trung tâm — Lĩnh vực", "Centre — Service"), ("month", "Tháng", "Month"),
             ("day", "Ngày", "Day"))


def tr(key: str, lang: str, **kw: Any) -> str:
    vi, en = T[key]
    return (en if lang == "en" else vi).format(**kw)


def _when(ts: datetime | None) -> str:
    from xephang.clock import VN_TZ

    return ts.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M") if ts else "—"


def _hm(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}"


def nav(lang: str, csrf: str, user: str) -> str:
    return (f'<nav><a href="/province">{e(tr("title", lang))}</a> <a href="/province/report">{e(tr("report", lang))}</a> '
            f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<button type="submit">{e(pages.t("logout", lang))} ({e(user)})</button></form></nav>')


def devices_body(links: list[dict[str, Any]], devices: list[dict[str, Any]], lang: str, period_label: str) -> str:
    """The centres' table, then the devices' table. Rows carry data-site/data-node/data-state for tools."""
    by_site: dict[str, list[dict[str, Any]]] = {}
    for d in devices:
        by_site.setdefault(d["site"], []).append(d)
    crows = []
    for c in links:
        devs = by_site.get(c["site"], [])
        if c["reachable"] is False:
            link, cls = tr("unreachable_since", lang, t=_when(c["since"])), "unreachable"
        elif c["reachable"]:
            link, cls = tr("reachable", lang), "reachable"
        else:
            link, cls = tr("link_unknown", lang), "unknown"
        online = sum(d["online"] and d["state"] != "unreachable" for d in devs)
        n_alerts = sum(len(d["alerts"]) for d in devs)
        name = c["centre_en"] if lang == "en" else c["centre"]
        crows.append(f'<tr class="{cls}" data-site="{e(c["site"])}" data-link="{cls}"><td>{e(name)}</td>'
                     f'<td class="link">{e(link)}</td><td class="n">{online}/{len(devs)}</td>'
                     f'<td class="n alerts">{n_alerts}</td>'
                     f'<td class="n cuts">{e(tr("cuts", lang, n=len(c["cuts"]), d=_hm(c["unreachable_s"])))}</td></tr>')
    states = {"online": tr("online", lang), "offline": tr("offline", lang), "unreachable": tr("unreachable", lang)}
    names = {c["site"]: (c["centre_en"] if lang == "en" else c["centre"]) for c in links}
    drows = []
    for d in devices:
        since = d["link_since"] if d["state"] == "unreachable" else d["since"]
        alerts = ", ".join(f'{a["alert"]}: {pages.device_text(a["message_en"] if lang == "en" and a["message_en"] else a["message_vi"])}'
                           .rstrip(": ") for a in d["alerts"]) or "—"
        drows.append(f'<tr class="{d["state"]}" data-site="{e(d["site"])}" data-node="{e(d["node"])}" '
                     f'data-state="{d["state"]}"><td>{e(names.get(d["site"], d["centre"]))}</td><td>{e(d["node"])}</td>'
                     f'<td>{e(pages.device_text(d["role"], 40))}</td><td class="state">{e(states[d["state"]])}</td>'
                     f'<td>{e(_when(since))}</td><td class="n">{e(_hm(d["downtime_s"]))}</td>'
                     f'<td class="alerts">{e(alerts)}</td></tr>')
    ctable = (f'<div class="scroll"><table id="centres"><thead><tr><th>{e(tr("centre", lang))}</th>'
              f'<th>{e(tr("link", lang))}</th><th>{e(tr("devices_online", lang))}</th><th>{e(tr("open_alerts", lang))}</th>'
              f'<th>{e(tr("cut_time", lang))}</th></tr></thead><tbody>{"".join(crows)}</tbody></table></div>'
              if crows else f'<p class="muted">{e(tr("no_centres", lang))}</p>')
    dtable = (f'<div class="scroll"><table id="devices"><thead><tr><th>{e(tr("centre", lang))}</th>'
              f'<th>{e(tr("node", lang))}</th><th>{e(tr("role", lang))}</th><th>{e(tr("state", lang))}</th>'
              f'<th>{e(tr("since", lang))}</th><th>{e(tr("downtime", lang))}</th><th>{e(tr("alerts", lang))}</th>'
              f'</tr></thead><tbody>{"".join(drows)}</tbody></table></div>'
              if drows else f'<p class="muted">{e(tr("no_devices", lang))}</p>')
    return (f'<h1>{e(tr("title", lang))}</h1><p class="muted">{e(tr("period_note", lang, p=period_label))}</p>'
            f'<h2>{e(tr("centres", lang))}</h2>{ctable}<h2>{e(tr("devices", lang))}</h2>{dtable}')


def report_form(lang: str, period: str, group_by: str) -> str:
    return pages.report_form(lang, period, group_by, action="/province/report",
                             placeholder="this-quarter, 2026-Q4, 2026-11, 2026", groupings=GROUPINGS, label=tr)


def report_tables(report: dict[str, Any], lang: str) -> str:
    """The report's rows and totals through the centre report's own columns and formats."""
    from province.reports import renderable
    from xephang_reports.render import (
        COUNT_COLUMNS,
        TIME_COLUMNS,
        cell_text,
        group_heading,
        notes,
        shown_columns,
        title_lines,
    )

    rep = renderable(report)
    site, heading, generated = title_lines(rep)
    out = [f'<h1 id="report-title">{e(heading)}</h1><p class="muted">{e(site)} · {e(generated)}</p>']
    gh = group_heading(rep)
    for i, cols in enumerate((shown_columns(rep, COUNT_COLUMNS), shown_columns(rep, TIME_COLUMNS))):
        head = "".join(f'<th data-key="{e(c.key)}">{e(c.heading(lang))}</th>' for c in cols)
        body = "".join(f'<tr data-key="{e(r["label"])}"><td>{e(r["label"])}</td>'
                       + "".join(f'<td class="n" data-key="{e(c.key)}">{e(cell_text(r, c, lang))}</td>' for c in cols)
                       + "</tr>" for r in rep["rows"])
        tot = rep["totals"]
        body += (f'<tr class="total"><td>{e(tot["label"])}</td>'
                 + "".join(f'<td class="n" data-key="{e(c.key)}">{e(cell_text(tot, c, lang))}</td>' for c in cols)
                 + "</tr>")
        out.append(f'<div class="scroll"><table id="report-{"counts" if i == 0 else "times"}"><thead><tr><th>{e(gh)}</th>'
                   f'{head}</tr></thead><tbody>{body}</tbody></table></div>')
    out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes(rep)) + "</ul>")
    return "".join(out)


class ReportTurn:
    """One report's place among those computed at once. Its worker thread holds it while the
    database works (a client that leaves frees nothing); a place whose thread never started is
    given back by the request that gave up on it. Released exactly once either way."""

    def __init__(self, gate: ReportGate, who: str) -> None:
        self.gate, self.who = gate, who
        self.state = "waiting"  # → running → done, or waiting → done (never ran)

    def start(self) -> bool:
        """In the worker thread: False when the request already gave the place back (do nothing)."""
        with self.gate.lock:
            if self.state != "waiting":
                return False
            self.state = "running"
            return True

    def finish(self) -> None:
        """In the worker thread, when the database work is over."""
        with self.gate.lock:
            self._release()

    def abandon(self) -> None:
        """The request gave up (cancelled): the place goes back only if its thread never started."""
        with self.gate.lock:
            if self.state == "waiting":
                self._release()

    def _release(self) -> None:
        if self.state != "done":
            self.state = "done"
            self.gate.running.discard(self.who)


class ReportGate:
    """Province reports being computed: at most ``most`` at once and one per account, so neither
    one login nor a few can tie up the database and the server's worker threads."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.lock = threading.Lock()
        self.running: set[str] = set()  # accounts whose report is being computed

    def enter(self, who: str) -> ReportTurn | str:
        """A place for ``who``'s report, or why not: ``yours`` (their last one still runs) or ``busy``."""
        with self.lock:
            if who in self.running:
                return "yours"
            if len(self.running) >= self.most:
                return "busy"
            self.running.add(who)
            return ReportTurn(self, who)


class SharedPing:
    """One database ping answers every health check for ``fresh_s`` seconds. ``/healthz`` needs no
    login (monitoring asks it); without this, each request opened its own database connection, so
    a stranger on the network asking in a loop held as many connections and threads as they liked.
    Checks that arrive while a ping runs wait for that ping; a failure is remembered as long as a
    success. Answers ``(True, schema version)`` or ``(False, the error's class name)``."""

    def __init__(self, ping: Any, *, fresh_s: float = 2.0, clock: Any = time.monotonic) -> None:
        self.ping, self.fresh_s, self.clock = ping, fresh_s, clock
        self.pings = 0  # how many times the database was asked (tests, the health page's own figures)
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._at: float | None = None
        self._answer: tuple[bool, Any] = (False, "not-checked")

    async def answer(self) -> tuple[bool, Any]:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a lock belongs to one event loop
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:
            if self._at is not None and self.clock() - self._at < self.fresh_s:
                return self._answer
            self.pings += 1
            try:
                self._answer = (True, await asyncio.to_thread(self.ping))
            except Exception as exc:  # noqa: BLE001 — any failure is "not healthy", said in the answer
                self._answer = (False, type(exc).__name__)
            self._at = self.clock()
            return self._answer


class ProvinceWebApp(WebApp):
    """The province's pages: the centre app's logins and plumbing, other routes, the database behind."""

    def __init__(self, settings: WebSettings, *, dsn: str, now: Any = time.time) -> None:
        super().__init__(settings, None, ask=_no_hub, now=now)  # type: ignore[arg-type]  # no centre here
        self.dsn = dsn
        self.report_gate = ReportGate(settings.web.province_reports_at_once)
        self.health = SharedPing(self._schema_version)

    def _routes(self) -> list[Route]:
        return [
            Route("/", self.province_home),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login_post, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/province", self.devices_page),
            Route("/province/report", self.report_page),
            Route("/head", self.province_home),  # where a login lands by default
            Route("/counter", self.devices_page),  # where an officer's login lands: refused there
            Route("/lang/{lang}", self.set_lang),
            Route("/static/{name}", self.static),
            Route("/fonts/{name}", self.font),
            Route("/healthz", self.province_health),
        ]

    def _need_login(self, request: Request, roles: tuple[str, ...] = HEAD_ROLES) -> Session | Response:
        """Head and technician accounts only; any other account is refused here (there is no console)."""
        s = self.session(request)
        if s is not None and s.role not in roles:
            lang = self.lang(request)
            return self.html(pages.message_page("xephang", tr("not_yours", lang), lang=lang), status=403)
        return super()._need_login(request, roles)

    async def province_home(self, request: Request) -> Response:
        return RedirectResponse("/province", status_code=303)

    def _read(self, fn: Any) -> Any:
        from province.db import connect

        with connect(self.dsn) as conn:
            return fn(conn)

    async def devices_page(self, request: Request) -> Response:
        s = self._need_login(request)
        if isinstance(s, Response):
            return s
        lang = self.lang(request)
        period = request.query_params.get("period", "this-quarter") or "this-quarter"
        from province.db import ProvinceDbError
        from province.devices import list_devices, list_links, period_bounds
        from xephang_reports.build import BadPeriod

        sites = request.query_params.getlist("site") or None
        bad = [x for x in sites or [] if not SITE_ID.fullmatch(x)]
        if bad or len(sites or []) > MAX_SITES:  # a NUL would reach PostgreSQL as a "database error"
            body = f'<div class="banner warn" id="report-error">{e(tr("bad_site", lang, s=(bad or sites or [""])[0][:40], n=MAX_SITES))}</div>'
            return self.html(pages.page(tr("title", lang), body, lang=lang, path="/province", script=False,
                                        nav=nav(lang, s.csrf, s.username)), status=400)
        try:
            start, end = period_bounds(period, self.now())

            def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
                return (list_links(conn, start=start, end=end, sites=sites),
                        list_devices(conn, start=start, end=end, sites=sites))

            links, devices = await asyncio.to_thread(self._read, read)
            label = f"{_when(start)} – {_when(end)}"
            body, status = devices_body(links, devices, lang, label), 200
        except BadPeriod:
            body, status = f'<div class="banner warn" id="report-error">{e(pages.t("bad_period", lang, p=period[:40]))}</div>', 400
        except (ProvinceDbError, OSError, _psycopg_error()) as exc:
            log.error("province pages: %s", exc)
            body, status = f'<div class="banner warn" id="db-error">{e(tr("db_error", lang, e=type(exc).__name__))}</div>', 503
        head = f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        return self.html(pages.page(tr("title", lang), body, lang=lang, path="/province", head_extra=head,
                                    script=False, nav=nav(lang, s.csrf, s.username)), status=status)

    async def report_page(self, request: Request) -> Response:
        s = self._need_login(request)
        if isinstance(s, Response):
            return s
        lang = self.lang(request)
        period = request.query_params.get("period", "this-quarter") or "this-quarter"
        group_by = request.query_params.get("group_by", "site") or "site"
        if group_by not in {g for g, _, _ in GROUPINGS}:
            group_by = "site"
        from province.db import ProvinceDbError
        from province.reports import ProvinceReportError, build_province_report
        from xephang_reports.build import BadPeriod

        def read(conn: Any) -> tuple[dict[str, Any], str, float]:
            t0 = time.monotonic()
            try:  # the rollups answer whole months; anything else is computed from every ticket
                rep, method = build_province_report(conn, period=period, group_by=group_by, lang=lang, now=self.now(),
                                                    method="rollup"), "rollups"
            except ProvinceReportError:
                conn.rollback()
                rep, method = build_province_report(conn, period=period, group_by=group_by, lang=lang, now=self.now(),
                                                    method="full"), "full"
            return rep, method, time.monotonic() - t0

        body, status = report_form(lang, period, group_by), 200
        turn = self.report_gate.enter(s.username)
        if isinstance(turn, str):  # this account's report still runs (429), or the server is at its limit (503)
            log.info("province report for %s refused for now (%s)", s.username, turn)
            n = len(self.report_gate.running)
            body += f'<div class="banner warn" id="report-busy">{e(tr("report_" + turn, lang, n=n))}</div>'
            return self.html(pages.page(tr("report", lang), body, lang=lang, path="/province/report", script=False,
                                        nav=nav(lang, s.csrf, s.username)), status=429 if turn == "yours" else 503,
                             headers={"retry-after": str(REPORT_RETRY_S)})

        def read_in_turn(turn: ReportTurn = turn) -> tuple[dict[str, Any], str, float] | None:
            if not turn.start():  # the request gave up before this thread began: nobody waits for it
                return None
            try:
                return self._read(read)
            finally:
                turn.finish()

        try:
            try:
                done = await asyncio.to_thread(read_in_turn)
            except asyncio.CancelledError:
                turn.abandon()
                raise
            assert done is not None  # None only reaches a request that gave up (above)
            rep, method, took = done
            body += (f'<p class="muted" id="method" data-method="{method}">'
                     f'{e(tr("method", lang, m=tr(method, lang), s=f"{took:.2f}"))}</p>' + report_tables(rep, lang))
        except BadPeriod:
            body += f'<div class="banner warn" id="report-error">{e(pages.t("bad_period", lang, p=period[:40]))}</div>'
            status = 400
        except ProvinceReportError as exc:
            body += f'<div class="banner warn" id="report-error">{e(tr("bad_report", lang, e=str(exc)))}</div>'
            status = 400
        except (ProvinceDbError, OSError, _psycopg_error()) as exc:
            log.error("province report: %s", exc)
            body += f'<div class="banner warn" id="db-error">{e(tr("db_error", lang, e=type(exc).__name__))}</div>'
            status = 503
        return self.html(pages.page(tr("report", lang), body, lang=lang, path="/province/report", script=False,
                                    nav=nav(lang, s.csrf, s.username)), status=status)

    def _schema_version(self) -> int:
        from province.db import schema_version

        return int(self._read(schema_version))

    async def province_health(self, request: Request) -> Response:
        """``200`` with the schema version when the database answers, else ``503`` with the error's
        class name: one shared ping at most every two seconds (:class:`SharedPing`)."""
        ok, what = await self.health.answer()
        if not ok:
            return Response(json.dumps({"db": False, "error": what}), media_type="application/json", status_code=503)
        return Response(json.dumps({"db": True, "schema": what, "at": datetime.now(UTC).isoformat()}),
                        media_type="application/json")


def _no_hub(kind: str, params: dict[str, Any], done: Any) -> None:
    raise RuntimeError("webd at the province has no hub to ask")


def _psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error


def serve(settings: WebSettings) -> int:
    """Run the province pages until SIGTERM/SIGINT (uvicorn handles both)."""
    import uvicorn

    w = settings.web
    app = ProvinceWebApp(settings, dsn=w.province_dsn or "")
    log.info("province pages on http://%s:%s/ (database %s)", w.listen, w.port, _masked(w.province_dsn or ""))
    uvicorn.run(app.asgi, host=w.listen, port=w.port, log_level="warning", access_log=False, proxy_headers=False,
                server_header=False, timeout_graceful_shutdown=2, lifespan="on",
                log_config=None)  # uvicorn's lines through the daemon's own (paced) handler
    return 0


def _masked(dsn: str) -> str:
    """The DSN without its password, for the log."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)
