"""The wait bench's oracle copies a simulated day right after a ticket is issued and plays the rest
forward with fresh dice: a copy must be the whole day (nothing shared with the original), and the
oracle's range is rounded as a printed range is."""

from __future__ import annotations

from pathlib import Path

from tests.benchmod import load_bench
from xephang.settings import load_site
from xephang_ops.sim import CentreSim
from xephang_ops.simday import DayRun, run_day

ROOT = Path(__file__).resolve().parents[2]


def _bench_module():
    return load_bench('wait_estimate')


def test_a_copy_with_the_days_own_dice_calls_each_ticket_when_the_day_did():
    bench = _bench_module()
    site = load_site(bench.SITE)
    rush = bench.SCENARIOS["rush"]

    def sim() -> CentreSim:
        return CentreSim(site, start=bench.DAY, end=bench.END, seed=3, arrivals_until=bench.ARRIVALS_UNTIL,
                         **bench.sim_kwargs(rush))

    live = DayRun(site, sim(), start=bench.DAY, end=bench.END, on_issue=bench.baseline)
    forked: dict[int, float] = {}
    while not live.over:
        before = len(live.day.issued)
        if live.advance() and len(live.day.issued) > before and before % 10 == 0:
            tid = max(live.day.issued)
            forked[tid] = bench.fork_wait(live, site, rush, tid, None)
    assert len(forked) >= 10
    for tid, wait in forked.items():
        assert wait == (live.day.first_call[tid] - live.day.issued[tid]["issued_at"]) / 60
    # the copies left the day they were taken from as it would have been without them
    alone = run_day(site, sim(), start=bench.DAY, end=bench.END, on_issue=bench.baseline)
    assert (alone.issued, alone.first_call, alone.refused) == (live.day.issued, live.day.first_call, live.day.refused)


def test_fresh_dice_give_other_days():
    bench = _bench_module()
    site = load_site(bench.SITE)
    rush = bench.SCENARIOS["rush"]
    live = DayRun(site, CentreSim(site, start=bench.DAY, end=bench.END, seed=3, arrivals_until=bench.ARRIVALS_UNTIL,
                                  **bench.sim_kwargs(rush)), start=bench.DAY, end=bench.END, on_issue=bench.baseline)
    while len(live.day.issued) < 40:
        live.advance()
    tid = max(live.day.issued)
    waits = [bench.fork_wait(live, site, rush, tid, f"test:{k}") for k in range(8)]
    assert len(set(waits)) > 4
    assert waits == [bench.fork_wait(live, site, rush, tid, f"test:{k}") for k in range(8)]  # reproducible


def test_the_oracle_range_is_the_narrowest_interval_rounded_as_printed():
    bench = _bench_module()
    waits = [1.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 60.0]
    assert bench.narrowest(waits, 0.8) == (21.0, 28.0)
    r = bench.oracle_range(waits, 0.8)
    assert (r.low_min, r.high_min) == (20, 30)
    r = bench.oracle_range([2.0, 2.5, 3.0, 3.5], 0.85)
    assert (r.low_min, r.high_min) == (0, 5)  # "dưới 5 phút"
    r = bench.oracle_range([30.0, 40.0, 90.0, 95.0, float("inf")], 0.8)
    assert (r.low_min, r.high_min) == (30, None)  # wider than 45 minutes: "hơn 30 phút"
