"""The bus against a real mosquitto: birth/Will, sessions, reconnect, blast shield, requests."""

from __future__ import annotations

import json
import time

import pytest

from xephang.bus import Bus, BusFatal, Inbound
from xephang.contract import CallNext, NodeStatus, Reply, decode, new_request_id
from xephang.settings import BrokerSettings
from xephang_ops.mosquitto import Mosquitto

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


def test_words_on_a_nodes_own_status_are_answered_paced_and_the_last_word_is_its_own(tmp_path, mosquitto):
    """A board's password flooding its own status with 'offline' (from the technicians' listener: the
    board is not knocked off) had one birth re-said per message, which filled the board's out-queue
    ahead of its requests (a press took 11 s). A forged 'online' with a huge session kept consumers
    from believing the board's later Will. Now: re-said at most every OWN_STATUS_EVERY_S, read at
    QoS 0, and the retained status ends the board's own; its requests are answered meanwhile."""
    from xephang.bus import OWN_STATUS_EVERY_S, OWN_STATUS_SETTLE_S

    node = make_bus(mosquitto, "counter-1", tmp_path)
    node.start()
    assert node.wait_connected(5)
    rogue = make_bus(mosquitto, "tech", tmp_path)
    rogue.start()
    assert rogue.wait_connected(5)
    hub = make_bus(mosquitto, "tech-hub", tmp_path)  # where the board's requests go
    answered: list[str] = []
    hub.subscribe(hub.topics.req("call-next", "counter-1"),
                  lambda m: answered.append(json.loads(m.payload)["request_id"]), retained=False)
    hub.start()
    assert hub.wait_connected(5)
    topic = rogue.topics.status("counter-1")
    start, resaid = time.monotonic(), node.status_resaid
    forged = [NodeStatus(node="counter-1", online=False, session=node.session - 1),
              NodeStatus(node="counter-1", online=True, session=2**62)]
    sent = 0
    while time.monotonic() - start < 2.0:  # ~40,000 messages: the broker takes seconds to hand them all on
        for _ in range(200):
            rogue.publish(topic, forged[sent % 2], retain=True, qos=0)
            sent += 1
        node.process(timeout=0)
        rogue.process(timeout=0)
    rid = node.request(CallNext(request_id=new_request_id(), source="counter-1", counter=1), on_reply=lambda r: None,
                       timeout_s=5)
    assert pump_until([node, rogue, hub], lambda: rid in answered, timeout=30), "the board's request went nowhere"
    elapsed = time.monotonic() - start
    assert node.status_resaid - resaid <= elapsed / OWN_STATUS_EVERY_S + 3, (node.status_resaid - resaid, sent)
    assert not node.stats.dropped_by_code.get("queue-full")
    last: list[NodeStatus] = []
    check = make_bus(mosquitto, "tech-check", tmp_path)
    check.subscribe(topic, lambda m: m.payload and last.append(decode(NodeStatus, m.payload)))
    check.start()
    assert check.wait_connected(5)
    # the broker hands the flood on for seconds after it ends; once it has, the board's word is the last
    assert pump_until([node, rogue, check], lambda: bool(last) and last[-1].online and last[-1].session == node.session,
                      timeout=OWN_STATUS_SETTLE_S + 15), last[-1:]
    for b in (node, rogue, hub, check):
        b.stop()


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


# ---------------------------------------------------------------------------------------------
# Nothing a remote party puts in a topic or a payload can make publish() raise or wedge the link


