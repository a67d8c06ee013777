"""The queue engine as the officers and citizens see it (pure, time injected)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubd.engine import CommandError, QueueEngine
from xephang.clock import VN_TZ
from xephang.site import Site

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=VN_TZ).timestamp()  # a Monday, 08:00 in the hall


def make(site: Site, **changes) -> QueueEngine:
    if changes:
        data = site.model_dump()
        for k, v in changes.items():
            if k in ("priority_per_normal", "max_wait_min"):
                data["priority"][k] = v
            else:
                data[k] = v
        site = Site.model_validate(data)
    return QueueEngine(site)


def test_numbers_follow_each_service_band(site):
    e = make(site)
    a = e.issue("ho-tich", None, T0).data["ticket"]
    b = e.issue("ho-tich", None, T0 + 1).data["ticket"]
    c = e.issue("dat-dai", None, T0 + 2).data["ticket"]
    assert (a["number"], b["number"], c["number"]) == (1001, 1002, 2001)
    assert a["display"] == "1001" and a["day"] == "2026-11-23"


def test_issue_reports_people_ahead_and_wait(site):
    e = make(site)
    for i in range(3):
        e.issue("dat-dai", None, T0 + i)
    d = e.issue("dat-dai", None, T0 + 10).data
    assert d["people_ahead"] == 3
    assert d["est_wait_min"] > 0


def test_next_calls_oldest_and_next_again_finishes_inferred(site):
    e = make(site)
    t1 = e.issue("dat-dai", None, T0).data["ticket"]
    t2 = e.issue("dat-dai", None, T0 + 5).data["ticket"]
    out = e.call_next(3, T0 + 60)
    assert out.data["ticket"]["id"] == t1["id"]
    assert [ev.kind for ev in out.events] == ["called"]
    out = e.call_next(3, T0 + 400)
    assert out.data["finished"] == {"ticket": out.data["finished"]["ticket"], "inferred": True}
    assert [ev.kind for ev in out.events] == ["finished", "called"]
    assert out.events[0].payload["inferred"] is True
    assert out.data["ticket"]["id"] == t2["id"]


def test_empty_queue_is_not_an_error_and_leaves_counter_ready(site):
    e = make(site)
    out = e.call_next(3, T0)
    assert out.data["queue_empty"] is True and out.data["ticket"] is None
    assert e.counters[3].state == "open" and e.counters[3].serving is None


def test_counter_only_calls_its_services_in_order(site):
    e = make(site)
    e.issue("chung-thuc", None, T0)
    e.issue("ho-tich", None, T0 + 1)
    # counter 1 serves ho-tich first, then chung-thuc
    assert e.call_next(1, T0 + 2).data["ticket"]["service"] == "ho-tich"
    assert e.call_next(1, T0 + 3).data["ticket"]["service"] == "chung-thuc"
    assert e.call_next(3, T0 + 4).data["queue_empty"]


def test_priority_goes_first_but_normals_are_not_starved(site):
    e = make(site, priority_per_normal=2)
    e.issue("dat-dai", None, T0)  # normal, first in
    for i in range(4):
        e.issue("dat-dai", "cao-tuoi", T0 + 1 + i)
    order = [e.call_next(3, T0 + 100 + i).data["ticket"]["priority_group"] for i in range(5)]
    assert order == ["cao-tuoi", "cao-tuoi", None, "cao-tuoi", "cao-tuoi"]


def test_nobody_waits_beyond_max_wait_while_later_tickets_are_called(site):
    e = make(site, max_wait_min=30)
    e.issue("dat-dai", None, T0)  # the old normal ticket
    e.issue("dat-dai", "co-thai", T0 + 31 * 60)
    t = e.call_next(3, T0 + 31 * 60 + 1).data["ticket"]
    assert t["priority_group"] is None  # overdue beats priority


def test_recall_no_show_requeue_once_then_final(site):
    e = make(site)
    t = e.issue("chung-thuc", None, T0).data["ticket"]
    e.call_next(2, T0 + 10)
    r = e.recall(2, T0 + 40)
    assert r.data["recalls"] == 1 and r.events[0].kind == "recalled"
    ns = e.no_show(2, T0 + 100)
    assert ns.data["requeued"] is True and e.tickets[t["id"]].state == "waiting"
    e.call_next(2, T0 + 200)
    ns2 = e.no_show(2, T0 + 300)
    assert ns2.data["requeued"] is False and e.tickets[t["id"]].state == "no-show"


def test_transfer_keeps_arrival_time(site):
    e = make(site)
    t = e.issue("ho-tich", None, T0).data["ticket"]
    later = e.issue("dat-dai", None, T0 + 100).data["ticket"]
    e.call_next(1, T0 + 200)
    out = e.transfer(1, "dat-dai", T0 + 300)
    assert out.data["from_service"] == "ho-tich" and out.events[-1].kind == "transferred"
    # the transferred citizen arrived first, so goes before the later land ticket
    assert e.call_next(3, T0 + 400).data["ticket"]["id"] == t["id"]
    assert e.call_next(3, T0 + 900).data["ticket"]["id"] == later["id"]


def test_pause_marks_counter_and_other_counters_still_call(site):
    e = make(site)
    e.issue("ho-tich", None, T0)
    out = e.pause(1, "họp", T0 + 1)
    assert e.counters[1].state == "paused" and out.events[0].kind == "paused"
    assert e.call_next(2, T0 + 2).data["ticket"]["service"] == "ho-tich"
    assert [ev.kind for ev in e.resume(1, T0 + 3).events] == ["resumed"]


def test_rating_binds_to_ticket_just_served_within_window(site):
    e = make(site)
    t = e.issue("dat-dai", None, T0).data["ticket"]
    e.call_next(3, T0 + 1)
    with pytest.raises(CommandError, match="no service just finished"):
        e.rate(3, 5, T0 + 2)
    e.finish(3, T0 + 600)
    assert e.rate(3, 4, T0 + 610).data["ticket"]["id"] == t["id"]
    with pytest.raises(CommandError) as exc:
        e.rate(3, 5, T0 + 620)
    assert exc.value.code == "already-rated"
    e.issue("dat-dai", None, T0 + 700)
    e.call_next(3, T0 + 701)
    e.finish(3, T0 + 800)
    with pytest.raises(CommandError) as exc:
        e.rate(3, 5, T0 + 800 + site.rating_window_s + 1)
    assert exc.value.code == "rating-window-closed"


def test_void_only_waiting_tickets(site):
    e = make(site)
    t = e.issue("dat-dai", None, T0).data["ticket"]
    assert e.void(t["id"], "paper-out", T0 + 1).events[0].kind == "voided"
    t2 = e.issue("dat-dai", None, T0 + 2).data["ticket"]
    e.call_next(3, T0 + 3)
    with pytest.raises(CommandError):
        e.void(t2["id"], "paper-out", T0 + 4)


def test_daily_reset_restarts_numbers_expires_waiting_keeps_history(site):
    e = make(site)
    e.issue("ho-tich", None, T0)
    left = e.issue("ho-tich", None, T0 + 1).data["ticket"]
    e.call_next(1, T0 + 2)
    next_day = T0 + 24 * 3600
    out = e.issue("ho-tich", None, next_day)
    assert out.data["ticket"]["number"] == 1001 and out.data["ticket"]["day"] == "2026-11-24"
    kinds = [ev.kind for ev in out.events]
    assert "expired" in kinds and "finished" in kinds and kinds[-1] == "issued"
    assert e.counters[1].state == "closed"
    assert left["id"] not in e.tickets or e.tickets[left["id"]].state == "expired"


def test_before_reset_hour_belongs_to_yesterday(site):
    e = make(site)
    night = datetime(2026, 11, 24, 3, 30, tzinfo=VN_TZ).timestamp()
    assert e.service_day(night) == "2026-11-23"


def test_unknown_service_and_counter_are_clear_errors(site):
    e = make(site)
    with pytest.raises(CommandError) as exc:
        e.issue("nope", None, T0)
    assert exc.value.code == "unknown-service"
    with pytest.raises(CommandError) as exc:
        e.call_next(42, T0)
    assert exc.value.code == "unknown-counter"


def test_band_exhaustion_never_reuses_a_number(site):
    data = site.model_dump()
    data["services"][0]["band"] = (1, 3)
    e = QueueEngine(Site.model_validate(data))
    for i in range(3):
        e.issue(data["services"][0]["id"], None, T0 + i)
    with pytest.raises(CommandError) as exc:
        e.issue(data["services"][0]["id"], None, T0 + 10)
    assert exc.value.code == "band-exhausted"


# ------------------------------------------------------------------ properties

ops = st.lists(
    st.one_of(
        st.tuples(st.just("issue"), st.sampled_from(["ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi"]),
                  st.sampled_from([None, None, None, "cao-tuoi", "khuyet-tat"])),
        st.tuples(st.sampled_from(["next", "finish", "no-show", "recall", "pause", "resume"]), st.integers(1, 4), st.none()),
        st.tuples(st.just("transfer"), st.integers(1, 4), st.sampled_from(["ho-tich", "dat-dai"])),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, gaps=st.lists(st.integers(0, 900), min_size=120, max_size=120))
def test_property_queue_invariants(site, ops, gaps):
    e = QueueEngine(site)
    now = T0
    called_ids: set[int] = set()
    issued: dict[tuple[str, str], set[int]] = {}
    k = site.priority.priority_per_normal
    max_wait = site.priority.max_wait_min * 60
    run_pri: dict[int, int] = {}
    for (op, a, b), gap in zip(ops, gaps, strict=False):
        now += gap
        try:
            if op == "issue":
                t = e.issue(a, b, now).data["ticket"]
                key = (t["day"], a)
                assert t["number"] not in issued.setdefault(key, set()), "number reused"
                issued[key].add(t["number"])
            elif op == "next":
                before = {t.id: (t.arrival_at, t.priority_group, t.service) for t in e.waiting(list(site.counter(a).services))}
                out = e.call_next(a, now)
                t = out.data["ticket"]
                if t is None:
                    assert not before
                    continue
                assert t["service"] in site.counter(a).services
                arr, pg, svc = before[t["id"]]
                # nobody overdue who arrived earlier is skipped
                for oid, (oarr, _, _) in before.items():
                    if oid != t["id"] and now - oarr >= max_wait:
                        assert oarr >= arr, "an overdue earlier ticket was skipped"
                # FIFO within a class of the same service, unless overdue rule applied
                overdue_any = any(now - x[0] >= max_wait for x in before.values())
                if not overdue_any:
                    for oid, (oarr, opg, osvc) in before.items():
                        if osvc == svc and bool(opg) == bool(pg) and oid != t["id"]:
                            assert (oarr, oid) > (arr, t["id"])
                called_ids.add(t["id"])
                run_pri[a] = run_pri.get(a, 0) + 1 if pg else 0
            elif op == "finish":
                e.finish(a, now)
            elif op == "no-show":
                e.no_show(a, now)
            elif op == "recall":
                e.recall(a, now)
            elif op == "pause":
                e.pause(a, "", now)
            elif op == "resume":
                e.resume(a, now)
            elif op == "transfer":
                e.transfer(a, b, now)
        except CommandError:
            pass
        # a ticket is served by at most one counter at a time
        serving = [c.serving for c in e.counters.values() if c.serving is not None]
        assert len(serving) == len(set(serving))
        for c in e.counters.values():
            if c.serving is not None:
                assert e.tickets[c.serving].state == "called" and e.tickets[c.serving].counter == c.number
    # revs are gap-free
    assert e.rev >= 0
    assert k >= 1


@settings(max_examples=60, deadline=None)
@given(n_pri=st.integers(0, 12), n_norm=st.integers(0, 12), k=st.integers(1, 4))
def test_property_priority_runs_never_exceed_k_while_normals_wait(site, n_pri, n_norm, k):
    e = make(site, priority_per_normal=k, max_wait_min=24 * 60)
    for i in range(n_norm):
        e.issue("dat-dai", None, T0 + i)
    for i in range(n_pri):
        e.issue("dat-dai", "cao-tuoi", T0 + 100 + i)
    run = 0
    for i in range(n_pri + n_norm):
        normals_waiting = any(not t.priority_group for t in e.waiting(["dat-dai"]))
        priority_waiting = any(t.priority_group for t in e.waiting(["dat-dai"]))
        t = e.call_next(3, T0 + 1000 + i).data["ticket"]
        if t["priority_group"]:
            run += 1
            assert run <= k or not normals_waiting
        else:
            # a normal ticket goes before a waiting priority one only once k priorities ran
            assert not priority_waiting or run >= k
            run = 0
