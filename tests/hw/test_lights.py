"""Signals as a citizen or officer sees and hears them, read back from the mock pins."""

from __future__ import annotations

import time

import pytest

from xephang.hw import BUZZER_PATTERNS, LED_PATTERNS, Signal, make_pin_factory, pin_history


@pytest.fixture
def factory():
    return make_pin_factory("mock")


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_ready_is_steady_on(factory):
    led = Signal.led(18, pin_factory=factory)
    try:
        led.show("ready")
        assert wait_for(lambda: led.device.is_lit)
        assert pin_history(led.pin) == [False, True]
    finally:
        led.close()


def test_accepted_flashes_then_returns_to_ready(factory):
    led = Signal.led(18, pin_factory=factory)
    try:
        led.show("ready")
        assert wait_for(lambda: led.device.is_lit)
        led.pin.clear_states()
        led.show("accepted")
        assert led.wait_settled(5)
        assert wait_for(lambda: led.current == "ready" and led.device.is_lit)
        # on → off, on, off, on (the flashes) → stays on (ready)
        assert pin_history(led.pin) == [True, False, True, False, True]
    finally:
        led.close()


def test_fault_keeps_blinking_until_recovered(factory):
    led = Signal.led(18, pin_factory=factory)
    try:
        led.show("fault")
        assert wait_for(lambda: len(pin_history(led.pin)) >= 6)
        assert pin_history(led.pin)[:6] == [False, True, False, True, False, True]
        led.show("ready")
        assert led.base == "ready"
        assert wait_for(lambda: led.device.is_lit)
        n = len(led.pin.states)
        time.sleep(0.3)  # a blinking LED would have changed several times by now
        assert len(led.pin.states) == n
    finally:
        led.close()


def test_buzzer_beeps_the_error_once_and_ignores_led_only_names(factory):
    bz = Signal.buzzer(23, pin_factory=factory)
    try:
        bz.show("ready")  # not a buzzer pattern: silence
        bz.show("wait")
        assert bz.wait_settled(5)
        assert pin_history(bz.pin) == [False, True, False, True, False]
        assert BUZZER_PATTERNS["wait"].expected_states() == [True, False, True, False]
    finally:
        bz.close()


def test_every_named_led_pattern_is_playable(factory):
    led = Signal.led(18, pin_factory=factory)
    try:
        for name in LED_PATTERNS:
            led.show(name)
        assert led.wait_settled(5)
    finally:
        led.close()


def test_a_new_base_does_not_cut_the_flash_short(factory):
    led = Signal.led(18, pin_factory=factory)
    try:
        led.show("ready")
        assert wait_for(lambda: led.device.is_lit)
        led.pin.clear_states()
        led.show("accepted")
        led.show("working")  # the daemon's next state arrives while the flash plays
        assert led.base == "working"
        assert led.wait_settled(5)
        assert wait_for(lambda: len(pin_history(led.pin)) >= 7)
        assert pin_history(led.pin)[:5] == [True, False, True, False, True]
        assert led.current == "working"
    finally:
        led.close()