@pytest.mark.parametrize(("topic", "size", "reason"), [
    ("xephang/v1/tuong-linh/reply/+", 10, "bad-topic"),
    ("xephang/v1/tuong-linh/reply/#", 10, "bad-topic"),
    ("xephang/v1/tuong-linh/reply/a\x00b", 10, "bad-topic"),
    ("xephang/v1/tuong-linh/reply/", 10, "bad-topic"),
    ("$SYS/broker/x", 10, "bad-topic"),
    ("xephang/v1/tuong-linh/reply/" + "a" * 300, 10, "bad-topic"),
    ("xephang/v1/tuong-linh/reply/hộ", 10, "bad-topic"),
    ("xephang/v1/tuong-linh/reply/tech\n", 10, "bad-topic"),  # `$` matched before a final newline
    ("xephang/v1/tuong-linh/reply/counter-1", 64 * 1024 + 1, "too-large"),
])
def test_a_publish_that_cannot_go_is_logged_counted_and_dropped_and_the_link_stays(tmp_path, mosquitto, topic, size,
                                                                                 reason):
    hub = make_bus(mosquitto, "hub", tmp_path)
    got: list[bytes] = []
    hub.subscribe("xephang/v1/tuong-linh/reply/hub", lambda m: got.append(m.payload))
    hub.start()
    assert hub.wait_connected(5)
    assert hub.publish(topic, b"x" * size) == -1  # no exception into the caller
    assert hub.stats.publish_failed == {reason: 1}
    hub.publish("xephang/v1/tuong-linh/reply/hub", b"after")  # the same connection still works
    assert pump_until([hub], lambda: got == [b"after"])
    assert hub.stats.disconnects == 0 and hub.stats.connects == 1
    hub.stop()


def test_a_publish_the_broker_refuses_is_counted_not_fatal(tmp_path):
    """PUBACK 135 (the ACL) on a publish used to end the daemon (BusFatal): a remote party could
    stop a daemon by making it publish where it may not. Now counted in health, the daemon goes on."""
    import subprocess

    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "counter-1", "pw"], check=True)
    acl = tmp_path / "acl"
    acl.write_text("user counter-1\ntopic readwrite xephang/v1/tuong-linh/node/counter-1/#\n")
    mq = Mosquitto(tmp_path / "mq", password_file=pw, acl_file=acl).start()
    try:
        bus = make_bus(mq, "counter-1", tmp_path, password="pw")
        bus.start()
        assert bus.wait_connected(5)
        assert bus.publish("xephang/v1/tuong-linh/state/hall", b"{}") > 0
        assert pump_until([bus], lambda: bus.stats.publish_failed.get("refused") == 1)
        bus.process(timeout=0.05)  # no BusFatal
        assert bus.fatal is None and bus.connected.is_set()
        bus.stop()
    finally:
        mq.kill()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 5000])
def test_a_number_json_has_not_is_bad_json_not_a_value(number):
    """Python's json reads NaN, Infinity, 1e400 (as infinity) and ints of any length; RFC 8259 JSON has
    no NaN or Infinity, PostgreSQL's jsonb refuses them, and a retained health with `uptime_s: NaN`
    ended `xephang devices`. ``decode`` refuses them as `bad-json`; the models refuse non-finite floats
    however they are read."""
    from pydantic import ValidationError

    from xephang.contract import BadPayload, NodeHealth

    body = f'{{"schema":"xephang.node-health.v1","node":"display-hall","role":"display","version":"1","uptime_s":{number}}}'
    with pytest.raises(BadPayload) as err:
        decode(NodeHealth, body.encode())
    assert err.value.code == "bad-json"
    if number in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValidationError):
            NodeHealth.model_validate_json(body)
    assert decode(NodeHealth, body.replace(number, "1e308").encode()).uptime_s == 1e308  # big, but a number


