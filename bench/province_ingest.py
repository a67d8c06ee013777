"""Province benchmark: ingest rate, a week-offline centre's catch-up, a quarterly report over 100 centres.

    .venv/bin/python bench/province_ingest.py [--dsn postgresql://postgres@127.0.0.1/postgres]
        [--centres 100] [--tickets-per-day 120] [--skip-report]

Needs a PostgreSQL server (the DSN's database is only used to CREATE/DROP scratch databases)
and mosquitto. Prints figures; asserts nothing.

1. Store rate: events/s written by ``province.ingest.Store`` (batches of 1 000), and the
   baseline of a bare COPY of the same rows into an unindexed table (the ratio is our overhead).
2. End-to-end rate: events published (QoS 1) on the province broker → ingester → PostgreSQL.
3. Catch-up: a centre's broker bridged to the province broker; the link is down while a week
   of that centre's events is published into it; the link comes back; time until the last one
   is committed in PostgreSQL.
4. Quarterly and yearly report over ``--centres`` centres × a year of tickets generated in SQL (every
   figure, arrivals per hour, wait bands and counter load included): from the rollups
   (``province/rollups.py``) next to the full computation of the same run, the two compared figure
   by figure; the rollups' rebuild time and the tables' sizes; drawing its charts, XLSX and HTML.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from province import rollups  # noqa: E402
from province.db import migrate  # noqa: E402
from province.ingest import Ingester, Store  # noqa: E402
from province.reports import build_province_report, chart_pngs, write_html, write_xlsx  # noqa: E402
from province.synth import CentreSim, site_with_slug  # noqa: E402
from xephang.settings import BrokerSettings, load_site  # noqa: E402
from xephang_ops.bridgeconf import bridge_conf_text  # noqa: E402
from xephang_ops.mosquitto import Mosquitto  # noqa: E402

SITE = load_site(REPO / "config" / "site.example.toml")


@contextmanager
def scratch_db(admin_dsn: str):
    name = "xephang_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    try:
        with psycopg.connect(dsn) as conn:
            migrate(conn)
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def week_of_events(tmp: Path, slug: str, tickets: int, seed: int) -> list[tuple[str, bytes]]:
    sim = CentreSim(site_with_slug(SITE, slug), tmp / f"{slug}.sqlite", seed=seed)
    try:
        return sim.days(date(2026, 11, 2), 7, tickets=tickets)
    finally:
        sim.close()


def count_events(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        return int(c.execute("SELECT count(*) FROM events").fetchone()[0])


def table_bytes(conn, tables: tuple[str, ...]) -> int:
    """Heap, TOAST and indexes of ``tables``."""
    return sum(int(conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]) for t in tables)


def bench_store(admin: str, events: list[tuple[str, bytes]]) -> None:
    n = len(events)
    with scratch_db(admin) as dsn, psycopg.connect(dsn) as conn:  # as the first release stored: no rollups
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            Store(conn, rollups=False).write(events[i:i + 1000])
        dt_bare = time.perf_counter() - t0
    with scratch_db(admin) as dsn, psycopg.connect(dsn) as conn:
        store = Store(conn)
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            store.write(events[i:i + 1000])
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = store.write(events)  # everything again: a full replay
        dt_replay = time.perf_counter() - t0
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
        stored = table_bytes(conn, ("events", "tickets", "visits"))
        rolled = table_bytes(conn, ("roll_tickets", "roll_visits", "roll_counters", "roll_hist", "roll_hours",
                                    "roll_hist_day"))
        with conn.cursor() as cur:
            cur.execute("CREATE UNLOGGED TABLE raw (topic text, payload text)")
            t0 = time.perf_counter()
            with cur.copy("COPY raw FROM STDIN") as cp:
                for t, p in events:
                    cp.write_row((t, p.decode()))
            conn.commit()
            dt_copy = time.perf_counter() - t0
    print(f"store: {n} events in {dt:.2f} s = {n / dt:,.0f} events/s (batches of 1 000, tickets rebuilt, rollups kept)")
    print(f"  same events without the rollups: {n / dt_bare:,.0f} events/s (the rollups cost ×{dt / dt_bare:.2f})")
    print(f"  replay of all {n}: {dt_replay:.2f} s, {res.stored} stored, {res.duplicates} duplicates")
    print(f"  baseline bare COPY of the same payloads: {n / dt_copy:,.0f} rows/s → store costs {dt / dt_copy:.1f}×")
    print(f"  on disk: {stored / n:,.0f} bytes per event (events, tickets, visits with their indexes), "
          f"rollups {rolled / n:,.0f} bytes per event (a few centre-days: their per-day rows are not yet shared)")


def bench_end_to_end(admin: str, tmp: Path, events: list[tuple[str, bytes]]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    with scratch_db(admin) as dsn, Mosquitto(tmp / "prov-e2e", extra_conf="max_queued_messages 500000") as prov:
        ing = Ingester(dsn=dsn, broker=BrokerSettings(port=prov.port))
        stop = threading.Event()
        th = threading.Thread(target=ing.run, args=(stop,), daemon=True)
        th.start()
        ing.connected.wait(10)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(1000)
        pub.max_queued_messages_set(0)
        pub.connect("127.0.0.1", prov.port)
        pub.loop_start()
        t0 = time.perf_counter()
        for t, p in events:
            pub.publish(t, p, qos=1)
        while ing.stats.received < len(events) and time.perf_counter() - t0 < 300:
            time.sleep(0.05)
        while count_events(dsn) < len(events) and time.perf_counter() - t0 < 300:
            time.sleep(0.05)
        dt = time.perf_counter() - t0
        stop.set()
        th.join(10)
        pub.loop_stop()
        pub.disconnect()
    n = len(events)
    print(f"end to end (MQTT QoS 1 → ingester → PostgreSQL): {n} events in {dt:.2f} s = {n / dt:,.0f} events/s "
          f"({ing.stats.batches} commits, mean batch {n / max(1, ing.stats.batches):.0f})")


def bench_catch_up(admin: str, tmp: Path, events: list[tuple[str, bytes]]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    with scratch_db(admin) as dsn:
        prov = Mosquitto(tmp / "prov-cu", extra_conf="max_queued_messages 500000").start()
        slug = events[0][0].split("/")[2]
        centre = Mosquitto(tmp / "centre-cu", extra_conf=bridge_conf_text(
            site=slug, address=f"127.0.0.1:{prov.port}", restart_s=(1, 1))).start()
        ing = Ingester(dsn=dsn, broker=BrokerSettings(port=prov.port))
        stop = threading.Event()
        th = threading.Thread(target=ing.run, args=(stop,), daemon=True)
        th.start()
        ing.connected.wait(10)
        time.sleep(1.5)  # the bridge connects
        prov.stop()  # the link is down for the whole week
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-hub", protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(1000)
        pub.max_queued_messages_set(0)
        pub.connect("127.0.0.1", centre.port)
        pub.loop_start()
        infos = [pub.publish(t, p, qos=1) for t, p in events]
        for i in infos:
            i.wait_for_publish(60)
        pub.loop_stop()
        pub.disconnect()
        time.sleep(1.2)  # the centre broker's autosave: the week is on its disk
        t0 = time.perf_counter()
        prov.start()
        while count_events(dsn) < len(events) and time.perf_counter() - t0 < 600:
            time.sleep(0.05)
        dt = time.perf_counter() - t0
        got = count_events(dsn)
        stop.set()
        th.join(10)
        centre.stop()
        prov.stop()
    print(f"catch-up after a week offline: {len(events)} queued events, {got} in PostgreSQL "
          f"{dt:.2f} s after the link returned ({got / dt:,.0f} events/s, includes the bridge's reconnect ≤1 s)")


GEN_SQL = """
INSERT INTO sites (site, name_vi) SELECT 'xa-' || c, 'Xã ' || c FROM generate_series(1, %(centres)s) c;
INSERT INTO site_services (site, service, pos, name_vi, target_wait_min)
SELECT s.site, v.service, v.pos, v.service, v.target FROM sites s
CROSS JOIN (VALUES ('ho-tich', 0, 15.0), ('dat-dai', 1, 20.0), ('chung-thuc', 2, 10.0), ('van-hoa-xa-hoi', 3, 15.0))
    AS v(service, pos, target);
