"""The printed wait: a range from the queue ahead in the counters' real call order (pure, time injected)."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest

from hubd import views
from hubd.engine import QueueEngine
from hubd.wait_estimate import (
    CounterView,
    HallView,
    WaitHistory,
    WaitingTicket,
    WaitRange,
    _summarise,
    estimate_wait,
)
from xephang.clock import VN_TZ
from xephang.waittext import format_wait

T = datetime(2026, 11, 23, 9, 0, tzinfo=VN_TZ).timestamp()  # a Monday, 09:00
MIN = 60.0


def hall(waiting: list[WaitingTicket], counters: list[CounterView], *, now: float = T, k: int = 2,
         close_in_h: float = 8.0, prior_min: float = 10.0) -> HallView:
    return HallView(now=now, waiting=tuple(waiting), counters=tuple(counters), streak={}, priority_per_normal=k,
                    max_wait_s=600 * MIN, close_at=now + close_in_h * 3600, open_at=now - 3600,
                    prior_call_s={"a": prior_min * MIN, "b": prior_min * MIN})


def queue(n: int, service: str = "a", *, priority: bool = False, first_id: int = 1) -> list[WaitingTicket]:
    return [WaitingTicket(first_id + i, service, priority, T - 600 + i) for i in range(n)]


def me(service: str = "a", priority: bool = False) -> WaitingTicket:
    return WaitingTicket(999, service, priority, T)


def busy(n: int, services: tuple[str, ...] = ("a",)) -> CounterView:
    return CounterView(n, services, "open", busy_since=T - 2 * MIN, serving_service=services[0])


def test_the_range_holds_the_queue_ahead_and_widens_with_it():
    h = WaitHistory()
    ranges = [estimate_wait(hall(queue(n), [busy(1)]), h, me(), runs=200) for n in (0, 2, 5)]
    # one counter, ten minutes a citizen (plus the walk): about 10, 30, 60 minutes
    for r, expect in zip(ranges, (8, 30, 63), strict=True):
        assert r.high_min is not None and r.low_min <= expect <= r.high_min, (r, expect)
    widths = [r.high_min - r.low_min for r in ranges if r.high_min is not None]
    assert widths == sorted(widths) and widths[-1] > widths[0]


def test_nobody_ahead_and_a_free_counter_is_under_five_minutes():
    free = CounterView(1, ("a",), "open")
    r = estimate_wait(hall([], [free]), WaitHistory(), me())
    assert (r.low_min, r.high_min) == (0, 5)
    assert r.text() == "dưới 5 phút" and r.text("en") == "under 5 min"


def test_priority_tickets_ahead_count_by_the_fairness_rule():
    h = WaitHistory()
    four_priority = queue(4, priority=True)
    # one priority per normal: P, me (the normal ticket is owed a call), P, P, P
    fair = estimate_wait(hall(four_priority, [busy(1)], k=1), h, me(), runs=200)
    # twenty priority calls allowed in a row: all four go first
    patient = estimate_wait(hall(four_priority, [busy(1)], k=20), h, me(), runs=200)
    assert fair.point_min + 20 < patient.point_min


def test_a_shared_counter_calls_its_first_service_first():
    # counter 1 calls service "b" before "a": three "b" citizens go before me although nobody waits for "a"
    h = WaitHistory()
    shared = CounterView(1, ("b", "a"), "open", busy_since=T - 2 * MIN, serving_service="b")
    behind_b = estimate_wait(hall(queue(3, "b"), [shared]), h, me("a"), runs=200)
    own = CounterView(1, ("a", "b"), "open", busy_since=T - 2 * MIN, serving_service="b")
    first = estimate_wait(hall(queue(3, "b"), [own]), h, me("a"), runs=200)
    assert behind_b.low_min >= 25 and first.point_min < 12


def test_a_paused_counter_is_uncertain_and_a_closed_one_does_not_count():
    h = WaitHistory()
    open2 = [busy(1), busy(2)]
    paused = [busy(1), CounterView(2, ("a",), "paused", paused_since=T - MIN)]
    closed = [busy(1), CounterView(2, ("a",), "closed")]
    r_open = estimate_wait(hall(queue(4), open2), h, me(), runs=200)
    r_paused = estimate_wait(hall(queue(4), paused), h, me(), runs=200)
    r_closed = estimate_wait(hall(queue(4), closed), h, me(), runs=200)
    assert r_open.point_min < r_paused.point_min <= r_closed.point_min + 1
    assert r_open.high_min is not None and (r_paused.high_min is None or r_paused.high_min > r_open.high_min)


def test_beyond_closing_time_it_says_more_than_n_minutes():
    r = estimate_wait(hall(queue(8), [busy(1)], close_in_h=0.75), WaitHistory(), me(), runs=100)
    assert r.open_ended and r.high_min is None
    assert r.text() == f"hơn {r.low_min} phút" and r.text("en") == f"more than {r.low_min} min"


def test_more_than_n_minutes_is_a_promise_n_is_the_quickest_run():
    """'hơn N phút' must come true: N from the quickest of the runs, not the 5th percentile."""
    view = hall(queue(1), [busy(1)])
    wide = [m * MIN for m in (12, 31, 33, 36, 40, 45, 50, 55, 60, 70, 80, 90, 100, 110, 120, 130)] + [math.inf] * 4
    r = _summarise(sorted(wide), view, math.inf)
    assert r.high_min is None and r.low_min == 10  # the 5th percentile (~31) would have promised "hơn 30"
    quick = [2 * MIN] + wide[1:]  # one run calls at once: still "hơn 5", never "hơn 0" ("chưa ước tính được")
    assert _summarise(sorted(quick), view, math.inf).low_min == 5
    always_soon = [m * MIN for m in (1, 2, 2, 3, 3, 4)] + [math.inf] * 14  # the 5th percentile under 5
    assert _summarise(always_soon, view, math.inf).low_min == 0


def test_a_slow_officer_is_learned_from_todays_calls():
    h = WaitHistory()
    at = T - 4 * 3600
    # counter 1 takes 20 minutes a call, counter 2 takes 8, both on service "a"
    for i in range(12):
        for n, dur in ((1, 20 * MIN), (2, 8 * MIN)):
            h.on_visit_end(n, at + i * dur + dur - 30)
            h.on_call(n, at + (i + 1) * dur, "a", arrival_at=at)
    slow_only = [busy(1), CounterView(2, ("a",), "closed")]
    fast_only = [CounterView(1, ("a",), "closed"), busy(2)]
    r_slow = estimate_wait(hall(queue(3), slow_only), h, me(), runs=200)
    r_fast = estimate_wait(hall(queue(3), fast_only), h, me(), runs=200)
    assert r_slow.point_min > 1.6 * r_fast.point_min


def measured(h: WaitHistory, counter: int, durations: list[float], service: str = "a") -> None:
    """Today's calls at ``counter``, back to back with citizens waiting (each one measured)."""
    at = T - 6 * 3600 + counter * 1000
    h.on_call(counter, at, service, arrival_at=at - 60)
    for d in durations:
        h.on_visit_end(counter, at + d - 30)
        at += d
        h.on_call(counter, at, service, arrival_at=at - 600)


