"""Every event of the busiest ticket the hub can make is kept at the province.

The province keeps at most ``MAX_EVENTS_PER_TICKET`` events of a ticket (each new one folds them all
again). At 100, a counter's password recalling one citizen 98 times pushed the events of another
counter's later service of that ticket (its call, arrival and finish) past the cap: the province
showed the ticket called at the first counter for ever while the hub's report had it served at the
other. The hub now caps recalls per call and transfers per ticket, and the province's cap is the
contract's bound on what the hub can make of one ticket.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from hubd.engine import CommandError
from province.db import upsert_site
from province.ingest import Store
from province.synth import CentreSim
from xephang.contract import MAX_EVENTS_PER_TICKET, MAX_RECALLS_PER_VISIT, MAX_TRANSFERS_PER_TICKET

SERVES = {"ho-tich": 1, "dat-dai": 3}  # a counter of the test site that calls each service


def test_the_busiest_ticket_the_hub_allows_reaches_the_province_whole(pg, site, tmp_path):
    upsert_site(pg, site)
    sim = CentreSim(site, tmp_path / "ledger.sqlite")
    now = datetime.combine(date(2026, 11, 2), site.hours.open, sim.engine.tz).timestamp() + 600
    events: list[tuple[str, bytes]] = []

    def do(method: str, *args: object) -> None:
        nonlocal now
        now += 30
        events.extend(sim._apply(getattr(sim.engine, method)(*args, now)))

    do("issue", "ho-tich", None)
    service, visits = "ho-tich", 0
    while True:
        counter = SERVES[service]
        do("call_next", counter)
        visits += 1
        for _ in range(MAX_RECALLS_PER_VISIT):
            do("recall", counter)
        with pytest.raises(CommandError) as refused:  # one more: the officer is told to mark them absent
            do("recall", counter)
        assert refused.value.code == "recall-limit"
        do("arrived", counter)
        if visits == 1:
            do("no_show", counter)  # sent back once
            continue
        other = "dat-dai" if service == "ho-tich" else "ho-tich"
        if visits - 1 <= MAX_TRANSFERS_PER_TICKET:
            do("transfer", counter, other)
            service = other
            continue
        with pytest.raises(CommandError) as refused:
            do("transfer", counter, other)
        assert refused.value.code == "transfer-limit"
        do("finish", counter)
        do("rate", counter, 5)
        break
    sim.close()
    tid = json.loads(events[0][1])["ticket"]["id"]
    mine = [json.loads(p) for _, p in events if (json.loads(p).get("ticket") or {}).get("id") == tid]
    assert len(mine) == MAX_EVENTS_PER_TICKET == 158 and visits == MAX_TRANSFERS_PER_TICKET + 2

    res = Store(pg).write(events)
    assert res.rejected == 0
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM events WHERE ticket_id = %s", (tid,))
        assert cur.fetchone()[0] == MAX_EVENTS_PER_TICKET
        cur.execute("SELECT state, service, rating FROM tickets WHERE ticket_id = %s", (tid,))
        assert cur.fetchone() == ("done", "ho-tich", 5)
        cur.execute("SELECT counter, outcome FROM visits WHERE ticket_id = %s ORDER BY call_rev", (tid,))
        got = cur.fetchall()
    pg.commit()
    assert len(got) == visits and got[0] == (1, "no-show") and got[-1] == (1, "served")
    assert [o for _, o in got[1:-1]] == ["transferred"] * MAX_TRANSFERS_PER_TICKET
