"""The console's two new facts, from the engine to the report: "citizen arrived" (the walk ends,
the service is timed from there) and "call this number" (an exception to the call order, with
its reason). Real engine, real ledger file, times we choose; minute 0 is Monday 23/11 08:00."""

from __future__ import annotations

import sqlite3

import pytest

from hubd.engine import CommandError
from hubd.ledger import SCHEMA_VERSION, Ledger
from tests.reports.conftest import at, open_centre
from xephang_reports.build import build_report, reconcile

MIN = 60.0


def test_arrived_then_finish_gives_walk_and_service_from_arrival(tmp_path, site):
    c = open_centre(site, tmp_path / "ledger.sqlite")
    a = c.issue("ho-tich", 0)
    b = c.issue("ho-tich", 1)
    assert c.do("call_next", 1, minute=5)["ticket"]["id"] == a
    got = c.do("arrived", 1, minute=6.5)  # A walked 1.5 min to the counter
    assert got["walk_s"] == 90.0 and got["already"] is False
    again = c.do("arrived", 1, minute=7)  # pressed again: the first arrival stands, nothing new
    assert again["already"] is True and again["arrived_at"] == at(6.5)
    c.do("finish", 1, minute=12.5)  # 6 min of service from the arrival, 7.5 from the call
    assert c.do("call_next", 1, minute=13)["ticket"]["id"] == b
    c.do("finish", 1, minute=17)  # B: nobody pressed "arrived"
    with pytest.raises(CommandError, match="not serving"):
        c.do("arrived", 1, minute=18)
    rep = build_report(c.ledger.db, site, period="2026-11-23", now=at(30))
    t = rep["totals"]
    assert t["walk"] == {"n": 1, "mean": 90.0, "p50": 90.0, "p90": 90.0}
    assert t["service_from_arrival"] == {"n": 1, "mean": 6 * MIN, "p50": 6 * MIN, "p90": 6 * MIN}
    assert t["service_time"]["n"] == 2 and t["no_arrival"] == 1  # B is flagged "no arrival recorded"
    assert t["service_time"]["mean"] == (7.5 + 4) * MIN / 2  # call → end stays what it was
    assert reconcile(rep) == []


def test_calling_a_number_out_of_order_needs_a_reason_and_is_counted(tmp_path, site):
    c = open_centre(site, tmp_path / "ledger.sqlite")
    a = c.issue("ho-tich", 0)
    b = c.issue("ho-tich", 1)
    land = c.issue("dat-dai", 2)
    with pytest.raises(CommandError, match="needs a reason"):
        c.do("call_ticket", 1, b, "  ", minute=3)
    with pytest.raises(CommandError, match="does not serve"):
        c.do("call_ticket", 1, land, "người già", minute=3)  # counter 1 serves ho-tich, chung-thuc only
    got = c.do("call_ticket", 1, b, "người cao tuổi", minute=4)
    assert got["ticket"]["id"] == b and got["out_of_order"] is True
    with pytest.raises(CommandError, match="not waiting"):
        c.do("call_ticket", 2, b, "again", minute=4.5)  # already called
    # the call order itself did not move: the next ordinary call takes A
    assert c.do("call_next", 1, minute=8)["ticket"]["id"] == a
    ev = [e for e in c.ledger.db.execute("SELECT payload FROM events WHERE kind='called' ORDER BY rev")]
    assert '"out_of_order": true' in ev[0][0] and "người cao tuổi" in ev[0][0]
    assert '"out_of_order"' not in ev[1][0]
    for group in ("service", "counter", "officer"):
        rep = build_report(c.ledger.db, site, period="2026-11-23", group_by=group, now=at(30))
        assert rep["totals"]["out_of_order_calls"] == 1 and rep["totals"]["calls"] == 2
        assert reconcile(rep) == []
    by_counter = build_report(c.ledger.db, site, period="2026-11-23", group_by="counter", now=at(30))
    assert [(r["key"], r["out_of_order_calls"]) for r in by_counter["rows"]] == [(1, 1), (2, 0), (3, 0), (4, 0)]


def test_a_ledger_of_the_first_schema_gains_the_new_columns_in_place(tmp_path, site):
    path = tmp_path / "old.sqlite"
    c = open_centre(site, path)
    c.issue("ho-tich", 0)
    c.do("call_next", 1, minute=5)
    c.ledger.close()
    # make it look like a ledger a first-version hub wrote: no arrival columns, schema 1
    db = sqlite3.connect(path)
    db.executescript("ALTER TABLE visits DROP COLUMN arrived_at; ALTER TABLE visits DROP COLUMN call_reason;"
                     "UPDATE meta SET value='1' WHERE key='schema_version';")
    db.close()
    led = Ledger(path)
    assert led.get_meta("schema_version") == SCHEMA_VERSION
    cols = {r[1] for r in led.db.execute("PRAGMA table_info(visits)")}
    assert {"arrived_at", "call_reason"} <= cols
    (row,) = led.db.execute("SELECT arrived_at, call_reason FROM visits").fetchall()
    assert row == (None, None)
    led.close()


