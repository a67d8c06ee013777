"""The board model: what the hall board knows, with time passed in.

Pure: no pygame, no MQTT, no clock reads. The shell feeds it the retained hall snapshot,
then the hub's events, and link changes; the renderer reads it.

Rules it enforces (DESIGN.md §3):

- an event whose ``rev`` was already seen is ignored (QoS 1 redelivery, resync overlap);
- an event that skips revs is held for a short reorder window, then applied anyway and
  the gap is reported, so the shell asks the hub for ``resync``;
- a snapshot never makes a call "new": a board that reboots shows the last calls but does
  not highlight (or announce) any of them;
- after a (re)connect the broker first delivers what it queued for the board's persistent
  session while it was away (events and older hall states). Until the broker's current
  hall state (a retained delivery) is loaded — or ``sync_timeout_s`` has passed — the board
  is *catching up*: those events are applied but none is highlighted as a new call;
- when the hub or the broker is unreachable the last known numbers stay, marked stale.

The inputs are small dataclasses of our own; the shell (``displayd.main``) maps the MQTT contract
models onto them, so this file does not move when the wire format grows optional fields.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from xephang.waittext import WaitRange

log = logging.getLogger(__name__)

CounterState = Literal["open", "paused", "closed"]
COUNTER_STATES: tuple[str, ...] = ("open", "paused", "closed")

# event kinds that put a number on the board as "please come to counter N"
CALL_KINDS = frozenset({"called", "recalled"})
# event kinds that end the ticket at its counter
DONE_KINDS = frozenset({"finished", "no-show", "voided"})
# counter event kind -> the state it leaves the counter in
COUNTER_KINDS: Mapping[str, CounterState] = {
    "opened": "open",
    "resumed": "open",
    "paused": "paused",
    "closed": "closed",
}


@dataclass(frozen=True, slots=True)
class Call:
    """One call shown on the board: ticket ``number`` (as printed) to ``counter``."""

    number: str
    counter: int
    service: str = ""
    at: float = 0.0  # hub time, informational
    recall: bool = False


@dataclass(frozen=True, slots=True)
class CounterView:
    """One counter as the board shows it."""

    number: int
    state: CounterState = "open"
    ticket: str | None = None  # number served now, as printed
    service: str | None = None  # service id of that ticket
    label: str = ""  # hub-provided label; empty = "Quầy N" from the labels


@dataclass(frozen=True, slots=True)
class HallSnapshot:
    """The hub's retained ``state/hall``: the whole board at revision ``rev``."""

    rev: int
    counters: tuple[CounterView, ...] = ()
    waiting: Mapping[str, int] = field(default_factory=dict)
    last_calls: tuple[Call, ...] = ()  # newest first
    at: float = 0.0
    wait_ranges: Mapping[str, WaitRange] = field(default_factory=dict)  # service -> wait of a ticket taken now


@dataclass(frozen=True, slots=True)
class BoardEvent:
    """One hub event (ticket or counter), reduced to what the board needs."""

    kind: str
    rev: int
    number: str = ""
    service: str = ""
    counter: int | None = None
    to_service: str | None = None  # transferred: the new service
    to_counter: int | None = None  # transferred: a counter it was sent to
    waiting: Mapping[str, int] | None = None  # waiting counts after the event, if the hub sent them
    at: float = 0.0


