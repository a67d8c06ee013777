"""Benchmark: a quarterly report over a year of ledger history (≥100,000 tickets).

Generates a year of realistic history straight into a temp ledger (the hub's schema, rows
written with executemany; no MQTT), then times ``build_report`` for a quarter (median and
p99 of several runs, per grouping), the raw SQL fetch as a baseline measured in the same run,
the renderers, and peak memory (tracemalloc for the report, ru_maxrss for the process).

    .venv/bin/python bench/report_quarter.py [--tickets-per-day 420] [--runs 9] [--keep PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hubd.ledger import Ledger  # noqa: E402
from xephang.clock import VN_TZ  # noqa: E402
from xephang.settings import load_site  # noqa: E402
from xephang.site import Site, format_number  # noqa: E402
from xephang_reports import build as R  # noqa: E402
from xephang_reports.build import build_report, open_readonly  # noqa: E402

# arrivals by local hour in a commune centre: a morning peak, lunch lull, a smaller afternoon peak
HOUR_WEIGHTS = {7: 6, 8: 16, 9: 18, 10: 14, 11: 8, 12: 2, 13: 6, 14: 12, 15: 10, 16: 6}
SERVICE_WEIGHTS = {"ho-tich": 35, "chung-thuc": 30, "dat-dai": 15, "van-hoa-xa-hoi": 20}


def bench_site(base: Site) -> Site:
    """The example centre grown to a ward-sized one (8 counters), to carry ~400 tickets a day."""
    data = base.model_dump(mode="json")
    extra = ["Đỗ Văn Nam", "Vũ Thị Mai", "Hoàng Đức Anh", "Bùi Thị Thu"]
    for i, c in enumerate(list(data["counters"])):
        data["counters"].append({**c, "number": c["number"] + 4, "officer": extra[i]})
    return Site.model_validate(data)


class DayQueue:
    """One day's counters: when each is free, lunch and short breaks."""

    def __init__(self, rng: random.Random, counters_for: dict[str, list[tuple[int, str]]], free_at: dict[int, float],
                 lunch: tuple[float, float], breaks: dict[int, tuple[float, float]]) -> None:
        self.rng, self.counters_for, self.free_at, self.lunch, self.breaks = rng, counters_for, free_at, lunch, breaks

    def available(self, counter: int, t: float) -> float:
        if self.lunch[0] <= t < self.lunch[1]:
            t = self.lunch[1]
        b = self.breaks.get(counter)
        if b and b[0] <= t < b[1]:
            t = b[1]
        return t

    def serve_at(self, svc: str, ready: float) -> tuple[int, str, float]:
        """The counter that can call a ticket of ``svc`` ready at ``ready`` first, and when."""
        when = {c: self.available(c[0], max(self.free_at[c[0]], ready)) for c in self.counters_for[svc]}
        best = min(when, key=when.__getitem__)
        return best[0], best[1], when[best] + self.rng.uniform(5, 40)


