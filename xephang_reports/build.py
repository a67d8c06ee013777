"""Reports the centre's head can hand in: waits, service times, no-shows and satisfaction.

The core of ``xephang report`` and of the hub's ``report`` request. It reads the ledger through
a read-only connection (``open_readonly``; WAL lets it read while the hub writes)
and returns one JSON-able dict; every output (terminal table, CSV, XLSX, charts, HTML, the MQTT
reply) is drawn from that dict, so a technician's laptop renders exactly what the hub computed.

What is counted where (docs/reports.md has the long form):

- A ticket belongs to the service day it was issued on (``tickets.day``: the local date after
  the daily reset, so a ticket issued at 23:50 and served at 00:10 stays on its day).
- Ticket figures — issued, voided, expired, the wait (issue → first call) and the share called
  within the service's target wait — go to the service the citizen chose (``first_service``),
  the issue day and the issue hour; by counter/officer, the wait goes to whoever called first.
- Visit figures — served, no-shows, transfers, service time (call → end of a served visit) and
  ratings — go to the visit's service, counter, officer, day and call hour. A ticket transferred
  from A to B and served at B counts as a transfer in A and as served in B.
- A no-show is a ticket whose last call ended as no-show (a no-show that went back to the queue
  and was served later is not one).
- Figures are flagged when they rest on inferred finishes (Next pressed without Finish) or on
  tickets marked with a clock jump. A service closed by the daily reset has no usable end
  time: it counts as served (inferred) but is left out of the service-time figures.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from xephang.site import Site


def open_readonly(path: Path | str) -> sqlite3.Connection:
    """A read-only connection to the hub's ledger for reports: never blocks or disturbs the
    running hub (WAL lets it read while the hub writes)."""
    uri = f"file:{Path(path).resolve()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    db.execute("PRAGMA query_only=ON")
    return db

log = logging.getLogger(__name__)

SCHEMA = "xephang.report.v1"
GROUPINGS = ("service", "counter", "officer", "day", "hour")
GROUP_ALIASES = {"linh-vuc": "service", "quay": "counter", "can-bo": "officer", "ngay": "day", "gio": "hour",
                 "services": "service", "counters": "counter", "officers": "officer", "days": "day", "hours": "hour"}
WAIT_BINS_MIN = (5, 10, 15, 20, 30, 45, 60)  # upper edges (minutes); one more bin for 60+
MQTT_BUDGET_BYTES = 56 * 1024  # the reply envelope must stay under the bus's 64 KiB

QUARTER_ROMAN = ("I", "II", "III", "IV")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
             "October", "November", "December")


class ReportError(Exception):
    """Root of the report errors."""


class BadPeriod(ReportError, ValueError):
    """The period text is not one we understand."""


# what to write instead, in the head's words: the web's reports page and ``xephang report`` (whose
# own error, in English, named its grammar and Python's date check)
BAD_PERIOD_WORDS = (
    "Không đọc được kỳ báo cáo “{p}”. Hãy ghi: today (hôm nay), yesterday (hôm qua), một ngày "
    "2026-12-05, một tháng 2026-12, một quý 2026-Q4, một năm 2026, this-month, last-month, "
    "this-quarter, last-quarter, hoặc từ ngày đến ngày 2026-11-01..2026-11-30.",
    "The period “{p}” cannot be read. Write: today, yesterday, a day 2026-12-05, a month 2026-12, "
    "a quarter 2026-Q4, a year 2026, this-month, last-month, this-quarter, last-quarter, or from a "
    "day to a day 2026-11-01..2026-11-30.")


def bad_period_words(period: str, lang: str) -> str:
    return BAD_PERIOD_WORDS[1 if lang == "en" else 0].format(p=period[:40])


class BadGrouping(ReportError, ValueError):
    """The grouping is not one of GROUPINGS."""


class ReportTooLarge(ReportError, ValueError):
    """The report does not fit into one MQTT reply."""


class BadLanguage(ReportError, ValueError):
    """Reports speak vi or en."""


class LedgerMissing(ReportError, FileNotFoundError):
    """No ledger file where we were told to look."""


class LedgerUnreadable(ReportError, ValueError):
    """SQLite refused to read the ledger (corrupt, locked beyond the busy timeout, wrong file)."""


# ---------------------------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """An inclusive range of service days, with how it was asked for."""

    spec: str
    kind: str  # day | month | quarter | year | range
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def label(self, lang: str = "vi") -> str:
        """'Quý IV/2026', 'Tháng 11/2026', 'Ngày 23/11/2026' … (or English)."""
        f, la = self.first, self.last
        if self.kind == "day":
            return f"Ngày {f:%d/%m/%Y}" if lang == "vi" else f"{f:%d/%m/%Y}"
        if self.kind == "month":
            return f"Tháng {f.month:02d}/{f.year}" if lang == "vi" else f"{MONTHS_EN[f.month - 1]} {f.year}"
        if self.kind == "quarter":
            q = (f.month - 1) // 3
            return f"Quý {QUARTER_ROMAN[q]}/{f.year}" if lang == "vi" else f"Q{q + 1} {f.year}"
        if self.kind == "year":
            return f"Năm {f.year}" if lang == "vi" else f"Year {f.year}"
        return f"Từ {f:%d/%m/%Y} đến {la:%d/%m/%Y}" if lang == "vi" else f"{f:%d/%m/%Y} – {la:%d/%m/%Y}"

    def as_dict(self, lang: str) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "from": self.first.isoformat(), "to": self.last.isoformat(),
                "days": self.days, "label": self.label(lang)}


# ASCII digits only: \d also reads '２０２６' and '٢٠٢٦' (int() takes them), and the period as written
# names the head's downloaded file (webd), whose header takes latin-1 only: a 500 instead of a report
_DAY_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$", re.ASCII)
_MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})$", re.ASCII)
_QUARTER_RE = re.compile(r"^(\d{4})-?q([1-4])$", re.ASCII)
_YEAR_RE = re.compile(r"^(\d{4})$", re.ASCII)


def _month_end(y: int, m: int) -> date:
    return (date(y + (m == 12), m % 12 + 1, 1)) - timedelta(days=1)


def _one_period(text: str, today: date) -> tuple[str, date, date]:
    s = text.strip().lower()
    if s in ("today", "hom-nay", "hôm nay"):
        return "day", today, today
    if s in ("yesterday", "hom-qua"):
        d = today - timedelta(days=1)
        return "day", d, d
    if s in ("this-month", "last-month"):
        first = today.replace(day=1)
        if s == "last-month":
            first = (first - timedelta(days=1)).replace(day=1)
        return "month", first, _month_end(first.year, first.month)
    if s in ("this-quarter", "last-quarter"):
        q0 = (today.month - 1) // 3 * 3 + 1
        first = date(today.year, q0, 1)
        if s == "last-quarter":
            prev = first - timedelta(days=1)
            first = date(prev.year, (prev.month - 1) // 3 * 3 + 1, 1)
        return "quarter", first, _month_end(first.year, first.month + 2)
    try:
        if m := _DAY_RE.match(s):
            d = date(int(m[1]), int(m[2]), int(m[3]))
            return "day", d, d
        if m := _MONTH_RE.match(s):
            y, mo = int(m[1]), int(m[2])
            return "month", date(y, mo, 1), _month_end(y, mo)
        if m := _QUARTER_RE.match(s):
            y, q = int(m[1]), int(m[2])
            return "quarter", date(y, 3 * q - 2, 1), _month_end(y, 3 * q)
        if m := _YEAR_RE.match(s):
            y = int(m[1])
            return "year", date(y, 1, 1), date(y, 12, 31)
    except ValueError as exc:  # 2026-02-30, month 13
        raise BadPeriod(f"no such date in period {text!r}: {exc}") from None
    raise BadPeriod(f"period {text!r}: use today, yesterday, YYYY-MM-DD, YYYY-MM, YYYY-Qn, YYYY, "
                    "this-month, last-month, this-quarter, last-quarter or FROM..TO")


PERIOD_YEARS = (2000, 2999)  # no centre has a ticket outside them


def parse_period(spec: str, today: date) -> Period:
    """Parse '2026-11-23', '2026-11', '2026-Q4', '2026', 'today', '2026-11-01..2026-11-30' …

    ``today`` is the current service day (the hub's, after the daily reset). In a range each
    side may itself be a day, month or quarter: '2026-10..2026-11' is October and November.
    """
    spec = (spec or "today").strip()
    if ".." in spec:
        a, _, b = spec.partition("..")
        _, first, _ = _one_period(a, today)
        _, _, last = _one_period(b, today)
        if last < first:
            raise BadPeriod(f"period {spec!r} ends before it starts")
        kind = "range"
    else:
        kind, first, last = _one_period(spec, today)
    # the day after the last and the hour before the first must exist (Python's dates end at years 1 and 9999)
    if not (PERIOD_YEARS[0] <= first.year and last.year <= PERIOD_YEARS[1]):
        raise BadPeriod(f"period {spec!r}: only the years {PERIOD_YEARS[0]}–{PERIOD_YEARS[1]}")
    return Period(spec, kind, first, last)


def parse_grouping(group_by: str) -> str:
    """'service' | 'counter' | 'officer' | 'day' | 'hour' (Vietnamese slugs accepted too)."""
    g = (group_by or "service").strip().lower()
    g = GROUP_ALIASES.get(g, g)
    if g not in GROUPINGS:
        raise BadGrouping(f"group_by {group_by!r}: use one of {', '.join(GROUPINGS)}")
    return g


# ---------------------------------------------------------------------------------------------- statistics


def quantile(sorted_xs: list[float], p: float) -> float | None:
    """The ``p`` quantile by linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_xs)
    if n == 0:
        return None
    pos = p * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def summarize(xs: list[float]) -> dict[str, Any]:
    """Count, mean, median and 90th percentile of durations in seconds (0.1 s)."""
    if not xs:
        return {"n": 0, "mean": None, "p50": None, "p90": None}
    xs = sorted(xs)
    r1 = lambda v: round(v, 1)  # noqa: E731
    return {"n": len(xs), "mean": r1(sum(xs) / len(xs)), "p50": r1(quantile(xs, 0.5)), "p90": r1(quantile(xs, 0.9))}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class _Acc:
    """Running figures for one row (or the totals)."""

    __slots__ = ("issued", "voided", "expired", "open", "calls", "served", "no_shows", "transferred", "waits",
                 "within_ok", "svc", "ratings", "inferred", "closed_by_reset", "wait_jump", "svc_jump",
                 "transferred_in", "no_show_calls", "serving", "walks", "svc_arrived", "no_arrival", "out_of_order",
                 "inferred_arrived")

    def __init__(self, scale: int) -> None:
        self.issued = self.voided = self.expired = self.open = 0
        self.calls = self.served = self.no_shows = self.transferred = 0
        self.transferred_in = self.no_show_calls = self.serving = 0
        self.waits: list[float] = []
        self.within_ok = 0
        self.svc: list[float] = []
        self.ratings = [0] * (scale + 1)
        self.inferred = self.closed_by_reset = self.wait_jump = self.svc_jump = 0
        self.walks: list[float] = []
        self.svc_arrived: list[float] = []
        self.no_arrival = self.out_of_order = 0
        self.inferred_arrived = 0  # inferred finishes among the services timed from the arrival

    def merge(self, o: _Acc) -> None:
        for name in ("issued", "voided", "expired", "open", "calls", "served", "no_shows", "transferred",
                     "within_ok", "inferred", "closed_by_reset", "wait_jump", "svc_jump", "transferred_in",
                     "no_show_calls", "serving", "no_arrival", "out_of_order", "inferred_arrived"):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.waits.extend(o.waits)
        self.svc.extend(o.svc)
        self.walks.extend(o.walks)
        self.svc_arrived.extend(o.svc_arrived)
        self.ratings = [x + y for x, y in zip(self.ratings, o.ratings, strict=True)]

    def as_dict(self, scale: int, *, ticket_figures: bool = True, flow: bool = True) -> dict[str, Any]:
        """The row's figures. ``ticket_figures``: issued, voided and expired belong to this row
        (not by counter/officer; by hour, the hour of issue); ``flow``: the row follows tickets
        (by service, by day, totals), so transfers in and tickets still open belong to it and the
        row balances:
        issued + transferred in = served + no-shows + voided + expired + transferred out + open."""
        rated = sum(self.ratings[1:])
        satisfied = sum(self.ratings[4:]) if scale == 5 else self.ratings[3]
        nw = len(self.waits)
        return {
            "issued": self.issued if ticket_figures else None,
            "transferred_in": self.transferred_in if flow else None,
            "served": self.served, "no_shows": self.no_shows,
            "voided": self.voided if ticket_figures else None,
            "expired": self.expired if ticket_figures else None,
            "transferred": self.transferred, "open": self.open if flow else None, "calls": self.calls,
            "no_show_calls": self.no_show_calls, "serving": self.serving,
            "wait": summarize(self.waits),
            "within_target": {"n": nw, "ok": self.within_ok, "share": _share(self.within_ok, nw)},
            "service_time": summarize(self.svc),
            "walk": summarize(self.walks),
            "service_from_arrival": summarize(self.svc_arrived),
            "no_arrival": self.no_arrival,
            "out_of_order_calls": self.out_of_order,
            "ratings": {str(s): self.ratings[s] for s in range(1, scale + 1)},
            "rated": rated, "satisfaction": _share(satisfied, rated),
            "flags": {"inferred": self.inferred, "closed_by_reset": self.closed_by_reset,
                      "wait_clock_jump": self.wait_jump, "service_clock_jump": self.svc_jump,
                      "inferred_arrived": self.inferred_arrived},
        }


