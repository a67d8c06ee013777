"""The counter box's pure core: the box's state machine over its key map (``counterd.config``).

No I/O and no clock reads: every input carries ``now`` (monotonic seconds of the box).
The daemon (``counterd.main``) feeds it key presses, hub replies, the hub's availability
and the hub's retained counter state, executes the :class:`Send` effects through the bus
and plays the :class:`Flash` effects and the two light bases (:meth:`CounterBox.status_light`,
:meth:`CounterBox.rating_light`) on the LEDs and the buzzer.

The rules (``docs/counterd.md`` has the long form):

- **Key map**: each key (a pin) has a ``short`` action and an optional ``long`` one.
  Actions: ``next``, ``recall``, ``no-show``, ``finish``, ``pause`` (toggle: pause with the
  first reason, or resume when paused), ``resume``, ``pause-menu`` (choose a reason),
  ``transfer`` (choose a service), ``transfer:<service>`` (a service key), ``rate-1`` …
  ``rate-5``, ``arrived`` (the called citizen reached the counter: an optional key, not in the
  default map), ``none``.
- **Menus** (few keys): ``pause-menu`` and ``transfer`` open a choice; the key that opened it
  steps through the options with short presses (the LED blinks the option's number, the
  buzzer beeps it) and confirms with a long press; a service key confirms its service at
  once. Any other key cancels the menu and does its own job; no press for
  ``select_timeout_s`` cancels it. Nothing is sent before a confirmation.
- **Double press**: guarded once, where the press happens: the key itself (``xephang.hw.keys``)
  drops a press that starts within ``double_press_s`` of the previous one (contact bounce, a
  nervous double tap), so this core never sees it; what gets past that guard is a real second
  press and meets the rule below.
- **One request at a time**: while a request is in flight, the *same* action is ignored
  with the ``busy`` signal (the press in flight *is* that press: doubling Next would skip a
  citizen); a *different* action is queued in a single slot (``queued`` signal) and sent
  when the reply arrives; a further press while the slot is full gets ``busy``.
- **Hub offline** (its retained status, or our own link down): every press is answered with
  ``hub_offline`` and forgotten; going offline also drops the queued press and any open
  menu. Nothing is replayed when the hub returns: the box is simply usable again.
- **Rating**: the rating keys are live for the rating window after an explicit Finish
  (the hub's ``rating_window_s``, shortened by the local setting); the window belongs to the
  ticket that Finish ended (``data.ticket.id`` of the reply) and every rating sent in it
  names that ticket (``ticket_id``), so a Next that calls the following citizen, or the
  hub finishing that one (inferred), cannot move the rating onto another ticket. One rating
  per window; a press outside it is ignored with ``rating_closed`` and never sent.
- **Rating scale**: the site's ``rating_scale`` (3 or 5) sets which rating keys exist: a
  config mapping ``rate-4``/``rate-5`` on a 3-point site is refused when it is loaded, and a
  score above the scale is refused locally (``error`` on the rating LED), never sent.
- **Recalls**: after ``recalls_before_no_show`` recalls of the same ticket the status light
  suggests a no-show until the ticket leaves the counter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from counterd.config import MAX_CHOICES, BoxConfig, rate_score, transfer_target
from xephang.contract import (
    MAX_RECALLS_PER_VISIT,
    BadPayload,
    CallData,
    CounterState,
    FinishData,
    RecallData,
    Reply,
    TicketInfo,
    reply_data,
)

log = logging.getLogger(__name__)

# box action → hub request action
REQUEST_OF = {"next": "call-next", "recall": "recall", "no-show": "no-show", "finish": "finish",
              "pause": "pause", "resume": "resume", "transfer": "transfer", "rate": "rate", "arrived": "arrived"}

# the hub's refusals of a rating that no retry can fix: the window is over
RATING_GONE = ("rating-window-closed", "already-rated", "rating-wrong-ticket")


# ---------------------------------------------------------------------------------------------
# Effects


@dataclass(frozen=True, slots=True)
class Flash:
    """Play the finite pattern ``name`` once (on the status or the rating LED, and the buzzer)."""

    name: str
    on: Literal["status", "rating"] = "status"


@dataclass(frozen=True, slots=True)
class Send:
    """Send hub request ``action`` (``call-next`` …) with ``fields``; ``request_id`` made once per press."""

    action: str
    request_id: str
    fields: dict[str, Any]
    press: str  # the box action that made it (next, rate-4 …)
    at: float


Effect = Flash | Send


@dataclass
class Menu:
    kind: Literal["pause", "transfer"]
    key: str  # the key that opened it: short steps, long confirms
    options: tuple[str, ...]
    index: int
    until: float


@dataclass
class RatingWindow:
    """The rating window of one finished service: its ticket, until when, whether rated."""

    ticket_id: int | None  # data.ticket.id of the finish reply: every rating names it
    display: str | None
    until: float
    sent: bool = False


@dataclass
class BoxStats:
    sent: int = 0
    queued: int = 0
    busy: int = 0
    hub_offline: int = 0
    rating_closed: int = 0
    errors: int = 0
    timeouts: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


class CounterBox:
    """State machine of one counter box. See the module docstring for the rules.

    :param config: the box config (key map, reasons, windows).
    :param new_request_id: makes a request id (once per press).
    :param site_services: every service id of the site (transfer targets by default).
    :param site_rating_scale: the site file's ``rating_scale`` when known (it wins over the
        config's: a score above it is refused locally).
    """

    def __init__(self, config: BoxConfig, *, new_request_id: Callable[[], str],
                 site_services: tuple[str, ...] = (), site_rating_scale: int | None = None) -> None:
        self.config = config
        self._new_id = new_request_id
        self.site_services = tuple(site_services)
        self.site_rating_scale = site_rating_scale
        self.stats = BoxStats()
        self.hub_online = False
        self.in_flight: Send | None = None
        self.queued: Send | None = None
        self.menu: Menu | None = None
        self.serving: TicketInfo | None = None
        self.paused = False
        self.pause_reason: str | None = None
        self.services: tuple[str, ...] = config.services
        self.queue_empty = False
        self.waiting: dict[str, int] = {}
        self.rating: RatingWindow | None = None
        self.rev = 0
        self.last_action = ""
        self.last_result = ""
        self.last_ticket: str | None = None

    # ------------------------------------------------------------------ config
    def reconfigure(self, config: BoxConfig) -> list[Effect]:
        """A new key map / reasons / windows (technician push). Cancels an open menu."""
        self.config = config
        if config.services:
            self.services = config.services
        had_menu = self.menu is not None
        self.menu = None
        return [Flash("cancelled")] if had_menu else []

    @property
    def recalls(self) -> int:
        return self.serving.recalls if self.serving else 0

    @property
    def suggest_no_show(self) -> bool:
        # never past what the hub allows a call (a setting of 11-20 would never light within one call)
        n = min(self.config.recalls_before_no_show, MAX_RECALLS_PER_VISIT)
        return bool(n) and self.serving is not None and self.serving.recalls >= n

    @property
    def rating_scale(self) -> int:
        """Scores the box may send: the config's, never more than the site file's."""
        return min(self.site_rating_scale or 5, self.config.rating_scale)

    def rating_open(self, now: float) -> bool:
        r = self.rating
        return r is not None and not r.sent and now < r.until

    # ------------------------------------------------------------------ lights
    def status_light(self, now: float) -> str:
        """The status LED's base pattern now (highest concern first)."""
        if not self.hub_online:
            return "hub_offline"
        if self.menu is not None:
            return f"choose-{self.menu.index + 1}"
        if self.in_flight is not None:
            return "working"
        if self.paused:
            return "paused"
        if self.suggest_no_show:
            return "suggest_no_show"
        if self.queue_empty and self.serving is None:
            return "queue_empty"
        return "ready"

    def rating_light(self, now: float) -> str:
        """The rating LED's base pattern now."""
        return "rating_open" if self.hub_online and self.rating_open(now) else "off"

    # ------------------------------------------------------------------ inputs
    def press(self, key: str, kind: str, now: float) -> list[Effect]:
        """A debounced press of key ``key`` (``short`` | ``long``) at ``now``."""
        spec = self.config.key(key)
        if spec is None:
            log.warning("press of unknown key %r ignored", key)
            return []
        action = spec.long if kind == "long" and spec.long else spec.short
        menu = self.menu
        if menu is not None:
            if key == menu.key:
                return self._menu_confirm(menu, now) if kind == "long" else self._menu_step(menu, now)
            target = transfer_target(action)
            if menu.kind == "transfer" and target is not None:
                return self._menu_pick(menu, target, now)
            self.menu = None  # another key: the officer changed their mind
            log.info("menu %s cancelled by key %s", menu.kind, key)
        return self.act(action, now, key=key)

    def act(self, action: str, now: float, *, key: str = "") -> list[Effect]:
        """Do box action ``action`` (already resolved from the key map)."""
        if action == "none":
            return []
        self.last_action = action
        score = rate_score(action)
        if not self.hub_online:
            self.stats.hub_offline += 1
            self.last_result = "hub-offline"
            return [Flash("hub_offline", on="rating" if score else "status")]
        if score is not None:
            return self._rate(score, action, now)
        if action == "pause":
            if self.paused:
                return self._request("resume", {}, action, now)
            reasons = self.config.pause_reasons
            return self._request("pause", {"reason": reasons[0] if reasons else ""}, action, now)
        if action == "pause-menu":
            if self.paused:
                return self._request("resume", {}, action, now)
            if not self.config.pause_reasons:
                return self._request("pause", {"reason": ""}, action, now)
            return self._open_menu("pause", key, self.config.pause_reasons, now)
        if action == "transfer":
            return self._open_transfer(key, now)
        if transfer_target(action) is not None:
            # a service key alone does nothing: a transfer is two deliberate presses
            self.last_result = "transfer-needs-menu"
            return [Flash("cancelled")]
        if action in REQUEST_OF:
            return self._request(REQUEST_OF[action], {}, action, now)
        log.warning("action %r has no handler", action)  # pragma: no cover - check_action guards
        return []

    def on_reply(self, request_id: str, reply: Reply | None, now: float) -> list[Effect]:
        """The hub's reply to the request in flight (None: no reply after every retry)."""
        sent = self.in_flight
        if sent is None or sent.request_id != request_id:
            log.debug("reply %s is not for the request in flight: ignored", request_id)
            return []
        self.in_flight = None
        if reply is not None and reply.rev is not None:
            self.rev = max(self.rev, reply.rev)
        if reply is None:
            self.stats.timeouts += 1
            self.last_result = "hub-timeout"
            out: list[Effect] = [Flash("error", on="rating" if sent.action == "rate" else "status")]
            if sent.action == "rate" and self.rating is not None \
                    and self.rating.ticket_id == sent.fields.get("ticket_id"):
                self.rating.sent = False  # the citizen may press again while the window lasts
            if self.queued is not None:  # no half-done work behind a hub that does not answer
                log.warning("hub did not answer %s: dropping the queued %s", sent.action, self.queued.action)
                self.queued = None
                out.append(Flash("error"))
            return out
        out = self._apply_reply(sent, reply, now)
        if self.queued is not None and self.hub_online:
            nxt, self.queued = self.queued, None
            self.in_flight = nxt
            self.stats.sent += 1
            out.append(nxt)
        return out

    def set_hub_online(self, online: bool, now: float) -> list[Effect]:
        """The hub's availability changed (retained status, or our own broker link)."""
        if online == self.hub_online:
            return []
        self.hub_online = online
        if online:
            self.rev = 0  # a new hub session may restart its revisions (restored ledger)
            log.info("hub online: box ready")
            return []
        log.warning("hub offline")
        out: list[Effect] = [Flash("hub_offline")]
        self.menu = None
        if self.queued is not None:
            log.warning("hub offline: queued %s dropped", self.queued.action)
            self.queued = None
        return out

    def on_counter_state(self, state: CounterState) -> list[Effect]:
        """The hub's retained ``state/counter/{n}`` (ignored when older than what we know)."""
        if state.number != self.config.number or state.rev < self.rev:
            return []
        self.rev = state.rev
        before = self.suggest_no_show
        self._set_serving(state.serving)
        self.paused = state.state == "paused"
        self.pause_reason = state.pause_reason
        if state.services and not self.config.services:
            self.services = tuple(state.services)
        return [Flash("suggest_no_show")] if self.suggest_no_show and not before else []

    def on_service_waiting(self, service: str, waiting: int) -> None:
        """The hub's retained ``state/service/{id}``: someone waiting clears "queue empty"."""
        self.waiting[service] = waiting
        if waiting > 0 and (not self.services or service in self.services):
            self.queue_empty = False

    def tick(self, now: float) -> list[Effect]:
        """Timers: a menu nobody finishes is cancelled; a rating window closes."""
        out: list[Effect] = []
        if self.menu is not None and now >= self.menu.until:
            log.info("menu %s timed out: cancelled", self.menu.kind)
            self.menu = None
            self.last_result = "menu-timeout"
            out.append(Flash("cancelled"))
        if self.rating is not None and now >= self.rating.until:
            self.rating = None
        return out

    # ------------------------------------------------------------------ internals
    def _request(self, action: str, fields: dict[str, Any], press: str, now: float) -> list[Effect]:
        send = Send(action, self._new_id(), fields, press, now)
        if self.in_flight is None:
            self.in_flight = send
            self.stats.sent += 1
            return [send]
        if self.in_flight.action == action or self.queued is not None:
            self.stats.busy += 1
            self.last_result = "busy"
            return [Flash("busy", on="rating" if action == "rate" else "status")]
        self.queued = send
        self.stats.queued += 1
        return [Flash("queued")]

    def _rate(self, score: int, action: str, now: float) -> list[Effect]:
        if score > self.rating_scale:  # a key the site's scale does not have: never sent
            self.stats.errors += 1
            self.last_result = "beyond-rating-scale"
            log.warning("%s pressed on a %s-point site: refused", action, self.rating_scale)
            return [Flash("error", on="rating")]
        window = self.rating
        if window is None or not self.rating_open(now):
            self.stats.rating_closed += 1
            self.last_result = "rating-closed"
            return [Flash("rating_closed", on="rating")]
        fields: dict[str, Any] = {"score": score}
        if window.ticket_id is not None:
            fields["ticket_id"] = window.ticket_id  # the ticket this window belongs to, whatever came since
        out = self._request("rate", fields, action, now)
        if any(isinstance(e, Send) for e in out) or self.queued is not None and self.queued.action == "rate":
            window.sent = True  # one rating per finished service
        return out

    def _open_transfer(self, key: str, now: float) -> list[Effect]:
        if self.serving is None:
            self.last_result = "not-serving"
            return [Flash("error")]
        pool = self.config.transfer_to or self.site_services
        options = tuple(s for s in pool if s != self.serving.service)[:MAX_CHOICES]
        if not options:
            self.last_result = "no-transfer-target"
            return [Flash("error")]
        return self._open_menu("transfer", key, options, now)

    def _open_menu(self, kind: Literal["pause", "transfer"], key: str, options: tuple[str, ...],
                   now: float) -> list[Effect]:
        self.menu = Menu(kind, key, tuple(options[:MAX_CHOICES]), 0, now + self.config.select_timeout_s)
        self.last_result = f"choose-{kind}"
        return [Flash("choose-1")]

    def _menu_step(self, m: Menu, now: float) -> list[Effect]:
        m.index = (m.index + 1) % len(m.options)
        m.until = now + self.config.select_timeout_s
        return [Flash(f"choose-{m.index + 1}")]

    def _menu_confirm(self, m: Menu, now: float) -> list[Effect]:
        self.menu = None
        choice = m.options[m.index]
        if m.kind == "pause":
            return self._request("pause", {"reason": choice}, "pause-menu", now)
        return self._request("transfer", {"to_service": choice}, "transfer", now)

    def _menu_pick(self, m: Menu, service: str, now: float) -> list[Effect]:
        if service not in m.options:
            self.menu = None
            self.last_result = "transfer-same-service"
            return [Flash("error")]
        m.index = m.options.index(service)
        return self._menu_confirm(m, now)

    def _close_rating(self, sent: Send) -> None:
        """The rating ``sent`` is settled: close its window (not a newer one, for another ticket)."""
        if self.rating is not None and self.rating.ticket_id == sent.fields.get("ticket_id"):
            self.rating = None

    def _set_serving(self, ticket: TicketInfo | None) -> None:
        self.serving = ticket
        if ticket is not None:
            self.last_ticket = ticket.display
            self.queue_empty = False

    def _apply_ok(self, sent: Send, reply: Reply, now: float) -> list[Effect] | None:
        """What an accepted request changes on the box, read from the reply's typed data
        (``contract.REPLY_DATA``); the effects when they are not the usual "accepted"."""
        self.last_result = "ok"
        match sent.action:
            case "call-next":
                call = reply_data(reply, CallData)
                self.paused = False
                if call.ticket is None:
                    self._set_serving(None)
                    self.queue_empty = True
                    self.last_result = "queue-empty"
                    return [Flash("queue_empty")]
                self._set_serving(call.ticket)
            case "recall":
                self._set_serving(reply_data(reply, RecallData).ticket)
            case "no-show" | "transfer":
                self._set_serving(None)
            case "finish":
                fin = reply_data(reply, FinishData)
                self._set_serving(None)
                window = fin.rating_window_s
                if self.config.rating_window_s is not None:
                    window = min(window, self.config.rating_window_s) if window else self.config.rating_window_s
                # a new window for the ticket just finished (a rating of the one before is over)
                self.rating = RatingWindow(fin.ticket.id, fin.ticket.display, now + window) if window > 0 else None
            case "pause":
                self._set_serving(None)  # the hub finished the ticket in service (inferred)
                self.paused, self.pause_reason = True, sent.fields.get("reason") or None
            case "resume":
                self.paused, self.pause_reason = False, None
            case "rate":
                self._close_rating(sent)
                return [Flash("rated", on="rating")]
        return None

    def _apply_reply(self, sent: Send, reply: Reply, now: float) -> list[Effect]:
        on = "rating" if sent.action == "rate" else "status"
        if reply.status != "ok":
            code = reply.error.code if reply.error else "error"
            self.stats.errors += 1
            self.stats.by_code[code] = self.stats.by_code.get(code, 0) + 1
            self.last_result = code
            log.warning("%s refused by the hub: %s %s", sent.action, code, reply.error.message if reply.error else "")
            if code == "not-serving":
                self.serving = None
            if sent.action == "rate" and code in RATING_GONE:
                self._close_rating(sent)
                return [Flash("rating_closed", on="rating")]
            if code == "recall-limit":  # recalled as often as the hub allows: the officer marks them absent
                return [Flash("suggest_no_show")]
            return [Flash("error", on=on)]
        before = self.suggest_no_show
        try:
            done = self._apply_ok(sent, reply, now)
        except BadPayload as exc:  # a hub of another version: say error, change nothing
            log.warning("%s reply from the hub does not read: %s", sent.action, exc)
            self.last_result = "bad-reply"
            return [Flash("error", on=on)]
        if done is not None:
            return done
        out: list[Effect] = []
        out.append(Flash("accepted"))
        if self.suggest_no_show and not before:
            out.append(Flash("suggest_no_show"))
        return out
