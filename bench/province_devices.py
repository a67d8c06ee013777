"""Province benchmark: `xephang province devices` (and the web's /province page) once one centre
has flooded its status history.

    .venv/bin/python bench/province_devices.py [--dsn postgresql://postgres@127.0.0.1/postgres]
        [--centres 100] [--nodes 10] [--flood-rows 1000000] [--runs 7]

Needs a PostgreSQL server (the DSN's database is only used to CREATE/DROP a scratch database).
Prints figures; asserts nothing.

The store caps status changes at 60 rows per node per hour, which still lets one centre's board
passwords add ~144,000 rows a day to ``device_status_log`` (a red team, 2026-12-08). The listing's
downtime used to read the whole table through a window function on every call; it now reads the
period's rows and each node's last change before it. Both are timed in the same run on the same
rows: the old SQL is kept here as the baseline (``OLD_LG``), the new one is ``list_devices``'s own.
The two must give the same rows (compared, and said).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from province_ingest import scratch_db  # noqa: E402  (the bench folder: a database made and dropped for the run)

from province import devices  # noqa: E402

# the listing's first CTE before 2026-12-08: every status change of every node, ever
OLD_LG = """WITH lg AS (
    SELECT site, node, online, at, lead(at) OVER (PARTITION BY site, node ORDER BY at) AS next_at
    FROM device_status_log
), down AS ("""


def fill(conn, *, centres: int, nodes: int, flood_rows: int, now: datetime) -> None:
    """``centres`` × ``nodes`` devices, each with a change an hour for 30 days; one centre's nodes add
    ``flood_rows`` changes spread over the month (what its passwords can add under the store's cap)."""
    with conn.cursor() as cur:
        cur.execute("""
INSERT INTO devices (site, node, role, version, online, since, seen_at, health)
SELECT 'xa-' || c, 'counter-' || n, 'counter', '1', true, %(now)s, %(now)s, '{}'
FROM generate_series(1, %(centres)s) c, generate_series(1, %(nodes)s) n""",
                    {"now": now, "centres": centres, "nodes": nodes})
        cur.execute("""
INSERT INTO device_status_log (site, node, at, online, session)
SELECT 'xa-' || c, 'counter-' || n, %(now)s - h * interval '1 hour', h %% 2 = 0, h
FROM generate_series(1, %(centres)s) c, generate_series(1, %(nodes)s) n, generate_series(1, 720) h""",
                    {"now": now, "centres": centres, "nodes": nodes})
        cur.execute("""
INSERT INTO device_status_log (site, node, at, online, session)
SELECT 'xa-1', 'counter-' || (i %% %(nodes)s + 1), %(now)s - (i %% 2592000 + 0.5) * interval '1 second', i %% 2 = 0, i
FROM generate_series(1, %(rows)s) i""", {"now": now, "nodes": nodes, "rows": flood_rows})
        cur.execute("ANALYZE")
    conn.commit()


def timed(conn, runs: int, **kw) -> tuple[list[float], list[dict]]:
    times, rows = [], []
    for _ in range(runs):
        t = time.perf_counter()
        rows = devices.list_devices(conn, **kw)
        times.append(time.perf_counter() - t)
    return times, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1/postgres")
    ap.add_argument("--centres", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--flood-rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    now = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    day = {"start": now - timedelta(days=1), "end": now}
    with scratch_db(a.dsn) as dsn, psycopg.connect(dsn) as conn:
        t = time.perf_counter()
        fill(conn, centres=a.centres, nodes=a.nodes, flood_rows=a.flood_rows, now=now)
        total = conn.execute("SELECT count(*) FROM device_status_log").fetchone()[0]
        print(f"{a.centres} centres × {a.nodes} nodes, {total:,} status changes "
              f"({a.flood_rows:,} of them one centre's flood), filled in {time.perf_counter() - t:.1f} s")
        cases = [("one other centre, last 24 h", {"sites": ["xa-2"], **day}),
                 ("every centre, last 24 h", day)]
        for label, kw in cases:
            new_t, new_rows = timed(conn, a.runs, **kw)
            old_t, old_rows = timed_old(conn, a.runs, **kw)
            same = [(r["site"], r["node"], r["downtime_s"]) for r in new_rows] == \
                [(r["site"], r["node"], r["downtime_s"]) for r in old_rows]
            if not same:
                diff = [(n["site"], n["node"], n["downtime_s"], o["downtime_s"])
                        for n, o in zip(new_rows, old_rows, strict=False) if n["downtime_s"] != o["downtime_s"]]
                print(f"  differing (site, node, new, old), first 5 of {len(diff)}: {diff[:5]}")
            print(f"{label}: new median {statistics.median(new_t) * 1000:.1f} ms (max {max(new_t) * 1000:.1f}), "
                  f"old median {statistics.median(old_t) * 1000:.1f} ms (max {max(old_t) * 1000:.1f}), "
                  f"ratio old/new {statistics.median(old_t) / statistics.median(new_t):.0f}×; "
                  f"{len(new_rows)} devices, same downtimes: {same}")


def timed_old(conn, runs: int, **kw) -> tuple[list[float], list[dict]]:
    """The same listing with the old first CTE (the SQL text swapped at the cursor for these runs)."""
    real_execute = psycopg.Cursor.execute

    def old_execute(self, query, params=None, **k):
        if isinstance(query, str) and query.lstrip().startswith("WITH lg0 AS ("):
            query = OLD_LG + query.split("), down AS (", 1)[1]
        return real_execute(self, query, params, **k)

    psycopg.Cursor.execute = old_execute  # type: ignore[method-assign]
    try:
        return timed(conn, runs, **kw)
    finally:
        psycopg.Cursor.execute = real_execute  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
