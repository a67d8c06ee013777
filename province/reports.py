"""Province reports: the centre report's figures, computed in SQL over every centre.

The definitions are those of ``xephang_reports.build`` (docs/reports.md), so a province row for one
centre equals that centre's own report, and counts add up across centres:

- ticket figures (issued, voided, expired, open, the wait = issue → first call, the share
  called within the service's target) go to the ticket's issue day and first service;
- visit figures (calls, served, no-shows, transfers, service time = call → end of a served
  visit, ratings) go to the visit's day and service; a no-show is the last call of a ticket
  whose final state is no-show; a visit closed by the daily reset counts as served (inferred)
  but not in the service times;
- means, medians and P90s are pooled over every visit/ticket of the row (``percentile_cont``
  is the same linear interpolation as ``xephang_reports.build.quantile``), rounded to 0.1 s as there.

The centre ledger's clock-jump marks do not travel in events, so those two flags are 0 here.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from province import rollups
from xephang.terminal import shown
from xephang_reports.build import Period, parse_period

log = logging.getLogger(__name__)

SCHEMA = "xephang.province-report.v1"
DIMENSIONS = ("site", "service", "day", "month", "quarter")
DIM_ALIASES = {"trung-tam": "site", "xa": "site", "sites": "site", "linh-vuc": "service", "services": "service",
               "ngay": "day", "days": "day", "thang": "month", "quy": "quarter"}
DIM_HEADINGS = {"site": ("Trung tâm", "Centre"), "service": ("Lĩnh vực", "Service area"), "day": ("Ngày", "Day"),
                "month": ("Tháng", "Month"), "quarter": ("Quý", "Quarter")}


class ProvinceReportError(ValueError):
    """A grouping or period the province report does not understand."""


def parse_dimensions(group_by: str) -> list[str]:
    """'site', 'site,service', 'service,month' … (Vietnamese slugs accepted)."""
    dims = []
    for part in (group_by or "site").split(","):
        d = DIM_ALIASES.get(part.strip().lower(), part.strip().lower())
        if d not in DIMENSIONS:
            raise ProvinceReportError(f"group_by {group_by!r}: use {', '.join(DIMENSIONS)} (comma-separated)")
        if d not in dims:
            dims.append(d)
    return dims


def _key_sql(dim: str, alias: str, service_col: str) -> str:
    return {"site": f"{alias}.site", "service": f"{alias}.{service_col}", "day": f"{alias}.day",
            "month": f"date_trunc('month', {alias}.day)::date", "quarter": f"date_trunc('quarter', {alias}.day)::date"}[dim]


# per site: today's service day and where each service day ends, in the centre's own zone
_SITE_CAL = """
site_cal AS (
    SELECT s.site, s.rating_scale, s.timezone, s.daily_reset, s.close_time,
           ((to_timestamp(%(now)s) AT TIME ZONE s.timezone) - s.daily_reset::interval)::date AS today
    FROM sites s
    UNION ALL
    -- a centre whose site file was never registered: the defaults of a Vietnamese centre
    SELECT x.site, 5, 'Asia/Ho_Chi_Minh', time '04:00', time '17:00',
           ((to_timestamp(%(now)s) AT TIME ZONE 'Asia/Ho_Chi_Minh') - interval '4 hours')::date
    FROM (SELECT DISTINCT site FROM {cal_source} WHERE day BETWEEN %(first)s AND %(last)s) x
    WHERE NOT EXISTS (SELECT 1 FROM sites s WHERE s.site = x.site)
)"""


def _ticket_sql(keys: list[str]) -> str:
    ks = [_key_sql(d, "t", "first_service") for d in keys]
    sel = ", ".join(f"{k} AS k{i}" for i, k in enumerate(ks))
    grouping = f"GROUPING SETS (({', '.join(ks)}), ())" if ks else "()"
    return f"""
WITH {_SITE_CAL},
tw AS (
    SELECT t.*, c.today,
           CASE WHEN t.called_at - t.issued_at >= 0 THEN t.called_at - t.issued_at END AS w,
           ss.target_wait_min
    FROM tickets t JOIN site_cal c ON c.site = t.site
    LEFT JOIN site_services ss ON ss.site = t.site AND ss.service = t.first_service
    WHERE t.day BETWEEN %(first)s AND %(last)s {{site_filter}}
)
SELECT {sel + ',' if sel else ''} {'GROUPING(' + ', '.join(ks) + ')' if ks else '0'} AS g,
    count(*) AS issued,
    count(*) FILTER (WHERE state = 'voided') AS voided,
    count(w) AS wait_n, avg(w) AS wait_mean, sum(w) AS wait_sum,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS wait_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY w) AS wait_p90,
    count(w) FILTER (WHERE w <= COALESCE(target_wait_min * 60, w)) AS within_ok
FROM tw t
GROUP BY {grouping}
"""


# the tickets that can still end or have ended without service: the few a report must look at for
# "expired" and "open" (partial indexes tickets_unsettled and tickets_expired find them)
_ENDING = "{a}.state IN ('waiting', 'called', 'expired')"


def _ticket_end_sql(keys: list[str]) -> str:
    """How tickets ended, where they were then (a transferred ticket ends in its new service):
    expired and still open. Only the tickets that can be either are read (``_ENDING``)."""
    ks = [_key_sql(d, "t", "service") for d in keys]
    sel = ", ".join(f"{k} AS k{i}" for i, k in enumerate(ks))
    grouping = f"GROUPING SETS (({', '.join(ks)}), ())" if ks else "()"
    return f"""
WITH {_SITE_CAL}
SELECT {sel + ',' if sel else ''} {'GROUPING(' + ', '.join(ks) + ')' if ks else '0'} AS g,
    count(*) FILTER (WHERE state = 'expired' OR (state = 'waiting' AND day < today)) AS expired,
    count(*) FILTER (WHERE state IN ('waiting', 'called') AND day >= today) AS open
FROM tickets t JOIN site_cal c ON c.site = t.site
WHERE t.day BETWEEN %(first)s AND %(last)s AND {_ENDING.format(a='t')} {{site_filter}}
GROUP BY {grouping}
"""


def _transfer_in_sql(keys: list[str]) -> str:
    """Transfers by the service they sent the ticket to: the service of its next call, or the
    ticket's service when it was not called again. Only transferred tickets' visits are read."""
    ks = [_key_sql(d, "x", "target") for d in keys]
    sel = ", ".join(f"{k} AS k{i}" for i, k in enumerate(ks))
    grouping = f"GROUPING SETS (({', '.join(ks)}), ())" if ks else "()"
    return f"""
