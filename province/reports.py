"""Province reports: the centre report's figures, computed in SQL over every centre.

The definitions are those of ``hubd.reports`` (docs/reports.md), so a province row for one
centre equals that centre's own report, and counts add up across centres:

- ticket figures (issued, voided, expired, open, the wait = issue → first call, the share
  called within the service's target) go to the ticket's issue day and first service;
- visit figures (calls, served, no-shows, transfers, service time = call → end of a served
  visit, ratings) go to the visit's day and service; a no-show is the last call of a ticket
  whose final state is no-show; a visit closed by the daily reset counts as served (inferred)
  but not in the service times;
- means, medians and P90s are pooled over every visit/ticket of the row (``percentile_cont``
  is the same linear interpolation as ``hubd.reports.quantile``), rounded to 0.1 s as there.

The centre ledger's clock-jump marks do not travel in events, so those two flags are 0 here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from hubd.reports import Period, parse_period

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
    SELECT s.site, s.rating_scale, s.timezone, s.daily_reset,
           ((to_timestamp(%(now)s) AT TIME ZONE s.timezone) - s.daily_reset::interval)::date AS today
    FROM sites s
    UNION ALL
    -- a centre whose site file was never registered: the defaults of a Vietnamese centre
    SELECT x.site, 5, 'Asia/Ho_Chi_Minh', time '04:00',
           ((to_timestamp(%(now)s) AT TIME ZONE 'Asia/Ho_Chi_Minh') - interval '4 hours')::date
    FROM (SELECT DISTINCT site FROM tickets WHERE day BETWEEN %(first)s AND %(last)s) x
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
    count(*) FILTER (WHERE state <> 'voided' AND (state = 'expired' OR (state = 'waiting' AND day < today))) AS expired,
    count(*) FILTER (WHERE state IN ('waiting', 'called') AND day >= today) AS open,
    count(w) AS wait_n, avg(w) AS wait_mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS wait_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY w) AS wait_p90,
    count(w) FILTER (WHERE w <= COALESCE(target_wait_min * 60, w)) AS within_ok
FROM tw t
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
    count(dur) AS svc_n, avg(dur) AS svc_mean,
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


def _r1(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _empty_row() -> dict[str, Any]:
    return {"issued": 0, "voided": 0, "expired": 0, "open": 0, "wait_n": 0, "wait_mean": None, "wait_p50": None,
            "wait_p90": None, "within_ok": 0, "calls": 0, "served": 0, "inferred": 0, "closed_by_reset": 0,
            "transferred": 0, "no_shows": 0, "svc_n": 0, "svc_mean": None, "svc_p50": None, "svc_p90": None,
            "r1": 0, "r2": 0, "r3": 0, "r4": 0, "r5": 0, "satisfied": 0}


def _figures(a: dict[str, Any], scale: int) -> dict[str, Any]:
    """The centre report's row figures (``hubd.reports._Acc.as_dict``) from the SQL aggregates."""
    ratings = {str(s): int(a[f"r{s}"]) for s in range(1, scale + 1)}
    rated = sum(int(a[f"r{s}"]) for s in range(1, 6))
    return {
        "issued": a["issued"], "served": a["served"], "no_shows": a["no_shows"], "voided": a["voided"],
        "expired": a["expired"], "transferred": a["transferred"], "open": a["open"], "calls": a["calls"],
        "wait": {"n": a["wait_n"], "mean": _r1(a["wait_mean"]), "p50": _r1(a["wait_p50"]), "p90": _r1(a["wait_p90"])},
        "within_target": {"n": a["wait_n"], "ok": a["within_ok"], "share": _share(a["within_ok"], a["wait_n"])},
        "service_time": {"n": a["svc_n"], "mean": _r1(a["svc_mean"]), "p50": _r1(a["svc_p50"]), "p90": _r1(a["svc_p90"])},
        "ratings": ratings, "rated": rated, "satisfaction": _share(a["satisfied"], rated),
        "flags": {"inferred": a["inferred"], "closed_by_reset": a["closed_by_reset"], "wait_clock_jump": 0,
                  "service_clock_jump": 0},
    }


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


def build_province_report(conn: Any, *, period: str | Period = "today", group_by: str = "site",
                          sites: list[str] | None = None, lang: str = "vi", now: float) -> dict[str, Any]:
    """The province report dict: ``rows`` (one per key of ``group_by``) and ``totals``.

    ``period`` as in the centre report (a day, month, quarter, year or FROM..TO); 'today' is
    today in Vietnam. ``sites`` limits it to some centres.
    """
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
        # percentile_cont sorts every row of a group: give the sorts memory rather than temp files
        cur.execute("SET LOCAL work_mem = '128MB'")
        for sql, alias in ((_ticket_sql(dims), "t"), (_visit_sql(dims), "v")):
            cur.execute(sql.replace("{site_filter}", site_filter.format(a=alias)), params)
            names = [d.name for d in cur.description]
            for rec in cur.fetchall():
                r = dict(zip(names, rec, strict=True))
                key = tuple(r[f"k{i}"] for i in range(len(dims)))
                row = total if (dims and r["g"]) or not dims else acc.setdefault(key, _empty_row())
                for k, v in r.items():
                    if k in row:
                        row[k] = v
        cur.execute("SELECT site, name_vi, name_en FROM sites")
        site_names = {s: (vi, en) for s, vi, en in cur.fetchall()}
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
    }


