"""Keys as a person uses them: presses, bouncing contacts, a child drumming, long holds."""

from __future__ import annotations

import queue

import pytest

from xephang.clock import ManualClock
from xephang.hw import Key, KeyPress, KeyTiming, RateLimit, make_pin_factory


@pytest.fixture
def factory():
    return make_pin_factory("mock")


@pytest.fixture
def clock():
    return ManualClock(start=1000.0)


def drain(q: queue.Queue) -> list[KeyPress]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def tap(pin, clock, down_s=0.12, after_s=1.0):
    pin.drive_low()
    clock.advance(down_s)
    pin.drive_high()
    clock.advance(after_s)


def test_one_press_gives_one_short_press_at_the_leading_edge(factory, clock):
    events: queue.Queue[KeyPress] = queue.Queue()
    with Key("ho-tich", 17, events=events, pin_factory=factory, clock=clock.monotonic) as key:
        key.pin.drive_low()
        assert events.get_nowait() == KeyPress("ho-tich", "short", 1000.0)
        clock.advance(0.2)
        key.pin.drive_high()
        assert drain(events) == []


def test_a_bouncing_contact_is_one_press(factory, clock):
    events: queue.Queue[KeyPress] = queue.Queue()
    with Key("ho-tich", 17, events=events, pin_factory=factory, clock=clock.monotonic) as key:
        for _ in range(4):  # contact chatter within a few ms
            key.pin.drive_low()
            clock.advance(0.002)
            key.pin.drive_high()
            clock.advance(0.002)
        key.pin.drive_low()
        clock.advance(0.2)
        key.pin.drive_high()  # release ...
        clock.advance(0.003)
        key.pin.drive_low()  # ... with bounce
        clock.advance(0.003)
        key.pin.drive_high()
        assert [e.kind for e in drain(events)] == ["short"]
        assert key.stats.bounces >= 4


def test_each_real_press_counts_but_drumming_is_bounded(factory, clock):
    events: queue.Queue[KeyPress] = queue.Queue()
    timing = KeyTiming(double_press_s=0.3, max_presses=3, per_s=10.0)
    with Key("dat-dai", 27, events=events, timing=timing, pin_factory=factory, clock=clock.monotonic) as key:
        for _ in range(2):  # two deliberate presses a second apart: two tickets
            tap(key.pin, clock)
        assert len(drain(events)) == 2
        for _ in range(6):  # a child drumming every 0.1 s: one burst, one press
            tap(key.pin, clock, down_s=0.05, after_s=0.05)
        assert len(drain(events)) == 1
        assert key.stats.double_presses == 5
        clock.advance(1.0)
        tap(key.pin, clock)  # fourth press within 10 s: over the rate bound
        assert drain(events) == []
        assert key.stats.rate_limited == 1
        clock.advance(10.0)
        tap(key.pin, clock)
        assert len(drain(events)) == 1


def test_hold_key_reports_short_on_release_and_long_by_the_clock(factory, clock):
    events: queue.Queue[KeyPress] = queue.Queue()
    timing = KeyTiming(hold_s=30.0)  # gpiozero's real-time held thread never fires in this test
    with Key("tech", 22, events=events, timing=timing, pin_factory=factory, clock=clock.monotonic) as key:
        key.pin.drive_low()
        assert drain(events) == []  # undecided while down
        clock.advance(0.4)
        key.pin.drive_high()
        assert [e.kind for e in drain(events)] == ["short"]
        clock.advance(2.0)
        key.pin.drive_low()
        clock.advance(31.0)
        key.pin.drive_high()
        (press,) = drain(events)
        assert press.kind == "long" and press.at == pytest.approx(1002.4)


def test_long_press_is_reported_while_still_held(factory):
    events: queue.Queue[KeyPress] = queue.Queue()
    with Key("tech", 22, events=events, timing=KeyTiming(hold_s=0.1), pin_factory=factory) as key:
        key.pin.drive_low()
        press = events.get(timeout=5)  # gpiozero's held thread, real time
        assert press.kind == "long"
        key.pin.drive_high()
        assert drain(events) == []  # no second report at release


def test_simulated_press_drives_the_mock_pin(factory):
    events: queue.Queue[KeyPress] = queue.Queue()
    with Key("tech", 5, events=events, timing=KeyTiming(hold_s=0.05), pin_factory=factory) as key:
        key.simulate_press(hold_s=0.3).join(timeout=5)
        assert [e.kind for e in drain(events)] == ["long"]


def test_rate_limit_window_slides():
    rl = RateLimit(max_events=2, per_s=1.0)
    assert rl.allow(0.0) and rl.allow(0.5)
    assert not rl.allow(0.9)
    assert rl.allow(1.0)


def test_unknown_pin_factory_is_a_config_error():
    from xephang.hw.factory import PinFactoryError

    with pytest.raises(PinFactoryError):
        make_pin_factory("banana")
    assert make_pin_factory("default") is None


def test_the_factory_is_per_device_and_the_global_one_is_untouched(factory):
    from gpiozero import Device

    before = Device.pin_factory
    events: queue.Queue[KeyPress] = queue.Queue()
    with Key("a", 17, events=events, pin_factory=factory) as key:
        assert key.button.pin_factory is factory
    assert Device.pin_factory is before
