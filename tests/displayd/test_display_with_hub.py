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


def start_board(tmp_path, site_file, broker: BrokerSettings, size: tuple[int, int]) -> DisplayDaemon:
    """The hall board in sim mode (PNG frames), its state kept in ``tmp_path/display`` across restarts."""
    settings = DisplaySettings(site="tuong-linh", node="display-hall", site_file=site_file,
                               state_dir=tmp_path / "display", sim=True, sim_out=tmp_path / "out",
                               screen=ScreenSettings(size=size), broker=broker)
    d = DisplayDaemon(settings)
    d.start()
    return d


def pump(d: DisplayDaemon, cond, timeout: float = 10.0) -> bool:
    """Run the board's owner loop until ``cond()`` holds (or ``timeout``)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        d.step(timeout=0.05)
        if cond():
            return True
    return False


def test_officer_presses_next_and_the_board_shows_the_ticket(tmp_path, mosquitto, site_file):
    broker = BrokerSettings(port=mosquitto.port)
    with hub_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file):
        def board() -> DisplayDaemon:
            return start_board(tmp_path, site_file, broker, (1280, 720))

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
            # the hub's wait for the next land ticket reaches the board's waiting bar
            assert pump(d, lambda: "dat-dai" in d.model.wait_ranges and d.last_frame.find("waiting.wait"))
            low, high = d.model.wait_ranges["dat-dai"]
            assert high is None or low < high
            reply = counter.request_sync(CallNext(request_id=new_request_id(), source="counter-3", counter=3))
            assert reply is not None and reply.status == "ok", reply
            assert pump(d, lambda: d.last_frame.text("call.number") == [number])
            assert d.last_frame.text("call.counter") + d.last_frame.text("call.counter_number") == ["đến Quầy", "3"]
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


def test_a_board_down_while_tickets_are_called_shows_the_final_picture_and_replays_none_as_new(
        tmp_path, mosquitto, site_file):
    """The board keeps a persistent MQTT session, so the broker queues every event published
    while it is down and delivers them all at reconnect, before the retained hall state."""
    broker = BrokerSettings(port=mosquitto.port)
    with hub_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file):
        def board() -> DisplayDaemon:
            return start_board(tmp_path, site_file, broker, (1920, 1080))

        dispenser = Bus(site="tuong-linh", node="dispenser-1", role="dispenser", broker=broker, state_dir=tmp_path / "disp")
        counters = {n: Bus(site="tuong-linh", node=f"counter-{n}", role="counter", broker=broker,
                           state_dir=tmp_path / f"ctr{n}") for n in (1, 2, 3)}
        for b in (dispenser, *counters.values()):
            b.start()
            assert b.wait_connected(10)

        def issue(service: str) -> str:
            reply = dispenser.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service=service))
            assert reply is not None and reply.status == "ok", reply
            return reply.data["ticket"]["display"]

        def call(n: int) -> str:
            reply = counters[n].request_sync(CallNext(request_id=new_request_id(), source=f"counter-{n}", counter=n))
            assert reply is not None and reply.status == "ok", reply
            return reply.data["ticket"]["display"]

        d = board()
        try:
            assert pump(d, lambda: d.model.synced and d.model.hub_online and not d.model.stale)
        finally:
            d.teardown()
            d.bus.stop()  # the TV's Pi goes down; the broker keeps its session and queues for it

        issued = [issue(s) for s in ("ho-tich", "dat-dai", "ho-tich", "chung-thuc", "ho-tich")]
        called = {1: call(1), 2: call(2), 3: call(3)}  # counters serve any service: oldest first
        called[1] = call(1)  # counter 1 finishes and calls again: its first ticket leaves the board
        last = called[1]

        d = board()  # the Pi comes back
        try:
            assert pump(d, lambda: d.model.synced and d.model.gap is None
                        and d.last_frame.text("call.number") == [last])
            d.step(timeout=0.3)  # let any late queued event land
            d.draw()
            # the queued events were delivered (not a board that simply saw nothing) …
            queued = d.model.stats["pending"] + d.model.stats["duplicate"] + d.model.stats["applied"] - 1
            assert queued >= 9, d.model.stats
            # … and none of them is shown as a new call
            assert d.model.highlight(d._fx()) is None
            assert d.renderer.blink_on(d.model, d._fx()) is None  # the call panel does not blink
            tiles = {b.counter: b.text for b in d.last_frame.find("tile.number")}
            assert (tiles[1], tiles[2], tiles[3]) == (called[1], called[2], called[3])
            assert [c.number for c in d.model.last_calls][:4] == [called[1], called[3], called[2], issued[0]]
            assert sum(d.model.waiting.values()) == len(issued) - 4

            # a call made now that the board is back is the one highlighted
            fresh = call(2)
            assert pump(d, lambda: d.last_frame.text("call.number") == [fresh])
            h = d.model.highlight(d._fx())
            assert h is not None and h.call.number == fresh and h.call.counter == 2
            assert d.renderer.blink_on(d.model, d._fx()) is not None
        finally:
            d.teardown()
            d.bus.stop()
            dispenser.stop()
            for b in counters.values():
                b.stop()


def test_a_service_removed_from_the_site_leaves_the_board_at_once(tmp_path, mosquitto, site_file):
    """A live site change that removed van-hoa-xa-hoi left its bar on the board ("0") until displayd
    was restarted: the hub now clears the service's retained state, and the board drops it."""
    from hubd.testing import running_hub
    from xephang.settings import load_site
    from xephang_ops.tools import BrokerTarget, ToolClient, push_config

    broker = BrokerSettings(port=mosquitto.port)
    with running_hub(mosquitto.port, tmp_path / "hub", site_file):
        d = start_board(tmp_path, site_file, broker, (1280, 720))
        try:
            def names() -> list[str]:
                return d.last_frame.text("waiting.service") if d.last_frame else []

            assert pump(d, lambda: d.model.synced and "van-hoa-xa-hoi" in d.model.waiting)
            assert pump(d, lambda: len(names()) == 4), names()
            site = load_site(site_file).model_dump(mode="json")
            services = [s for s in site["services"] if s["id"] != "van-hoa-xa-hoi"]
            counters = [{**c, "services": [s for s in c["services"] if s != "van-hoa-xa-hoi"]} for c in site["counters"]]
            with ToolClient(BrokerTarget(site="tuong-linh", port=mosquitto.port, username="tech")).connect() as t:
                res = push_config(t, "hub", {"services": services, "counters": counters})
            assert res.ack is not None and res.ack.status == "applied", res
            assert pump(d, lambda: "van-hoa-xa-hoi" not in d.model.waiting and len(names()) == 3), names()
        finally:
            d.teardown()
            d.bus.stop()
