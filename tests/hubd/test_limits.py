"""The hub's pace for one board (xephang/limits.py): what a real hall does is never refused, and an
attacker cannot grow the table."""

from __future__ import annotations

from hubd.main import HubConfig
from tests.benchmod import load_bench
from xephang.limits import RateLimit
from xephang.settings import load_site
from xephang_ops.sim import CentreSim
from xephang_ops.simday import run_day


def test_the_busiest_simulated_days_from_a_single_dispenser_are_never_refused():
    """The wait bench's morning rush (40 an hour from 08:00) and the demo's day with twice its
    citizens, every ticket from ONE dispenser (the worst case: a hall with one machine), paced as the
    hub paces them with its default settings: not one ticket refused."""
    bench = load_bench("wait_estimate")
    site = load_site(bench.SITE)
    h = HubConfig()
    for scenario, kwargs in (("rush", bench.sim_kwargs(bench.SCENARIOS["rush"])), ("demo x2", {"load": 2.0})):
        for seed in (1, 2, 3):
            issued: list[tuple[float, str]] = []

            def seen(engine, data, now, issued=issued):
                issued.append((now, data["ticket"]["service"]))
                return {}

            sim = CentreSim(site, start=bench.DAY, end=bench.END, seed=seed, arrivals_until=bench.ARRIVALS_UNTIL,
                            **kwargs)
            run_day(site, sim, start=bench.DAY, end=bench.END, on_issue=seen)
            limit = RateLimit(burst=h.issue_burst, per_minute=h.issue_per_hour / 60)
            refused = [(t, s) for t, s in issued if limit.take(("dispenser-1", s), t)]
            assert len(issued) > 100 and refused == [], (scenario, seed, len(issued), refused[:3])


def test_a_bucket_gives_its_burst_then_its_pace_and_forgets_the_least_recent_keys():
    limit = RateLimit(burst=3, per_minute=6, max_keys=2)
    assert [limit.take("a", 0.0) for _ in range(4)] == [0, 0, 0, 10]  # then one every 10 s
    assert limit.take("a", 10.0) == 0 and limit.take("a", 10.0) == 10
    assert limit.take("a", 5.0) == 10  # a clock that went back refills nothing
    limit.take("b", 10.0)
    limit.take("c", 10.0)  # a third key: the least recently used one ("a") is forgotten
    assert len(limit) == 2 and limit.full("a", 10.0) and not limit.full("c", 10.0)
    assert limit.full("c", 20.0)  # 10 s at 6 a minute: its one token is back