def test_a_flood_at_qos_0_waits_apart_bounded_and_never_ahead_of_qos_1(tmp_path, mosquitto):
    """What boards say of themselves is subscribed at QoS 0 (webd): a board's password flooding its
    own status (35,000 a second) grew webd's inbox without bound and held the hub's events and
    replies behind it. QoS 0 messages now wait in a bounded queue, handled after the rest; what
    does not fit is dropped and counted (`backlog`)."""
    from xephang.bus import CHATTER_MAX

    bus = make_bus(mosquitto, "web", tmp_path)
    chatter: list[bytes] = []
    events: list[bytes] = []
    arrived: list[int] = []  # flood messages that reached the bus (QoS 0: the broker may drop some on a busy machine)
    real = bus._paho_message

    def counting(client, userdata, msg):
        if msg.payload.startswith(b'{"i"'):
            arrived.append(1)
        real(client, userdata, msg)

    bus._paho_message = counting  # type: ignore[method-assign]  # paho's callback is taken at start()
    bus.subscribe("xephang/v1/tuong-linh/node/+/status", lambda m: chatter.append(m.payload), qos=0)
    bus.subscribe("xephang/v1/tuong-linh/event/#", lambda m: events.append(m.payload), retained=False)
    bus.start()
    assert bus.wait_connected(5)
    board = make_bus(mosquitto, "display-hall", tmp_path)
    board.start()
    assert board.wait_connected(5)
    n = 3 * CHATTER_MAX
    for i in range(n):
        board.publish("xephang/v1/tuong-linh/node/display-hall/status", f'{{"i": {i}}}'.encode(), qos=0)
    hub = make_bus(mosquitto, "hub", tmp_path)
    hub.start()
    assert hub.wait_connected(5)
    # paho's thread has taken the whole flood before the event (one connection, in order) when the
    # chatter queue holds as much as it can
    assert pump_until([board, hub], lambda: bus.chatter.full(), timeout=10)
    hub.publish("xephang/v1/tuong-linh/event/ticket/called", b'{"rev": 1}')
    assert pump_until([hub], lambda: any(isinstance(x, Inbound) for x in list(bus.inbox.queue)), timeout=5)
    before = len(chatter)
    bus.process(timeout=0.5)  # one turn: the event first, then at most a turn's worth of chatter
    assert events == [b'{"rev": 1}']
    assert len(chatter) - before <= 200 + 1  # a turn's worth, and the bus's own status (kept apart, newest only)

    def accounted() -> bool:
        """Each flood message that reached the bus handled or counted as dropped (a few more drops: the
        hub's own birth status, when it came while full). Checked until true: the tail of the flood may
        still be arriving (QoS 0, no end to wait for) when the queue first runs empty."""
        handled = sum(p.startswith(b'{"i"') for p in chatter)
        return len(arrived) <= handled + bus.stats.dropped_by_code["backlog"] <= len(arrived) + 3

    assert pump_until([bus], lambda: bus.chatter.empty() and bus.stats.dropped_by_code["backlog"] > 0
                      and accounted(), timeout=10)
    # bounded, and every drop counted
    assert CHATTER_MAX < len(arrived) <= n and bus.foreign_dropped == 0
    assert sum(p.startswith(b'{"i"') for p in chatter) >= CHATTER_MAX
    for b in (bus, board, hub):
        b.stop()


def test_a_refused_config_push_is_acked_only_under_a_request_id_an_ack_can_carry():
    """The ack of a push that failed validation reuses its request_id: a lone surrogate or a made-up
    one would fail the ack itself (ConfigAck refuses it), so it gets none; the refusal is counted."""
    from xephang.nodeconfig import _request_id_of

    assert _request_id_of(b'{"request_id": "tech-0001", "config": 5}') == "tech-0001"
    for bad in (b'{"request_id": "\\ud800abcdefgh"}', b'{"request_id": "a/b#c+d1234"}', b'{"request_id": "short"}',
                b'{"request_id": NaN}', b'["tech-0001"]', b"\xff"):
        assert _request_id_of(bad) is None, bad


