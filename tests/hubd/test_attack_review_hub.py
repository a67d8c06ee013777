"""An attacker holding one account's password, against a running hub: what the review of
2026-12-07 found that the earlier fixes did not cover.

- A request id is its asker's: another node's id got that node's stored reply (its ticket, its
  counter) and the replayer's own press was never done; within one batch the two even shared
  one row of the ledger.
- A refusal the engine gives (an unknown service, another dispenser's ticket to void) was written
  to the ledger, and neither is paced: a dispenser's password wrote a row per request, 20 a second.
- A ``source`` ending in a newline passed the hub's own level check (Python's ``$`` matches before
  a final newline): the error reply went to ``R/reply/tech\\n``, the broker dropped the hub's
  connection for the control character, and paho re-sent that reply on every reconnect.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from hubd.main import HubDaemon, HubSettings
from hubd.testing import running_hub
from tests.hubd.test_floods import _turn_until
from xephang.bus import Bus
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import (
    CallNext,
    IssueTicket,
    Reply,
    Resume,
    Resync,
    Topics,
    VoidTicket,
    decode,
    new_request_id,
)
from xephang.settings import BrokerSettings
from xephang.testing import FakeBus

SITE = "tuong-linh"
T = Topics(SITE)
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp()


def _replies(fake_broker, node: str) -> list[dict]:
    return [json.loads(p) for _, p in fake_broker.messages(T.reply(node))]


def _send(fake_broker, req) -> None:
    fake_broker.deliver(T.req(req.ACTION, req.source), req.to_json(), False, req.source)


def _stored(hub: HubDaemon) -> list[tuple[str, str]]:
    return hub.ledger.db.execute("SELECT request_id, source FROM requests ORDER BY rowid").fetchall()


def _client(port: int, node: str, tmp: Path) -> Bus:
    b = Bus(site=SITE, node=node, broker=BrokerSettings(port=port), state_dir=tmp / "clients")
    b.start()
    assert b.wait_connected(5)
    return b


def test_a_replayed_request_id_of_another_counter_gets_neither_its_reply_nor_stops_the_press(tmp_path, mosquitto,
                                                                                           site_file):
    """Counter 3's password replays counter 1's request id: it was answered counter 1's stored reply
    (counter 1's ticket), and counter 3's own call-next was never done. Now the id is refused
    (``forbidden``) and tells it nothing; counter 1's retry still gets its own answer."""
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        disp, c1, c3 = (_client(mosquitto.port, n, tmp_path) for n in ("dispenser-1", "counter-1", "counter-3"))
        for service in ("ho-tich", "dat-dai"):
            r = disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service=service))
            assert r is not None and r.status == "ok"
        mine = CallNext(request_id="counter-1-press-000001", source="counter-1", counter=1)
        first = c1.request_sync(mine)
        assert first is not None and first.status == "ok" and first.data["ticket"]["display"] == "1001"
        replay = c3.request_sync(CallNext(request_id=mine.request_id, source="counter-3", counter=3))
        assert replay is not None and replay.status == "error", replay
        assert replay.error is not None and replay.error.code == "forbidden" and replay.data == {}
        assert hub.engine.counters[3].serving is None  # nothing done in counter 3's name either
        again = c1.request_sync(mine)  # the owner's retry: its own answer, nothing done twice
        assert again is not None and again.data == first.data
        own = c3.request_sync(CallNext(request_id=new_request_id(), source="counter-3", counter=3))
        assert own is not None and own.status == "ok" and own.data["ticket"]["display"] == "2001"
        assert hub.ledger.lookup_request(mine.request_id)[0] == "counter-1"
        for b in (disp, c1, c3):
            b.stop()