WITH moved AS (
    SELECT DISTINCT v.site, v.ticket_id FROM visits v
    WHERE v.outcome = 'transferred' AND v.day BETWEEN %(first)s AND %(last)s {{site_filter}}
), vn AS (
    SELECT v.site, v.day, v.outcome, COALESCE(lead(v.service) OVER w, t.service) AS target
    FROM visits v JOIN moved m ON m.site = v.site AND m.ticket_id = v.ticket_id
    JOIN tickets t ON t.site = v.site AND t.ticket_id = v.ticket_id
    WHERE v.day BETWEEN %(first)s AND %(last)s
    WINDOW w AS (PARTITION BY v.site, v.ticket_id ORDER BY v.called_at, v.call_rev)
)
SELECT {sel + ',' if sel else ''} {'GROUPING(' + ', '.join(ks) + ')' if ks else '0'} AS g,
    count(*) AS transferred_in
FROM vn x WHERE x.outcome = 'transferred'
GROUP BY {grouping}
"""


def _visit_sql(keys: list[str]) -> str:
    ks = [_key_sql(d, "v", "service") for d in keys]
    sel = ", ".join(f"{k} AS k{i}" for i, k in enumerate(ks))
    grouping = f"GROUPING SETS (({', '.join(ks)}), ())" if ks else "()"
    return f"""
WITH {_SITE_CAL},
vv AS (
    SELECT v.*, t.state AS tstate, t.rating, t.last_call_rev, c.rating_scale,
           -- a visit the ledger kept open across the reset of a past day: served, end unknown
           CASE WHEN v.outcome IS NULL AND v.day < c.today THEN 'served' ELSE v.outcome END AS outc,
           (v.inferred OR (v.outcome IS NULL AND v.day < c.today)) AS inf,
           (v.outcome IS NULL AND v.day < c.today)
             OR (v.inferred AND v.ended_at >= extract(epoch FROM ((v.day + 1) + c.daily_reset) AT TIME ZONE c.timezone))
             AS reset_closed
    FROM visits v JOIN tickets t ON t.site = v.site AND t.ticket_id = v.ticket_id
    JOIN site_cal c ON c.site = v.site
    WHERE v.day BETWEEN %(first)s AND %(last)s {{site_filter}}
), vs AS (
    SELECT *, CASE WHEN outc = 'served' AND NOT reset_closed AND ended_at - called_at >= 0
                   THEN ended_at - called_at END AS dur,
           (outc = 'served' AND rating BETWEEN 1 AND rating_scale) AS has_rating
    FROM vv
)
SELECT {sel + ',' if sel else ''} {'GROUPING(' + ', '.join(ks) + ')' if ks else '0'} AS g,
    count(*) AS calls,
    count(*) FILTER (WHERE outc = 'served') AS served,
    count(*) FILTER (WHERE outc = 'served' AND inf) AS inferred,
    count(*) FILTER (WHERE outc = 'served' AND reset_closed) AS closed_by_reset,
    count(*) FILTER (WHERE outc = 'transferred') AS transferred,
    count(*) FILTER (WHERE outc = 'no-show' AND tstate = 'no-show' AND call_rev = last_call_rev) AS no_shows,
    count(*) FILTER (WHERE outc = 'no-show') AS no_show_calls,
    count(*) FILTER (WHERE outc IS NULL) AS serving,
    count(dur) AS svc_n, avg(dur) AS svc_mean, sum(dur) AS svc_sum,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY dur) AS svc_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY dur) AS svc_p90,
    count(*) FILTER (WHERE has_rating AND rating = 1) AS r1,
    count(*) FILTER (WHERE has_rating AND rating = 2) AS r2,
    count(*) FILTER (WHERE has_rating AND rating = 3) AS r3,
    count(*) FILTER (WHERE has_rating AND rating = 4) AS r4,
    count(*) FILTER (WHERE has_rating AND rating = 5) AS r5,
    count(*) FILTER (WHERE has_rating AND ((rating_scale = 5 AND rating >= 4) OR (rating_scale <> 5 AND rating = 3)))
        AS satisfied
FROM vs v
GROUP BY {grouping}
"""


# where the centres' calendars come from: every ticket (the full computation), or the rollup and the
# few unsettled tickets (the rollup path, which must not scan a quarter of tickets for it)
_CAL_FULL = "tickets"
_CAL_ROLLUP = (f"(SELECT site, day FROM roll_tickets UNION ALL SELECT site, day FROM tickets "
               f"WHERE {rollups.on(rollups.UNSETTLED)}) src")


def _fill(sql: str, site_filter: str, alias: str, cal_source: str = _CAL_FULL) -> str:
    """A query template with its centre filter (on ``alias``) and calendar source filled in."""
    return sql.replace("{site_filter}", site_filter.format(a=alias)).replace("{cal_source}", cal_source)


def _r1(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _empty_row() -> dict[str, Any]:
    return {"issued": 0, "voided": 0, "expired": 0, "open": 0, "wait_n": 0, "wait_mean": None, "wait_p50": None,
            "wait_p90": None, "within_ok": 0, "calls": 0, "served": 0, "inferred": 0, "closed_by_reset": 0,
            "transferred": 0, "no_shows": 0, "transferred_in": 0, "no_show_calls": 0, "serving": 0, "svc_n": 0,
            "svc_mean": None, "svc_p50": None, "svc_p90": None,
            "r1": 0, "r2": 0, "r3": 0, "r4": 0, "r5": 0, "satisfied": 0, "wait_sum": None, "svc_sum": None}


def _figures(a: dict[str, Any], scale: int) -> dict[str, Any]:
    """The centre report's row figures (``xephang_reports.build._Acc.as_dict``) from the SQL aggregates."""
    ratings = {str(s): int(a[f"r{s}"]) for s in range(1, scale + 1)}
    rated = sum(int(a[f"r{s}"]) for s in range(1, 6))
    return {
        "issued": a["issued"], "transferred_in": a["transferred_in"], "served": a["served"], "no_shows": a["no_shows"],
        "voided": a["voided"], "expired": a["expired"], "transferred": a["transferred"], "open": a["open"],
        "calls": a["calls"], "no_show_calls": a["no_show_calls"], "serving": a["serving"],
        "wait": {"n": a["wait_n"], "mean": _r1(a["wait_mean"]), "p50": _r1(a["wait_p50"]), "p90": _r1(a["wait_p90"])},
        "within_target": {"n": a["wait_n"], "ok": a["within_ok"], "share": _share(a["within_ok"], a["wait_n"])},
        "service_time": {"n": a["svc_n"], "mean": _r1(a["svc_mean"]), "p50": _r1(a["svc_p50"]), "p90": _r1(a["svc_p90"])},
        "ratings": ratings, "rated": rated, "satisfaction": _share(a["satisfied"], rated),
        "flags": {"inferred": a["inferred"], "closed_by_reset": a["closed_by_reset"], "wait_clock_jump": 0,
                  "service_clock_jump": 0},
    }


