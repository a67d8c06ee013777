"""The queue engine as the officers and citizens see it (pure, time injected)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hubd.engine import CommandError, QueueEngine
from xephang.clock import VN_TZ
from xephang.contract import MAX_RECALLS_PER_VISIT, MAX_TRANSFERS_PER_TICKET
from xephang.site import Site, format_number

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


def test_a_dispensers_seen_number_raises_a_ledger_that_lost_todays_numbers_and_nothing_else(site, caplog):
    """``seen`` (IssueTicket.seen_day/seen_number): a ledger begun today (a new card) goes on after
    the highest number the hall printed. Another day's, a lower one and one below the band change nothing; a dispenser's password claiming a high one moves the numbers no
    further than the middle of the band (1001–1999: 1499), which it says in the log."""
    e = make(site)
    day = "2026-11-23"
    e.ledger_started = T0 - 86400  # a ledger of yesterday has today's numbers: a seen one changes nothing
    assert e.issue("ho-tich", None, T0, seen=(day, 1044)).data["ticket"]["number"] == 1001
    e = make(site)
    assert e.issue("ho-tich", None, T0, seen=(day, 1044)).data["ticket"]["number"] == 1001  # nor one of unknown age
    e = make(site)
    e.ledger_started = T0 - 600  # a new card, ten minutes ago
    assert e.issue("ho-tich", None, T0, seen=(day, 1044)).data["ticket"]["number"] == 1045
    assert "dispenser printed up to 1044 of ho-tich today, the ledger (new today) only to none" in caplog.text
    assert e.issue("ho-tich", None, T0 + 1, seen=(day, 1044)).data["ticket"]["number"] == 1046  # as it should be
    assert e.issue("ho-tich", None, T0 + 2, seen=(day, 1003)).data["ticket"]["number"] == 1047
    assert e.issue("ho-tich", None, T0 + 3, seen=("2026-11-20", 1900)).data["ticket"]["number"] == 1048
    assert e.issue("dat-dai", None, T0 + 4, seen=(day, 7)).data["ticket"]["number"] == 2001  # below its band
    assert e.issue("dat-dai", None, T0 + 5, seen=(day, 9999)).data["ticket"]["number"] == 2002  # above its band
    caplog.clear()
    assert e.issue("dat-dai", None, T0 + 5, seen=(day, 2990), issued_by="dispenser-1").data["ticket"]["number"] == 2500
    assert "dat-dai: 2990 is past the middle of the band: 2500–2990 may be printed twice today" in caplog.text
    caplog.clear()
    assert e.issue("dat-dai", None, T0 + 6, seen=(day, 2990)).data["ticket"]["number"] == 2501  # once: no further
    assert caplog.text == ""  # and said once
    assert e.sequences[(day, "ho-tich")] == 1048 and e.sequences[(day, "dat-dai")] == 2501


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


def test_rating_after_an_inferred_finish_stays_with_the_ticket_finished_with_the_key(site):
    e = make(site)
    a = e.issue("dat-dai", None, T0).data["ticket"]
    b = e.issue("dat-dai", None, T0 + 1).data["ticket"]
    e.call_next(3, T0 + 10)
    assert e.finish(3, T0 + 60).data["ticket"]["id"] == a["id"]  # the box now asks A for a rating
    e.call_next(3, T0 + 61)  # B is called
    nxt = e.call_next(3, T0 + 90)  # the officer forgot Finish: B's finish is inferred
    assert nxt.data["finished"]["ticket"]["id"] == b["id"] and nxt.data["finished"]["inferred"] is True
    # the box never saw B finish, so a rating naming B is refused ...
    with pytest.raises(CommandError) as exc:
        e.rate(3, 1, T0 + 95, ticket_id=b["id"])
    assert exc.value.code == "rating-wrong-ticket"
    # ... and citizen A, still at the box, rates A — never B
    assert e.rate(3, 5, T0 + 100, ticket_id=a["id"]).data["ticket"]["id"] == a["id"]
    assert (e.tickets[a["id"]].rating, e.tickets[b["id"]].rating) == (5, None)


def test_a_box_without_ticket_id_also_rates_the_explicitly_finished_ticket(site):
    e = make(site)
    a = e.issue("dat-dai", None, T0).data["ticket"]
    b = e.issue("dat-dai", None, T0 + 1).data["ticket"]
    e.call_next(3, T0 + 10)
    e.finish(3, T0 + 60)
    e.call_next(3, T0 + 61)
    e.pause(3, "nghỉ trưa", T0 + 90)  # pause while serving: B finished, inferred
    assert e.tickets[b["id"]].state == "done" and e.tickets[b["id"]].finish_inferred
    assert e.rate(3, 3, T0 + 100).data["ticket"]["id"] == a["id"]
    # the window runs from A's Finish key, not from B's inferred end
    e2 = make(site)
    e2.issue("dat-dai", None, T0)
    e2.issue("dat-dai", None, T0 + 1)
    e2.call_next(3, T0 + 10)
    e2.finish(3, T0 + 60)
    e2.call_next(3, T0 + 61)
    e2.call_next(3, T0 + 170)
    with pytest.raises(CommandError) as exc:
        e2.rate(3, 3, T0 + 60 + site.rating_window_s + 1)
    assert exc.value.code == "rating-window-closed"


def test_an_inferred_finish_alone_opens_no_rating_window(site):
    e = make(site)
    e.issue("dat-dai", None, T0)
    e.call_next(3, T0 + 10)
    e.call_next(3, T0 + 300)  # Next again: the first citizen's finish is inferred
    with pytest.raises(CommandError) as exc:
        e.rate(3, 5, T0 + 301)
    assert exc.value.code == "rating-window-closed"


def test_a_late_box_naming_the_previous_citizen_is_refused(site):
    e = make(site)
    a = e.issue("dat-dai", None, T0).data["ticket"]
    b = e.issue("dat-dai", None, T0 + 1).data["ticket"]
    e.call_next(3, T0 + 10)
    e.finish(3, T0 + 60)
    e.call_next(3, T0 + 61)
    e.finish(3, T0 + 90)  # B finished with the key: the window now belongs to B
    with pytest.raises(CommandError) as exc:
        e.rate(3, 2, T0 + 95, ticket_id=a["id"])
    assert exc.value.code == "rating-wrong-ticket" and str(a["id"]) in str(exc.value)
    assert e.tickets[b["id"]].rating is None
    assert e.rate(3, 4, T0 + 96, ticket_id=b["id"]).data["ticket"]["id"] == b["id"]


def test_a_refused_command_at_the_days_turn_changes_nothing(site):
    e = make(site)
    t = e.issue("ho-tich", None, T0).data["ticket"]
    e.issue("ho-tich", None, T0 + 1)
    e.call_next(1, T0 + 2)
    rev = e.rev
    tomorrow = T0 + 24 * 3600
    for refused in (lambda: e.recall(1, tomorrow), lambda: e.finish(1, tomorrow), lambda: e.no_show(1, tomorrow),
                    lambda: e.transfer(1, "dat-dai", tomorrow), lambda: e.void(t["id"] + 1, "paper-out", tomorrow)):
        with pytest.raises(CommandError):
            refused()
    assert e.rev == rev and e.day == "2026-11-23" and e.tickets[t["id"]].state == "called"
    # the turn rides along with the next accepted command, so the ledger writes it
    kinds = [ev.kind for ev in e.call_next(1, tomorrow).events]
    assert kinds == ["finished", "expired"]


def test_estimated_wait_counts_only_open_unpaused_counters_of_the_service(site):
    e = make(site)
    # ho-tich is served at counters 1 and 2; the site's prior is 10 minutes per citizen
    assert site.service("ho-tich").mean_service_min == 10
    e.resume(1, T0)  # counter 1 opens; counter 2 has not opened yet today
    assert e.estimate("ho-tich", 4) == 40.0  # 4 × 10 min ÷ 1 open counter
    e.resume(2, T0 + 1)
    assert e.estimate("ho-tich", 4) == 20.0  # ÷ 2
    e.pause(2, "họp", T0 + 2)
    assert e.estimate("ho-tich", 4) == 40.0  # a paused counter serves nobody
    e.resume(3, T0 + 3)  # counter 3 does not serve ho-tich
    assert e.estimate("ho-tich", 4) == 40.0
    # the ticket slip prints a range around the same queue (tests/hubd/test_wait_estimate.py)
    for i in range(4):
        e.issue("ho-tich", None, T0 + 10 + i)
    d = e.issue("ho-tich", None, T0 + 20).data
    assert d["people_ahead"] == 4
    assert d["est_wait_low_min"] <= d["est_wait_min"] <= d["est_wait_high_min"]


def test_estimated_wait_follows_recent_service_times_of_that_service(site):
    e = make(site)
    e.resume(3, T0)  # land (dat-dai): counter 3 open, counter 4 closed; prior 15 minutes
    assert e.estimate("dat-dai", 2) == 30.0
    now = T0 + 10
    e.issue("dat-dai", None, now)
    e.call_next(3, now + 1)
    e.finish(3, now + 1 + 300)  # one 5-minute service: average 0.8 × 15 + 0.2 × 5 = 13 min
    assert e.estimate("dat-dai", 2) == 26.0
    assert e.estimate("ho-tich", 2) == 20.0  # another service's figure does not move
    # an inferred finish is no measured service time
    e.issue("dat-dai", None, now + 400)
    e.call_next(3, now + 401)
    e.call_next(3, now + 401 + 3600)
    assert e.estimate("dat-dai", 2) == 26.0
    # a run of 5-minute services: the estimate follows the recent ones
    now += 8000
    for _ in range(20):
        e.issue("dat-dai", None, now)
        e.call_next(3, now + 1)
        e.finish(3, now + 301)
        now += 400
    assert 5.0 <= e.estimate("dat-dai", 1) <= 5.2


def test_estimated_wait_adds_half_a_service_when_every_open_counter_is_busy(site):
    e = make(site)
    e.issue("dat-dai", None, T0)
    e.call_next(3, T0 + 1)  # the only open land counter is busy
    assert e.estimate("dat-dai", 0) == 7.5  # half of 15 minutes
    assert e.estimate("dat-dai", 1) == 22.5
    e.finish(3, T0 + 900)  # a 15-minute service keeps the average at 15
    assert e.estimate("dat-dai", 0) == 0.0  # nobody ahead, a counter free


def test_void_only_waiting_tickets(site):
    e = make(site)
    t = e.issue("dat-dai", None, T0).data["ticket"]
    assert e.void(t["id"], "paper-out", T0 + 1).events[0].kind == "voided"
    t2 = e.issue("dat-dai", None, T0 + 2).data["ticket"]
    e.call_next(3, T0 + 3)
    with pytest.raises(CommandError):
        e.void(t2["id"], "paper-out", T0 + 4)


def test_a_dispenser_voids_only_its_own_ticket_and_only_while_printing_can_fail(site):
    """A dispenser voids a number its printer failed on: its own, within DISPENSER_VOID_WINDOW_S of
    the issue (ticketd gives up on an unanswered press after 10 minutes). Even the only dispenser of
    a centre cannot void the citizens who have waited longer; technicians (``by`` None) still can."""
    from xephang.contract import DISPENSER_VOID_WINDOW_S

    e = make(site)
    mine = e.issue("dat-dai", None, T0, issued_by="dispenser-1").data["ticket"]["id"]
    theirs = e.issue("dat-dai", None, T0 + 1, issued_by="dispenser-2").data["ticket"]["id"]
    with pytest.raises(CommandError) as err:
        e.void(theirs, "paper-out", T0 + 2, by="dispenser-1")
    assert err.value.code == "forbidden" and e.tickets[theirs].state == "waiting"
    with pytest.raises(CommandError) as err:
        e.void(mine, "paper-out", T0 + DISPENSER_VOID_WINDOW_S + 1, by="dispenser-1")
    assert err.value.code == "not-voidable" and e.tickets[mine].state == "waiting"
    assert e.void(mine, "paper-out", T0 + DISPENSER_VOID_WINDOW_S, by="dispenser-1").events[0].kind == "voided"
    assert e.void(theirs, "tech", T0 + DISPENSER_VOID_WINDOW_S + 60).events[0].kind == "voided"  # a technician


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
#
# The properties run random days of presses against the engine and, next to it, a small model
# of the rules as docs/queue-rules.md writes them. The model keeps its own queue (arrival
# times, priority runs, who is served, who may rate), so every call, number, refusal and end
# state the engine produces is checked against the documented rule, not against itself.

SERVICES = ["ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi"]
FINAL = {"done", "no-show", "voided", "expired"}  # served, gone, print failed, left at day end

# (what, counter, service, priority group, pick): kinds weighted like a working morning
KINDS = ["issue"] * 6 + ["next"] * 5 + ["finish"] * 3 + ["no-show", "recall", "pause", "resume", "transfer", "void", "rate",
                                                          "rate"]


def _op(kind: str, counter: int, service: str, group: str | None, pick: int | None) -> tuple:
    if kind == "issue":
        return kind, service, group
    if kind == "transfer":
        return kind, counter, service
    if kind == "void":
        return kind, pick or 0, None
    return kind, counter, pick if kind == "rate" else None


ops = st.lists(st.builds(_op, st.sampled_from(KINDS), st.integers(1, 4), st.sampled_from(SERVICES),
                         st.sampled_from([None, None, None, "cao-tuoi", "khuyet-tat"]),
                         st.one_of(st.none(), st.integers(0, 200))),
               min_size=80, max_size=150)
# mostly minutes between presses; one in 15 a night or more, so days turn and numbering restarts
gaps = st.lists(st.builds(lambda night, minutes, hours: hours if night == 0 else minutes,
                          st.integers(0, 14), st.integers(0, 900), st.integers(3 * 3600, 30 * 3600)),
                min_size=150, max_size=150)


def prop_site(site: Site, k: int, max_wait_min: int, requeue: bool) -> Site:
    """The example centre with prefixes and one tiny band (so bands run out within a day)."""
    data = site.model_dump()
    bands = {"ho-tich": ((1, 999), "A"), "dat-dai": ((2001, 2999), "B"), "chung-thuc": ((3001, 3006), "")}
    for s in data["services"]:
        if s["id"] in bands:
            s["band"], s["prefix"] = bands[s["id"]]
    data["priority"]["priority_per_normal"] = k
    data["priority"]["max_wait_min"] = max_wait_min
    data["no_show_requeue"] = requeue
    return Site.model_validate(data)


def day_of(now: float) -> str:
    """The service day as the docs define it: local date, turning at 04:00."""
    return (datetime.fromtimestamp(now, VN_TZ) - timedelta(hours=4)).date().isoformat()


@dataclass
class Model:
    """The queue as the documented rules say it must be."""

    site: Site
    day: str = ""
    state: dict[int, str] = field(default_factory=dict)  # ticket id -> waiting|called|done|no-show|voided|expired
    service: dict[int, str] = field(default_factory=dict)
    group: dict[int, str | None] = field(default_factory=dict)
    arrival: dict[int, float] = field(default_factory=dict)
    was_called: set[int] = field(default_factory=set)
    requeued: set[int] = field(default_factory=set)
    serving: dict[int, int] = field(default_factory=dict)  # counter -> ticket id
    streak: dict[str, int] = field(default_factory=dict)  # service -> priority calls in a row
    last_finish: dict[int, tuple[int, float]] = field(default_factory=dict)  # counter -> (ticket, Finish key time)
    rated: set[int] = field(default_factory=set)
    seq: dict[tuple[str, str], int] = field(default_factory=dict)
    recalls: dict[int, int] = field(default_factory=dict)  # counter -> recalls of its current call
    transfers: dict[int, int] = field(default_factory=dict)  # ticket id -> transfers

    def at(self, now: float) -> Model:
        """The model as a command at ``now`` finds it: after the day's turn, if one is due."""
        day = day_of(now)
        if day == self.day:
            return self
        m = copy.deepcopy(self)
        m.day = day
        if not self.day:
            return m
        for tid in m.serving.values():
            m.state[tid] = "done"  # finished (inferred) by the turn: no rating for it
        for tid, st_ in m.state.items():
            if st_ == "waiting":
                m.state[tid] = "expired"
        m.serving, m.streak, m.last_finish = {}, {}, {}
        return m

    def waiting(self, services: tuple[str, ...]) -> list[int]:
        ws = [t for t, s in self.state.items() if s == "waiting" and self.service[t] in services]
        return sorted(ws, key=lambda t: (self.arrival[t], t))

    def expected_call(self, counter: int, now: float) -> int | None:
        """docs/queue-rules.md, 'Who is called next'."""
        services = self.site.counter(counter).services
        cands = self.waiting(services)
        overdue = [t for t in cands if now - self.arrival[t] >= self.site.priority.max_wait_min * 60]
        if overdue:
            return overdue[0]  # 1. maximum wait: the earliest arrival, whatever class or service
        for s in services:  # 2. the counter's services in configured order
            pri = [t for t in cands if self.service[t] == s and self.group[t]]
            norm = [t for t in cands if self.service[t] == s and not self.group[t]]
            if pri and (not norm or self.streak.get(s, 0) < self.site.priority.priority_per_normal):
                return pri[0]  # priority first, until k priority calls ran while a normal waits
            if norm:
                return norm[0]  # 3. within a class, earliest arrival
        return None


