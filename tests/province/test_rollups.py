"""The rollups give the province report the full computation's figures, figure by figure.

Two centres' hubs (the real engine) run across a month end; their events arrive shuffled, twice,
in batches of any size. After every step the report read from the rollups equals the report
computed from every ticket and visit: each row and the totals (counts, means, medians, P90s,
ratings, flags), arrivals per hour, wait bands and counter load. The incrementally kept rollups
also equal the ones rebuilt from scratch.
"""

from __future__ import annotations

import random
from datetime import date

import pytest

from province import rollups
from province.db import upsert_site
from province.ingest import Store
from province.reports import ProvinceReportError, build_province_report
from province.synth import CentreSim, site_with_slug

FIRST = date(2026, 9, 28)  # a Monday: a week across the end of September (and of Q3)
GROUPINGS = ("site", "service", "site,service", "month", "quarter", "service,month", "day", "site,day",
             "service,day")
PERIODS = ("2026-09", "2026-10", "2026-Q3", "2026-Q4", "2026", "2026-09-01..2026-10-31")


@pytest.fixture(scope="module")
def week(tmp_path_factory, site):
    out = []
    for i, slug in enumerate(("tuong-linh", "xuan-quang")):
        s = site_with_slug(site, slug)
        sim = CentreSim(s, tmp_path_factory.mktemp(slug) / "ledger.db", seed=i + 21)
        out.append((s, sim.days(FIRST, 7, tickets=70 + 20 * i), sim.now))
        sim.close()
    return out


def assert_same_reports(conn, now: float, *, sites=None) -> int:
    """Every grouping and period: rollup report == full report. Returns the rows compared."""
    n = 0
    for period in PERIODS:
        for by in GROUPINGS:
            full = build_province_report(conn, period=period, group_by=by, now=now, sites=sites, method="full")
            fast = build_province_report(conn, period=period, group_by=by, now=now, sites=sites, method="rollup")
            for a, b in zip(full["rows"], fast["rows"], strict=True):
                assert a == b, (period, by, a["key"])
            assert full["totals"] == fast["totals"], (period, by)
            assert full == fast, (period, by)  # arrivals, bands, counter load, days
            n += len(full["rows"])
    return n


def rollup_rows(conn) -> dict[str, list[tuple]]:
    out = {}
    with conn.cursor() as cur:
        for table in ("roll_tickets", "roll_visits", "roll_counters", "roll_hist", "roll_hours", "roll_hist_day"):
            cur.execute(f"SELECT * FROM {table} WHERE {'n <> 0' if table.startswith(('roll_hist', 'roll_hours')) else 'true'} "
                        "ORDER BY 1, 2, 3, 4" + (", 5" if table.startswith("roll_hist") else ""))
            out[table] = cur.fetchall()
    conn.commit()
    return out


@pytest.mark.timeout(400)  # 9 groupings × 6 periods × 3 moments, each computed both ways
def test_rollup_report_equals_the_full_computation_figure_by_figure(pg, week):
    rng = random.Random(5)
    s0, s1 = week[0][0], week[1][0]
    upsert_site(pg, s0)  # the second centre stays unregistered: the Vietnamese defaults
    msgs = [m for _, events, _ in week for m in events]
    msgs += rng.sample(msgs, len(msgs) // 5)  # redelivered
    rng.shuffle(msgs)
    half = len(msgs) // 2
    store = Store(pg)
    i = 0
    while i < half:  # the first half, in batches of any size
        n = rng.randint(1, 300)
        store.write(msgs[i:min(i + n, half)])
        i += n
    end_of_week = max(now for _, _, now in week)
    during = end_of_week - 3 * 3600  # the last afternoon: tickets still waiting and at the counters
    assert assert_same_reports(pg, during) > 20
    while i < len(msgs):
        n = rng.randint(1, 300)
        store.write(msgs[i:i + n])
        i += n
    rep = build_province_report(pg, period="2026-Q4", group_by="site", now=during, method="full")
    assert rep["totals"]["open"] > 0 and rep["totals"]["no_shows"] and rep["totals"]["transferred"]
    assert rep["totals"]["ratings"] and rep["totals"]["service_time"]["n"] > 100
    assert assert_same_reports(pg, during) > 20
    next_week = end_of_week + 7 * 86400  # those open tickets have expired, the open visits closed by the reset
    rep = build_province_report(pg, period="2026-Q4", group_by="site", now=next_week, method="full")
    assert rep["totals"]["expired"] > 0 and rep["totals"]["open"] == 0
    assert assert_same_reports(pg, next_week) > 20
    assert_same_reports(pg, next_week, sites=[s1.site.slug])

    # kept batch by batch, the rollups are exactly what a rebuild from scratch counts
    kept = rollup_rows(pg)
    with pg.cursor() as cur:
        rollups.rebuild(cur)
    pg.commit()
    assert rollup_rows(pg) == kept

    # a centre registered late (targets, zone, scale): its rollups are recounted at once
    upsert_site(pg, s1)
    assert rollup_rows(pg) != kept
    assert_same_reports(pg, next_week)


def test_the_auto_method_takes_the_rollups_only_where_they_apply(pg, week):
    s, events, now = week[0]
    upsert_site(pg, s)
    Store(pg).write(events)
    for period, by in (("2026-10-01", "site"), ("2026-09-29..2026-10-02", "site"), ("2026-10-01..2026-10-02", "day")):
        with pytest.raises(ProvinceReportError):
            build_province_report(pg, period=period, group_by=by, now=now, method="rollup")
        assert (build_province_report(pg, period=period, group_by=by, now=now)
                == build_province_report(pg, period=period, group_by=by, now=now, method="full"))
    for by in ("day", "site,day", "service,day"):  # whole months by day: the rollups answer (auto: by day alone)
        assert (build_province_report(pg, period="2026-Q4", group_by=by, now=now, method="rollup")
                == build_province_report(pg, period="2026-Q4", group_by=by, now=now))


def test_the_report_command_chooses_the_method(pg, pg_dsn, week, capsys):
    from xephang_ops.cli import main

    s, events, _ = week[0]
    upsert_site(pg, s)
    Store(pg).write(events)
    assert main(["province-report", "--dsn", pg_dsn, "--period", "2026-Q4", "--method", "rollup"]) == 0
    fast = capsys.readouterr().out
    assert main(["province-report", "--dsn", pg_dsn, "--period", "2026-Q4", "--method", "full"]) == 0
    assert capsys.readouterr().out == fast and "Quý IV/2026" in fast
    assert main(["province-report", "--dsn", pg_dsn, "--period", "2026-10-01", "--method", "rollup"]) == 2
    assert "whole months" in capsys.readouterr().out