def test_two_nodes_sending_one_request_id_in_one_batch_do_not_share_an_answer(hub, fake_broker):
    """The same id from two counters in one batch: the second was answered with the first's reply;
    now it is refused and the ledger's row stays the first asker's."""
    _send(fake_broker, IssueTicket(request_id=new_request_id(), source="dispenser-1", reply_to="", service="ho-tich"))
    assert _turn_until(hub, lambda: _replies(fake_broker, "dispenser-1"))
    _send(fake_broker, CallNext(request_id="same-id-in-batch-01", source="counter-1", reply_to="", counter=1))
    _send(fake_broker, CallNext(request_id="same-id-in-batch-01", source="counter-2", reply_to="", counter=2))
    assert _turn_until(hub, lambda: _replies(fake_broker, "counter-1") and _replies(fake_broker, "counter-2"))
    assert _replies(fake_broker, "counter-1")[0]["status"] == "ok"
    other = _replies(fake_broker, "counter-2")[0]
    assert other["status"] == "error" and other["error"]["code"] == "forbidden" and other["data"] == {}
    assert ("same-id-in-batch-01", "counter-1") in _stored(hub)
    assert hub.bus.stats.dropped_by_code["forbidden"] == 1


def test_refusals_a_dispensers_password_asks_for_are_not_written_to_the_ledger(hub, fake_broker):
    """Issue-ticket of an unknown service (not paced: only a known service has a bucket) and
    void-ticket of tickets another dispenser printed (not paced at all): each refusal was a row in
    the ledger, fsynced. Now they are answered and remembered, and the ledger does not grow."""
    _send(fake_broker, IssueTicket(request_id="dispenser-2-ticket-01", source="dispenser-2", reply_to="",
                                   service="ho-tich"))
    assert _turn_until(hub, lambda: _replies(fake_broker, "dispenser-2"))
    theirs = _replies(fake_broker, "dispenser-2")[0]["data"]["ticket"]["id"]
    before = _stored(hub)
    asks = [IssueTicket(request_id=f"no-such-service-{i:03d}", source="dispenser-1", reply_to="", service="khong-co")
            for i in range(60)]
    asks += [VoidTicket(request_id=f"void-theirs-{i:03d}", source="dispenser-1", reply_to="", ticket_id=theirs)
             for i in range(60)]
    for req in asks:
        _send(fake_broker, req)
    assert _turn_until(hub, lambda: len(_replies(fake_broker, "dispenser-1")) == len(asks))
    codes = {r["error"]["code"] for r in _replies(fake_broker, "dispenser-1")}
    assert codes == {"unknown-service", "forbidden"}
    assert _stored(hub) == before  # not one row more
    assert hub.engine.tickets[theirs].state == "waiting"
    # a retry of a refusal is answered alike (remembered), still without a row
    _send(fake_broker, asks[0])
    assert _turn_until(hub, lambda: len(_replies(fake_broker, "dispenser-1")) == len(asks) + 1)
    assert _replies(fake_broker, "dispenser-1")[-1] == _replies(fake_broker, "dispenser-1")[0]
    assert _stored(hub) == before


@pytest.mark.parametrize("source", ["tech\n", "counter-1\n"])
def test_a_source_ending_in_a_newline_does_not_knock_the_hub_off_the_broker(tmp_path, mosquitto, site_file, source):
    """On the short request form (the technicians' terminals) the reply goes to the payload's
    ``source``. A malformed request whose source ended in ``\\n`` passed the hub's check, the hub
    answered on ``R/reply/tech\\n``, and mosquitto dropped the hub's connection for the control
    character: again at every reconnect (paho re-sends the stuck publish), the hall silenced. Now
    it is dropped unanswered and counted, and the hub goes on."""
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        tech = _client(mosquitto.port, "tech", tmp_path)
        replies: list[Reply] = []
        tech.subscribe(tech.reply_topic, lambda m: replies.append(decode(Reply, m.payload)))
        dropped = hub.bus.stats.dropped
        bad = {"schema": "xephang.req.call-next.v1", "request_id": "newline-source-01", "source": source,
               "counter": "one"}
        assert tech._client is not None
        tech._client.publish(T.req("call-next"), json.dumps(bad).encode(), qos=1)  # past our own Bus's checks
        for _ in range(200):
            tech.process(timeout=0.05)
            if hub.bus.stats.dropped > dropped:
                break
        assert hub.bus.stats.dropped_by_code["invalid"] >= 1, "the malformed request was not counted"
        # before: the broker cut the hub off here, and again at each reconnect; nothing was answered
        r = tech.request_sync(Resync(request_id=new_request_id(), source="tech"), timeout_s=2.0, attempts=2)
        assert r is not None and r.status == "ok", r
        assert hub.bus.stats.disconnects == 0 and hub.bus.connected.is_set()
        assert all(x.request_id != "newline-source-01" for x in replies)
        tech.stop()


