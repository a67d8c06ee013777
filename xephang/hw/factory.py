"""Pin factory selection: one factory per daemon, handed to each device (never global)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory, MockPWMPin

log = logging.getLogger(__name__)


class PinFactoryError(RuntimeError):
    """The configured pin factory cannot be loaded (a permanent, local-config error)."""


def make_pin_factory(name: str = "") -> Factory | None:
    """Return the pin factory for ``name``, to pass as ``pin_factory=`` to every device.

    - ``"mock"``: a fresh gpiozero ``MockFactory`` (PWM-capable pins), for sim mode and tests.
      Tests press a key with ``factory.pin(17).drive_low()`` and read an LED's history from
      ``factory.pin(n).states``.
    - ``""`` or ``"default"``: ``None``, i.e. gpiozero picks its default on the device
      (lgpio on a Pi 5).
    - another gpiozero entry-point name (``"lgpio"``, ``"rpigpio"``, ``"native"``, ``"pigpio"``):
      that factory.

    Raises :class:`PinFactoryError` for an unknown name or one that cannot load here.
    """
    name = (name or "").strip().lower()
    if name in ("", "default"):
        return None
    if name == "mock":
        # PWM-capable mock pins so a PWMLED on the sim board works like a real one
        return MockFactory(pin_class=MockPWMPin)
    eps = {ep.name: ep for ep in entry_points(group="gpiozero_pin_factories")}
    if name not in eps:
        raise PinFactoryError(f"unknown pin factory {name!r}; known: mock, default, {', '.join(sorted(eps))}")
    try:
        return eps[name].load()()
    except Exception as exc:  # an import or hardware error here is a permanent config error
        raise PinFactoryError(f"pin factory {name!r} cannot be loaded: {exc}") from exc
