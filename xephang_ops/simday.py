"""A simulated day straight through the queue engine: no broker, no daemons, no real time.

The demo's citizens and officers (:class:`xephang_ops.sim.CentreSim`) press keys; here each press
becomes the engine command the dispenser or counter box would send, and the engine's events
go back to the simulation as the demo's broker would deliver them. Optionally every outcome
is written to a ledger, so reports can be computed over the day. Used by
``bench/wait_estimate.py`` and by the report tests (identities on demo-shaped days).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hubd.engine import CommandError, Outcome, QueueEngine
from hubd.ledger import Ledger
from xephang.site import Site
from xephang_ops.sim import CentreSim, Press

STEP_S = 5.0


@dataclass
class SimDay:
    """What happened: the engine, every ticket's issue reply and first call time."""

    engine: QueueEngine
    sim: CentreSim
    issued: dict[int, dict[str, Any]] = field(default_factory=dict)  # ticket id -> issue data + extras
    first_call: dict[int, float] = field(default_factory=dict)
    refused: int = 0


def run_day(site: Site, sim: CentreSim, *, start: float, end: float, ledger: Ledger | None = None,
            engine: QueueEngine | None = None, on_issue: Callable[[QueueEngine, dict[str, Any], float], dict[str, Any]]
            | None = None, step_s: float = STEP_S) -> SimDay:
    """Drive ``sim`` from ``start`` to ``end`` against ``engine`` (a fresh one by default).

    ``on_issue(engine, data, now)`` may add fields to a ticket's record right after it is issued
    (the bench records the old point estimate there, computed on the same state)."""
    eng = engine or QueueEngine(site)
    day = SimDay(eng, sim)
    pending_priority: str | None = None
    pending_transfer: set[int] = set()
    group = site.priority.groups[0].id if site.priority.groups else None
    services = {s.id for s in site.services}

    def apply(out: Outcome, now: float) -> None:
        if ledger is not None:
            with ledger.transaction():
                ledger.write(eng, out)
            eng.prune()
        for e in out.events:
            ev = {"kind": e.kind, "rev": e.rev, "at": e.at, **e.payload}
            if e.kind == "called":
                tid = e.payload["ticket"]["id"]
                day.first_call.setdefault(tid, now)
            sim.on_event(ev, now)
        for s in services:
            sim.on_waiting(s, sum(1 for t in eng.tickets.values() if t.state == "waiting" and t.service == s))

    def press(p: Press, now: float) -> None:
        nonlocal pending_priority
        if p.node == sim.dispenser:
            if p.button == "priority":
                pending_priority = group
                return
            out = eng.issue(p.button, pending_priority, now)
            pending_priority = None
            rec = dict(out.data)
            if on_issue is not None:
                rec.update(on_issue(eng, out.data, now))
            day.issued[out.data["ticket"]["id"]] = rec
            apply(out, now)
            return
        n = int(p.node.rsplit("-", 1)[1])
        b = p.button
        if b in services and n in pending_transfer:
            pending_transfer.discard(n)
            apply(eng.transfer(n, b, now), now)
        elif b == "transfer":
            pending_transfer.add(n)
        elif b == "next":
            apply(eng.call_next(n, now), now)
        elif b == "finish":
            apply(eng.finish(n, now), now)
        elif b == "recall":
            apply(eng.recall(n, now), now)
        elif b == "no-show":
            apply(eng.no_show(n, now), now)
        elif b == "pause":
            apply(eng.pause(n, "", now), now)
        elif b == "resume":
            apply(eng.resume(n, now), now)
        elif b.startswith("rate-"):
            apply(eng.rate(n, int(b[5:]), now), now)

    now = start
    while now <= end:
        for p in sim.due(now):
            try:
                press(p, max(now, p.at))
            except CommandError:
                day.refused += 1
        if ledger is None and int(now) % 600 == 0:
            eng.prune()
        now += step_s
    return day
