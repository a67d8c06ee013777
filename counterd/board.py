"""The counter box's GPIO board: its keys (into one queue), status LED, rating LED, buzzer.

A thin shell over :mod:`xephang.hw`: a :class:`~xephang.hw.Key` per key of the key map
(short keys answer at the leading edge; keys with a long action answer at release or when
held), and a :class:`~xephang.hw.Signal` per light, all on one per-device pin factory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from gpiozero import LED, Buzzer, Factory

from counterd.config import PLAIN_ACTIONS, BoxConfig, KeySpec
from counterd.keymap import Flash
from counterd.lights import BOX_BUZZER_PATTERNS, RATING_PATTERNS, STATUS_PATTERNS
from xephang.hw import Key, KeyTiming, PressSink, Signal

log = logging.getLogger(__name__)

_MOCK_PINS = tuple(range(2, 28))  # BCM pins every mock board revision has


def sim_config(config: BoxConfig, services: Sequence[str]) -> BoxConfig:
    """The box for the simulator: the configured key map on mock pins, plus a key for every
    transfer target (named by the service id) and for every action no key reaches, so a
    ``R/sim/{node}/press`` of any action name finds a key to press."""
    used = {str(k.pin) for k in config.keys} | {str(p) for p in (config.status_led_pin, config.rating_led_pin,
                                                                  config.buzzer_pin) if p is not None}
    free = [p for p in _MOCK_PINS if str(p) not in used]
    reachable = {a for k in config.keys for a in (k.short, k.long) if a}
    names = {k.name for k in config.keys}
    extra: list[KeySpec] = []
    for svc in config.transfer_to or services:
        if f"transfer:{svc}" not in reachable and svc not in names and free:
            extra.append(KeySpec(name=svc, pin=free.pop(0), short=f"transfer:{svc}"))
    for action in PLAIN_ACTIONS:
        # resume is reached through the pause toggle; none is nothing
        if action not in reachable and action not in ("resume", "none") and action not in names and free:
            extra.append(KeySpec(name=action, pin=free.pop(0), short=action))
    if extra:
        log.info("sim board: extra keys %s", ", ".join(k.name for k in extra))
    return config.model_copy(update={"keys": (*config.keys, *extra), "pin_factory": "mock"})


class CounterBoard:
    """Keys and lights of one counter box.

    :param config: the box config (key map, pins, timing).
    :param events: where every accepted :class:`KeyPress` goes (the daemon's PressSink: handled in its owner loop).
    :param pin_factory: from :func:`xephang.hw.make_pin_factory`.
    :param clock: monotonic seconds for the keys' debounce and hold rules.
    """

    def __init__(self, config: BoxConfig, *, events: PressSink, pin_factory: Factory | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.keys: dict[str, Key] = {}
        self.status: Signal | None = None
        self.rating: Signal | None = None
        self.buzzer: Signal | None = None
        common = {"debounce_s": config.debounce_s, "double_press_s": config.double_press_s,
                  "max_presses": config.max_presses, "per_s": 10.0}
        edge = KeyTiming(**common)
        held = KeyTiming(**common, hold_s=config.hold_s)
        try:
            for spec in config.keys:
                self.keys[spec.name] = Key(spec.name, spec.pin, events=events, timing=held if spec.needs_hold else edge,
                                           pin_factory=pin_factory, clock=clock)
            if config.status_led_pin is not None:
                self.status = Signal(LED(config.status_led_pin, pin_factory=pin_factory), patterns=STATUS_PATTERNS,
                                     name="status")
            if config.rating_led_pin is not None:
                self.rating = Signal(LED(config.rating_led_pin, pin_factory=pin_factory), patterns=RATING_PATTERNS,
                                     name="rating")
            if config.buzzer_pin is not None:
                self.buzzer = Signal(Buzzer(config.buzzer_pin, pin_factory=pin_factory), patterns=BOX_BUZZER_PATTERNS,
                                     name="buzzer")
        except Exception:
            self.close()  # release the pins already taken, so a retry can claim them
            raise

    # ---- lights ------------------------------------------------------------------------------
    def flash(self, f: Flash) -> None:
        """Play a finite pattern on its LED (the status LED when there is no rating LED) and the buzzer."""
        led = self.rating if f.on == "rating" and self.rating is not None else self.status
        for sig in (led, self.buzzer):
            if sig is None:
                continue
            p = sig.patterns.get(f.name)
            if p is not None and not p.forever:  # a forever name is a base: set by show_bases
                sig.show(f.name)

    def show_bases(self, status: str, rating: str) -> None:
        """The patterns the LEDs return to (a playing flash is not cut short)."""
        if self.status is not None:
            self.status.show(status)
        if self.rating is not None:
            self.rating.show(rating)

    # ---- sim ---------------------------------------------------------------------------------
    def resolve(self, button: str, hold_s: float) -> tuple[str, float] | None:
        """A sim press of ``button`` (a key name, or an action a key reaches) → (key, hold)."""
        specs = self.config.keys
        spec = self.config.key(button)
        if spec is not None:
            return button, self._short_hold(hold_s) if spec.needs_hold and hold_s < self.config.hold_s else hold_s
        for spec in specs:
            if spec.short == button:
                return spec.name, self._short_hold(hold_s) if spec.needs_hold else hold_s
        for spec in specs:
            if spec.long == button:
                return spec.name, max(hold_s, self.config.hold_s + 0.15)
        if button == "resume":  # the pause toggle resumes a paused counter
            for spec in specs:
                if spec.short == "pause":
                    return spec.name, self._short_hold(hold_s)
        return None

    def _short_hold(self, hold_s: float) -> float:
        # a key that tells short from long answers at release: hold past the debounce, short of a long press
        return min(max(hold_s, self.config.debounce_s * 2 + 0.02), self.config.hold_s * 0.5)

    def simulate_press(self, button: str, hold_s: float = 0.0) -> bool:
        """Sim mode: press ``button`` through its mock pin (held ``hold_s``). False if no key fits."""
        found = self.resolve(button, hold_s)
        if found is None:
            return False
        name, hold = found
        self.keys[name].simulate_press(hold)
        return True

    def close(self) -> None:
        """Stop every blink thread and release every pin."""
        for sig in (self.status, self.rating, self.buzzer):
            if sig is not None:
                sig.close()
        # gpiozero stops each key's hold thread with a ~0.1 s join: close them side by side
        closers = [threading.Thread(target=key.close, name=f"close-{name}", daemon=True)
                   for name, key in self.keys.items()]
        for t in closers:
            t.start()
        for t in closers:
            t.join(timeout=2.0)