# ---------------------------------------------------------------------------------------------- the report


class _Calendar:
    """Service days ↔ epoch seconds in the site's zone, cached per day (a quarter has ~92)."""

    def __init__(self, site: Site) -> None:
        self.tz = ZoneInfo(site.site.timezone)
        self.reset: dtime = site.site.daily_reset
        self.close_at: dtime = site.hours.close
        self.open_at: dtime = site.hours.open
        self._start: dict[str, float] = {}

    def service_day(self, ts: float) -> date:
        r = self.reset
        local = datetime.fromtimestamp(ts, self.tz) - timedelta(hours=r.hour, minutes=r.minute, seconds=r.second)
        return local.date()

    def start(self, day: str | date) -> float:
        """Epoch seconds when service day ``day`` begins (its reset time)."""
        key = day if isinstance(day, str) else day.isoformat()
        v = self._start.get(key)
        if v is None:
            d = date.fromisoformat(key)
            v = self._start[key] = datetime.combine(d, self.reset, self.tz).timestamp()
        return v

    def close(self, day: str) -> float:
        """Epoch seconds of the centre's closing time on service day ``day``."""
        return datetime.combine(date.fromisoformat(day), self.close_at, self.tz).timestamp()

    def opening(self, day: str) -> tuple[float, float]:
        """Epoch seconds of the centre's opening and closing time on service day ``day``."""
        d = date.fromisoformat(day)
        return datetime.combine(d, self.open_at, self.tz).timestamp(), self.close(day)

    def end(self, day: str | date) -> float:
        d = date.fromisoformat(day) if isinstance(day, str) else day
        return self.start(d + timedelta(days=1))

    def offset(self, day: str) -> float:
        """The zone's UTC offset (seconds) on service day ``day``, taken at noon (one per day)."""
        noon = datetime.combine(date.fromisoformat(day), dtime(12), self.tz)
        return noon.utcoffset().total_seconds()  # type: ignore[union-attr]


