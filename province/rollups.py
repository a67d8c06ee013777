"""Rollup tables the ingester keeps up to date, so a quarter's report reads thousands of rows, not millions.

The report's figures split in two:

- **settled** tickets and visits (a ticket no longer ``waiting``/``called``, a visit with an
  outcome) no longer depend on the clock: their counts and sums are kept per centre, service
  day and service (``roll_tickets``, ``roll_visits``) and per centre, counter and day
  (``roll_counters``). The ingester recomputes the (centre, day) rows a batch touched from
  ``tickets``/``visits`` in the same transaction (a centre-day is ~100 rows: cheap, and no drift);
- **unsettled** rows (today's open tickets, a visit still at a counter, a day the hub never
  closed) are few, and the report computes them with the full SQL at read time
  (partial indexes ``tickets_unsettled``, ``visits_open``), then adds them in.

Medians and P90s stay exact without sorting a quarter: ``roll_hist`` counts every wait (ticket)
and service time (served visit) per centre, month, service and 30-second bucket (the ingester
adds and subtracts a touched ticket's contributions, so counts stay exact whatever the order of
arrival). The report finds the bucket that holds the wanted rank from those counts, then reads
only that bucket's values through the expression indexes ``tickets_wait_bucket`` /
``visits_service_bucket`` and takes the exact value, interpolated as ``percentile_cont`` does.
``roll_hours`` counts arrivals per local hour and month.

Everything derives from the site's registration (time zone, daily reset, rating scale, service
targets): ``upsert_site`` rebuilds that centre's rollups (``rebuild``).
"""

from __future__ import annotations

from typing import Any

BUCKET_S = 30  # width of a histogram bucket, seconds (the wait bands, whole minutes, fall on its edges)
BUCKET_MAX = 240  # the last bucket holds everything from 2 h on
# expressions over a table alias ``{a}`` ("t." or "v."; "" in the index definitions, which they must match)
W_BUCKET = f"least(floor(({{a}}called_at - {{a}}issued_at) / {BUCKET_S}), {BUCKET_MAX})::int"
S_BUCKET = f"least(floor(({{a}}ended_at - {{a}}called_at) / {BUCKET_S}), {BUCKET_MAX})::int"
W_OK = "{a}called_at - {a}issued_at >= 0"
S_OK = "{a}outcome = 'served' AND {a}ended_at - {a}called_at >= 0"
UNSETTLED = "{a}state IN ('waiting', 'called')"


def on(expr: str, alias: str = "") -> str:
    """``expr`` over the table alias ``alias`` ('' for none)."""
    return expr.replace("{a}", f"{alias}." if alias else "")


# the centre's calendar for a table alias ``a`` with a ``site`` column (the defaults of an unregistered centre)
_TZ = "COALESCE(s.timezone, 'Asia/Ho_Chi_Minh')"
_RESET = "COALESCE(s.daily_reset, time '04:00')"
_EOD = f"extract(epoch FROM ((v.day + 1) + {_RESET}) AT TIME ZONE {_TZ})"
EOD_V = _EOD  # the end of a visit's service day (needs ``visits v LEFT JOIN sites s``)

SCHEMA_SQL = f"""
CREATE TABLE roll_tickets (
    site text NOT NULL, day date NOT NULL, service text NOT NULL,
    issued bigint NOT NULL, voided bigint NOT NULL, expired bigint NOT NULL,
    wait_n bigint NOT NULL, wait_sum double precision, within_ok bigint NOT NULL,
    PRIMARY KEY (site, day, service)
);
CREATE INDEX roll_tickets_day ON roll_tickets (day);
CREATE TABLE roll_visits (
    site text NOT NULL, day date NOT NULL, service text NOT NULL,
    calls bigint NOT NULL, served bigint NOT NULL, inferred bigint NOT NULL, closed_by_reset bigint NOT NULL,
    transferred bigint NOT NULL, no_shows bigint NOT NULL, no_show_calls bigint NOT NULL,
    svc_n bigint NOT NULL, svc_sum double precision,
    r1 bigint NOT NULL, r2 bigint NOT NULL, r3 bigint NOT NULL, r4 bigint NOT NULL, r5 bigint NOT NULL,
    satisfied bigint NOT NULL,
    PRIMARY KEY (site, day, service)
);
CREATE INDEX roll_visits_day ON roll_visits (day);
CREATE TABLE roll_counters (
    site text NOT NULL, counter int NOT NULL, day date NOT NULL,
    calls bigint NOT NULL, busy double precision NOT NULL, s0 double precision, s1 double precision,
    PRIMARY KEY (site, counter, day)
);
CREATE INDEX roll_counters_day ON roll_counters (day);
CREATE TABLE roll_hist (
    site text NOT NULL, month date NOT NULL, service text NOT NULL, measure "char" NOT NULL, bucket int NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (month, site, service, measure, bucket)
);
CREATE TABLE roll_hours (
    site text NOT NULL, month date NOT NULL, hour int NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (month, site, hour)
);
CREATE INDEX tickets_unsettled ON tickets (day) WHERE {on(UNSETTLED)};
CREATE INDEX visits_open ON visits (day) WHERE outcome IS NULL;
-- the few rows a report reads beside the rollups: expired tickets, transferred visits
CREATE INDEX tickets_expired ON tickets (day) WHERE state = 'expired';
CREATE INDEX visits_transferred ON visits (day) WHERE outcome = 'transferred';
-- a percentile reads one bucket of one row's values: from the index alone (the values' columns are in it)
CREATE INDEX tickets_wait_bucket ON tickets (({on(W_BUCKET)}), site, first_service, day) INCLUDE (called_at, issued_at)
    WHERE {on(W_OK)};
CREATE INDEX visits_service_bucket ON visits (({on(S_BUCKET)}), site, service, day) INCLUDE (called_at, ended_at, inferred)
    WHERE {on(S_OK)};
"""