INSERT INTO tickets (site, ticket_id, day, number, display, first_service, service, state, issued_at, called_at,
                     rating, last_call_rev, last_rev)
SELECT 'xa-' || c, d * 1000 + n, day, n, n::text, svc, svc, st, iss, CASE WHEN st <> 'voided' THEN iss + w END,
       CASE WHEN st = 'done' AND random() < 0.6 THEN 1 + floor(random() * 5)::int END, d * 1000 + n, d * 1000 + n
FROM generate_series(1, %(centres)s) c
CROSS JOIN LATERAL generate_series(0, 364) d
CROSS JOIN LATERAL (SELECT date '2026-01-01' + d AS day) dd
CROSS JOIN LATERAL generate_series(1, %(tickets)s) n
CROSS JOIN LATERAL (SELECT (ARRAY['ho-tich','dat-dai','chung-thuc','van-hoa-xa-hoi'])[1 + (n %% 4)] AS svc,
                           CASE WHEN random() < 0.9 THEN 'done' WHEN random() < 0.6 THEN 'no-show' ELSE 'voided' END
                             AS st,
                           extract(epoch FROM (date '2026-01-01' + d) + time '07:30') + n * 200.0 AS iss,
                           random() * 1800 AS w) x;
INSERT INTO visits (site, ticket_id, call_rev, day, counter, service, called_at, ended_at, outcome, inferred)
SELECT site, ticket_id, ticket_id, day, 1 + (ticket_id %% 4)::int, service, called_at,
       called_at + 60 + random() * 900, CASE state WHEN 'done' THEN 'served' ELSE 'no-show' END, random() < 0.05
