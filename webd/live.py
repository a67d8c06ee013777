"""The centre as webd sees it: a pure model fed with the contract's messages (no I/O, no clock).

The owner thread applies retained state (hall, counters, services), ticket and counter events
(deduplicated by ``rev``; a gap is held back and reported so the shell asks ``resync``), node
status and alerts; after each change it takes an immutable ``Snapshot`` that the web side
reads without locks (one reference swap).

A ticket's live view comes from the events webd saw today: waiting (with the people ahead of
it, counted as the hub counts them: priority tickets first, then by arrival), called at a
counter, transferred, no-show, served, voided, expired. ``synced`` is false until the hub's
hall state has arrived and while a gap is open: the pages then say "updating" instead of
showing what may be stale (never an old "called").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from xephang.contract import (
    Alert,
    CounterEvent,
    CounterState,
    HallState,
    NodeStatus,
    ServiceState,
    TicketEvent,
    WaitOfTicket,
)

KEEP_TICKETS = 5000  # tickets of the day kept in memory at most (a busy centre issues a few hundred)
HELD_EVENTS = 2000  # events held while a gap is open, at most


@dataclass(frozen=True)
class LiveTicket:
    """What webd knows of one ticket of today."""

    id: int
    day: str
    display: str
    service: str
    priority: bool
    arrival: float  # its place in its queue (hub clock): the issue, kept by a transfer, a no-show's requeue
    state: str = "waiting"  # waiting | called | done | no-show | voided | expired
    counter: int | None = None
    recalls: int = 0
    last_kind: str = "issued"
    from_service: str | None = None
    at: float = 0.0  # the last change (hub clock)
    issued_at: float = 0.0  # when the ticket was taken (the officer's console shows the wait from here)
    priority_group: str | None = None


@dataclass(frozen=True)
class WaitFigure:
    """A waiting ticket's range from the hub: the one printed on it (its ``issued`` event) until
    the hub answers ``ticket-wait`` with the day played forward from now."""

    low_min: int
    high_min: int | None  # None: "more than low_min minutes"
    point_min: float
    rev: int  # the hall revision it was estimated at
    printed: bool  # still the ticket's printed range (nothing newer asked yet)


@dataclass(frozen=True)
class TicketView:
    """One ticket's page, as the web side renders it."""

    known: bool
    state: str  # waiting | called | done | no-show | voided | expired | unknown | syncing | old
    display: str
    service: str
    counter: int | None = None
    people_ahead: int | None = None
    est_wait_min: float | None = None
    recalls: int = 0
    last_kind: str = ""
    from_service: str | None = None
    wait: WaitFigure | None = None  # the hub's range for this waiting ticket


