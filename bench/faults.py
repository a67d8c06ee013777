"""Fault bench: the long forms of tests/faults/ and a soak, printed as one table.

Every scenario runs the real daemons as processes over a real mosquitto (see
xephang_faults/harness.py). Columns: operations sent, faults injected, tickets lost,
duplicates, recovery time p99. Every line should read 0 lost, 0 duplicated; a line that
does not is a bug, printed as it is (with its note), never hidden.

The soak: a simulated week (Mon–Sun, the centre open Mon–Sat 07:30–17:00) at high clock
speed, a site with 8 counters and 1,000 tickets a day, every daemon as a process (hub,
dispenser, 8 counter boxes, hall board, hall speaker), the load made by the boxes' own keys
(``R/sim/{node}/press``: the dispenser's service keys, every counter's ``next``). Resident
memory and open file descriptors of every daemon are sampled from /proc; the ledger is
checked at the end. The boxes take ~10 presses a second, hence the default speed ×300.

    .venv/bin/python bench/faults.py                 # everything, full size (~25 min on a Pi 5)
    .venv/bin/python bench/faults.py --scale 0.25    # a quarter of every count
    .venv/bin/python bench/faults.py --only soak --soak-days 7 --speed 300
    .venv/bin/python bench/faults.py --only attack   # fuzz + security with what got through (all 0)
"""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xephang_faults import scenarios as S
from xephang_faults.harness import HEADER, Tally


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
        ("audio gone mid-run", lambda p: S.audio_gone_mid_run(p, rounds=n(5))),
    ]
    print(HEADER, flush=True)
    return [_run(name, fn) for name, fn in plan]



# ---------------------------------------------------------------------------------------------
# An attacker holding one board's password (or a technician's): what got through


def attack(scale: float) -> int:
    """The fuzz and security scenarios with their facts: payloads tried, daemons killed or
    silenced, forbidden actions that got through. Every 'got through' figure must be 0."""
    n = max(1, int(3000 * scale))
    with tempfile.TemporaryDirectory(prefix="xephang-attack-") as d:
        t0 = time.monotonic()
        tf, f = S.fuzz(Path(d) / "fuzz", cases=n)
        fuzz_s = time.monotonic() - t0
        t0 = time.monotonic()
        ts, g = S.security(Path(d) / "security")
        sec_s = time.monotonic() - t0
    killed = sum(not a for a in f["alive"].values()) + sum(not a for a in f["restarted_alive"].values())
    silenced = (not f["sessions_same"]) + (not f["serving_after"]) + (not f["serving_after_junk"]) + \
        (not f["restarted_online"]) + (not g["alive"]) + int(g["hub_knocked_off"])
    acted = (f["before"] != f["after"]) + len(f["retained_changed"]) + (not f["books_after_junk"]) + \
        (not f["hall_state_restored"])
    through = len(g["leaks"]) + len(g["retained_changed"]) + (g["before"] != g["after"]) + \
        (g["cross_counter"] != "forbidden") + sum(v != "refused" for (_, cid, _), v in g["takeover"].items()
                                                  if cid == "hub")
    print(f"payloads tried: {tf.operations - f['retained_junk']} in one batch ({f['distinct']} distinct; "
          f"{f['hostile_fields']} with hostile text in topic/file/SQL/log fields, {f['hostile_topics']} on hostile "
          f"request topics, {f['over_64k']} over 64 KiB), then {f['retained_junk']} left retained on every topic "
          f"a daemon reads and all 5 daemons restarted into them ({fuzz_s:.0f} s)")
    print(f"drops counted per daemon: {f['dropped']}; after the restart: "
          f"{ {k: sum(v.values()) for k, v in f['retained_dropped'].items()} }")
    print(f"security probes: {ts.operations} ({g['refused']} forbidden publishes refused with 135, "
          f"{g['strangers_refused']} strangers refused, {len(g['takeover'])} client-id takeover attempts on the hub: "
          f"{sum(v == 'refused' for v in g['takeover'].values())} refused, "
          f"{sum(v == 'own id' for v in g['takeover'].values())} given an id of their own) ({sec_s:.0f} s)")
    print(f"daemons killed: {killed}; daemons silenced or knocked off: {silenced}; bad input acted on: {acted}; "
          f"forbidden actions that got through: {through}")
    return killed + silenced + acted + through


# ---------------------------------------------------------------------------------------------
# Soak


def soak(days: int, speed: float, per_day: int, counters: int) -> tuple[Tally, list[str]]:
    """The load made by the real boxes (sim key presses), every daemon a process."""
    with tempfile.TemporaryDirectory(prefix="xephang-soak-") as d:
        t, f = S.soak_boxes(Path(d), hours=days * 24 - 7, speed=speed, per_day=per_day, counters=counters)
        return t, S.soak_lines(f)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's count")
    ap.add_argument("--only", choices=["scenarios", "soak", "attack"], default=None)
    ap.add_argument("--soak-days", type=int, default=7)
    ap.add_argument("--speed", type=float, default=300.0, help="simulated seconds per real second (the boxes press at most ~10 keys a second)")
    ap.add_argument("--per-day", type=int, default=1000)
    ap.add_argument("--counters", type=int, default=8)
    a = ap.parse_args()
    bad = 0
    if a.only == "attack":
        return 1 if attack(a.scale) else 0
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