def test_a_filter_an_earlier_session_holds_is_unsubscribed_at_connect(tmp_path, mosquitto):
    """A persistent session keeps its subscriptions at the broker: a hub that once read the requests
    on its main connection is still fed them after it reads them with ``hub-inbox`` (hubd/lane.py),
    a board's flood included, until it unsubscribes (``forget``)."""
    req, marker = "xephang/tuong-linh/req/hub/pause/counter-1", "xephang/tuong-linh/reply/hub"

    def session(*, forget: bool = False, subscribe: bool = False) -> list[str]:
        """What reached this session of node `hub` up to the marker: every topic handed to the owner, and
        "(foreign)" for each the bus dropped in paho's thread as no filter of its own asked for it."""
        b = make_bus(mosquitto, "hub", tmp_path)
        seen: list[str] = []
        deliver = b._deliver
        b._deliver = lambda m: (seen.append(m.topic), deliver(m))  # type: ignore[method-assign]
        if forget:
            b.forget("xephang/tuong-linh/req/hub/#")
        if subscribe:
            b.subscribe("xephang/tuong-linh/req/hub/#", lambda m: None, retained=False)
        b.subscribe(marker, lambda m: None, retained=False)
        b.start()
        try:
            assert b.wait_connected(5)
            # its own publishes reach the broker after its (un)subscriptions, in order; the marker last
            b.publish(req, b"{}")
            b.publish(marker, b"{}")
            assert pump_until([b], lambda: marker in seen)
            return ["(foreign)"] * b.foreign_dropped + [t for t in seen if t in (req, marker)]
        finally:
            b.stop()

    assert session(subscribe=True) == [req, marker]  # an older hub, reading the requests itself
    # the session still holds its filter: fed without asking (dropped before any queue since 2026-12-07,
    # as anything no filter of ours asked for: test_a_subscription_someone_put_in_our_session_floods_no_queue)
    assert session() == ["(foreign)", marker]
    assert session(forget=True) == [marker]
    assert session() == [marker]  # gone for good


def test_a_forgotten_filter_subscribed_while_the_connect_is_handled_stays_subscribed(tmp_path):
    """The hub forgets the requests' filter (its inbox reads them); the broker refuses the inbox, so
    the owner thread subscribes to that filter on the main connection, here while paho's thread is
    still in the connect callback. The connect's UNSUBSCRIBE of the forgotten filter must go out
    before that SUBSCRIBE: the other way round the hub read no request at all (CI, a loaded machine)."""
    import threading
    from types import SimpleNamespace

    f, marker = "xephang/tuong-linh/req/hub/#", "xephang/tuong-linh/reply/hub"
    b = Bus(site="tuong-linh", node="hub", state_dir=tmp_path)
    b.forget(f)
    b.subscribe(marker, lambda m: None, retained=False)
    sent: list[tuple[str, list[str]]] = []
    late = threading.Thread(target=lambda: b.subscribe(f, lambda m: None, retained=False))

    class Client:
        def subscribe(self, subs):
            topics = [t for t, _ in subs]
            if marker in topics:  # the connect's own: the owner thread subscribes meanwhile
                late.start()
                late.join(0.5)  # it cannot finish while the connect still holds the lock
            sent.append(("subscribe", topics))
            return 0, len(sent)

        def unsubscribe(self, topics):
            sent.append(("unsubscribe", list(topics)))
            return 0, len(sent)

        def publish(self, *a, **k):
            return SimpleNamespace(rc=0, mid=len(sent))

    b._client = Client()  # type: ignore[assignment]
    b._paho_connect(b._client, None, SimpleNamespace(session_present=True), SimpleNamespace(is_failure=False), None)
    late.join(5)
    assert not late.is_alive()
    last_about_f = [op for op, topics in sent if f in topics][-1]
    assert last_about_f == "subscribe", sent


@pytest.mark.parametrize("level", ["tech\n", "counter-1\n", "a\nb", "\n"])
def test_a_level_or_topic_ending_in_a_newline_is_not_the_contracts(level):
    from xephang.contract import ContractError, Topics, check_level, check_topic

    with pytest.raises(ContractError):
        check_level(level)
    with pytest.raises(ContractError):
        check_topic(f"xephang/v1/tuong-linh/reply/{level}")
    with pytest.raises(ContractError):
        Topics("tuong-linh").reply(level)


