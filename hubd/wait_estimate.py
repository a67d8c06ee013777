"""The wait estimate: a range a citizen can trust, from what the hub knows.

Pure (no I/O, no clock reads: ``now`` is passed in). The engine hands over a snapshot of
the hall — who waits for which service and since when, each counter's state, what it is
serving and since when, the fairness streaks, closing time — and the ``WaitHistory`` it
keeps of today's counters. ``estimate_wait`` then plays the rest of the day forward a few
dozen times, by the engine's own call order (the maximum-wait rule, each counter's service
order, priority first but one normal after ``priority_per_normal``), with:

- the time a counter takes per call (call → its next call while citizens were waiting:
  walk, service, recalls, no-shows and the officer's tidy-up all included), drawn from
  today's recent calls of that service as they were (the quick no-shows and the long files
  both, not a curve fitted through them), or from the site's ``mean_service_min`` prior in
  proportion to how few there are, and scaled by that counter's own pace (a slow officer is
  slow for everyone behind them; one long visit is no slow officer);
- citizens who have not come yet: the last half hour's arrival rate per service and class,
  times a factor drawn per run (a rush grows or ends), drawn only where they could be called
  before the ticket (a priority ticket arriving later may still be called first; a counter's
  preferred service takes its officer away from a second one);
- citizens sent on to another service: a call ends in a transfer as often as that service's
  calls did today, and the citizen joins the other queue by their first arrival (ahead of
  everyone who came later, as the engine does);
- a paused counter returns after a pause drawn from today's pauses (5–60 minutes when
  there were none); a counter closed all day stays closed, unless
  it is still the first half hour after opening time (the officers are arriving);
- closing time: nobody is called after ``close_at``.

The printed range is the 5th–95th percentile of those runs, widened to whole 5 minutes
("dưới 5 phút" when the upper end is under 5). When the upper end cannot be told honestly
(beyond closing time, or wider than ``MAX_WIDTH_MIN``), the estimate says "more than N
minutes" instead ("under M minutes" when N would be 0 and M is known, "not known yet" when
neither is).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from xephang.waittext import format_wait

RUNS = 48
MIN_RUNS = 16
LONG_QUEUE = 60  # waiting citizens beyond which the runs thin out
Q_LOW, Q_HIGH = 0.05, 0.95
MIN_HIGH_MIN = 5
MAX_WIDTH_MIN = 45.0  # a range wider than this says nothing: print "more than N minutes"
PRIOR_WEIGHT = 3.0  # the site's prior counts as this many observed calls
PRIOR_SIGMA = 0.45  # spread of one call's duration (log scale) before any is seen
OVERHEAD_S = 75.0  # walk to the counter and the officer's tidy-up, on top of the service itself
CYCLE_KEEP = 30  # recent calls kept per service
COUNTER_KEEP = 30  # recent calls kept per counter (its pace)
PACE_SHRINK = 6.0  # a counter's pace counts this many typical calls: a few long visits are no slow officer
ARRIVAL_WINDOW_S = 60 * 60.0  # arrivals kept
ARRIVALS_KEEP = 400  # at most (a flood of presses must not grow the engine state the ledger writes)
RATE_WINDOW_S = 30 * 60.0  # the recent arrival rate: the last half hour (a rush rises and falls fast)
RATE_SPREAD = 0.4  # how far the rate to come may differ from the recent one (log scale, per run)
TRANSFER_PRIOR_CALLS = 5.0  # a service's transfer share counts this many calls without one
PAUSE_PRIOR_S = tuple(m * 60.0 for m in (5, 10, 15, 20, 30, 45, 60))
OPENING_DELAY_S = 5 * 60.0
MORNING_S = 30 * 60.0  # a counter still closed this long after opening time is not coming today


@dataclass(frozen=True)
class WaitRange:
    """An estimated wait: ``low``–``high`` minutes, or more than ``low`` when ``high`` is None."""

    low_min: int
    high_min: int | None
    point_min: float  # the median of the runs (the old single figure, for consumers that want one)

    @property
    def open_ended(self) -> bool:
        return self.high_min is None

    def text(self, lang: str = "vi") -> str:
        """'khoảng 20–35 phút', 'dưới 5 phút', 'hơn 60 phút' (English with ``lang='en'``)."""
        return format_wait(self.low_min, self.high_min, lang)

    def fields(self) -> dict[str, Any]:
        """The optional payload fields of the contract (issue reply, issued event, service state)."""
        return {"est_wait_min": self.point_min, "est_wait_low_min": self.low_min,
                "est_wait_high_min": self.high_min, "est_wait_open": self.open_ended}


@dataclass(frozen=True)
class WaitingTicket:
    id: int
    service: str
    priority: bool
    arrival_at: float


@dataclass(frozen=True)
class CounterView:
    number: int
    services: tuple[str, ...]
    state: str  # open | paused | closed
    busy_since: float | None = None  # the current call's time, when serving
    serving_service: str | None = None
    paused_since: float | None = None


@dataclass(frozen=True)
class HallView:
    """What the estimate reads from the engine at ``now``."""

    now: float
    waiting: tuple[WaitingTicket, ...]
    counters: tuple[CounterView, ...]
    streak: dict[str, int]
    priority_per_normal: int
    max_wait_s: float
    close_at: float
    open_at: float
    prior_call_s: dict[str, float]  # per service: the site's mean service time + overhead


@dataclass
class WaitHistory:
    """What today's counters did, kept by the engine (and in its meta) for the estimate."""

    cycles: dict[str, deque[float]] = field(default_factory=dict)  # service -> recent call durations (s)
    pace: dict[int, deque[tuple[str, float]]] = field(default_factory=dict)  # counter -> recent (service, duration)
    arrivals: deque[tuple[float, str, bool]] = field(
        default_factory=lambda: deque(maxlen=ARRIVALS_KEEP))  # (issued_at, service, priority)
    pauses: deque[float] = field(default_factory=lambda: deque(maxlen=10))  # finished pause lengths (s)
    last_call: dict[int, tuple[float, str]] = field(default_factory=dict)  # counter -> (call time, service)
    last_end: dict[int, float] = field(default_factory=dict)  # counter -> end of its last visit
    called: dict[str, int] = field(default_factory=dict)  # service -> calls today
    transfers: dict[str, dict[str, int]] = field(default_factory=dict)  # from service -> to service -> count

    # -------------------------------------------------------------- learning
    def on_issue(self, at: float, service: str, priority: bool) -> None:
        self.arrivals.append((at, service, priority))
        while self.arrivals and self.arrivals[0][0] < at - ARRIVAL_WINDOW_S:
            self.arrivals.popleft()

    def on_visit_end(self, counter: int, at: float) -> None:
        self.last_end[counter] = at

    def on_call(self, counter: int, at: float, service: str, arrival_at: float) -> None:
        """A counter called someone. When it called its previous citizen with no pause in
        between and this citizen was already waiting when that visit ended (the officer did not
        wait for anyone to come), the time between the two calls is one call's duration there."""
        self.called[service] = self.called.get(service, 0) + 1
        prev = self.last_call.get(counter)
        self.last_call[counter] = (at, service)
        end = self.last_end.get(counter, at)
        if prev is None or arrival_at > end:
            return
        dur = at - prev[0]
        if not 20.0 <= dur <= 3 * 3600.0:
            return
        svc = prev[1]
        self.cycles.setdefault(svc, deque(maxlen=CYCLE_KEEP)).append(dur)
        self.pace.setdefault(counter, deque(maxlen=COUNTER_KEEP)).append((svc, dur))

    def on_transfer(self, from_service: str, to_service: str) -> None:
        """A citizen was sent on to another service: they join its queue by their first arrival."""
        to = self.transfers.setdefault(from_service, {})
        to[to_service] = to.get(to_service, 0) + 1

    def on_break(self, counter: int) -> None:
        """A pause, a close or the day's turn: the next call starts no measured duration."""
        self.last_call.pop(counter, None)

    def on_pause_end(self, length_s: float) -> None:
        if length_s > 0:
            self.pauses.append(length_s)

    def new_day(self) -> None:
        """Keep the service times and how often a service sends citizens on (tomorrow starts
        from today's), forget the rest."""
        self.arrivals.clear()
        self.last_call.clear()
        self.last_end.clear()
        self.pace.clear()
        self.pauses.clear()

    # -------------------------------------------------------------- model
    def call_model(self, service: str, prior_s: float) -> tuple[float, float]:
        """(mu, sigma) of a log-normal call duration for ``service``, shrunk toward the prior."""
        xs = [math.log(x) for x in self.cycles.get(service, ())]
        lp = math.log(prior_s)
        n = len(xs)
        mu = (PRIOR_WEIGHT * lp + sum(xs)) / (PRIOR_WEIGHT + n)
        var = (PRIOR_WEIGHT * PRIOR_SIGMA**2 + sum((x - mu) ** 2 for x in xs)) / (PRIOR_WEIGHT + n)
        return mu, math.sqrt(var)

    def counter_pace(self, counter: int, models: dict[str, tuple[float, float]]) -> float:
        """Log-factor of this counter's pace against what its services take at every counter
        (0 = typical), shrunk toward 0 when it has served few."""
        xs = [math.log(d) - models[s][0] for s, d in self.pace.get(counter, ()) if s in models]
        return sum(xs) / (len(xs) + PACE_SHRINK) if xs else 0.0

    def transfer_model(self, service: str) -> tuple[float, list[str]]:
        """The share of ``service``'s calls that end in a transfer (shrunk toward none when it has
        had few calls), and the services they went to, one entry per transfer."""
        to = self.transfers.get(service, {})
        n = sum(to.values())
        if not n:
            return 0.0, []
        calls = max(self.called.get(service, 0), n)
        return n / (calls + TRANSFER_PRIOR_CALLS), [s for s, k in sorted(to.items()) for _ in range(k)]

    def arrival_rates(self, now: float, since: float) -> dict[tuple[str, bool], float]:
        """Arrivals per second per (service, priority) over the recent window."""
        span = max(15 * 60.0, min(RATE_WINDOW_S, now - since))
        if len(self.arrivals) == self.arrivals.maxlen and self.arrivals[0][0] > now - span:
            span = max(60.0, now - self.arrivals[0][0])  # the oldest kept is more recent than the window
        rates: dict[tuple[str, bool], float] = {}
        for at, svc, pri in self.arrivals:
            if at >= now - span:
                rates[(svc, pri)] = rates.get((svc, pri), 0.0) + 1.0 / span
        return rates

    # -------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"cycles": {k: list(v) for k, v in self.cycles.items()},
                "pace": {str(k): [list(x) for x in v] for k, v in self.pace.items()},
                "arrivals": [list(a) for a in self.arrivals], "pauses": list(self.pauses),
                "last_call": {str(k): list(v) for k, v in self.last_call.items()},
                "last_end": {str(k): v for k, v in self.last_end.items()},
                "called": dict(self.called), "transfers": {k: dict(v) for k, v in self.transfers.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WaitHistory:
        h = cls()
        try:
            h.cycles = {str(k): deque((float(x) for x in v), maxlen=CYCLE_KEEP) for k, v in d.get("cycles", {}).items()}
            h.pace = {int(k): deque(((str(s), float(x)) for s, x in v), maxlen=COUNTER_KEEP)
                      for k, v in d.get("pace", {}).items()}
            h.arrivals = deque(((float(a), str(s), bool(p)) for a, s, p in d.get("arrivals", [])),
                               maxlen=ARRIVALS_KEEP)
            h.pauses = deque((float(x) for x in d.get("pauses", [])), maxlen=10)
            h.last_call = {int(k): (float(v[0]), str(v[1])) for k, v in d.get("last_call", {}).items()}
            h.last_end = {int(k): float(v) for k, v in d.get("last_end", {}).items()}
            h.called = {str(k): int(v) for k, v in d.get("called", {}).items()}
            h.transfers = {str(k): {str(s): int(n) for s, n in v.items()} for k, v in d.get("transfers", {}).items()}
        except (TypeError, ValueError, IndexError):
            return cls()  # an unreadable history only costs today's learning
        return h


# ------------------------------------------------------------------ the forward runs
class _Queue:
    """One service's waiting tickets of one class, oldest arrival first (append-only, head index)."""

    __slots__ = ("items", "head")

    def __init__(self, items: list[tuple[float, int]]) -> None:
        self.items = items
        self.head = 0

    def first(self) -> tuple[float, int] | None:
        return self.items[self.head] if self.head < len(self.items) else None

    def pop(self) -> tuple[float, int]:
        self.head += 1
        return self.items[self.head - 1]


@dataclass
class _Shared:
    """What every run of one estimate shares (computed once)."""

    services: set[str]
    queues: dict[str, tuple[list[tuple[float, int]], list[tuple[float, int]]]]  # service -> (priority, normal)
    rates: list[tuple[str, bool, float]]  # arrival streams: (service, priority, per second)
    models: dict[str, tuple[float, float]]  # service -> log-normal fit (the yardstick of a counter's pace)
    samples: dict[str, tuple[list[float], float]]  # service -> (today's call durations, share drawn from the prior)
    prior_mu: dict[str, float]  # service -> log of the site's prior call duration
    paces: dict[int, float]
    moves: dict[str, tuple[float, list[str]]]  # service -> (share of calls transferred, where to)
    pauses: list[float]
    close_at: float


def estimate_wait(view: HallView, history: WaitHistory, target: WaitingTicket, *, seed: int = 0,
                  runs: int = RUNS) -> WaitRange:
    """The wait of ``target`` (a waiting ticket of ``view``, or one about to join it)."""
    rng = random.Random(seed)
    services = {s for c in view.counters for s in c.services} | {target.service}
    # citizens still to come matter only where they can be called before the target: at a counter
    # that also calls the target's service (its other services, the target's own priority class)
    rivals = {s for c in view.counters if target.service in c.services for s in c.services}
    tickets = sorted(set(view.waiting) | {target}, key=lambda t: (t.arrival_at, t.id))
    queues = {s: ([(t.arrival_at, t.id) for t in tickets if t.service == s and t.priority],
                  [(t.arrival_at, t.id) for t in tickets if t.service == s and not t.priority]) for s in services}
    models = {s: history.call_model(s, view.prior_call_s.get(s, 600.0)) for s in services}
    shared = _Shared(
        services=services, queues=queues,
        rates=[(svc, pri, r) for (svc, pri), r in sorted(history.arrival_rates(view.now, view.open_at).items())
               # the same service and class arrives behind the target: never called before it
               if svc in rivals and r > 0 and not (svc == target.service and pri == target.priority)],
        models=models, samples={s: (list(history.cycles.get(s, ())),
                                    PRIOR_WEIGHT / (PRIOR_WEIGHT + len(history.cycles.get(s, ())))) for s in services},
        prior_mu={s: math.log(view.prior_call_s.get(s, 600.0)) for s in services},
        paces={c.number: history.counter_pace(c.number, models) for c in view.counters},
        moves=_moves(history, services),
        pauses=list(history.pauses) or list(PAUSE_PRIOR_S), close_at=_close_at(view))
    # a long queue costs a run per citizen: fewer runs keep an estimate within a few milliseconds
    runs = max(MIN_RUNS, min(runs, runs * LONG_QUEUE // max(1, len(view.waiting))))
    results = sorted(_one_run(view, shared, target, rng) for _ in range(runs))
    return _summarise(results, view, math.inf)


def _moves(history: WaitHistory, services: set[str]) -> dict[str, tuple[float, list[str]]]:
    """Per service, the share of its calls sent on to another service of the hall, and where to."""
    out = {}
    for s in services:
        share, dests = history.transfer_model(s)
        dests = [d for d in dests if d in services]
        if share > 0 and dests:
            out[s] = (share, dests)
    return out


def _quantile(xs: list[float], q: float) -> float:
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    a, b = xs[lo], xs[hi]
    if math.isinf(a) or math.isinf(b):
        return math.inf if pos - lo > 0 or math.isinf(a) else a
    return a + (b - a) * (pos - lo)


def _summarise(results: list[float], view: HallView, inf: float) -> WaitRange:
    lo_s, med_s, hi_s = (_quantile(results, q) for q in (Q_LOW, 0.5, Q_HIGH))
    to_close = max(0.0, _close_at(view) - view.now) / 60
    low = max(0.0, min(lo_s / 60, to_close))
    if math.isinf(med_s):
        return WaitRange(_more_than(results, low), None, round(max(low, to_close), 1))
    point = round(med_s / 60, 1)
    if math.isinf(hi_s) or hi_s / 60 - low > MAX_WIDTH_MIN:
        if low >= 5 or math.isinf(hi_s):
            return WaitRange(_more_than(results, low), None, point)
        # it may be at once or long: the honest range is "under" its upper end
        return WaitRange(0, _round_up(hi_s / 60), point)
    # whole 5 minutes: a citizen plans in them, and "under 5 minutes" is as near as a hall can promise
    lo_r, hi_r = _round_down(low), max(MIN_HIGH_MIN, _round_up(hi_s / 60))
    if lo_r == hi_r:
        lo_r -= 5
    return WaitRange(lo_r, hi_r, point)


def _more_than(results: list[float], low: float) -> int:
    """N of "hơn N phút": a promise, so from the quickest run, not the 5th percentile (which a
    third of those citizens on a rush day beat); at least 5 when the 5th percentile is, since
    "hơn 0 phút" says nothing ((0, None) reads "chưa ước tính được")."""
    n = _round_down(max(0.0, min(results[0] / 60, low)))
    return max(5, n) if low >= 5 else n


def _round_down(m: float) -> int:
    return int(m // 5 * 5)


def _round_up(m: float) -> int:
    return int(math.ceil(m / 5) * 5)


def _close_at(view: HallView) -> float:
    # past closing time the hall still works (a late day): it is not known until when
    return view.close_at if view.close_at > view.now else view.now + 12 * 3600.0


def _one_run(view: HallView, sh: _Shared, target: WaitingTicket, rng: random.Random) -> float:
    now, close_at = view.now, sh.close_at
    pri = {s: _Queue(list(q[0])) for s, q in sh.queues.items()}
    norm = {s: _Queue(list(q[1])) for s, q in sh.queues.items()}
    # citizens still to come: one pending arrival per stream, drawn as the run's clock reaches it
    load = math.exp(rng.gauss(0.0, RATE_SPREAD))
    streams = [(svc, is_pri, r * load) for svc, is_pri, r in sh.rates]
    pending = [now + rng.expovariate(r) for _, _, r in streams]
    soonest = min(pending, default=math.inf)
    next_id = -1

    def arrive_until(t: float) -> None:
        nonlocal next_id, soonest
        if t < soonest:
            return
        for i, (svc, is_pri, r) in enumerate(streams):
            while pending[i] <= t:
                (pri if is_pri else norm)[svc].items.append((pending[i], next_id))
                next_id -= 1
                pending[i] += rng.expovariate(r)
        soonest = min(pending)

    # citizens a counter sends on: (when they join, service, (first arrival, id), priority)
    moving: list[tuple[float, str, tuple[float, int], bool]] = []

    def move_until(t: float) -> None:
        while moving and moving[0][0] <= t:
            _, svc, item, is_pri = heapq.heappop(moving)
            q = (pri if is_pri else norm)[svc]
            bisect.insort(q.items, item, lo=q.head)  # by first arrival: ahead of later ones

    streak = dict(view.streak)
    samples, paces, prior_mu, moves = sh.samples, sh.paces, sh.prior_mu, sh.moves

    def duration(counter: int, service: str) -> float:
        # one of today's calls of this service (its real spread: the no-shows' short calls, the
        # long visits), or the site's prior in proportion to how few there are; at this counter's pace
        xs, w = samples[service]
        if xs and rng.random() >= w:
            return rng.choice(xs) * math.exp(paces[counter])
        return math.exp(rng.gauss(prior_mu[service] + paces[counter], PRIOR_SIGMA))

    # when each counter can next call
    free: list[tuple[float, int]] = []
    by_number = {c.number: c for c in view.counters}
    for c in view.counters:
        if c.state == "open":
            if c.busy_since is not None and c.serving_service in samples:
                d = duration(c.number, c.serving_service)
                elapsed = now - c.busy_since
                if d <= elapsed:  # longer than drawn: it ends soon
                    d = elapsed + rng.expovariate(1 / 120.0)
                free.append((c.busy_since + d, c.number))
            else:
                free.append((now + rng.uniform(0, 60), c.number))
        elif c.state == "paused":
            length = rng.choice(sh.pauses) * rng.uniform(0.8, 1.5)
            since = c.paused_since if c.paused_since is not None else now
            if length <= now - since:
                length = (now - since) + rng.expovariate(1 / 600.0)
            free.append((since + length, c.number))
        elif view.now < view.open_at + MORNING_S:  # the counters open in the first half hour
            free.append((max(now, view.open_at) + rng.uniform(0, OPENING_DELAY_S), c.number))
    if not free:  # nobody open and none expected: as before any counter opened, they open soon
        free = [(now + rng.uniform(0, OPENING_DELAY_S), c.number) for c in view.counters
                if target.service in c.services and c.state != "paused"]
    if not free:
        return math.inf
    k = view.priority_per_normal
    max_wait = view.max_wait_s
    lanes = {c.number: tuple((s, pri[s], norm[s]) for s in c.services if s in pri) for c in view.counters}
    while free:
        free.sort()
        t, n = free[0]
        if t >= close_at:
            return math.inf
        arrive_until(t)  # everyone who has arrived by t is in the queue
        move_until(t)
        c = by_number[n]
        pick = _pick(lanes[n], streak, t, k, max_wait)
        if pick is None:
            # nobody for this counter: it calls the next citizen of its services who comes
            nxt = min([pending[i] for i, (svc, _, _) in enumerate(streams) if svc in c.services]
                      + [m[0] for m in moving if m[1] in c.services], default=None)
            if nxt is None or nxt >= close_at:
                free.pop(0)
                continue
            free[0] = (nxt + rng.uniform(0, 30), n)
            continue
        svc, item, is_pri = pick
        if item[1] == target.id:
            return max(0.0, t - now)
        done = t + duration(n, svc)
        free[0] = (done, n)
        share, dests = moves.get(svc, (0.0, []))
        if share and rng.random() < share:  # sent on at the end of the visit, keeping their place
            heapq.heappush(moving, (done, rng.choice(dests), item, is_pri))
    return math.inf


def _pick(lanes: tuple[tuple[str, _Queue, _Queue], ...], streak: dict[str, int], now: float, k: int,
          max_wait: float) -> tuple[str, tuple[float, int], bool] | None:
    """The engine's call order (``QueueEngine.pick_next``) on one counter's lanes (its services in
    its order, each with its priority and normal queue); pops the pick: (service, ticket, priority)."""
    oldest: tuple[float, int] | None = None
    where: tuple[str, _Queue, bool] | None = None
    for s, p, m in lanes:
        for q, is_pri in ((p, True), (m, False)):
            if q.head < len(q.items):
                f = q.items[q.head]
                if oldest is None or f < oldest:
                    oldest, where = f, (s, q, is_pri)
    if oldest is None or where is None:
        return None
    if now - oldest[0] >= max_wait:
        s, q, is_pri = where
        streak[s] = streak.get(s, 0) + 1 if is_pri else 0
        return s, q.pop(), is_pri
    for s, p, m in lanes:
        has_p, has_m = p.head < len(p.items), m.head < len(m.items)
        if not (has_p or has_m):
            continue
        if has_p and (not has_m or streak.get(s, 0) < k):
            streak[s] = streak.get(s, 0) + 1
            return s, p.pop(), True
        streak[s] = 0
        return s, m.pop(), False
    return None