# one citizen recalled past the hub's limit, then sent between two services past its limit (random
# presses reach neither): the rules refuse the 11th recall of a call and the 11th transfer
_LIMITS = [("issue", "ho-tich", None), ("next", 1, None), *[("recall", 1, None)] * 11]
for _i in range(6):
    _LIMITS += [("transfer", 1, "dat-dai"), ("next", 3, None), ("transfer", 3, "ho-tich"), ("next", 1, None)]


@settings(max_examples=150, deadline=None)
@given(ops=ops, gaps=gaps, k=st.integers(1, 3), max_wait_min=st.sampled_from([20, 45, 90]), requeue=st.booleans())
@example(ops=_LIMITS, gaps=[60] * len(_LIMITS), k=1, max_wait_min=45, requeue=False)
def test_property_queue_follows_the_documented_rules(site, ops, gaps, k, max_wait_min, requeue):
    site = prop_site(site, k, max_wait_min, requeue)
    assert site.site.daily_reset == time(4, 0)  # day_of() assumes it
    e, m = QueueEngine(site), Model(site)
    now = T0
    events = []
    ids: list[int] = []  # every ticket issued, in order
    numbers_used: dict[tuple[str, str], set[int]] = {}
    for (op, a, b), gap in zip(ops, gaps, strict=False):
        now += gap
        n = m.at(now)  # what the rules say the command finds
        serving = n.serving.get(a) if isinstance(a, int) else None
        refuse: str | None = None
        if op == "issue":
            lo, hi = site.service(a).band
            if n.seq.get((n.day, a), lo - 1) >= hi:
                refuse = "band-exhausted"
        elif op in ("finish", "recall", "no-show", "transfer") and serving is None:
            refuse = "not-serving"
        elif op == "transfer" and n.service[serving] == b:
            refuse = "same-service"
        elif op == "transfer" and n.transfers.get(serving, 0) >= MAX_TRANSFERS_PER_TICKET:
            refuse = "transfer-limit"
        elif op == "recall" and n.recalls.get(a, 0) >= MAX_RECALLS_PER_VISIT:
            refuse = "recall-limit"
        elif op == "void":
            if not ids:
                continue
            b = ids[a % len(ids)]
            if n.state[b] != "waiting" or b in n.was_called:
                refuse = "not-voidable"
        elif op == "rate":
            named = ids[b % len(ids)] if b is not None and ids else None
            last, finished_at = n.last_finish.get(a, (None, 0.0))
            if named is not None and named != last:
                refuse = "rating-wrong-ticket"
            elif last is None or now - finished_at > site.rating_window_s:
                refuse = "rating-window-closed"
            elif last in n.rated:
                refuse = "already-rated"
        rev_before = e.rev
        try:
            if op == "issue":
                out = e.issue(a, b, now)
            elif op == "next":
                out = e.call_next(a, now)
            elif op == "finish":
                out = e.finish(a, now)
            elif op == "no-show":
                out = e.no_show(a, now)
            elif op == "recall":
                out = e.recall(a, now)
            elif op == "pause":
                out = e.pause(a, "", now)
            elif op == "resume":
                out = e.resume(a, now)
            elif op == "transfer":
                out = e.transfer(a, b, now)
            elif op == "void":
                out = e.void(b, "paper-out", now)
            else:
                out = e.rate(a, 4, now, ticket_id=named)
        except CommandError as exc:
            assert exc.code == refuse, f"{op} {a} {b}: refused with {exc.code}, the rules say {refuse}"
            assert e.rev == rev_before, "a refused command must change nothing"
            continue
        assert refuse is None, f"{op} {a} {b}: accepted, the rules say {refuse}"
        m = n
        events += out.events
        if op == "issue":
            t = out.data["ticket"]
            svc = site.service(a)
            lo, hi = svc.band
            expected = m.seq.get((m.day, a), lo - 1) + 1  # the band's first number each new day, then +1
            assert t["number"] == expected and lo <= t["number"] <= hi, "number outside its band or out of sequence"
            assert t["display"] == format_number(t["number"], svc.prefix) and t["display"].startswith(svc.prefix)
            assert t["number"] not in numbers_used.setdefault((t["day"], a), set()), "number reused within a day"
            assert t["day"] == m.day and t["id"] == len(ids) + 1
            numbers_used[(t["day"], a)].add(t["number"])
            m.seq[(m.day, a)] = t["number"]
            ids.append(t["id"])
            m.state[t["id"]], m.service[t["id"]], m.group[t["id"]], m.arrival[t["id"]] = "waiting", a, b, now
        elif op == "next":
            if serving is not None:
                m.state[serving] = "done"  # inferred: opens no rating window
                assert out.data["finished"]["ticket"]["id"] == serving and out.data["finished"]["inferred"]
            want = m.expected_call(a, now)
            got = out.data["ticket"]["id"] if out.data["ticket"] else None
            assert got == want, f"counter {a} called {got}, the rules pick {want} (waiting: {m.waiting(site.counter(a).services)})"
            m.serving.pop(a, None)
            if got is not None:
                m.state[got], m.serving[a] = "called", got
                m.recalls[a] = 0  # a new call: its own recalls
                m.was_called.add(got)
                s = m.service[got]
                m.streak[s] = m.streak.get(s, 0) + 1 if m.group[got] else 0
        elif op == "finish":
            m.state[serving] = "done"
            m.last_finish[a] = (serving, now)
            del m.serving[a]
        elif op == "no-show":
            del m.serving[a]
            if site.no_show_requeue and serving not in m.requeued:
                m.state[serving], m.arrival[serving] = "waiting", now  # once, to the back
                m.requeued.add(serving)
            else:
                m.state[serving] = "no-show"
        elif op == "transfer":
            del m.serving[a]
            m.state[serving], m.service[serving] = "waiting", b  # arrival kept
            m.transfers[serving] = m.transfers.get(serving, 0) + 1
        elif op == "recall":
            m.recalls[a] = m.recalls.get(a, 0) + 1
        elif op == "pause" and serving is not None:
            m.state[serving] = "done"
            del m.serving[a]
        elif op == "void":
            m.state[b] = "voided"
        elif op == "rate":
            ticket = m.last_finish[a][0]
            assert out.data["ticket"]["id"] == ticket, "rating bound to another ticket"
            m.rated.add(ticket)
        # nobody lost, nobody served twice: the engine's tickets are exactly the model's
        assert {i: e.tickets[i].state for i in ids} == m.state
        assert {c.number: c.serving for c in e.counters.values() if c.serving is not None} == m.serving
    # revs are strictly consecutive, from 1, with no gap and no repeat
    assert [ev.rev for ev in events] == list(range(1, len(events) + 1)) and e.rev == len(events)
    assert len({ev.event_id for ev in events}) == len(events)
    # every ticket ever issued is still known and ends served, waiting, no-show, voided
    # or expired at a day's end — or is being served right now
    assert set(e.tickets) == set(ids)
    for tid in ids:
        assert e.tickets[tid].state in FINAL | {"waiting", "called"}


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