# ---- the report's other figures: arrivals per hour, busiest hours, wait distribution, counter load

# tickets by local issue hour (the zone's offset at noon of the service day, as the centre does),
# waits by band of xephang_reports.build.WAIT_BINS_MIN (width_bucket = bisect_right) and the open days
_EXTRA_TICKET_SQL = f"""
WITH {_SITE_CAL},
tt AS (
    SELECT t.first_service, t.day, t.issued_at,
           CASE WHEN t.called_at - t.issued_at >= 0 THEN t.called_at - t.issued_at END AS w,
           extract(epoch FROM ((t.day + time '12:00') AT TIME ZONE 'UTC') - ((t.day + time '12:00') AT TIME ZONE c.timezone))
             AS off
    FROM tickets t JOIN site_cal c ON c.site = t.site
    WHERE t.day BETWEEN %(first)s AND %(last)s {{site_filter}}
)
SELECT 'hour' AS what, mod(floor((issued_at + off) / 3600)::bigint, 24)::int AS k, NULL::text AS svc, count(*) AS n
FROM tt GROUP BY 2
UNION ALL
SELECT 'bin', width_bucket(w, %(bins)s::float8[]), first_service, count(*) FROM tt WHERE w IS NOT NULL GROUP BY 2, 3
UNION ALL
SELECT 'days', NULL, NULL, count(DISTINCT day) FROM tt
"""

# per counter and service day: calls, busy seconds and the span the counter was open (the centre's
# rules: a visit still open is busy until now; one the reset closed has no end and spans to closing)
_LOAD_VISIT_SQL = f"""
WITH {_SITE_CAL},
v0 AS (
    SELECT v.site, v.counter, v.day, v.called_at, v.ended_at, v.outcome, v.inferred, c.today,
           extract(epoch FROM ((v.day + 1) + c.daily_reset) AT TIME ZONE c.timezone) AS eod,
           extract(epoch FROM (v.day + c.close_time) AT TIME ZONE c.timezone) AS close_at
    FROM visits v JOIN site_cal c ON c.site = v.site
    WHERE v.day BETWEEN %(first)s AND %(last)s {{site_filter}}
), v1 AS (
    SELECT *, CASE WHEN outcome IS NULL AND day < today THEN eod
                   WHEN outcome IS NULL THEN greatest(called_at, %(now)s) ELSE ended_at END AS fin,
              (outcome IS NULL AND day < today) OR (inferred AND ended_at >= eod) AS reset_closed
    FROM v0
)
SELECT site, counter, day, count(*) AS calls,
       COALESCE(sum(fin - called_at) FILTER (WHERE NOT reset_closed AND fin > called_at), 0) AS busy,
       min(called_at) AS s0,
       max(CASE WHEN reset_closed THEN greatest(called_at, close_at) ELSE fin END) AS s1
FROM v1 GROUP BY site, counter, day
"""

# pauses from the counter events: a 'paused' ends at the counter's next event if that is a
# 'resumed'; otherwise the daily reset ended it (until closing time) or it is still on (until now)
_LOAD_PAUSE_SQL = f"""
WITH {_SITE_CAL},
ce AS (
    SELECT e.site, e.counter, e.kind, e.at,
           lead(e.kind) OVER w AS next_kind, lead(e.at) OVER w AS next_at
    FROM events e
    WHERE e.family = 'counter' AND e.at BETWEEN %(lo)s AND %(hi)s {{site_filter}}
    WINDOW w AS (PARTITION BY e.site, e.counter ORDER BY e.rev)
), p0 AS (
    SELECT ce.site, ce.counter, ce.at AS started, c.today,
           ((to_timestamp(ce.at) AT TIME ZONE c.timezone) - c.daily_reset::interval)::date AS day,
           CASE WHEN ce.next_kind = 'resumed' THEN ce.next_at END AS ended,
           c.timezone, c.daily_reset, c.close_time
    FROM ce JOIN site_cal c ON c.site = ce.site
    WHERE ce.kind = 'paused'
), p1 AS (
    SELECT *, extract(epoch FROM ((day + 1) + daily_reset) AT TIME ZONE timezone) AS eod,
              extract(epoch FROM (day + close_time) AT TIME ZONE timezone) AS close_at
    FROM p0 WHERE day BETWEEN %(first)s AND %(last)s
), p2 AS (
    SELECT *, CASE WHEN ended IS NULL AND day >= today THEN least(%(now)s, eod)
                   WHEN ended IS NULL OR ended >= eod THEN greatest(started, close_at)
                   ELSE ended END AS stop
    FROM p1
)
SELECT site, counter, day, count(*) AS pauses,
       COALESCE(sum(stop - started) FILTER (WHERE stop > started), 0) AS paused,
       min(started) AS s0, max(stop) AS s1
FROM p2 GROUP BY site, counter, day
"""


_ROLL_COUNTER_DAYS = ("SELECT site, counter, day, calls, busy, 0::bigint AS pauses, 0::float8 AS paused, s0, s1 "
                      "FROM roll_counters r WHERE r.day BETWEEN %(first)s AND %(last)s ")
# per counter: calls, busy, pauses, paused, and the sum of each day's span (first to last moment seen)
_LOAD_ROLLUP_SQL = """
SELECT site, counter, sum(calls)::bigint, sum(busy), sum(pauses)::bigint, sum(paused), sum(greatest(s1 - s0, 0))
FROM (
    SELECT site, counter, day, sum(calls) AS calls, sum(busy) AS busy, sum(pauses) AS pauses, sum(paused) AS paused,
           min(s0) AS s0, max(s1) AS s1
    FROM ({settled}
          UNION ALL SELECT site, counter, day, calls, busy, 0, 0, s0, s1 FROM ({open}) o
          UNION ALL SELECT site, counter, day, 0, 0, pauses, paused, s0, s1 FROM ({pauses}) ps) u
    GROUP BY site, counter, day
) d
GROUP BY site, counter
"""


