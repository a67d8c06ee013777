"""The ingester's store against a real PostgreSQL, fed with a real hub engine's events.

Stories: a province officer's report for a centre equals that centre's own report; redelivery,
replays and arrival in any order change nothing; the schema upgrades itself once.
"""

from __future__ import annotations

import random
from datetime import date

import pytest

from province.db import MIGRATIONS, ProvinceDbError, migrate, schema_version, upsert_site
from province.ingest import Store
from province.reports import build_province_report
from province.synth import CentreSim, site_with_slug
from tests.province.helpers import add, additive, figures, snapshot
from xephang_reports.build import report_from_ledger

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
    by_service = build_province_report(pg, period=period, group_by="service", now=now)
    by_day = build_province_report(pg, period=period, group_by="day", now=now)
    own_totals, own_service_rows, own_day_rows = [], {}, {}
    for s, sim, _ in data:
        slug = s.site.slug
        own = report_from_ledger(sim.ledger.path, s, period=period, group_by="service", now=now)
        assert own["totals"]["issued"] > 200 and own["totals"]["served"] > 100
        assert own["totals"]["no_shows"] and own["totals"]["voided"] and own["totals"]["transferred"]
        rows = {r["keys"]["service"]: r for r in by_site_service["rows"] if r["keys"]["site"] == slug}
        for row in own["rows"]:
            if row["issued"] or row["calls"]:
                # every figure, means, medians and P90s included, for each service of each centre
                assert figures(rows[row["key"]]) == figures(row), (slug, row["key"])
            own_service_rows.setdefault(row["key"], []).append(additive(row))
        [site_row] = [r for r in by_site["rows"] if r["key"] == slug]
        assert figures(site_row) == figures(own["totals"])
        own_totals.append(additive(own["totals"]))
        own_days = report_from_ledger(sim.ledger.path, s, period=period, group_by="day", now=now)
        assert [r["key"] for r in own_days["rows"]] == [r["keys"]["day"] for r in by_day["rows"]]
        for row in own_days["rows"]:
            own_day_rows.setdefault(row["key"], []).append(additive(row))
    # the province total is the centres' totals added up, figure by figure, in every grouping
    total = add(own_totals)
    assert total["score_5"] > 0 and total["within_target_ok"] < total["within_target_n"]
    for rep in (by_site, by_site_service, by_service, by_day):
        assert additive(rep["totals"]) == total, rep["group_by"]
    assert add([additive(r) for r in by_site["rows"]]) == total
    # a province row of a service (or a day) is that service's (day's) rows of every centre added up
    for r in by_service["rows"]:
        assert additive(r) == add(own_service_rows[r["keys"]["service"]]), r["key"]
    for r in by_day["rows"]:
        assert additive(r) == add(own_day_rows[r["keys"]["day"]]), r["key"]


def test_arrivals_wait_bands_and_counter_load_equal_the_centres_own(pg, centres):
    data, now = centres
    for s, _, events in data:
        upsert_site(pg, s)
        ingest(pg, events, seed=4)
    period = f"{FIRST.isoformat()}..2026-11-04"
    province = build_province_report(pg, period=period, group_by="site", now=now)
    arrivals, bands = [0] * 24, {}
    for s, sim, _ in data:
        own = report_from_ledger(sim.ledger.path, s, period=period, group_by="service", now=now)
        mine = build_province_report(pg, period=period, group_by="site", sites=[s.site.slug], now=now)
        # one centre: the same figures, the same counter names
        for k in ("arrivals_by_hour", "open_days", "busiest_hours", "wait_bins_min", "wait_hist"):
            assert mine[k] == own[k], (s.site.slug, k)
        assert own["counter_load"] and any(c["pauses"] for c in own["counter_load"])
        # the province has no opening times of the centres: its counter load stops at serving/idle/paused
        split = ("hours_s", "outside_s", "closed_s")
        assert [{k: v for k, v in c.items() if k != "site"} for c in mine["counter_load"]] == \
            [{k: v for k, v in c.items() if k not in split} for c in own["counter_load"]]
        arrivals = [a + b for a, b in zip(arrivals, own["arrivals_by_hour"], strict=True)]
        for h in own["wait_hist"]:
            bands[h["service"]] = [a + b for a, b in zip(bands.get(h["service"], [0] * len(h["counts"])),
                                                         h["counts"], strict=True)]
    # every centre: hours and bands add up; each counter is named after its centre
    assert province["arrivals_by_hour"] == arrivals
    assert {h["service"]: h["counts"] for h in province["wait_hist"]} == bands
    assert province["open_days"] == 3 and province["busiest_hours"][0]["issued"] == max(arrivals)
    assert len(province["counter_load"]) == sum(len(s.counters) for s, _, _ in data)
    assert province["counter_load"][0]["label"].startswith(data[0][0].site.name_vi + " — ")


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


