"""What one centre's province account, or one board's password behind its centre's bridge, could do to
the province's ingester, found by attacking the real components (a province Mosquitto, `xephang
ingest`, PostgreSQL), and what it does now.

Before: two events claiming one `rev`, or a lone UTF-16 surrogate in a board's health, ended the
ingester, and the broker gave the message back on every restart (the whole province's ingest
stopped); a 6,000-character event id made PostgreSQL refuse its index row, which the ingester took
for an outage and retried for ever; a wait of 1e308 s was stored and every province report that
summed it failed; a board looping its status or alerts, or a centre making up nodes, grew the
database without end; a QoS 0 flood grew the ingester's memory without end.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest

from province.devices import ALERT_TEXT_MAX, LOG_ROWS_PER_HOUR, MAX_NODES_PER_SITE, list_devices
from province.ingest import QOS0_QUEUED, Ingester, Store, _fault
from province.synth import CentreSim, site_with_slug
from tests.province.helpers import publish, wait_for
from xephang.contract import Alert, BadPayload, NodeHealth, NodeStatus, TicketEvent, Topics, decode, loads
from xephang.settings import BrokerSettings
from xephang_ops.mosquitto import Mosquitto, find_mosquitto

A, B = Topics("tuong-linh"), Topics("xuan-quang")


def _events(site, tmp_path, slug: str, tickets: int = 12) -> list[tuple[str, bytes]]:
    sim = CentreSim(site_with_slug(site, slug), tmp_path / f"{slug}.sqlite", seed=5)
    events = sim.day(date(2026, 11, 3), tickets=tickets)
    sim.close()
    return events


def _edited(topic: str, payload: bytes, **changes) -> tuple[str, bytes]:
    body = json.loads(payload)
    for k, v in changes.items():
        if k.startswith("ticket_"):
            body["ticket"][k[len("ticket_"):]] = v
        else:
            body[k] = v
    return topic, json.dumps(body).encode()


def _count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as c:
        return int(c.execute(sql).fetchone()[0])


# ---------------------------------------------------------------------------------------- the payloads


def test_a_lone_surrogate_is_no_payload_and_a_pair_is_one_character():
    """``"\\ud800"`` is valid JSON whose text no UTF-8 can hold; psycopg could not send it and the
    ingester ended on it (a board's own health, via its centre's bridge)."""
    health = b'{"node": "counter-1", "role": "counter", "details": {"x": "\\ud800"}}'
    with pytest.raises(BadPayload) as e:
        decode(NodeHealth, health)
    assert e.value.code == "bad-json" and "surrogate" in str(e.value)
    with pytest.raises(BadPayload):
        loads(b'{"day": "2026-11-03", "hour": 9, "at": 1, "x": "a\\udfffb"}')
    pair = decode(Alert, b'{"node": "dispenser-1", "id": "paper-out", "message_vi": "\\ud83d\\ude00 h\\u1ebft gi\\u1ea5y"}')
    assert pair.message_vi == "\U0001f600 hết giấy"
    assert loads(b'{"path": "C:\\\\ud800"}') == {"path": "C:\\ud800"}  # an escaped backslash, then text


def test_keys_and_times_a_hub_never_sends_are_refused_by_the_contract(site, tmp_path):
    topic, payload = _events(site, tmp_path, "tuong-linh", 2)[0]
    for change in ({"event_id": "f" * 6000}, {"event_id": "a b"}, {"from_service": "x" * 6000},
                   {"from_service": "=HYPERLINK(\"x\")"}, {"ticket_called_at": 1e308}, {"ticket_issued_at": -5.0},
                   {"at": 5e9}, {"walk_s": -1.0}):
        with pytest.raises(BadPayload) as e:
            decode(TicketEvent, _edited(topic, payload, **change)[1])
        assert e.value.code == "invalid", change


def test_the_database_refusing_a_message_is_told_apart_from_a_database_that_is_away(pg):
    """A real refusal of each kind: an index row over 2,704 bytes (class 54, psycopg calls it an
    OperationalError, as it does a lost connection), a duplicate key (23), a value out of range (22)."""
    pg.execute("CREATE TEMP TABLE k (key text PRIMARY KEY, n int)")
    pg.commit()
    faults = []
    for sql in ("INSERT INTO k VALUES ((SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i), 1)",
                "INSERT INTO k VALUES ('a', 1), ('a', 2)", "INSERT INTO k VALUES ('b', 2147483648)"):
        with pytest.raises(psycopg.Error) as e:
            pg.execute(sql)
        pg.rollback()
        faults.append(_fault(e.value))
    assert faults == ["message"] * 3
    assert _fault(psycopg.OperationalError("server closed the connection unexpectedly")) == "outage"
    assert _fault(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")) == "message"
    assert _fault(psycopg.errors.UndefinedTable("relation does not exist")) == "ours"  # a bug: end loudly


# ---------------------------------------------------------------------------------------- through the broker


def test_poison_a_centres_password_sends_costs_only_itself_and_the_province_goes_on(tmp_path, pg_dsn, site):
    """Through a real province broker and the ingester's own loop: every message that ended, wedged or
    poisoned the ingester before, then another centre's events. Each bad one is counted and
    acknowledged once; the other centre's events are all stored; the ingester is still running."""
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    mine = _events(site, tmp_path, "tuong-linh", 6)
    theirs = _events(site, tmp_path, "xuan-quang", 10)
    called = [(t, p) for t, p in mine if t.endswith("/called")]
    (t1, p1), (t2, p2) = called[0], called[1]
    rev = json.loads(p1)["rev"]
    poison = [
        _edited(t2, p2, rev=rev, event_id="collides-0001"),  # a second ticket claiming the first's call rev
        (t1, p1),
        (A.health("counter-1"), b'{"node": "counter-1", "role": "counter", "details": {"x": "\\ud800"}}'),
        (A.alert("dispenser-1", "paper-out"), b'{"node": "dispenser-1", "id": "paper-out", "message_vi": "\\udc00"}'),
        _edited(t1, p1, event_id="e" * 6000),
        _edited(t1, p1, event_id="huge-wait-0001", ticket_called_at=1e308),
        (A.state_summary(), b'{"site": "tuong-linh", "day": "\\ud800", "at": 1}'),
    ]
    with Mosquitto(tmp_path / "province", extra_conf="max_queued_messages 100000") as prov:
        ing = Ingester(dsn=pg_dsn, broker=BrokerSettings(port=prov.port), batch_max=100, batch_wait_s=0.05)
        stop, died = threading.Event(), []

        def run() -> None:
            try:
                ing.run(stop)
            except BaseException as exc:  # noqa: BLE001 - what ended it is the finding
                died.append(exc)

        th = threading.Thread(target=run, daemon=True)
        th.start()
        assert ing.connected.wait(10)
        try:
            publish(prov.port, [*poison, *theirs], retain=False)
            wait_for(lambda: _count(pg_dsn, "SELECT count(*) FROM events WHERE site = 'xuan-quang'") == len(theirs)
                     or died, 30, "the other centre's events stored")
            assert not died, died
            assert th.is_alive()
        finally:
            stop.set()
            th.join(10)
    assert ing.stats.rejected >= len(poison) - 1  # the first of the colliding pair is stored
    assert _count(pg_dsn, "SELECT count(*) FROM events WHERE site = 'tuong-linh'") == 1
    assert _count(pg_dsn, "SELECT count(*) FROM visits WHERE site = 'tuong-linh'") == 1
    assert _count(pg_dsn, "SELECT count(*) FROM tickets WHERE called_at > 1e10") == 0
    assert ing.stats.db_errors == 0  # nothing was taken for an outage