_TICKET_SQL = ("SELECT id, day, first_service, service, state, issued_at, called_at, clock_jump "
               "FROM tickets WHERE day BETWEEN ? AND ?")
# visits are written in call order, so the rowid range of the period's calls (found through the
# called_at index) is a sequential scan; the day test then keeps exactly the period's visits
_VISIT_RANGE_SQL = "SELECT MIN(id), MAX(id) FROM visits WHERE called_at >= ? AND called_at < ?"
_VISIT_SQL = ("SELECT v.ticket_id, v.day, v.counter, v.officer, v.service, v.called_at, v.ended_at, v.outcome, "
              "v.inferred, t.state, t.rating, t.clock_jump, {arrival} FROM visits v LEFT JOIN tickets t ON t.id = v.ticket_id "
              "WHERE v.id BETWEEN ? AND ? AND v.day BETWEEN ? AND ? ORDER BY v.id")
_ARRIVAL_COLS = "v.arrived_at, v.call_reason"  # ledger schema 2; a ledger no hub has opened since reads NULL
_PAUSE_SQL = "SELECT counter, day, started_at, ended_at FROM pauses WHERE day BETWEEN ? AND ?"


class _PerDay(dict):  # type: ignore[type-arg]
    """day string → value, computed once on first use."""

    def __init__(self, fn: Callable[[str], float]) -> None:
        super().__init__()
        self.fn = fn

    def __missing__(self, key: str) -> float:
        v = self[key] = self.fn(key)
        return v


