"""Pin factory selection: one factory per daemon, handed to each device (never global)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory, MockPWMPin

log = logging.getLogger(__name__)


# what a board without a working pin factory needs (docs/install-pi.md §3): the OS's lgpio, seen by the venv
INSTALL_HINT_VI = ("cài lgpio của hệ điều hành (sudo apt install python3-lgpio) và tạo venv với "
                   "--system-site-packages (docs/install-pi.md §3), hoặc đặt sim = true")
INSTALL_HINT_EN = ("install the OS's lgpio (sudo apt install python3-lgpio) and make the venv with "
                   "--system-site-packages (docs/install-pi.md §3), or set sim = true")


class PinFactoryError(RuntimeError):
    """The configured pin factory cannot be loaded (a permanent, local-config error)."""


def pin_factory_fault(exc: BaseException) -> str | None:
    """The one line a daemon says (exit 78) when ``exc`` means no pin factory can drive this
    board's pins: ours (``make_pin_factory``) or gpiozero's own, when no default factory loads
    (``BadPinFactory``: "Unable to load any default pin factory!"). None for any other error."""
    from gpiozero.exc import BadPinFactory

    if isinstance(exc, PinFactoryError):
        return str(exc)
    if isinstance(exc, BadPinFactory):
        return (f"chân GPIO: không nạp được bộ điều khiển chân (pin factory) nào: {INSTALL_HINT_VI} / "
                f"GPIO pins: no pin factory can be loaded ({exc}): {INSTALL_HINT_EN}")
    return None


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
        known = f"mock, default, {', '.join(sorted(eps))}"
        raise PinFactoryError(f"pin_factory {name!r}: không có bộ điều khiển chân này (có: {known}) / "
                              f"unknown pin factory {name!r}; known: {known}")
    try:
        return eps[name].load()()
    except Exception as exc:  # an import or hardware error here is a permanent config error
        raise PinFactoryError(f"pin_factory {name!r}: không nạp được ({exc}): {INSTALL_HINT_VI} / "
                              f"pin factory {name!r} cannot be loaded: {exc}: {INSTALL_HINT_EN}") from exc


def board_pin_factory(name: str, *, sim: bool, checking: bool) -> Factory | None:
    """The factory a board's keys and lights are built on: mock pins in sim mode; the configured
    factory on a real board; under ``--check`` on a real board, the configured factory is loaded (a
    missing lgpio is found) and closed, and the key map is built on mock pins. A check claims no
    pin: the running service holds them (lgpio claims a line for one process only), and a check
    that claimed them failed on a live box whose settings were right."""
    if sim:
        return make_pin_factory("mock")
    if not checking:
        return make_pin_factory(name)
    real = make_pin_factory(name)
    if real is None:  # the default: what gpiozero would pick at the first device (BadPinFactory if none)
        from gpiozero import Device

        real = Device._default_pin_factory()
    real.close()
    return make_pin_factory("mock")