def test_the_range_follows_todays_calls_not_a_curve_fitted_to_them():
    # half the calls are a no-show (2 minutes), half a 20-minute service: the next citizen waits for
    # the current call, so at most about 20 minutes; a log-normal through both would promise 40
    h = WaitHistory()
    measured(h, 2, [2 * MIN, 20 * MIN] * 15)
    just_called = CounterView(1, ("a",), "open", busy_since=T, serving_service="a")
    r = estimate_wait(hall([], [just_called]), h, me(), runs=200)
    assert r.low_min == 0 and r.high_min is not None and r.high_min <= 25, r


def test_one_long_visit_does_not_make_an_officer_slow_for_everyone_behind():
    h = WaitHistory()
    measured(h, 2, [10 * MIN] * 20)  # the service takes 10 minutes a call
    measured(h, 1, [30 * MIN])  # counter 1 has served one citizen today, a long file
    at_1 = [busy(1), CounterView(2, ("a",), "closed")]
    at_2 = [CounterView(1, ("a",), "closed"), busy(2)]
    r1 = estimate_wait(hall(queue(6), at_1), h, me(), runs=200)
    r2 = estimate_wait(hall(queue(6), at_2), h, me(), runs=200)
    assert r1.point_min < 1.3 * r2.point_min, (r1, r2)
    # twelve slow calls are a slow officer
    measured(h, 1, [20 * MIN] * 12)
    assert estimate_wait(hall(queue(6), at_1), h, me(), runs=200).point_min > 1.4 * r2.point_min


def test_citizens_sent_on_from_another_service_keep_their_place_ahead():
    # counter 2 calls service "b" (six waiting since before me); today it sent most of its citizens
    # on to "a", where they join by their first arrival: ahead of me at counter 1
    b_queue = [WaitingTicket(100 + i, "b", False, T - 3600 + i) for i in range(6)]
    counters = [busy(1), busy(2, ("b",))]
    quiet = WaitHistory()
    sends_on = WaitHistory()
    for i in range(10):
        sends_on.on_call(2, T - 7200 + i * 600, "b", arrival_at=T - 7200)
        if i < 8:
            sends_on.on_transfer("b", "a")
    assert sends_on.transfer_model("b") == (pytest.approx(8 / 15), ["a"] * 8)
    alone = estimate_wait(hall(queue(2) + b_queue, counters), quiet, me(), runs=200)
    behind = estimate_wait(hall(queue(2) + b_queue, counters), sends_on, me(), runs=200)
    assert behind.point_min > alone.point_min + 5, (alone, behind)