def test_a_version_1_database_upgrades_to_the_newest_and_keeps_its_data(pg_dsn, centres):
    import psycopg

    data, now = centres
    s, sim, events = data[0]
    with psycopg.connect(pg_dsn) as conn:
        assert migrate(conn, upto=1) == [1]  # a province database as the first release left it
        with conn.transaction(), conn.cursor() as cur:  # registered by the first release: no counters
            cur.execute("INSERT INTO sites (site, name_vi) VALUES (%s, %s)", (s.site.slug, s.site.name_vi))
            cur.executemany("INSERT INTO site_services (site, service, pos, name_vi, target_wait_min) "
                             "VALUES (%s, %s, %s, %s, %s)",
                             [(s.site.slug, sv.id, i, sv.name_vi, sv.target_wait_min) for i, sv in enumerate(s.services)])
        Store(conn, rollups=False, links=False).write(events)  # the first release's ingester kept no rollups
        before = snapshot(conn)
        assert schema_version(conn) == 1
        assert migrate(conn, upto=2) == [2]
        assert schema_version(conn) == 2 and snapshot(conn) == before  # nothing lost, nothing changed
        assert migrate(conn) == [3, 4, 5, 6, 7, 8, 9]  # devices; the rollups, counted from the rows already there; links;
        # day histogram; when a session was last heard
        assert snapshot(conn) == before
        period = f"{FIRST.isoformat()}..2026-11-04"
        own = report_from_ledger(sim.ledger.path, s, period=period, group_by="service", now=now)
        rep = build_province_report(conn, period=period, group_by="site", now=now)
        assert figures(rep["totals"]) == figures(own["totals"])
        assert rep["arrivals_by_hour"] == own["arrivals_by_hour"]
        upsert_site(conn, s)  # registered again under v2: counters and closing time too
        rep = build_province_report(conn, period=period, group_by="site", now=now)
        assert [{k: v for k, v in c.items() if k != "site"} for c in rep["counter_load"]] == \
            [{k: v for k, v in c.items() if k not in ("hours_s", "outside_s", "closed_s")} for c in own["counter_load"]]
        with conn.cursor() as cur:
            cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'events'")
            assert "events_counter_at" in {r[0] for r in cur.fetchall()}
            cur.execute("SET LOCAL enable_seqscan = off")  # usable for that predicate, whatever the table size
            cur.execute("EXPLAIN SELECT * FROM events WHERE family = 'counter' AND at BETWEEN 1 AND 2")
            plan = " ".join(r[0] for r in cur.fetchall())
        assert "events_counter_at" in plan  # the counter-load query's pause lookup uses it


def test_province_report_command_writes_csv_xlsx_html_and_charts(pg, pg_dsn, centres, tmp_path, capsys):
    import csv
    import zipfile

    from PIL import Image

    from xephang_ops.cli import main

    data, _ = centres
    for s, _, events in data:
        upsert_site(pg, s)
        Store(pg).write(events)
    out_csv, out_xlsx, out_html = tmp_path / "q4.csv", tmp_path / "q4.xlsx", tmp_path / "q4.html"
    rc = main(["province-report", "--dsn", pg_dsn, "--period", "2026-Q4", "--by", "site,service",
               "--csv", str(out_csv), "--xlsx", str(out_xlsx), "--html", str(out_html),
               "--charts", str(tmp_path / "charts")])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "Toàn tỉnh — Quý IV/2026" in shown and "Tổng cộng" in shown and "Giờ đông nhất" in shown
    rows = list(csv.reader(out_csv.open(encoding="utf-8-sig")))
    assert rows[0][:4] == ["Trung tâm — Lĩnh vực", "Lấy số", "Chuyển đến", "Đã phục vụ"]
    assert len(rows) == 1 + 2 * 4 + 1  # two centres × four services, and the total
    assert int(rows[-1][1]) == sum(int(r[1]) for r in rows[1:-1])
    # the centre report's workbook: table, hours, counters and the three charts as images
    with zipfile.ZipFile(out_xlsx) as z:
        names = z.namelist()
        workbook = z.read("xl/workbook.xml").decode()
    assert sum(n.startswith("xl/worksheets/sheet") for n in names) == 4
    assert all(f'name="{n}"' in workbook for n in ("Báo cáo", "Theo giờ", "Quầy", "Biểu đồ"))
    assert sum(n.startswith("xl/media/") and n.endswith(".png") for n in names) == 3
    page = out_html.read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3
    assert "Toàn tỉnh" in page and "Thời gian của các quầy" in page and "theo trung tâm — lĩnh vực" in page
    pngs = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert pngs == ["arrivals-per-hour.png", "counter-load.png", "wait-distribution.png"]
    for p in (tmp_path / "charts").iterdir():
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size == (1400, 700)
    assert main(["province-report", "--dsn", pg_dsn, "--by", "officer"]) == 2


