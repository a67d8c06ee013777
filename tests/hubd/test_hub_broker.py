"""The hub over a real mosquitto: concurrent counters, retries, crashes, broker restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hubd.ledger import NUMBERING_FLOOR
from hubd.main import HubConfig
from hubd.testing import running_hub
from xephang.bus import Bus, Inbound
from xephang.contract import (
    CallNext,
    Finish,
    IssueTicket,
    Reply,
    TicketEvent,
    VoidTicket,
    decode,
    new_request_id,
)
from xephang.settings import BrokerSettings

pytestmark = pytest.mark.broker


def client(port: int, node: str, tmp: Path) -> Bus:
    b = Bus(site="tuong-linh", node=node, broker=BrokerSettings(port=port), state_dir=tmp / "clients")
    b.start()
    assert b.wait_connected(5)
    return b


class Collector:
    """A subscriber that de-duplicates events by rev, like every consumer must."""

    def __init__(self, bus: Bus) -> None:
        self.revs: list[int] = []
        self.seen: set[int] = set()
        self.dups = 0
        self.events: list[TicketEvent] = []
        self.lock = threading.Lock()
        bus.subscribe(bus.topics.ticket_events(), self.on)

    def on(self, m: Inbound) -> None:
        ev = decode(TicketEvent, m.payload)
        with self.lock:
            if ev.rev in self.seen:
                self.dups += 1
                return
            self.seen.add(ev.rev)
            self.revs.append(ev.rev)
            self.events.append(ev)


def pump(buses, cond, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for b in buses:
            b.process(timeout=0.005)
        if cond():
            return True
    return False


def test_two_counters_pressing_next_200_times_never_share_or_skip_a_ticket(tmp_path, mosquitto, site_file):
    # 200 tickets from one dispenser in seconds, and 100 presses of each counter, is the flood the hub
    # refuses (issue_burst, counter_burst): widened here
    with running_hub(mosquitto.port, tmp_path / "hub", site_file, hub=HubConfig(issue_burst=1000, counter_burst=1000)):
        disp = client(mosquitto.port, "dispenser-1", tmp_path)
        issued = []
        for _ in range(200):
            r = disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich"))
            assert r is not None and r.status == "ok"
            issued.append(r.data["ticket"]["id"])
        # counters 1 and 2 both serve ho-tich; they press Next at the same time from two threads
        results: dict[int, list[int]] = {1: [], 2: []}

        def officer(n: int) -> None:
            b = client(mosquitto.port, f"counter-{n}", tmp_path)
            for _ in range(100):
                r = b.request_sync(CallNext(request_id=new_request_id(), source=f"counter-{n}", counter=n), timeout_s=5)
                assert r is not None and r.status == "ok"
                if r.data["ticket"]:
                    results[n].append(r.data["ticket"]["id"])
            b.stop()

        ts = [threading.Thread(target=officer, args=(n,)) for n in (1, 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        called = results[1] + results[2]
        assert len(called) == len(set(called)) == 200
        assert sorted(called) == sorted(issued)
        disp.stop()


def test_retried_request_id_returns_the_same_ticket(tmp_path, mosquitto, site_file):
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        disp = client(mosquitto.port, "dispenser-1", tmp_path)
        req = IssueTicket(request_id=new_request_id(), source="dispenser-1", service="dat-dai")
        r1 = disp.request_sync(req)
        r2 = disp.request_sync(req)
        assert r1 is not None and r2 is not None
        assert r1.data["ticket"] == r2.data["ticket"]
        assert hub.engine.sequences[(hub.engine.day, "dat-dai")] == 2001  # one ticket only
        disp.stop()


def test_counter_may_not_act_for_another_counter(tmp_path, mosquitto, site_file):
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        c3 = client(mosquitto.port, "counter-3", tmp_path)
        r = c3.request_sync(CallNext(request_id=new_request_id(), source="counter-3", counter=1))
        assert r is not None and r.status == "error" and r.error is not None and r.error.code == "forbidden"
        assert hub.engine.counters[1].state == "closed"
        c3.stop()


def test_a_forged_source_under_another_nodes_name_is_refused(tmp_path, mosquitto, site_file):
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        c1 = client(mosquitto.port, "counter-1", tmp_path)
        replies: list[Reply] = []
        c1.subscribe(c1.reply_topic, lambda m: replies.append(decode(Reply, m.payload)))
        # counter-1's credentials, counter-2's name in the payload: the topic tells the truth
        forged = CallNext(request_id=new_request_id(), source="counter-2", counter=2, reply_to=c1.reply_topic)
        c1.publish(c1.topics.req("call-next", "counter-1"), forged)
        assert pump([c1], lambda: bool(replies))
        assert replies[0].error is not None and replies[0].error.code == "forbidden"
        assert hub.engine.counters[2].state == "closed"
        c1.stop()


def test_a_dispenser_voids_only_a_ticket_it_printed_itself(tmp_path, mosquitto, site_file):
    """Void is how a dispenser takes back a number its printer failed to print. Any dispenser's
    password voided *any* waiting ticket in the hall (ids are plain counters, and every event shows
    them): citizens who had waited an hour vanished from the board. Now it voids only its own."""
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        d1, d2 = client(mosquitto.port, "dispenser-1", tmp_path), client(mosquitto.port, "dispenser-2", tmp_path)
        r = d1.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich"))
        assert r is not None and r.status == "ok"
        tid = r.data["ticket"]["id"]
        r = d2.request_sync(VoidTicket(request_id=new_request_id(), source="dispenser-2", ticket_id=tid,
                                       reason="paper-out"))
        assert r is not None and r.error is not None and r.error.code == "forbidden", r
        assert hub.engine.tickets[tid].state == "waiting"
        # its own dispenser still takes back the number it could not print
        r = d1.request_sync(VoidTicket(request_id=new_request_id(), source="dispenser-1", ticket_id=tid,
                                       reason="paper-out"))
        assert r is not None and r.status == "ok" and r.data["ticket"]["state"] == "voided", r
        d1.stop()
        d2.stop()


def test_a_board_asking_resync_in_a_loop_is_answered_rate_limited_and_the_others_are_not(tmp_path, mosquitto,
                                                                                         site_file):
    """Every board may ask ``resync``; each answer is the hall snapshot plus up to 56 KB of events, and
    makes the hub send every retained state again. A board's password asked it in a loop, unbounded.
    Now each node has RESYNC_BURST at once, then RESYNC_PER_MINUTE: the rest are answered
    ``rate-limited`` with ``retry_after_s``, counted in the hub's health; other nodes are not touched."""
    from xephang.contract import RESYNC_BURST, RESYNC_PER_MINUTE, NodeHealth, Resync

    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        disp = client(mosquitto.port, "dispenser-1", tmp_path)
        for _ in range(5):  # some events to send
            assert disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich"))
        rogue, other = client(mosquitto.port, "display-hall", tmp_path), client(mosquitto.port, "counter-2", tmp_path)
        health: list[NodeHealth] = []
        other.subscribe(other.topics.health("hub"), lambda m: health.append(decode(NodeHealth, m.payload)))
        replies = [rogue.request_sync(Resync(request_id=new_request_id(), source="display-hall", since_rev=0))
                   for _ in range(RESYNC_BURST + 30)]
        assert all(r is not None for r in replies)
        ok = [r for r in replies if r.status == "ok"]
        refused = [r for r in replies if r.status != "ok"]
        assert RESYNC_BURST <= len(ok) <= RESYNC_BURST + 1  # a token may come back while it loops
        assert all(r.error is not None and r.error.code == "rate-limited" for r in refused)
        assert all(1 <= r.error.retry_after_s <= 60 / RESYNC_PER_MINUTE for r in refused if r.error)
        assert "hall" not in refused[0].data
        r = other.request_sync(Resync(request_id=new_request_id(), source="counter-2", since_rev=0))
        assert r is not None and r.status == "ok" and len(r.data["events"]) == 5  # another board is not touched
        hub.publish_health()
        assert pump([other], lambda: bool(health) and
                    health[-1].details.get("rate_limited", {}).get("resync") == {"display-hall": len(refused)})
        for b in (disp, rogue, other):
            b.stop()