@dataclass
class _Build:
    """What the passes of ``build_report`` share: the period and grouping, the calendar, the rows
    being filled (``groups``) and what one pass leaves for the next."""

    site: Site
    cal: _Calendar
    per: Period
    group: str
    lang: str
    now: float
    today_s: str
    first_s: str
    last_s: str
    gcode: int  # GROUPINGS.index(group): 0 service, 1 counter, 2 officer, 3 day, 4 hour
    scale: int
    day_end: _PerDay
    day_close: _PerDay
    offset: _PerDay
    groups: dict[Any, _Acc] = field(default_factory=dict)
    # left by the visits pass
    first_key: dict[int, Any] = field(default_factory=dict)  # ticket → row of its first call
    sent_on: set[int] = field(default_factory=set)  # tickets whose last visit so far transferred them
    transfers: int = 0
    busy: dict[int, float] = field(default_factory=dict)
    calls_at: dict[int, int] = field(default_factory=dict)
    officer_at: dict[int, str] = field(default_factory=dict)  # who the ledger says sat at each counter (latest call)
    spans: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    # left by the tickets pass
    arrivals: list[int] = field(default_factory=lambda: [0] * 24)
    days_seen: set[str] = field(default_factory=set)
    hist: dict[str, list[int]] = field(default_factory=dict)

    @property
    def follows_tickets(self) -> bool:
        """Rows by service or day: a ticket moves between them only by transfer."""
        return self.gcode in (0, 3)

    def acc(self, key: Any) -> _Acc:
        a = self.groups.get(key)
        if a is None:
            a = self.groups[key] = _Acc(self.scale)
        return a


def build_report(db: sqlite3.Connection, site: Site, *, period: str | Period = "today", group_by: str = "service",
                 lang: str = "vi", now: float) -> dict[str, Any]:
    """Compute the report for ``period`` grouped by ``group_by`` from a ledger connection.

    ``now`` (epoch seconds) decides what 'today' means and where open pauses and services end.
    Returns the JSON-able report dict (schema ``xephang.report.v1``). Three passes over the
    ledger — visits, tickets, pauses — then the totals and the counters' load.
    """
    if lang not in ("vi", "en"):
        raise BadLanguage(f"lang {lang!r}: use vi or en")
    cal = _Calendar(site)
    today = cal.service_day(now)
    per = period if isinstance(period, Period) else parse_period(period, today)
    group = parse_grouping(group_by)
    b = _Build(site=site, cal=cal, per=per, group=group, lang=lang, now=now, today_s=today.isoformat(),
               first_s=per.first.isoformat(), last_s=per.last.isoformat(), gcode=GROUPINGS.index(group),
               scale=site.rating_scale, day_end=_PerDay(cal.end), day_close=_PerDay(cal.close),
               offset=_PerDay(cal.offset))
    _visits_pass(db, b)
    _tickets_pass(db, b)
    total = _Acc(b.scale)
    for a in b.groups.values():
        total.merge(a)
    total.transferred_in = b.transfers  # every transfer lands in some service, whatever the grouping
    b.groups.pop(None, None)
    load = _counter_load(db, b)
    return _assemble(b, total, load)


