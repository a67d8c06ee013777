"""A simulated day straight through the queue engine: no broker, no daemons, no real time.

The demo's citizens and officers (:class:`xephang_ops.sim.CentreSim`) press keys; here each press
becomes the engine command the dispenser or counter box would send, and the engine's events
go back to the simulation as the demo's broker would deliver them. Optionally every outcome
is written to a ledger, so reports can be computed over the day. Used by
``bench/wait_estimate.py`` and by the report tests (identities on demo-shaped days); the wait
bench's oracle forks a :class:`DayRun` mid-day.
"""

from __future__ import annotations

from collections import deque
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


OnIssue = Callable[[QueueEngine, dict[str, Any], float], dict[str, Any]]


class DayRun:
    """:func:`run_day`'s loop, one press at a time, its whole state on the object: a caller can stop
    between two presses and deep-copy it (the wait bench forks the rest of the day from there)."""

    def __init__(self, site: Site, sim: CentreSim, *, start: float, end: float, ledger: Ledger | None = None,
                 engine: QueueEngine | None = None, on_issue: OnIssue | None = None, step_s: float = STEP_S) -> None:
        self.sim = sim
        self.end = end
        self.ledger = ledger
        self.on_issue = on_issue
        self.step_s = step_s
        self.engine = engine or QueueEngine(site)
        self.day = SimDay(self.engine, sim)
        self.now = start
        self.batch: deque[Press] | None = None  # presses of the tick at ``now`` not made yet
        self.pending_priority: str | None = None
        self.pending_transfer: set[int] = set()
        self.group = site.priority.groups[0].id if site.priority.groups else None
        self.services = {s.id for s in site.services}

    @property
    def over(self) -> bool:
        return self.batch is None and self.now > self.end

    def run(self) -> SimDay:
        """To ``end``."""
        while not self.over:
            self.advance()
        return self.day

    def advance(self) -> bool:
        """Make the next press of the tick at ``now``; when none is left, close the tick and move
        ``now`` on by ``step_s`` (False)."""
        if self.batch is None:
            self.batch = deque(self.sim.due(self.now))
        if self.batch:
            p = self.batch.popleft()
            try:
                self._press(p, max(self.now, p.at))
            except CommandError:
                self.day.refused += 1
            return True
        self.batch = None
        if self.ledger is None and int(self.now) % 600 == 0:
            self.engine.prune()
        self.now += self.step_s
        return False

    def _apply(self, out: Outcome, now: float) -> None:
        eng, sim = self.engine, self.sim
        if self.ledger is not None:
            with self.ledger.transaction():
                self.ledger.write(eng, out)
            eng.prune()
        for e in out.events:
            ev = {"kind": e.kind, "rev": e.rev, "at": e.at, **e.payload}
            if e.kind == "called":
                tid = e.payload["ticket"]["id"]
                self.day.first_call.setdefault(tid, now)
            sim.on_event(ev, now)
        for s in self.services:
            sim.on_waiting(s, sum(1 for t in eng.tickets.values() if t.state == "waiting" and t.service == s))

    def _press(self, p: Press, now: float) -> None:
        eng = self.engine
        if p.node == self.sim.dispenser:
            if p.button == "priority":
                self.pending_priority = self.group
                return
            out = eng.issue(p.button, self.pending_priority, now)
            self.pending_priority = None
            rec = dict(out.data)
            if self.on_issue is not None:
                rec.update(self.on_issue(eng, out.data, now))
            self.day.issued[out.data["ticket"]["id"]] = rec
            self._apply(out, now)
            return
        n = int(p.node.rsplit("-", 1)[1])
        b = p.button
        if b in self.services and n in self.pending_transfer:
            self.pending_transfer.discard(n)
            self._apply(eng.transfer(n, b, now), now)
        elif b == "transfer":
            self.pending_transfer.add(n)
        elif b == "next":
            self._apply(eng.call_next(n, now), now)
        elif b == "finish":
            self._apply(eng.finish(n, now), now)
        elif b == "recall":
            self._apply(eng.recall(n, now), now)
        elif b == "no-show":
            self._apply(eng.no_show(n, now), now)
        elif b == "pause":
            self._apply(eng.pause(n, "", now), now)
        elif b == "resume":
            self._apply(eng.resume(n, now), now)
        elif b.startswith("rate-"):
            self._apply(eng.rate(n, int(b[5:]), now), now)


def run_day(site: Site, sim: CentreSim, *, start: float, end: float, ledger: Ledger | None = None,
            engine: QueueEngine | None = None, on_issue: OnIssue | None = None, step_s: float = STEP_S) -> SimDay:
    """Drive ``sim`` from ``start`` to ``end`` against ``engine`` (a fresh one by default).

    ``on_issue(engine, data, now)`` may add fields to a ticket's record right after it is issued
    (the bench records the old point estimate there, computed on the same state)."""
    return DayRun(site, sim, start=start, end=end, ledger=ledger, engine=engine, on_issue=on_issue,
                  step_s=step_s).run()
