"""The live model (pure): what a citizen's page says after each event, as the hub would say it."""

from __future__ import annotations

from webd.live import LiveHall
from xephang.contract import CounterState, HallState, NodeStatus, ServiceState, TicketEvent, TicketInfo

DAY = "2026-11-23"


def tinfo(tid: int, number: int, service: str = "ho-tich", *, state: str = "waiting", prio: str | None = None,
          counter: int | None = None, recalls: int = 0) -> TicketInfo:
    return TicketInfo(id=tid, day=DAY, number=number, display=str(number), service=service, priority_group=prio,
                      issued_at=1000.0 + tid, state=state, counter=counter, recalls=recalls)


def ev(rev: int, kind: str, ticket: TicketInfo, **kw) -> TicketEvent:
    return TicketEvent(event_id=f"e{rev}", rev=rev, at=1000.0 + rev, kind=kind, ticket=ticket, **kw)


def synced_model(waiting: dict[str, int] | None = None) -> LiveHall:
    m = LiveHall()
    m.set_link(True)
    m.on_status(NodeStatus(node="hub", online=True, session=1))
    services = [ServiceState(id=s, waiting=n, est_wait_min=10.0 * n) for s, n in (waiting or {"ho-tich": 0}).items()]
    m.begin(HallState(rev=0, day=DAY, services=services, counters=[CounterState(number=1, state="open")]), 100)
    return m


def view(m: LiveHall, tid: int, number: int):
    return m.snapshot().ticket_view(tid, DAY, str(number))


def test_waiting_then_called_then_served_and_people_ahead_counted_as_the_hub_does():
    m = synced_model({"ho-tich": 3})
    m.on_event(ev(1, "issued", tinfo(1, 1001)))
    m.on_event(ev(2, "issued", tinfo(2, 1002)))
    m.on_event(ev(3, "issued", tinfo(3, 1003, prio="cao-tuoi")))  # a priority ticket goes first
    assert view(m, 2, 1002).people_ahead == 2 and view(m, 3, 1003).people_ahead == 0
    m.on_event(ev(4, "called", tinfo(3, 1003, state="called", counter=1, prio="cao-tuoi"), counter=1))
    m.on_service(ServiceState(id="ho-tich", waiting=2, rev=4))
    assert view(m, 2, 1002).people_ahead == 1
    v = view(m, 3, 1003)
    assert (v.state, v.counter) == ("called", 1)
    m.on_event(ev(5, "recalled", tinfo(3, 1003, state="called", counter=1, recalls=1, prio="cao-tuoi"), counter=1))
    assert view(m, 3, 1003).last_kind == "recalled" and view(m, 3, 1003).recalls == 1
    m.on_event(ev(6, "finished", tinfo(3, 1003, state="done", counter=1, prio="cao-tuoi"), counter=1))
    assert view(m, 3, 1003).state == "done"


def test_transfer_no_show_requeue_void_and_expiry():
    m = synced_model({"ho-tich": 1, "dat-dai": 0})
    m.on_event(ev(1, "issued", tinfo(1, 1001)))
    m.on_event(ev(2, "called", tinfo(1, 1001, state="called", counter=1), counter=1))
    m.on_event(ev(3, "transferred", tinfo(1, 1001, "dat-dai"), from_service="ho-tich"))
    v = view(m, 1, 1001)
    assert (v.state, v.service, v.from_service, v.last_kind) == ("waiting", "dat-dai", "ho-tich", "transferred")
    m.on_event(ev(4, "called", tinfo(1, 1001, "dat-dai", state="called", counter=1), counter=1))
    m.on_event(ev(5, "no-show", tinfo(1, 1001, "dat-dai")))  # requeued once
    assert view(m, 1, 1001).state == "waiting"
    m.on_event(ev(6, "called", tinfo(1, 1001, "dat-dai", state="called", counter=1), counter=1))
    m.on_event(ev(7, "no-show", tinfo(1, 1001, "dat-dai", state="no-show")))
    assert view(m, 1, 1001).state == "no-show"
    m.on_event(ev(8, "issued", tinfo(2, 1002)))
    m.on_event(ev(9, "voided", tinfo(2, 1002, state="voided")))
    assert view(m, 2, 1002).state == "voided"
    m.on_event(ev(10, "issued", tinfo(3, 1003)))
    m.on_event(ev(11, "expired", tinfo(3, 1003, state="expired")))
    assert view(m, 3, 1003).state == "expired"
    # the next service day: a link of the 23rd has expired
    m.on_hall(HallState(rev=11, day="2026-11-24"))
    assert view(m, 1, 1001).state == "old"


