"""displayd as a daemon on a fake bus: retained hall, live calls, lost links, resync,
technicians' config pushes, and refusing to run a black TV."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from displayd.main import DisplayDaemon, DisplaySettings, ScreenSettings
from displayd.screen import DisplayUnavailable, HeadlessScreen
from tests.displayd.conftest import NOW
from xephang.clock import ManualClock, ScaledClock
from xephang.contract import (
    Alert,
    CallInfo,
    ConfigAck,
    ConfigSet,
    CounterState,
    HallState,
    NodeStatus,
    Resync,
    ServiceState,
    SimPress,
    TicketEvent,
    TicketInfo,
    decode,
    new_request_id,
)
from xephang.daemon import EXIT_CONFIG
from xephang.testing import FakeBroker, FakeBus

SITE = "tuong-linh"


def ticket(number: int, service: str, counter: int | None = None) -> TicketInfo:
    return TicketInfo(id=number, day="2026-11-19", number=number, display=str(number), service=service,
                      issued_at=NOW - 600, state="called" if counter else "waiting", counter=counter)


def hall_state(rev: int = 10) -> HallState:
    return HallState(
        rev=rev, at=NOW, day="2026-11-19", site_name_vi="Trung tâm xã Tường Linh",
        counters=[
            CounterState(number=1, label_vi="Quầy 1", state="open", serving=ticket(1023, "ho-tich", 1), rev=rev),
            CounterState(number=2, label_vi="Quầy 2", state="paused", serving=ticket(3005, "chung-thuc", 2), rev=rev),
            CounterState(number=3, label_vi="Quầy 3", state="open", serving=ticket(2011, "dat-dai", 3), rev=rev),
            CounterState(number=4, label_vi="Quầy 4", state="closed", rev=rev),
        ],
        services=[ServiceState(id="ho-tich", name_vi="Hộ tịch", waiting=5, rev=rev),
                  ServiceState(id="dat-dai", name_vi="Đất đai", waiting=2, rev=rev)],
        last_calls=[CallInfo(rev=9, at=NOW - 60, display="2011", service="dat-dai", counter=3),
                    CallInfo(rev=8, at=NOW - 120, display="1023", service="ho-tich", counter=1)],
    )


def called(rev: int, number: int, counter: int, service: str = "ho-tich", kind: str = "called") -> TicketEvent:
    return TicketEvent(event_id=f"e{rev}", rev=rev, at=NOW, kind=kind, ticket=ticket(number, service, counter), counter=counter)


class Hall:
    """The hub's side of the fake broker: publishes what hubd would."""

    def __init__(self, broker: FakeBroker, tmp: Path) -> None:
        self.bus = FakeBus(broker, site=SITE, node="hub", role="hub", state_dir=tmp / "hub")
        self.bus.start()  # birth: the hub is online
        self.t = self.bus.topics

    def state(self, hs: HallState) -> None:
        self.bus.publish(self.t.state_hall(), hs, retain=True)

    def event(self, ev: TicketEvent) -> None:
        self.bus.publish(self.t.event("ticket", ev.kind), ev)


@pytest.fixture
def display(tmp_path, fake_broker, site_file):
    made: list[DisplayDaemon] = []

    def make(clock=None, **display_opts) -> DisplayDaemon:
        settings = DisplaySettings(site=SITE, node="display-hall", site_file=site_file, state_dir=tmp_path / "state",
                                   sim=True, sim_out=tmp_path / "out", screen=ScreenSettings(size=(1280, 720)),
                                   display=display_opts)
        bus = FakeBus(fake_broker, site=SITE, node="display-hall", role="display",
                      state_dir=settings.state_dir)
        d = DisplayDaemon(settings, bus=bus, clock=clock or ManualClock(NOW))
        d.start()
        made.append(d)
        return d

    yield make
    for d in made:
        d.teardown()
        d.bus.stop()


