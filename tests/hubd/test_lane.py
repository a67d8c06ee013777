"""The hub's reading connections (hubd/lane.py) with a fake bus: one copy of each publish is handled,
a retry is answered again, every reply goes the main way, with the lane down nothing changes, and
what the inbox brings is taken as the main connection's subscription took it. Through a real broker
and a real flood: tests/tools/test_hub_lane.py; figures: bench/request_flood.py."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from hubd.lane import LaneInbound, Twins, covered, lane_filters
from hubd.main import HubConfig, HubDaemon, HubSettings
from xephang.bus import Inbound
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import CallNext, IssueTicket, Topics, new_request_id
from xephang.reader import ReaderStats
from xephang.testing import FakeBus

SITE = "tuong-linh"
T = Topics(SITE)
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp()


class FakeLane:
    """What the hub asks of its lane: whether it is connected, and its figures for the health."""

    def __init__(self) -> None:
        self.connected = True
        self.gave_up = False
        self.stats = ReaderStats()

    def stop(self) -> None:
        pass


@pytest.fixture
def hub(tmp_path, site_file, fake_broker):
    pw = tmp_path / "hub-lane.pw"
    pw.write_text("secret\n")
    settings = HubSettings(site=SITE, node="hub", site_file=site_file, state_dir=tmp_path / "state",
                           hub=HubConfig(lane_password_file=pw))
    h = HubDaemon(settings, bus=FakeBus(fake_broker, site=SITE, node="hub", role="hub", state_dir=tmp_path / "state"),
                  clock=ManualClock(MONDAY_9AM))
    h.start()
    assert h.bus.wait_connected(5)
    h.lane = FakeLane()  # type: ignore[assignment]  # a FakeBus hub starts no real one
    h.step(0)
    yield h
    h.bus.stop()
    h.ledger.close()


def _issue(rid: str | None = None) -> tuple[str, bytes]:
    req = IssueTicket(request_id=rid or new_request_id(), source="dispenser-1", service="ho-tich")
    return T.req("issue-ticket", "dispenser-1"), req.to_json()


def _via_lane(hub: HubDaemon, topic: str, payload: bytes) -> None:
    hub.bus.call_soon(lambda: hub._batch.append(LaneInbound(topic, payload, False)))


def _replies(fake_broker, node: str = "dispenser-1") -> list[dict]:
    return [json.loads(p) for _, p in fake_broker.messages(T.reply(node))]


def test_each_publish_is_handled_once_whichever_connection_brings_it_first(hub, fake_broker):
    topic, payload = _issue("dispenser-0001")
    _via_lane(hub, topic, payload)  # the lane's copy first (the other waits behind a flood) …
    hub.step(0)
    fake_broker.deliver(topic, payload, False, "dispenser-1")  # … then its twin
    hub.step(0)
    assert len(hub.engine.tickets) == 1
    # answered once, the main way (the readers publish nothing): the twin is dropped silently
    assert [r["request_id"] for r in _replies(fake_broker)] == ["dispenser-0001"]
    assert hub.twins.twins == 1
    # the board heard nothing and asks again (a new publish, both ways): answered once more, same ticket
    fake_broker.deliver(topic, payload, False, "dispenser-1")  # the other copy first this time
    hub.step(0)
    _via_lane(hub, topic, payload)
    hub.step(0)
    replies = _replies(fake_broker)
    assert len(replies) == 2 and replies[0]["data"] == replies[1]["data"] and len(hub.engine.tickets) == 1
    assert hub.twins.twins == 2


def test_with_the_lane_down_every_copy_comes_the_other_way_and_is_answered(hub, fake_broker):
    hub.lane.connected = False
    for _ in range(3):
        topic, payload = _issue()
        fake_broker.deliver(topic, payload, False, "dispenser-1")
        hub.step(0)
    assert len(hub.engine.tickets) == 3 and len(fake_broker.messages(T.reply("dispenser-1"))) == 3
    assert hub.twins.twins == 0


def test_a_counters_request_is_the_main_connections_alone(hub, fake_broker):
    """The lane does not read counters' requests (their flood is what it stands apart from): never a
    twin."""
    req = CallNext(request_id=new_request_id(), source="counter-1", counter=1)
    topic = T.req("call-next", "counter-1")
    assert not covered("call-next", "counter-1") and covered("issue-ticket", "dispenser-1") and covered("report", "web")
    for _ in range(2):  # the same publish twice on the main connection: a retry, answered twice
        fake_broker.deliver(topic, req.to_json(), False, "counter-1")
        hub.step(0)
    assert len(fake_broker.messages(T.reply("counter-1"))) == 2 and hub.twins.twins == 0


def test_what_the_inbox_brings_is_taken_as_the_main_subscription_took_it(hub, fake_broker):
    """The inbox reads every request (the main connection then reads none): each is counted received
    and handled; a retained one is dropped and counted ``retained-command``, as the bus does; the
    reply goes the main way."""
    before = hub.bus.stats.received
    topic, payload = _issue("dispenser-0002")
    hub._inbox_in(Inbound(topic, payload, True))  # retained: a replay nobody meant
    hub._inbox_in(Inbound(topic, payload, False))
    hub.step(0)
    assert hub.bus.stats.received == before + 2 and hub.bus.stats.dropped_by_code["retained-command"] == 1
    assert len(hub.engine.tickets) == 1 and [r["request_id"] for r in _replies(fake_broker)] == ["dispenser-0002"]
    _via_lane(hub, topic, payload)  # its twin through the lane
    hub.step(0)
    assert len(_replies(fake_broker)) == 1 and hub.twins.twins == 1


def test_an_unreadable_request_read_twice_is_answered_and_said_once(hub, fake_broker, caplog):
    """A dispenser's request the contract refuses, read by the inbox and the lane: two replies and two
    warnings before (a drill); its twin is dropped like a readable one's."""
    topic, payload = _issue("dispenser-0003")
    bad = payload.replace(b'"ho-tich"', b'"Ho tich!"')
    hub._inbox_in(Inbound(topic, bad, False))
    _via_lane(hub, topic, bad)
    hub.step(0)
    replies = _replies(fake_broker)
    assert [r["request_id"] for r in replies] == ["dispenser-0003"] and replies[0]["error"]["code"] == "invalid"
    assert caplog.text.count("bad issue-ticket request 'dispenser-0003'") == 1 and hub.twins.twins == 1


