"""Figures the head can reconcile: every table of the report adds up by itself.

Checked on simulated demo days (the demo's citizens and officers pressing keys, straight through
the hub's engine into a real ledger), on the report bench's generated history, and on the story
ledger of ``conftest.py`` whose figures are known by hand.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from hubd.ledger import Ledger
from tests.benchmod import load_bench
from tests.reports.conftest import NOW
from xephang.clock import VN_TZ
from xephang.site import Site
from xephang_ops.sim import CentreSim
from xephang_ops.simday import run_day
from xephang_reports.build import GROUPINGS, build_report, open_readonly, reconcile

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 23, 7, 30, tzinfo=VN_TZ).timestamp()  # a Monday
H = 3600.0


def _bench_module():
    return load_bench('report_quarter')


def demo_ledger(site: Site, path: Path, *, seed: int, until: float, **sim_kw) -> Path:
    led = Ledger(path)
    try:
        sim = CentreSim(site, start=DAY, end=DAY + 9.5 * H, seed=seed, arrivals_until=DAY + 9.25 * H, **sim_kw)
        run_day(site, sim, start=DAY, end=until, ledger=led)
    finally:
        led.close()
    return path


def check_every_grouping(path: Path, site: Site, period: str, now: float) -> dict[str, dict]:
    db = open_readonly(path)
    reports = {}
    try:
        for g in GROUPINGS:
            rep = build_report(db, site, period=period, group_by=g, now=now)
            assert reconcile(rep) == [], (period, g, reconcile(rep))
            reports[g] = rep
    finally:
        db.close()
    return reports


@pytest.mark.parametrize(("seed", "kw"), [(1, {}), (2, {"pause_s": H, "pause_at": DAY + 1.5 * H}),
                                          (3, {"load": 1.5}), (4, {"pace": {1: 1.8}})],
                         ids=["demo-as-shipped", "paused-an-hour", "busy-day", "slow-officer"])
def test_a_whole_demo_day_reconciles_in_every_table(site, tmp_path, seed, kw):
    path = demo_ledger(site, tmp_path / "ledger.sqlite", seed=seed, until=DAY + 9.5 * H, **kw)
    reps = check_every_grouping(path, site, "2026-11-23", now=DAY + 24 * H)
    t = reps["service"]["totals"]
    # the day has everything the identities are about
    assert t["issued"] > 50 and t["transferred"] > 0 and t["transferred_in"] == t["transferred"]
    assert t["no_show_calls"] > t["no_shows"] > 0  # presses that sent a ticket back are not final no-shows
    assert any(r["served"] > r["issued"] for r in reps["service"]["rows"]) or t["transferred"] > 0
    # rows add up to the totals whatever the grouping
    for g in ("service", "day"):
        assert sum(r["calls"] for r in reps[g]["rows"]) == t["calls"]


def test_a_demo_day_still_running_reconciles_with_its_open_tickets(site, tmp_path):
    path = demo_ledger(site, tmp_path / "ledger.sqlite", seed=1, until=DAY + 2 * H)  # 09:30, the morning queue
    reps = check_every_grouping(path, site, "today", now=DAY + 2 * H)
    t = reps["service"]["totals"]
    assert t["open"] > 0 and t["serving"] > 0


def test_every_day_of_the_report_bench_reconciles(site, tmp_path):
    bench = _bench_module()
    big = bench.bench_site(site)
    path = tmp_path / "bench.sqlite"
    first = date(2026, 11, 2)
    bench.generate_history(path, big, first=first, days=8, tickets_per_day=120, seed=11)
    now = datetime(2026, 11, 20, 12, tzinfo=VN_TZ).timestamp()
    transfers = 0
    for i in range(8):
        d = first + timedelta(days=i)
        reps = check_every_grouping(path, big, d.isoformat(), now=now)
        transfers += reps["service"]["totals"]["transferred"]
    assert transfers > 0
    check_every_grouping(path, big, f"{first.isoformat()}..{(first + timedelta(days=7)).isoformat()}", now=now)


def test_the_story_ledger_reconciles_and_names_its_transfers(story_ledger, site):
    reps = check_every_grouping(story_ledger, site, "2026-11-23", now=NOW)
    rows = {r["key"]: r for r in reps["service"]["rows"]}
    # C: issued for land, transferred out of it, into civil status and served there
    assert (rows["dat-dai"]["transferred"], rows["ho-tich"]["transferred_in"]) == (1, 1)
    # D: two no-show presses, one final no-show
    assert (rows["chung-thuc"]["no_show_calls"], rows["chung-thuc"]["no_shows"]) == (2, 1)


def test_the_check_catches_a_figure_that_does_not_add_up(story_ledger, site):
    db = open_readonly(story_ledger)
    try:
        rep = build_report(db, site, period="2026-11-23", group_by="service", now=NOW)
    finally:
        db.close()
    bad = copy.deepcopy(rep)
    bad["rows"][0]["served"] += 1
    assert any("row" in m and "issued" in m for m in reconcile(bad))
    bad = copy.deepcopy(rep)
    bad["counter_load"][0]["idle_s"] += 600
    assert any("closed" in m for m in reconcile(bad))
    bad = copy.deepcopy(rep)
    bad["totals"]["transferred_in"] += 1
    assert reconcile(bad)


def test_a_counters_day_is_split_into_serving_idle_paused_and_closed(story_ledger, site):
    db = open_readonly(story_ledger)
    try:
        rep = build_report(db, site, period="2026-11-23", group_by="counter", now=NOW)
    finally:
        db.close()
    load = {c["counter"]: c for c in rep["counter_load"]}
    hours = (17 - 7.5) * H  # the example site's opening hours, one open day
    for c in load.values():
        assert c["hours_s"] == hours
        assert c["busy_s"] + c["idle_s"] + c["paused_s"] + c["closed_s"] == pytest.approx(hours + c["outside_s"], abs=1)
    # counter 2 served F at 00:10, after closing: that time is outside the opening hours, not lost
    assert load[2]["outside_s"] > 6 * H


def test_a_transferred_ticket_waits_and_expires_in_its_new_service(site, tmp_path):
    from hubd.engine import QueueEngine

    eng, led = QueueEngine(site), Ledger(tmp_path / "l.sqlite")
    t0 = DAY + H

    def do(out) -> None:
        with led.transaction():
            led.write(eng, out)

    do(eng.issue("dat-dai", None, t0))
    do(eng.call_next(3, t0 + 60))
    do(eng.transfer(3, "ho-tich", t0 + 300))  # sent to civil status, nobody calls it today
    led.close()
    db = open_readonly(tmp_path / "l.sqlite")
    try:
        live = build_report(db, site, period="2026-11-23", group_by="service", now=t0 + 600)
        later = build_report(db, site, period="2026-11-23", group_by="service", now=t0 + 24 * H)
    finally:
        db.close()
    for rep, state in ((live, "open"), (later, "expired")):
        rows = {r["key"]: r for r in rep["rows"]}
        assert (rows["dat-dai"]["issued"], rows["dat-dai"]["transferred"], rows["dat-dai"][state]) == (1, 1, 0)
        assert (rows["ho-tich"]["issued"], rows["ho-tich"]["transferred_in"], rows["ho-tich"][state]) == (0, 1, 1)
        assert reconcile(rep) == []