def pump(d: DisplayDaemon, cond, timeout: float = 3.0) -> bool:
    """Turn the owner loop until ``cond()`` holds (no sleeping: the loop returns at once)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        d.step(timeout=0.01)
        if cond():
            return True
    return False


def shown(d: DisplayDaemon, role: str) -> list[str]:
    return d.last_frame.text(role) if d.last_frame else []


def test_the_board_starts_from_the_retained_hall_and_then_shows_a_live_call(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10 and shown(d, "call.number") == ["2011"])
    assert d.model.highlight(d.clock.now()) is None  # the last call of the snapshot is not replayed
    assert not d.model.stale
    out = tmp_path / "out" / "display-hall"
    assert (out / "latest.png").is_file()
    before = d.screen.frames_written

    hall.event(called(11, 1024, 1))
    assert pump(d, lambda: shown(d, "call.number") == ["1024"])
    assert shown(d, "call.counter") + shown(d, "call.counter_number") == ["đến Quầy", "1"]
    assert d.model.highlight(d.clock.now()) is not None
    assert d.event_to_frame_ms and d.event_to_frame_ms[-1] < 1000
    assert d.screen.frames_written > before  # a PNG for the change


def test_the_demo_board_writes_a_frame_per_call_not_per_change(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    d.screen.calls_only = True  # the demo's XEPHANG_SCREEN__PNG_CALLS_ONLY
    assert pump(d, lambda: d.model.rev == 10 and shown(d, "call.number") == ["2011"])
    before = d.screen.frames_written
    rev = 11
    for n in range(3):
        hall.event(called(rev, 1024 + n, 1 + n))
        rev += 1
        assert pump(d, lambda n=n: shown(d, "call.number") == [str(1024 + n)])
        for k in range(2):  # two more citizens take a ticket: the board changes, no new call
            hall.event(TicketEvent(event_id=f"e{rev}", rev=rev, at=NOW, kind="issued",
                                   ticket=ticket(1030 + 3 * n + k, "ho-tich", None)))
            rev += 1
            assert pump(d, lambda r=rev: d.model.rev == r - 1 and d._drawn_content == (d.model.version, d._config_gen))
    assert d.screen.frames_written - before == 3


def test_a_duplicate_event_does_not_redraw_the_board(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    hall.event(called(11, 1024, 1))
    assert pump(d, lambda: shown(d, "call.number") == ["1024"])
    written = d.screen.frames_written
    hall.event(called(11, 1024, 1))  # QoS 1 redelivery
    pump(d, lambda: False, timeout=0.2)
    assert d.model.stats["duplicate"] == 1
    assert d.screen.frames_written == written


def test_hub_offline_shows_the_banner_and_keeps_the_numbers(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10 and not d.model.stale)
    fake_broker.kill("hub")  # the hub's connection dies: its Will says offline
    assert pump(d, lambda: shown(d, "banner") != [])
    assert shown(d, "banner")[0].startswith("MÁY CHỦ XẾP HÀNG KHÔNG PHẢN HỒI")
    assert "1023" in shown(d, "tile.number")
    # a stale Will from an older hub session must not darken a live hub
    hall.bus._fake_connect()
    assert pump(d, lambda: shown(d, "banner") == [])
    old = NodeStatus(node="hub", online=False, session=0, role="hub")
    hall.bus.publish(hall.t.status("hub"), old, retain=True)
    pump(d, lambda: False, timeout=0.2)
    assert shown(d, "banner") == []


def test_losing_the_broker_shows_the_banner_until_it_is_back(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10)
    fake_broker.go_down()
    assert pump(d, lambda: shown(d, "banner")[:1] == ["MẤT KẾT NỐI MẠNG — số hiển thị có thể chưa cập nhật"])
    fake_broker.go_up()
    assert pump(d, lambda: shown(d, "banner") == [])


def test_a_gap_in_revs_makes_the_board_ask_the_hub_to_resync(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10)
    hall.event(called(13, 1026, 1))  # 11 and 12 lost
    assert pump(d, lambda: d.model.stats["held"] == 1)
    d.clock.advance(1.0)  # past the reorder window
    topic = hall.t.req("resync", "display-hall")
    assert pump(d, lambda: fake_broker.messages(topic) != [])
    req = decode(Resync, fake_broker.messages(topic)[0][1])
    assert req.source == "display-hall" and req.since_rev == 10  # all seen up to 10
    assert shown(d, "call.number") == ["1026"]  # the newest call is shown anyway
    hall.state(hall_state(rev=13))  # the hub republishes its state
    assert pump(d, lambda: d.model.gap is None)


def test_a_technician_pushes_a_theme_and_a_ticker(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10)
    push = ConfigSet(request_id=new_request_id(), source="tech-1", base_rev=0,
                     config={"theme": "light", "ticker": "Chào mừng quý công dân"})
    hall.bus.publish(hall.t.config_set("display-hall"), push)
    assert pump(d, lambda: shown(d, "ticker") == ["Chào mừng quý công dân"])
    acks = [decode(ConfigAck, p) for _, p in fake_broker.messages(hall.t.config_ack("display-hall"))]
    assert [a.status for a in acks] == ["applied"]
    assert d.screen.surface.get_at((2, d.last_frame.regions["header"].bottom + 3))[:3] == (255, 255, 255)
    bad = ConfigSet(request_id=new_request_id(), source="tech-1", config={"theme": "pink"})
    hall.bus.publish(hall.t.config_set("display-hall"), bad)
    assert pump(d, lambda: len(fake_broker.messages(hall.t.config_ack("display-hall"))) == 2)
    assert decode(ConfigAck, fake_broker.messages(hall.t.config_ack("display-hall"))[-1][1]).status == "rejected"
    assert d.renderer.config.theme == "light"
    # every mistake of a push at once: pydantic skips the name and layout checks beside a bad value
    worse = ConfigSet(request_id=new_request_id(), source="tech-1",
                      config={"colours": {"accent": "#zz", "nope": "#ffffff"}, "layout": "counter"})
    hall.bus.publish(hall.t.config_set("display-hall"), worse)
    assert pump(d, lambda: len(fake_broker.messages(hall.t.config_ack("display-hall"))) == 3)
    errors = decode(ConfigAck, fake_broker.messages(hall.t.config_ack("display-hall"))[-1][1]).errors
    assert len(errors) == 3, errors
    assert errors[0].startswith("colours.accent = '#zz': màu '#zz' không có dạng #rrggbb / ")
    assert errors[1].startswith("colours: tên màu không có ['nope'], các tên có: [")
    assert errors[2] == "layout 'counter' cần 'counter' (số quầy) / layout 'counter' needs 'counter' (the counter number)"


def test_snapshot_on_request_writes_a_png(display, fake_broker, tmp_path):
    d = display()
    assert isinstance(d.screen, HeadlessScreen)
    assert pump(d, lambda: d.model.broker_connected and d.last_frame is not None and not d.renderer.needs_full_redraw(d.screen.surface, d.model, d.clock.now()))
    pump(d, lambda: False, timeout=0.1)
    n = d.screen.frames_written
    fake_broker.deliver(d.bus.topics.sim_press("display-hall"), SimPress(button="snapshot").to_json(), False)
    assert pump(d, lambda: d.screen.frames_written == n + 1)


def test_a_simulated_press_delivered_twice_acts_once(display, fake_broker):
    """QoS 1 is at least once: a broker restored from its persistence may deliver a press again."""
    d = display()
    assert pump(d, lambda: d.model.broker_connected and d.last_frame is not None and not d.renderer.needs_full_redraw(d.screen.surface, d.model, d.clock.now()))
    pump(d, lambda: False, timeout=0.1)
    n = d.screen.frames_written
    press = SimPress(button="snapshot").to_json()
    fake_broker.deliver(d.bus.topics.sim_press("display-hall"), press, False)
    fake_broker.deliver(d.bus.topics.sim_press("display-hall"), press, False)  # the same press again
    assert pump(d, lambda: d.sim_presses_repeated == 1)
    pump(d, lambda: False, timeout=0.2)
    assert d.screen.frames_written == n + 1
    fake_broker.deliver(d.bus.topics.sim_press("display-hall"), SimPress(button="snapshot").to_json(), False)
    assert pump(d, lambda: d.screen.frames_written == n + 2)  # a new press (a new id) still acts


def test_outside_sim_mode_an_offscreen_video_driver_is_fatal(tmp_path, site_file):
    env = {
        **os.environ,
        "SDL_VIDEODRIVER": "dummy",  # what SDL falls back to on a Pi without KMS access
        "XEPHANG_SITE_FILE": str(site_file),
        "XEPHANG_STATE_DIR": str(tmp_path),
        "XEPHANG_SIM": "false",
        "XEPHANG_BROKER__PORT": "1",
    }
    proc = subprocess.run([sys.executable, "-m", "displayd.main"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_CONFIG
    assert "'dummy' video driver" in proc.stderr and "kmsdrm" in proc.stderr


def test_in_the_fast_demo_clock_a_call_still_blinks_at_a_human_pace(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display(clock=ScaledClock(origin=NOW, real_origin=time.time(), speed=60.0), highlight_s=12)
    assert pump(d, lambda: d.model.rev == 10)
    hall.event(called(11, 1024, 1))
    assert pump(d, lambda: shown(d, "call.number") == ["1024"])
    h = d.model.highlight(time.monotonic())
    assert h is not None and h.until - h.since == 12  # 12 real seconds, not 12/60
    fx = time.monotonic()
    due = d.renderer.next_redraw_at(d.model, fx, wall=d.clock.now(), wall_rate=60.0)
    assert due - fx <= 0.5 + 1e-6  # the next blink flip, half a real second away


def test_a_burst_of_ten_calls_in_one_go_ends_in_the_right_picture(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10)
    for i in range(10):  # all queued before the board's loop turns once
        hall.event(called(11 + i, 1024 + i, 1 + i % 4))
    assert pump(d, lambda: d.model.rev == 20 and not d.renderer.needs_full_redraw(d.screen.surface, d.model, d._fx()))
    assert shown(d, "call.number") == ["1033"] and shown(d, "call.counter") + shown(d, "call.counter_number") == ["đến Quầy", "2"]
    assert shown(d, "recent.number") == ["1032", "1031", "1030"]
    assert {b.counter: b.text for b in d.last_frame.find("tile.number")} == {1: "1032", 2: "1033", 3: "1030", 4: "1031"}
    assert d.model.gap is None


def test_a_board_without_a_screen_raises_an_alert_for_the_technicians(tmp_path, fake_broker, site_file, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    settings = DisplaySettings(site=SITE, node="display-hall", site_file=site_file, state_dir=tmp_path / "state", sim=False)
    bus = FakeBus(fake_broker, site=SITE, node="display-hall", role="display", state_dir=settings.state_dir)
    d = DisplayDaemon(settings, bus=bus, clock=ManualClock(NOW))
    with pytest.raises(DisplayUnavailable):
        d.start()
    alert = decode(Alert, fake_broker.retained[bus.topics.alert("display-hall", "display-missing")])
    assert alert.severity == "critical" and "kmsdrm" in alert.message_en
    # next start in sim mode (a screen that works): the alert is cleared
    ok = DisplayDaemon(settings.model_copy(update={"sim": True, "sim_out": tmp_path / "out"}),
                       bus=FakeBus(fake_broker, site=SITE, node="display-hall", role="display", state_dir=settings.state_dir),
                       clock=ManualClock(NOW))
    ok.start()
    assert pump(ok, lambda: bus.topics.alert("display-hall", "display-missing") not in fake_broker.retained)
    ok.teardown()
    ok.bus.stop()
