"""The hall board against text that SDL cannot draw: a technician's push (or a stolen technician
laptop) and names in the hub's state. The board must refuse the push with its reason and keep
drawing; a name it cannot draw is shown without the offending characters, never fatal.

Before: a NUL in a pushed ticker or centre name was applied and saved, and the next frame raised
ValueError out of the owner loop (the daemon ended, and at every start after it, on the saved
config); a text of zero-width characters only raised pygame.error("Text has zero width") the
same way, from a push or from a counter label in the hub's retained hall state."""

from __future__ import annotations

from pathlib import Path

import pytest

from displayd.main import DisplayDaemon, DisplaySettings, ScreenSettings
from tests.displayd import test_display_daemon as daemon_tests
from tests.displayd.conftest import NOW
from tests.displayd.test_display_daemon import SITE, Hall, called, hall_state, pump, shown
from xephang.clock import ManualClock
from xephang.contract import CallInfo, ConfigAck, ConfigSet, CounterState, decode, new_request_id
from xephang.testing import FakeBroker, FakeBus

display = daemon_tests.display  # the board daemon on the fake bus, with the example site


def push(hall: Hall, broker: FakeBroker, d: DisplayDaemon, config: dict) -> ConfigAck:
    topic = hall.t.config_ack("display-hall")
    n = len(broker.messages(topic))
    hall.bus.publish(hall.t.config_set("display-hall"), ConfigSet(request_id=new_request_id(), source="tech-1",
                                                                  config=config))
    assert pump(d, lambda: len(broker.messages(topic)) > n)
    return decode(ConfigAck, broker.messages(topic)[-1][1])


@pytest.mark.parametrize("option", ["ticker", "centre_name"])
@pytest.mark.parametrize("text", ["Giờ làm việc\x00 7:30", "hai\ndòng", "\x1b[2J", "\u202eđảo ngược"])
def test_a_pushed_text_with_a_control_character_is_refused_and_the_board_goes_on(display, fake_broker, tmp_path,
                                                                                 option, text):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10)
    ack = push(hall, fake_broker, d, {option: text})
    assert ack.status == "rejected" and option in ack.errors[0] and "one line" in ack.errors[0]
    assert d.node_config.rev == 0 and getattr(d.board_config, option) == ""
    hall.event(called(11, 1024, 1))
    assert pump(d, lambda: shown(d, "call.number") == ["1024"])  # the board still draws
    # nothing was saved: a restart comes up on the last good config
    assert not (tmp_path / "state" / "display-hall.config.json").exists()


def test_a_pushed_ticker_of_zero_width_characters_is_drawn_as_nothing(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10)
    assert push(hall, fake_broker, d, {"ticker": "\u200b\ufeff", "centre_name": "\u200b"}).status == "applied"
    hall.event(called(11, 1024, 1))
    assert pump(d, lambda: shown(d, "call.number") == ["1024"])
    d.clock.advance(3)  # the ticker moves on: more frames of it
    frames = d.frames
    assert pump(d, lambda: d.frames > frames)


def test_names_in_the_hubs_state_that_sdl_cannot_draw_never_stop_the_board(fake_broker, tmp_path):
    """No site file: the board takes the centre's, counters' and services' names from the hub."""
    hall = Hall(fake_broker, tmp_path)
    hs = hall_state(rev=10)
    hs.site_name_vi = "Trung tâm\x00 xã"
    hs.counters.append(CounterState(number=7, label_vi="\u200b", state="open", rev=10))  # zero width
    hs.services[0].name_vi = "Hộ tịch\x1b"
    hs.last_calls.insert(0, CallInfo(rev=9, at=NOW - 30, display="20\x0011", service="dat-dai", counter=3))
    hall.bus.publish(hall.t.state_hall(), hs.model_dump_json().encode(), retain=True)
    settings = DisplaySettings(site=SITE, node="display-hall", state_dir=tmp_path / "state", sim=True,
                               sim_out=tmp_path / "out", screen=ScreenSettings(size=(1280, 720)))
    d = DisplayDaemon(settings, bus=FakeBus(fake_broker, site=SITE, node="display-hall", role="display",
                                            state_dir=settings.state_dir), clock=ManualClock(NOW))
    d.start()
    try:
        assert pump(d, lambda: d.model.rev == 10 and d.last_frame is not None and shown(d, "header.name") != [])
        assert shown(d, "header.name") == ["Trung tâm xã"]  # drawn without the NUL
        hall.event(called(11, 1024, 7))
        assert pump(d, lambda: shown(d, "call.number") == ["1024"])
        assert Path(tmp_path / "out" / "display-hall" / "latest.png").is_file()
    finally:
        d.teardown()
        d.bus.stop()