@dataclass(frozen=True)
class Snapshot:
    """An immutable picture of the centre for the pages (taken after every change)."""

    version: int
    synced: bool
    rev: int
    day: str
    site_name_vi: str
    site_name_en: str
    counters: tuple[CounterState, ...]
    services: tuple[ServiceState, ...]
    last_calls: tuple[Any, ...]
    tickets: dict[int, LiveTicket]
    ahead: dict[int, int]  # waiting ticket id → people ahead
    nodes: dict[str, bool]  # node → online
    alerts: tuple[Alert, ...]
    summary: dict[str, Any] | None = None
    waits: dict[int, WaitFigure] = field(default_factory=dict)  # waiting ticket id → the hub's range
    lost_up_to: int = 0  # ticket ids up to this one were a replaced ledger's (its hall state's ``ledger``)

    def service(self, sid: str) -> ServiceState | None:
        return next((s for s in self.services if s.id == sid), None)

    def counter(self, number: int) -> CounterState | None:
        return next((c for c in self.counters if c.number == number), None)

    def waiting_in(self, sid: str) -> list[LiveTicket]:
        """Today's waiting tickets of a service in the hub's call order within it: priority
        tickets first, then by arrival (the overdue rule and the priority streak may change the
        next call; the console says so)."""
        ws = [t for t in self.tickets.values() if t.state == "waiting" and t.service == sid
              and (not self.day or t.day == self.day)]
        ws.sort(key=lambda t: (self.ahead.get(t.id, 0), t.arrival, t.id))
        return ws

    def ticket_view(self, ticket_id: int, day: str, display: str) -> TicketView:
        """The view of the ticket a (verified) link names."""
        if self.day and day < self.day:
            return TicketView(False, "old", display, "")
        if not self.synced:
            return TicketView(False, "syncing", display, "")
        t = self.tickets.get(ticket_id)
        if t is None or t.display != display or t.day != day:
            # issued before webd started listening (or a day not begun): is a counter serving it?
            for c in self.counters:
                if c.serving is not None and c.serving.id == ticket_id:
                    return TicketView(True, "called", display, c.serving.service, counter=c.number,
                                      recalls=c.serving.recalls, last_kind="called")
            if ticket_id <= self.lost_up_to:  # the hub's card was replaced: this ticket went with the old one
                return TicketView(False, "lost", display, "")
            return TicketView(False, "unknown", display, "")
        ahead = self.ahead.get(t.id)
        # the hub's own range for this ticket (printed on it, then refreshed by ``ticket-wait``):
        # the phone never shows a figure of its own making that the ticket and the board contradict
        w = self.waits.get(t.id) if t.state == "waiting" else None
        return TicketView(True, t.state, t.display, t.service, counter=t.counter, people_ahead=ahead,
                          est_wait_min=w.point_min if w else None, recalls=t.recalls, last_kind=t.last_kind,
                          from_service=t.from_service, wait=w)