def _visits_pass(db: sqlite3.Connection, b: _Build) -> None:
    """Visits: calls, served, no-shows, transfers, walks, service time, ratings, and each
    counter's calls, busy time and working span."""
    gcode, now, today_s = b.gcode, b.now, b.today_s
    final_no_show: dict[int, Any] = {}
    lo, hi = db.execute(_VISIT_RANGE_SQL, (b.cal.start(b.per.first), b.cal.end(b.per.last))).fetchone()
    have = {r[1] for r in db.execute("PRAGMA table_info(visits)")}
    sql = _VISIT_SQL.format(arrival=_ARRIVAL_COLS if "arrived_at" in have else "NULL, NULL")
    visits = db.execute(sql, (lo, hi, b.first_s, b.last_s)) if lo is not None else ()
    for tid, vday, counter, officer, vsvc, called, ended, outcome, inferred, tstate, rating, tjump, arrived, why in visits:
        key = (vsvc if gcode == 0 else counter if gcode == 1 else (officer or "—") if gcode == 2
               else vday if gcode == 3 else int((called + b.offset[vday]) // 3600) % 24)
        if tid not in b.first_key:
            b.first_key[tid] = key
        a = b.acc(key)
        a.calls += 1
        if why is not None:
            a.out_of_order += 1
        if arrived is not None and arrived >= called:
            a.walks.append(arrived - called)
        if tid in b.sent_on:
            b.sent_on.discard(tid)
            if b.follows_tickets:
                a.transferred_in += 1
        b.calls_at[counter] = b.calls_at.get(counter, 0) + 1
        b.officer_at[counter] = officer
        eod = b.day_end[vday]
        if outcome is None:
            if vday < today_s:  # the ledger kept a service open across the daily reset: served, end unknown
                outcome, inferred, ended = "served", 1, eod
            else:
                ended = max(called, now)  # being served right now
                a.serving += 1
        reset_closed = inferred and ended >= eod
        # nobody ended it: count the counter as open until closing time, not until the reset
        span_end = max(called, b.day_close[vday]) if reset_closed else ended
        sp = b.spans.get((counter, vday))
        if sp is None:
            b.spans[(counter, vday)] = [called, span_end]
        else:
            if called < sp[0]:
                sp[0] = called
            if span_end > sp[1]:
                sp[1] = span_end
        if not reset_closed and ended > called:
            b.busy[counter] = b.busy.get(counter, 0.0) + (ended - called)
        if outcome == "served":
            a.served += 1
            if inferred:
                a.inferred += 1
            if reset_closed:
                a.closed_by_reset += 1
            else:
                dur = ended - called
                if tjump or dur < 0:
                    a.svc_jump += 1
                if dur >= 0:
                    a.svc.append(dur)
                    # the service proper starts when the citizen arrived; without a usable arrival
                    # (never pressed, or after the end) the visit is flagged "no arrival recorded"
                    if arrived is not None and called <= arrived <= ended:
                        a.svc_arrived.append(ended - arrived)
                        a.inferred_arrived += 1 if inferred else 0
                    else:
                        a.no_arrival += 1
            if rating and 1 <= rating <= b.scale:
                a.ratings[rating] += 1
        elif outcome == "no-show":
            a.no_show_calls += 1
            if tstate == "no-show":
                final_no_show[tid] = key  # the last no-show call of a ticket that ended so
        elif outcome == "transferred":
            a.transferred += 1
            b.transfers += 1
            b.sent_on.add(tid)
    for key in final_no_show.values():
        b.groups[key].no_shows += 1


def _tickets_pass(db: sqlite3.Connection, b: _Build) -> None:
    """Tickets: issued, voided, expired, still open, waits, the target share, arrivals by hour."""
    gcode, today_s = b.gcode, b.today_s
    target_s = {s.id: s.target_wait_min * 60 for s in b.site.services}
    bins_s = [m * 60 for m in WAIT_BINS_MIN]
    for tid, tday, svc_id, cur_svc, state, issued, called, jump in db.execute(_TICKET_SQL, (b.first_s, b.last_s)):
        hr = int((issued + b.offset[tday]) // 3600) % 24
        b.arrivals[hr] += 1
        b.days_seen.add(tday)
        key = (svc_id if gcode == 0 else tday if gcode == 3 else hr if gcode == 4
               else b.first_key.get(tid))  # by counter/officer: who called first; None = never called
        a = b.acc(key)
        a.issued += 1
        # how the ticket ended goes where it was then: a transferred ticket ends in its new service
        end = a
        if gcode == 0 and cur_svc and cur_svc != svc_id:
            end = b.acc(cur_svc)
        if tid in b.sent_on and b.follows_tickets:  # transferred, not called again: waits (or expired) there
            end.transferred_in += 1
        if state == "voided":
            end.voided += 1
        elif state == "expired" or (state == "waiting" and tday < today_s):
            end.expired += 1  # a waiting ticket of a past day: the reset expired it
        elif (state == "waiting" or state == "called") and tday >= today_s:
            end.open += 1
        if called is None:
            continue
        w = called - issued
        if jump or w < 0:
            a.wait_jump += 1
        if w >= 0:
            a.waits.append(w)
            if w <= target_s.get(svc_id, w):
                a.within_ok += 1
            h = b.hist.get(svc_id)
            if h is None:
                h = b.hist[svc_id] = [0] * (len(bins_s) + 1)
            h[bisect_right(bins_s, w)] += 1


def _counter_load(db: sqlite3.Connection, b: _Build) -> list[dict[str, Any]]:
    """Pauses, then each counter's open hours split into serving, idle, paused and closed."""
    site, now, today_s = b.site, b.now, b.today_s
    spans = b.spans
    paused: dict[int, float] = {}
    n_pauses: dict[int, int] = {}
    for counter, pday, started, ended in db.execute(_PAUSE_SQL, (b.first_s, b.last_s)):
        eod = b.day_end[pday]
        if ended is None and pday >= today_s:
            stop = min(now, eod)  # paused right now
        elif ended is None or ended >= eod:
            # nobody resumed it before the reset: it counts until closing time
            stop = max(started, b.day_close[pday])
        else:
            stop = ended
        if stop > started:
            paused[counter] = paused.get(counter, 0.0) + (stop - started)
        n_pauses[counter] = n_pauses.get(counter, 0) + 1
        sp = spans.setdefault((counter, pday), [started, stop])
        sp[0], sp[1] = min(sp[0], started), max(sp[1], stop)
    span_total: dict[int, float] = {}
    for (counter, _d), (s0, s1) in spans.items():
        span_total[counter] = span_total.get(counter, 0.0) + max(0.0, s1 - s0)
    # each counter's day: the centre's opening hours (until now, today) joined with the time it
    # worked outside them; the part of it the counter was not working is "closed"
    open_days = sorted(b.days_seen | {d for _c, d in spans})
    numbers = sorted(set(b.calls_at) | set(paused) | {c.number for c in site.counters})
    hours_s: dict[int, float] = {}
    outside_s: dict[int, float] = {}
    for d in open_days:
        h0, h1 = b.cal.opening(d)
        if d >= today_s:
            h1 = max(h0, min(h1, now))
        for n in numbers:
            sp = spans.get((n, d))
            w0, w1 = (min(h0, sp[0]), max(h1, sp[1])) if sp else (h0, h1)
            hours_s[n] = hours_s.get(n, 0.0) + (h1 - h0)
            outside_s[n] = outside_s.get(n, 0.0) + (w1 - w0) - (h1 - h0)
    load = []
    for n in numbers:
        span = span_total.get(n, 0.0)
        busy, ps = b.busy.get(n, 0.0), paused.get(n, 0.0)
        # who the ledger says sat there in the period (a roster changed since does not rewrite it)
        load.append({"counter": n, "label": _counter_label(site, n, b.lang),
                     "officer": b.officer_at.get(n) or _officer(site, n),
                     "visits": b.calls_at.get(n, 0), "busy_s": round(busy, 1), "paused_s": round(ps, 1),
                     "idle_s": round(max(0.0, span - busy - ps), 1), "pauses": n_pauses.get(n, 0),
                     "hours_s": round(hours_s.get(n, 0.0), 1), "outside_s": round(outside_s.get(n, 0.0), 1),
                     "closed_s": round(max(0.0, hours_s.get(n, 0.0) + outside_s.get(n, 0.0) - max(span, busy + ps)), 1)})
    return load


def _assemble(b: _Build, total: _Acc, load: list[dict[str, Any]]) -> dict[str, Any]:
    """The report dict (schema ``xephang.report.v1``) from the passes' results."""
    site, lang, scale, now = b.site, b.lang, b.scale, b.now
    services = {s.id: s for s in site.services}
    return {
        "schema": SCHEMA,
        "site": {"slug": site.site.slug, "name": site.site.name_en if lang == "en" and site.site.name_en
                 else site.site.name_vi},
        "period": b.per.as_dict(lang),
        "group_by": b.group,
        "lang": lang,
        "generated_at": round(now, 3),
        "generated_local": datetime.fromtimestamp(now, b.cal.tz).strftime("%d/%m/%Y %H:%M"),
        "rating_scale": scale,
        "rows": _rows(site, b.group, b.groups, scale, lang),
        "totals": {"key": None, "label": "Tổng cộng" if lang == "vi" else "Total", **total.as_dict(scale)},
        "arrivals_by_hour": b.arrivals,
        "open_days": len(b.days_seen),
        "busiest_hours": busiest_hours(b.arrivals, len(b.days_seen)),
        "wait_bins_min": list(WAIT_BINS_MIN),
        "wait_hist": [{"service": sid, "label": _service_label(site, sid, lang),
                       "target_min": services[sid].target_wait_min if sid in services else None, "counts": b.hist[sid]}
                      for sid in _ordered(list(b.hist), [s.id for s in site.services])],
        "counter_load": load,
        "opening_hours": [site.hours.open.strftime("%H:%M"), site.hours.close.strftime("%H:%M")],
    }


def reconcile(report: dict[str, Any]) -> list[str]:
    """Every identity the report's tables must satisfy; returns what does not add up (empty: all do).

    - tickets (rows by service or day, and the totals): issued + transferred in = served +
      no-shows + voided + expired + transferred out + open;
    - calls (every row and the totals): calls = served + no-show presses + transferred out +
      being served now; final no-shows ≤ no-show presses;
    - counters: opening hours + hours outside them = serving + idle + paused + closed;
    - arrivals (every row and the totals): services timed = timed from arrival + no arrival
      recorded; calls out of order ≤ calls.
    """
    bad: list[str] = []

    def ticket_flow(r: dict[str, Any], where: str) -> None:
        if r.get("open") is None or r.get("issued") is None:
            return
        into = r["issued"] + r["transferred_in"]
        out = r["served"] + r["no_shows"] + r["voided"] + r["expired"] + r["transferred"] + r["open"]
        if into != out:
            bad.append(f"{where}: issued {r['issued']} + transferred in {r['transferred_in']} = {into}, but served "
                       f"{r['served']} + no-shows {r['no_shows']} + voided {r['voided']} + expired {r['expired']} + "
                       f"transferred out {r['transferred']} + open {r['open']} = {out}")

    def calls(r: dict[str, Any], where: str) -> None:
        if r.get("no_show_calls") is None:
            return
        ended = r["served"] + r["no_show_calls"] + r["transferred"] + r["serving"]
        if r["calls"] != ended:
            bad.append(f"{where}: calls {r['calls']} ≠ served {r['served']} + no-show presses {r['no_show_calls']} + "
                       f"transferred out {r['transferred']} + being served {r['serving']} = {ended}")
        if r["no_shows"] > r["no_show_calls"]:
            bad.append(f"{where}: final no-shows {r['no_shows']} > no-show presses {r['no_show_calls']}")

    def arrivals(r: dict[str, Any], where: str) -> None:
        if r.get("no_arrival") is None:
            return
        timed, from_arrival = r["service_time"]["n"], r["service_from_arrival"]["n"]
        if timed != from_arrival + r["no_arrival"]:
            bad.append(f"{where}: services timed {timed} ≠ timed from arrival {from_arrival} + no arrival recorded "
                       f"{r['no_arrival']}")
        if r["out_of_order_calls"] > r["calls"]:
            bad.append(f"{where}: calls out of order {r['out_of_order_calls']} > calls {r['calls']}")

    for r in report["rows"]:
        ticket_flow(r, f"row {r['label']}")
        calls(r, f"row {r['label']}")
        arrivals(r, f"row {r['label']}")
    ticket_flow(report["totals"], "total")
    calls(report["totals"], "total")
    arrivals(report["totals"], "total")
    if report["group_by"] in ("service", "day"):
        for k in ("issued", "transferred_in", "served", "no_shows", "voided", "expired", "transferred", "open", "calls",
                  "no_arrival", "out_of_order_calls"):
            rows = sum(r.get(k) or 0 for r in report["rows"])
            if rows != report["totals"].get(k):
                bad.append(f"total {k} {report['totals'].get(k)} ≠ sum of the rows {rows}")
    if report["totals"].get("transferred_in") not in (None, report["totals"].get("transferred")):
        bad.append("transfers in ≠ transfers out in the total")
    for c in report.get("counter_load") or []:
        if "hours_s" not in c:
            continue
        day = c["hours_s"] + c["outside_s"]
        parts = c["busy_s"] + c["idle_s"] + c["paused_s"] + c["closed_s"]
        if abs(day - parts) > 1.0:  # each figure is rounded to 0.1 s
            bad.append(f"{c['label']}: opening {c['hours_s']} + outside {c['outside_s']} s ≠ serving {c['busy_s']} + "
                       f"idle {c['idle_s']} + paused {c['paused_s']} + closed {c['closed_s']} s")
    return bad


def _ordered(keys: list[Any], preferred: list[Any]) -> list[Any]:
    pos = {k: i for i, k in enumerate(preferred)}
    return sorted(keys, key=lambda k: (pos.get(k, len(pos)), str(k)))


def _service_label(site: Site, sid: str, lang: str) -> str:
    try:
        return site.service(sid).label(lang)
    except KeyError:
        return sid


def _counter_label(site: Site, n: int, lang: str) -> str:
    try:
        return site.counter(n).label(lang)
    except KeyError:
        return f"Quầy {n}" if lang == "vi" else f"Counter {n}"


def _day_label(day: str, lang: str) -> str:
    from xephang.clock import WEEKDAYS_EN

    d = date.fromisoformat(day)
    wd = d.weekday()
    short = ("CN" if wd == 6 else f"T{wd + 2}") if lang == "vi" else WEEKDAYS_EN[wd][:3]  # T2 … T7, CN
    return f"{short} {d:%d/%m/%Y}"


def _rows(site: Site, group: str, groups: dict[Any, _Acc], scale: int, lang: str) -> list[dict[str, Any]]:
    keys = list(groups)
    if group == "service":
        keys = _ordered(list(set(keys) | {s.id for s in site.services}), [s.id for s in site.services])
        label = lambda k: _service_label(site, k, lang)  # noqa: E731
    elif group == "counter":
        keys = sorted(set(keys) | {c.number for c in site.counters})
        label = lambda k: _counter_label(site, k, lang)  # noqa: E731
    elif group == "officer":
        keys = _ordered(keys, [site.officer_name(c.number) for c in site.counters])
        label = str
    elif group == "day":
        keys = sorted(keys)
        label = lambda k: _day_label(k, lang)  # noqa: E731
    else:
        keys = sorted(keys)
        label = lambda k: f"{k:02d}:00–{(k + 1) % 24:02d}:00"  # noqa: E731
    ticket_figures = group not in ("counter", "officer")
    flow = group in ("service", "day")
    out = []
    for k in keys:
        a = groups.get(k) or _Acc(scale)
        out.append({"key": k, "label": label(k), **a.as_dict(scale, ticket_figures=ticket_figures, flow=flow)})
    return out


def busiest_hours(arrivals: list[int], days: int, top: int = 3) -> list[dict[str, Any]]:
    """The ``top`` hours of day with most arrivals (ties: the earlier hour), with per-day means."""
    order = sorted((h for h in range(24) if arrivals[h]), key=lambda h: (-arrivals[h], h))[:top]
    return [{"hour": h, "issued": arrivals[h], "per_day": round(arrivals[h] / days, 1) if days else None}
            for h in order]


def _officer(site: Site, n: int) -> str:
    try:
        return site.officer_name(n)
    except KeyError:
        return ""


# ---------------------------------------------------------------------------------------------- entry points


def report_from_ledger(ledger_path: Path | str, site: Site, *, period: str | Period = "today",
                       group_by: str = "service", lang: str = "vi", now: float) -> dict[str, Any]:
    """Open the ledger read-only, build the report, close the connection."""
    path = Path(ledger_path)
    if not path.is_file():
        raise LedgerMissing(f"no ledger at {path}")
    db = open_readonly(path)
    try:
        return build_report(db, site, period=period, group_by=group_by, lang=lang, now=now)
    finally:
        db.close()


def _size(report: dict[str, Any]) -> int:
    return len(json.dumps(report, ensure_ascii=False).encode())


def _flatten(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v  # a value, or an empty object kept as one
    return out


def pack_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows as one table: each key path once (``columns``), each row its values in that order
    (``values``), and the ``[row, column]`` pairs a row does not have (``missing``); ``unpack_rows``
    gives the same rows back. A row's keys take ~60 % of a report by day; a quarter by day then fits
    one MQTT reply."""
    columns: dict[tuple[str, ...], int] = {}
    flat = [_flatten(r) for r in rows]
    for f in flat:
        for path in f:
            columns.setdefault(path, len(columns))
    order = list(columns)
    return {"columns": [list(p) for p in order],
            "values": [[f.get(p) for p in order] for f in flat],
            "missing": [[i, columns[p]] for i, f in enumerate(flat) for p in order if p not in f]}


def unpack_rows(packed: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows ``pack_rows`` packed (raises ValueError on a table that is not one)."""
    try:
        columns = [tuple(str(k) for k in c) for c in packed["columns"]]
        holes = {(int(i), int(j)) for i, j in packed["missing"]}
        rows: list[dict[str, Any]] = []
        for i, values in enumerate(packed["values"]):
            if len(values) != len(columns):
                raise ValueError(f"row {i} has {len(values)} values for {len(columns)} columns")
            row: dict[str, Any] = {}
            for j, (path, v) in enumerate(zip(columns, values, strict=True)):
                if (i, j) in holes:
                    continue
                node = row
                for k in path[:-1]:
                    node = node.setdefault(k, {})
                node[path[-1]] = v
            rows.append(row)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"packed rows unreadable: {exc!r}") from None
    return rows


def unpack_report(report: dict[str, Any]) -> dict[str, Any]:
    """A report as the hub sent it (``rows_packed`` when the asker said it reads them) with its
    ``rows`` as ``build_report`` made them; any other report as it is."""
    if "rows_packed" not in report:
        return report
    out = {k: v for k, v in report.items() if k != "rows_packed"}
    out["rows"] = unpack_rows(report["rows_packed"])
    return out


def compact(report: dict[str, Any], budget: int = MQTT_BUDGET_BYTES, *, packed: bool = False) -> dict[str, Any]:
    """The report made to fit ``budget`` bytes of JSON: as it is; else, for an asker that reads them
    (``packed``), its rows packed as one table (``rows_packed``, nothing lost); else without the
    per-row rating counts (``"compact": true``, the rows' other figures kept; packed too when the
    asker reads it); else refused (``ReportTooLarge``)."""
    if _size(report) <= budget:
        return report
    if packed:
        whole = {k: v for k, v in report.items() if k != "rows"}
        whole["rows_packed"] = pack_rows(report["rows"])
        if _size(whole) <= budget:
            return whole
    slim = dict(report)
    slim["rows"] = [{k: v for k, v in r.items() if k != "ratings"} for r in report["rows"]]
    slim["compact"] = True
    if packed:
        slim["rows_packed"] = pack_rows(slim.pop("rows"))
    size = _size(slim)
    if size > budget:
        raise ReportTooLarge(f"report of {len(report['rows'])} rows is {size} bytes, too large for one MQTT reply; "
                             "ask for a shorter period or another grouping")
    return slim


def report_over_mqtt(ledger_path: Path | str, site: Site, *, period: str, group_by: str, lang: str,
                     now: float, packed: bool = False) -> dict[str, Any]:
    """The hub's ``report`` action: the report dict, sized for one MQTT reply (< 64 KiB).

    ``packed``: the asker reads ``rows_packed`` (``unpack_report``). Raises ``ValueError``
    subclasses (bad period, grouping; ``ReportTooLarge``) that the hub turns into an error reply
    (``invalid``; ``too-large``).
    """
    try:
        rep = report_from_ledger(ledger_path, site, period=period, group_by=group_by, lang=lang, now=now)
    except sqlite3.Error as exc:
        # the hub turns ValueError into an error reply; anything else would stop its loop
        log.error("report over MQTT: ledger %s unreadable: %s", ledger_path, exc)
        raise LedgerUnreadable(f"ledger unreadable: {exc}") from exc
    return compact(rep, packed=packed)