def test_a_qos_0_flood_waits_in_a_bounded_queue_and_qos_1_is_never_dropped(pg_dsn):
    """A centre's password publishing at QoS 0 is delivered at QoS 0, outside the broker's receive
    maximum: 610 MB of queued messages in a minute. At most QOS0_QUEUED of them wait."""
    ing = Ingester(dsn=pg_dsn, broker=BrokerSettings())
    for _ in range(QOS0_QUEUED + 500):
        ing._on_message(None, None, SimpleNamespace(mid=0, qos=0, topic=A.health("counter-1"), payload=b"{}"))
    for i in range(300):
        ing._on_message(None, None, SimpleNamespace(mid=i + 1, qos=1, topic=A.state_summary(), payload=b"{}"))
    assert ing._inbox.qsize() == QOS0_QUEUED + 300 and ing.stats.qos0_dropped == 500


# ---------------------------------------------------------------------------------------- bounded history


def _now_rows(pg, sql: str, *args) -> int:
    n = pg.execute(sql, args).fetchone()[0]
    pg.commit()
    return int(n)


def test_a_boards_password_looping_its_status_and_alerts_keeps_the_history_bounded(pg):
    """10,000 online/offline statuses and 5,000 raise/clear cycles of a 60,000-character alert wrote a
    row each (the alert log grew by 64 MB). Past LOG_ROWS_PER_HOUR in an hour, a change updates the
    newest row: the node's state and its last change stay right."""
    store = Store(pg)
    msgs = []
    for s in range(1, 301):
        msgs.append((A.status("counter-2"), NodeStatus(node="counter-2", online=s % 2 == 1, session=s,
                                                       role="counter").to_json()))
    store.write(msgs)
    long = "Hết giấy " * 1000
    for _ in range(150):
        store.write([(A.alert("counter-2", "counter-config"),
                      Alert(node="counter-2", id="counter-config", message_vi=long).to_json()),
                     (A.alert("counter-2", "counter-config"), b"")])
    store.write([(A.alert("counter-2", "counter-config"), Alert(node="counter-2", id="counter-config",
                                                                message_vi=long).to_json())])
    assert _now_rows(pg, "SELECT count(*) FROM device_status_log") == LOG_ROWS_PER_HOUR
    assert _now_rows(pg, "SELECT count(*) FROM device_alert_log") == LOG_ROWS_PER_HOUR
    assert _now_rows(pg, "SELECT max(length(message_vi)) FROM device_alert_log") == ALERT_TEXT_MAX
    now = datetime.now(UTC)
    [d] = list_devices(pg, start=now - timedelta(hours=1), end=now + timedelta(seconds=1))
    assert d["online"] is False and [a["alert"] for a in d["alerts"]] == ["counter-config"]
    assert len(d["alerts"][0]["message_vi"]) == ALERT_TEXT_MAX
    last = pg.execute("SELECT online, session FROM device_status_log ORDER BY at DESC, session DESC LIMIT 1").fetchone()
    assert last == (False, 300)  # the newest row says what the node said last
    # another node of the same centre is not held back by the looping one
    store.write([(A.status("counter-3"), NodeStatus(node="counter-3", online=True, session=1, role="counter").to_json())])
    assert _now_rows(pg, "SELECT count(*) FROM device_status_log WHERE node = 'counter-3'") == 1