def _centre_day(tmp_path, site, *, arrived: bool):
    """Two citizens served at counter 1; the officer pressed "citizen arrived" for the first or never."""
    c = open_centre(site, tmp_path / "ledger.sqlite")
    c.issue("ho-tich", 0)
    c.issue("ho-tich", 1)
    c.do("call_next", 1, minute=5)
    if arrived:
        c.do("arrived", 1, minute=6)
    c.do("finish", 1, minute=12)
    c.do("call_next", 1, minute=13)
    c.do("finish", 1, minute=17)
    return build_report(c.ledger.db, site, period="2026-11-23", now=at(30))


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_a_centre_that_never_records_arrivals_reads_no_empty_arrival_columns(tmp_path, site, lang):
    """The arrival key is optional: without a single press its five columns were "—" and "No arrival
    recorded" equalled "Served" on every table a person reads, the head's dashboard included. They are
    left out there, with a note saying so; the CSV and XLSX keep every column (months line up)."""
    import csv
    import html as h
    import io
    import zipfile

    from webd.pages import figures_table, report_body
    from xephang_reports import render

    rep = {**_centre_day(tmp_path, site, arrived=False), "lang": lang}
    assert rep["totals"]["no_arrival"] == 2 and reconcile(rep) == []
    heads = {c.key: c.heading(lang) for c in render.ALL_COLUMNS}
    gone = [heads[k] for k in sorted(render.ARRIVAL_KEYS)]
    note = render.tr("no_arrival_note", lang)
    ooo = render.tr("out_of_order_note", lang)
    for name, text in (("terminal", render.render_table(rep)), ("html", render.render_html(rep, charts={})),
                       ("web report", report_body(rep, {}, "period=2026-11-23", lang)),
                       ("dashboard", figures_table(rep, lang))):
        plain = h.unescape(text)
        assert note in plain and ooo in plain, name  # "called out of order" is still defined
        assert not [g for g in gone if g in plain.replace(note, "")], name
        assert heads["served"] in plain and heads["out_of_order_calls"] in plain, name
        assert render.tr("arrival_note", lang) not in plain, name
    rows = list(csv.reader(io.StringIO(render.write_csv(rep, tmp_path / "r.csv").read_text("utf-8-sig"))))
    assert all(any(cell.startswith(g) for cell in rows[0]) for g in gone)
    book = render.write_xlsx(rep, tmp_path / "r.xlsx", charts={})
    with zipfile.ZipFile(book) as z:
        strings = z.read("xl/sharedStrings.xml").decode()
    assert all(g in h.unescape(strings) for g in gone) and render.tr("arrival_note", lang) in h.unescape(strings)

    shown = {**_centre_day(tmp_path / "b", site, arrived=True), "lang": lang}  # one press: every column
    text = h.unescape(render.render_table(shown))
    assert all(g in text for g in gone) and render.tr("arrival_note", lang) in text and note not in text


def test_the_arrival_timed_figures_are_starred_only_for_their_own_inferred_finishes(tmp_path, site):
    """The star (an inferred finish: Next or Pause without Finish) was put on "service from arrival"
    whenever the row had any inferred finish, also when none of them had an arrival, so none was in
    that figure (a newcomer's walk: the total starred, its only row behind it not)."""
    from xephang_reports import render

    c = open_centre(site, tmp_path / "ledger.sqlite")
    c.issue("ho-tich", 0)
    c.issue("ho-tich", 1)
    c.do("call_next", 1, minute=5)
    c.do("arrived", 1, minute=6)
    c.do("finish", 1, minute=12)  # timed from its arrival, finished by Finish
    c.do("call_next", 1, minute=13)
    c.do("call_next", 1, minute=17)  # the second ends inferred (queue empty), no arrival recorded
    rep = build_report(c.ledger.db, site, period="2026-11-23", now=at(30))
    cols = {col.key: col for col in render.ALL_COLUMNS}
    t = rep["totals"]
    assert t["flags"]["inferred"] == 1 and t["flags"]["inferred_arrived"] == 0
    assert render.cell_text(t, cols["service_mean"], "vi").endswith("*")  # call → end: it holds the inferred one
    assert not render.cell_text(t, cols["arrived_service_mean"], "vi").endswith("*")
    c.do("call_next", 1, minute=20)  # nobody: nothing changes
    c.issue("ho-tich", 21)
    c.do("call_next", 1, minute=22)
    c.do("arrived", 1, minute=23)
    c.do("pause", 1, "họp", minute=25)  # arrived, then ended by a pause: now it is in the figure
    rep = build_report(c.ledger.db, site, period="2026-11-23", now=at(30))
    assert rep["totals"]["flags"]["inferred_arrived"] == 1
    assert render.cell_text(rep["totals"], cols["arrived_service_mean"], "vi").endswith("*")
    assert reconcile(rep) == []
