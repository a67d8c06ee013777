"""Every figure of the report, checked against the story of conftest.py (known times)."""

from __future__ import annotations

from datetime import date

import pytest

from tests.reports.conftest import NOW, at, open_centre
from xephang_reports.build import (
    BadGrouping,
    BadPeriod,
    build_report,
    open_readonly,
    parse_period,
    quantile,
    report_from_ledger,
)

MIN = 60.0


def rep(path, site, period="2026-11-23", group_by="service", lang="vi"):
    return report_from_ledger(path, site, period=period, group_by=group_by, lang=lang, now=NOW)


def row(report, key):
    (r,) = [r for r in report["rows"] if r["key"] == key]
    return r


def test_day_totals_count_every_ticket_once(story_ledger, site):
    t = rep(story_ledger, site)["totals"]
    assert (t["issued"], t["served"], t["no_shows"], t["voided"], t["expired"], t["transferred"], t["open"]) == \
        (8, 5, 1, 1, 1, 1, 0)
    assert t["calls"] == 8
    # waits of A B C D F H: 5 12 5 5 20 5 (E voided, G expired); sorted 5 5 5 5 12 20
    assert t["wait"] == {"n": 6, "mean": 52 * MIN / 6, "p50": 5 * MIN, "p90": 16 * MIN}
    assert t["within_target"] == {"n": 6, "ok": 5, "share": round(5 / 6, 4)}  # F waited 20 > 10
    # services A 7, B 8 (inferred), C 5 (inferred), F 10; H closed by the reset has no time
    assert t["service_time"] == {"n": 4, "mean": 7.5 * MIN, "p50": 7.5 * MIN, "p90": 9.4 * MIN}
    assert t["ratings"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    assert (t["rated"], t["satisfaction"]) == (2, 0.5)
    # H was still open when the hub next heard a command 7 hours later (F at 23:50): a quiet evening,
    # not a clock jump (the hub tells jumps by its monotonic clock), so nothing is flagged for it
    assert t["flags"] == {"inferred": 3, "closed_by_reset": 1, "wait_clock_jump": 0, "service_clock_jump": 0,
                          "inferred_arrived": 0}


def test_by_service_issue_goes_to_chosen_service_service_to_where_served(story_ledger, site):
    r = rep(story_ledger, site)
    assert [x["key"] for x in r["rows"]] == ["ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi"]
    ho = row(r, "ho-tich")  # issued A B E; served A, B and the transferred C
    assert (ho["issued"], ho["voided"], ho["served"], ho["transferred"]) == (3, 1, 3, 0)
    assert ho["wait"] == {"n": 2, "mean": 8.5 * MIN, "p50": 8.5 * MIN, "p90": 11.3 * MIN}
    assert ho["service_time"] == {"n": 3, "mean": 400.0, "p50": 7 * MIN, "p90": 468.0}
    assert ho["flags"]["inferred"] == 2
    assert (ho["ratings"]["5"], ho["ratings"]["3"], ho["satisfaction"]) == (1, 0, 1.0)
    dd = row(r, "dat-dai")  # C (transferred away, keeps its wait here) and H (closed by the reset)
    assert (dd["issued"], dd["served"], dd["transferred"]) == (2, 1, 1)
    assert dd["wait"]["n"] == 2 and dd["wait"]["mean"] == 5 * MIN
    assert dd["service_time"]["n"] == 0 and dd["service_time"]["mean"] is None
    assert dd["flags"] == {"inferred": 1, "closed_by_reset": 1, "wait_clock_jump": 0, "service_clock_jump": 0,
                          "inferred_arrived": 0}
    ct = row(r, "chung-thuc")  # D no-show twice (requeued once) = one no-show; F across midnight
    assert (ct["issued"], ct["served"], ct["no_shows"]) == (2, 1, 1)
    assert ct["wait"] == {"n": 2, "mean": 12.5 * MIN, "p50": 12.5 * MIN, "p90": 1110.0}
    assert ct["within_target"] == {"n": 2, "ok": 1, "share": 0.5}
    assert ct["service_time"] == {"n": 1, "mean": 10 * MIN, "p50": 10 * MIN, "p90": 10 * MIN}
    assert (ct["ratings"]["3"], ct["rated"], ct["satisfaction"]) == (1, 1, 0.0)  # F, rated after midnight
    vh = row(r, "van-hoa-xa-hoi")
    assert (vh["issued"], vh["expired"], vh["served"], vh["wait"]["n"]) == (1, 1, 0, 0)
    assert vh["within_target"]["share"] is None and vh["satisfaction"] is None


def test_by_hour_ticket_across_midnight_stays_on_its_day(story_ledger, site):
    r = rep(story_ledger, site, group_by="hour")
    assert [x["key"] for x in r["rows"]] == [0, 8, 16, 23]
    assert row(r, 8)["issued"] == 5 and row(r, 8)["served"] == 3 and row(r, 8)["no_shows"] == 1
    assert row(r, 16)["issued"] == 2 and row(r, 16)["served"] == 1  # G and H issued; H served at 16:35
    f_issued, f_served = row(r, 23), row(r, 0)  # F issued 23:50, served at 00:10 the same service day
    assert (f_issued["issued"], f_issued["served"], f_issued["wait"]["mean"]) == (1, 0, 20 * MIN)
    assert (f_served["issued"], f_served["served"], f_served["service_time"]["mean"]) == (0, 1, 10 * MIN)
    assert row(r, 0)["label"] == "00:00–01:00"
    assert r["arrivals_by_hour"][8] == 5 and r["arrivals_by_hour"][23] == 1 and sum(r["arrivals_by_hour"]) == 8
    assert r["busiest_hours"][0] == {"hour": 8, "issued": 5, "per_day": 5.0}


def test_by_counter_wait_goes_to_who_called_first(story_ledger, site):
    r = rep(story_ledger, site, group_by="counter")
    assert [x["key"] for x in r["rows"]] == [1, 2, 3, 4]
    c1, c2, c3, c4 = (row(r, n) for n in (1, 2, 3, 4))
    assert c1["issued"] is None and r["totals"]["issued"] == 8  # tickets are issued to services
    assert (c1["served"], c1["calls"], c1["wait"]["mean"], c1["satisfaction"]) == (2, 2, 8.5 * MIN, 1.0)
    assert (c2["served"], c2["no_shows"], c2["calls"]) == (2, 1, 4)
    assert c2["wait"] == {"n": 2, "mean": 12.5 * MIN, "p50": 12.5 * MIN, "p90": 1110.0}  # D and F
    assert c2["service_time"]["mean"] == 7.5 * MIN and c2["satisfaction"] == 0.0
    assert (c3["served"], c3["transferred"], c3["wait"]["n"]) == (1, 1, 2)
    assert c4["calls"] == 0 and c4["label"] == "Quầy 4"
    off = rep(story_ledger, site, group_by="officer")
    assert [x["key"] for x in off["rows"]] == ["Nguyễn Thị Lan", "Trần Văn Hùng", "Lê Minh Tuấn"]
    assert row(off, "Trần Văn Hùng")["served"] == 2


def test_counter_load_busy_paused_idle(story_ledger, site):
    load = {c["counter"]: c for c in rep(story_ledger, site)["counter_load"]}
    # counter 1: serving 5–12 and 13–21, paused 21–30; open 5–30 → idle 1 minute
    assert (load[1]["busy_s"], load[1]["paused_s"], load[1]["idle_s"], load[1]["pauses"]) == (900, 540, 60, 1)
    # counter 2: 8–16, 17–18, 20–25 and 00:10–00:20; first call 08:08, last end 00:20
    assert (load[2]["busy_s"], load[2]["idle_s"]) == (24 * MIN, (972 - 24) * MIN)
    # counter 3: C 8 minutes; H never finished: not busy, the counter counts as open until 17:00
    assert (load[3]["busy_s"], load[3]["idle_s"]) == (8 * MIN, (533 - 8) * MIN)
    # counter 4: paused at 16:45 and never resumed: paused until closing time
    assert (load[4]["busy_s"], load[4]["paused_s"], load[4]["idle_s"]) == (0, 15 * MIN, 0)
    assert load[1]["officer"] == "Nguyễn Thị Lan"


def test_wait_histogram_per_service(story_ledger, site):
    h = {x["service"]: x for x in rep(story_ledger, site)["wait_hist"]}
    assert h["ho-tich"]["counts"] == [0, 1, 1, 0, 0, 0, 0, 0]  # 5 and 12 minutes
    assert h["chung-thuc"]["counts"] == [0, 1, 0, 0, 1, 0, 0, 0]  # 5 and 20
    assert h["chung-thuc"]["target_min"] == 10


def test_daily_reset_and_clock_jump_over_two_days(story_ledger, site):
    r = rep(story_ledger, site, period="2026-11-23..2026-11-24", group_by="day")
    assert [x["key"] for x in r["rows"]] == ["2026-11-23", "2026-11-24"]
    d2 = row(r, "2026-11-24")
    assert d2["label"] == "T3 24/11/2026"
    assert (d2["issued"], d2["served"], d2["expired"]) == (2, 2, 0)
    # J was called 10 minutes "before" it was issued: that wait is left out and flagged
    assert d2["wait"] == {"n": 1, "mean": 2 * MIN, "p50": 2 * MIN, "p90": 2 * MIN}
    assert d2["service_time"] == {"n": 2, "mean": 4.5 * MIN, "p50": 4.5 * MIN, "p90": 4.9 * MIN}
    assert d2["flags"] == {"inferred": 0, "closed_by_reset": 0, "wait_clock_jump": 1, "service_clock_jump": 1,
                          "inferred_arrived": 0}
    assert (d2["ratings"]["1"], d2["satisfaction"]) == (1, 0.0)
    assert r["totals"]["issued"] == 10 and r["open_days"] == 2
    assert r["busiest_hours"][0]["per_day"] == 3.0  # hour 8: 5 on day 1, 1 on day 2


def test_today_counts_open_tickets_and_open_pauses(site, tmp_path):

    c = open_centre(site, tmp_path / "l.sqlite")
    c.issue("ho-tich", 0)
    c.issue("ho-tich", 1)
    c.do("call_next", 1, minute=3)
    c.do("pause", 3, "", minute=4)
    r = build_report(open_readonly(c.path), site, period="today", group_by="service", now=at(10))
    t = r["totals"]
    assert (t["issued"], t["open"], t["served"], t["calls"]) == (2, 2, 0, 1)
    load = {x["counter"]: x for x in r["counter_load"]}
    assert load[1]["busy_s"] == 7 * MIN  # serving since minute 3, now is minute 10
    assert load[3]["paused_s"] == 6 * MIN
    assert r["period"] == {"spec": "today", "kind": "day", "from": "2026-11-23", "to": "2026-11-23", "days": 1,
                           "label": "Ngày 23/11/2026"}


def test_rating_scale_of_three(site, tmp_path):

    s3 = site.model_validate({**site.model_dump(), "rating_scale": 3})
    c = open_centre(s3, tmp_path / "l.sqlite")
    for k, score in enumerate((3, 2, 3)):
        c.issue("ho-tich", 10 * k)
        c.do("call_next", 1, minute=10 * k + 1)
        c.do("finish", 1, minute=10 * k + 2)
        c.do("rate", 1, score, minute=10 * k + 3)
    t = report_from_ledger(c.path, s3, period="2026-11-23", group_by="service", lang="vi", now=NOW)["totals"]
    assert t["ratings"] == {"1": 0, "2": 1, "3": 2} and t["satisfaction"] == round(2 / 3, 4)


def test_english_labels(story_ledger, site):
    r = rep(story_ledger, site, period="2026-Q4", lang="en")
    assert r["period"]["label"] == "Q4 2026" and r["totals"]["label"] == "Total"
    assert row(r, "ho-tich")["label"] == "Civil status"
    assert r["site"]["name"].startswith("Tuong Linh")


@pytest.mark.parametrize(("spec", "kind", "first", "last", "vi"), [
    ("today", "day", date(2026, 11, 23), date(2026, 11, 23), "Ngày 23/11/2026"),
    ("2026-11-05", "day", date(2026, 11, 5), date(2026, 11, 5), "Ngày 05/11/2026"),
    ("2026-11", "month", date(2026, 11, 1), date(2026, 11, 30), "Tháng 11/2026"),
    ("2026-02", "month", date(2026, 2, 1), date(2026, 2, 28), "Tháng 02/2026"),
    ("2026-Q4", "quarter", date(2026, 10, 1), date(2026, 12, 31), "Quý IV/2026"),
    ("2026-q1", "quarter", date(2026, 1, 1), date(2026, 3, 31), "Quý I/2026"),
    ("2026", "year", date(2026, 1, 1), date(2026, 12, 31), "Năm 2026"),
    ("2026-11-01..2026-11-30", "range", date(2026, 11, 1), date(2026, 11, 30), "Từ 01/11/2026 đến 30/11/2026"),
    ("2026-10..2026-11", "range", date(2026, 10, 1), date(2026, 11, 30), "Từ 01/10/2026 đến 30/11/2026"),
    ("last-month", "month", date(2026, 10, 1), date(2026, 10, 31), "Tháng 10/2026"),
    ("last-quarter", "quarter", date(2026, 7, 1), date(2026, 9, 30), "Quý III/2026"),
    ("yesterday", "day", date(2026, 11, 22), date(2026, 11, 22), "Ngày 22/11/2026"),
])
def test_periods(spec, kind, first, last, vi):
    p = parse_period(spec, date(2026, 11, 23))
    assert (p.kind, p.first, p.last, p.label("vi")) == (kind, first, last, vi)


@pytest.mark.parametrize("spec", ["2026-13", "2026-02-30", "2026-Q5", "last week", "2026-12-01..2026-11-01", ""])
def test_bad_periods_are_refused(spec):
    if spec == "":  # empty means today
        assert parse_period(spec, date(2026, 11, 23)).kind == "day"
        return
    with pytest.raises(BadPeriod):
        parse_period(spec, date(2026, 11, 23))


def test_bad_grouping_is_a_value_error(story_ledger, site):
    with pytest.raises(BadGrouping) as exc:
        rep(story_ledger, site, group_by="weather")
    assert isinstance(exc.value, ValueError)
    assert rep(story_ledger, site, group_by="quay")["group_by"] == "counter"  # Vietnamese slug


def test_quantile_interpolates_like_numpy():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([10.0], 0.9) == 10.0
    assert quantile([0.0, 10.0], 0.9) == 9.0
    assert quantile([], 0.5) is None


def _figures(r: dict) -> dict:
    """A row without its key and label: only what was counted and measured."""
    return {k: v for k, v in r.items() if k not in ("key", "label")}


@pytest.mark.parametrize("spec", ["2026-11", "2026-Q4", "2026", "2026-10..2026-12"])
def test_month_quarter_and_year_hold_exactly_the_days_inside_them(story_ledger, site, spec):
    two_days = rep(story_ledger, site, period="2026-11-23..2026-11-24")
    r = rep(story_ledger, site, period=spec)
    assert _figures(r["totals"]) == _figures(two_days["totals"])
    assert [_figures(x) for x in r["rows"]] == [_figures(x) for x in two_days["rows"]]
    assert r["open_days"] == 2 and r["arrivals_by_hour"] == two_days["arrivals_by_hour"]
    assert r["totals"]["issued"] == 10 and r["totals"]["rated"] == 3


@pytest.mark.parametrize("spec", ["2026-10", "2026-Q3", "2026-11-25..2026-11-30"])
def test_a_period_around_the_story_counts_nothing_of_it(story_ledger, site, spec):
    t = rep(story_ledger, site, period=spec)["totals"]
    assert (t["issued"], t["served"], t["calls"], t["rated"], t["wait"]["n"]) == (0, 0, 0, 0, 0)


def test_by_officer_equals_by_counter_when_each_counter_has_one_officer(story_ledger, site):
    by_counter = rep(story_ledger, site, group_by="counter")
    by_officer = rep(story_ledger, site, group_by="officer")
    officer_of = {c.number: site.officer_name(c.number) for c in site.counters}
    for r in by_counter["rows"]:
        if r["calls"]:
            assert _figures(row(by_officer, officer_of[r["key"]])) == _figures(r)
    c1, c2 = row(by_counter, 1), row(by_counter, 2)
    assert c1["within_target"] == {"n": 2, "ok": 2, "share": 1.0}  # A 5 and B 12 min, hộ tịch target 15
    assert c2["within_target"] == {"n": 2, "ok": 1, "share": 0.5}  # chứng thực target 10: D 5 ok, F 20 not
    assert (c1["ratings"]["5"], c1["rated"], c2["ratings"]["3"], c2["rated"]) == (1, 1, 1, 1)
