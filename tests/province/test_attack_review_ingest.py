"""A centre's province account attacking the ingester and the province report, found in review.

Before: what PostgreSQL refuses (a 30 February, a NUL in a summary or a board's alert, a counter
beyond ``int``, two calls claiming one rev) was found by halving the batch, one transaction after
another: 1,000 events of a 30 February took 41 s to get through, 1,000 calls claiming a stored
call's rev 29 s, while every other centre's events waited behind them. A lax value (``"inferred":
"false"``) was read by the contract as false and stored raw, where the province read it as true.
20,000 made-up services drew 20,000 bars in the wait chart: 128 s for every chart, HTML page and
workbook of the province report.
"""

from __future__ import annotations

import json
import threading
from datetime import date

import psycopg

from province.ingest import Ingester, Store
from province.reports import build_province_report, chart_pngs
from province.synth import CentreSim, site_with_slug
from tests.province.test_ingest_attack import _edited
from xephang.contract import Topics
from xephang.settings import BrokerSettings
from xephang_reports import charts

A, B = Topics("tuong-linh"), Topics("xuan-quang")
DAY = date(2026, 11, 3)


def _day(site, tmp_path, slug: str, tickets: int, seed: int = 5) -> tuple[list[tuple[str, bytes]], float]:
    sim = CentreSim(site_with_slug(site, slug), tmp_path / f"{slug}.sqlite", seed=seed)
    events = sim.day(DAY, tickets=tickets)
    now = sim.now
    sim.close()
    return events, now




def _one(dsn: str, sql: str):
    with psycopg.connect(dsn) as c:
        return c.execute(sql).fetchone()[0]


def test_what_the_database_would_refuse_costs_one_transaction_not_a_halving_per_message(tmp_path, pg_dsn, site):
    """One batch: every kind of value PostgreSQL refuses, from one centre's account and one board's
    password behind it, then another centre's day. The batch commits once (before: halved down to
    each refused message); the other centre's events are all stored, each bad one is counted."""
    mine, _ = _day(site, tmp_path, "tuong-linh", 6)
    theirs, _ = _day(site, tmp_path, "xuan-quang", 10)
    issued = next((t, p) for t, p in mine if t.endswith("/issued"))
    called = [(t, p) for t, p in mine if t.endswith("/called")]
    stored_call_rev = json.loads(called[0][1])["rev"]
    first = [*mine]  # the centre's real day, stored first
    bad = [
        _edited(*issued, event_id="feb-30", ticket_id=9001, rev=90001, ticket_day="2026-02-30"),
        _edited(*issued, event_id="year-0", ticket_id=9002, rev=90002, ticket_day="0000-01-01"),
        _edited(*issued, event_id="big-counter", ticket_id=9003, rev=90003, counter=2**31),
        _edited(*issued, event_id="big-number", ticket_id=9004, rev=90004, ticket_number=-2**31 - 1),
        _edited(*issued, event_id="big-id", ticket_id=2**63, rev=90005),
        _edited(*issued, event_id="big-rev", ticket_id=9006, rev=2**63),
        _edited(*called[0], event_id="stolen-call-rev", ticket_id=9007),  # a stored call's rev
        _edited(*called[1], event_id="call-rev-a", ticket_id=9008, rev=90008),
        _edited(*called[1], event_id="call-rev-b", ticket_id=9009, rev=90008),  # the batch's own, twice
        (A.state_summary(), b'{"site": "tuong-linh", "day": "2026-02-31", "at": 1}'),
        (A.state_summary(), b'{"site": "tuong-linh", "day": "2026-11-03", "at": 1, "x": "a\\u0000"}'),
        (A.event("summary", "hourly"), b'{"site": "tuong-linh", "day": "2026-11-03", "hour": 9, "at": 1, "x": "\\u0000"}'),
        (A.alert("dispenser-1", "paper-out"), b'{"node": "dispenser-1", "id": "paper-out", "message_vi": "h\\u0000"}'),
        (A.health("counter-1"), b'{"node": "counter-1", "role": "counter", "details": {"x": "\\u0000"}}'),
    ]
    ing = Ingester(dsn=pg_dsn, broker=BrokerSettings())
    stop = threading.Event()
    assert ing._commit_batch([(0, i, 1, t, p) for i, (t, p) in enumerate(first)], stop)
    batches = ing.stats.batches
    batch = [*bad, *theirs]
    assert ing._commit_batch([(0, i, 1, t, p) for i, (t, p) in enumerate(batch)], stop)
    assert ing.stats.batches - batches == 1  # one transaction: nothing was found by halving
    assert ing.stats.rejected == len(bad) - 1  # the first of the batch's two calls on one rev is kept
    assert _one(pg_dsn, "SELECT count(*) FROM events WHERE site = 'xuan-quang'") == len(theirs)
    assert _one(pg_dsn, "SELECT count(*) FROM events WHERE site = 'tuong-linh'") == len(mine) + 1
    assert _one(pg_dsn, "SELECT ticket_id FROM visits WHERE site = 'tuong-linh' AND call_rev = 90008") == 9008
    assert _one(pg_dsn, f"SELECT ticket_id FROM visits WHERE site = 'tuong-linh' AND call_rev = {stored_call_rev}") \
        == json.loads(called[0][1])["ticket"]["id"]
    assert ing.stats.db_errors == 0


