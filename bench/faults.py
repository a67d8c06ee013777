"""Fault bench: the long forms of tests/faults/ and a soak, printed as one table.

Every scenario runs the real daemons as processes over a real mosquitto (see
tests/faults/harness.py). Columns: operations sent, faults injected, tickets lost,
duplicates, recovery time p99. Every line should read 0 lost, 0 duplicated; a line that
does not is a bug, printed as it is (with its note), never hidden.

The soak: a simulated week (Mon–Sun, the centre open Mon–Sat 07:30–17:00) at high clock
speed, a site with 8 counters and 1,000 tickets a day, every daemon as a process (hub,
dispenser, 8 counter boxes, hall board, hall speaker). Resident memory and open file
descriptors of every daemon are sampled from /proc; the ledger is checked at the end.

    .venv/bin/python bench/faults.py                 # everything, full size (~25 min on a Pi 5)
    .venv/bin/python bench/faults.py --scale 0.25    # a quarter of every count
    .venv/bin/python bench/faults.py --only soak --soak-days 7 --speed 1200
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "faults"))

import scenarios as S  # noqa: E402
from harness import HEADER, Centre, Loader, Observer, Tally, account, read_ledger  # noqa: E402

from xephang.clock import VN_TZ, ScaledClock  # noqa: E402


def _run(name: str, fn: Callable[[Path], tuple[Tally, dict[str, Any]]]) -> Tally:
    with tempfile.TemporaryDirectory(prefix="xephang-faults-") as d:
        t0 = time.monotonic()
        try:
            t, _ = fn(Path(d))
        except Exception as exc:  # a scenario that cannot finish is a finding, printed as one
            t = Tally(name, lost=-1)
            t.notes.append(f"scenario failed: {exc!r}")
            traceback.print_exc()
        t.notes.append(f"{time.monotonic() - t0:.0f} s")
    print(t.row(), flush=True)
    return t


def scenarios(scale: float) -> list[Tally]:
    n = lambda x: max(1, int(x * scale))  # noqa: E731
    plan: list[tuple[str, Callable[[Path], tuple[Tally, dict[str, Any]]]]] = [
        ("broker persist", lambda p: S.broker_restart(p, persistence=True, restarts=n(20), ops=20)),
        ("broker no persist", lambda p: S.broker_restart(p, persistence=False, restarts=n(20), ops=20)),
        ("hub kills", lambda p: S.hub_kills(p, kills=n(200))),
        ("node will", lambda p: S.node_will(p, rounds=n(20))),
        ("partition", lambda p: S.partition(p, rounds=n(20))),
        ("dup+reorder", lambda p: S.duplicates_reordered(p, calls=n(30))),
        ("fuzz", lambda p: S.fuzz(p, cases=n(3000))),
        ("security", S.security),
        ("hardware", S.hardware),
        ("audio gone", S.audio_gone),
    ]
    print(HEADER, flush=True)
    return [_run(name, fn) for name, fn in plan]



# ---------------------------------------------------------------------------------------------
# Soak


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def soak(days: int, speed: float, per_day: int, counters: int) -> tuple[Tally, list[str]]:
    t = Tally(f"soak {days} d x{speed:g}, {counters} counters")
    lines: list[str] = []
    # the simulated week starts on a Monday 06:00 local
    today = datetime.now(VN_TZ).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    origin = datetime.combine(monday, dtime(6, 0), VN_TZ).timestamp()
    with tempfile.TemporaryDirectory(prefix="xephang-soak-") as d:
        c = Centre(Path(d), counters=counters, speed=speed, origin=origin, health_s=5.0)
        c.real_origin = time.time()
        clock = ScaledClock(origin, c.real_origin, speed)
        with c:
            nodes = ["hub", "dispenser-1", *(f"counter-{i}" for i in range(1, counters + 1)), "display-hall",
                     "announcer-hall"]
            for node in nodes:
                c.start(node)
            obs = Observer(c.bus("tech-obs"))
            if not obs.wait(lambda: all(obs.online(x) for x in nodes), 60):
                t.notes.append("not every node came up")
            ld = Loader(c.bus("tech-load"), list(range(1, counters + 1)), S.SERVICES, timeout_s=2.0, attempts=10)
            open_s = (17 - 7.5) * 3600
            end = origin + days * 86400
            samples: dict[str, list[tuple[float, int, int]]] = {x: [] for x in nodes}
            next_sample = 0.0
            day_issued: dict[str, int] = {}
            while clock.now() < end:
                now = clock.now()
                local = datetime.fromtimestamp(now, VN_TZ)
                day = local.date().isoformat()
                opened = datetime.combine(local.date(), dtime(7, 30), VN_TZ).timestamp()
                if local.weekday() < 6 and 0 <= now - opened <= open_s:
                    due = int(per_day * (now - opened) / open_s)
                    while day_issued.get(day, 0) < due and ld.bus.pending_requests() < 40:
                        ld.issue()
                        ld.call()
                        day_issued[day] = day_issued.get(day, 0) + 1
                obs.wait(lambda: False, 0.02, ld.bus)
                if time.monotonic() >= next_sample:
                    next_sample = time.monotonic() + 2.0
                    for x in nodes:
                        p = c.procs[x]
                        samples[x].append((now, _rss_kb(p.pid), _fds(p.pid)))
            obs.wait(ld.idle, 60, ld.bus)
            obs.wait(lambda: False, 2.0)
            books = read_ledger(c.ledger_path)
            obs.repair(books.max_rev)
            t.operations = ld.sent
            account(books, obs, ld, t)
            dead = [x for x in nodes if not c.procs[x].alive()]
            if dead:
                t.lost += len(dead)
                t.notes.append(f"died: {dead}")
            lines.append(f"simulated {days} days at x{speed:g}: {sum(day_issued.values())} tickets issued "
                         f"({', '.join(f'{k[5:]}: {v}' for k, v in sorted(day_issued.items()))})")
            lines.append(f"ledger: {books.tickets} tickets {dict(books.by_state)}, revs 1..{books.max_rev} "
                         f"missing {len(books.revs_missing)}, outbox {books.outbox}, numbers reused {books.numbers_reused}, "
                         f"gave up {ld.gave_up}, events repaired by resync {obs.repaired}")
            lines.append(f"{'daemon':<16} {'RSS day 1 MB':>12} {'RSS end MB':>10} {'growth':>7} {'fds start':>9} {'fds end':>7}")
            for x in nodes:
                sm = [s for s in samples[x] if s[1] > 0]
                if not sm:
                    lines.append(f"{x:<16} (no samples: process gone)")
                    continue
                # day 1 = after the first simulated day's load (imports, caches, fonts warmed up)
                warm = [s for s in sm if s[0] >= origin + 86400] or sm[len(sm) // 2:]
                r0, r1 = warm[0][1] / 1024, sm[-1][1] / 1024
                lines.append(f"{x:<16} {r0:>12.1f} {r1:>10.1f} {100 * (r1 - r0) / r0:>6.1f}% {sm[0][2]:>9} {sm[-1][2]:>7}")
    return t, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's count")
    ap.add_argument("--only", choices=["scenarios", "soak"], default=None)
    ap.add_argument("--soak-days", type=int, default=7)
    ap.add_argument("--speed", type=float, default=1200.0, help="simulated seconds per real second")
    ap.add_argument("--per-day", type=int, default=1000)
    ap.add_argument("--counters", type=int, default=8)
    a = ap.parse_args()
    bad = 0
    if a.only in (None, "scenarios"):
        rows = scenarios(a.scale)
        bad += sum(1 for r in rows if r.lost or r.duplicates)
        for r in rows:
            if r.notes:
                print(f"  {r.scenario}: {'; '.join(r.notes)}")
    if a.only in (None, "soak"):
        print("\nsoak", flush=True)
        print(HEADER)
        t, lines = soak(a.soak_days, a.speed, a.per_day, a.counters)
        print(t.row())
        for line in lines:
            print("  " + line)
        if t.notes:
            print("  notes: " + "; ".join(t.notes))
        bad += int(bool(t.lost or t.duplicates))
    if bad:
        print(f"\n{bad} line(s) with lost or duplicated tickets: bugs, see the notes")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