# the same histogram per service day (migration 6): exact medians and P90s of reports grouped by day
SCHEMA_DAY_SQL = """
CREATE TABLE roll_hist_day (
    site text NOT NULL, day date NOT NULL, service text NOT NULL, measure "char" NOT NULL, bucket int NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (day, site, service, measure, bucket)
);
"""

# ---- per (centre, day) rows, recomputed for the (site, day) pairs in the temp table roll_days

_DAY_TICKETS = f"""
INSERT INTO roll_tickets
SELECT t.site, t.day, t.first_service, count(*),
       count(*) FILTER (WHERE t.state = 'voided'), count(*) FILTER (WHERE t.state = 'expired'),
       count(w), sum(w), count(w) FILTER (WHERE w <= COALESCE(ss.target_wait_min * 60, w))
FROM (SELECT t.*, CASE WHEN {on(W_OK, 't')} THEN t.called_at - t.issued_at END AS w FROM tickets t
      {{days_join}} WHERE NOT {on(UNSETTLED, 't')}) t
LEFT JOIN site_services ss ON ss.site = t.site AND ss.service = t.first_service
GROUP BY 1, 2, 3
"""

_DAY_VISITS = f"""
INSERT INTO roll_visits
SELECT site, day, service, count(*),
       count(*) FILTER (WHERE outcome = 'served'),
       count(*) FILTER (WHERE outcome = 'served' AND inferred),
       count(*) FILTER (WHERE outcome = 'served' AND reset_closed),
       count(*) FILTER (WHERE outcome = 'transferred'),
       count(*) FILTER (WHERE outcome = 'no-show' AND tstate = 'no-show' AND call_rev = last_call_rev),
       count(*) FILTER (WHERE outcome = 'no-show'),
       count(dur), sum(dur),
       count(*) FILTER (WHERE has_rating AND rating = 1), count(*) FILTER (WHERE has_rating AND rating = 2),
       count(*) FILTER (WHERE has_rating AND rating = 3), count(*) FILTER (WHERE has_rating AND rating = 4),
       count(*) FILTER (WHERE has_rating AND rating = 5),
       count(*) FILTER (WHERE has_rating AND ((scale = 5 AND rating >= 4) OR (scale <> 5 AND rating = 3)))
FROM (
    SELECT v.*, t.state AS tstate, t.rating, t.last_call_rev, COALESCE(s.rating_scale, 5) AS scale,
           (v.inferred AND v.ended_at >= {_EOD}) AS reset_closed,
           CASE WHEN v.outcome = 'served' AND NOT (v.inferred AND v.ended_at >= {_EOD})
                     AND v.ended_at - v.called_at >= 0 THEN v.ended_at - v.called_at END AS dur,
           (v.outcome = 'served' AND t.rating BETWEEN 1 AND COALESCE(s.rating_scale, 5)) AS has_rating
    FROM visits v {{days_join}} JOIN tickets t ON t.site = v.site AND t.ticket_id = v.ticket_id
    LEFT JOIN sites s ON s.site = v.site
    WHERE v.outcome IS NOT NULL
) x
GROUP BY 1, 2, 3
"""