def generate_history(path: Path, site: Site, *, first: date, days: int, tickets_per_day: int,
                     seed: int = 7) -> int:
    """Write ``days`` of history (Mon–Sat open) into a fresh ledger at ``path``. Returns tickets written.

    A small queue simulation per day: tickets arrive by HOUR_WEIGHTS, each goes to the counter
    of its service that is free first, counters break for lunch and sometimes for a moment; a
    few tickets are voided, left at the day's end, called in vain, or transferred (keeping
    their arrival), and 30 % of services end by Next instead of Finish (inferred).
    """
    rng = random.Random(seed)
    led = Ledger(path)  # creates the schema exactly as the hub does
    db = led.db
    counters_for: dict[str, list[tuple[int, str]]] = {}
    for c in site.counters:
        for s in c.services:
            counters_for.setdefault(s, []).append((c.number, site.officer_name(c.number)))
    svc_ids = list(SERVICE_WEIGHTS)
    svc_w = [SERVICE_WEIGHTS[s] for s in svc_ids]
    hours = list(HOUR_WEIGHTS)
    hour_w = [HOUR_WEIGHTS[h] for h in hours]
    services = {s.id: s for s in site.services}
    tickets: list[tuple] = []
    visits: list[tuple] = []
    pauses: list[tuple] = []
    tid = vid = pid = 0
    for dn in range(days):
        d = first + timedelta(days=dn)
        if d.weekday() == 6:
            continue
        day = d.isoformat()
        base = datetime(d.year, d.month, d.day, tzinfo=VN_TZ).timestamp()
        opens, lunch0, lunch1, closes = (base + h * 3600 for h in (7.5, 11.5, 13.25, 17.0))
        free_at = {c.number: opens + rng.uniform(0, 600) for c in site.counters}
        breaks: dict[int, tuple[float, float]] = {}
        for c in site.counters:  # lunch, and for half of them a short break
            pid += 1
            pauses.append((pid, c.number, day, lunch0, lunch1, "nghỉ trưa"))
            if rng.random() < 0.5:
                pid += 1
                s0 = base + rng.uniform(9, 16) * 3600
                breaks[c.number] = (s0, s0 + rng.uniform(300, 1200))
                pauses.append((pid, c.number, day, *breaks[c.number], "việc riêng"))

        q = DayQueue(rng, counters_for, free_at, (lunch0, lunch1), breaks)

        n_today = max(10, int(rng.gauss(tickets_per_day, tickets_per_day * 0.15)))
        seq = {s: services[s].band[0] for s in svc_ids}
        issue_times = sorted(base + rng.choices(hours, hour_w)[0] * 3600 + rng.random() * 3600 for _ in range(n_today))
        for issued in issue_times:
            tid += 1
            svc = rng.choices(svc_ids, svc_w)[0]
            number = seq[svc]
            seq[svc] += 1
            r = rng.random()
            row = [tid, day, svc, number, format_number(number), None, issued, issued, svc, "done",
                   None, None, None, 0, None, 0, 0, 0, None, None, None, 0, "dispenser-1"]  # … issued_by
            counter, officer, called = q.serve_at(svc, issued)
            if called > closes:  # still waiting when the day ended
                row[9], row[14] = "expired", base + 28 * 3600
                tickets.append(tuple(row))
                continue
            if r < 0.02:  # gave up and asked the dispenser to void
                row[9], row[14], row[20] = "voided", issued + (called - issued) * rng.random(), "left"
                tickets.append(tuple(row))
                continue
            row[10], row[11], row[12] = counter, called, called
            if r < 0.07:  # nobody came to the counter
                vid += 1
                end = called + rng.uniform(60, 120)
                visits.append((vid, tid, day, counter, officer, svc, called, end, "no-show", 0, 1))
                q.free_at[counter] = end
                row[9], row[13], row[14] = "no-show", 1, end
                tickets.append(tuple(row))
                continue
            cur_svc, t_call = svc, called
            if r < 0.10:  # sent on to another service, keeps the arrival time
                vid += 1
                end = called + rng.uniform(60, 300)
                visits.append((vid, tid, day, counter, officer, svc, called, end, "transferred", 0, 0))
                q.free_at[counter] = end
                cur_svc = rng.choice([s for s in svc_ids if s != svc])
                counter, officer, t_call = q.serve_at(cur_svc, end)
                row[2], row[10], row[12], row[17] = cur_svc, counter, t_call, 1
            vid += 1
            dur = rng.lognormvariate(-0.3, 0.5) * services[cur_svc].mean_service_min * 60
            inferred = 1 if rng.random() < 0.3 else 0
            finished = t_call + dur
            visits.append((vid, tid, day, counter, officer, cur_svc, t_call, finished, "served", inferred, 0))
            q.free_at[counter] = finished + rng.uniform(10, 60)
            row[14], row[15] = finished, inferred
            if rng.random() < 0.4:
                row[18] = rng.choices([1, 2, 3, 4, 5], [2, 3, 10, 35, 50])[0]
                row[19] = finished + 20
            tickets.append(tuple(row))
        for s in svc_ids:
            db.execute("INSERT INTO sequences VALUES (?,?,?)", (day, s, seq[s] - 1))
    visits.sort(key=lambda v: v[6])  # the hub writes visits in call order
    visits = [(i + 1, *v[1:]) for i, v in enumerate(visits)]
    with led.transaction():
        if tickets:
            db.executemany(f"INSERT INTO tickets VALUES ({','.join('?' * len(tickets[0]))})", tickets)
        db.executemany(f"INSERT INTO visits (id, ticket_id, day, counter, officer, service, called_at, ended_at, outcome, "
                           f"inferred, recalls) VALUES ({','.join('?' * 11)})", visits)
        db.executemany("INSERT INTO pauses VALUES (?,?,?,?,?,?)", pauses)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    led.close()
    return len(tickets)


CPU: list[float] = []  # CPU seconds of the last timed() runs: less moved by other processes than wall time