def _rollup_ticket_extras(cur: Any, p: dict[str, Any], site_filter: str) -> tuple[list[int], int, dict[str, list[int]]]:
    """Arrivals per hour, open days and wait bands per service from the rollups (whole months)."""
    from bisect import bisect_right

    from xephang_reports.build import WAIT_BINS_MIN

    arrivals = [0] * 24
    cur.execute("SELECT hour, sum(n) FROM roll_hours h WHERE h.month BETWEEN %(first)s AND %(last)s "
                + site_filter.format(a="h") + " GROUP BY hour", p)
    for hour, n in cur.fetchall():
        arrivals[hour] = int(n)
    cur.execute("SELECT count(DISTINCT day) FROM (SELECT day FROM roll_tickets r WHERE r.day BETWEEN %(first)s AND "
                "%(last)s " + site_filter.format(a="r") + " UNION ALL SELECT day FROM tickets t WHERE "
                + rollups.on(rollups.UNSETTLED, "t") + " AND t.day BETWEEN %(first)s AND %(last)s "
                + site_filter.format(a="t") + ") x", p)
    days = int(cur.fetchone()[0])
    # a 30-second bucket lies inside one band: the bands' edges are whole minutes
    edges = [m * 60.0 for m in WAIT_BINS_MIN]
    hist: dict[str, list[int]] = {}
    cur.execute("SELECT service, bucket, sum(n) FROM roll_hist h WHERE h.measure = 'w' AND h.month BETWEEN "
                "%(first)s AND %(last)s " + site_filter.format(a="h") + " GROUP BY service, bucket", p)
    for svc, bucket, n in cur.fetchall():
        if n:
            hist.setdefault(svc, [0] * (len(WAIT_BINS_MIN) + 1))[bisect_right(edges, bucket * rollups.BUCKET_S)] += int(n)
    return arrivals, days, hist


def _extras(cur: Any, params: dict[str, Any], site_filter: str, lang: str, site_names: dict[str, Any],
            *, rollup: bool = False) -> dict[str, Any]:
    """arrivals_by_hour, open_days, busiest_hours, wait_bins_min, wait_hist, counter_load.

    ``rollup``: read arrivals, wait bands and settled visits' counter load from the rollups (whole months).
    """
    from xephang_reports.build import WAIT_BINS_MIN, busiest_hours

    p = {**params, "bins": [m * 60.0 for m in WAIT_BINS_MIN],
         "lo": datetime.combine(params["first"], dtime(0), UTC).timestamp() - 2 * 86400,
         "hi": datetime.combine(params["last"], dtime(0), UTC).timestamp() + 3 * 86400}
    arrivals = [0] * 24
    days = 0
    hist: dict[str, list[int]] = {}
    cal = _CAL_ROLLUP if rollup else _CAL_FULL
    if rollup:
        arrivals, days, hist = _rollup_ticket_extras(cur, p, site_filter)
    else:
        cur.execute(_fill(_EXTRA_TICKET_SQL, site_filter, "t"), p)
        for what, k, svc, n in cur.fetchall():
            if what == "hour":
                arrivals[k] = int(n)
            elif what == "bin":
                hist.setdefault(svc, [0] * (len(WAIT_BINS_MIN) + 1))[k] = int(n)
            else:
                days = int(n)
    cur.execute("SELECT service, min(pos), min(name_vi), min(name_en), "
                "CASE WHEN count(DISTINCT target_wait_min) = 1 AND count(*) = count(target_wait_min) "
                "THEN min(target_wait_min) END FROM site_services GROUP BY service")
    svc_info = {r[0]: r[1:] for r in cur.fetchall()}

    def svc_label(sid: str) -> str:
        info = svc_info.get(sid)
        return (info[2] if lang == "en" and info and info[2] else info[1] if info and info[1] else sid)

    wait_hist = [{"service": sid, "label": svc_label(sid), "target_min": (svc_info.get(sid) or (0, "", "", None))[3],
                  "counts": hist[sid]}
                 for sid in sorted(hist, key=lambda s: ((svc_info.get(s) or (10**6,))[0], s))]

    # counter load: spans, busy and paused seconds per (site, counter, day), summed per counter
    spans: dict[tuple[str, int, Any], list[float]] = {}
    acc: dict[tuple[str, int], dict[str, float]] = {}

    def grow(key: tuple[str, int, Any], s0: float, s1: float) -> None:
        sp = spans.setdefault(key, [s0, s1])
        sp[0], sp[1] = min(sp[0], s0), max(sp[1], s1)

    def counter_totals(site: str, counter: int) -> dict[str, float]:
        return acc.setdefault((site, counter), {"visits": 0, "busy": 0.0, "paused": 0.0, "pauses": 0})

    span_total: dict[tuple[str, int], float] = {}
    if rollup:
        # settled visits' days from the rollup, the open ones and the pauses by the SQL below; each
        # counter-day's span and the sums per counter in PostgreSQL (a year is 100 000s of counter-days)
        cur.execute(_LOAD_ROLLUP_SQL.replace("{settled}", _ROLL_COUNTER_DAYS + site_filter.format(a="r"))
                    .replace("{open}", _fill(_LOAD_VISIT_SQL, site_filter + " AND v.outcome IS NULL", "v", cal))
                    .replace("{pauses}", _fill(_LOAD_PAUSE_SQL, site_filter, "e", cal)), p)
        for site, counter, calls, busy, pauses, paused, span in cur.fetchall():
            acc[(site, counter)] = {"visits": calls, "busy": busy, "paused": paused, "pauses": pauses}
            span_total[(site, counter)] = span
    else:
        cur.execute(_fill(_LOAD_VISIT_SQL, site_filter, "v"), p)
        for site, counter, day, calls, busy, s0, s1 in cur.fetchall():
            a = counter_totals(site, counter)
            a["visits"] += calls
            a["busy"] += busy
            grow((site, counter, day), s0, s1)
        cur.execute(_fill(_LOAD_PAUSE_SQL, site_filter, "e", cal), p)
        for site, counter, day, pauses, paused, s0, s1 in cur.fetchall():
            a = counter_totals(site, counter)
            a["pauses"] += pauses
            a["paused"] += paused
            grow((site, counter, day), s0, s1)
        for (site, counter, _d), (s0, s1) in spans.items():
            span_total[(site, counter)] = span_total.get((site, counter), 0.0) + max(0.0, s1 - s0)
    cur.execute("SELECT site, number, label_vi, label_en, officer FROM site_counters"
                + (" WHERE site = ANY(%(sites)s)" if "sites" in params else ""), params)
    configured = {(r[0], r[1]): r[2:] for r in cur.fetchall()}
    # one centre: its counters as its own report names them; several: each named after its centre
    multi_site = len({k[0] for k in set(acc) | set(configured)}) > 1
    load = []
    for key in sorted(set(acc) | set(configured)):
        site, n = key
        a = acc.get(key) or {"visits": 0, "busy": 0.0, "paused": 0.0, "pauses": 0}
        cfg = configured.get(key)
        label = (cfg[1] if lang == "en" else cfg[0]) if cfg else (f"Counter {n}" if lang == "en" else f"Quầy {n}")
        if multi_site:
            sn = site_names.get(site)
            label = f"{(sn[1] if lang == 'en' and sn and sn[1] else sn[0] if sn and sn[0] else site)} — {label}"
        load.append({"site": site, "counter": n, "label": label, "officer": cfg[2] if cfg else "",
                     "visits": int(a["visits"]), "busy_s": round(a["busy"], 1), "paused_s": round(a["paused"], 1),
                     "idle_s": round(max(0.0, span_total.get(key, 0.0) - a["busy"] - a["paused"]), 1),
                     "pauses": int(a["pauses"])})
    return {"arrivals_by_hour": arrivals, "open_days": days, "busiest_hours": busiest_hours(arrivals, days),
            "wait_bins_min": list(WAIT_BINS_MIN), "wait_hist": wait_hist, "counter_load": load}