def test_a_lax_value_is_stored_and_counted_as_the_contract_reads_it(tmp_path, pg, site):
    """The contract reads ``"inferred": "false"`` as false, ``"2"`` as 2: so must the province's rows
    and figures. Before, every finish so sent counted as inferred (``*``) in the province report
    though the centre's own report had none, and the raw strings stayed in ``events.payload``."""
    events, now = _day(site, tmp_path, "tuong-linh", 20)
    said_false = 0
    lax = []
    for t, p in events:
        body = json.loads(p)
        if t.endswith("/finished") and not body.get("inferred"):
            body["inferred"] = "false"
            said_false += 1
        if t.endswith("/called") and body.get("counter") is not None:
            body["counter"] = str(body["counter"])
        if t.endswith("/rated"):
            body["score"] = str(body["score"])
        lax.append((t, json.dumps(body).encode()))
    assert said_false >= 5
    Store(pg).write(events)
    honest = build_province_report(pg, period="2026-11-03", group_by="site", now=now, method="full")["totals"]
    pg.execute("TRUNCATE events, tickets, visits")
    pg.commit()
    Store(pg).write(lax)
    got = build_province_report(pg, period="2026-11-03", group_by="site", now=now, method="full")["totals"]
    assert got["flags"]["inferred"] == honest["flags"]["inferred"]
    assert got["ratings"] == honest["ratings"] and got["served"] == honest["served"]
    kinds = pg.execute("SELECT jsonb_typeof(payload->'inferred'), count(*) FROM events WHERE kind = 'finished' "
                       "AND payload ? 'inferred' GROUP BY 1").fetchall()
    assert dict(kinds).get("string") is None and dict(kinds)["boolean"] >= said_false
    assert pg.execute("SELECT count(*) FROM events WHERE kind IN ('called', 'rated') AND "
                      "jsonb_typeof(COALESCE(payload->'score', payload->'counter')) = 'string'").fetchone()[0] == 0
    pg.commit()