def test_a_hub_without_a_real_broker_reads_requests_on_its_main_connection(hub):
    """Readers are started only with a bus of the hub's own (a fake bus has no broker to give them):
    the main connection reads the requests, and the health says so."""
    assert hub.inbox is None and hub._requests_on_main
    assert hub.health_details()["requests_on_main"] is True


def test_the_lane_reads_the_dispensers_and_the_web_daemons_requests_only():
    assert lane_filters(T) == [f"{T.root}/req/hub/issue-ticket/+", f"{T.root}/req/hub/void-ticket/+",
                               f"{T.root}/req/hub/+/web"]


def test_twins_forget_the_oldest_ids_past_their_memory():
    tw = Twins(memory=3)
    for rid in ("a", "b", "c", "d"):
        assert not tw.is_twin(rid, via="hub-lane")
    assert tw.is_twin("d", via="")  # remembered
    assert not tw.is_twin("a", via="")  # forgotten: handled (answered from the stored reply)


def test_a_counters_lane_makes_its_requests_twins_too(hub, fake_broker):
    """With ``hub-counter-2`` (hub.lanes_dir) counter 2's requests come twice: handled once."""
    hub.board_lanes["counter-2"] = FakeLane()  # type: ignore[assignment]
    req = CallNext(request_id="counter-2-0001", source="counter-2", counter=2)
    topic = T.req("call-next", "counter-2")
    hub.bus.call_soon(lambda: hub._batch.append(LaneInbound(topic, req.to_json(), False, "hub-counter-2")))
    hub.step(0)
    fake_broker.deliver(topic, req.to_json(), False, "counter-2")
    hub.step(0)
    assert len(_replies(fake_broker, "counter-2")) == 1 and hub.twins.twins == 1
    assert "counter-2" in hub.health_details()["board_lanes"]


