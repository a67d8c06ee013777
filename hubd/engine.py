"""The queue engine: the hub's pure core.

State + command → new state + events. No I/O and no clock reads: every command takes
``now`` (hub clock, epoch seconds). The ledger persists what a command changed
(``Outcome``) and rebuilds the engine from its tables after a restart.

Rules (docs/queue-rules.md has the long form):
- Numbers: each service owns a band; the first ticket of a service day gets the band's
  first number; a number is never reused within a service day. The day turns at the
  site's ``daily_reset`` local time; history is kept, waiting tickets of the old day
  expire.
- Call order for a counter: (1) any ticket waiting longer than ``max_wait_min`` in the
  counter's services goes first, oldest arrival first; (2) otherwise, in the counter's
  service order, the first service with someone waiting: priority tickets first, but
  after ``priority_per_normal`` priority calls in a row a waiting normal ticket is called;
  (3) within a class, oldest arrival first. A transfer keeps the original arrival time.
- Next while serving finishes the current ticket (flagged as inferred). Pause while
  serving does the same. Next on a paused counter resumes it.
- A rating binds to the ticket the counter finished last *explicitly* (Finish key), within
  ``rating_window_s``; an inferred finish opens no rating window and does not move it. A
  rating naming another ``ticket_id`` is refused (``rating-wrong-ticket``).
- A refused command changes nothing: every check runs before the clock tick (which may
  turn the day), so an error reply never hides events or a day roll.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hubd.wait_estimate import (
    OVERHEAD_S,
    CounterView,
    HallView,
    WaitHistory,
    WaitingTicket,
    WaitRange,
    estimate_wait,
)
from xephang.contract import (
    DISPENSER_VOID_WINDOW_S,
    MAX_RECALLS_PER_VISIT,
    MAX_TRANSFERS_PER_TICKET,
    CounterMode,
    TicketState,
)
from xephang.site import Site, format_number

log = logging.getLogger(__name__)

LAST_CALLS = 10
EWMA_ALPHA = 0.2
STATE_WAIT_MAX_AGE_S = 20.0


class CommandError(Exception):
    """A command the engine refuses; ``code`` goes into the error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Ticket:
    id: int
    day: str
    service: str
    number: int
    display: str
    priority_group: str | None
    issued_at: float
    arrival_at: float  # queue position; kept across transfers
    first_service: str
    state: TicketState = "waiting"
    counter: int | None = None
    called_at: float | None = None  # first call: the end of the wait
    last_called_at: float | None = None
    recalls: int = 0
    finished_at: float | None = None
    finish_inferred: bool = False
    requeued: int = 0
    transfers: int = 0
    rating: int | None = None
    rated_at: float | None = None
    void_reason: str | None = None
    clock_jump: bool = False
    issued_by: str | None = None  # the dispenser that asked (the only one that may void it)

    def info(self) -> dict[str, Any]:
        """The contract's TicketInfo as a dict."""
        return {
            "id": self.id, "day": self.day, "number": self.number, "display": self.display,
            "service": self.service, "priority_group": self.priority_group, "issued_at": self.issued_at,
            "state": self.state, "counter": self.counter, "called_at": self.called_at, "recalls": self.recalls,
            "arrival_at": self.arrival_at,
        }


@dataclass
class Visit:
    """One call of a ticket at a counter until it ends (served, no-show, transferred)."""

    id: int
    ticket_id: int
    day: str
    counter: int
    officer: str
    service: str
    called_at: float
    ended_at: float | None = None
    outcome: str | None = None  # served | no-show | transferred | expired
    inferred: bool = False
    recalls: int = 0
    arrived_at: float | None = None  # "citizen arrived" pressed: the walk ends, the service starts
    call_reason: str | None = None  # set when the officer called this number out of the call order


@dataclass
class CounterRt:
    number: int
    state: CounterMode = "closed"
    pause_reason: str | None = None
    serving: int | None = None  # ticket id
    visit_id: int | None = None
    last_finished_ticket: int | None = None
    last_finished_at: float | None = None
    pause_id: int | None = None


@dataclass
class Pause:
    id: int
    counter: int
    day: str
    started_at: float
    ended_at: float | None = None
    reason: str = ""


@dataclass
class Event:
    rev: int
    event_id: str
    at: float
    family: str  # ticket | counter
    kind: str
    payload: dict[str, Any]


@dataclass
class Outcome:
    """What one command changed: the ledger writes exactly this."""

    data: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    tickets: set[int] = field(default_factory=set)
    visits: set[int] = field(default_factory=set)
    counters: set[int] = field(default_factory=set)
    pauses: set[int] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    sequences: set[tuple[str, str]] = field(default_factory=set)
    day_rolled: bool = False  # closed rows may be pruned from memory once written

    def merge(self, other: Outcome) -> None:
        self.events += other.events
        self.day_rolled = self.day_rolled or other.day_rolled
        for name in ("tickets", "visits", "counters", "pauses", "services", "sequences"):
            getattr(self, name).update(getattr(other, name))