# settled visits per counter and day: the counter load's calls, busy seconds and span (its own rules,
# as province.reports._LOAD_VISIT_SQL: a visit the reset closed has no end and spans to closing time)
_DAY_COUNTERS = f"""
INSERT INTO roll_counters
SELECT site, counter, day, count(*),
       COALESCE(sum(ended_at - called_at) FILTER (WHERE NOT reset_closed AND ended_at > called_at), 0),
       min(called_at), max(CASE WHEN reset_closed THEN greatest(called_at, close_at) ELSE ended_at END)
FROM (
    SELECT v.*, (v.inferred AND v.ended_at >= {_EOD}) AS reset_closed,
           extract(epoch FROM (v.day + COALESCE(s.close_time, time '17:00')) AT TIME ZONE {_TZ}) AS close_at
    FROM visits v {{days_join}} LEFT JOIN sites s ON s.site = v.site
    WHERE v.outcome IS NOT NULL
) x
GROUP BY 1, 2, 3
"""

# ---- counted contributions (histogram, arrivals per hour) of the tickets in the temp table roll_touched

_CONTRIB_HIST = f"""
INSERT INTO roll_hist (site, month, service, measure, bucket, n)
SELECT site, month, service, measure, bucket, %(sign)s * count(*) FROM (
    SELECT t.site, date_trunc('month', t.day)::date AS month, t.first_service AS service, 'w'::"char" AS measure,
           {on(W_BUCKET, 't')} AS bucket
    FROM tickets t WHERE {on(W_OK, 't')} AND {{where_t}}
    UNION ALL
    SELECT v.site, date_trunc('month', v.day)::date, v.service, 's'::"char",
           {on(S_BUCKET, 'v')}
    FROM visits v LEFT JOIN sites s ON s.site = v.site
    WHERE {on(S_OK, 'v')} AND NOT (v.inferred AND v.ended_at >= {_EOD})
      AND {{where_v}}
) x GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (month, site, service, measure, bucket) DO UPDATE SET n = roll_hist.n + EXCLUDED.n
"""

_CONTRIB_HIST_DAY = (_CONTRIB_HIST.replace("INSERT INTO roll_hist (site, month,", "INSERT INTO roll_hist_day (site, day,")
                     .replace("SELECT site, month, service", "SELECT site, day, service")
                     .replace("date_trunc('month', t.day)::date AS month", "t.day AS day")
                     .replace("date_trunc('month', v.day)::date", "v.day")
                     .replace("ON CONFLICT (month, site, service, measure, bucket) DO UPDATE SET n = roll_hist.n",
                              "ON CONFLICT (day, site, service, measure, bucket) DO UPDATE SET n = roll_hist_day.n"))
assert "month" not in _CONTRIB_HIST_DAY  # every month of the histogram above became the service day

# the local issue hour as the centre counts it (the zone's offset at noon of the service day)
_CONTRIB_HOURS = f"""
INSERT INTO roll_hours (site, month, hour, n)
SELECT t.site, date_trunc('month', t.day)::date,
       mod(floor((t.issued_at + extract(epoch FROM ((t.day + time '12:00') AT TIME ZONE 'UTC')
                                        - ((t.day + time '12:00') AT TIME ZONE {_TZ}))) / 3600)::bigint, 24)::int,
       %(sign)s * count(*)
FROM tickets t LEFT JOIN sites s ON s.site = t.site
WHERE {{where_t}}
GROUP BY 1, 2, 3
ON CONFLICT (month, site, hour) DO UPDATE SET n = roll_hours.n + EXCLUDED.n
"""

_TOUCHED_T = "(t.site, t.ticket_id) IN (SELECT site, ticket_id FROM roll_touched)"
_TOUCHED_V = "(v.site, v.ticket_id) IN (SELECT site, ticket_id FROM roll_touched)"


def _recompute_days(cur: Any) -> None:
    """Replace the per-day rollup rows of the (site, day) pairs in ``roll_days``."""
    for table in ("roll_tickets", "roll_visits", "roll_counters"):
        cur.execute(f"DELETE FROM {table} r USING roll_days d WHERE r.site = d.site AND r.day = d.day")
    cur.execute(_DAY_TICKETS.format(days_join="JOIN roll_days d ON d.site = t.site AND d.day = t.day"))
    for sql in (_DAY_VISITS, _DAY_COUNTERS):
        cur.execute(sql.format(days_join="JOIN roll_days d ON d.site = v.site AND d.day = v.day"))


def _temp_tables(cur: Any) -> None:
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS roll_touched (site text, ticket_id bigint) ON COMMIT DELETE ROWS")
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS roll_days (site text, day date, PRIMARY KEY (site, day)) "
                "ON COMMIT DELETE ROWS")