def test_a_boards_burst_read_twice_is_its_whole_burst_not_half(hub, fake_broker):
    """Counter 2's requests come through its lane and the inbox: the flood guard counts each
    connection's copies apart, so ``BOARD_BURST`` requests sent at once are each answered (counted
    once per sender, the twins spent the bucket and half of them went unanswered as a flood); past
    it, both copies of the rest are dropped unread."""
    from xephang.contract import BOARD_BURST, Pause

    hub.board_lanes["counter-2"] = FakeLane()  # type: ignore[assignment]
    topic = T.req("pause", "counter-2")
    extra = 20
    for i in range(BOARD_BURST + extra):
        payload = Pause(request_id=f"counter-2-{i:04d}", source="counter-2", counter=2).to_json()
        hub.bus.call_soon(lambda p=payload: hub._batch.append(LaneInbound(topic, p, False, "hub-counter-2")))
        fake_broker.deliver(topic, payload, False, "counter-2")
        if i % 50 == 49:
            hub.step(0)
    for _ in range(100):  # a turn runs a quarter second at most (TURN_BUDGET_S): turn until none is left
        hub.step(0)
        if not hub._batch:
            break
    hub.step(0)
    answered = {r["request_id"] for r in _replies(fake_broker, "counter-2")}
    flooded = hub.health_details()["flooded"].get("counter-2", 0)
    # each request answered once (paused, then already paused or rate-limited: an answer all the same);
    # the bucket refills 20 a second while the test runs
    assert {f"counter-2-{i:04d}" for i in range(BOARD_BURST)} <= answered
    assert len(_replies(fake_broker, "counter-2")) == len(answered)
    # the rest: both copies dropped; but a request the refill let through after one of its copies was
    # dropped (on a loaded machine, seconds between the copies) is answered with one copy flooded
    unanswered, refilled = BOARD_BURST + extra - len(answered), len(answered) - BOARD_BURST
    assert 2 * unanswered <= flooded <= 2 * unanswered + refilled


def test_a_lane_passes_on_a_boards_burst_and_pace_and_leaves_the_rest_to_the_inbox():
    """A flooding board costs the hub one copy of its flood, not two: past ``BOARD_BURST`` a lane drops
    what that sender sends (the inbox's copy still reaches the hub's flood guard); other senders pass."""
    from types import SimpleNamespace

    from hubd.lane import board_lane
    from xephang.contract import BOARD_BURST
    from xephang.settings import BrokerSettings

    got: list = []
    lane = board_lane(BrokerSettings(), T, got.append, "counter-1", password_file=Path("/nonexistent"))
    msg = SimpleNamespace(topic=T.req("pause", "counter-1"), payload=b"{}", retain=False)
    for _ in range(BOARD_BURST + 50):
        lane._on_message(None, None, msg)
    assert len(got) == BOARD_BURST and lane.stats.paced == 50 and got[0].via == "hub-counter-1"
    lane._on_message(None, None, SimpleNamespace(topic=T.req("issue-ticket", "dispenser-1"), payload=b"{}",
                                                 retain=False))
    assert len(got) == BOARD_BURST + 1


def test_three_connections_one_publish_handled_once_and_a_retry_once_more():
    """A dispenser's ticket read by the inbox, ``hub-lane`` and ``hub-dispenser-1`` alike: one of the
    three copies is handled, in whatever order they come; the board's retry once more."""
    tw = Twins()
    assert [tw.is_twin("r", v) for v in ("hub-dispenser-1", "", "hub-lane")] == [False, True, True]
    assert [tw.is_twin("r", v) for v in ("", "hub-lane", "hub-dispenser-1")] == [False, True, True]
    assert tw.twins == 4


def test_which_accounts_are_lanes_of_which_board():
    from hubd.lane import lane_board

    assert [lane_board(n) for n in ("hub-counter-2", "hub-dispenser-1", "hub-web", "hub-inbox", "hub-lane", "hub",
                                    "hub-display-hall", "counter-2", "hub-counter-x", "hub-tech", "hub-tech-lan",
                                    "hub-techx", "hub-web-watch", "hub-web-2-watch", "hub-web-2")] == \
        ["counter-2", "dispenser-1", "web", None, None, None, "display-hall", None, None, "tech", "tech-lan", None,
         None, None, "web-2"]


def test_broker_config_makes_a_lane_account_for_exactly_the_boards_the_hub_reads_apart(site):
    """One list (hubd/lane.py's LANE_BOARD): every board and technician gets a ``hub-<node>`` account the
    hub starts a lane for, nothing else does (webd's reading connection asks nothing)."""
    from hubd.lane import lane_board
    from xephang_ops.brokerconf import site_accounts

    accounts = site_accounts(site, dispensers=2, displays=("hall", "b"), announcers=("hall",),
                             technicians=("tech", "tech-lan"), web=("web", "web-2"), extra=("counter-x",))
    lanes = {a.username for a in accounts if a.role == "board-lane"}
    asking = {a.username for a in accounts if a.role in ("dispenser", "counter", "display", "announcer", "web", "tech")}
    assert lanes == {f"hub-{n}" for n in asking if n != "counter-x"}
    assert {lane_board(n) for n in lanes} == asking - {"counter-x"}
    assert {"web-watch", "web-2-watch"} <= {a.username for a in accounts} and not {"hub-web-watch", "hub-counter-x"} & lanes