def test_one_dispenser_cannot_use_up_a_service_and_the_technicians_are_told(tmp_path, mosquitto, site_file):
    """A dispenser's password (or a child on the hall's button: ticketd lets 4 presses through per
    20 s) could take every number of a service's band, leaving the officers a queue of ghosts and
    the citizens no ticket today. Now the hub gives one dispenser ``issue_burst`` tickets of a service
    at once, then ``issue_per_hour``: more are refused ``rate-limited`` with ``retry_after_s``,
    nothing issued (no number, no paper); its other services and the other dispensers go on, the
    technicians get the hub's alert ``tickets-refused``, cleared once the dispenser is quiet."""
    from datetime import datetime

    from xephang.clock import VN_TZ, ManualClock
    from xephang.contract import Alert

    clock = ManualClock(start=datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp())  # a Monday morning
    with running_hub(mosquitto.port, tmp_path / "hub", site_file, clock=clock) as hub:
        d1, d2 = client(mosquitto.port, "dispenser-1", tmp_path), client(mosquitto.port, "dispenser-2", tmp_path)
        tech = client(mosquitto.port, "tech-obs", tmp_path)
        alerts: list[bytes] = []
        tech.subscribe(tech.topics.alert("hub", "tickets-refused"), lambda m: alerts.append(m.payload))
        burst = hub.settings.hub.issue_burst

        def issue(bus: Bus, service: str) -> Reply:
            r = bus.request_sync(IssueTicket(request_id=new_request_id(), source=bus.node, service=service))
            assert r is not None
            return r

        replies = [issue(d1, "ho-tich") for _ in range(burst + 10)]
        assert [r.status for r in replies] == ["ok"] * burst + ["error"] * 10
        assert all(r.error is not None and r.error.code == "rate-limited" and r.error.retry_after_s
                   and r.error.retry_after_s >= 1 for r in replies[burst:])
        assert sum(1 for t in hub.engine.tickets.values() if t.issued_by == "dispenser-1") == burst  # nothing more
        assert issue(d1, "dat-dai").status == "ok"  # its other buttons still give tickets
        assert issue(d2, "ho-tich").status == "ok"  # and so does the other dispenser
        assert hub.rate_limited["issue-ticket"] == {"dispenser-1": 10}
        assert pump([tech], lambda: bool(alerts) and alerts[-1] != b"")
        said = decode(Alert, alerts[-1])
        assert "dispenser-1" in said.message_vi and "dispenser-1" in said.message_en and "dispenser-2" not in said.message_en
        clock.advance(3600)  # an hour without a press: its buckets are full again
        assert pump([tech], lambda: alerts[-1] == b"", timeout=5)
        assert issue(d1, "ho-tich").status == "ok"
        for b in (d1, d2, tech):
            b.stop()