def timed(fn, runs: int) -> tuple[float, float, object]:
    """Median and p99 wall seconds of ``runs`` calls, and the last result (CPU times go to CPU)."""
    xs = []
    CPU.clear()
    res = None
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        res = fn()
        xs.append(time.perf_counter() - t)
        CPU.append(time.process_time() - c)
    xs.sort()
    p99 = xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]
    return statistics.median(xs), p99, res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets-per-day", type=int, default=350)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--keep", type=Path, help="write the ledger here and keep it")
    args = ap.parse_args(argv)
    site = bench_site(load_site(ROOT / "config" / "site.example.toml"))
    tmp = tempfile.TemporaryDirectory()
    path = args.keep or Path(tmp.name) / "ledger.sqlite"
    if path.exists():
        path.unlink()
    t = time.perf_counter()
    n = generate_history(path, site, first=date(2026, 1, 1), days=365, tickets_per_day=args.tickets_per_day)
    gen_s = time.perf_counter() - t
    db = open_readonly(path)
    n_visits = db.execute("SELECT COUNT(*) FROM visits").fetchone()[0]
    print(f"history: {n} tickets, {n_visits} visits over 2026 ({path.stat().st_size / 1e6:.1f} MB) "
          f"generated in {gen_s:.1f} s")
    now = datetime(2027, 1, 5, 10, 0, tzinfo=VN_TZ).timestamp()
    period = "2026-Q4"
    q_tickets = db.execute("SELECT COUNT(*) FROM tickets WHERE day BETWEEN '2026-10-01' AND '2026-12-31'").fetchone()[0]

    def baseline() -> int:  # the report's own SQL, rows fetched and nothing computed: its floor
        s = datetime(2026, 10, 1, 4, tzinfo=VN_TZ).timestamp()
        e = datetime(2027, 1, 1, 4, tzinfo=VN_TZ).timestamp()
        lo, hi = db.execute(R._VISIT_RANGE_SQL, (s, e)).fetchone()
        a = db.execute(R._TICKET_SQL, ("2026-10-01", "2026-12-31")).fetchall()
        b = db.execute(R._VISIT_SQL, (lo, hi, "2026-10-01", "2026-12-31")).fetchall()
        c = db.execute(R._PAUSE_SQL, ("2026-10-01", "2026-12-31")).fetchall()
        return len(a) + len(b) + len(c)

    base_med, base_p99, _ = timed(baseline, args.runs)
    print(f"\nquarter {period}: {q_tickets} tickets; runs={args.runs}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work inflates wall times)")
    base_cpu = statistics.median(CPU)
    print(f"  {'baseline: SQL fetch only':<28} median {base_med * 1000:7.1f} ms  p99 {base_p99 * 1000:7.1f} ms  "
          f"cpu {base_cpu * 1000:6.1f} ms")
    report = None
    for g in ("service", "counter", "officer", "day", "hour"):
        med, p99, rep = timed(lambda g=g: build_report(db, site, period=period, group_by=g, now=now), args.runs)
        if g == "service":
            report = rep
        cpu = statistics.median(CPU)
        print(f"  {'report by ' + g:<28} median {med * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
              f"cpu {cpu * 1000:6.1f} ms  ×{cpu / base_cpu:.2f} of baseline cpu  {'OK < 1 s' if med < 1 else 'SLOW'}")
    med, p99, _ = timed(lambda: build_report(db, site, period="2026", group_by="service", now=now), max(3, args.runs // 3))
    print(f"  {'whole year by service':<28} median {med * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")

    tracemalloc.start()
    build_report(db, site, period=period, group_by="day", now=now)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\nmemory: report peak (tracemalloc) {peak / 1e6:.1f} MB; "
          f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    try:
        from xephang_reports import charts as report_charts
        from xephang_reports import render as report_render
    except ImportError:  # renderers not built yet
        return 0
    assert report is not None
    out = Path(tmp.name) / "out"
    out.mkdir(exist_ok=True)
    print("\nrenderers (quarter by service):")
    for name, fn in (
        ("terminal table", lambda: report_render.render_table(report)),
        ("csv", lambda: report_render.write_csv(report, out / "r.csv")),
        ("xlsx", lambda: report_render.write_xlsx(report, out / "r.xlsx")),
        ("charts (3 PNG)", lambda: report_charts.write_charts(report, out)),
        ("html (charts embedded)", lambda: report_render.write_html(report, out / "r.html")),
    ):
        med, p99, _ = timed(fn, 3)
        print(f"  {name:<28} median {med * 1000:7.1f} ms")
    db.close()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
