"""A debounced key on a gpiozero ``Button``: short and long presses into a queue.

Why our own debounce: gpiozero's mock pins ignore ``bounce_time`` (and on real pins it
depends on the backend), so a test could never prove "one press → one ticket". Here every
rule lives in :class:`Key` and runs on an injectable monotonic clock:

- **debounce**: an edge closer than ``debounce_s`` to the last accepted edge is contact
  bounce and is ignored;
- **double-press guard**: a press starting less than ``double_press_s`` after the previous
  press edge is dropped, so a child drumming on the button gets one press per burst;
- **bounded rate**: at most ``max_presses`` accepted presses per ``per_s`` seconds
  (:class:`RateLimit`, a sliding window);
- **short / long**: with ``hold_s=None`` a press is reported as ``short`` at its leading
  edge (lowest latency: a ticket button); with ``hold_s`` set the key reports ``long``
  as soon as it has been held that long (gpiozero's ``when_held`` thread, so the user gets
  feedback while still holding) or at release if the clock says so, and ``short`` at
  release otherwise (a technician key, an officer's recall key).

Threads: gpiozero runs our callbacks on its own threads (synchronously in the caller's
thread for mock pins). They only update this key's edge state under a small lock and put a
:class:`KeyPress` on the ``queue.Queue`` given at construction; nothing else happens there.

Typical use (counterd, ticketd)::

    events: queue.Queue[KeyPress] = queue.Queue()
    factory = make_pin_factory(cfg.pin_factory)          # "mock" in sim/tests
    key = Key("next", 17, events=events, timing=KeyTiming(hold_s=1.5), pin_factory=factory)
    ...
    press = events.get(timeout=1)                        # in the daemon's own loop
    if press.name == "next" and press.kind == "short": ...

In tests: ``factory.pin(17).drive_low()`` presses, ``drive_high()`` releases; pass
``clock=manual.monotonic`` and move the clock between edges instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from gpiozero import Button, Factory

log = logging.getLogger(__name__)

KeyPressKind = Literal["short", "long"]


@dataclass(frozen=True, slots=True)
class KeyPress:
    """One accepted press of a named key.

    ``at`` is the key's clock (monotonic seconds) at the press's leading edge, so a long
    press and a short press carry the moment the finger went down.
    """

    name: str
    kind: KeyPressKind
    at: float


@dataclass(frozen=True, slots=True)
class KeyTiming:
    """Timing rules of one key (see the module docstring)."""

    debounce_s: float = 0.03
    double_press_s: float = 0.3
    hold_s: float | None = None
    max_presses: int = 5
    per_s: float = 10.0

    def __post_init__(self) -> None:
        if self.debounce_s < 0 or self.double_press_s < 0:
            raise ValueError("debounce_s and double_press_s must be >= 0")
        if self.hold_s is not None and self.hold_s <= self.debounce_s:
            raise ValueError("hold_s must be longer than debounce_s")
        if self.max_presses < 1 or self.per_s <= 0:
            raise ValueError("max_presses must be >= 1 and per_s > 0")


class RateLimit:
    """At most ``max_events`` per ``per_s`` seconds (sliding window; pure, time passed in)."""

    def __init__(self, *, max_events: int, per_s: float) -> None:
        if max_events < 1 or per_s <= 0:
            raise ValueError("max_events must be >= 1 and per_s > 0")
        self.max_events, self.per_s = max_events, per_s
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Count an event at ``now`` if the window has room; return whether it was allowed."""
        while self._times and now - self._times[0] >= self.per_s:
            self._times.popleft()
        if len(self._times) >= self.max_events:
            return False
        self._times.append(now)
        return True


@dataclass(slots=True)
class KeyStats:
    """Counters a daemon can put in its health message."""

    accepted: int = 0
    bounces: int = 0
    double_presses: int = 0
    rate_limited: int = 0



class PressSink(Protocol):
    """Where accepted presses go: a ``queue.Queue``, or the daemon's ``PressSink`` (the bus inbox)."""

    def put(self, item: KeyPress, /) -> None: ...


