"""displayd against a real mosquitto: retained hall on connect, a live call, a restart of
the board that does not replay it."""

from __future__ import annotations

import time

import pytest

from displayd.main import DisplayDaemon, DisplaySettings, ScreenSettings
from tests.displayd.conftest import NOW
from tests.displayd.test_display_daemon import SITE, called, hall_state
from xephang.bus import Bus
from xephang.clock import ManualClock
from xephang.settings import BrokerSettings

pytestmark = pytest.mark.broker


def test_board_on_a_real_broker_shows_a_call_and_does_not_replay_it_after_a_restart(tmp_path, mosquitto, site_file):
    hub = Bus(site=SITE, node="hub", role="hub", broker=BrokerSettings(port=mosquitto.port), state_dir=tmp_path / "hub")
    hub.start()
    assert hub.wait_connected(10)
    hub.publish(hub.topics.state_hall(), hall_state(rev=10), retain=True)

    def board() -> DisplayDaemon:
        settings = DisplaySettings(site=SITE, node="display-hall", site_file=site_file, state_dir=tmp_path / "state",
                                   sim=True, sim_out=tmp_path / "out", screen=ScreenSettings(size=(1280, 720)),
                                   broker=BrokerSettings(port=mosquitto.port))
        d = DisplayDaemon(settings, clock=ManualClock(NOW))
        d.start()
        return d

    def pump(d: DisplayDaemon, cond, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            d.step(timeout=0.05)
            hub.process(timeout=0)
            if cond():
                return True
        return False

    d = board()
    try:
        assert pump(d, lambda: d.model.rev == 10 and d.model.hub_online and d.last_frame.text("call.number") == ["2011"])
        hub.publish(hub.topics.event("ticket", "called"), called(11, 1024, 1))
        assert pump(d, lambda: d.last_frame.text("call.number") == ["1024"])
        assert d.model.highlight(d.clock.now()) is not None
        # the hub republishes its state after the call, as hubd does
        hs = hall_state(rev=11)
        hs.last_calls.insert(0, hs.last_calls[0].model_copy(update={"rev": 11, "display": "1024", "service": "ho-tich", "counter": 1}))
        hub.publish(hub.topics.state_hall(), hs, retain=True)
        assert pump(d, lambda: d.model.rev == 11)
    finally:
        d.teardown()
        d.bus.stop()

    d = board()  # the TV's Pi reboots
    try:
        assert pump(d, lambda: d.model.rev == 11 and d.last_frame.text("call.number") == ["1024"])
        assert d.model.highlight(d.clock.now()) is None  # shown, not replayed as new
    finally:
        d.teardown()
        d.bus.stop()
        hub.stop()