def test_the_engine_learns_where_a_service_sends_its_citizens(site):
    e = QueueEngine(site)
    e.issue("ho-tich", None, T)
    e.call_next(1, T + 10)
    e.transfer(1, "dat-dai", T + 300)
    assert e.history.transfer_model("ho-tich") == (pytest.approx(1 / 6), ["dat-dai"])
    back = QueueEngine(site)
    back.load_meta(json.loads(json.dumps(e.meta())))
    assert back.history.transfers == {"ho-tich": {"dat-dai": 1}} and back.history.called == {"ho-tich": 1}


def test_a_call_after_an_idle_counter_is_no_service_time():
    h = WaitHistory()
    h.on_call(1, T, "a", arrival_at=T - 60)
    h.on_visit_end(1, T + 300)
    h.on_call(1, T + 3600, "a", arrival_at=T + 3500)  # came long after the counter was free
    assert "a" not in h.cycles
    h.on_visit_end(1, T + 3900)
    h.on_call(1, T + 3960, "a", arrival_at=T + 3700)  # was waiting: 6 minutes a call
    assert list(h.cycles["a"]) == [360.0]


def test_a_wide_range_from_zero_says_under_its_upper_end_not_more_than_zero():
    # one counter, paused a minute ago (it may come back at once, or in an hour), nobody ahead
    paused = [CounterView(1, ("a",), "paused", paused_since=T - MIN)]
    r = estimate_wait(hall([], paused), WaitHistory(), me(), runs=200)
    assert r.low_min == 0 and r.high_min is not None and r.high_min > 45
    assert r.text().startswith("dưới ")


def test_the_same_state_gives_the_same_estimate():
    view = hall(queue(5), [busy(1)])
    assert estimate_wait(view, WaitHistory(), me(), seed=7) == estimate_wait(view, WaitHistory(), me(), seed=7)


@pytest.mark.parametrize(("low", "high", "vi", "en"), [
    (20, 35, "khoảng 20–35 phút", "about 20–35 min"),
    (0, 10, "dưới 10 phút", "under 10 min"),
    (60, None, "hơn 60 phút", "more than 60 min"),
    (0, None, "chưa ước tính được", "not known yet"),
])
def test_the_wait_as_printed(low, high, vi, en):
    assert format_wait(low, high) == vi and format_wait(low, high, "en") == en
    assert WaitRange(low, high, 1.0).text() == vi


def test_the_engine_prints_the_range_on_the_ticket_event_and_service_state(site):
    e = QueueEngine(site)
    e.resume(3, T)
    for i in range(3):
        e.issue("dat-dai", None, T + i)
    out = e.issue("dat-dai", None, T + 10)
    d = out.data
    issued = out.events[-1].payload
    for k in ("est_wait_low_min", "est_wait_high_min", "est_wait_open", "est_wait_min"):
        assert issued[k] == d[k]
    assert d["est_wait_low_min"] >= 30  # three land citizens ahead at one counter, 15 minutes each
    st = views.service_state(e, "dat-dai", T + 10)
    assert st.est_wait_min > d["est_wait_min"]  # the next citizen has four ahead
    assert st.waiting == 4


def test_the_learning_survives_a_hub_restart(site):
    e = QueueEngine(site)
    for i in range(4):
        e.issue("chung-thuc", None, T + i)
    e.call_next(1, T + 10)
    e.finish(1, T + 310)
    e.call_next(1, T + 340)
    e.pause(1, "", T + 400)
    e.resume(1, T + 1000)
    meta = json.loads(json.dumps(e.meta()))
    back = QueueEngine(site)
    back.load_meta(meta)
    assert list(back.history.cycles["chung-thuc"]) == [330.0]
    assert list(back.history.pauses) == [600.0]
    assert back.history.to_dict() == e.history.to_dict()


def test_a_flood_of_presses_keeps_the_engine_state_small_and_its_rate_right():
    h = WaitHistory()
    for i in range(1000):  # 1000 tickets in 10 minutes (a test, a stuck key, a crowd)
        h.on_issue(T + i * 0.6, "a", False)
    assert len(h.arrivals) == 400 and len(json.dumps(h.to_dict())) < 30_000
    rate = h.arrival_rates(T + 600, T - 3600)[("a", False)]
    assert rate == pytest.approx(1 / 0.6, rel=0.05)  # from the 400 kept, over the time they span