_MARK_DAYS = (f"INSERT INTO roll_days SELECT t.site, t.day FROM tickets t WHERE {_TOUCHED_T} "
              f"UNION SELECT v.site, v.day FROM visits v WHERE {_TOUCHED_V} ON CONFLICT DO NOTHING")


def before_rebuild(cur: Any, sites: list[str], ids: list[int]) -> None:
    """Take the touched tickets' current contributions out (call inside the batch's transaction)."""
    _temp_tables(cur)
    cur.execute("INSERT INTO roll_touched SELECT * FROM unnest(%s::text[], %s::bigint[])", (sites, ids))
    cur.execute(_MARK_DAYS)
    for sql in (_CONTRIB_HIST, _CONTRIB_HIST_DAY):
        cur.execute(sql.format(where_t=_TOUCHED_T, where_v=_TOUCHED_V), {"sign": -1})
    cur.execute(_CONTRIB_HOURS.format(where_t=_TOUCHED_T), {"sign": -1})


def after_rebuild(cur: Any) -> None:
    """Put the rebuilt tickets' contributions in and recompute every centre-day they touch, before or after."""
    for sql in (_CONTRIB_HIST, _CONTRIB_HIST_DAY):
        cur.execute(sql.format(where_t=_TOUCHED_T, where_v=_TOUCHED_V), {"sign": 1})
    cur.execute(_CONTRIB_HOURS.format(where_t=_TOUCHED_T), {"sign": 1})
    cur.execute(_MARK_DAYS)
    _recompute_days(cur)
    cur.execute("DELETE FROM roll_hist h USING (SELECT DISTINCT site, date_trunc('month', day)::date AS month "
                "FROM roll_days) d WHERE h.site = d.site AND h.month = d.month AND h.n = 0")
    cur.execute("DELETE FROM roll_hours h USING (SELECT DISTINCT site, date_trunc('month', day)::date AS month "
                "FROM roll_days) d WHERE h.site = d.site AND h.month = d.month AND h.n = 0")
    cur.execute("DELETE FROM roll_hist_day h USING roll_days d WHERE h.site = d.site AND h.day = d.day AND h.n = 0")
    cur.execute("DELETE FROM roll_touched")
    cur.execute("DELETE FROM roll_days")


def day_hist_fill_sql() -> str:
    """Count ``roll_hist_day`` from every ticket and visit already stored (migration 6)."""
    return _CONTRIB_HIST_DAY.format(where_t="true", where_v="true").replace("%(sign)s", "1")


def rebuild_sql(only: str | None = None, *, day_hist: bool = True) -> list[str]:
    """Statements that rebuild every rollup from ``tickets``/``visits``: of all centres, or of those
    ``only`` selects (a condition on ``{a}site``, e.g. ``{a}site = ANY(%(sites)s)``). ``day_hist``
    False leaves out ``roll_hist_day`` (migration 4, written before that table existed)."""
    w = only or "true"
    day = ([f"DELETE FROM roll_hist_day WHERE {on(w)}",
            _CONTRIB_HIST_DAY.format(where_t=on(w, "t"), where_v=on(w, "v")).replace("%(sign)s", "1")]
           if day_hist else [])
    return [*day,
        "CREATE TEMP TABLE IF NOT EXISTS roll_days (site text, day date, PRIMARY KEY (site, day)) "
        "ON COMMIT DELETE ROWS",
        f"INSERT INTO roll_days SELECT site, day FROM tickets WHERE {on(w)} "
        f"UNION SELECT site, day FROM visits WHERE {on(w)}",
        *(f"DELETE FROM {t} WHERE {on(w)}" for t in ("roll_tickets", "roll_visits", "roll_counters", "roll_hist",
                                                      "roll_hours")),
        _DAY_TICKETS.format(days_join="JOIN roll_days d ON d.site = t.site AND d.day = t.day"),
        _DAY_VISITS.format(days_join="JOIN roll_days d ON d.site = v.site AND d.day = v.day"),
        _DAY_COUNTERS.format(days_join="JOIN roll_days d ON d.site = v.site AND d.day = v.day"),
        _CONTRIB_HIST.format(where_t=on(w, "t"), where_v=on(w, "v")).replace("%(sign)s", "1"),
        _CONTRIB_HOURS.format(where_t=on(w, "t")).replace("%(sign)s", "1"),
        "DELETE FROM roll_days",
    ]


def rebuild(cur: Any, sites: list[str] | None = None) -> None:
    """Rebuild the rollups of ``sites`` (every centre when None) from ``tickets`` and ``visits``."""
    only = "{a}site = ANY(%(sites)s)" if sites is not None else None
    for sql in rebuild_sql(only):
        cur.execute(sql, {"sites": sites} if sites is not None else None)
