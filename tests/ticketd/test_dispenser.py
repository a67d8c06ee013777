"""The dispenser's decisions, told as what happens in the hall (time is injected)."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from ticketd.dispenser import ButtonRole, Dispenser, Outcome
from ticketd.printer import PrinterState
from ticketd.render import TicketView
from xephang.clock import VN_TZ
from xephang.hw import KeyPress


def new_core() -> Dispenser:
    ids = (f"req-{i}" for i in itertools.count(1))
    return Dispenser(
        buttons={"ho-tich": ButtonRole("ho-tich"), "dat-dai": ButtonRole("dat-dai"),
                 "ho-tich-priority": ButtonRole("ho-tich", priority_group="cao-tuoi")},
        priority_keys={"priority": "khuyet-tat"},
        priority_window_s=5.0, max_pending=2, max_presses=3, per_s=30.0, hub_wait_s=10.0,
        new_request_id=lambda: next(ids),
    )


@pytest.fixture
def core() -> Dispenser:
    """A dispenser whose hub has said it is online."""
    c = new_core()
    c.set_hub_online(True)
    return c


def press(core, name, at, kind="short"):
    return core.press(KeyPress(name, kind, at), at)


def run_one(core, now, ticket=None):
    job = core.next_job(now)
    assert job is not None
    core.job_done(job, ticket)
    return job


def test_one_press_one_issue_job_with_its_own_request_id(core):
    r = press(core, "ho-tich", 100.0)
    assert r.outcome is Outcome.QUEUED
    assert (r.job.kind, r.job.service, r.job.priority, r.job.request_id) == ("issue", "ho-tich", False, "req-1")
    assert core.next_job(100.0) is r.job
    assert core.next_job(100.0) is None  # in flight: nothing else starts


def test_presses_while_printing_are_queued_in_order_not_lost_not_doubled(core):
    first = press(core, "ho-tich", 100.0).job
    assert core.next_job(100.0) is first
    second = press(core, "dat-dai", 100.5).job
    third = press(core, "ho-tich", 101.0).job
    assert core.next_job(101.0) is None
    core.job_done(first)
    assert core.next_job(101.2) is second
    core.job_done(second)
    assert core.next_job(101.4) is third
    core.job_done(third)
    assert core.next_job(102.0) is None
    assert len({first.request_id, second.request_id, third.request_id}) == 3


def test_a_button_can_have_only_so_many_tickets_waiting(core):
    press(core, "ho-tich", 100.0)
    core.next_job(100.0)
    assert press(core, "ho-tich", 101.0).outcome is Outcome.QUEUED
    assert press(core, "ho-tich", 102.0).outcome is Outcome.REFUSED_BUSY
    assert press(core, "dat-dai", 102.0).outcome is Outcome.QUEUED  # other buttons unaffected


def test_per_button_rate_bound(core):
    for t in (100.0, 101.0, 102.0):
        assert press(core, "ho-tich", t).outcome is Outcome.QUEUED
        run_one(core, t)
    assert press(core, "ho-tich", 103.0).outcome is Outcome.REFUSED_RATE
    assert press(core, "ho-tich", 131.0).outcome is Outcome.QUEUED


def test_priority_key_then_service_within_the_window_is_a_priority_ticket(core):
    assert press(core, "priority", 100.0).outcome is Outcome.ARMED
    assert core.armed == "priority"
    job = press(core, "dat-dai", 103.0).job
    assert (job.priority, job.priority_group) == (True, "khuyet-tat")
    assert core.armed is None
    job2 = press(core, "ho-tich", 104.0).job  # the priority key counts for one ticket only
    assert not job2.priority


def test_priority_key_window_expires(core):
    press(core, "priority", 100.0)
    assert [n.kind for n in core.poll(105.5)] == ["disarmed"]
    assert not press(core, "dat-dai", 106.0).job.priority


def test_dedicated_priority_button(core):
    job = press(core, "ho-tich-priority", 100.0).job
    assert (job.service, job.priority, job.priority_group) == ("ho-tich", True, "cao-tuoi")


@pytest.mark.parametrize("state", [PrinterState.PAPER_OUT, PrinterState.OFFLINE])
def test_no_number_is_asked_for_when_the_printer_cannot_print(core, state):
    core.set_printer_state(state)
    assert press(core, "ho-tich", 100.0).outcome is Outcome.REFUSED_PAPER
    assert core.next_job(100.0) is None
    core.set_printer_state(PrinterState.OK)
    assert press(core, "ho-tich", 101.0).outcome is Outcome.QUEUED


@pytest.mark.parametrize("state", [PrinterState.PAPER_LOW, PrinterState.UNKNOWN])
def test_paper_low_or_a_silent_printer_still_issues(core, state):
    core.set_printer_state(state)
    assert press(core, "ho-tich", 100.0).outcome is Outcome.QUEUED


def test_a_dispenser_that_has_not_heard_from_the_hub_yet_treats_it_as_offline():
    core = new_core()  # just booted: the hub's retained status has not arrived
    assert core.hub_online is False
    r = press(core, "ho-tich", 100.0)
    assert r.outcome is Outcome.WAITING_HUB
    assert core.next_job(100.1) is None  # nothing is sent to a hub nobody has heard from
    core.set_hub_online(True)
    assert core.next_job(101.0) is r.job


def test_hub_offline_press_waits_and_is_answered_when_the_hub_returns(core):
    core.set_hub_online(False)
    r = press(core, "ho-tich", 100.0)
    assert r.outcome is Outcome.WAITING_HUB
    assert core.next_job(105.0) is None
    assert core.poll(105.0) == []
    core.set_hub_online(True)
    assert core.next_job(106.0) is r.job


def test_hub_offline_press_is_dropped_after_the_window(core):
    core.set_hub_online(False)
    r = press(core, "ho-tich", 100.0)
    (notice,) = core.poll(110.5)
    assert (notice.kind, notice.job) == ("dropped-hub-offline", r.job)
    core.set_hub_online(True)
    assert core.next_job(111.0) is None
    assert core.stats.dropped == 1


def test_technician_long_press_reprints_the_last_ticket_and_test_prints_otherwise(core):
    assert press(core, "tech", 50.0, kind="short").outcome is Outcome.IGNORED
    assert press(core, "tech", 51.0, kind="long").job.kind == "test"
    run_one(core, 51.0)
    view = TicketView(number=1001, service_id="ho-tich", issued_at=datetime(2026, 1, 5, 8, tzinfo=VN_TZ))
    press(core, "ho-tich", 100.0)
    run_one(core, 100.0, ticket=view)
    job = press(core, "tech", 120.0, kind="long").job
    assert job.kind == "reprint" and job.ticket.number == 1001 and job.ticket.reprint
    # a reprint needs no hub: it prints while the hub is away
    core.set_hub_online(False)
    assert core.next_job(120.0) is job
    assert press(core, "test", 121.0, kind="long").job.kind == "test"


def test_a_failed_job_frees_the_printer_for_the_next(core):
    first = press(core, "ho-tich", 100.0).job
    second = press(core, "dat-dai", 100.2).job
    core.next_job(100.0)
    core.job_failed(first, "paper-out")
    assert core.next_job(100.3) is second
    assert core.stats.failed == 1
    assert core.busy_keys() == {"dat-dai"}


def test_the_lights_say_what_the_hall_must_know(core):
    leds = ["ho-tich", "dat-dai", "priority"]
    core.set_printer_state(PrinterState.OK)
    assert core.lights(leds) == ({"ho-tich": "ready", "dat-dai": "ready", "priority": "ready"}, "ready")
    press(core, "ho-tich", 100.0)
    assert core.lights(leds) == ({"ho-tich": "working", "dat-dai": "ready", "priority": "ready"}, "working")
    press(core, "priority", 100.1)  # armed: the next service key issues a priority ticket
    assert core.lights(leds)[0]["priority"] == "armed"
    core.set_hub_online(False)  # the hub away: the queued press waits, the others say so
    assert core.lights(leds) == ({"ho-tich": "wait", "dat-dai": "hub_offline", "priority": "armed"}, "hub_offline")
    core.set_printer_state(PrinterState.PAPER_OUT)  # no paper: every service key says fault
    pats, status = core.lights(leds)
    assert (pats["ho-tich"], pats["dat-dai"], status) == ("fault", "fault", "fault")
