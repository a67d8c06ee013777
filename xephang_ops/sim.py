"""Citizens and officers of a simulated day: hub events in, key presses out.

The pure core of ``xephang demo`` (no I/O, time passed in as simulated epoch seconds). It
only ever *presses keys* — service and priority buttons on the dispenser, Next, Recall,
No-show, Finish, Pause, Resume, Transfer and the rating keys on the counter boxes — and
only learns what happened from the hub's events, as a person in the hall would by
watching the board. The shell (:mod:`xephang_ops.demo`) publishes the presses on
``R/sim/{node}/press`` and feeds the events back.

- **Citizens** arrive by a non-homogeneous Poisson process with a morning peak, a lunch
  lull and a smaller afternoon wave, across the site's services; some are priority citizens
  (the priority key, then the service button).
- **Officers** call the next citizen when their services have someone waiting; a service
  lasts a log-normal time around the service's ``mean_service_min``; the citizen may be slow
  to come (a recall), gone (recalls, then a no-show), or need another area (a transfer);
  after a finish most citizens press a rating key. One officer takes a break (pause/resume).
- Every behaviour the demo must show happens at least once: the second call is a slow
  citizen (recall), the third a citizen who left (no-show), the second finished service
  becomes a transfer, and one counter pauses after its first service.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from xephang.clock import VN_TZ
from xephang.site import Site

log = logging.getLogger(__name__)

# arrivals per hour for the whole centre, by local time (hour as a float): ~140 citizens a day,
# a morning peak above what four counters serve (a queue builds, then drains over lunch)
ARRIVAL_PROFILE: tuple[tuple[float, float, float], ...] = (
    (7.5, 8.0, 12), (8.0, 8.5, 22), (8.5, 10.0, 28), (10.0, 11.5, 18), (11.5, 13.5, 5),
    (13.5, 15.5, 15), (15.5, 16.75, 10), (16.75, 24.0, 0),
)
SERVICE_MIX = {"ho-tich": 0.30, "dat-dai": 0.20, "chung-thuc": 0.35, "van-hoa-xa-hoi": 0.15}
PRIORITY_SHARE = 0.12
P_SLOW, P_GONE, P_TRANSFER, P_RATE = 0.08, 0.05, 0.04, 0.75
RATING_WEIGHTS = (2, 3, 10, 35, 50)  # 1..5 stars
WALK_S = 30.0  # from hearing the number to sitting at the counter
IDLE_GAP_S = 40.0  # an officer tidies up between citizens
PAUSE_S = 10 * 60.0
POLL_S = 120.0  # an idle officer presses Next this often even when the board shows nobody waiting
PRESS_S = 0.1  # a finger on a key, real seconds: longer than any debounce, shorter than a long press
LONG_PRESS_S = 1.8  # a deliberate long press (No-show on the Recall key): well past the box's hold time
LONG_ACTIONS = ("no-show",)

Behaviour = Literal["normal", "slow", "gone", "transfer"]


@dataclass(frozen=True, order=True)
class Press:
    """One key press the shell must make: ``button`` on ``node`` at simulated time ``at``."""

    at: float
    node: str
    button: str
    hold_s: float = PRESS_S


@dataclass(frozen=True)
class Arrival:
    at: float
    service: str
    priority: bool


Profile = tuple[tuple[float, float, float], ...]


def arrival_rate(ts: float, scale: float = 1.0, profile: Profile = ARRIVAL_PROFILE) -> float:
    """Arrivals per hour at simulated time ``ts`` (local ``profile`` × ``scale``)."""
    d = datetime.fromtimestamp(ts, VN_TZ)
    h = d.hour + d.minute / 60 + d.second / 3600
    for lo, hi, rate in profile:
        if lo <= h < hi:
            return rate * scale
    return 0.0


def plan_arrivals(site: Site, start: float, until: float, rng: random.Random, *, scale: float = 1.0,
                  profile: Profile = ARRIVAL_PROFILE) -> list[Arrival]:
    """Citizens arriving in [start, until): thinning of a Poisson process at the peak rate."""
    services = [s.id for s in site.services]
    weights = [SERVICE_MIX.get(s, 0.1) for s in services]
    peak = max(r for _, _, r in profile) * scale
    out: list[Arrival] = []
    t = start
    if peak <= 0:
        return out
    while True:
        t += rng.expovariate(peak / 3600)
        if t >= until:
            return out
        if rng.random() * peak <= arrival_rate(t, scale, profile):
            out.append(Arrival(t, rng.choices(services, weights)[0], rng.random() < PRIORITY_SHARE))


@dataclass
class Officer:
    """One counter's officer and what they are doing."""

    counter: int
    node: str
    services: tuple[str, ...]
    state: Literal["idle", "calling", "serving", "pausing", "paused", "resuming"] = "idle"
    next_at: float = 0.0
    ticket: dict[str, Any] | None = None
    steps: list[tuple[float, str, str | None]] = field(default_factory=list)  # (at, button, expected event)
    expect: tuple[str, float, str, int] | None = None  # (event kind, deadline, button, retries left)
    last_next: float = -1e18
    finished: int = 0
    pause_at: float | None = None
    resume_at: float | None = None