def test_the_counter_load_chart_shows_the_busiest_counters_of_a_large_province():
    from province.reports import CHART_MAX_COUNTERS, chart_pngs, chart_view

    load = [{"site": f"xa-{i}", "counter": 1, "label": f"Xã {i} — Quầy 1", "officer": "", "visits": i,
             "busy_s": 60.0 * i, "paused_s": 0.0, "idle_s": 0.0, "pauses": 0} for i in range(100)]
    rep = {"lang": "vi", "group_by": "site", "dimensions": ["site"], "counter_load": load, "arrivals_by_hour": [0] * 24,
           "open_days": 0, "wait_hist": [], "wait_bins_min": [5, 10]}
    shown = chart_view(rep)["counter_load"]
    assert [c["label"] for c in shown] == [f"Xã {i} — Quầy 1" for i in range(99, 99 - CHART_MAX_COUNTERS, -1)]
    assert len(rep["counter_load"]) == 100  # the report itself keeps every counter
    assert set(chart_pngs(rep)) == {"arrivals-per-hour", "wait-distribution", "counter-load"}


def test_hostile_topics_and_a_nul_in_an_event_are_rejected_not_fatal(pg, centres):
    """What a bridged client could send the province broker: a site or kind outside the topic
    alphabet (it would become an SQL value and a report heading), and a text field with a NUL that
    PostgreSQL refuses (it used to fail the whole batch, for ever, on every redelivery)."""
    import json

    data, _ = centres
    good = data[0][2][:20]
    topic, payload = good[0]
    ev = json.loads(payload)
    ev["event_id"] = "nul-event-0001"
    ev["reason"] = "a\u0000b"
    bad = [("xephang/v1/Tuong-Linh/event/ticket/issued", payload),
           ("xephang/v1/tuong-linh/event/ticket/ISSUED", payload),
           ("xephang/v1/tuong linh/event/ticket/issued", payload),
           ("xephang/v1/'; drop table events; --/event/ticket/issued", payload),
           (topic, json.dumps(ev).encode())]
    res = Store(pg).write([*bad, *good[1:]])
    assert res.rejected == len(bad) and res.stored == len(good) - 1


def test_a_batch_the_database_refuses_is_split_and_the_good_rows_stored(pg_dsn, centres, monkeypatch):
    """The ingester's shell: a DataError on a batch stores it in halves until the refused message is
    alone, counts it, and acknowledges all (a poison message cannot come back for ever). Halving
    takes a few transactions, not one per message (20 refused messages among 4,000 made them take
    4.2 s instead of 0.7 s one by one)."""
    import threading

    import psycopg

    from province.ingest import Ingester
    from xephang.settings import BrokerSettings

    data, _ = centres
    msgs = data[1][2][:30]
    real_write = Store.write

    def write(self, messages):
        messages = list(messages)
        if any(t.endswith("/poison") for t, _ in messages):
            raise psycopg.DataError("refused by the database")
        return real_write(self, messages)

    monkeypatch.setattr(Store, "write", write)
    ing = Ingester(dsn=pg_dsn, broker=BrokerSettings())
    batch = [(0, i, 1, t, p) for i, (t, p) in enumerate(msgs)]
    batch.insert(7, (0, 99, 1, "xephang/v1/xuan-quang/event/ticket/poison", b"{}"))
    assert ing._commit_batch(batch, threading.Event())
    assert ing.stats.rejected == 1 and ing.stats.stored == len(msgs)
    assert ing.stats.batches == 5  # 0-6, 8, 9-10, 11-14, 15-30 (31 messages, the poison 8th)