def test_made_up_services_cannot_slow_the_province_charts(tmp_path, pg, site, monkeypatch):
    """One centre's account names 300 services (a ticket each) beside a real day: the wait chart
    draws the 24 with most waits (before: a bar each, 128 s at 20,000), the real ones among them."""
    events, now = _day(site, tmp_path, "xuan-quang", 40)
    issued = next((t, p) for t, p in events if t.endswith("/issued"))
    called = next((t, p) for t, p in events if t.endswith("/called"))
    junk = []
    for i in range(300):
        svc = f"made-up-{i}"
        junk.append(_edited(issued[0].replace("xuan-quang", "tuong-linh"), issued[1], event_id=f"i{i}",
                            ticket_id=50_000 + i, rev=500_000 + 2 * i, ticket_service=svc))
        junk.append(_edited(called[0].replace("xuan-quang", "tuong-linh"), called[1], event_id=f"c{i}",
                            ticket_id=50_000 + i, rev=500_001 + 2 * i, ticket_service=svc))
    Store(pg).write(events + junk)
    rep = build_province_report(pg, period="2026-11-03", group_by="service", now=now, method="full")
    assert len(rep["wait_hist"]) > 300
    drawn = []
    real_fit = charts._fit
    monkeypatch.setattr(charts, "_fit", lambda d, text, *a, **kw: drawn.append(text) or real_fit(d, text, *a, **kw))
    chart_pngs(rep)
    bars = [t for t in drawn if t in {h["label"] for h in rep["wait_hist"]}]
    assert len(bars) <= 24  # WAIT_CHART_MAX_SERVICES
    real = {h["label"] for h in rep["wait_hist"] if not h["service"].startswith("made-up-")}
    assert real <= set(bars)  # the real services have the most waits: they are drawn


def test_one_ticket_cannot_be_given_events_without_end(tmp_path, pg_dsn, site):
    """Every new event of a ticket makes the ingester read and fold all of that ticket's events again:
    a centre's account that gave one ticket 30,000 (recalls, say) made each further one cost 1.2-1.6 s,
    every centre waiting. A ticket keeps at most MAX_EVENTS_PER_TICKET (a real one has ~5); the rest
    are counted as rejected, and the batch's other events are stored."""
    from province.ingest import MAX_EVENTS_PER_TICKET

    events, _ = _day(site, tmp_path, "tuong-linh", 8)
    called = next((t, p) for t, p in events if t.endswith("/called"))
    topic = called[0].rsplit("/", 1)[0] + "/recalled"
    tid = json.loads(called[1])["ticket"]["id"]
    recalls = [_edited(topic, called[1], event_id=f"recall-{i}", kind="recalled", rev=700_000 + i)
               for i in range(MAX_EVENTS_PER_TICKET + 150)]
    ing = Ingester(dsn=pg_dsn, broker=BrokerSettings())
    stop = threading.Event()
    for chunk in (events + recalls[:120], recalls[120:]):
        assert ing._commit_batch([(0, i, 1, t, p) for i, (t, p) in enumerate(chunk)], stop)
    held = _one(pg_dsn, f"SELECT count(*) FROM events WHERE site = 'tuong-linh' AND ticket_id = {tid}")
    assert held == MAX_EVENTS_PER_TICKET == 158  # the contract's bound on what the hub makes of a ticket
    assert ing.stats.stored == len(events) + MAX_EVENTS_PER_TICKET - sum(
        json.loads(p)["ticket"]["id"] == tid for _, p in events)
    assert ing.stats.rejected == len(events) + len(recalls) - ing.stats.stored
    assert _one(pg_dsn, "SELECT count(*) FROM tickets WHERE site = 'tuong-linh'") == len(
        {json.loads(p)["ticket"]["id"] for t, p in events if "/ticket/" in t})


def test_junk_from_a_centre_writes_a_bounded_number_of_lines_into_the_journal(tmp_path, pg, site, caplog):
    """1,000 refused messages a batch were 1,000 warnings a batch; now 20 and one line counting the rest."""
    events, _ = _day(site, tmp_path, "tuong-linh", 2)
    issued = next((t, p) for t, p in events if t.endswith("/issued"))
    junk = [_edited(*issued, event_id=f"j{i}", ticket_day="2026-02-30") for i in range(300)]
    with caplog.at_level("WARNING", logger="province.ingest"):
        res = Store(pg).write(junk)
    assert res.rejected == 300
    lines = [r.getMessage() for r in caplog.records if r.name == "province.ingest"]
    assert len(lines) == 21 and "280 more messages" in lines[-1]