@dataclass
class LiveHall:
    """The model the owner thread keeps. ``snapshot()`` after every batch of changes."""

    hall: HallState | None = None
    counters: dict[int, CounterState] = field(default_factory=dict)
    services: dict[str, ServiceState] = field(default_factory=dict)
    tickets: dict[int, LiveTicket] = field(default_factory=dict)
    rev: int = 0  # last event rev applied (gap-free)
    held: dict[int, TicketEvent | CounterEvent] = field(default_factory=dict)  # revs after a gap
    nodes: dict[str, tuple[bool, int]] = field(default_factory=dict)  # node → (online, session)
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    waits: dict[int, WaitFigure] = field(default_factory=dict)
    _unseen: dict[str, int] = field(default_factory=dict)  # per service: waiting tickets webd never saw
    # tickets learnt from ``ticket-wait`` (issued before the events read back at the start) → the hub's
    # people ahead of it (None: an event of the ticket came since, until the next answer) and the rev it
    # holds for: webd cannot count them (the older tickets it never saw may be ahead of it or behind)
    adopted: dict[int, tuple[int | None, int]] = field(default_factory=dict)
    # the hub's ledger (its numbering base, from the hall state): when it changes (a replaced card),
    # the tickets of ids up to it went with the old ledger (a drill: their phones still said "2 ahead",
    # and the first ticket of the new hub counted them ahead of it)
    ledger: int | None = None
    lost_up_to: int = 0
    hub_online: bool = False
    link_up: bool = False  # our own connection to the broker
    catching_up: bool = False  # today's events are being read back (resync pages)
    begun: bool = False  # the first resync reply came (until then the retained state alone is not enough)
    version: int = 0
    events_applied: int = 0
    duplicates: int = 0

    # ---------------------------------------------------------------- state
    @property
    def day(self) -> str:
        return self.hall.day if self.hall else ""

    @property
    def gap(self) -> bool:
        return bool(self.held)

    @property
    def synced(self) -> bool:
        return (self.hall is not None and not self.held and self.hub_online and self.link_up
                and self.begun and not self.catching_up)

    def set_link(self, up: bool) -> None:
        self.link_up = up
        self.version += 1

    def begin(self, hs: HallState, catchup_events: int) -> int | None:
        """The first hall snapshot from a resync: read back up to ``catchup_events`` events
        (today's tickets issued before webd started). Returns the ``since_rev`` to ask, or None."""
        self.on_hall(hs)
        self.begun = True
        if self.rev == 0 and hs.rev > 0:
            self.rev = max(0, hs.rev - catchup_events)
            self.catching_up = self.rev < hs.rev
        self.version += 1
        return self.rev if self.catching_up else None

    def on_hall(self, hs: HallState) -> None:
        """The retained hall state (or a resync's ``data.hall``): counters, services, day."""
        if self.hall is not None and hs.day and self.hall.day and hs.day != self.hall.day:
            self.tickets.clear()  # a new service day: yesterday's tickets are expired by the hub
            self.waits.clear()
            self.adopted.clear()
        if hs.ledger is not None and hs.ledger != self.ledger:
            # ids up to the ledger's base are an older ledger's (also for a webd started after the swap)
            self.ledger, self.lost_up_to = hs.ledger, max(self.lost_up_to, hs.ledger)
            gone = [tid for tid in self.tickets if tid <= self.lost_up_to]
            for tid in gone:
                del self.tickets[tid]
                self.waits.pop(tid, None)
                self.adopted.pop(tid, None)
            if gone:
                self._unseen.clear()
        self.hall = hs
        for c in hs.counters:
            if c.number not in self.counters or c.rev <= hs.rev:
                self.counters[c.number] = c
        for s in hs.services:
            if s.id not in self.services or s.rev <= hs.rev:
                self.services[s.id] = s
        self.version += 1

    def on_counter(self, cs: CounterState) -> None:
        cur = self.counters.get(cs.number)
        if cur is None or cs.rev >= cur.rev:
            self.counters[cs.number] = cs
            self.version += 1

    def on_service(self, ss: ServiceState) -> None:
        cur = self.services.get(ss.id)
        if cur is None or ss.rev >= cur.rev:
            self.services[ss.id] = ss
            self.version += 1

    def on_status(self, st: NodeStatus) -> None:
        online, session = self.nodes.get(st.node, (False, -1))
        if not st.online and st.session < session:
            return  # a late Will of an older connection
        self.nodes[st.node] = (st.online, st.session)
        if st.node == "hub":
            self.hub_online = st.online
        self.version += 1

    def on_alert(self, node: str, alert_id: str, alert: Alert | None) -> None:
        if alert is None:
            self.alerts.pop((node, alert_id), None)
        else:
            self.alerts[(node, alert_id)] = alert
        self.version += 1

    def on_summary(self, body: dict[str, Any]) -> None:
        self.summary = body
        self.version += 1

    # ---------------------------------------------------------------- events
    def on_event(self, ev: TicketEvent | CounterEvent) -> bool:
        """Apply an event in rev order. Returns True when a gap is open (ask ``resync``)."""
        if ev.rev <= self.rev or ev.rev in self.held:
            self.duplicates += 1
            return self.gap
        if ev.rev == self.rev + 1:
            self._apply(ev)
            self._drain()
        else:
            if len(self.held) < HELD_EVENTS:
                self.held[ev.rev] = ev
        self.version += 1
        return self.gap

    def missing_from(self) -> int:
        """The ``since_rev`` to ask a resync with."""
        return self.rev

    def on_resync(self, hall: HallState, events: list[TicketEvent | CounterEvent], more: bool) -> bool:
        """A resync reply: missed events in rev order, then the hall snapshot. Returns True
        when more events are to be asked for."""
        self.begun = True
        if events and events[0].rev > self.rev + 1:
            # the hub answers every event after since_rev, in rev order: it has none between (a new
            # ledger, whose revisions start after the hub's clock). Asking again gave the same page.
            self.rev = events[0].rev - 1
        for ev in events:
            if ev.rev == self.rev + 1:
                self._apply(ev)
            elif ev.rev > self.rev + 1:
                self.held.setdefault(ev.rev, ev)
        self._drain()
        if not more:
            self.catching_up = False
            if self.held and min(self.held) > self.rev + 1:
                self.rev = min(self.held) - 1  # the hub has nothing older to give: go on from what we hold
            if not events and hall.rev > self.rev:
                self.rev = hall.rev  # nothing missed that the hub still has: take the snapshot's rev
            self._drain()
        self.on_hall(hall)
        return more

    def _drain(self) -> None:
        while self.rev + 1 in self.held:
            self._apply(self.held.pop(self.rev + 1))
        for r in [r for r in self.held if r <= self.rev]:
            del self.held[r]

    def _apply(self, ev: TicketEvent | CounterEvent) -> None:
        self.rev = ev.rev
        self.events_applied += 1
        if isinstance(ev, CounterEvent):
            return
        ti = ev.ticket
        if ti.id in self.adopted and ev.rev > self.adopted[ti.id][1]:
            self.adopted[ti.id] = (None, ev.rev)  # the hub's count no longer holds (a no-show's requeue, a transfer)
        t = self.tickets.get(ti.id) or LiveTicket(id=ti.id, day=ti.day, display=ti.display, service=ti.service,
                                                  priority=ti.priority_group is not None,
                                                  arrival=ti.arrival_at or ti.issued_at,
                                                  issued_at=ti.issued_at, priority_group=ti.priority_group)
        ch: dict[str, Any] = {"last_kind": ev.kind, "at": ev.at, "recalls": ti.recalls}
        if ti.arrival_at is not None:  # the hub's own (an older hub's events: the engine's rules below)
            ch["arrival"] = ti.arrival_at
        k = ev.kind
        if k == "issued":
            ch.setdefault("arrival", ti.issued_at)
            ch.update(state="waiting")
            if ev.est_wait_low_min is not None:
                self.waits[ti.id] = WaitFigure(ev.est_wait_low_min, None if ev.est_wait_open else ev.est_wait_high_min,
                                               ev.est_wait_min or 0.0, ev.rev, printed=True)
        elif k in ("transferred", "no-show"):
            self.waits.pop(ti.id, None)  # back in a queue: the printed range no longer holds
        if k in ("called", "recalled"):
            ch.update(state="called", counter=ev.counter if ev.counter is not None else ti.counter)
        elif k == "finished":
            ch.update(state="done")
        elif k == "no-show":
            if ti.state == "waiting":  # sent back to the queue once (no_show_requeue), at its back
                ch.setdefault("arrival", ev.at)
                ch.update(state="waiting", counter=None)
            else:
                ch.update(state="no-show")
        elif k == "transferred":
            ch.update(from_service=ev.from_service, service=ti.service)
            if ti.state == "waiting":  # a transfer keeps its first arrival (queue-rules.md)
                ch.update(state="waiting", counter=None)
            else:
                ch.update(state=ti.state, counter=ti.counter)
        elif k in ("voided", "expired"):
            ch.update(state=k)
        self.tickets[ti.id] = replace(t, **ch)
        if self.tickets[ti.id].state != "waiting":
            self.waits.pop(ti.id, None)
        if len(self.tickets) > KEEP_TICKETS:
            for tid in sorted(self.tickets)[: len(self.tickets) - KEEP_TICKETS]:
                if self.tickets[tid].state not in ("waiting", "called"):
                    del self.tickets[tid]
                    self.adopted.pop(tid, None)

    def on_waits(self, waits: list[WaitOfTicket], rev: int) -> None:
        """The hub's ``ticket-wait`` answer: the range of each ticket still waiting. A ticket of
        today that webd never saw (issued before the events it read back at its start: a phone
        whose page said "no information about this number" after a webd restart on a busy day) is
        taken from the answer; its later events then apply as to any other."""
        for w in waits:
            self._adopt(w, rev)
            cur = self.waits.get(w.ticket_id)
            if w.state != "waiting" or w.est_wait_low_min is None:
                self.waits.pop(w.ticket_id, None)
            elif cur is None or rev >= cur.rev:
                self.waits[w.ticket_id] = WaitFigure(w.est_wait_low_min, None if w.est_wait_open else w.est_wait_high_min,
                                                     w.est_wait_min or 0.0, rev, printed=False)
        self.version += 1

    def _adopt(self, w: WaitOfTicket, rev: int) -> None:
        ti = w.ticket
        if ti is None or ti.id != w.ticket_id or w.state == "unknown" or not self.day or ti.day != self.day:
            return
        if ti.id in self.tickets and ti.id not in self.adopted:
            return  # known from its events: they are the truth
        if ti.id not in self.tickets:
            kind = {"waiting": "issued", "called": "called", "done": "finished"}.get(ti.state, ti.state)
            self.tickets[ti.id] = LiveTicket(
                id=ti.id, day=ti.day, display=ti.display, service=ti.service, priority=ti.priority_group is not None,
                arrival=ti.arrival_at or ti.issued_at, state=ti.state, counter=ti.counter, recalls=ti.recalls,
                last_kind=kind, at=ti.called_at or ti.issued_at, issued_at=ti.issued_at,
                priority_group=ti.priority_group)
        if w.state == "waiting" and w.people_ahead is not None and rev >= self.adopted.get(ti.id, (0, -1))[1]:
            self.adopted[ti.id] = (w.people_ahead, rev)

    # ---------------------------------------------------------------- snapshot
    def people_ahead(self) -> dict[int, int]:
        """Waiting ticket → people ahead of it, as the hub counts (``QueueEngine.people_ahead``:
        a priority ticket has the earlier priority tickets ahead; a normal one every priority
        ticket and the earlier normal ones). Tickets the hub says are waiting that webd never
        saw (issued before it started) are older, so they are ahead. O(n log n)."""
        out: dict[int, int] = {}
        by_service: dict[str, list[LiveTicket]] = {}
        for t in self.tickets.values():
            if t.state == "waiting" and (not self.day or t.day == self.day):
                by_service.setdefault(t.service, []).append(t)
        for sid, ws in by_service.items():
            s = self.services.get(sid)
            if s is not None and s.rev >= self.rev:  # a count as new as our events: compare them
                self._unseen[sid] = max(0, s.waiting - len(ws))
            unseen = self._unseen.get(sid, 0)
            prio = sorted((t for t in ws if t.priority), key=lambda t: (t.arrival, t.id))
            normal = sorted((t for t in ws if not t.priority), key=lambda t: (t.arrival, t.id))
            for i, t in enumerate(prio):
                out[t.id] = i + unseen
            for i, t in enumerate(normal):
                out[t.id] = len(prio) + i + unseen
        for tid, (ahead, _) in self.adopted.items():
            if tid in out:  # the hub's count, asked again while its page is open (WAIT_MOVED_S after a change)
                if ahead is None:
                    del out[tid]  # none shown until the hub's next answer, rather than a wrong one
                else:
                    out[tid] = ahead
        return out

    def snapshot(self) -> Snapshot:
        hs = self.hall
        return Snapshot(
            version=self.version, synced=self.synced, rev=self.rev, day=self.day,
            site_name_vi=hs.site_name_vi if hs else "", site_name_en=hs.site_name_en if hs else "",
            counters=tuple(self.counters[n] for n in sorted(self.counters)),
            services=tuple(self.services[s.id] for s in (hs.services if hs else []) if s.id in self.services)
            or tuple(self.services.values()),
            last_calls=tuple(hs.last_calls if hs else ()),
            tickets=dict(self.tickets),  # LiveTicket is frozen: the snapshot shares them
            ahead=self.people_ahead(),
            nodes={n: on for n, (on, _) in self.nodes.items()},
            alerts=tuple(self.alerts[k] for k in sorted(self.alerts)),
            summary=self.summary,
            waits={tid: w for tid, w in self.waits.items() if (t := self.tickets.get(tid)) and t.state == "waiting"},
            lost_up_to=self.lost_up_to,
        )