def test_two_dispensers_bursts_of_tickets_do_not_hold_a_counters_call(tmp_path, site_file, fake_broker):
    """Each dispenser may issue 40 tickets of each service at once (``issue_burst``), and each
    ticket's printed wait is a simulation over the whole queue: two dispensers' passwords firing
    their bursts (320 tickets) held the hub 7 s on a real broker, and counter 2's call-next, behind
    them, came after its box had given up. Now a turn runs for ``TURN_BUDGET_S`` at most and the
    askers take turns: the call is answered while most of the tickets still wait."""
    ticks = iter(range(10**9))
    settings = HubSettings(site=SITE, node="hub", site_file=site_file, state_dir=tmp_path / "state")
    # the hub's own pace clock moves 50 ms each time it is read: a turn's budget is spent after a few requests
    h = HubDaemon(settings, bus=FakeBus(fake_broker, site=SITE, node="hub", role="hub", state_dir=tmp_path / "state"),
                  clock=ManualClock(MONDAY_9AM), monotonic=lambda: next(ticks) * 0.05)
    h.start()
    assert h.bus.wait_connected(5)
    h.step(0)
    try:
        resume = Resume(request_id=new_request_id(), source="counter-2", reply_to="", counter=2)
        _send(fake_broker, resume)
        assert _turn_until(h, lambda: _replies(fake_broker, "counter-2"))
        for dispenser in ("dispenser-1", "dispenser-2"):
            for service in ("ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi"):
                for _ in range(40):
                    _send(fake_broker, IssueTicket(request_id=new_request_id(), source=dispenser, reply_to="",
                                                   service=service))
        call = CallNext(request_id=new_request_id(), source="counter-2", reply_to="", counter=2)
        _send(fake_broker, call)

        def tickets_out() -> int:
            return len(_replies(fake_broker, "dispenser-1")) + len(_replies(fake_broker, "dispenser-2"))

        assert _turn_until(h, lambda: len(_replies(fake_broker, "counter-2")) == 2)
        assert tickets_out() < 100, f"the call waited for {tickets_out()} tickets"
        assert _replies(fake_broker, "counter-2")[-1]["status"] == "ok"
        assert _turn_until(h, lambda: tickets_out() == 320)  # and every ticket is still issued, once
        assert all(r["status"] == "ok" for n in ("dispenser-1", "dispenser-2") for r in _replies(fake_broker, n))
        assert len({t.id for t in h.engine.tickets.values()}) == 320
    finally:
        h.bus.stop()
        h.ledger.close()


def test_in_turns_keeps_each_askers_order_and_the_short_form_as_one_asker() -> None:
    from hubd.main import in_turns
    from xephang.bus import Inbound

    def req(action: str, node: str | None) -> Inbound:
        return Inbound(f"xephang/v1/tuong-linh/req/hub/{action}" + (f"/{node}" if node else ""), b"")

    batch = [req("issue-ticket", "ticketd-1"), req("issue-ticket", "ticketd-1"), req("issue-ticket", "ticketd-1"),
             req("pause", None), req("resume", None), req("call-next", "counter-2")]
    got = [(m.topic.split("/")[5], m.topic.split("/")[-1]) for m in in_turns(batch)]
    assert got == [("issue-ticket", "ticketd-1"), ("pause", "pause"), ("call-next", "counter-2"),
                   ("issue-ticket", "ticketd-1"), ("resume", "resume"), ("issue-ticket", "ticketd-1")]
