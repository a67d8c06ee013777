"""What the speaker says next: a pure core, time passed in.

Inputs are the hub's ``called``/``recalled`` events; the output is the next announcement to
play (or nothing).  Rules, in the citizen's words:

- a call is said once, however often MQTT delivers it (``rev`` and ``event_id`` de-duplication);
- a call older than ``max_age_s`` is dropped, never said late (also when it waited in the queue);
  its age is judged on the hub's clock as learned by :class:`HubClock`, so a hall Pi whose
  clock is minutes off still speaks every fresh call;
- a recall (or re-call) of a ticket still waiting in the queue does not add a second entry:
  the waiting entry takes the newer counter and time and keeps its place;
- at most ``max_per_counter`` (2) calls of one counter wait: a newer one drops that counter's
  oldest waiting call (the counter has moved on; the hub finished that one). One counter calling
  fast, or a counter's stolen password calling at the hub's pace (60 at once, then 20 a minute),
  then holds two places in the queue, and the other counters' calls are still said in time (they
  waited behind its 30 and went stale unsaid);
- one announcement at a time, in arrival order;
- the volume follows the time of day (quiet hours).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from xephang.clock import VN_TZ

log = logging.getLogger(__name__)

CallKind = Literal["called", "recalled"]
Verdict = Literal["queued", "merged", "duplicate", "stale", "ignored"]


@dataclass(frozen=True, kw_only=True)
class CallEvent:
    """A ``called``/``recalled`` event as the announcer needs it."""

    event_id: str
    rev: int
    at: float  # hub clock, epoch seconds
    kind: CallKind
    number: int
    counter: int
    service: str = ""
    prefix: str = ""

    @property
    def ticket_key(self) -> tuple[str, str, int]:
        return (self.service, self.prefix, self.number)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], *, kind: CallKind | None = None) -> CallEvent:
        """From an event payload dict: top-level ``event_id``, ``rev``, ``at`` and a ``ticket``.

        ``at`` may be epoch seconds or an ISO-8601 string; the ticket's ``number`` may be an
        int or the printed form ("A023").  Raises ``ValueError`` on anything unusable.
        """
        try:
            ticket = payload.get("ticket") or payload
            number, prefix = _parse_number(ticket["number"], ticket.get("prefix", ""))
            counter = ticket.get("counter", payload.get("counter"))
            k = kind or payload.get("kind") or payload.get("type")
            if k not in ("called", "recalled"):
                raise ValueError(f"not a call event kind: {k!r}")
            if counter is None:
                raise ValueError("call event without a counter")
            return cls(event_id=str(payload["event_id"]), rev=int(payload["rev"]), at=_parse_at(payload["at"]),
                       kind=k, number=number, counter=int(counter), service=str(ticket.get("service", "")),
                       prefix=prefix)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad call event: {exc!r}") from exc


def _parse_number(raw: Any, prefix: str) -> tuple[int, str]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw, str(prefix or "")
    text = str(raw).strip()
    lead = text[:1] if text[:1].isalpha() else ""
    digits = text[len(lead):]
    if not digits.isdigit():
        raise ValueError(f"bad ticket number {raw!r}")
    return int(digits), (prefix or lead).upper()


def _parse_at(raw: Any) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, datetime):
        return raw.timestamp()
    dt = datetime.fromisoformat(str(raw))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=VN_TZ)  # the hub's business clock is Vietnam time
    return dt.timestamp()


@dataclass
class HubClock:
    """The hub's clock as the speaker sees it, learned from what the hub stamps.

    Time here is the speaker's *steady* clock (monotonic: it never steps, so neither NTP
    correcting the hall Pi nor a wrong wall clock moves it).  Every message stamped by the hub
    (a call's ``at``; the ``hall.at`` of the hub's reply to a resync) gives one sample
    ``steady_receipt − at``: the clock difference plus that message's delivery delay.  The
    *smallest* sample is the best estimate of the difference: a QoS 1 redelivery is late and
    only gives a larger sample, so it cannot pull the estimate.  The age of a call is then
    ``steady_now − offset − at``: time in transit and time waiting in the speaker queue alike,
    whatever the wall clocks say.

    Samples older than ``window_s`` are forgotten once the newer ones span half the window
    (drift, or a hub whose clock was set back, is followed within that time); a speaker that
    was offline keeps its last estimate, so calls redelivered after a reconnect are judged on
    it.  Before the first ``reference`` sample (the hub's answer on connect) the estimate rests
    on calls alone, which could all be old redeliveries: :meth:`settled` holds judgement
    ``settle_s`` for a reference.
    """

    window_s: float = 600.0
    settle_s: float = 2.0
    max_samples: int = 2048

    def __post_init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()  # (steady time of receipt, receipt − at)
        self._offset: float | None = None
        self._first_at: float | None = None
        self._reference = False

    def observe(self, at: float, now: float, *, reference: bool = False) -> None:
        """A message stamped ``at`` (hub clock) arrived at steady time ``now``."""
        sample = now - at
        if self._first_at is None:
            self._first_at = now
        self._reference = self._reference or reference
        self._samples.append((now, sample))
        # forget samples older than the window, but only once the samples inside it span half of
        # it: after an outage a burst of redelivered calls must not push out the good estimate
        cutoff = now - self.window_s
        inside = next(t for t, _ in self._samples if t >= cutoff)
        if now - inside >= self.window_s / 2:
            while self._samples[0][0] < cutoff:
                self._samples.popleft()
        while len(self._samples) > self.max_samples:
            self._samples.popleft()
        self._offset = min(s for _, s in self._samples)

    @property
    def offset(self) -> float | None:
        """Steady clock minus hub clock (plus the fastest delivery seen); None before any sample."""
        return self._offset

    def settled(self, now: float) -> bool:
        """True once ages can be judged: a reference was seen, or ``settle_s`` passed since the first sample."""
        if self._offset is None or self._first_at is None:
            return False
        return self._reference or now - self._first_at >= self.settle_s

    def age(self, at: float, now: float) -> float:
        """Seconds since the hub stamped ``at``, at steady time ``now``."""
        if self._offset is None:
            raise ValueError("the hub's clock has not been seen yet")
        return now - self._offset - at

    def hub_time(self, now: float) -> float:
        """The hub's clock at steady time ``now`` (``now`` itself before any sample)."""
        return now if self._offset is None else now - self._offset


@dataclass(frozen=True, kw_only=True)
class QuietHours:
    """From ``start`` to ``end`` (local time; may wrap midnight) play at ``volume`` (0..1)."""

    start: time
    end: time
    volume: float

    def contains(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def volume_at(local: datetime, *, normal: float, quiet_hours: Iterable[QuietHours]) -> float:
    """Volume for a local time: the first matching quiet period's, else ``normal``."""
    t = local.timetz().replace(tzinfo=None)
    for q in quiet_hours:
        if q.contains(t):
            return q.volume
    return normal


@dataclass(frozen=True)
class Job:
    """An announcement to play now, at ``volume``."""

    call: CallEvent
    volume: float


@dataclass
class SchedulerStats:
    queued: int = 0
    merged: int = 0
    superseded: int = 0  # waiting calls dropped: their counter called max_per_counter more since
    duplicate: int = 0
    stale: int = 0
    overflow: int = 0
    played: int = 0


@dataclass
class Scheduler:
    """The speaker's queue.  Feed :meth:`offer`; ask :meth:`next_job`; report :meth:`finished`.

    ``now`` everywhere is the speaker's steady clock (see :class:`HubClock`); feed the hub's
    answer to a resync to :meth:`observe_hub`.  Quiet hours follow the hub's clock as learned.
    """

    max_age_s: float = 90.0
    volume: float = 1.0
    quiet_hours: tuple[QuietHours, ...] = ()
    max_queue: int = 30
    max_per_counter: int = 2
    tz: ZoneInfo = VN_TZ
    seen_capacity: int = 4096
    stats: SchedulerStats = field(default_factory=SchedulerStats)
    hub: HubClock = field(default_factory=HubClock)

    def __post_init__(self) -> None:
        self._queue: OrderedDict[tuple[str, str, int], CallEvent] = OrderedDict()
        self._seen_revs: set[int] = set()
        self._seen_ids: set[str] = set()
        self._seen_order: deque[tuple[int, str]] = deque()
        self.playing: Job | None = None

    # -- input -----------------------------------------------------------------------------
    def observe_hub(self, at: float, now: float) -> None:
        """A fresh timestamp from the hub (its resync reply) stamped ``at`` arrived at ``now``."""
        self.hub.observe(at, now, reference=True)

    def offer(self, call: CallEvent, now: float) -> Verdict:
        """Take one event; says what became of it."""
        self.hub.observe(call.at, now)
        if call.rev in self._seen_revs or call.event_id in self._seen_ids:
            self.stats.duplicate += 1
            return "duplicate"
        self._remember(call)
        if self._is_stale(call, now):
            self.stats.stale += 1
            log.warning("dropped stale %s of ticket %s%s (rev %d, %.0f s old > %.0f s)", call.kind, call.prefix,
                        call.number, call.rev, self.hub.age(call.at, now), self.max_age_s)
            return "stale"
        waiting = self._queue.get(call.ticket_key)
        if waiting is not None:
            if call.rev > waiting.rev:
                # newer news about the same ticket: speak the latest counter, keep the place
                self._queue[call.ticket_key] = call
            self.stats.merged += 1
            return "merged"
        same = [k for k, c in self._queue.items() if c.counter == call.counter]
        if len(same) >= self.max_per_counter:  # the counter has moved on: its oldest waiting call goes
            gone = self._queue.pop(same[0])
            self.stats.superseded += 1
            log.warning("ticket %s%s not said: counter %s has called %d more since", gone.prefix, gone.number,
                        gone.counter, len(same))
        self._queue[call.ticket_key] = call
        self.stats.queued += 1
        while len(self._queue) > self.max_queue:
            _, dropped = self._queue.popitem(last=False)
            self.stats.overflow += 1
            log.warning("announcement queue full: dropped ticket %s%s", dropped.prefix, dropped.number)
        return "queued"

    def _remember(self, call: CallEvent) -> None:
        self._seen_revs.add(call.rev)
        self._seen_ids.add(call.event_id)
        self._seen_order.append((call.rev, call.event_id))
        while len(self._seen_order) > self.seen_capacity:
            rev, eid = self._seen_order.popleft()
            self._seen_revs.discard(rev)
            self._seen_ids.discard(eid)

    def _is_stale(self, call: CallEvent, now: float) -> bool:
        # before the hub's clock is known nothing is judged (and nothing is said: see next_job)
        return self.hub.settled(now) and self.hub.age(call.at, now) > self.max_age_s

    # -- output ----------------------------------------------------------------------------
    def next_job(self, now: float) -> Job | None:
        """The announcement to start now, or None (busy, or nothing fresh is waiting)."""
        if self.playing is not None or not self.hub.settled(now):
            return None
        while self._queue:
            _, call = self._queue.popitem(last=False)
            if self._is_stale(call, now):
                self.stats.stale += 1
                log.warning("dropped ticket %s%s: waited too long in the speaker queue (%.0f s)", call.prefix,
                            call.number, self.hub.age(call.at, now))
                continue
            self.playing = Job(call, self.volume_at(now))
            return self.playing
        return None

    def drop_stale(self, now: float) -> int:
        """Drop waiting calls that are too old (e.g. while the speaker is missing); returns how many."""
        stale = [k for k, c in self._queue.items() if self._is_stale(c, now)]
        for k in stale:
            call = self._queue.pop(k)
            self.stats.stale += 1
            log.warning("dropped ticket %s%s: too old to say (%.0f s)", call.prefix, call.number,
                        self.hub.age(call.at, now))
        return len(stale)

    def finished(self) -> None:
        """The current announcement has ended (or failed): the next may start."""
        if self.playing is not None:
            self.stats.played += 1
        self.playing = None

    def requeue_playing(self) -> None:
        """The device vanished mid-announcement: put the call back in front (age still applies)."""
        if self.playing is None:
            return
        call = self.playing.call
        self.playing = None
        self._queue[call.ticket_key] = call
        self._queue.move_to_end(call.ticket_key, last=False)

    def volume_at(self, now: float) -> float:
        """Volume at steady time ``now``: quiet hours by the hub's clock (the centre's business time)."""
        hub_now = self.hub.hub_time(now)
        return volume_at(datetime.fromtimestamp(hub_now, self.tz), normal=self.volume, quiet_hours=self.quiet_hours)

    @property
    def waiting(self) -> tuple[CallEvent, ...]:
        """Calls waiting, in the order they will be said."""
        return tuple(self._queue.values())

    def with_policy(self, **changes: Any) -> Scheduler:
        """A copy with other settings (config change) that keeps queue and memory."""
        new = replace(self, **changes)
        new._queue, new._seen_revs, new._seen_ids, new._seen_order = (
            self._queue, self._seen_revs, self._seen_ids, self._seen_order)
        new.playing = self.playing
        return new