def test_a_gap_holds_events_and_says_updating_until_the_resync_fills_it():
    m = synced_model()
    m.on_event(ev(1, "issued", tinfo(1, 1001)))
    assert m.on_event(ev(3, "called", tinfo(1, 1001, state="called", counter=1), counter=1)) is True
    assert view(m, 1, 1001).state == "syncing"  # never a guess while a gap is open
    missed = ev(2, "issued", tinfo(2, 1002))
    m.on_resync(HallState(rev=3, day=DAY), [missed], more=False)
    assert not m.gap and view(m, 1, 1001).state == "called" and m.rev == 3
    assert m.on_event(ev(3, "called", tinfo(1, 1001, state="called", counter=1), counter=1)) is False  # a duplicate
    assert m.duplicates == 1


def test_hub_or_broker_away_means_updating_never_a_stale_call():
    m = synced_model()
    m.on_event(ev(1, "issued", tinfo(1, 1001)))
    m.on_event(ev(2, "called", tinfo(1, 1001, state="called", counter=1), counter=1))
    m.on_status(NodeStatus(node="hub", online=False, session=1))
    assert view(m, 1, 1001).state == "syncing"
    m.on_status(NodeStatus(node="hub", online=True, session=2))
    m.on_status(NodeStatus(node="hub", online=False, session=1))  # a late Will of the old connection
    assert view(m, 1, 1001).state == "called"
    m.set_link(False)
    assert view(m, 1, 1001).state == "syncing"


def test_a_ticket_issued_before_webd_started_is_found_at_its_counter():
    m = synced_model()
    m.on_counter(CounterState(number=2, state="open", serving=tinfo(77, 1077, state="called", counter=2), rev=5))
    v = view(m, 77, 1077)
    assert (v.state, v.counter) == ("called", 2)
    assert view(m, 78, 1078).state == "unknown"


def test_catch_up_reads_todays_events_back_before_saying_synced():
    m = LiveHall()
    m.set_link(True)
    m.on_status(NodeStatus(node="hub", online=True, session=1))
    since = m.begin(HallState(rev=500, day=DAY), 100)
    assert since == 400 and not m.synced
    m.on_resync(HallState(rev=500, day=DAY), [ev(401, "issued", tinfo(1, 1001))], more=True)
    assert not m.synced
    m.on_resync(HallState(rev=500, day=DAY), [], more=False)
    assert m.synced and m.rev == 500 and view(m, 1, 1001).state == "waiting"


def test_a_hub_on_a_new_ledger_is_followed_page_by_page():
    """The hub's card was replaced: its new ledger's revisions start after its clock (far above ours).
    The first page of the resync starts past our rev; the model goes on from it instead of asking
    for the same page again and again."""
    m = synced_model()
    for r in range(1, 6):
        m.on_event(ev(r, "issued", tinfo(r, 1000 + r)))
    base = 1_767_600_000
    assert m.on_event(ev(base + 1, "issued", tinfo(base + 1, 1001))) is True  # a gap
    page = [ev(base + i, "issued", tinfo(base + i, 1000 + i)) for i in range(1, 101)]
    assert m.on_resync(HallState(rev=base + 150, day=DAY), page, more=True) is True
    assert m.rev == base + 100 and m.missing_from() == base + 100 and not m.gap
    rest = [ev(base + i, "issued", tinfo(base + i, 1000 + i)) for i in range(101, 151)]
    m.on_resync(HallState(rev=base + 150, day=DAY), rest, more=False)
    assert m.synced and m.rev == base + 150 and view(m, base + 150, 1150).state == "waiting"