def test_every_state_changing_action_of_the_contract_has_a_command():
    """The hub's command table covers every request the contract defines, except those the hub
    answers itself without changing anything (resync, report, ticket-wait): a new action cannot
    be forgotten."""
    from hubd.main import COMMANDS
    from xephang.contract import READ_ONLY_ACTIONS, REQUEST_MODELS

    assert set(COMMANDS) == {m for a, m in REQUEST_MODELS.items() if a not in READ_ONLY_ACTIONS}
    assert set(READ_ONLY_ACTIONS) < set(REQUEST_MODELS)


def test_a_transferred_ticket_does_not_lock_its_new_services_band_for_the_day(site):
    """A ticket keeps the number its first band gave it (1001) when it is sent on to dat-dai: the
    site-change check read it as one of dat-dai's numbers of today, so every later push — the head's
    roster too — was refused until the next day ("dải số [2001, 2999] không chứa … (1001–2001)")."""
    e = make(site)
    e.issue("ho-tich", None, T0)
    assert e.call_next(1, T0 + 60).data["ticket"]["number"] == 1001  # raises CommandError when refused
    assert e.transfer(1, "dat-dai", T0 + 120).data["ticket"]["service"] == "dat-dai"
    e.issue("dat-dai", None, T0 + 180)
    assert e.site_change_refusals(site) == []
    # a band that leaves out dat-dai's own number is still refused, named by dat-dai's numbers only
    data = site.model_dump()
    data["services"] = [{**s, "band": [2002, 2999]} if s["id"] == "dat-dai" else s for s in data["services"]]
    (why,) = e.site_change_refusals(Site.model_validate(data))
    assert "dải số [2002, 2999] không chứa các số đã phát hôm nay (2001–2001)" in why


