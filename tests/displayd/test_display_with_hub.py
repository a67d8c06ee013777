"""The board with the real hub on a real mosquitto: a citizen takes a ticket, an officer
presses Next, the board shows it; the board reboots and does not replay it."""

from __future__ import annotations

import time

import pytest

from displayd.main import DisplayDaemon, DisplaySettings, ScreenSettings
from xephang.bus import Bus
from xephang.contract import CallNext, IssueTicket, new_request_id
from xephang.settings import BrokerSettings

pytestmark = pytest.mark.broker
hub_testing = pytest.importorskip("hubd.testing")


def test_officer_presses_next_and_the_board_shows_the_ticket(tmp_path, mosquitto, site_file):
    broker = BrokerSettings(port=mosquitto.port)
    with hub_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file):
        def board() -> DisplayDaemon:
            settings = DisplaySettings(site="tuong-linh", node="display-hall", site_file=site_file,
                                       state_dir=tmp_path / "display", sim=True, sim_out=tmp_path / "out",
                                       screen=ScreenSettings(size=(1280, 720)), broker=broker)
            d = DisplayDaemon(settings)
            d.start()
            return d

        def pump(d: DisplayDaemon, cond, timeout: float = 10.0) -> bool:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                d.step(timeout=0.05)
                if cond():
                    return True
            return False

        dispenser = Bus(site="tuong-linh", node="dispenser-1", role="dispenser", broker=broker, state_dir=tmp_path / "disp")
        counter = Bus(site="tuong-linh", node="counter-3", role="counter", broker=broker, state_dir=tmp_path / "ctr")
        for b in (dispenser, counter):
            b.start()
            assert b.wait_connected(10)

        d = board()
        try:
            assert pump(d, lambda: d.model.synced and d.model.hub_online and not d.model.stale)
            reply = dispenser.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="dat-dai"))
            assert reply is not None and reply.status == "ok", reply
            number = reply.data["ticket"]["display"]
            assert pump(d, lambda: d.model.waiting.get("dat-dai") == 1)
            reply = counter.request_sync(CallNext(request_id=new_request_id(), source="counter-3", counter=3))
            assert reply is not None and reply.status == "ok", reply
            assert pump(d, lambda: d.last_frame.text("call.number") == [number])
            assert d.last_frame.text("call.counter") == ["đến Quầy 3"]
            assert d.model.highlight(d._fx()) is not None
            assert pump(d, lambda: d.model.waiting.get("dat-dai") == 0)
            assert d.model.gap is None
        finally:
            d.teardown()
            d.bus.stop()

        d = board()  # the TV's Pi reboots
        try:
            assert pump(d, lambda: d.model.synced and d.last_frame.text("call.number") == [number])
            assert d.model.highlight(d._fx()) is None  # shown, not replayed as new
            assert {b.counter: b.text for b in d.last_frame.find("tile.number")}[3] == number
        finally:
            d.teardown()
            d.bus.stop()
            dispenser.stop()
            counter.stop()
