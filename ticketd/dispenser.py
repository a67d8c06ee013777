"""The dispenser's decisions: which press becomes which ticket job, and when it may run.

Pure logic, time passed in, no I/O. The shell (``ticketd.main``) feeds it key presses,
the printer's and the hub's state, and asks it for the next job when it is idle:

- a press of a service button → one :class:`TicketJob` with its own ``request_id`` (made
  once, reused on every retry of that press);
- a priority key pressed first (within ``priority_window_s``) or a dedicated priority
  button → the job is a priority ticket of that group;
- a press while an earlier ticket is still being printed is **queued** in press order
  (not lost, not doubled), up to ``max_pending`` per button; beyond that, or over the
  per-button rate bound, the press is refused with a signal;
- paper out (or printer offline) → the press is refused, no number is asked for;
- hub offline → issue jobs wait; one not started within ``hub_wait_s`` of its press is
  dropped (the citizen is told, by light and sound, to press again later). The core is the
  one holder of the hub's availability and starts **offline**: until the hub's retained
  status says online (not yet received, broker down at boot) a press waits, it is never sent
  to a hub nobody has heard from;
- technician key, long press → reprint the last ticket (or a test print when there is none);
  test key, long press → a test print.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from ticketd.printer import PrinterState
from ticketd.render import TicketView
from xephang.hw.keys import KeyPress, RateLimit

log = logging.getLogger(__name__)

JobKind = Literal["issue", "reprint", "test"]


@dataclass(frozen=True, slots=True)
class ButtonRole:
    """What a service button issues: a service, possibly always as a priority group."""

    service: str
    priority_group: str | None = None


@dataclass(frozen=True, slots=True)
class TicketJob:
    """One thing to print. ``request_id`` is the press's id for ``issue-ticket`` (and its retries)."""

    kind: JobKind
    request_id: str
    button: str
    pressed_at: float
    service: str | None = None
    priority: bool = False
    priority_group: str | None = None
    ticket: TicketView | None = None  # reprint: the ticket to print again


class Outcome(StrEnum):
    """What happened to a press (the shell turns it into lights and sound)."""

    QUEUED = "queued"  # a job was made; it runs now or after the ones ahead
    WAITING_HUB = "waiting-hub"  # queued, but the hub is offline: signal "wait"
    ARMED = "armed"  # priority key: the next service press is a priority ticket
    REFUSED_PAPER = "refused-paper"  # paper out / printer offline: no number asked for
    REFUSED_BUSY = "refused-busy"  # too many tickets of this button waiting already
    REFUSED_RATE = "refused-rate"  # over the per-button rate bound
    IGNORED = "ignored"  # a key or a press kind with no meaning here