def _key_label(dims: list[str], key: tuple[Any, ...], names: dict[str, Any], lang: str) -> str:
    out = []
    for d, k in zip(dims, key, strict=True):
        if d == "site":
            n = names["sites"].get(k)
            out.append(n[1] if lang == "en" and n and n[1] else n[0] if n and n[0] else k)
        elif d == "service":
            n = names["services"].get(k)
            out.append(n[1] if lang == "en" and n and n[1] else n[0] if n and n[0] else k)
        elif d == "day":
            out.append(k.strftime("%d/%m/%Y"))
        elif d == "month":
            out.append(f"{k.month:02d}/{k.year}")
        else:
            q = (k.month - 1) // 3 + 1
            out.append(f"Quý {('I', 'II', 'III', 'IV')[q - 1]}/{k.year}" if lang == "vi" else f"Q{q} {k.year}")
    return " — ".join(out)


# ---------------------------------------------------------------------------------------------- rollup path


def _whole_months(per: Period) -> bool:
    return per.first.day == 1 and (per.last + timedelta(days=1)).day == 1


def _use_rollup(cur: Any, method: str, per: Period, dims: list[str]) -> bool:
    """Whether this report reads the rollups: whole months and a schema that has them (``auto``: not by day
    per centre or service either, where they are no faster)."""
    from xephang_reports.build import WAIT_BINS_MIN

    fits = (_whole_months(per)
            and all(m * 60 % rollups.BUCKET_S == 0 and m * 60 <= rollups.BUCKET_MAX * rollups.BUCKET_S
                    for m in WAIT_BINS_MIN))
    # by day per centre or per service, the rollups' per-row reads cost as much as the full computation
    # (bench/province_ingest.py --only-report --by-day-only): auto takes them only for rows of whole days
    slower = "day" in dims and ("site" in dims or "service" in dims)
    if method == "full" or (method == "auto" and (not fits or slower)):
        return False
    if not fits:
        raise ProvinceReportError("the rollups answer whole months (month, quarter, year)")
    cur.execute(f"SELECT to_regclass('{'roll_hist_day' if 'day' in dims else 'roll_hist'}') IS NOT NULL")
    if cur.fetchone()[0]:
        return True
    if method == "rollup":
        raise ProvinceReportError("this database has no rollups yet: run xephang province-db")
    return False


def _collect(cur: Any, dims: list[str], acc: dict[tuple[Any, ...], dict[str, Any]], total: dict[str, Any],
             *, add: bool = False) -> None:
    """Fold a GROUPING SETS result (``k0``…, ``g``, figures) into ``acc`` and ``total`` (set, or ``add``)."""
    names = [d.name for d in cur.description]
    for rec in cur.fetchall():
        r = dict(zip(names, rec, strict=True))
        key = tuple(r[f"k{i}"] for i in range(len(dims)))
        row = total if (dims and r["g"]) or not dims else acc.setdefault(key, _empty_row())
        for k, v in r.items():
            if k not in row or k.endswith(("_mean", "_p50", "_p90")):
                if not add and k in row:
                    row[k] = v
                continue
            row[k] = v if not add or row[k] is None else (row[k] if v is None else row[k] + v)


def _rollup_sql(table: str, dims: list[str], figures: str, site_filter: str) -> str:
    ks = [_key_sql(d, "r", "service") for d in dims]
    sel = ", ".join(f"{k} AS k{i}" for i, k in enumerate(ks))
    return (f"SELECT {sel}, GROUPING({', '.join(ks)}) AS g, {figures} FROM {table} r "
            f"WHERE r.day BETWEEN %(first)s AND %(last)s {site_filter.format(a='r')} "
            f"GROUP BY GROUPING SETS (({', '.join(ks)}), ())")


_ROLL_TICKETS = ("sum(issued)::bigint AS issued, sum(voided)::bigint AS voided, sum(wait_n)::bigint AS wait_n, "
                 "sum(wait_sum) AS wait_sum, sum(within_ok)::bigint AS within_ok")
_ROLL_VISITS = ("sum(calls)::bigint AS calls, sum(served)::bigint AS served, sum(inferred)::bigint AS inferred, "
                "sum(closed_by_reset)::bigint AS closed_by_reset, sum(transferred)::bigint AS transferred, sum(no_shows)::bigint AS no_shows, "
                "sum(no_show_calls)::bigint AS no_show_calls, "
                "sum(svc_n)::bigint AS svc_n, sum(svc_sum) AS svc_sum, sum(r1)::bigint AS r1, sum(r2)::bigint AS r2, sum(r3)::bigint AS r3, "
                "sum(r4)::bigint AS r4, sum(r5)::bigint AS r5, sum(satisfied)::bigint AS satisfied")