def test_a_new_ledgers_hall_state_ends_the_old_ledgers_tickets():
    """A drill after a card swap: the old ledger's waiting tickets stayed in webd's model, their
    phones said "2 ahead, 35–60 min", and the new hub's first ticket counted them ahead of it. The
    hall state names the ledger (its numbering base): ids up to it are an older ledger's."""
    m = synced_model({"ho-tich": 3})
    old_base = 1_767_000_000
    m.on_hall(HallState(rev=old_base + 3, day=DAY, ledger=old_base))
    for r in range(1, 4):
        m.on_event(ev(r, "issued", tinfo(old_base + r, 1000 + r)))
    assert view(m, old_base + 3, 1003).people_ahead == 2
    base = 1_767_600_000  # the new card's ledger
    m.on_resync(HallState(rev=base + 1, day=DAY, ledger=base, services=[ServiceState(id="ho-tich", waiting=1)]),
                [ev(base + 1, "issued", tinfo(base + 1, 1004))], more=False)
    assert view(m, base + 1, 1004).people_ahead == 0  # the lost three are not ahead of it
    v = view(m, old_base + 2, 1002)
    assert v.state == "lost" and v.people_ahead is None
    from tests.conftest import SITE_FILE
    from webd.pages import ticket_fragment
    from xephang.settings import load_site

    assert "Vui lòng lấy số mới" in ticket_fragment(v, load_site(SITE_FILE), m.snapshot(), "vi", DAY)
    # a webd started after the swap: an old ticket's page says the same, not "no information"
    late = synced_model()
    late.on_hall(HallState(rev=base + 1, day=DAY, ledger=base))
    assert view(late, old_base + 2, 1002).state == "lost" and view(late, base + 9, 1009).state == "unknown"


def _hall_after(strip_arrival: bool):
    """A real engine's day: A (civil status) 08:00, B and C (land) 08:01 and 08:02; counter 1 calls A
    and sends it to land. The engine's events fed to webd's model, as published (or without
    ``arrival_at``, as an older hub's)."""
    from datetime import datetime

    from hubd.engine import QueueEngine
    from tests.conftest import SITE_FILE
    from xephang.clock import VN_TZ
    from xephang.settings import load_site

    site = load_site(SITE_FILE)
    t0 = datetime(2026, 12, 7, 8, 0, tzinfo=VN_TZ).timestamp()
    eng, evs = QueueEngine(site), []

    def run(out):
        evs.extend(e for e in out.events if e.family == "ticket")
        return out

    a = run(eng.issue("ho-tich", None, t0)).data["ticket"]
    b = run(eng.issue("dat-dai", None, t0 + 60)).data["ticket"]
    c = run(eng.issue("dat-dai", None, t0 + 120)).data["ticket"]
    run(eng.call_next(1, t0 + 200))
    run(eng.transfer(1, "dat-dai", t0 + 300))
    stages = []
    for e in evs:
        payload = dict(e.payload)
        if strip_arrival:
            payload["ticket"] = {k: v for k, v in payload["ticket"].items() if k != "arrival_at"}
        stages.append(TicketEvent(event_id=e.event_id, rev=e.rev, at=e.at, kind=e.kind, **payload))
    m = LiveHall()
    m.set_link(True)
    m.on_status(NodeStatus(node="hub", online=True, session=1))
    m.begin(HallState(rev=0, day=a["day"], services=[ServiceState(id=s.id, waiting=0) for s in site.services],
                      counters=[CounterState(number=n.number, state="open") for n in site.counters]), 0)
    for e in stages:
        m.on_event(e)
    m.on_service(ServiceState(id="dat-dai", waiting=3, rev=stages[-1].rev))
    return eng, m, (a, b, c)


def test_a_transferred_citizen_keeps_their_place_on_the_phone_as_at_the_hub():
    """A transfer keeps the first arrival (queue-rules.md): the hub counts A ahead of B and C and calls
    it next; the phone page and the console's list must say the same (webd put A at the back)."""
    for strip in (False, True):
        eng, m, tickets = _hall_after(strip)
        snap = m.snapshot()
        for t in tickets:
            assert snap.ticket_view(t["id"], t["day"], t["display"]).people_ahead == \
                eng.people_ahead(eng.tickets[t["id"]]), (strip, t["display"])
        assert [t.id for t in snap.waiting_in("dat-dai")] == [t["id"] for t in tickets]
        assert eng.call_next(3, eng.tickets[tickets[0]["id"]].issued_at + 400).data["ticket"]["id"] == tickets[0]["id"]