def test_malformed_requests_get_error_replies_or_counted_drops(tmp_path, mosquitto, site_file):
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        c = client(mosquitto.port, "counter-1", tmp_path)
        replies: list[Reply] = []
        c.subscribe(c.reply_topic, lambda m: replies.append(decode(Reply, m.payload)))
        t = c.topics
        base = {"request_id": "abcdefgh01", "source": "counter-1", "reply_to": c.reply_topic}
        c.publish(t.req("call-next"), json.dumps({**base, "schema": "xephang.req.call-next.v1", "counter": "x"}))
        c.publish(t.req("call-next"), json.dumps({**base, "request_id": "abcdefgh02", "schema": "xephang.req.call-next.v1", "counter": 1, "evil": 1}))
        c.publish(t.req("fly-away"), json.dumps({**base, "request_id": "abcdefgh03"}))
        c.publish(t.req("call-next"), json.dumps({**base, "request_id": "abcdefgh04", "schema": "xephang.req.call-next.v1", "counter": 77}))
        c.publish(t.req("call-next"), b"{garbage")
        c._client.publish(t.req("call-next"), b"\xff" * 70000, qos=1)  # type: ignore[union-attr]  # past our own guard
        assert pump([c], lambda: len(replies) >= 4)
        codes = sorted(r.error.code for r in replies if r.error)
        assert codes == ["forbidden", "invalid", "invalid", "unknown-action"]
        # still alive and serving
        ok = c.request_sync(CallNext(request_id=new_request_id(), source="counter-1", counter=1))
        assert ok is not None and ok.status == "ok"
        assert hub.bus.stats.dropped >= 5
        c.stop()


HUB_CRASH = r"""
import os, sys
from hubd import main as hm
from hubd.main import HubDaemon
orig = HubDaemon._publish_event
def crash(self, *a, **k):
    if os.environ.get("CRASH_AFTER_COMMIT") == "1":
        os.kill(os.getpid(), 9)   # committed, not yet published
    return orig(self, *a, **k)
HubDaemon._publish_event = crash
sys.exit(hm.main([]))
"""