def test_a_subscription_someone_put_in_our_session_floods_no_queue(tmp_path, mosquitto):
    """One login with the board's password and client id, `R/#` subscribed in its persistent session,
    then gone: the session keeps it, and every message on the site reached the board's unbounded
    inbox (9,695 of another board's status flood). Now dropped in paho's thread and counted."""
    import threading

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from xephang.bus import client_id_for, paho_client

    broker = BrokerSettings(port=mosquitto.port)
    intruder = paho_client(broker, client_id_for("display-hall"), default_username="display-hall")
    subscribed = threading.Event()
    intruder.on_subscribe = lambda *a: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    intruder.connect("127.0.0.1", mosquitto.port, clean_start=False, properties=props)
    intruder.loop_start()
    intruder.subscribe("xephang/v1/tuong-linh/#", qos=1)
    assert subscribed.wait(5)
    intruder.disconnect()
    intruder.loop_stop()

    bus = make_bus(mosquitto, "display-hall", tmp_path)
    got: list[str] = []
    bus.subscribe("xephang/v1/tuong-linh/state/hall", lambda m: got.append(m.topic))
    bus.start()
    assert bus.wait_connected(5)
    flooder = make_bus(mosquitto, "counter-1", tmp_path)
    flooder.start()
    assert flooder.wait_connected(5)
    for _ in range(300):
        flooder.publish("xephang/v1/tuong-linh/node/counter-1/health", b"{}", qos=1)
    flooder.publish("xephang/v1/tuong-linh/state/hall", b"{}", qos=1)
    # a message our filter asked for comes too (twice: the broker sends a copy per matching subscription)
    assert pump_until([flooder, bus], lambda: set(got) == {"xephang/v1/tuong-linh/state/hall"}
                      and bus.stats.dropped_by_code.get("foreign", 0) >= 300, timeout=30)
    assert bus.inbox.qsize() < 50 and bus.stats.received < 50  # what it asked for, and the bus's own
    flooder.stop()
    bus.stop()


def test_a_payload_nested_past_the_contracts_depth_is_bad_json_and_the_deepest_real_one_is_not():
    """900 levels of {"a": …} is 5 KB, under the parser's own limit: a config push like it reached
    deep_merge and deepcopy, which raised RecursionError on every daemon with no answer (~3000
    traceback lines a push). ``loads`` refuses more than MAX_DEPTH levels, iteratively."""
    from xephang.contract import MAX_DEPTH, BadPayload, ConfigSet, loads

    deep = '{"a":' * 900 + "1" + "}" * 900
    with pytest.raises(BadPayload, match=f"nested more than {MAX_DEPTH} levels") as err:
        loads(deep)
    assert err.value.code == "bad-json"
    at_limit = '{"a":' * (MAX_DEPTH - 1) + "[]" + "}" * (MAX_DEPTH - 1)  # MAX_DEPTH objects and arrays
    assert loads(at_limit)["a"]
    with pytest.raises(BadPayload):
        loads('{"a":' * (MAX_DEPTH - 1) + "[[]]" + "}" * (MAX_DEPTH - 1))
    site_push = {"schema": ConfigSet.SCHEMA, "request_id": "tech-0001", "source": "tech",
                 "config": {"services": [{"id": "ho-tich", "band": [1001, 1999]}]}}
    assert decode(ConfigSet, json.dumps(site_push).encode()).config["services"][0]["band"] == [1001, 1999]


def _depth(x) -> int:
    """Objects and arrays nested in ``x``, counted by walking it (the reference)."""
    if isinstance(x, dict):
        return 1 + max((_depth(v) for v in x.values()), default=0)
    if isinstance(x, list):
        return 1 + max((_depth(v) for v in x), default=0)
    return 0


def test_the_depth_check_on_the_text_agrees_with_walking_the_object():
    """``_too_deep`` reads the text (its strings dropped, innermost bracket pairs removed a level a
    round), which is several times cheaper than walking the object; it must say what the walk says,
    strings full of brackets and quotes included."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from xephang.contract import MAX_DEPTH, _too_deep

    text_ = st.text(alphabet=st.sampled_from('[]{}"\\ aáệ,:'), max_size=6)
    leaf = st.none() | st.booleans() | st.integers() | text_
    tree = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text_, kids, max_size=3),
                        max_leaves=60)

    def nest(x, n: int):
        for i in range(n):
            x = [x] if i % 2 else {"k[": x}
        return x

    @settings(max_examples=300, deadline=None)
    @given(tree, st.integers(min_value=0, max_value=40))
    def check(x, n):
        doc = nest(x, n)
        text = json.dumps(doc, ensure_ascii=n % 2 == 0)
        assert _too_deep(text) == (_depth(doc) > MAX_DEPTH), (text[:200], _depth(doc))

    check()
