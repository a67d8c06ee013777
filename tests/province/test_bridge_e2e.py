"""A busy day at two centres, each a real hub on its own Mosquitto bridged to the province broker.

The province link goes down (the province broker stops) in the middle of the morning and comes
back; later the ingester itself stops and starts again. The centres keep working alone. In the
end PostgreSQL holds every event of both ledgers once, and the province report equals what each
centre's own report says.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from contextlib import ExitStack
from datetime import datetime

import pytest

from hubd.testing import running_hub
from province.db import connect, migrate, upsert_site
from province.ingest import Ingester
from province.reports import build_province_report
from tests.province.helpers import add, additive, figures, wait_for
from xephang.bus import Bus
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import CallNext, Finish, IssueTicket, NoShow, Rate, Transfer, new_request_id
from xephang.settings import BrokerSettings, load_site
from xephang_ops.bridgeconf import bridge_conf_text
from xephang_ops.mosquitto import Mosquitto, find_mosquitto
from xephang_reports.build import report_from_ledger

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SLUGS = ("tuong-linh", "xuan-quang")
OPEN = datetime(2026, 11, 3, 7, 30, tzinfo=VN_TZ).timestamp()  # a Tuesday morning


def ledger_event_ids(path) -> set[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in db.execute("SELECT event_id FROM events")}
    finally:
        db.close()


class Centre:
    """A site file, a bridged broker, a hub and a technician's bus that presses the buttons."""

    def __init__(self, stack: ExitStack, tmp, slug: str, province_port: int, clock: ManualClock, template: str):
        self.slug = slug
        self.site_file = tmp / f"{slug}.toml"
        self.site_file.write_text(template.replace('slug = "tuong-linh"', f'slug = "{slug}"'))
        self.site = load_site(self.site_file)
        conf = bridge_conf_text(site=slug, address=f"127.0.0.1:{province_port}", restart_s=(1, 1))
        self.broker = Mosquitto(tmp / f"broker-{slug}", extra_conf=conf).start()
        stack.callback(self.broker.kill)
        self.hub = stack.enter_context(running_hub(self.broker.port, tmp / f"hub-{slug}", self.site_file,
                                                   clock=clock, site=slug))
        self.ledger = tmp / f"hub-{slug}" / "ledger.sqlite"
        self.bus = Bus(site=slug, node="tech", broker=BrokerSettings(port=self.broker.port), state_dir=tmp / f"c-{slug}")
        self.bus.start()
        stack.callback(self.bus.stop)
        assert self.bus.wait_connected(5)
        self.serving: dict[int, str] = {}  # counter → service of the ticket it serves
        self.finished: set[int] = set()

    def press(self, req) -> dict | None:
        r = self.bus.request_sync(req, timeout_s=3)
        assert r is not None, f"{self.slug}: no reply to {req.ACTION}"
        return r.data if r.status == "ok" else None

    def step(self, rng: random.Random) -> None:
        """One press somewhere in the centre."""
        services = [s.id for s in self.site.services]
        if rng.random() < 0.3:
            self.press(IssueTicket(request_id=new_request_id(), source="tech", service=rng.choice(services)))
            return
        n = rng.choice([c.number for c in self.site.counters])
        kw = {"request_id": new_request_id(), "source": "tech", "counter": n}
        if n not in self.serving:
            if n in self.finished and rng.random() < 0.5:
                self.finished.discard(n)
                self.press(Rate(**kw, score=rng.choice((2, 3, 4, 5, 5))))
                return
            data = self.press(CallNext(**kw))
            if data and data.get("ticket"):
                self.serving[n] = data["ticket"]["service"]
            return
        x = rng.random()
        if x < 0.6:
            self.press(Finish(**kw))
            self.finished.add(n)
        elif x < 0.75:
            self.press(NoShow(**kw))
        elif x < 0.85:
            to = rng.choice([s for s in services if s != self.serving[n]])
            self.press(Transfer(**kw, to_service=to))
        else:
            data = self.press(CallNext(**kw))  # Next while serving: an inferred finish
            if data and data.get("ticket"):
                self.serving[n] = data["ticket"]["service"]
                return
        self.serving.pop(n, None)


def test_link_cut_during_a_busy_day_loses_and_duplicates_nothing(tmp_path, pg_dsn, site_file):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    rng = random.Random(11)
    clock = ManualClock(OPEN)
    template = site_file.read_text()
    with ExitStack() as stack:
        province = Mosquitto(tmp_path / "province", extra_conf="max_queued_messages 200000").start()
        stack.callback(province.kill)
        centres = [Centre(stack, tmp_path, slug, province.port, clock, template) for slug in SLUGS]
        with connect(pg_dsn) as conn:
            migrate(conn)
            for c in centres:
                upsert_site(conn, c.site)

        def start_ingester() -> tuple[Ingester, threading.Event, threading.Thread]:
            ing = Ingester(dsn=pg_dsn, broker=BrokerSettings(port=province.port), batch_wait_s=0.02)
            stop = threading.Event()
            t = threading.Thread(target=ing.run, args=(stop,), daemon=True)
            t.start()
            assert ing.connected.wait(10)
            return ing, stop, t

        ing, stop, t = start_ingester()

        def day(steps: int) -> None:
            for _ in range(steps):
                clock.advance(rng.uniform(5, 60))
                for c in centres:
                    c.step(rng)

        day(80)
        before = {c.slug: len(ledger_event_ids(c.ledger)) for c in centres}
        province.stop()  # the province link is down: the centres work on
        day(120)
        backlog = {c.slug: len(ledger_event_ids(c.ledger)) - before[c.slug] for c in centres}
        province.start()
        day(40)
        stop.set()  # the ingester goes away for a while: the province broker keeps its session
        t.join(10)
        day(40)
        ing, stop, t = start_ingester()
        day(20)

        expected = {(c.slug, e) for c in centres for e in ledger_event_ids(c.ledger)}
        assert all(n > 100 for n in backlog.values()), backlog  # queued at the centres while cut off

        def stored() -> set[tuple[str, str]]:
            with connect(pg_dsn) as conn:
                return set(conn.execute("SELECT site, event_id FROM events").fetchall())

        wait_for(lambda: stored() >= expected, 30, "every centre event in PostgreSQL")
        stop.set()
        t.join(10)
        with connect(pg_dsn) as conn:
            rows = conn.execute("SELECT site, event_id FROM events").fetchall()
            summaries = {r[0] for r in conn.execute("SELECT site FROM daily_summaries").fetchall()}
            now = clock.now()
            period = "2026-11-03"
            by_service = build_province_report(conn, period=period, group_by="site,service", now=now)
            by_site = build_province_report(conn, period=period, group_by="site", now=now)
        assert len(rows) == len(set(rows)) == len(expected) and set(rows) == expected
        assert summaries == set(SLUGS)  # the retained daily summaries crossed the bridge too
        totals = []
        for c in centres:
            own = report_from_ledger(c.ledger, c.site, period=period, group_by="service", now=now)
            assert own["totals"]["served"] > 20
            mine = {r["keys"]["service"]: r for r in by_service["rows"] if r["keys"]["site"] == c.slug}
            for row in own["rows"]:
                if row["issued"] or row["calls"]:
                    assert figures(mine[row["key"]]) == figures(row), (c.slug, row["key"])
            [site_row] = [r for r in by_site["rows"] if r["key"] == c.slug]
            assert figures(site_row) == figures(own["totals"])  # every figure, means and P90s included
            totals.append(additive(own["totals"]))
        # the province total is the centres' own totals added up, every count and every score
        assert additive(by_site["totals"]) == add(totals) == additive(by_service["totals"])
