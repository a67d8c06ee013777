"""The bus against a real mosquitto: birth/Will, sessions, reconnect, blast shield, requests."""

from __future__ import annotations

import json
import time

import pytest

from xephang.bus import Bus, BusFatal, Inbound
from xephang.contract import CallNext, NodeStatus, Reply, decode, new_request_id
from xephang.mosquitto import Mosquitto
from xephang.settings import BrokerSettings

pytestmark = pytest.mark.broker


def make_bus(mq: Mosquitto, node: str, tmp_path, **kw) -> Bus:
    return Bus(site="tuong-linh", node=node, broker=BrokerSettings(port=mq.port, **kw), state_dir=tmp_path / node)


def pump_until(buses, cond, timeout=5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for b in buses:
            b.process(timeout=0.01)
        if cond():
            return True
    return False


def test_boot_with_broker_down_then_connects_within_5s(tmp_path, mosquitto: Mosquitto):
    mosquitto.stop()
    bus = make_bus(mosquitto, "counter-1", tmp_path)
    t0 = time.monotonic()
    bus.start()  # must not block
    assert time.monotonic() - t0 < 0.5
    assert not bus.wait_connected(0.5)
    mosquitto.start()
    t_up = time.monotonic()
    assert bus.wait_connected(6.0)
    assert time.monotonic() - t_up < 5.0
    bus.stop()


def test_birth_retained_and_will_on_kill_with_session(tmp_path, mosquitto):
    watcher = make_bus(mosquitto, "tech", tmp_path)
    seen: list[NodeStatus] = []
    watcher.subscribe(watcher.topics.status("counter-2"), lambda m: m.payload and seen.append(decode(NodeStatus, m.payload)))
    watcher.start()
    node = make_bus(mosquitto, "counter-2", tmp_path)
    node.start()
    assert pump_until([watcher, node], lambda: any(s.online for s in seen))
    first = [s for s in seen if s.online][-1]
    # the node's socket dies without DISCONNECT: the broker publishes its Will
    import socket

    node._client._sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]  # wakes paho's select, FIN to the broker
    assert pump_until([watcher, node], lambda: any(not s.online for s in seen), timeout=30)
    # it comes back on its own, with a newer session
    assert pump_until([watcher, node], lambda: seen[-1].online and seen[-1].session > first.session, timeout=10)
    node.stop()
    watcher.stop()


def test_old_will_cannot_mark_live_node_offline(tmp_path, mosquitto):
    node = make_bus(mosquitto, "display-hall", tmp_path)
    node.start()
    assert node.wait_connected(5)
    other = make_bus(mosquitto, "tech", tmp_path)
    seen: list[NodeStatus] = []
    other.subscribe(other.topics.status("display-hall"), lambda m: m.payload and seen.append(decode(NodeStatus, m.payload)))
    other.start()
    assert other.wait_connected(5)
    # a stale Will from an older session lands after the node is back
    stale = NodeStatus(node="display-hall", online=False, session=node.session - 1)
    other.publish(other.topics.status("display-hall"), stale, retain=True)
    assert pump_until([node, other], lambda: len(seen) >= 2 and seen[-1].online)
    assert seen[-1].session == node.session
    node.stop()
    other.stop()


def test_blast_shield_counts_bad_payloads_and_keeps_going(tmp_path, mosquitto):
    bus = make_bus(mosquitto, "hub", tmp_path)
    got: list[int] = []

    def handler(m: Inbound) -> None:
        got.append(json.loads(m.payload)["n"])  # raises on junk

    bus.subscribe("xephang/v1/tuong-linh/test/#", handler)
    bus.start()
    assert bus.wait_connected(5)
    for p in (b"{not json", b"\xff\xfe", b'{"n": 1}', b"[]", b'{"n": 2}'):
        bus.publish("xephang/v1/tuong-linh/test/x", p)
    assert pump_until([bus], lambda: got == [1, 2])
    assert bus.stats.dropped == 3
    bus.stop()


def test_request_retries_with_same_id_and_drops_late_reply(tmp_path, mosquitto):
    hub = make_bus(mosquitto, "hub", tmp_path)
    seen_ids: list[str] = []

    def fake_hub(m: Inbound) -> None:
        req = decode(CallNext, m.payload)
        seen_ids.append(req.request_id)
        if len(seen_ids) == 2:  # answer only the retry, and then once more (a late duplicate)
            for _ in range(2):
                hub.publish(req.reply_to, Reply(request_id=req.request_id, status="ok", data={"n": len(seen_ids)}))

    hub.subscribe(hub.topics.req("call-next") + "/#", fake_hub)
    hub.start()
    counter = make_bus(mosquitto, "counter-1", tmp_path)
    counter.start()
    assert hub.wait_connected(5) and counter.wait_connected(5)
    replies: list[Reply | None] = []
    rid = new_request_id()
    counter.request(CallNext(request_id=rid, source="counter-1", counter=1), on_reply=replies.append, timeout_s=0.5)
    assert pump_until([hub, counter], lambda: bool(replies) and counter.stats.late_replies >= 1)
    assert seen_ids == [rid, rid]
    assert len(replies) == 1 and replies[0] is not None and replies[0].data == {"n": 2}
    hub.stop()
    counter.stop()


def test_request_gives_up_with_none(tmp_path, mosquitto):
    counter = make_bus(mosquitto, "counter-1", tmp_path)
    counter.start()
    assert counter.wait_connected(5)
    r = counter.request_sync(CallNext(request_id=new_request_id(), source="counter-1", counter=1), timeout_s=0.2, attempts=2)
    assert r is None and counter.stats.retries == 1
    counter.stop()


def test_bad_credentials_is_fatal(tmp_path):
    import subprocess

    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "hub", "right"], check=True)
    mq = Mosquitto(tmp_path / "mq", password_file=pw).start()
    try:
        bus = make_bus(mq, "hub", tmp_path, password="wrong")
        bus.start()
        with pytest.raises(BusFatal, match="credentials"):
            end = time.monotonic() + 5
            while time.monotonic() < end:
                bus.process(timeout=0.05)
        bus.stop()
    finally:
        mq.kill()