class Key:
    """A named, debounced push button (pressed = pin pulled low by default).

    :param name: the name carried by each :class:`KeyPress` (``"ho-tich"``, ``"next"``…).
    :param pin: gpiozero pin spec (BCM number or ``"GPIO17"``).
    :param events: where accepted presses go.
    :param timing: debounce, double-press, rate and hold rules.
    :param pin_factory: per-device factory from :func:`xephang.hw.make_pin_factory`.
    :param clock: monotonic seconds; tests pass a manual clock.
    :param pull_up: ``True`` for a key wired to ground (the usual arcade button).
    """

    def __init__(
        self,
        name: str,
        pin: int | str,
        *,
        events: PressSink,
        timing: KeyTiming = KeyTiming(),
        pin_factory: Factory | None = None,
        clock: Callable[[], float] = time.monotonic,
        pull_up: bool = True,
    ) -> None:
        self.name = name
        self.timing = timing
        self.stats = KeyStats()
        self._events = events
        self._clock = clock
        self._rate = RateLimit(max_events=timing.max_presses, per_s=timing.per_s)
        self._lock = threading.Lock()  # gpiozero's edge and held threads both touch the edge state
        self._last_edge = -float("inf")
        self._last_down = -float("inf")
        self._gap = float("inf")  # time since the previous (debounced) press edge
        self._down = False
        self._down_at = 0.0
        self._long_sent = False
        # bounce_time=None: debounce is ours (mock pins ignore it, real backends differ)
        self.button = Button(
            pin,
            pull_up=pull_up,
            bounce_time=None,
            hold_time=timing.hold_s if timing.hold_s is not None else 1.0,
            pin_factory=pin_factory,
        )
        self.button.when_pressed = self._on_down
        self.button.when_released = self._on_up
        if timing.hold_s is not None:
            self.button.when_held = self._on_held

    @property
    def pin(self):  # noqa: ANN201 - gpiozero's Pin type differs per factory
        """The gpiozero pin object (a ``MockPin`` in sim mode: ``drive_low()`` presses it)."""
        return self.button.pin

    def close(self) -> None:
        """Release the pin and stop gpiozero's hold thread."""
        self.button.close()

    def __enter__(self) -> Key:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- gpiozero callbacks (other threads): update edge state, enqueue, nothing else ---

    def _on_down(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._last_edge < self.timing.debounce_s:
                self.stats.bounces += 1
                return
            # a press edge implies a release happened, even one we ignored as bounce
            self._last_edge = now
            self._gap, self._last_down = now - self._last_down, now
            self._down, self._down_at, self._long_sent = True, now, False
            if self.timing.hold_s is None:
                self._accept(now, "short", now)

    def _on_up(self) -> None:
        now = self._clock()
        with self._lock:
            if not self._down:
                return
            if now - self._last_edge < self.timing.debounce_s:
                self.stats.bounces += 1
                return
            self._last_edge = now
            self._down = False
            hold_s = self.timing.hold_s
            if hold_s is not None and not self._long_sent:
                kind: KeyPressKind = "long" if now - self._down_at >= hold_s else "short"
                self._accept(self._down_at, kind, now)

    def _on_held(self) -> None:
        now = self._clock()
        with self._lock:
            if self._down and not self._long_sent:
                self._long_sent = True
                self._accept(self._down_at, "long", now)

    def _accept(self, pressed_at: float, kind: KeyPressKind, now: float) -> None:
        # measured from the previous press edge, dropped or not: drumming stays one press
        if self._gap < self.timing.double_press_s:
            self.stats.double_presses += 1
            log.debug("key %s: double press dropped", self.name)
            return
        if not self._rate.allow(now):
            self.stats.rate_limited += 1
            log.info("key %s: rate limit (%d per %.0f s), press dropped", self.name,
                     self.timing.max_presses, self.timing.per_s)
            return
        self.stats.accepted += 1
        self._events.put(KeyPress(self.name, kind, pressed_at))

    # --- simulation ---

    def simulate_press(self, hold_s: float = 0.1) -> threading.Thread | None:
        """Press the key through its mock pin (sim mode only) and release it after ``hold_s``.

        Drives the real path: mock pin → gpiozero → our debounce → queue. The release runs
        on a short-lived thread (returned, already started) so the caller's loop is not
        blocked; with ``hold_s <= 0`` the release is immediate and ``None`` is returned.
        Raises ``TypeError`` on a real pin.
        """
        pin = self.button.pin
        if not hasattr(pin, "drive_low"):
            raise TypeError(f"key {self.name}: simulate_press needs a mock pin")
        press, release = (pin.drive_low, pin.drive_high) if self.button.pull_up else (pin.drive_high, pin.drive_low)
        press()
        if hold_s <= 0:
            release()
            return None
        timer = threading.Timer(hold_s, release)
        timer.name = f"sim-release-{self.name}"
        timer.daemon = True
        timer.start()
        return timer