def _rollup_figures(cur: Any, dims: list[str], params: dict[str, Any], site_filter: str,
                    acc: dict[tuple[Any, ...], dict[str, Any]]) -> dict[str, Any]:
    """Every row's figures from the rollups plus the unsettled rows; fills ``acc``, returns the totals."""
    total = _empty_row()
    cur.execute(_rollup_sql("roll_tickets", dims, _ROLL_TICKETS, site_filter), params)
    _collect(cur, dims, acc, total, add=True)
    cur.execute(_rollup_sql("roll_visits", dims, _ROLL_VISITS, site_filter), params)
    _collect(cur, dims, acc, total, add=True)
    # today's open tickets and visits (and any day the hub never closed): the full SQL over those few
    unsettled_t = site_filter + " AND " + rollups.on(rollups.UNSETTLED, "{a}")
    cur.execute(_fill(_ticket_sql(dims), unsettled_t, "t", _CAL_ROLLUP), params)
    _collect(cur, dims, acc, total, add=True)
    cur.execute(_fill(_visit_sql(dims), site_filter + " AND {a}.outcome IS NULL", "v", _CAL_ROLLUP), params)
    _collect(cur, dims, acc, total, add=True)
    # where tickets ended (expired, open) and transfers in: from the few tickets concerned, indexed
    cur.execute(_fill(_ticket_end_sql(dims), site_filter, "t", _CAL_ROLLUP), params)
    _collect(cur, dims, acc, total, add=True)
    cur.execute(_fill(_transfer_in_sql(dims), site_filter, "v", _CAL_ROLLUP), params)
    _collect(cur, dims, acc, total, add=True)
    for row in [*acc.values(), total]:
        for m, n in (("wait", "wait_n"), ("svc", "svc_n")):
            row[f"{m}_mean"] = row[f"{m}_sum"] / row[n] if row[n] else None
    for (measure, key), (p50, p90) in _rollup_percentiles(cur, dims, params, site_filter).items():
        row = total if key is None else acc.setdefault(key, _empty_row())
        row[f"{measure}_p50"], row[f"{measure}_p90"] = p50, p90
    return total


def _rollup_percentiles(cur: Any, dims: list[str], params: dict[str, Any],
                        site_filter: str) -> dict[tuple[str, Any], tuple[float, float]]:
    """Exact medians and P90s of waits ('wait') and service times ('svc') per row key and for the total (None).

    The bucket counts of ``roll_hist`` say in which 30-second bucket each wanted rank lies and at
    which offset; one indexed query then reads just those buckets' values and picks them. The
    interpolation is ``percentile_cont``'s (and ``xephang_reports.build.quantile``'s).
    """
    if "day" in dims:  # rows of one day: the day-grained histogram (migration 6)
        table, col = "roll_hist_day", "h.day"
        hk = {"site": "h.site", "service": "h.service", "day": "h.day", "month": "date_trunc('month', h.day)::date",
              "quarter": "date_trunc('quarter', h.day)::date"}
    else:
        table, col = "roll_hist", "h.month"
        hk = {"site": "h.site", "service": "h.service", "month": "h.month",
              "quarter": "date_trunc('quarter', h.month)::date"}
    ks = [hk[d] for d in dims]
    cur.execute(f"SELECT {', '.join(ks)}, h.measure, h.bucket, sum(h.n) FROM {table} h "
                f"WHERE {col} BETWEEN %(first)s AND %(last)s {site_filter.format(a='h')} "
                f"GROUP BY {', '.join(ks)}, h.measure, h.bucket", params)
    counts: dict[tuple[str, Any], dict[int, int]] = {}
    for rec in cur.fetchall():
        key, measure, bucket, n = tuple(rec[:len(dims)]), rec[-3], rec[-2], int(rec[-1])
        if not n:
            continue
        name = "wait" if measure == "w" else "svc"
        for k in ((name, key), (name, None)):
            c = counts.setdefault(k, {})
            c[bucket] = c.get(bucket, 0) + n
    # the (bucket, offset within it, how many) of every rank to read: a rank and the next one
    # (the two a percentile interpolates between) are one read when they share a bucket
    reads: dict[tuple[str, Any, int], tuple[int, int, int]] = {}
    for (name, key), c in counts.items():
        n = sum(c.values())
        ranks: set[int] = set()
        for p in (0.5, 0.9):
            pos = p * (n - 1)
            ranks |= {int(pos), int(pos) + 1} if pos != int(pos) else {int(pos)}
        before, buckets = 0, iter(sorted(c.items()))
        b, nb = next(buckets)
        for rank in sorted(ranks):
            while before + nb <= rank:
                before += nb
                b, nb = next(buckets)
            prev = reads.get((name, key, rank - 1))
            if prev and prev[0] == b and prev[2] == 1:
                reads[(name, key, rank - 1)] = (b, prev[1], 2)
            else:
                reads[(name, key, rank)] = (b, rank - before, 1)
    values = _read_ranks(cur, dims, params, reads, site_filter)
    out: dict[tuple[str, Any], tuple[float, float]] = {}
    for (name, key), c in counts.items():
        n = sum(c.values())
        got = []
        for p in (0.5, 0.9):
            pos = p * (n - 1)
            lo = int(pos)
            hi = lo + 1 if pos != lo else lo
            a, b = values[(name, key, lo)], values[(name, key, hi)]
            got.append(a + (b - a) * (pos - lo))
        out[(name, key)] = (got[0], got[1])
    return out