@dataclass
class SimStats:
    """What the simulation did, as it saw it (compared with the ledger by the tests)."""

    arrivals_planned: int = 0
    presses: Tally[str] = field(default_factory=Tally)
    events: Tally[str] = field(default_factory=Tally)
    issued: dict[int, dict[str, Any]] = field(default_factory=dict)  # ticket id -> issued ticket
    calls: dict[int, int] = field(default_factory=dict)  # ticket id -> called events
    retries: int = 0
    retried: Tally[str] = field(default_factory=Tally)  # expected event kind -> presses made again
    gave_up: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"arrivals_planned": self.arrivals_planned, "presses": dict(self.presses), "events": dict(self.events),
                "issued": len(self.issued), "priority_issued": sum(1 for t in self.issued.values() if t.get("priority_group")),
                "calls": self.calls and {str(k): v for k, v in self.calls.items()}, "retries": self.retries,
                "retried": dict(self.retried),
                "gave_up": self.gave_up}


class CentreSim:
    """The simulated hall. ``due(now)`` gives presses; ``on_event`` and ``on_waiting`` feed it.

    :param real_s: turns real seconds into simulated seconds (``× speed``): the boxes'
        double-press guard and the hub's replies live in real time, so waits for an expected
        event are never shorter than a couple of real seconds.
    :param profile: arrivals per hour by local time (``ARRIVAL_PROFILE``: the morning peak).
    :param pause_s: how long the officer who takes a break stays away.
    :param pause_at: when that break starts (default: after the officer's first service).
    :param pace: service-time factor per counter (a slow officer: ``{3: 1.8}``).
    """

    def __init__(self, site: Site, *, start: float, end: float, seed: int, dispenser: str = "dispenser-1",
                 counters: dict[int, str] | None = None, arrivals_until: float | None = None,
                 real_s: Callable[[float], float] = lambda s: s, load: float = 1.0,
                 profile: Profile = ARRIVAL_PROFILE, pause_s: float = PAUSE_S, pause_at: float | None = None,
                 pace: dict[int, float] | None = None) -> None:
        self.site = site
        self.start, self.end = start, end
        self.rng = random.Random(seed)
        self.real_s = real_s
        self.dispenser = dispenser
        self.services = {s.id: s for s in site.services}
        nodes = counters if counters is not None else {c.number: f"counter-{c.number}" for c in site.counters}
        self.officers: dict[int, Officer] = {}
        for c in site.counters:
            if c.number in nodes:
                self.officers[c.number] = Officer(c.number, nodes[c.number], tuple(c.services),
                                                  next_at=start + self.rng.uniform(0, 60))
        self.waiting: dict[str, int] = {s: 0 for s in self.services}
        self.pause_s = pause_s
        self.pace = dict(pace or {})
        self.stats = SimStats()
        until = arrivals_until if arrivals_until is not None else end
        self._queue: list[Press] = []
        for a in plan_arrivals(site, start, until, self.rng, scale=load, profile=profile):
            if a.priority:
                heapq.heappush(self._queue, Press(a.at, dispenser, "priority"))
            heapq.heappush(self._queue, Press(a.at + 0.001, dispenser, a.service))
        self.stats.arrivals_planned = sum(1 for p in self._queue if p.button != "priority")
        self._calls_seen = 0
        self._gone: set[int] = set()
        self._transferred: set[int] = set()
        self._forced_transfer_done = False
        # one officer (counter 2 if there is one) takes a break after the first citizen
        if self.officers:
            breaker = self.officers.get(2) or next(iter(self.officers.values()))
            breaker.pause_at = -1.0 if pause_at is None else pause_at  # -1: armed, pause after the first finish

    # ------------------------------------------------------------------ presses out
    def due(self, now: float) -> list[Press]:
        """Every press due at ``now`` (citizens' and officers'), in time order."""
        out: list[Press] = []
        while self._queue and self._queue[0].at <= now:
            out.append(heapq.heappop(self._queue))
        for o in self.officers.values():
            out.extend(self._officer_due(o, now))
        for p in out:
            self.stats.presses[self._press_key(p)] += 1
        return out

    def _press_key(self, p: Press) -> str:
        if p.node == self.dispenser:
            return "priority" if p.button == "priority" else "ticket"
        if p.button.startswith("rate-"):
            return "rate"
        return "transfer-to" if p.button in self.services else p.button

    def _press(self, o: Officer, now: float, button: str, expect: str | None, retries: int = 2) -> Press:
        if button.startswith("rate-"):
            retries = 0  # a second rating press would be refused anyway (already rated)
        hold = LONG_PRESS_S if button in LONG_ACTIONS else PRESS_S
        if expect:
            o.expect = (expect, now + max(30.0, self.real_s(2.5 + hold)), button, retries)
        return Press(now, o.node, button, hold)

    def _officer_due(self, o: Officer, now: float) -> list[Press]:
        out: list[Press] = []
        if o.expect and now >= o.expect[1]:
            kind, _, button, left = o.expect
            if left > 0:
                self.stats.retries += 1
                self.stats.retried[kind] += 1
                log.info("counter %s: no %s event after %s: pressing again", o.counter, kind, button)
                out.append(self._press(o, now, button, kind, left - 1))
            else:
                if kind != "rated":  # a citizen who rates too late is not a fault
                    self.stats.gave_up += 1
                    log.warning("counter %s: gave up waiting for %s", o.counter, kind)
                o.expect, o.steps, o.ticket, o.state = None, [], None, "idle"
                o.next_at = now + IDLE_GAP_S
            return out
        if o.expect:
            return out
        if o.steps and o.steps[0][0] <= now:
            _, button, kind = o.steps.pop(0)
            out.append(self._press(o, now, button, kind))
            return out
        if o.steps or now < o.next_at or now >= self.end:
            return out
        if o.state == "calling":  # Next gave nobody: the queue was empty
            o.state = "idle"
            o.next_at = now + IDLE_GAP_S
            return out
        if o.state == "paused" and o.resume_at is not None and now >= o.resume_at:
            o.state = "resuming"
            out.append(self._press(o, now, "resume", "resumed"))
            return out
        if o.state != "idle":
            return out
        if o.pause_at is not None and 0 <= o.pause_at <= now:
            o.pause_at = None
            o.state = "pausing"
            out.append(self._press(o, now, "pause", "paused"))
            return out
        someone = any(self.waiting.get(s, 0) > 0 for s in o.services)
        if someone or now - o.last_next >= POLL_S:
            o.last_next = now
            o.state = "calling"
            o.next_at = now + max(45.0, self.real_s(0.6))  # no call by then: nobody was waiting
            out.append(Press(now, o.node, "next"))
        else:
            o.next_at = now + 15.0
        return out

    # ------------------------------------------------------------------ events in
    def on_waiting(self, service: str, waiting: int) -> None:
        """The hub's retained ``state/service/{id}``: how many wait for ``service``."""
        self.waiting[service] = waiting

    def on_event(self, ev: dict[str, Any], now: float) -> None:
        """A hub event (ticket or counter family)."""
        kind = ev.get("kind", "")
        self.stats.events[kind] += 1
        t = ev.get("ticket") or {}
        tid = t.get("id")
        if kind == "issued" and tid is not None:
            self.stats.issued[tid] = t
            return
        o = self.officers.get(ev.get("counter") or 0)
        if o is None and tid is not None:  # a no-show or transfer leaves the ticket without a counter
            o = next((x for x in self.officers.values() if x.ticket and x.ticket.get("id") == tid), None)
        if kind == "called" and tid is not None:
            self.stats.calls[tid] = self.stats.calls.get(tid, 0) + 1
        if o is None:
            return
        if o.expect and o.expect[0] == kind:
            o.expect = None
        if kind == "called":
            self._on_called(o, t, now)
        elif kind in ("finished", "no-show", "transferred"):
            self._on_done(o, kind, now)
        elif kind == "paused":
            o.state = "paused"
            o.resume_at = now + self.pause_s
            o.next_at = now
        elif kind == "resumed":
            o.state, o.resume_at, o.next_at = "idle", None, now + 5

    def _behaviour(self, tid: int) -> Behaviour:
        self._calls_seen += 1
        if tid in self._gone:
            return "gone"
        if self._calls_seen == 2:
            return "slow"
        if self._calls_seen == 3:
            self._gone.add(tid)
            return "gone"
        r = self.rng.random()
        if r < P_GONE:
            self._gone.add(tid)
            return "gone"
        if r < P_GONE + P_SLOW:
            return "slow"
        if r < P_GONE + P_SLOW + P_TRANSFER and tid not in self._transferred:
            return "transfer"
        return "normal"

    def _service_s(self, service: str, counter: int = 0) -> float:
        mean = self.services[service].mean_service_min * 60 if service in self.services else 600.0
        mean *= self.pace.get(counter, 1.0)
        sigma = 0.5  # log-normal: most near the mean, a few long ones
        return max(60.0, self.rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma))

    def _on_called(self, o: Officer, t: dict[str, Any], now: float) -> None:
        tid = int(t.get("id", 0))
        o.state, o.ticket, o.steps = "serving", t, []
        b = self._behaviour(tid)
        if b == "gone":
            o.steps = [(now + 60, "recall", "recalled"), (now + 150, "no-show", "no-show")]
            return
        arrive = now + WALK_S
        if b == "slow":
            o.steps.append((now + 45, "recall", "recalled"))
            arrive = now + 75
        end = arrive + self._service_s(t.get("service", ""), o.counter)
        force = not self._forced_transfer_done and o.finished >= 1 and tid not in self._transferred
        if b == "transfer" or force:
            self._forced_transfer_done = True
            self._transferred.add(tid)
            cur = t.get("service", "")
            targets = [s for s in self.services if s != cur and s not in o.services] or \
                      [s for s in self.services if s != cur]
            o.steps += [(end, "transfer", None), (end + 0.001, self.rng.choice(targets), "transferred")]
        else:
            o.steps.append((end, "finish", "finished"))

    def _on_done(self, o: Officer, kind: str, now: float) -> None:
        o.state, o.ticket, o.steps, o.expect = "idle", None, [], None
        o.next_at = now + IDLE_GAP_S
        if kind != "finished":
            return
        o.finished += 1
        if o.pause_at == -1.0:
            o.pause_at = now + IDLE_GAP_S / 2
        if self.rng.random() < P_RATE:
            score = self.rng.choices(range(1, 6), RATING_WEIGHTS)[0]
            # the citizen presses soon, but after the box has its Finish reply (real time)
            o.steps.append((now + max(10.0, self.real_s(0.2)), f"rate-{score}", "rated"))

    # ------------------------------------------------------------------ progress
    def counts(self) -> dict[str, int]:
        e = self.stats.events
        return {"issued": e["issued"], "called": e["called"], "finished": e["finished"], "no-show": e["no-show"],
                "transferred": e["transferred"], "rated": e["rated"], "waiting": sum(self.waiting.values())}