def test_no_ticket_is_issued_or_sent_to_a_service_no_counter_calls(site):
    """A live site change may leave a service on the dispenser with no counter calling it: its
    tickets waited for a call that could not come ("khoảng 543 phút"), and a transfer sent a citizen
    there. Both are refused with a code the dispenser flashes and the console words."""
    data = site.model_dump()
    data["counters"] = [{**c, "services": [s for s in c["services"] if s != "van-hoa-xa-hoi"] or ["dat-dai"]}
                        for c in data["counters"]]
    e = make(Site.model_validate(data))
    with pytest.raises(CommandError) as err:
        e.issue("van-hoa-xa-hoi", None, T0)
    assert err.value.code == "no-counter"
    e.issue("dat-dai", None, T0)
    assert e.call_next(3, T0 + 60).data["ticket"]["service"] == "dat-dai"
    with pytest.raises(CommandError) as err:
        e.transfer(3, "van-hoa-xa-hoi", T0 + 120)
    assert err.value.code == "no-counter" and e.counters[3].serving is not None  # still served here
    assert e.sequences.get((e.day, "van-hoa-xa-hoi")) is None


def test_a_new_band_that_ends_at_todays_last_number_is_refused_an_old_one_used_up_is_not(site):
    """A band pushed as [1001, 1003] after 1003 was issued was applied: ho-tich could issue nothing
    more that day, and nothing said so."""
    e = make(site)
    for i in range(3):
        e.issue("ho-tich", None, T0 + i)
    data = site.model_dump()
    data["services"] = [{**s, "band": [1001, 1003]} if s["id"] == "ho-tich" else s for s in data["services"]]
    narrow = Site.model_validate(data)
    assert e.site_change_refusals(narrow) == [
        "lĩnh vực ho-tich: dải số mới [1001, 1003] không còn số nào cho hôm nay (đã phát đến 1003): để dải kết "
        "thúc sau 1003 / the new band [1001, 1003] leaves no number for today: 1003 was the last issued"]
    data["services"] = [{**s, "band": [1001, 1004]} if s["id"] == "ho-tich" else s for s in data["services"]]
    assert e.site_change_refusals(Site.model_validate(data)) == []  # one left: allowed
    # a band used up the ordinary way does not hold back a change of something else
    e2 = make(narrow)
    for i in range(3):
        e2.issue("ho-tich", None, T0 + i)
    assert e2.site_change_refusals(narrow.model_copy(update={"rating_window_s": 60})) == []