def _vn_tz() -> Any:
    from xephang.clock import VN_TZ

    return VN_TZ


# ---------------------------------------------------------------------------------------------- outputs


def _heading(report: dict[str, Any]) -> str:
    lang = report.get("lang", "vi")
    return " — ".join(DIM_HEADINGS[d][1 if lang == "en" else 0] for d in report["dimensions"])


def csv_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Header + rows + total, with the centre report's columns (``hubd.report_render.ALL_COLUMNS``)."""
    from hubd.report_render import ALL_COLUMNS, cell_value

    lang = report.get("lang", "vi")
    scale = int(report.get("rating_scale") or 5)
    head = [_heading(report)] + [c.heading(lang) + (" (phút)" if c.kind == "min" and lang == "vi" else
                                                    " (min)" if c.kind == "min" else "") for c in ALL_COLUMNS]
    head += [(f"Điểm {s}" if lang == "vi" else f"Score {s}") for s in range(1, scale + 1)]
    out: list[list[Any]] = [head]
    for r in report["rows"] + [report["totals"]]:
        vals: list[Any] = [r["label"]]
        for c in ALL_COLUMNS:
            vals.append(cell_value(c, r))
        vals += [r["ratings"].get(str(s), "") for s in range(1, scale + 1)]
        out.append(vals)
    return out


def write_csv(report: dict[str, Any], path: Path | str) -> Path:
    """UTF-8 with a BOM (Excel shows the Vietnamese letters), comma-separated."""
    from hubd.report_render import write_rows_csv

    return write_rows_csv(csv_rows(report), path)


def write_xlsx(report: dict[str, Any], path: Path | str) -> Path:
    """One sheet: title, the table with the centre report's number formats, the total in bold."""
    import xlsxwriter

    from hubd.report_render import ALL_COLUMNS

    rows = csv_rows(report)
    path = Path(path)
    wb = xlsxwriter.Workbook(str(path))
    try:
        title = wb.add_format({"bold": True, "font_size": 14})
        head = wb.add_format({"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#E9ECEF", "border": 1})
        fmts = {"int": {"num_format": "#,##0"}, "min": {"num_format": "0.0"}, "share": {"num_format": "0.0%"}}
        body = {k: wb.add_format({**v, "border": 1}) for k, v in fmts.items()}
        bold = {k: wb.add_format({**v, "border": 1, "bold": True, "top": 2}) for k, v in fmts.items()}
        text, tot_text = wb.add_format({"border": 1}), wb.add_format({"border": 1, "bold": True, "top": 2})
        kinds = [c.kind for c in ALL_COLUMNS] + ["int"] * (len(rows[0]) - 1 - len(ALL_COLUMNS))
        ws = wb.add_worksheet("Báo cáo" if report.get("lang") == "vi" else "Report")
        p = report["period"]
        ws.write(0, 0, report["site"]["name"], title)
        ws.write(1, 0, f"{p['label']} ({p['from']} – {p['to']})", title)
        ws.write(2, 0, report["generated_local"])
        r0 = 4
        ws.write_row(r0, 0, rows[0], head)
        ws.set_column(0, 0, 40)
        ws.set_column(1, len(rows[0]), 12)
        for i, vals in enumerate(rows[1:]):
            last = i == len(rows) - 2
            ws.write(r0 + 1 + i, 0, vals[0], tot_text if last else text)
            for j, v in enumerate(vals[1:]):
                style = (bold if last else body)[kinds[j]]
                if v == "" or v is None:
                    ws.write_blank(r0 + 1 + i, j + 1, None, style)
                else:
                    ws.write_number(r0 + 1 + i, j + 1, v, style)
        ws.freeze_panes(r0 + 1, 1)
    finally:
        wb.close()
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
    p.add_argument("--csv", type=Path, help="write a CSV file")
    p.add_argument("--xlsx", type=Path, help="write an XLSX workbook")
    p.set_defaults(func=run_province_report)


def run_province_report(args: Any) -> int:
    import time

    from hubd.reports import BadPeriod
    from province.db import ProvinceDbError, connect

    try:
        with connect(args.dsn) as conn:
            rep = build_province_report(conn, period=args.period, group_by=args.by, sites=args.site,
                                        lang=args.lang, now=time.time())
    except (ProvinceDbError, ProvinceReportError, BadPeriod) as exc:
        print(exc)
        return 2
    print(render_table(rep))
    if args.csv:
        print(f"CSV: {write_csv(rep, args.csv)}")
    if args.xlsx:
        print(f"XLSX: {write_xlsx(rep, args.xlsx)}")
    return 0


