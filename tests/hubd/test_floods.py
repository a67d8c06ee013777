"""Floods from one board's password, and a broker that cannot keep up with them.

Found from outside: a counter's password looping pause/resume got 1,270 requests a second
answered `ok`, each an event and a stored request (the ledger grew 1.9 KB a press), and paho's
queue filled. Now a counter's keys are paced (``counter_burst``, ``counter_per_minute``), a board's
requests of any kind beyond ``BOARD_PER_MINUTE`` are dropped unread (``flood``), and when paho's
queue fills anyway (a slow link, a swamped broker) the hub loses no event (it had dropped 3,572
with nothing counted): an event paho did not take stays in the ledger's outbox and goes out later
in rev order, newer events wait behind it, and no refused message's id is ever waited on (paho
hands out an id even for a message it did not keep).
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from hubd.main import OUTBOX_WINDOW, HubConfig, HubDaemon
from xephang.bus import MAX_QUEUED, QUEUE_FULL, Bus
from xephang.clock import VN_TZ
from xephang.contract import BOARD_BURST, COUNTER_BURST, CallNext, Pause, Rate, Resume, Topics, new_request_id
from xephang.settings import BrokerSettings
from xephang_ops.mosquitto import free_port

SITE = "tuong-linh"
T = Topics(SITE)
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp()


def _pause_and_resume(fake_broker, n: int) -> None:
    """``n`` requests that each make one event: counter 1 paused and resumed by turns (the flood
    that was found; a technician's tool, which the hub does not pace)."""
    for i in range(n):
        req = (Resume if i % 2 else Pause)(request_id=new_request_id(), source="tech", reply_to="", counter=1)
        fake_broker.deliver(T.req(req.ACTION), req.to_json(), False, "tech")


def _turn_until(hub: HubDaemon, done, turns: int = 400) -> bool:
    for _ in range(turns):
        hub.step(0)
        if done():
            return True
    return False


def _event_revs(fake_broker) -> list[int]:
    return [json.loads(p)["rev"] for _, p in fake_broker.messages(f"{T.root}/event/#")]


def test_a_full_paho_queue_loses_no_event_and_they_go_out_in_order(hub, fake_broker):
    rev0 = hub.engine.rev
    hub.bus.hold(limit=300)  # the broker stops acknowledging; paho keeps 300 messages, then refuses
    _pause_and_resume(fake_broker, 1500)
    assert _turn_until(hub, lambda: hub.engine.rev >= rev0 + 1500)
    assert hub.bus.stats.publish_failed["queue-full"] > 0  # counted, not silent
    assert hub.health_details()["outbox_behind"] is True
    assert hub.health_details()["outbox"] >= 1500 - 300  # what paho did not take waits in the ledger
    # the broker catches up: everything held goes, then the outbox drains through the window
    hub.bus.release()
    want = list(range(rev0 + 1, rev0 + 1501))
    assert _turn_until(hub, lambda: _event_revs(fake_broker) == want and not hub._outbox_behind), \
        f"{len(_event_revs(fake_broker))} of 1500 events out; missing {sorted(set(want) - set(_event_revs(fake_broker)))[:10]}"
    assert _turn_until(hub, lambda: hub._flush_acks() or hub.health_details()["outbox"] == 0)  # every one acknowledged
    # and new events go straight out again
    _pause_and_resume(fake_broker, 3)
    assert _turn_until(hub, lambda: _event_revs(fake_broker)[-3:] == [rev0 + 1501, rev0 + 1502, rev0 + 1503])


def test_the_hub_never_hands_paho_more_events_than_its_window(hub, fake_broker):
    rev0 = hub.engine.rev
    hub.bus.hold(limit=MAX_QUEUED)
    _pause_and_resume(fake_broker, OUTBOX_WINDOW + 200)
    assert _turn_until(hub, lambda: hub.engine.rev >= rev0 + OUTBOX_WINDOW + 200)
    assert len(hub._inflight) == OUTBOX_WINDOW  # replies and retained state keep the rest of paho's queue
    assert hub.bus.stats.publish_failed.get("queue-full", 0) == 0
    hub.bus.release()
    want = list(range(rev0 + 1, rev0 + OUTBOX_WINDOW + 201))
    assert _turn_until(hub, lambda: _event_revs(fake_broker) == want)


def test_state_paho_could_not_take_goes_with_a_later_turn(hub, fake_broker):
    hub.bus.hold(limit=0)  # nothing fits
    _pause_and_resume(fake_broker, 1)
    hub.step(0)
    hub._last_state = 0.0
    hub._publish_state()
    assert hub._state_dirty  # the hall's state was refused: still owed
    hub.bus.release()
    hub._last_state = 0.0
    hub._publish_state()
    assert not hub._state_dirty
    hall = json.loads(fake_broker.retained[T.state_hall()])
    assert hall["rev"] == hub.engine.rev


def test_the_real_bus_refuses_past_pahos_queue_and_says_so(tmp_path):
    """paho itself, no broker listening: QoS 1 messages queue until MAX_QUEUED, then each is refused
    with QUEUE_FULL and counted, never given an id the caller could wait on."""
    bus = Bus(site=SITE, node="hub", role="hub", broker=BrokerSettings(port=free_port(), reconnect_max_s=1))
    bus.start()
    try:
        mids = [bus.publish(f"{T.root}/event/ticket/issued", b"{}") for _ in range(MAX_QUEUED + 3)]
    finally:
        bus.stop()
    assert all(m > 0 for m in mids[:MAX_QUEUED]) and len(set(mids[:MAX_QUEUED])) == MAX_QUEUED
    assert mids[MAX_QUEUED:] == [QUEUE_FULL] * 3
    assert bus.stats.publish_failed["queue-full"] == 3


def _replies(fake_broker, node: str) -> list[dict]:
    return [json.loads(p) for _, p in fake_broker.messages(T.reply(node))]


def _stored_requests(hub: HubDaemon) -> int:
    return int(hub.ledger.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


def test_a_counters_password_looping_pause_and_resume_is_paced_and_costs_the_ledger_little(hub, fake_broker):
    rev0, stored0 = hub.engine.rev, _stored_requests(hub)
    for i in range(150):  # the found attack, from counter 4's own topic
        req = (Resume if i % 2 else Pause)(request_id=new_request_id(), source="counter-4", reply_to="", counter=4,
                                           **({} if i % 2 else {"reason": "x" * 80}))
        fake_broker.deliver(T.req(req.ACTION, "counter-4"), req.to_json(), False, "counter-4")
    assert _turn_until(hub, lambda: len(_replies(fake_broker, "counter-4")) == 150)
    got = _replies(fake_broker, "counter-4")
    ok = [r for r in got if r["status"] == "ok"]
    limited = [r for r in got if r.get("error") and r["error"]["code"] == "rate-limited"]
    assert len(ok) == COUNTER_BURST and len(limited) == 150 - COUNTER_BURST
    assert all(r["error"]["retry_after_s"] >= 1 for r in limited)
    assert hub.engine.rev - rev0 == COUNTER_BURST  # one event per press that went through, none for the rest
    assert _stored_requests(hub) - stored0 == COUNTER_BURST  # a rate-limited answer is not stored
    assert hub.health_details()["rate_limited"]["pause"]["counter-4"] > 0
    # the officer next door, and a citizen rating at counter 4, are not held up by it
    call = CallNext(request_id=new_request_id(), source="counter-3", reply_to="", counter=3)
    fake_broker.deliver(T.req("call-next", "counter-3"), call.to_json(), False, "counter-3")
    rate = Rate(request_id=new_request_id(), source="counter-4", reply_to="", counter=4, score=5)
    fake_broker.deliver(T.req("rate", "counter-4"), rate.to_json(), False, "counter-4")
    assert _turn_until(hub, lambda: _replies(fake_broker, "counter-3") and len(_replies(fake_broker, "counter-4")) == 151)
    assert _replies(fake_broker, "counter-3")[0]["status"] == "ok"
    assert _replies(fake_broker, "counter-4")[-1]["error"]["code"] != "rate-limited"  # refused for its own reason
    # the hub's clock moves on (a minute): the counter's keys work again
    hub.clock.advance(60)
    again = Resume(request_id=new_request_id(), source="counter-4", reply_to="", counter=4)
    fake_broker.deliver(T.req("resume", "counter-4"), again.to_json(), False, "counter-4")
    assert _turn_until(hub, lambda: len(_replies(fake_broker, "counter-4")) == 152)
    assert _replies(fake_broker, "counter-4")[-1]["status"] == "ok"


def test_a_board_sending_faster_than_any_board_does_is_dropped_unread_and_counted(hub, fake_broker):
    for _ in range(BOARD_BURST + 300):
        req = CallNext(request_id=new_request_id(), source="counter-4", reply_to="", counter=4)
        fake_broker.deliver(T.req("call-next", "counter-4"), req.to_json(), False, "counter-4")
    call = CallNext(request_id=new_request_id(), source="counter-3", reply_to="", counter=3)
    fake_broker.deliver(T.req("call-next", "counter-3"), call.to_json(), False, "counter-3")
    assert _turn_until(hub, lambda: _replies(fake_broker, "counter-3"))
    answered = len(_replies(fake_broker, "counter-4"))
    flooded = hub.health_details()["flooded"]["counter-4"]
    assert answered + flooded == BOARD_BURST + 300
    assert BOARD_BURST <= answered < BOARD_BURST + 60  # the bucket refills 20 a second while the test runs
    assert hub.bus.stats.dropped_by_code["flood"] == flooded
    assert _replies(fake_broker, "counter-3")[0]["status"] == "ok"  # another board is answered


@pytest.mark.parametrize("hub", [HubConfig(counter_burst=5, counter_per_minute=60)], indirect=True)
def test_the_counters_pace_is_a_setting(hub, fake_broker):
    for _ in range(8):
        req = Pause(request_id=new_request_id(), source="counter-4", reply_to="", counter=4)
        fake_broker.deliver(T.req("pause", "counter-4"), req.to_json(), False, "counter-4")
    assert _turn_until(hub, lambda: len(_replies(fake_broker, "counter-4")) == 8)
    codes = [r["error"]["code"] if r.get("error") else "ok" for r in _replies(fake_broker, "counter-4")]
    assert codes.count("rate-limited") == 3


def test_refusals_a_boards_password_asks_for_are_answered_alike_but_not_written_to_the_ledger(hub, fake_broker):
    """Red team, 2026-12-07: counter 1's password alternating a call-next for counter 2 (forbidden)
    and one past its valid_until (expired), 20 a second within the flood guard, had each refusal
    stored in the ledger before the counter's pace was checked: ~1.7 million rows and ~0.9 GB a
    day, each batch fsynced. Refusals are now remembered in memory only: a retry of the same publish
    gets the same answer, and the ledger's requests table does not grow; a request that does
    something is stored as before."""
    now = hub.clock.now()
    forbidden = CallNext(request_id="counter-1-forbidden-0001", source="counter-1", reply_to="", counter=2)
    expired = CallNext(request_id="counter-1-expired-0001", source="counter-1", reply_to="", counter=1,
                       valid_until=now - 5)
    done = Pause(request_id="counter-1-pause-0001", source="counter-1", reply_to="", counter=1)
    rows = lambda: hub.ledger.db.execute("SELECT request_id FROM requests").fetchall()  # noqa: E731
    before = len(rows())
    for req in (forbidden, expired, done, forbidden, expired):  # the last two: the board's retries
        fake_broker.deliver(T.req(req.ACTION, "counter-1"), req.to_json(), False, "counter-1")
    assert _turn_until(hub, lambda: len(_replies(fake_broker, "counter-1")) == 5)
    got = {(r["request_id"], r["status"], (r.get("error") or {}).get("code")) for r in _replies(fake_broker, "counter-1")}
    assert got == {("counter-1-forbidden-0001", "error", "forbidden"), ("counter-1-expired-0001", "error", "expired"),
                   ("counter-1-pause-0001", "ok", None)}
    assert [r[0] for r in rows()][before:] == ["counter-1-pause-0001"]  # only what was done
