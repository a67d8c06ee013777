"""Shared hardware seams for the boards: keys (buttons) and lights (LEDs, buzzer).

Used by ticketd (service buttons, priority key, technician keys) and counterd (officer keys,
rating keys). Everything goes through gpiozero with a *per-device* pin factory chosen from
config (:func:`make_pin_factory`): ``"mock"`` for the simulator and tests (gpiozero's own
``MockFactory``), anything else for the real board. The global ``Device.pin_factory`` is
never touched, so two daemons' tests can run in one process.

Threading rule: gpiozero calls our callbacks on its own threads (lgpio callback thread,
the "held" thread). Those callbacks only update the key's tiny edge state and put a
:class:`KeyPress` on a ``queue.Queue``; the daemon's own loop drains the queue.
"""

from xephang.hw.factory import board_pin_factory, make_pin_factory
from xephang.hw.keys import Key, KeyPress, KeyPressKind, KeyTiming, PressSink, RateLimit
from xephang.hw.lights import BUZZER_PATTERNS, LED_PATTERNS, Pattern, Signal, pin_history

__all__ = [
    "BUZZER_PATTERNS",
    "LED_PATTERNS",
    "Key",
    "KeyPress",
    "KeyPressKind",
    "KeyTiming",
    "PressSink",
    "Pattern",
    "RateLimit",
    "Signal",
    "board_pin_factory",
    "make_pin_factory",
    "pin_history",
]