def test_the_dashboards_estimated_wait_is_the_boards_range_and_red_only_when_its_lower_end_is_over():
    """One figure, one name: the head's dashboard says a service's wait in the hall board's words
    (it printed the hub's median, '46 phút', where the board said '30–60 phút')."""
    from displayd.main import service_wait_range
    from tests.conftest import SITE_FILE
    from webd.pages import dashboard_fragment
    from xephang.settings import load_site
    from xephang.waittext import format_wait

    site = load_site(SITE_FILE)
    target = {s.id: s.target_wait_min for s in site.services}
    states = [ServiceState(id="ho-tich", waiting=9, est_wait_min=46.0, est_wait_low_min=30, est_wait_high_min=60),
              ServiceState(id="dat-dai", waiting=2, est_wait_min=9.0, est_wait_low_min=5, est_wait_high_min=15),
              ServiceState(id="chung-thuc", waiting=30, est_wait_min=95.0, est_wait_low_min=60, est_wait_open=True)]
    m = LiveHall()
    m.set_link(True)
    m.on_status(NodeStatus(node="hub", online=True, session=1))
    m.begin(HallState(rev=0, day=DAY, services=states, counters=[CounterState(number=1, state="open")]), 0)
    for lang in ("vi", "en"):
        html = dashboard_fragment(m.snapshot(), site, lang, None)
        for s in states:
            row = html.split(f'data-service="{s.id}"', 1)[1].split("</tr>", 1)[0]
            board = format_wait(*service_wait_range(s), lang, short=True)
            assert f'<td class="n est">{board}</td>' in row, (lang, row)
            assert (' class="over"' in html.split(f'data-service="{s.id}"')[0].rsplit("<tr", 1)[1]) == \
                (s.est_wait_low_min > target[s.id]), (s.id, target[s.id])
    assert "30–60 phút" in dashboard_fragment(m.snapshot(), site, "vi", None)
    assert "46" not in dashboard_fragment(m.snapshot(), site, "vi", None)


def test_a_ticket_issued_before_the_read_back_is_learnt_from_the_hubs_wait_answer():
    """webd reads back only its last ``catchup_events`` at its start: on a busy day (or after a counter's
    password filled the day with pauses) the earlier citizens' pages said "no information about this
    number". The hub's ``ticket-wait`` answer carries the ticket: the model takes it, with the hub's
    people ahead, and its later events apply as to any other."""
    from xephang.contract import WaitOfTicket

    m = synced_model({"ho-tich": 4})  # the hub says 4 wait; webd saw the issue of one of them
    m.on_event(ev(1, "issued", tinfo(50, 1050)))
    assert view(m, 7, 1007).state == "unknown"
    old = tinfo(7, 1007)
    m.on_waits([WaitOfTicket(ticket_id=7, state="waiting", people_ahead=1, est_wait_min=12.0, est_wait_low_min=5,
                             est_wait_high_min=20, est_wait_open=False, ticket=old),
                WaitOfTicket(ticket_id=8, state="unknown"),
                WaitOfTicket(ticket_id=50, state="waiting", people_ahead=9,  # known from its events: kept
                             ticket=tinfo(50, 1050, service="dat-dai"))], rev=1)
    v = view(m, 7, 1007)
    # three unseen older tickets could be ahead of it or behind: the hub's count, not 0 + 3
    assert (v.state, v.people_ahead, v.wait.low_min, v.wait.high_min) == ("waiting", 1, 5, 20)
    assert m.tickets[50].service == "ho-tich" and 50 not in m.adopted
    assert view(m, 8, 1008).state == "unknown"
    m.on_event(ev(2, "called", tinfo(7, 1007, state="called", counter=1), counter=1))
    assert (view(m, 7, 1007).state, view(m, 7, 1007).counter) == ("called", 1)
    # absent: sent back to the queue, behind the others; the hub's old count (1) no longer holds
    m.on_event(ev(3, "no-show", tinfo(7, 1007), reason="requeued"))
    assert view(m, 7, 1007).state == "waiting" and view(m, 7, 1007).people_ahead is None
    m.on_waits([WaitOfTicket(ticket_id=7, state="waiting", people_ahead=4, ticket=tinfo(7, 1007))], rev=3)
    assert view(m, 7, 1007).people_ahead == 4
    # another day's ticket in an answer is not taken
    m.on_waits([WaitOfTicket(ticket_id=9, state="waiting", people_ahead=0,
                             ticket=tinfo(9, 1009).model_copy(update={"day": "2026-11-22"}))], rev=2)
    assert 9 not in m.tickets