def _key_days(dims: list[str], key: Any, params: dict[str, Any]) -> tuple[Any, Any]:
    """The days a row key covers within the period."""
    d0, d1 = params["first"], params["last"]
    if key is None:
        return d0, d1
    for d, k in zip(dims, key, strict=True):
        if d == "day":
            d0, d1 = max(d0, k), min(d1, k)
        elif d in ("month", "quarter"):
            months = 1 if d == "month" else 3
            end = date(k.year + (k.month - 1 + months) // 12, (k.month - 1 + months) % 12 + 1, 1) - timedelta(days=1)
            d0, d1 = max(d0, k), min(d1, end)
    return d0, d1


def _read_ranks(cur: Any, dims: list[str], params: dict[str, Any],
                reads: dict[tuple[str, Any, int], tuple[int, int, int]],
                site_filter: str) -> dict[tuple[str, Any, int], float]:
    """The values at the wanted ranks: one bucket of one row's waits or service times, read from its index."""
    out: dict[tuple[str, Any, int], float] = {}
    for name, table, alias, svc_col, value, bucket, ok, extra in (
            ("wait", "tickets", "t", "first_service", "t.called_at - t.issued_at", rollups.W_BUCKET, rollups.W_OK, ""),
            ("svc", "visits", "v", "service", "v.ended_at - v.called_at", rollups.S_BUCKET, rollups.S_OK,
             # only an inferred visit needs its centre's calendar (the end of its service day)
             "AND (NOT v.inferred OR v.ended_at < COALESCE((SELECT extract(epoch FROM ((v.day + 1) + s.daily_reset) "
             "AT TIME ZONE s.timezone) FROM sites s WHERE s.site = v.site), "
             "extract(epoch FROM ((v.day + 1) + time '04:00') AT TIME ZONE 'Asia/Ho_Chi_Minh')))")):
        for keyed in (True, False):
            todo = [(k, r, b, off, cnt) for (nm, k, r), (b, off, cnt) in reads.items()
                    if nm == name and (k is not None) == keyed]
            if not todo:
                continue
            kd = dims if keyed else []
            # rows without a centre (or service) in their key read the bucket across all of them
            site_cond = f"AND {alias}.site = k.site" if "site" in kd else site_filter.format(a=alias)
            svc_cond = f"AND {alias}.{svc_col} = k.service" if "service" in kd else ""
            sql = (f"SELECT k.i, x.val FROM unnest(%(k_site)s::text[], %(k_service)s::text[], %(d0)s::date[], "
                   f"%(d1)s::date[], %(b)s::int[], %(off)s::int[], %(cnt)s::int[], %(i)s::int[]) "
                   f"AS k(site, service, d0, d1, b, off, cnt, i) "
                   f"CROSS JOIN LATERAL (SELECT {value} AS val FROM {table} {alias} "
                   f"WHERE {rollups.on(ok, alias)} AND {rollups.on(bucket, alias)} = k.b {site_cond} "
                   f"{svc_cond} AND {alias}.day BETWEEN k.d0 AND k.d1 {extra} "
                   f"ORDER BY 1 OFFSET k.off LIMIT k.cnt) x ORDER BY k.i, x.val")
            arg: dict[str, list[Any]] = {"k_site": [], "k_service": [], "d0": [], "d1": [], "b": [], "off": [], "cnt": [], "i": []}
            for i, (k, _r, b, off, cnt) in enumerate(todo):
                arg["k_site"].append(k[dims.index("site")] if keyed and "site" in dims else None)
                arg["k_service"].append(k[dims.index("service")] if keyed and "service" in dims else None)
                d0, d1 = _key_days(dims, k, params)
                arg["d0"].append(d0)
                arg["d1"].append(d1)
                arg["b"].append(b)
                arg["off"].append(off)
                arg["cnt"].append(cnt)
                arg["i"].append(i)
            cur.execute(sql, {**arg, **({"sites": params["sites"]} if "sites" in params else {})})
            seen: dict[int, int] = {}
            for i, val in cur.fetchall():
                k, r = todo[i][0], todo[i][1]
                out[(name, k, r + seen.get(i, 0))] = val
                seen[i] = seen.get(i, 0) + 1
    return out


def build_province_report(conn: Any, *, period: str | Period = "today", group_by: str = "site",
                          sites: list[str] | None = None, lang: str = "vi", now: float,
                          method: str = "auto") -> dict[str, Any]:
    """The province report dict: ``rows`` (one per key of ``group_by``) and ``totals``.

    ``period`` as in the centre report (a day, month, quarter, year or FROM..TO); 'today' is
    today in Vietnam. ``sites`` limits it to some centres. ``method``: ``full`` computes every
    figure from ``tickets``/``visits``; ``rollup`` reads the rollups (whole months, not by day:
    ``province/rollups.py``); ``auto`` (default) takes the rollups where they apply. Both give
    the same figures (``tests/province/test_rollups.py``).
    """
    if method not in ("auto", "rollup", "full"):
        raise ProvinceReportError(f"method {method!r}: use auto, rollup or full")
    if lang not in ("vi", "en"):
        raise ProvinceReportError(f"lang {lang!r}: use vi or en")
    dims = parse_dimensions(group_by)
    today = datetime.fromtimestamp(now - 4 * 3600, _vn_tz()).date()
    per = period if isinstance(period, Period) else parse_period(period, today)
    params: dict[str, Any] = {"now": now, "first": per.first, "last": per.last}
    site_filter = ""
    if sites:
        params["sites"] = list(sites)
        site_filter = "AND {a}.site = ANY(%(sites)s)"
    acc: dict[tuple[Any, ...], dict[str, Any]] = {}
    total = _empty_row()
    with conn.cursor() as cur:
        use_rollup = _use_rollup(cur, method, per, dims)
        if use_rollup:
            total = _rollup_figures(cur, dims, params, site_filter, acc)
        else:
            # percentile_cont sorts every row of a group: give the sorts memory rather than temp files
            cur.execute("SET LOCAL work_mem = '128MB'")
            for sql, alias in ((_ticket_sql(dims), "t"), (_ticket_end_sql(dims), "t"), (_transfer_in_sql(dims), "v"),
                               (_visit_sql(dims), "v")):
                cur.execute(_fill(sql, site_filter, alias), params)
                _collect(cur, dims, acc, total)
        cur.execute("SELECT site, name_vi, name_en FROM sites")
        site_names = {s: (vi, en) for s, vi, en in cur.fetchall()}
        extras = _extras(cur, params, site_filter, lang, site_names, rollup=use_rollup)
        cur.execute("SELECT DISTINCT ON (service) service, name_vi, name_en FROM site_services ORDER BY service, pos")
        svc_names = {s: (vi, en) for s, vi, en in cur.fetchall()}
        cur.execute("SELECT COALESCE(MAX(rating_scale), 5) FROM sites")
        scale = int(cur.fetchone()[0])
    conn.commit()
    label_names = {"sites": site_names, "services": svc_names}
    rows = [{"key": list(k) if len(k) > 1 else k[0], "keys": dict(zip(dims, [str(x) for x in k], strict=True)),
             "label": _key_label(dims, k, label_names, lang), **_figures(acc[k], scale)}
            for k in sorted(acc, key=lambda k: tuple(str(x) for x in k))]
    return {
        "schema": SCHEMA,
        "site": {"slug": "province", "name": "Toàn tỉnh" if lang == "vi" else "Province"},
        "period": per.as_dict(lang),
        "group_by": ",".join(dims),
        "dimensions": dims,
        "lang": lang,
        "generated_at": round(now, 3),
        "generated_local": datetime.fromtimestamp(now, _vn_tz()).strftime("%d/%m/%Y %H:%M"),
        "rating_scale": scale,
        "rows": rows,
        "totals": {"key": None, "label": "Tổng cộng" if lang == "vi" else "Total", **_figures(total, scale)},
        "centres": len({r["keys"].get("site") for r in rows}) if "site" in dims else None,
        **extras,
    }


def _vn_tz() -> Any:
    from xephang.clock import VN_TZ

    return VN_TZ


# ---------------------------------------------------------------------------------------------- outputs
#
# Every file is drawn by the centre report's own renderers (xephang_reports.render, xephang_reports.charts)
# from the province report dict, which has the same keys, plus its own grouping heading
# (``group_heading``: 'site', 'site,service' … are not centre groupings).

CHART_MAX_COUNTERS = 24  # the counter-load chart shows the busiest counters when a province has more


def _heading(report: dict[str, Any]) -> tuple[str, str]:
    return (" — ".join(DIM_HEADINGS[d][0] for d in report["dimensions"]),
            " — ".join(DIM_HEADINGS[d][1] for d in report["dimensions"]))


def renderable(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with the heading of its grouping column, for the centre's renderers."""
    return {**report, "group_heading": list(_heading(report))}


def chart_pngs(report: dict[str, Any]) -> dict[str, bytes]:
    """The centre report's three charts (PNG bytes by name) over the province figures.

    Arrivals per hour and the wait distribution are province-wide; the counter-load chart shows
    the ``CHART_MAX_COUNTERS`` busiest counters (the table and the XLSX sheet list every one).
    """
    from xephang_reports.charts import chart_pngs as centre_chart_pngs

    return centre_chart_pngs(renderable(chart_view(report)))


def chart_view(report: dict[str, Any]) -> dict[str, Any]:
    """What the charts draw: the report, its counter load cut to the ``CHART_MAX_COUNTERS`` busiest."""
    load = report.get("counter_load") or []
    if len(load) <= CHART_MAX_COUNTERS:
        return report
    return {**report, "counter_load": sorted(load, key=lambda c: (-c["busy_s"], c["label"]))[:CHART_MAX_COUNTERS]}


def write_charts(report: dict[str, Any], folder: Path | str, *, charts: dict[str, bytes] | None = None) -> list[Path]:
    """Save every chart as ``<folder>/<name>.png``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in (charts if charts is not None else chart_pngs(report)).items():
        p = folder / f"{name}.png"
        p.write_bytes(data)
        paths.append(p)
    return paths


def csv_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Header + rows + total: the centre report's CSV columns (``xephang_reports.render.csv_rows``)."""
    from xephang_reports.render import csv_rows as centre_csv_rows

    return centre_csv_rows(renderable(report))


def write_csv(report: dict[str, Any], path: Path | str) -> Path:
    """UTF-8 with a BOM (Excel shows the Vietnamese letters), comma-separated."""
    from xephang_reports.render import write_rows_csv

    return write_rows_csv(csv_rows(report), path)


def write_xlsx(report: dict[str, Any], path: Path | str, *, charts: dict[str, bytes] | None = None) -> Path:
    """The centre report's workbook: the table, arrivals by hour, counter load and the charts."""
    from xephang_reports.render import write_xlsx as centre_write_xlsx

    return centre_write_xlsx(renderable(report), path, charts=charts if charts is not None else chart_pngs(report))


def render_html(report: dict[str, Any], *, charts: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML page (charts embedded), as the centre's ``xephang report --html``."""
    from xephang_reports.render import render_html as centre_render_html

    return centre_render_html(renderable(report), charts=charts if charts is not None else chart_pngs(report))


def write_html(report: dict[str, Any], path: Path | str, *, charts: dict[str, bytes] | None = None) -> Path:
    path = Path(path)
    path.write_text(render_html(report, charts=charts), encoding="utf-8")
    return path


def render_table(report: dict[str, Any]) -> str:
    """A plain text table for the terminal (counts, waits and service times in minutes)."""
    rows = csv_rows(report)
    keep = [0, 1, 2, 3, 4, 6, 9, 10, 11, 12, 13, 14, 15]
    keep = [i for i in keep if i < len(rows[0])]
    cells = [[str(r[i]) for i in keep] for r in rows]
    widths = [max(len(c[j]) for c in cells) for j in range(len(keep))]
    lines = [f"{report['site']['name']} — {report['period']['label']}"]
    for n, c in enumerate(cells):
        lines.append("  ".join(x.ljust(widths[j]) if j == 0 else x.rjust(widths[j]) for j, x in enumerate(c)))
        if n == 0 or n == len(cells) - 2:
            lines.append("-" * (sum(widths) + 2 * len(widths)))
    from xephang_reports.render import busiest_text

    lines.append(busiest_text(report))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- CLI


def register(sub: Any) -> None:
    """Add ``province-report`` to the ``xephang`` command line."""
    p = sub.add_parser("province-report", help="province: figures of every centre from PostgreSQL / báo cáo toàn tỉnh")
    p.add_argument("--dsn", default=None, help="PostgreSQL DSN (default $XEPHANG_PROVINCE_DSN)")
    p.add_argument("--period", "-p", default="this-quarter",
                   help="today, YYYY-MM-DD, YYYY-MM, YYYY-Qn, YYYY, FROM..TO (default this-quarter)")
    p.add_argument("--by", "-g", default="site", help="site, service, day, month, quarter; combine with commas")
    p.add_argument("--site", action="append", default=None, help="only these centres (repeatable)")
    p.add_argument("--lang", choices=("vi", "en"), default="vi")
    p.add_argument("--method", choices=("auto", "rollup", "full"), default="auto",
                   help="rollup: read the rollups (whole months); full: every ticket and visit; auto (default): "
                        "the rollups where they apply")
    p.add_argument("--csv", type=Path, help="write a CSV file")
    p.add_argument("--xlsx", type=Path, help="write an XLSX workbook (with the charts)")
    p.add_argument("--html", type=Path, help="write one printable HTML page (charts embedded)")
    p.add_argument("--charts", type=Path, metavar="DIR", help="write the charts as PNG files into DIR")
    p.set_defaults(func=run_province_report)


def run_province_report(args: Any) -> int:
    import time

    from province.db import ProvinceDbError, check_sites, connect
    from xephang_reports.build import BadPeriod

    try:
        with connect(args.dsn) as conn:
            check_sites(conn, args.site)  # a misspelt centre: refused, never a report of zeros
            rep = build_province_report(conn, period=args.period, group_by=args.by, sites=args.site,
                                        lang=args.lang, now=time.time(), method=args.method)
    except (ProvinceDbError, ProvinceReportError, BadPeriod) as exc:
        print(exc)
        return 2
    print(shown(render_table(rep), lines=True))  # names came from the centres' events
    if args.csv:
        print(f"CSV: {write_csv(rep, args.csv)}")
    charts = chart_pngs(rep) if (args.xlsx or args.html or args.charts) else None
    if args.xlsx:
        print(f"XLSX: {write_xlsx(rep, args.xlsx, charts=charts)}")
    if args.html:
        print(f"HTML: {write_html(rep, args.html, charts=charts)}")
    if args.charts:
        print(f"PNG: {', '.join(str(p) for p in write_charts(rep, args.charts, charts=charts))}")
    return 0