FROM tickets WHERE called_at IS NOT NULL;
INSERT INTO site_counters (site, number, label_vi, label_en, officer)
SELECT s.site, n, 'Quầy ' || n, 'Counter ' || n, '' FROM sites s CROSS JOIN generate_series(1, 4) n;
"""


def same_figures(a: dict, b: dict) -> int:
    """How many rows (and the totals, and the report's other figures) differ between two report dicts."""
    diff = sum(1 for x, y in zip(a["rows"], b["rows"], strict=True) if x != y) + (len(a["rows"]) != len(b["rows"]))
    return diff + (a["totals"] != b["totals"]) + sum(a[k] != b[k] for k in (
        "arrivals_by_hour", "open_days", "busiest_hours", "wait_hist", "counter_load"))


def time_reports(conn, now: float, cases: tuple[tuple[str, str, int], ...]) -> None:
    """Each (period, grouping, full runs): the rollups (median of 5) next to the full computation, figures compared."""
    for period, by, full_runs in cases:
        times: dict[str, list[float]] = {"rollup": [], "full": []}
        reps = {}
        for method, runs in (("rollup", 5), ("full", full_runs)):
            for _ in range(runs):
                t0 = time.perf_counter()
                reps[method] = build_province_report(conn, period=period, group_by=by, now=now, method=method)
                times[method].append(time.perf_counter() - t0)
        r, f = times["rollup"], times["full"]
        diff = same_figures(reps["rollup"], reps["full"])
        print(f"  {period:<7} by {by:<13}: rollups median {statistics.median(r):.2f} s (max {max(r):.2f}) | "
              f"full computation {'median ' if len(f) > 1 else ''}{statistics.median(f):.2f} s | "
              f"{len(reps['full']['rows'])} rows, {reps['full']['totals']['issued']:,} issued, "
              f"{'every figure equal' if not diff else f'{diff} DIFFERENCES'}")


BY_DAY = (("2026-11", "day", 3), ("2026-Q4", "day", 3), ("2026-Q4", "site,day", 1), ("2026-11", "service,day", 3))


def bench_report(admin: str, centres: int, tickets: int, *, by_day_only: bool = False) -> None:
    with scratch_db(admin) as dsn, psycopg.connect(dsn) as conn:
        t0 = time.perf_counter()
        for stmt in filter(str.strip, GEN_SQL.split(";\n")):
            conn.execute(stmt, {"centres": centres, "tickets": tickets})
        conn.commit()
        gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        with conn.cursor() as cur:  # generated straight into tickets/visits: count the rollups once
            rollups.rebuild(cur)
        conn.commit()
        rebuild = time.perf_counter() - t0
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
        nt = conn.execute("SELECT count(*) FROM tickets").fetchone()[0]
        nv = conn.execute("SELECT count(*) FROM visits").fetchone()[0]
        print(f"report data: {centres} centres × 365 days: {nt:,} tickets, {nv:,} visits (generated in {gen:.0f} s; "
              f"rollups rebuilt from them in {rebuild:.0f} s)")
        mb = 1024 * 1024
        base = table_bytes(conn, ("tickets", "visits"))
        roll = table_bytes(conn, ("roll_tickets", "roll_visits", "roll_counters", "roll_hist", "roll_hours"))
        day_hist = table_bytes(conn, ("roll_hist_day",))
        n_day = conn.execute("SELECT count(*) FROM roll_hist_day").fetchone()[0]
        print(f"  sizes: tickets + visits with indexes {base / mb:,.0f} MB; rollups {roll / mb:,.0f} MB "
              f"+ the day histogram {day_hist / mb:,.0f} MB ({n_day:,} rows)")
        now = time.mktime((2027, 1, 5, 12, 0, 0, 0, 0, 0))
        print(f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work inflates wall times)")
        time_reports(conn, now, BY_DAY)
        if by_day_only:
            return
        time_reports(conn, now, tuple((period, by, full_runs) for period, full_runs in (("2026-Q4", 3), ("2026", 1))
                                      for by in ("site", "service", "site,service", "month")))
        rep = build_province_report(conn, period="2026-Q4", group_by="site", now=now)
        out = Path(tempfile.mkdtemp(prefix="xephang-bench-report-"))
        t0 = time.perf_counter()
        charts = chart_pngs(rep)
        t1 = time.perf_counter()
        write_xlsx(rep, out / "q4.xlsx", charts=charts)
        write_html(rep, out / "q4.html", charts=charts)
        print(f"  outputs of the quarterly report by site: 3 charts {t1 - t0:.2f} s, XLSX + HTML "
              f"{time.perf_counter() - t1:.2f} s ({len(rep['counter_load'])} counters)")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            build_province_report(conn, period="2026-11-20", group_by="site", now=now)
            times.append(time.perf_counter() - t0)
        print(f"  one day by site (full computation: a day is not a whole month): median {statistics.median(times):.3f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--centres", type=int, default=100)
    ap.add_argument("--tickets-per-day", type=int, default=120)
    ap.add_argument("--week-tickets", type=int, default=300, help="tickets a day at the offline centre")
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--only-report", action="store_true")
    ap.add_argument("--by-day-only", action="store_true", help="with --only-report: only the reports grouped by day")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xephang-bench-province-"))
    if args.only_report:
        bench_report(args.dsn, args.centres, args.tickets_per_day, by_day_only=args.by_day_only)
        return 0
    t0 = time.perf_counter()
    week = week_of_events(tmp, "tuong-linh", args.week_tickets, seed=1)
    other = week_of_events(tmp, "xuan-quang", args.week_tickets, seed=2)
    print(f"generated two centre-weeks of events with the hub's engine: {len(week)} + {len(other)} "
          f"({time.perf_counter() - t0:.1f} s)")
    bench_store(args.dsn, week + other)
    bench_end_to_end(args.dsn, tmp, week + other)
    bench_catch_up(args.dsn, tmp, week)
    if not args.skip_report:
        bench_report(args.dsn, args.centres, args.tickets_per_day)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
