"""Named light and sound signals on gpiozero ``LED`` / ``Buzzer``, played in the background.

A :class:`Signal` owns one output device (an LED under a button, a status LED, the
buzzer) and plays named :class:`Pattern` s on it from its own background thread:

- a pattern is a list of ``(on, seconds)`` steps played ``repeat`` times, or forever when
  ``repeat`` is ``None``;
- a *forever* pattern becomes the signal's **base** (``ready``, ``working``, ``fault``,
  ``wait``, ``hub_offline``…); a *finite* pattern (``accepted``, ``error``) plays once and
  the signal then goes back to its base, so "flash for the accepted press, then back to
  ready" needs no timer in the daemon. Setting a forever pattern while a finite one plays
  only changes the base: the flash is not cut short.

The same names are used on every board, so a technician learns one language:

====================  =========================================  ======================
name                  LED                                        buzzer
====================  =========================================  ======================
``off``               off                                        silent
``ready``             steady on                                  silent
``working``           fast even blink (ticket printing, busy)    silent
``accepted``          two quick flashes, then base               one short beep
``wait``              slow blink (hub offline, press held)       two short beeps
``hub_offline``       double blink, pause                        two short beeps
``queue_empty``       short heartbeat blink                      silent
``armed``             medium blink (priority key waiting)        one short beep
``fault``             very fast blink (printer, paper)           three beeps
``error``             five very fast flashes, then base          one long beep
====================  =========================================  ======================

A name missing from a device's pattern table is a no-op on that device (the buzzer has no
``ready``), so daemons can signal the same name to LED and buzzer alike.

Tests read what was played from the mock pin's recorded states with :func:`pin_history`
(after :meth:`Signal.wait_settled` for a finite pattern), and ``signal.current`` /
``signal.base`` give the names.

The daemon calls :meth:`Signal.show` from its own loop thread only; the background thread
only drives the device and has a stop event and a join timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from gpiozero import LED, Buzzer, DigitalOutputDevice, Factory

log = logging.getLogger(__name__)

Step = tuple[bool, float]


@dataclass(frozen=True, slots=True)
class Pattern:
    """``steps`` played ``repeat`` times (``None`` = forever, and then it becomes the base)."""

    steps: tuple[Step, ...]
    repeat: int | None = None

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a pattern needs at least one step")
        if self.repeat is not None and self.repeat < 1:
            raise ValueError("repeat must be >= 1 or None")
        if any(sec < 0 for _, sec in self.steps):
            raise ValueError("step durations must be >= 0")

    @property
    def forever(self) -> bool:
        return self.repeat is None

    def expected_states(self) -> list[bool]:
        """States a finite pattern drives, deduplicated like a mock pin's history."""
        out: list[bool] = []
        for on, _ in self.steps * (self.repeat or 1):
            if not out or out[-1] != on:
                out.append(on)
        return out


def _steady(on: bool) -> Pattern:
    return Pattern(((on, 0.0),))


LED_PATTERNS: dict[str, Pattern] = {
    "off": _steady(False),
    "ready": _steady(True),
    "working": Pattern(((True, 0.15), (False, 0.15))),
    "accepted": Pattern(((False, 0.06), (True, 0.06), (False, 0.06), (True, 0.06)), repeat=1),
    "wait": Pattern(((True, 0.6), (False, 0.6))),
    "hub_offline": Pattern(((True, 0.1), (False, 0.15), (True, 0.1), (False, 1.0))),
    "queue_empty": Pattern(((True, 0.05), (False, 1.95))),
    "armed": Pattern(((True, 0.3), (False, 0.3))),
    "fault": Pattern(((True, 0.08), (False, 0.08))),
    "error": Pattern(((True, 0.05), (False, 0.05)), repeat=5),
}

BUZZER_PATTERNS: dict[str, Pattern] = {
    "off": _steady(False),
    "accepted": Pattern(((True, 0.05), (False, 0.0)), repeat=1),
    "wait": Pattern(((True, 0.08), (False, 0.08)), repeat=2),
    "hub_offline": Pattern(((True, 0.08), (False, 0.08)), repeat=2),
    "armed": Pattern(((True, 0.05), (False, 0.0)), repeat=1),
    "fault": Pattern(((True, 0.2), (False, 0.15)), repeat=3),
    "error": Pattern(((True, 0.6), (False, 0.0)), repeat=1),
}