class QueueEngine:
    """The queue of one site. Mutates itself; returns an ``Outcome`` per command."""

    def __init__(self, site: Site, *, new_event_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        """``new_event_id`` makes each event's id (unique for ever; tests may give a counter)."""
        self.site = site
        self.new_event_id = new_event_id
        self.tz = ZoneInfo(site.site.timezone)
        self.rev = 0
        self.day = ""
        self.tickets: dict[int, Ticket] = {}  # open tickets (waiting/called) + recently finished
        self.visits: dict[int, Visit] = {}  # open visits + recently ended
        self.counters: dict[int, CounterRt] = {c.number: CounterRt(c.number) for c in site.counters}
        self.pauses: dict[int, Pause] = {}
        self.sequences: dict[tuple[str, str], int] = {}  # (day, service) -> last number issued
        self.streak: dict[str, int] = {}  # service -> priority calls in a row
        self.service_ewma: dict[str, float] = {s.id: s.mean_service_min * 60 for s in site.services}
        self.last_calls: list[dict[str, Any]] = []
        self.last_called: dict[str, str] = {}  # service -> number shown as last called today
        self.next_ticket_id = 1
        # when the ledger began (hubd.ledger: its numbering base), None when not known: a dispenser's
        # numbers seen are taken only on the service day a ledger began on (seen_floor)
        self.ledger_started: float | None = None
        self.next_visit_id = 1
        self.next_pause_id = 1
        self.last_now = 0.0
        self.services = {s.id: s for s in site.services}
        self.history = WaitHistory()  # what today's counters did: the wait estimate learns from it
        self.prior_call_s = {s.id: s.mean_service_min * 60 + OVERHEAD_S for s in site.services}
        self._wait_cache: dict[tuple[int, int, str], tuple[float, WaitRange]] = {}
        self._state_waits: dict[str, tuple[float, WaitRange]] = {}  # service -> (at, estimate)

    # ------------------------------------------------------------------ helpers
    def service_day(self, now: float) -> str:
        """Local date after subtracting the reset time: tickets before 04:00 belong to yesterday."""
        r = self.site.site.daily_reset
        local = datetime.fromtimestamp(now, self.tz) - timedelta(hours=r.hour, minutes=r.minute, seconds=r.second)
        return local.date().isoformat()

    def _event(self, out: Outcome, now: float, family: str, kind: str, **payload: Any) -> None:
        self.rev += 1
        ev = Event(self.rev, self.new_event_id(), now, family, kind, payload)
        out.events.append(ev)

    def _ticket_event(self, out: Outcome, now: float, kind: str, t: Ticket, **extra: Any) -> None:
        svc = self.services.get(t.service)
        # a counter the site no longer has (its visit ended at the day's turn): no label, not a KeyError
        c = next((x for x in self.site.counters if x.number == t.counter), None) if t.counter is not None else None
        self._event(out, now, "ticket", kind, ticket=t.info(), counter=t.counter,
                    counter_label=c.label("vi") if c else None,
                    service_name_vi=svc.name_vi if svc else None,
                    service_name_en=svc.name_en if svc else None, **extra)
        out.tickets.add(t.id)
        out.services.add(t.service)

    def waiting(self, services: tuple[str, ...] | list[str] | None = None) -> list[Ticket]:
        ws = [t for t in self.tickets.values() if t.state == "waiting" and (services is None or t.service in services)]
        ws.sort(key=lambda t: (t.arrival_at, t.id))
        return ws

    def _counter(self, number: int) -> CounterRt:
        if number not in self.counters:
            raise CommandError("unknown-counter", f"counter {number} is not in the site config")
        return self.counters[number]

    def _rolls(self, now: float) -> bool:
        """Would a command at ``now`` turn the service day (and so end every visit)?"""
        return bool(self.day) and self.service_day(now) != self.day

    def _serving(self, c: CounterRt, now: float) -> Ticket:
        # at the day's turn the roll finishes whoever is served: the counter serves nobody then
        if c.serving is None or c.serving not in self.tickets or self._rolls(now):
            raise CommandError("not-serving", f"counter {c.number} is not serving anyone")
        return self.tickets[c.serving]

    def _tick_time(self, now: float, out: Outcome) -> None:
        # time going backwards (no RTC, late NTP) makes open tickets' durations unreliable
        if self.last_now and now < self.last_now - 5:
            out.merge(self.clock_jumped())
        self.last_now = now if now < self.last_now - 5 else max(self.last_now, now)
        out.merge(self.roll_day(now))

    def clock_jumped(self) -> Outcome:
        """Flag every open ticket: its durations span a clock jump. The hub calls this when the
        wall clock moved differently from the monotonic clock (a forward jump looks like a quiet
        evening from here; only the shell can tell them apart)."""
        out = Outcome()
        for t in self.tickets.values():
            if t.state in ("waiting", "called") and not t.clock_jump:
                t.clock_jump = True
                out.tickets.add(t.id)
        return out

    def estimate(self, service: str, ahead: int) -> float:
        """The old single-figure wait in minutes for someone with ``ahead`` people before them
        (kept as the baseline of ``bench/wait_estimate.py``; tickets print ``wait_range``).

        ``ahead`` × the moving average of recent (explicitly finished) service times of this
        service ÷ the counters serving it that are open — neither paused nor closed (at least
        one: before the first counter opens, one is assumed). Half a service more when every
        open counter is busy; 0 when nobody is ahead and an open counter is free.
        """
        open_counters = [rt for c in self.site.counters if service in c.services
                         and (rt := self.counters[c.number]).state == "open"]
        n = max(1, len(open_counters))
        busy = sum(1 for rt in open_counters if rt.serving is not None)
        if ahead == 0 and busy < len(open_counters):
            return 0.0
        return round((ahead + (1 if busy >= n else 0) * 0.5) * self.service_ewma[service] / n / 60, 1)

    def hall_view(self, now: float) -> HallView:
        """The snapshot the wait estimate plays forward."""
        local = datetime.fromtimestamp(now, self.tz)
        hours = self.site.hours
        close_at = datetime.combine(local.date(), hours.close, self.tz).timestamp()
        open_at = datetime.combine(local.date(), hours.open, self.tz).timestamp()
        counters = []
        for cfg in self.site.counters:
            rt = self.counters[cfg.number]
            busy = self.tickets.get(rt.serving) if rt.serving is not None else None
            visit = self.visits.get(rt.visit_id) if rt.visit_id is not None else None
            pause = self.pauses.get(rt.pause_id) if rt.pause_id is not None else None
            counters.append(CounterView(
                number=cfg.number, services=tuple(cfg.services), state=rt.state,
                busy_since=visit.called_at if visit is not None and busy is not None else None,
                serving_service=busy.service if busy is not None else None,
                paused_since=pause.started_at if pause is not None else None))
        waiting = tuple(WaitingTicket(t.id, t.service, bool(t.priority_group), t.arrival_at) for t in self.waiting())
        return HallView(now=now, waiting=waiting, counters=tuple(counters), streak=dict(self.streak),
                        priority_per_normal=self.site.priority.priority_per_normal,
                        max_wait_s=self.site.priority.max_wait_min * 60, close_at=close_at, open_at=open_at,
                        prior_call_s=self.prior_call_s)

    def wait_range(self, service: str, now: float, ticket: Ticket | None = None) -> WaitRange:
        """The wait of ``ticket`` (waiting), or of a normal citizen who takes a ``service`` ticket now."""
        key = (self.rev, ticket.id if ticket is not None else 0, service)
        hit = self._wait_cache.get(key)
        if hit is not None and abs(hit[0] - now) < 60:  # the same hall a moment later: the same estimate
            return hit[1]
        if ticket is None:
            # the retained state's estimate may be a few seconds old: a burst of presses then costs
            # one estimate per service, not one per press
            last = self._state_waits.get(service)
            if last is not None and 0 <= now - last[0] < STATE_WAIT_MAX_AGE_S:
                return last[1]
        if ticket is not None:
            target = WaitingTicket(ticket.id, ticket.service, bool(ticket.priority_group), ticket.arrival_at)
        else:
            target = WaitingTicket(10**12, service, False, now)  # behind everyone already waiting
        seed = zlib.crc32(f"{self.rev}:{target.id}:{service}".encode())
        got = estimate_wait(self.hall_view(now), self.history, target, seed=seed)
        if len(self._wait_cache) > 64 or any(k[0] != self.rev for k in self._wait_cache):
            self._wait_cache = {k: v for k, v in self._wait_cache.items() if k[0] == self.rev}
        self._wait_cache[key] = (now, got)
        if ticket is None:
            self._state_waits[service] = (now, got)
        return got

    def people_ahead(self, t: Ticket) -> int:
        ws = self.waiting([t.service])
        if t.priority_group:
            return sum(1 for w in ws if w.priority_group and (w.arrival_at, w.id) < (t.arrival_at, t.id))
        return sum(1 for w in ws if (w.arrival_at, w.id) < (t.arrival_at, t.id) or w.priority_group)

    # ------------------------------------------------------------------ the site, live
    def site_change_refusals(self, new: Site, *, old: Site | None = None, restart: bool = False) -> list[str]:
        """Why ``new`` cannot replace the running site with today's queue as it is — every
        reason, Vietnamese first. Empty: the swap keeps every ticket, its number and its place.
        ``old``: the site the queue was run with (default: the running one); ``restart``: the change
        comes with a restart (a site file edited since the last push), which may change the slug,
        time zone and daily reset."""
        out: list[str] = []
        before = old or self.site
        for name in () if restart else ("slug", "timezone", "daily_reset"):
            if getattr(new.site, name) != getattr(before.site, name):
                out.append(f"site.{name} chỉ đổi được khi khởi động lại máy chủ hàng đợi: sửa tệp site / "
                           f"site.{name} changes only with a restart: edit the site file")
        open_t = [t for t in self.tickets.values() if t.state in ("waiting", "called")]
        new_services = {s.id: s for s in new.services}
        called_by = {sid for c in new.counters for sid in c.services}
        groups = {g.id for g in new.priority.groups}
        for sid in sorted({t.service for t in open_t}):
            mine = [t for t in open_t if t.service == sid]
            waiting = sum(1 for t in mine if t.state == "waiting")
            if sid not in new_services:
                n = len(mine)
                out.append(f"lĩnh vực {sid}: còn {n} phiếu chưa xong hôm nay, chưa bỏ được / service {sid} has "
                           f"{n} open ticket{'s' if n != 1 else ''} today: it cannot be removed yet")
            elif waiting and sid not in called_by:
                out.append(f"lĩnh vực {sid}: {waiting} người đang chờ mà không quầy nào gọi / "
                           f"{waiting} waiting for {sid} and no counter would call them")
        for (day, sid), last in sorted(self.sequences.items()):
            svc = new_services.get(sid)
            if day != self.day or svc is None:
                continue
            # the numbers this band gave today: a ticket transferred in keeps the number of the band it came from
            first = min((t.number for t in self.tickets.values() if t.day == day and t.first_service == sid),
                        default=self.services[sid].band[0] if sid in self.services else svc.band[0])
            lo, hi = svc.band
            if lo > first or hi < last:
                reset = self.site.site.daily_reset.strftime("%H:%M")
                out.append(f"lĩnh vực {sid}: dải số [{lo}, {hi}] không chứa các số đã phát hôm nay ({first}–{last}): "
                           f"đẩy dải mới sau giờ đổi ngày {reset} / band [{lo}, {hi}] leaves out today's numbers "
                           f"{first}–{last}: push the new band after the day's turn at {reset}")
            elif hi == last and any(s.id == sid and s.band != svc.band for s in before.services):
                # a new band that ends at today's last number: the service would issue nothing more today
                out.append(f"lĩnh vực {sid}: dải số mới [{lo}, {hi}] không còn số nào cho hôm nay (đã phát đến {last}): "
                           f"để dải kết thúc sau {last} / the new band [{lo}, {hi}] leaves no number for today: "
                           f"{last} was the last issued")
        for g in sorted({t.priority_group for t in open_t if t.priority_group} - groups):
            out.append(f"nhóm ưu tiên {g}: còn phiếu đang chờ, chưa bỏ được / priority group {g} has open tickets")
        new_numbers = {c.number for c in new.counters}
        if restart:  # the queue was loaded with the new site: a counter it removed is gone from self.counters
            for t in sorted((t for t in open_t if t.state == "called" and t.counter not in new_numbers),
                            key=lambda t: t.id):
                out.append(f"quầy {t.counter} đang phục vụ số {t.display}: kết thúc trước rồi mới bỏ quầy / "
                           f"counter {t.counter} is serving {t.display}: finish first")
        for n, rt in sorted(self.counters.items()):
            if n in new_numbers or n not in {c.number for c in before.counters}:
                continue
            if rt.serving is not None or rt.state == "paused":
                what = "đang phục vụ" if rt.serving is not None else "đang tạm nghỉ"
                out.append(f"quầy {n} {what}: kết thúc trước rồi mới bỏ quầy / counter {n} is "
                           f"{'serving' if rt.serving is not None else 'paused'}: finish first")
        return out

    def swap_site(self, new: Site) -> None:
        """Run ``new`` from now on (``site_change_refusals`` is empty): the queue, its numbers,
        the counters' state and what the estimate learnt stay; names, targets, the counters'
        services and officers are the new ones from the next call on."""
        numbers = {c.number for c in new.counters}
        for n in [n for n in self.counters if n not in numbers]:  # a removed counter: idle or closed
            del self.counters[n]
        for c in new.counters:
            self.counters.setdefault(c.number, CounterRt(c.number))
        for svc in new.services:
            self.service_ewma.setdefault(svc.id, svc.mean_service_min * 60)
            if svc.id not in self.services or self.services[svc.id].mean_service_min != svc.mean_service_min:
                self.prior_call_s[svc.id] = svc.mean_service_min * 60 + OVERHEAD_S
        self.site = new
        self.services = {s.id: s for s in new.services}
        self._wait_cache.clear()
        self._state_waits.clear()

    # ------------------------------------------------------------------ day
    def roll_day(self, now: float) -> Outcome:
        """Start a new service day when the reset time has passed; history is kept."""
        out = Outcome()
        day = self.service_day(now)
        if day == self.day:
            return out
        old = self.day
        self.day = day
        if not old:
            return out
        for c in self.counters.values():
            if c.serving is not None:
                self._end_visit(out, c, now, "served", inferred=True)
            if c.state == "paused":
                self._end_pause(out, c, now)
            if c.state != "closed":
                c.state, c.pause_reason = "closed", None
                out.counters.add(c.number)
            c.last_finished_ticket = c.last_finished_at = None
        self._end_orphans(out, now)
        for t in self.waiting():
            t.state = "expired"
            t.finished_at = now
            self._ticket_event(out, now, "expired", t, reason="day-end")
        self.streak.clear()
        self.history.new_day()
        self.last_calls = []
        self.last_called = {}
        out.day_rolled = True
        return out

    def _end_orphans(self, out: Outcome, now: float) -> None:
        """End the visits and pauses of counters the site no longer has (a site file that dropped a
        counter, taken at a start on a new day): the counter's ticket stayed "called" and its pause
        open for ever, and every later site change was refused for a counter nobody could reach."""
        for v in [v for v in self.visits.values() if v.ended_at is None and v.counter not in self.counters]:
            ghost = CounterRt(v.counter, serving=v.ticket_id if v.ticket_id in self.tickets else None, visit_id=v.id)
            self._end_visit(out, ghost, now, "served", inferred=True)
            out.counters.discard(v.counter)  # no row of it to write: the site has no such counter
        for p in [p for p in self.pauses.values() if p.ended_at is None and p.counter not in self.counters]:
            p.ended_at = now
            self.history.on_pause_end(now - p.started_at)
            out.pauses.add(p.id)

    def prune(self) -> None:
        """Forget closed tickets, visits and pauses from memory. Call it only after the ledger
        wrote the outcome that closed them (the ledger keeps them for ever)."""
        for tid in [i for i, t in self.tickets.items() if t.state not in ("waiting", "called")]:
            if not any(c.last_finished_ticket == tid for c in self.counters.values()):
                del self.tickets[tid]
        for vid in [i for i, v in self.visits.items() if v.ended_at is not None]:
            del self.visits[vid]
        for pid in [i for i, p in self.pauses.items() if p.ended_at is not None]:
            del self.pauses[pid]

    def seen_floor(self, service: str, last: int, seen: int, by: str | None) -> int:
        """The last number to go on from, given the ``seen`` of a dispenser, on a ledger that began
        today (a new card: the morning's numbers are on the citizens' tickets, not in it). Up to the
        middle of the band: a dispenser's password cannot spend a service's numbers for the day by
        claiming a high one (past the middle, numbers may repeat, as before: said in the log)."""
        lo, hi = self.services[service].band
        if seen <= last or not lo <= seen <= hi:  # outside the band: no dispenser printed it
            return last
        cap = lo - 1 + (hi - lo + 1) // 2
        new = max(last, min(seen, cap))
        if new == last:
            return last
        log.warning("%s printed up to %s of %s today, the ledger (new today) only to %s: numbers go on from %s",
                    by or "a dispenser", seen, service, last if last >= lo else "none", new + 1)
        if seen > new:
            log.error("%s: %s is past the middle of the band: %s–%s may be printed twice today", service, seen,
                      new + 1, seen)
        return new

    # ------------------------------------------------------------------ commands
    def issue(self, service: str, priority_group: str | None, now: float, *, issued_by: str | None = None,
              seen: tuple[str, int] | None = None) -> Outcome:
        """A new number of ``service``; ``issued_by``: the dispenser that asked (it alone may void it).

        ``seen``: (day, number), the highest number of the service the dispenser printed or saw that
        day. A ledger begun that day (a new card) goes on after it rather than
        give a number a citizen already holds (``seen_floor``)."""
        out = Outcome()
        if service not in self.services:
            raise CommandError("unknown-service", f"no service {service!r}")
        if priority_group and priority_group not in {g.id for g in self.site.priority.groups}:
            raise CommandError("unknown-priority-group", f"no priority group {priority_group!r}")
        self._called_somewhere(service)
        svc = self.services[service]
        lo, hi = svc.band
        key = (self.service_day(now), service)  # the day this ticket belongs to, after any roll
        last = self.sequences.get(key, lo - 1)
        if seen is not None and seen[0] == key[0] and self.ledger_started is not None \
                and self.service_day(self.ledger_started) == key[0]:  # a new ledger, today: it lost the morning
            last = self.seen_floor(service, last, seen[1], issued_by)
        if last >= hi:
            raise CommandError("band-exhausted", f"đã phát hết các số {lo}–{hi} của {service} hôm nay / "
                                                 f"all numbers {lo}–{hi} of {service} are used today")
        self._tick_time(now, out)
        number = last + 1
        self.sequences[key] = number
        out.sequences.add(key)
        t = Ticket(id=self.next_ticket_id, day=self.day, service=service, number=number,
                   display=format_number(number, svc.prefix), priority_group=priority_group,
                   issued_at=now, arrival_at=now, first_service=service, issued_by=issued_by)
        self.next_ticket_id += 1
        self.tickets[t.id] = t
        self.history.on_issue(now, service, bool(priority_group))
        ahead = self.people_ahead(t)
        est = self.wait_range(service, now, t).fields()
        self._ticket_event(out, now, "issued", t, people_ahead=ahead, **est)
        out.data = {"ticket": t.info(), "people_ahead": ahead, **est,
                    "service_name_vi": svc.name_vi, "service_name_en": svc.name_en}
        return out

    def pick_next(self, counter: int, now: float) -> Ticket | None:
        """The ticket ``counter`` would call now (no change)."""
        services = self.site.counter(counter).services
        cands = self.waiting(list(services))
        if not cands:
            return None
        max_wait = self.site.priority.max_wait_min * 60
        overdue = [t for t in cands if now - t.arrival_at >= max_wait]
        if overdue:
            return overdue[0]
        k = self.site.priority.priority_per_normal
        for s in services:
            in_s = [t for t in cands if t.service == s]
            if not in_s:
                continue
            pri = [t for t in in_s if t.priority_group]
            norm = [t for t in in_s if not t.priority_group]
            if pri and (not norm or self.streak.get(s, 0) < k):
                return pri[0]
            return norm[0]
        return None  # pragma: no cover - cands non-empty implies a service matched

    def call_next(self, counter: int, now: float) -> Outcome:
        out = Outcome()
        c = self._counter(counter)
        self._tick_time(now, out)
        finished = self._open_for_call(out, c, now)
        t = self.pick_next(counter, now)
        if t is None:
            out.data = {"ticket": None, "queue_empty": True, "finished": finished}
            return out
        if t.priority_group:
            self.streak[t.service] = self.streak.get(t.service, 0) + 1
        else:
            self.streak[t.service] = 0
        self._call(out, c, t, now)
        out.data["finished"] = finished
        return out

    def call_ticket(self, counter: int, ticket_id: int, reason: str, now: float) -> Outcome:
        """Call one waiting number out of the call order (the console's "call this number"): the
        officer gives the reason, the visit keeps it and reports count it as an exception. The
        number must be waiting in a service this counter serves; the priority streak is left as
        it is (the exception does not change whose turn it is next)."""
        out = Outcome()
        c = self._counter(counter)
        reason = reason.strip()
        if not reason:
            raise CommandError("reason-required", "calling a number out of order needs a reason")
        t = self.tickets.get(ticket_id)
        if t is None or t.state != "waiting" or self._rolls(now):
            raise CommandError("not-waiting", f"ticket {ticket_id} is not waiting")
        services = self.site.counter(counter).services
        if t.service not in services:
            raise CommandError("not-served-here", f"counter {counter} does not serve {t.service} ({t.display})")
        self._tick_time(now, out)
        finished = self._open_for_call(out, c, now)
        self._call(out, c, t, now, reason=reason)
        out.data["finished"] = finished
        return out

    def _open_for_call(self, out: Outcome, c: CounterRt, now: float) -> dict[str, Any] | None:
        """A call finishes whoever is served (inferred), ends a pause and opens the counter."""
        finished = None
        if c.serving is not None:
            t_done = self.tickets[c.serving]
            self._end_visit(out, c, now, "served", inferred=True)
            finished = {"ticket": t_done.info(), "inferred": True}
        if c.state == "paused":
            self._resume(out, c, now)
        if c.state != "open":
            c.state = "open"
            out.counters.add(c.number)
        return finished

    def _call(self, out: Outcome, c: CounterRt, t: Ticket, now: float, *, reason: str | None = None) -> None:
        counter = c.number
        self.history.on_call(counter, now, t.service, t.arrival_at)
        t.state = "called"
        t.counter = counter
        t.called_at = t.called_at or now
        t.last_called_at = now
        cfg = self.site.counter(counter)
        v = Visit(id=self.next_visit_id, ticket_id=t.id, day=self.day, counter=counter,
                  officer=self.site.officer_name(counter), service=t.service, called_at=now, call_reason=reason)
        self.next_visit_id += 1
        self.visits[v.id] = v
        c.serving, c.visit_id = t.id, v.id
        out.visits.add(v.id)
        out.counters.add(counter)
        if reason is None:
            self._ticket_event(out, now, "called", t)
        else:
            self._ticket_event(out, now, "called", t, out_of_order=True, reason=reason)
        self._remember_call(out.events[-1])
        out.data = {"ticket": t.info(), "queue_empty": False, "out_of_order": reason is not None,
                    "waiting": len(self.waiting(list(cfg.services)))}

    def arrived(self, counter: int, now: float) -> Outcome:
        """The called citizen reached the counter ("citizen arrived"): the walk ends here and the
        service time is measured from here. Pressed again: the first arrival stands."""
        out = Outcome()
        c = self._counter(counter)
        t = self._serving(c, now)
        v = self.visits.get(c.visit_id) if c.visit_id is not None else None
        if v is None:  # pragma: no cover - a serving counter always has its visit
            raise CommandError("not-serving", f"counter {counter} is not serving anyone")
        if v.arrived_at is not None:
            out.data = {"ticket": t.info(), "arrived_at": v.arrived_at, "walk_s": round(v.arrived_at - v.called_at, 1),
                        "already": True}
            return out
        self._tick_time(now, out)
        v.arrived_at = now
        out.visits.add(v.id)
        walk = round(max(0.0, now - v.called_at), 1)
        self._ticket_event(out, now, "arrived", t, walk_s=walk)
        out.data = {"ticket": t.info(), "arrived_at": now, "walk_s": walk, "already": False}
        return out

    def _remember_call(self, ev: Event) -> None:
        tk = ev.payload["ticket"]
        self.last_called[tk["service"]] = tk["display"]
        self.last_calls.insert(0, {"rev": ev.rev, "at": ev.at, "kind": ev.kind, "display": tk["display"],
                                   "service": tk["service"], "counter": tk["counter"]})
        del self.last_calls[LAST_CALLS:]

    def recall(self, counter: int, now: float) -> Outcome:
        out = Outcome()
        c = self._counter(counter)
        t = self._serving(c, now)
        v = self.visits.get(c.visit_id) if c.visit_id is not None else None
        if v is not None and v.recalls >= MAX_RECALLS_PER_VISIT:
            raise CommandError("recall-limit", f"{t.display} has been recalled {v.recalls} times at this call: mark "
                                               "the citizen absent (no-show), or finish")
        self._tick_time(now, out)
        t.recalls += 1
        t.last_called_at = now
        if c.visit_id in self.visits:
            self.visits[c.visit_id].recalls += 1
            out.visits.add(c.visit_id)
        self._ticket_event(out, now, "recalled", t)
        self._remember_call(out.events[-1])
        out.data = {"ticket": t.info(), "recalls": t.recalls}
        return out

    def no_show(self, counter: int, now: float) -> Outcome:
        out = Outcome()
        c = self._counter(counter)
        t = self._serving(c, now)
        self._tick_time(now, out)
        self._end_visit(out, c, now, "no-show")
        requeue = self.site.no_show_requeue and t.requeued == 0
        if requeue:
            # back to the end of the queue once; the wait still counts from the first issue
            t.state, t.counter, t.requeued, t.arrival_at = "waiting", None, t.requeued + 1, now
        else:
            t.state, t.finished_at = "no-show", now
        self._ticket_event(out, now, "no-show", t, reason="requeued" if requeue else None)
        out.data = {"ticket": t.info(), "requeued": requeue}
        return out

    def finish(self, counter: int, now: float) -> Outcome:
        out = Outcome()
        c = self._counter(counter)
        t = self._serving(c, now)
        self._tick_time(now, out)
        self._end_visit(out, c, now, "served", inferred=False)
        out.data = {"ticket": t.info(), "rating_window_s": self.site.rating_window_s}
        return out

    def _end_visit(self, out: Outcome, c: CounterRt, now: float, outcome: str, inferred: bool = False) -> None:
        t = self.tickets[c.serving] if c.serving is not None else None
        v = self.visits.get(c.visit_id) if c.visit_id is not None else None
        if v is not None:
            v.ended_at, v.outcome, v.inferred = now, outcome, inferred
            out.visits.add(v.id)
        c.serving, c.visit_id = None, None
        out.counters.add(c.number)
        self.history.on_visit_end(c.number, now)
        if t is None:
            return
        if outcome == "served":
            t.state, t.finished_at, t.finish_inferred = "done", now, inferred
            if not inferred:  # only the Finish key opens a rating window (the box was told)
                c.last_finished_ticket, c.last_finished_at = t.id, now
            if v is not None and not inferred:
                dur = max(0.0, now - v.called_at)
                self.service_ewma[t.service] = (1 - EWMA_ALPHA) * self.service_ewma[t.service] + EWMA_ALPHA * dur
            self._ticket_event(out, now, "finished", t, inferred=inferred)

    def _called_somewhere(self, service: str) -> None:
        """CommandError unless a counter of the site calls ``service``: a ticket of it would wait for a
        call that can never come (a live site change left a service on the dispenser and on the
        transfer list with no counter; the hub printed 5001 and 5002, "about 543 min")."""
        if not any(service in c.services for c in self.site.counters):
            raise CommandError("no-counter", f"không quầy nào gọi lĩnh vực {service} (services của [[counters]]): "
                                             f"không cấp số, không chuyển đến đó / no counter calls {service} (the "
                                             "site's [[counters]] services): nothing is issued or sent there")

    def transfer(self, counter: int, to_service: str, now: float) -> Outcome:
        out = Outcome()
        c = self._counter(counter)
        if to_service not in self.services:
            raise CommandError("unknown-service", f"no service {to_service!r}")
        t = self._serving(c, now)
        if to_service == t.service:
            raise CommandError("same-service", "the ticket is already in that service")
        self._called_somewhere(to_service)
        if t.transfers >= MAX_TRANSFERS_PER_TICKET:
            raise CommandError("transfer-limit", f"{t.display} has been transferred {t.transfers} times: serve it "
                                                 "here, or mark it absent")
        self._tick_time(now, out)
        self._end_visit(out, c, now, "transferred")
        from_service = t.service
        self.history.on_transfer(from_service, to_service)
        out.services.add(from_service)
        t.state, t.counter, t.service, t.transfers = "waiting", None, to_service, t.transfers + 1
        # arrival_at is kept: the citizen does not go to the back of the new queue
        self._ticket_event(out, now, "transferred", t, from_service=from_service)
        out.data = {"ticket": t.info(), "from_service": from_service}
        return out

    def pause(self, counter: int, reason: str, now: float) -> Outcome:
        out = Outcome()
        c = self._counter(counter)
        self._tick_time(now, out)
        finished = None
        if c.serving is not None:  # a pause ends the service (inferred), as a call does: the answer says which
            finished = {"ticket": self.tickets[c.serving].info(), "inferred": True}
            self._end_visit(out, c, now, "served", inferred=True)
        if c.state == "paused":
            out.data = {"counter": counter, "state": "paused", "finished": finished}
            return out
        self.history.on_break(counter)
        p = Pause(id=self.next_pause_id, counter=counter, day=self.day, started_at=now, reason=reason)
        self.next_pause_id += 1
        self.pauses[p.id] = p
        c.state, c.pause_reason, c.pause_id = "paused", reason or None, p.id
        out.pauses.add(p.id)
        out.counters.add(counter)
        self._event(out, now, "counter", "paused", counter=counter, reason=reason or None)
        out.data = {"counter": counter, "state": "paused", "finished": finished}
        return out

    def resume(self, counter: int, now: float) -> Outcome:
        out = Outcome()
        c = self._counter(counter)
        self._tick_time(now, out)
        if c.state == "paused":
            self._resume(out, c, now)
        elif c.state == "closed":
            c.state = "open"
            out.counters.add(counter)
        out.data = {"counter": counter, "state": c.state}
        return out

    def _end_pause(self, out: Outcome, c: CounterRt, now: float) -> None:
        if c.pause_id is not None and c.pause_id in self.pauses:
            p = self.pauses[c.pause_id]
            p.ended_at = now
            self.history.on_pause_end(now - p.started_at)
            out.pauses.add(c.pause_id)
        c.pause_id = None

    def _resume(self, out: Outcome, c: CounterRt, now: float) -> None:
        self._end_pause(out, c, now)
        c.state, c.pause_reason = "open", None
        out.counters.add(c.number)
        self._event(out, now, "counter", "resumed", counter=c.number)

    def rate(self, counter: int, score: int, now: float, ticket_id: int | None = None) -> Outcome:
        """Bind ``score`` to the ticket ``counter`` finished last with the Finish key, within
        ``rating_window_s``. ``ticket_id`` (the ticket the rating box saw finished), when given,
        must be that ticket: a rating is never moved onto another citizen's ticket."""
        out = Outcome()
        c = self._counter(counter)
        if not 1 <= score <= self.site.rating_scale:
            raise CommandError("invalid", f"score must be 1..{self.site.rating_scale}")
        last = None if self._rolls(now) else c.last_finished_ticket
        if ticket_id is not None and ticket_id != last:
            raise CommandError("rating-wrong-ticket",
                               f"ticket {ticket_id} is not the ticket counter {counter} finished last")
        t = self.tickets.get(last) if last is not None else None
        if t is None or c.last_finished_at is None or now - c.last_finished_at > self.site.rating_window_s:
            raise CommandError("rating-window-closed", "no service just finished at this counter")
        if t.rating is not None:
            raise CommandError("already-rated", f"ticket {t.display} is already rated {t.rating}")
        self._tick_time(now, out)
        t.rating, t.rated_at = score, now
        self._ticket_event(out, now, "rated", t, score=score)
        out.data = {"ticket": t.info(), "score": score}
        return out

    def void(self, ticket_id: int, reason: str, now: float, *, by: str | None = None) -> Outcome:
        """Take back a waiting number. ``by``: the dispenser asking, which voids only a ticket it issued
        within DISPENSER_VOID_WINDOW_S (the one its printer failed on); None: a technician, any ticket."""
        out = Outcome()
        t = self.tickets.get(ticket_id)
        if t is None or t.state != "waiting" or t.called_at is not None or self._rolls(now):
            # at the day's turn every waiting ticket expires: nothing left to void
            raise CommandError("not-voidable", f"ticket {ticket_id} is not waiting or was already called")
        if by is not None and t.issued_by != by:
            raise CommandError("forbidden", f"ticket {t.display} was not issued by {by}")
        if by is not None and now - t.issued_at > DISPENSER_VOID_WINDOW_S:
            raise CommandError("not-voidable", f"ticket {t.display} was issued {(now - t.issued_at) / 60:.0f} min ago: "
                               "a dispenser voids only a number it just failed to print")
        self._tick_time(now, out)
        t.state, t.void_reason, t.finished_at = "voided", reason or "voided", now
        self._ticket_event(out, now, "voided", t, reason=reason or None)
        out.data = {"ticket": t.info()}
        return out

    # ------------------------------------------------------------------ persistence
    def meta(self) -> dict[str, Any]:
        """Engine state that is not in a row table."""
        return {"rev": self.rev, "day": self.day, "streak": self.streak, "service_ewma": self.service_ewma,
                "last_calls": self.last_calls, "last_called": self.last_called, "next_ticket_id": self.next_ticket_id,
                "next_visit_id": self.next_visit_id, "next_pause_id": self.next_pause_id, "last_now": self.last_now,
                "wait_history": self.history.to_dict()}

    def load_meta(self, m: dict[str, Any]) -> None:
        self.rev = int(m.get("rev", 0))
        self.day = m.get("day", "")
        self.streak = dict(m.get("streak", {}))
        self.service_ewma.update({k: float(v) for k, v in m.get("service_ewma", {}).items() if k in self.services})
        self.last_calls = list(m.get("last_calls", []))
        self.last_called = dict(m.get("last_called", {}))
        self.next_ticket_id = int(m.get("next_ticket_id", 1))
        self.next_visit_id = int(m.get("next_visit_id", 1))
        self.next_pause_id = int(m.get("next_pause_id", 1))
        self.last_now = float(m.get("last_now", 0.0))
        self.history = WaitHistory.from_dict(m.get("wait_history") or {})


def row(obj: Ticket | Visit | CounterRt | Pause) -> dict[str, Any]:
    return asdict(obj)
