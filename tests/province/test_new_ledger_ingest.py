"""A centre whose hub card was replaced (its ledger lost, a new one started) at the province.

The province keys tickets by (site, ticket id) and visits by (site, call revision). A new ledger
used to start both at 1: its tickets were folded into the old ledger's tickets of the same id, and
its calls were dropped as "another call's already". A new ledger now starts after the hub's clock
(``hubd.ledger.numbering_base``), so both ledgers' tickets and calls are stored as they happened.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from province.db import upsert_site
from province.ingest import Store
from province.synth import CentreSim

FIRST = date(2026, 11, 2)  # a Monday; the card is replaced that night


def _counts(events: list[tuple[str, bytes]]) -> tuple[int, int]:
    kinds = [json.loads(p)["kind"] for _, p in events]
    return kinds.count("issued"), kinds.count("called")


def test_the_tickets_and_calls_of_a_new_ledger_are_stored_beside_the_old_ones(pg, site, tmp_path):
    upsert_site(pg, site)
    old = CentreSim(site, tmp_path / "old.sqlite", seed=3)  # a ledger from before the rule: from 1
    before = old.day(FIRST, tickets=60)
    old.close()
    new = CentreSim(site, tmp_path / "new.sqlite", seed=4)
    tuesday = datetime.combine(date(2026, 11, 3), site.hours.open, new.engine.tz).timestamp()
    new.ledger.load(new.engine, now=tuesday - 3600)  # the new card's hub starts before opening
    after = new.day(date(2026, 11, 3), tickets=60)
    new.close()

    res = Store(pg).write(before + after)
    assert res.rejected == 0 and res.stored == len(before) + len(after)
    issued, calls = (a + b for a, b in zip(_counts(before), _counts(after), strict=True))
    with pg.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT day) FROM tickets")
        assert cur.fetchone() == (issued, 2)
        cur.execute("SELECT count(*) FROM visits")
        assert cur.fetchone()[0] == calls
    pg.commit()