def test_a_centre_cannot_make_up_nodes_without_end_and_its_link_flaps_keep_a_bounded_history(pg):
    """2,000 made-up nodes with 32 alerts each grew the database by 127 MB; 5,000 flaps of a centre's
    link state wrote 2,500 cuts."""
    store = Store(pg)
    statuses = [(A.status(f"made-up-{i}"), NodeStatus(node=f"made-up-{i}", online=True, session=1,
                                                      role="display").to_json()) for i in range(MAX_NODES_PER_SITE - 5)]
    res = store.write(statuses)
    assert res.rejected == 0
    alerts = [(A.alert(f"alert-only-{i}", "paper-out"), Alert(node=f"alert-only-{i}", id="paper-out").to_json())
              for i in range(20)]
    res = store.write(alerts)
    assert res.rejected == 15  # five more fit; alerts of a node with no status count as a node too
    res = store.write([(A.status("made-up-x"), NodeStatus(node="made-up-x", online=True, session=1,
                                                         role="display").to_json())])
    assert res.rejected == 1
    # known nodes go on, and another centre is not affected
    res = store.write([(A.status("made-up-1"), NodeStatus(node="made-up-1", online=False, session=1,
                                                         role="display").to_json()),
                       (B.status("hub"), NodeStatus(node="hub", online=True, session=1, role="hub").to_json())])
    assert res.rejected == 0
    store.write([(A.bridge_state(), b"0" if i % 2 == 0 else b"1") for i in range(400)])
    assert _now_rows(pg, "SELECT count(*) FROM site_link_cuts") == LOG_ROWS_PER_HOUR
    store.write([(A.bridge_state(), b"0")])  # the link is down now: the newest cut is open
    assert _now_rows(pg, "SELECT count(*) FROM site_link_cuts WHERE up_at IS NULL") == 1
    assert _now_rows(pg, "SELECT count(*) FROM site_links WHERE NOT up") == 1


