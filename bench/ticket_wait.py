"""Benchmark: what a phone's ``ticket-wait`` costs the hub.

A simulated day (the demo's centre, ``xephang_ops.sim``; ``--day rush`` for the morning rush of
``bench/wait_estimate.py``) runs through the queue engine without a broker. At every
``--every``-th ticket issued, it times, on that very state, the hub's answer for up to 10
waiting tickets (what one ``ticket-wait`` request asks: ``QueueEngine.wait_range`` for each, the
engine's per-revision cache emptied first so every figure is a played-forward day), next to the
old single figure (``QueueEngine.estimate``) for the same tickets as the baseline of the same run.
CPU time (``time.process_time``), so a shared machine does not inflate it.

It prints the median and p99 per ticket and per 10-ticket request, by how many were waiting,
and what webd's pacing (one request every 2 s at most, docs/web.md) costs the hub at worst.

    .venv/bin/python bench/ticket_wait.py [--day demo|rush] [--seed 1] [--every 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wait_estimate import DAY, END, SCENARIOS, SITE  # noqa: E402
from hubd.engine import QueueEngine  # noqa: E402
from xephang.settings import load_site  # noqa: E402
from xephang_ops.sim import ARRIVAL_PROFILE, CentreSim  # noqa: E402
from xephang_ops.simday import run_day  # noqa: E402

ASK = 10  # tickets in one ticket-wait request at most (contract.TICKET_WAIT_MAX)
PACE_S = 2.0  # webd asks at most once per this many seconds (webd.main.WAIT_ASK_GAP_S)


def _p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--day", choices=("demo", "rush"), default="rush")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--every", type=int, default=5, help="measure at every N-th ticket issued")
    a = ap.parse_args(argv)
    site = load_site(SITE)
    sc = SCENARIOS[a.day]
    sim = CentreSim(site, start=DAY, end=END, seed=a.seed, arrivals_until=END - 15 * 60,
                    **{"profile": ARRIVAL_PROFILE, **sc.kwargs})
    per_ticket: list[tuple[int, float]] = []  # (waiting, s)
    per_request: list[tuple[int, float]] = []
    base_ticket: list[float] = []
    n = 0

    def measure(eng: QueueEngine, data: dict[str, Any], now: float) -> dict[str, Any]:
        nonlocal n
        n += 1
        if n % a.every:
            return {}
        waiting = [t for t in eng.tickets.values() if t.state == "waiting"]
        ask = waiting[:ASK]
        eng._wait_cache.clear()
        eng._state_waits.clear()
        t0 = time.process_time()
        for t in ask:
            t1 = time.process_time()
            eng.wait_range(t.service, now, t)
            per_ticket.append((len(waiting), time.process_time() - t1))
        per_request.append((len(waiting), time.process_time() - t0))
        for t in ask:
            t1 = time.process_time()
            eng.estimate(t.service, eng.people_ahead(t))
            base_ticket.append(time.process_time() - t1)
        return {}

    run_day(site, sim, start=DAY, end=END, on_issue=measure)
    ms = [s * 1000 for _, s in per_ticket]
    rq = [s * 1000 for _, s in per_request]
    bs = [s * 1000 for s in base_ticket]
    print(f"ticket-wait cost on the hub — {sc.name} day, seed {a.seed}: {len(per_request)} requests, "
          f"{len(per_ticket)} tickets estimated (CPU time)")
    print(f"  per ticket:        median {statistics.median(ms):7.2f} ms   p99 {_p(ms, 0.99):7.2f} ms")
    print(f"  per request (≤{ASK}):  median {statistics.median(rq):7.2f} ms   p99 {_p(rq, 0.99):7.2f} ms")
    print(f"  baseline, the old single figure per ticket: median {statistics.median(bs):.3f} ms "
          f"(ratio {statistics.median(ms) / max(1e-9, statistics.median(bs)):.0f}×)")
    for lo, hi in ((0, 10), (10, 30), (30, 60), (60, 10**9)):
        xs = [s * 1000 for w, s in per_request if lo <= w < hi]
        if xs:
            print(f"  {lo:>3}–{hi if hi < 10**9 else '∞':<3} waiting: request median {statistics.median(xs):7.2f} ms, "
                  f"p99 {_p(xs, 0.99):7.2f} ms ({len(xs)} requests)")
    worst = _p(rq, 0.99) / 1000 / PACE_S
    print(f"  webd's pacing (one request per {PACE_S:.0f} s at most): at p99 the hub spends {worst:.1%} of one core "
          "on phones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