def test_hub_killed_between_commit_and_publish_delivers_every_event_exactly_once(tmp_path, daemon_env, mosquitto):
    env = {**daemon_env, "XEPHANG_NODE": "hub"}
    sub = client(mosquitto.port, "display-hall", tmp_path)
    col = Collector(sub)
    disp = client(mosquitto.port, "dispenser-1", tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", HUB_CRASH], env={**env, "CRASH_AFTER_COMMIT": "1"})
    req = IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich")
    replies: list[Reply | None] = []
    disp.request(req, on_reply=replies.append, timeout_s=1.0, attempts=30)
    assert pump([disp, sub], lambda: proc.poll() is not None, timeout=20)
    assert proc.returncode == -signal.SIGKILL
    assert col.revs == []  # it died before publishing anything
    proc = subprocess.Popen([sys.executable, "-m", "hubd.main"], env=env)
    try:
        assert pump([disp, sub], lambda: bool(replies) and bool(col.seen), timeout=20)
        assert replies[0] is not None and replies[0].data["ticket"]["number"] == 1001
        # more work after the restart
        for _ in range(5):
            r = disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich"))
            assert r is not None
        assert pump([disp, sub], lambda: len(col.seen) >= 6, timeout=10)
        first = col.revs[0]  # a new ledger starts after the hub's clock (hubd.ledger.numbering_base)
        assert first > NUMBERING_FLOOR
        assert col.revs == list(range(first, first + 6))
        numbers = [e.ticket.number for e in col.events]
        assert numbers == list(range(1001, 1007))  # no number reused
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    disp.stop()
    sub.stop()


def test_broker_restart_mid_stream_clients_back_within_5s_nothing_lost(tmp_path, mosquitto, site_file):
    # 40 tickets of one service in a second from one dispenser: over issue_burst, widened here
    with running_hub(mosquitto.port, tmp_path / "hub", site_file, hub=HubConfig(issue_burst=1000)) as hub:
        sub = client(mosquitto.port, "display-hall", tmp_path)
        col = Collector(sub)
        disp = client(mosquitto.port, "dispenser-1", tmp_path)
        got: list[Reply | None] = []
        for i in range(40):
            disp.request(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="dat-dai"),
                         on_reply=got.append, timeout_s=1.0, attempts=20)
            if i == 20:
                mosquitto.restart()
                t_up = time.monotonic()
                assert pump([disp, sub], lambda: all(b.connected.is_set() for b in (hub.bus, disp, sub)), timeout=10)
                back = time.monotonic() - t_up
        assert pump([disp, sub], lambda: len(got) == 40, timeout=30)
        assert hub.bus.connected.is_set() and disp.connected.is_set() and sub.connected.is_set()
        assert all(r is not None and r.status == "ok" for r in got)
        numbers = sorted(r.data["ticket"]["number"] for r in got if r)
        assert numbers == list(range(2001, 2041))  # none lost, none duplicated
        assert pump([sub], lambda: len(col.seen) >= 40, timeout=15)
        assert sorted(col.seen) == list(range(min(col.seen), min(col.seen) + 40))
        assert back < 5.0, f"clients back {back:.1f} s after the broker"
        disp.stop()
        sub.stop()


def test_retained_state_for_late_joiners(tmp_path, mosquitto, site_file):
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        c = client(mosquitto.port, "counter-3", tmp_path)
        d = client(mosquitto.port, "dispenser-1", tmp_path)
        d.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="dat-dai"))
        c.request_sync(CallNext(request_id=new_request_id(), source="counter-3", counter=3))
        c.request_sync(Finish(request_id=new_request_id(), source="counter-3", counter=3))
        late = Bus(site="tuong-linh", node="display-2", broker=BrokerSettings(port=mosquitto.port), state_dir=tmp_path)
        halls: list[dict] = []
        late.subscribe(late.topics.state_hall(), lambda m: halls.append(json.loads(m.payload)))
        late.start()
        last = hub.engine.rev  # the three requests' events are the ledger's last three
        assert pump([late], lambda: any(h["rev"] >= last for h in halls), timeout=5)
        h = halls[-1]
        assert h["counters"][2]["number"] == 3 and h["counters"][2]["state"] == "open"
        assert h["last_calls"][0]["display"] == "2001"
        for b in (c, d, late):
            b.stop()


def test_hub_process_exits_nonzero_on_bad_site_file(tmp_path):
    env = {**os.environ, "XEPHANG_SITE_FILE": str(tmp_path / "missing.toml"), "XEPHANG_STATE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "hubd.main"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 78
    assert "missing.toml not found" in r.stderr