class Signal:
    """Named patterns on one output device, played by a background thread.

    :param device: a gpiozero output device (``LED``, ``Buzzer``…); the signal owns it.
    :param patterns: name → :class:`Pattern` (default :data:`LED_PATTERNS`).
    :param name: for logs.
    """

    def __init__(
        self,
        device: DigitalOutputDevice,
        *,
        patterns: Mapping[str, Pattern] = LED_PATTERNS,
        name: str = "",
    ) -> None:
        self.device = device
        self.patterns = dict(patterns)
        self.name = name or str(device.pin)
        self.base = "off"
        self.current = "off"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._settled = threading.Event()
        self._settled.set()
        device.off()

    @classmethod
    def led(cls, pin: int | str, *, pin_factory: Factory | None = None, name: str = "",
            active_high: bool = True) -> Signal:
        """A signal on an ``LED`` at ``pin``."""
        return cls(LED(pin, active_high=active_high, pin_factory=pin_factory), patterns=LED_PATTERNS, name=name)

    @classmethod
    def buzzer(cls, pin: int | str, *, pin_factory: Factory | None = None, name: str = "buzzer",
               active_high: bool = True) -> Signal:
        """A signal on a ``Buzzer`` at ``pin`` (finite beeps; its base is silence)."""
        return cls(Buzzer(pin, active_high=active_high, pin_factory=pin_factory), patterns=BUZZER_PATTERNS, name=name)

    @property
    def pin(self):  # noqa: ANN201 - a MockPin in tests
        """The device's pin (a mock pin in tests: see :func:`pin_history`)."""
        return self.device.pin

    def show(self, name: str) -> None:
        """Play pattern ``name`` now (interrupting the one playing). Unknown names: no-op."""
        pattern = self.patterns.get(name)
        if pattern is None:
            return
        if pattern.forever:
            self.base = name
            if not self._settled.is_set():
                return  # a flash is playing: it ends on the new base (no lost "accepted" flash)
            if name == self.current and self._thread is not None and self._thread.is_alive():
                return  # already playing: do not restart the blink phase
        self._restart(name, pattern)

    def wait_settled(self, timeout: float = 5.0) -> bool:
        """Wait until a finite pattern has finished and the base is playing (tests, shutdown)."""
        return self._settled.wait(timeout)

    def close(self) -> None:
        """Stop the background thread and release the device."""
        self._halt()
        self.device.close()

    # --- background player ---

    def _halt(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():  # pragma: no cover - a wedged GPIO write
                log.warning("signal %s: player thread did not stop", self.name)
            self._thread = None

    def _restart(self, name: str, pattern: Pattern) -> None:
        self._halt()
        self._stop = threading.Event()
        self.current = name
        if not pattern.forever:
            self._settled.clear()
        self._thread = threading.Thread(
            target=self._play, args=(name, pattern, self._stop), name=f"signal-{self.name}", daemon=True
        )
        self._thread.start()

    def _play(self, name: str, pattern: Pattern, stop: threading.Event) -> None:
        try:
            if not pattern.forever:
                for _ in range(pattern.repeat or 1):
                    if self._steps(pattern, stop):
                        return
                if stop.is_set():
                    return
                name, pattern = self.base, self.patterns[self.base]
                self.current = name
                self._settled.set()
            if len(pattern.steps) == 1:
                self._set(pattern.steps[0][0])
                stop.wait()
                return
            while not self._steps(pattern, stop):
                pass
        except Exception:  # never let a GPIO error kill the daemon through a thread
            log.exception("signal %s: pattern %s failed", self.name, name)
        finally:
            self._settled.set()

    def _steps(self, pattern: Pattern, stop: threading.Event) -> bool:
        """Play the steps once; True when asked to stop."""
        for on, seconds in pattern.steps:
            self._set(on)
            if seconds and stop.wait(seconds):
                return True
        return stop.is_set()

    def _set(self, on: bool) -> None:
        if on:
            self.device.on()
        else:
            self.device.off()


def pin_history(pin) -> list[bool]:  # noqa: ANN001 - a gpiozero MockPin
    """The on/off states a mock output pin went through, oldest first, repeats merged.

    For a fresh pin this starts with its initial ``False``. Tests compare it with
    ``Pattern.expected_states()`` or check a prefix for forever patterns.
    """
    out: list[bool] = []
    for st in pin.states:
        v = bool(st.state)
        if not out or out[-1] != v:
            out.append(v)
    return out