def test_a_message_our_code_fails_on_is_dropped_and_a_bug_that_fails_them_all_ends_the_ingester(pg_dsn, monkeypatch):
    """A 400-digit `at` in an hourly summary passed the JSON reading and made float() overflow; the
    ingester took the OverflowError for its own bug and ended, on every redelivery. Now a message our
    code fails on is found by halving and dropped (logged with its traceback); only CODE_REFUSALS_MAX
    such messages in a row from more than one centre, with nothing stored between, end the ingester
    (then it is a bug, and the broker keeps every message for the fixed version)."""
    from province import ingest as ingest_mod
    from province.ingest import parse_hourly

    big = b'{"day": "2026-11-03", "hour": 9, "at": 1' + b"0" * 400 + b"}"
    with pytest.raises(BadPayload):
        parse_hourly(big)
    ing = Ingester(dsn=pg_dsn, broker=BrokerSettings())
    real = Store.write

    def fails_on_boom(self, messages):
        messages = list(messages)
        if any(t.endswith("/boom") for t, _ in messages):
            raise ArithmeticError("a check nobody wrote")
        return real(self, messages)

    monkeypatch.setattr(Store, "write", fails_on_boom)
    good = [(0, i, 1, A.status(f"counter-{i}"), NodeStatus(node=f"counter-{i}", online=True, session=1,
                                                         role="counter").to_json()) for i in range(1, 9)]
    boom = (0, 99, 1, "xephang/v1/tuong-linh/event/ticket/boom", b"{}")
    assert ing._commit_batch([*good[:4], boom, *good[4:]], threading.Event())
    assert ing.stats.rejected == 1 and _count(pg_dsn, "SELECT count(*) FROM devices") == 8
    # one centre's messages failing so, however many: that centre's (a board's password sending what no
    # check foresaw), dropped — ending on them ended every restart too, and no centre was stored
    for _ in range(2 * ingest_mod.CODE_REFUSALS_MAX):
        assert ing._commit_batch([boom], threading.Event())
    assert ing.stats.rejected == 1 + 2 * ingest_mod.CODE_REFUSALS_MAX
    # … and kept, not lost, should they be a bug of ours: a fixed version can store them again
    assert _count(pg_dsn, "SELECT count(*) FROM ingest_quarantine WHERE site = 'tuong-linh' AND payload = '{}' "
                          "AND topic LIKE '%/boom' AND error LIKE 'ArithmeticError%'") == 1 + 2 * ingest_mod.CODE_REFUSALS_MAX
    other = (0, 98, 1, "xephang/v1/xuan-quang/event/ticket/boom", b"{}")
    with pytest.raises(RuntimeError, match="in a row"):  # messages of two centres failing so: a bug of ours
        for i in range(ingest_mod.CODE_REFUSALS_MAX):
            ing._commit_batch([(boom, other)[i % 2]], threading.Event())


def test_a_health_with_a_role_too_long_for_a_status_is_refused_and_the_ingester_goes_on(pg_dsn):
    """200 healths of a node the province had not seen, with a 41-character role: the status built
    from them refused it with a ValidationError, taken for a bug of ours: the ingester ended after 50,
    on every restart (the messages were never acknowledged), and no centre was stored."""
    ing = Ingester(dsn=pg_dsn, broker=BrokerSettings())
    body = json.dumps({"schema": "xephang.node-health.v1", "node": "counter-7", "role": "x" * 41, "version": "1"})
    bad = [(0, i, 1, A.health("counter-7"), body.encode()) for i in range(200)]
    good = (0, 999, 1, A.status("counter-1"), NodeStatus(node="counter-1", online=True, session=1,
                                                          role="counter").to_json())
    assert ing._commit_batch([*bad, good], threading.Event())
    assert ing.stats.rejected == 200 and _count(pg_dsn, "SELECT count(*) FROM devices WHERE node = 'counter-1'") == 1
    assert _count(pg_dsn, "SELECT count(*) FROM devices WHERE node = 'counter-7'") == 0


def test_padding_a_centres_events_and_summaries_cannot_grow_the_database_without_bound(pg, site, tmp_path):
    """A centre's account padded each event with 60 KB of fields nobody reads (19 MB a second on
    disk) and sent summaries of every day from 0001 to 9999, stored whole. Now an event keeps the
    fields the contract does not read only up to 2 KB, a summary is at most 8 KB, and only of the
    days near today (five years back, tomorrow at most)."""
    store = Store(pg)
    topic, payload = _events(site, tmp_path, "tuong-linh")[0]
    padded = _edited(topic, payload, x_pad="x" * 60_000)
    small = _edited(topic, payload, x_new_field="a newer hub's", event_id="ev-small-extra")
    assert store.write([padded, small]).stored == 2
    rows = dict(pg.execute("SELECT event_id, payload::text FROM events").fetchall())
    assert max(len(p) for p in rows.values()) < 3000, {k: len(p) for k, p in rows.items()}
    assert json.loads(rows["ev-small-extra"])["x_new_field"] == "a newer hub's"  # kept: small
    assert "x_pad" not in json.loads(rows[json.loads(payload)["event_id"]])
    today = datetime.now(UTC).date()
    day = json.dumps

    def summary(d: str, **extra) -> tuple[str, bytes]:
        return A.state_summary(), day({"schema": "xephang.state.summary.v1", "site": "tuong-linh", "day": d,
                                       "at": 1_790_000_000, "issued": 3, **extra}).encode()

    def hourly(d: str) -> tuple[str, bytes]:
        return A.event("summary", "hourly"), day({"site": "tuong-linh", "day": d, "hour": 9, "at": 1}).encode()

    res = store.write([summary("0001-01-01"), summary("9999-12-31"), summary(str(today + timedelta(days=5))),
                       summary(str(today), pad="y" * 10_000), hourly("0001-01-01"), hourly("9999-12-31")])
    assert (res.rejected, res.summaries) == (6, 0)
    res = store.write([summary(str(today)), summary(str(today - timedelta(days=30))), hourly(str(today))])
    assert (res.rejected, res.summaries) == (0, 3)