class Outcome(enum.Enum):
    """What ``BoardModel.apply`` did with an event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # rev already seen: ignored
    HELD = "held"  # a rev is missing: kept for the reorder window
    GAP = "gap"  # applied after the reorder window; resync needed
    PENDING = "pending"  # no snapshot yet: kept until one arrives
    STALE_SNAPSHOT = "stale-snapshot"  # snapshot older than what we show: ignored


@dataclass(frozen=True, slots=True)
class Highlight:
    """The newest call while it is highlighted (blinking) on the board."""

    call: Call
    since: float
    until: float


class BoardModel:
    """The hall board's state machine. Every method that depends on time takes ``now``
    (seconds, from the shell's clock)."""

    def __init__(
        self,
        *,
        now: float,
        last_calls: int = 5,
        highlight_s: float = 10.0,
        reorder_s: float = 0.5,
        resync_retry_s: float = 5.0,
        sync_timeout_s: float = 5.0,
        max_pending: int = 500,
    ) -> None:
        self.last_calls_max = max(1, int(last_calls))
        self.highlight_s = float(highlight_s)
        self.reorder_s = float(reorder_s)
        self.resync_retry_s = float(resync_retry_s)
        self.sync_timeout_s = float(sync_timeout_s)
        self.max_pending = int(max_pending)
        self._started = now
        self.rev: int | None = None  # None until the first snapshot
        self._counters: dict[int, CounterView] = {}
        self._waiting: dict[str, int] = {}
        self._wait_ranges: dict[str, WaitRange] = {}
        self._calls: list[Call] = []  # newest first
        self._highlight: Highlight | None = None
        self._pending: list[BoardEvent] = []  # before the first snapshot
        self._held: dict[int, BoardEvent] = {}  # out of order, by rev
        self._held_since: float | None = None
        # revs of retained per-counter / per-service updates, so an event and the state
        # update it caused are not both applied (the count would move twice)
        self._counter_rev: dict[int, int] = {}
        self._waiting_rev: dict[str, int] = {}
        self.gap: tuple[int, int] | None = None  # first and last missing rev
        self._resync_asked: float | None = None
        self.hub_online: bool | None = None  # None = not heard yet
        self.broker_connected = False
        self._connected_at: float | None = None
        self._catch_up_until: float | None = None  # set at connect, cleared by the current snapshot
        self._current_since_link = False  # a current snapshot came since the broker link was last lost
        self.hub_grace_s = 3.0  # retained hub status arrives at once; silence after this = offline
        self.ticker = ""
        self.version = 0  # bumped on every visible change; the renderer keys its cache on it
        self.stats = {o.value: 0 for o in Outcome}

    # ------------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """True once a snapshot has been loaded."""
        return self.rev is not None

    @property
    def counters(self) -> tuple[CounterView, ...]:
        """Counters in number order."""
        return tuple(self._counters[n] for n in sorted(self._counters))

    def counter(self, number: int) -> CounterView | None:
        """One counter, or None if the hub never mentioned it."""
        return self._counters.get(number)

    @property
    def waiting(self) -> Mapping[str, int]:
        """People waiting per service id."""
        return dict(self._waiting)

    @property
    def wait_ranges(self) -> Mapping[str, WaitRange]:
        """The hub's estimated wait per service id for a citizen taking a ticket now."""
        return dict(self._wait_ranges)

    @property
    def last_calls(self) -> tuple[Call, ...]:
        """Recent calls, newest first (the newest is also ``newest``)."""
        return tuple(self._calls)

    @property
    def newest(self) -> Call | None:
        return self._calls[0] if self._calls else None

    def highlight(self, now: float) -> Highlight | None:
        """The call to highlight at ``now``, or None once its time is over."""
        h = self._highlight
        return h if h is not None and h.since <= now < h.until else None

    def counter_highlight(self, counter: int, now: float) -> Highlight | None:
        """The highlight if it belongs to ``counter`` (for the counter layout)."""
        h = self.highlight(now)
        return h if h is not None and h.call.counter == counter else None

    @property
    def stale(self) -> bool:
        """Numbers shown may be out of date: we had data, and lost the broker or the hub."""
        return self.synced and (not self.broker_connected or self.hub_online is False)

    @property
    def offline_reason(self) -> Literal["broker", "hub"] | None:
        """Which link is down, broker first (without it we cannot know the hub's status)."""
        if not self.broker_connected:
            return "broker"
        if self.hub_online is False:
            return "hub"
        return None

    def catching_up(self, now: float) -> bool:
        """True while the broker may still be delivering what it queued while we were away."""
        return self._catch_up_until is not None and now < self._catch_up_until

    @property
    def needs_resync(self) -> bool:
        return self.gap is not None

    def resync_due(self, now: float) -> bool:
        """True when the shell should send ``resync`` now: a gap, or no snapshot after the
        sync timeout; repeated every ``resync_retry_s`` until a snapshot fixes it."""
        if not self.broker_connected:
            return False
        wanted = self.gap is not None or (not self.synced and now - self._started >= self.sync_timeout_s)
        if not wanted:
            return False
        return self._resync_asked is None or now - self._resync_asked >= self.resync_retry_s

    def resync_requested(self, now: float) -> None:
        """The shell sent ``resync`` at ``now``."""
        self._resync_asked = now

    def next_change_at(self, now: float) -> float | None:
        """The next time the model changes on its own (highlight end, reorder timeout)."""
        times = []
        if self._highlight is not None and self._highlight.until > now:
            times.append(self._highlight.until)
        if self._held_since is not None:
            times.append(self._held_since + self.reorder_s)
        if self.hub_online is None and self.broker_connected and self._connected_at is not None:
            times.append(self._connected_at + self.hub_grace_s)
        return min(times) if times else None

    # ------------------------------------------------------------------ writing

    def load_snapshot(self, snap: HallSnapshot, *, now: float, current: bool = True) -> Outcome:
        """Take the hub's whole picture. Never starts a highlight (no replay after a
        reboot or a resync); keeps the running one if that call is still the newest.

        ``current``: the broker's current state (a retained delivery, a resync reply), which
        ends the catch-up after a connect; ``False`` for a hall state the broker had queued."""
        if current:
            self._catch_up_until = None
            self._current_since_link = True
        if self.rev is not None and snap.rev < self.rev:
            log.debug("snapshot rev %s older than board rev %s: ignored", snap.rev, self.rev)
            self.stats[Outcome.STALE_SNAPSHOT.value] += 1
            return Outcome.STALE_SNAPSHOT
        before = self._picture()
        self.rev = snap.rev
        self._counter_rev.clear()
        self._waiting_rev.clear()
        self._counters = {c.number: c for c in snap.counters}
        self._waiting = {k: max(0, int(v)) for k, v in snap.waiting.items()}
        self._wait_ranges = dict(snap.wait_ranges)
        self._calls = []
        for c in snap.last_calls:  # the hub lists recalls and earlier counters too: one line per ticket
            if not any(_same_call(c, k) for k in self._calls):
                self._calls.append(c)
        del self._calls[self.last_calls_max :]
        h = self._highlight
        if h is not None and not (self._calls and _same_call(self._calls[0], h.call)):
            self._highlight = None
        if self.gap is not None and snap.rev >= self.gap[1]:
            self.gap = None
        if self.gap is None:
            self._resync_asked = None
        pending, self._pending = self._pending, []
        held, self._held, self._held_since = self._held, {}, None
        if self._picture() != before:  # the hub republishes after every change: mostly the same
            self._bump()
        # live events that came before the snapshot or while a rev was missing
        for ev in sorted([*pending, *held.values()], key=lambda e: e.rev):
            if ev.rev > self.rev:
                self.apply(ev, now=now)
        self.stats[Outcome.APPLIED.value] += 1
        return Outcome.APPLIED

    def apply(self, ev: BoardEvent, *, now: float) -> Outcome:
        """Apply one live event. See ``Outcome`` for what can happen."""
        if self.rev is None:
            if len(self._pending) < self.max_pending:
                self._pending.append(ev)
            return self._count(Outcome.PENDING)
        if ev.rev <= self.rev or ev.rev in self._held:
            return self._count(Outcome.DUPLICATE)
        if ev.rev > self.rev + 1:
            self._held[ev.rev] = ev
            if self._held_since is None:
                self._held_since = now
            return self._count(Outcome.HELD)
        self._apply_one(ev, now)
        self._drain_held(self.rev, now)
        return self._count(Outcome.APPLIED)

    def tick(self, now: float) -> bool:
        """Advance time: apply held events whose reorder window is over (marking the gap).
        Returns True if the board changed."""
        changed = False
        if self._catch_up_until is not None and now >= self._catch_up_until:
            log.info("no current hall state %.0f s after connecting: calls are news again", self.sync_timeout_s)
            self._catch_up_until = None
        if (self.hub_online is None and self.broker_connected and self._connected_at is not None
                and now - self._connected_at >= self.hub_grace_s):
            log.warning("no status from the hub %.0f s after connecting: treating it as offline", self.hub_grace_s)
            self.hub_online = False
            changed = True
        if self._highlight is not None and now >= self._highlight.until:
            self._highlight = None
            changed = True
        if self._held_since is not None and now >= self._held_since + self.reorder_s and self.rev is not None:
            first_held = min(self._held)
            missing = (self.rev + 1, first_held - 1)
            self.gap = missing if self.gap is None else (min(self.gap[0], missing[0]), max(self.gap[1], missing[1]))
            log.warning("events %s..%s missing: applying later ones, resync needed", *missing)
            self.rev = first_held - 1  # skip the hole; the snapshot will repair what we missed
            self._held_since = None  # a further hole gets its own window from now
            self._drain_held(self.rev, now)
            self.stats[Outcome.GAP.value] += 1
            changed = True
        if changed:
            self._bump()
        return changed

    def set_counter(self, view: CounterView, *, rev: int | None = None) -> bool:
        """A retained ``state/counter/N`` update: replaces that counter's view unless the
        board already shows something newer. Returns True if applied."""
        if not self._newer(rev, self._counter_rev.get(view.number)):
            return False
        if rev is not None:
            self._counter_rev[view.number] = rev
        if self._counters.get(view.number) != view:
            self._counters[view.number] = view
            self._bump()
        return True

    def clear_service(self, service: str) -> bool:
        """The hub cleared ``state/service/ID``: the service left the site (a live change)."""
        gone = self._waiting.pop(service, None) is not None
        gone = self._wait_ranges.pop(service, None) is not None or gone
        self._waiting_rev.pop(service, None)
        if gone:
            self._bump()
        return gone

    def set_waiting(self, service: str, count: int, *, rev: int | None = None,
                    wait_range: WaitRange | None = None) -> bool:
        """A retained ``state/service/ID`` update: people waiting for that service (and, when
        the hub sent it, the wait of a ticket taken now)."""
        if not self._newer(rev, self._waiting_rev.get(service)):
            return False
        if rev is not None:
            self._waiting_rev[service] = rev
        if self._waiting.get(service) != count:
            self._waiting[service] = max(0, int(count))
            self._bump()
        if wait_range is not None and self._wait_ranges.get(service) != wait_range:
            self._wait_ranges[service] = wait_range
            self._bump()
        return True

    def _newer(self, rev: int | None, last: int | None) -> bool:
        """Is a state update at ``rev`` at least as new as what the board shows?"""
        if rev is None:
            return True
        floor = last if last is not None else (self.rev if self.rev is not None else -1)
        return rev >= floor

    def set_link(self, *, now: float, broker_connected: bool | None = None, hub_online: bool | None = None) -> None:
        """Broker connection and the hub's retained status, as the shell sees them."""
        before = (self.broker_connected, self.hub_online)
        if broker_connected is not None:
            if broker_connected and not self.broker_connected:
                self._connected_at = now
                # a client may hand over the retained state before it reports the connect
                if not self._current_since_link:
                    self._catch_up_until = now + self.sync_timeout_s
            elif not broker_connected:
                self._current_since_link = False
                self._catch_up_until = None
            self.broker_connected = broker_connected
        if hub_online is not None:
            self.hub_online = hub_online
        if (self.broker_connected, self.hub_online) != before:
            log.info("link: broker %s, hub %s", self.broker_connected, self.hub_online)
            self._bump()

    def set_ticker(self, text: str) -> None:
        if text != self.ticker:
            self.ticker = text
            self._bump()

    def configure(self, *, last_calls: int | None = None, highlight_s: float | None = None) -> None:
        """Apply display options pushed by a technician."""
        if last_calls is not None:
            self.last_calls_max = max(1, int(last_calls))
            del self._calls[self.last_calls_max :]
        if highlight_s is not None:
            self.highlight_s = float(highlight_s)
            if self._highlight is not None:
                h = self._highlight
                self._highlight = replace(h, until=h.since + self.highlight_s)
        self._bump()

    # ------------------------------------------------------------------ internals

    def _picture(self) -> tuple:
        """Everything a snapshot can change on screen (plus whether we are synced)."""
        return (
            self.rev is not None,
            tuple(sorted(self._counters.items())),
            tuple(sorted(self._waiting.items())),
            tuple(sorted(self._wait_ranges.items())),
            tuple(self._calls),
            self._highlight,
        )

    def _count(self, o: Outcome) -> Outcome:
        self.stats[o.value] += 1
        return o

    def _bump(self) -> None:
        self.version += 1

    def _drain_held(self, rev: int, now: float) -> None:
        """Apply the held events that follow ``rev`` (the board's revision, known) in order."""
        while rev + 1 in self._held:
            self._apply_one(self._held.pop(rev + 1), now)
            rev += 1
        # anything left over is still out of order: keep the window running from now on
        if self._held:
            self._held = {r: e for r, e in self._held.items() if r > rev}
        if not self._held:
            self._held_since = None
        elif self._held_since is None:
            self._held_since = now

    def _apply_one(self, ev: BoardEvent, now: float) -> None:
        self.rev = ev.rev
        kind = ev.kind
        if kind in CALL_KINDS and ev.counter is not None:
            call = Call(number=ev.number, counter=ev.counter, service=ev.service, at=ev.at, recall=kind == "recalled")
            if self._counter_fresh(ev.counter, ev.rev):
                self._counters[ev.counter] = replace(
                    self._counters.get(ev.counter) or CounterView(number=ev.counter),
                    state="open",
                    ticket=ev.number,
                    service=ev.service or None,
                )
            self._calls = [call] + [c for c in self._calls if not _same_call(c, call)]
            del self._calls[self.last_calls_max :]
            if self.catching_up(now):  # queued while we were away: shown, not news
                self._highlight = None
            else:
                self._highlight = Highlight(call=call, since=now, until=now + self.highlight_s)
            if kind == "called" and ev.waiting is None:
                self._add_waiting(ev.service, -1, ev.rev)
        elif kind in DONE_KINDS or kind == "transferred":
            self._clear_ticket(ev)
            if kind == "transferred" and ev.waiting is None:
                self._add_waiting(ev.to_service or ev.service, +1, ev.rev)
            if kind == "voided" and ev.waiting is None and ev.counter is None:
                self._add_waiting(ev.service, -1, ev.rev)
        elif kind == "issued":
            if ev.waiting is None:
                self._add_waiting(ev.service, +1, ev.rev)
        elif kind in COUNTER_KINDS and ev.counter is not None:
            if self._counter_fresh(ev.counter, ev.rev):
                cur = self._counters.get(ev.counter) or CounterView(number=ev.counter)
                state = COUNTER_KINDS[kind]
                self._counters[ev.counter] = replace(cur, state=state, **({"ticket": None, "service": None} if state == "closed" else {}))
        else:
            log.debug("event kind %r does not change the board", kind)
        if ev.waiting is not None:
            for svc, n in ev.waiting.items():
                self._waiting[svc] = max(0, int(n))
        self._bump()

    def _counter_fresh(self, counter: int, rev: int) -> bool:
        """False when a retained counter state at this rev or later already showed it."""
        return rev > self._counter_rev.get(counter, -1)

    def _add_waiting(self, service: str | None, delta: int, rev: int) -> None:
        if service and rev > self._waiting_rev.get(service, -1):
            self._waiting[service] = max(0, self._waiting.get(service, 0) + delta)

    def _clear_ticket(self, ev: BoardEvent) -> None:
        """The ticket left its counter: the counter shows no number until its next call."""
        for n, c in list(self._counters.items()):
            if not self._counter_fresh(n, ev.rev):
                continue
            if c.ticket == ev.number and (ev.counter is None or ev.counter == n):
                self._counters[n] = replace(c, ticket=None, service=None)
        h = self._highlight
        if h is not None and h.call.number == ev.number and ev.kind != "transferred":
            self._highlight = None


def _same_call(a: Call, b: Call) -> bool:
    """One line per ticket: its newest call (a recall, or a call at another counter after a
    transfer) replaces the older one, so the list never contradicts the big panel."""
    return a.number == b.number
