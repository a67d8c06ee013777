"""Synthetic centre traffic for tests and benchmarks: the hub's own engine and ledger, no broker.

``CentreSim`` drives a real ``hubd.engine.QueueEngine`` with a plausible mix of presses
(issue, call, finish, no-show, transfer, recall, rate, void, pause) on a simulated clock,
writes every outcome to a real ``hubd.ledger.Ledger`` (so the centre's own report can be
computed) and returns the events exactly as the hub publishes them: ``(topic, payload)``.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path

from hubd.engine import CommandError, Outcome, QueueEngine
from hubd.ledger import Ledger, event_json
from xephang.contract import Topics
from xephang.site import Site


def site_with_slug(site: Site, slug: str) -> Site:
    """A copy of ``site`` under another slug (one more centre with the same services)."""
    data = site.model_dump()
    data["site"]["slug"] = slug
    data["site"]["name_vi"] = f"{site.site.name_vi} ({slug})"
    return Site.model_validate(data)


class CentreSim:
    """One centre's hub engine + ledger on a simulated clock."""

    def __init__(self, site: Site, ledger_path: Path | str, *, seed: int = 1) -> None:
        self.site = site
        self.engine = QueueEngine(site)
        self.ledger = Ledger(ledger_path)
        self.ledger.db.execute("PRAGMA synchronous=OFF")  # synthetic history: no power cut to survive
        self.topics = Topics(site.site.slug)
        self.rng = random.Random(seed)
        self.now = 0.0

    def _apply(self, out: Outcome) -> list[tuple[str, bytes]]:
        with self.ledger.transaction():
            self.ledger.write(self.engine, out)
        if out.day_rolled:
            self.engine.prune()
        return [(self.topics.event(e.family, e.kind), json.dumps(event_json(e), ensure_ascii=False).encode())  # type: ignore[arg-type]
                for e in out.events]

    def day(self, d: date, *, tickets: int) -> list[tuple[str, bytes]]:
        """A working day of about ``tickets`` citizens from opening to closing; its events in rev order."""
        e, rng, site = self.engine, self.rng, self.site
        tz = e.tz
        t = datetime.combine(d, site.hours.open, tz).timestamp()
        close = datetime.combine(d, site.hours.close, tz).timestamp()
        step = (close - t) / max(1, tickets * 4)
        services = [s.id for s in site.services]
        groups = [g.id for g in site.priority.groups]
        counters = [c.number for c in site.counters]
        events: list[tuple[str, bytes]] = []
        issued = 0
        while t < close:
            t += rng.expovariate(1 / step)
            r = rng.random()
            try:
                if issued < tickets and r < 0.27:
                    grp = rng.choice(groups) if groups and rng.random() < 0.1 else None
                    out = e.issue(rng.choice(services), grp, t)
                    issued += 1
                else:
                    n = rng.choice(counters)
                    c = e.counters[n]
                    if c.serving is None:
                        if c.state == "paused" and rng.random() < 0.5:
                            out = e.resume(n, t)
                        elif rng.random() < 0.03:
                            out = e.pause(n, "nghỉ", t)
                        elif c.last_finished_ticket and rng.random() < 0.5:
                            out = e.rate(n, rng.choice((3, 4, 4, 5, 5, 5, 2, 1)), t)
                        elif rng.random() < 0.02 and (w := e.waiting()):
                            out = e.void(rng.choice(w).id, "paper-out", t)
                        else:
                            out = e.call_next(n, t)
                    else:
                        x = rng.random()
                        if x < 0.55:
                            out = e.finish(n, t)
                        elif x < 0.65:
                            out = e.no_show(n, t)
                        elif x < 0.70:
                            out = e.transfer(n, rng.choice([s for s in services if s != e.tickets[c.serving].service]), t)
                        elif x < 0.78:
                            out = e.recall(n, t)
                        else:
                            out = e.call_next(n, t)  # Next while serving: an inferred finish
            except CommandError:
                continue
            events += self._apply(out)
        self.now = t
        return events

    def days(self, first: date, n: int, *, tickets: int, weekdays_only: bool = True) -> list[tuple[str, bytes]]:
        """``n`` calendar days from ``first`` (Sundays off); the next day's first press rolls the last one."""
        events: list[tuple[str, bytes]] = []
        for i in range(n):
            d = first + timedelta(days=i)
            if weekdays_only and d.weekday() == 6:
                continue
            events += self.day(d, tickets=tickets)
        return events

    def close(self) -> None:
        self.ledger.close()
