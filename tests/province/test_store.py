"""The ingester's store against a real PostgreSQL, fed with a real hub engine's events.

Stories: a province officer's report for a centre equals that centre's own report; redelivery,
replays and arrival in any order change nothing; the schema upgrades itself once.
"""

from __future__ import annotations

import random
from datetime import date

import pytest

from hubd.reports import report_from_ledger
from province.db import MIGRATIONS, ProvinceDbError, migrate, schema_version, upsert_site
from province.ingest import Store
from province.reports import build_province_report
from province.synth import CentreSim, site_with_slug
from tests.province.helpers import figures, snapshot

FIRST = date(2026, 11, 2)  # a Monday


@pytest.fixture(scope="module")
def centres(tmp_path_factory, site):
    """Three days at two centres: the ledgers (for the centres' own reports) and the events."""
    out = []
    for i, slug in enumerate(("tuong-linh", "xuan-quang")):
        s = site_with_slug(site, slug)
        sim = CentreSim(s, tmp_path_factory.mktemp(slug) / "ledger.db", seed=i + 7)
        events = sim.days(FIRST, 3, tickets=90 + 30 * i)
        out.append((s, sim, events))
    now = max(sim.now for _, sim, _ in out) + 60
    for _, sim, _ in out:
        sim.close()
    return out, now


def ingest(conn, messages, *, seed=0, dup=0.0, shuffle=False):
    rng = random.Random(seed)
    msgs = list(messages)
    if dup:
        msgs += rng.sample(msgs, int(len(msgs) * dup))
    if shuffle:
        rng.shuffle(msgs)
    store = Store(conn)
    i = 0
    while i < len(msgs):
        n = rng.randint(1, 400)
        store.write(msgs[i:i + n])
        i += n


def test_province_figures_for_each_centre_equal_its_own_report(pg, centres):
    data, now = centres
    for s, _, events in data:
        upsert_site(pg, s)
        ingest(pg, events, seed=3, dup=0.2, shuffle=True)
    period = f"{FIRST.isoformat()}..2026-11-04"
    by_site_service = build_province_report(pg, period=period, group_by="site,service", now=now)
    by_site = build_province_report(pg, period=period, group_by="site", now=now)
    by_day = build_province_report(pg, period=period, group_by="day", now=now)
    issued_sum = 0
    for s, sim, _ in data:
        slug = s.site.slug
        own = report_from_ledger(sim.ledger.path, s, period=period, group_by="service", now=now)
        assert own["totals"]["issued"] > 200 and own["totals"]["served"] > 100
        rows = {r["keys"]["service"]: r for r in by_site_service["rows"] if r["keys"]["site"] == slug}
        for row in own["rows"]:
            if row["issued"] or row["calls"]:
                assert figures(rows[row["key"]]) == figures(row), (slug, row["key"])
        [site_row] = [r for r in by_site["rows"] if r["key"] == slug]
        assert figures(site_row) == figures(own["totals"])
        issued_sum += own["totals"]["issued"]
        own_days = report_from_ledger(sim.ledger.path, s, period=period, group_by="day", now=now)
        assert [r["key"] for r in own_days["rows"]] == [r["keys"]["day"] for r in by_day["rows"]]
    assert by_site["totals"]["issued"] == issued_sum == sum(r["issued"] for r in by_day["rows"])


def test_redelivery_replay_and_any_arrival_order_give_the_same_rows(pg, centres):
    data, _ = centres
    events = [m for _, _, ev in data for m in ev]
    ingest(pg, events)
    in_order = snapshot(pg)
    assert len(in_order["events"]) == len(events)
    # the whole history again (a replay), then again shuffled with duplicates: nothing changes
    res = Store(pg).write(events)
    assert res.stored == 0 and res.duplicates == len(events)
    ingest(pg, events, seed=5, dup=0.5, shuffle=True)
    assert snapshot(pg) == in_order
    # from scratch, newest first (a centre's backlog arriving backwards): the same rows
    with pg.cursor() as cur:
        cur.execute("TRUNCATE events, tickets, visits")
    pg.commit()
    ingest(pg, list(reversed(events)), seed=9)
    assert snapshot(pg) == in_order


def test_malformed_messages_are_counted_and_do_not_block_the_batch(pg, centres):
    data, _ = centres
    good = data[0][2][:50]
    res = Store(pg).write([("xephang/v1/tuong-linh/event/ticket/issued", b"{not json"),
                           ("xephang/v1/tuong-linh/req/hub/call-next", b"{}"), *good])
    assert res.rejected == 2 and res.stored == 50


def test_daily_summary_keeps_the_newest(pg):
    topic = "xephang/v1/tuong-linh/state/summary"
    body = '{"schema":"xephang.state.summary.v1","site":"tuong-linh","day":"2026-11-02","at":%s,"issued":%s}'
    Store(pg).write([(topic, (body % (200, 9)).encode()), (topic, (body % (100, 3)).encode())])
    Store(pg).write([(topic, (body % (150, 5)).encode())])
    with pg.cursor() as cur:
        cur.execute("SELECT at, payload->>'issued' FROM daily_summaries")
        assert cur.fetchall() == [(200.0, "9")]


def test_migrations_are_versioned_and_run_once(pg):
    newest = max(v for v, _, _ in MIGRATIONS)
    assert schema_version(pg) == newest
    assert migrate(pg) == []
    with pg.cursor() as cur:
        cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, 'from the future')", (newest + 1,))
    pg.commit()
    with pytest.raises(ProvinceDbError, match="newer"):
        migrate(pg)


def test_province_report_command_writes_csv_and_xlsx(pg, pg_dsn, centres, tmp_path, capsys):
    import csv

    from xephang.cli import main

    data, _ = centres
    for s, _, events in data:
        upsert_site(pg, s)
        Store(pg).write(events)
    out_csv, out_xlsx = tmp_path / "q4.csv", tmp_path / "q4.xlsx"
    rc = main(["province-report", "--dsn", pg_dsn, "--period", "2026-Q4", "--by", "site,service",
               "--csv", str(out_csv), "--xlsx", str(out_xlsx)])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "Toàn tỉnh — Quý IV/2026" in shown and "Tổng cộng" in shown
    rows = list(csv.reader(out_csv.open(encoding="utf-8-sig")))
    assert rows[0][:3] == ["Trung tâm — Lĩnh vực", "Lấy số", "Đã phục vụ"]
    assert len(rows) == 1 + 2 * 4 + 1  # two centres × four services, and the total
    assert int(rows[-1][1]) == sum(int(r[1]) for r in rows[1:-1])
    assert out_xlsx.stat().st_size > 4000
    assert main(["province-report", "--dsn", pg_dsn, "--by", "officer"]) == 2