@dataclass(frozen=True, slots=True)
class PressResult:
    outcome: Outcome
    key: str
    job: TicketJob | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something that happened with time, reported by :meth:`Dispenser.poll`."""

    kind: Literal["disarmed", "dropped-hub-offline"]
    key: str
    job: TicketJob | None = None


@dataclass(slots=True)
class DispenserStats:
    presses: int = 0
    jobs: int = 0
    printed: int = 0
    failed: int = 0
    refused: int = 0
    dropped: int = 0


@dataclass(slots=True)
class _Armed:
    key: str
    group: str | None
    until: float


@dataclass(kw_only=True)
class Dispenser:
    """The decision core. All times are monotonic seconds from the key's clock.

    :param buttons: key name → :class:`ButtonRole`.
    :param priority_keys: key name → priority group id ("" = a general priority).
    :param tech_key: key name whose long press reprints the last ticket.
    :param test_key: key name whose long press prints a test ticket.
    """

    buttons: Mapping[str, ButtonRole]
    priority_keys: Mapping[str, str] = field(default_factory=dict)
    tech_key: str | None = "tech"
    test_key: str | None = "test"
    priority_window_s: float = 8.0
    max_pending: int = 3
    max_presses: int = 4
    per_s: float = 20.0
    hub_wait_s: float = 10.0
    new_request_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        self.pending: deque[TicketJob] = deque()
        self.in_flight: TicketJob | None = None
        self.last_ticket: TicketView | None = None
        self.printer_state = PrinterState.UNKNOWN
        self.hub_online = False  # until the hub's retained status says online (set_hub_online)
        self.stats = DispenserStats()
        self._armed: _Armed | None = None
        self._rates = {k: RateLimit(max_events=self.max_presses, per_s=self.per_s) for k in self.buttons}

    # --- inputs ---

    def press(self, press: KeyPress, now: float) -> PressResult:
        """Decide what ``press`` means at ``now``."""
        self.stats.presses += 1
        key = press.name
        if key in self.priority_keys:
            self._armed = _Armed(key, self.priority_keys[key] or None, now + self.priority_window_s)
            return PressResult(Outcome.ARMED, key)
        if key == self.tech_key:
            if press.kind != "long":
                return PressResult(Outcome.IGNORED, key)
            if self.last_ticket is None:
                return self._queue(TicketJob("test", self.new_request_id(), key, press.at))
            ticket = dataclasses.replace(self.last_ticket, reprint=True)
            return self._queue(TicketJob("reprint", self.new_request_id(), key, press.at, ticket=ticket))
        if key == self.test_key:
            if press.kind != "long":
                return PressResult(Outcome.IGNORED, key)
            return self._queue(TicketJob("test", self.new_request_id(), key, press.at))
        role = self.buttons.get(key)
        if role is None:
            log.warning("press of unknown key %r ignored", key)
            return PressResult(Outcome.IGNORED, key)
        if not self.printer_state.can_issue:
            self.stats.refused += 1
            return PressResult(Outcome.REFUSED_PAPER, key)
        if self._count(key) >= self.max_pending:
            self.stats.refused += 1
            return PressResult(Outcome.REFUSED_BUSY, key)
        if not self._rates[key].allow(now):
            self.stats.refused += 1
            return PressResult(Outcome.REFUSED_RATE, key)
        group = role.priority_group
        priority = group is not None
        armed = self._armed
        if armed is not None and now <= armed.until:
            priority, group = True, group or armed.group
        self._armed = None  # a priority key press is used by one ticket at most
        job = TicketJob("issue", self.new_request_id(), key, press.at, service=role.service,
                        priority=priority, priority_group=group)
        return self._queue(job)

    def set_printer_state(self, state: PrinterState) -> None:
        """The printer's latest answer (the shell polls it, and learns it from failed jobs)."""
        self.printer_state = state

    def set_hub_online(self, online: bool) -> None:
        """The hub's retained availability changed."""
        self.hub_online = online

    # --- the shell's loop ---

    def next_job(self, now: float) -> TicketJob | None:
        """The job to run now (it becomes ``in_flight``), or ``None`` (busy, empty, or waiting)."""
        if self.in_flight is not None or not self.pending:
            return None
        job = self.pending[0]
        if job.kind == "issue" and not self.hub_online:
            return None  # never invent a number: wait for the hub (poll() drops it after hub_wait_s)
        self.pending.popleft()
        self.in_flight = job
        return job

    def job_done(self, job: TicketJob, ticket: TicketView | None = None) -> None:
        """``job`` printed; ``ticket`` is what was printed (kept for a reprint)."""
        self._finish(job)
        self.stats.printed += 1
        if job.kind == "issue" and ticket is not None:
            self.last_ticket = ticket

    def job_failed(self, job: TicketJob, reason: str) -> None:
        """``job`` could not be completed (the shell has voided/alerted as needed)."""
        self._finish(job)
        self.stats.failed += 1
        log.info("job %s (%s) failed: %s", job.request_id, job.kind, reason)

    def poll(self, now: float) -> list[Notice]:
        """Time-driven changes: the priority key's window ends, jobs waiting for the hub expire."""
        notices: list[Notice] = []
        if self._armed is not None and now > self._armed.until:
            notices.append(Notice("disarmed", self._armed.key))
            self._armed = None
        if not self.hub_online:
            keep: deque[TicketJob] = deque()
            for job in self.pending:
                if job.kind == "issue" and now - job.pressed_at > self.hub_wait_s:
                    self.stats.dropped += 1
                    notices.append(Notice("dropped-hub-offline", job.button, job))
                else:
                    keep.append(job)
            self.pending = keep
        return notices

    # --- views for signals and health ---

    @property
    def armed(self) -> str | None:
        """The priority key currently armed, if any."""
        return self._armed.key if self._armed else None

    def lights(self, leds: Iterable[str]) -> tuple[dict[str, str], str]:
        """Each LED's base pattern and the status light's, from the state: a printer that cannot
        issue says "fault" everywhere; keys with presses waiting for the hub say "wait"; the hub
        away says "hub_offline"; keys with a job say "working"; an armed priority key says so."""
        busy = self.busy_keys()
        waiting = {j.button for j in self.pending if j.kind == "issue"} if not self.hub_online else set()
        printer_ok = self.printer_state.can_issue
        out: dict[str, str] = {}
        for key in leds:
            if key in self.priority_keys:
                out[key] = "armed" if self.armed == key else ("ready" if printer_ok and self.hub_online else "off")
            elif not printer_ok:
                out[key] = "fault"
            elif key in waiting:
                out[key] = "wait"
            elif not self.hub_online:
                out[key] = "hub_offline"
            elif key in busy:
                out[key] = "working"
            else:
                out[key] = "ready"
        status = "fault" if not printer_ok else "hub_offline" if not self.hub_online else "working" if busy else "ready"
        return out, status

    def busy_keys(self) -> set[str]:
        """Keys with a job queued or running (their LED says "working")."""
        keys = {j.button for j in self.pending}
        if self.in_flight is not None:
            keys.add(self.in_flight.button)
        return keys

    def _count(self, key: str) -> int:
        return sum(1 for j in self.pending if j.button == key) + (
            1 if self.in_flight is not None and self.in_flight.button == key else 0)

    def _queue(self, job: TicketJob) -> PressResult:
        self.pending.append(job)
        self.stats.jobs += 1
        waiting = job.kind == "issue" and not self.hub_online
        return PressResult(Outcome.WAITING_HUB if waiting else Outcome.QUEUED, job.button, job)

    def _finish(self, job: TicketJob) -> None:
        if self.in_flight is not None and self.in_flight.request_id == job.request_id:
            self.in_flight = None
        else:  # a job the core did not hand out: keep going, but say so
            log.warning("finished job %s was not in flight", job.request_id)
