"""The dispenser's GPIO board: its keys (into one queue) and its LEDs and buzzer.

A thin shell over :mod:`xephang.hw`: it builds a :class:`~xephang.hw.Key` per button,
priority key and technician key from :class:`~ticketd.config.HardwareConfig`, and a
:class:`~xephang.hw.Signal` per LED and for the buzzer, all on one per-device pin factory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gpiozero import Factory

from ticketd.config import ButtonSpec, HardwareConfig, PriorityKeySpec
from ticketd.dispenser import ButtonRole, Dispenser
from xephang.hw import Key, KeyTiming, PressSink, Signal
from xephang.site import Site

log = logging.getLogger(__name__)

TECH_KEY, TEST_KEY = "tech", "test"

# a sim board's pins (BCM numbers that exist on every mock board revision)
_SIM_BUTTON_PINS = (5, 6, 12, 13, 16, 19, 20, 21)
_SIM_LED_PINS = (17, 18, 22, 23, 24, 25, 26, 27)


def sim_hardware(site: Site, base: HardwareConfig | None = None) -> HardwareConfig:
    """A board for the simulator: one button + LED per service (up to 8), a priority key,
    technician and test keys, a status LED and a buzzer; timing rules kept from ``base``."""
    base = base or HardwareConfig()
    if base.buttons:
        return base.model_copy(update={"pin_factory": "mock"})
    buttons = tuple(
        ButtonSpec(service=s.id, pin=_SIM_BUTTON_PINS[i], led_pin=_SIM_LED_PINS[i])
        for i, s in enumerate(site.services[: len(_SIM_BUTTON_PINS)])
    )
    return base.model_copy(update={
        "pin_factory": "mock",
        "buttons": buttons,
        "priority_keys": (PriorityKeySpec(pin=4, led_pin=7),),
        "tech_key_pin": 14,
        "test_key_pin": 15,
        "status_led_pin": 2,
        "buzzer_pin": 3,
    })


class DispenserBoard:
    """Keys and signals of one dispenser.

    :param hw: the hardware section.
    :param events: where every accepted :class:`KeyPress` goes (the daemon's PressSink: handled in its owner loop).
    :param pin_factory: from :func:`xephang.hw.make_pin_factory`.
    :param clock: monotonic seconds for the keys' debounce and hold rules.
    """

    def __init__(self, hw: HardwareConfig, *, events: PressSink, pin_factory: Factory | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hw = hw
        self.keys: dict[str, Key] = {}
        self.leds: dict[str, Signal] = {}
        self.status_led: Signal | None = None
        self.buzzer: Signal | None = None
        # the dispenser bounds tickets per button; the key's own bound only stops electrical noise
        press = KeyTiming(debounce_s=hw.debounce_s, double_press_s=hw.double_press_s,
                          max_presses=hw.max_presses * 3, per_s=hw.per_s)
        hold = KeyTiming(debounce_s=hw.debounce_s, double_press_s=hw.double_press_s, hold_s=hw.tech_hold_s,
                         max_presses=10, per_s=60)
        try:
            for b in hw.buttons:
                self._add(b.key_name(), b.pin, b.led_pin, press, events, pin_factory, clock)
            for k in hw.priority_keys:
                self._add(k.name, k.pin, k.led_pin, press, events, pin_factory, clock)
            if hw.tech_key_pin is not None:
                self._add(TECH_KEY, hw.tech_key_pin, None, hold, events, pin_factory, clock)
            if hw.test_key_pin is not None:
                self._add(TEST_KEY, hw.test_key_pin, None, hold, events, pin_factory, clock)
            if hw.status_led_pin is not None:
                self.status_led = Signal.led(hw.status_led_pin, pin_factory=pin_factory, name="status")
            if hw.buzzer_pin is not None:
                self.buzzer = Signal.buzzer(hw.buzzer_pin, pin_factory=pin_factory)
        except Exception:
            self.close()  # release the pins already taken, so a retry can claim them
            raise

    def _add(self, name: str, pin: int | str, led_pin: int | str | None, timing: KeyTiming,
             events: PressSink, pin_factory: Factory | None, clock: Callable[[], float]) -> None:
        self.keys[name] = Key(name, pin, events=events, timing=timing, pin_factory=pin_factory, clock=clock)
        if led_pin is not None:
            self.leds[name] = Signal.led(led_pin, pin_factory=pin_factory, name=name)

    def dispenser(self, **options: object) -> Dispenser:
        """The decision core for this board's keys (``options`` override config values)."""
        hw = self.hw
        kw: dict[str, object] = dict(
            buttons={b.key_name(): ButtonRole(b.service, b.priority_group) for b in hw.buttons},
            priority_keys={k.name: k.group for k in hw.priority_keys},
            tech_key=TECH_KEY if hw.tech_key_pin is not None else None,
            test_key=TEST_KEY if hw.test_key_pin is not None else None,
            priority_window_s=hw.priority_window_s, max_pending=hw.max_pending,
            max_presses=hw.max_presses, per_s=hw.per_s, hub_wait_s=hw.hub_wait_s,
        )
        kw.update(options)
        return Dispenser(**kw)  # type: ignore[arg-type]

    def show(self, key: str, pattern: str) -> None:
        """Play ``pattern`` on the LED of ``key`` (if it has one)."""
        led = self.leds.get(key)
        if led is not None:
            led.show(pattern)

    def beep(self, pattern: str) -> None:
        """Play ``pattern`` on the buzzer (if any)."""
        if self.buzzer is not None:
            self.buzzer.show(pattern)

    def show_status(self, pattern: str) -> None:
        if self.status_led is not None:
            self.status_led.show(pattern)

    def simulate_press(self, name: str, hold_s: float = 0.0) -> bool:
        """Sim mode: press key ``name`` through its mock pin. False for an unknown key."""
        key = self.keys.get(name)
        if key is None:
            return False
        key.simulate_press(hold_s)
        return True

    def close(self) -> None:
        """Stop every blink thread and release every pin."""
        for sig in [*self.leds.values(), self.status_led, self.buzzer]:
            if sig is not None:
                sig.close()
        for key in self.keys.values():
            key.close()
