"""The hub's messages as the board reads them."""

from __future__ import annotations

from displayd.config import BoardLabels
from displayd.main import counter_event, hall_snapshot, labels_from_hall, ticket_event
from tests.displayd.test_display_daemon import called, hall_state, ticket
from xephang.contract import CallInfo, CounterEvent, TicketEvent


def test_the_hall_state_becomes_the_boards_snapshot():
    hs = hall_state(rev=10)
    hs.last_calls.insert(0, CallInfo(rev=10, at=0, kind="recalled", display="2011", service="dat-dai", counter=3))
    snap = hall_snapshot(hs)
    assert snap.rev == 10
    assert [(c.number, c.state, c.ticket, c.service) for c in snap.counters] == [
        (1, "open", "1023", "ho-tich"), (2, "paused", "3005", "chung-thuc"), (3, "open", "2011", "dat-dai"), (4, "closed", None, None)]
    assert snap.waiting == {"ho-tich": 5, "dat-dai": 2}
    assert snap.last_calls[0].recall and snap.last_calls[0].number == "2011"


def test_a_transfer_names_the_old_and_the_new_service():
    ev = TicketEvent(event_id="e1", rev=12, at=0, kind="transferred", ticket=ticket(2011, "ho-tich", None),
                     counter=3, from_service="dat-dai")
    b = ticket_event(ev)
    assert (b.kind, b.number, b.service, b.to_service, b.counter) == ("transferred", "2011", "dat-dai", "ho-tich", 3)
    c = ticket_event(called(13, 1024, 1))
    assert (c.kind, c.number, c.service, c.counter) == ("called", "1024", "ho-tich", 1)
    p = counter_event(CounterEvent(event_id="e2", rev=14, at=0, kind="paused", counter=2))
    assert (p.kind, p.counter, p.rev) == ("paused", 2, 14)


def test_without_a_site_file_the_names_come_from_the_hub():
    labels = labels_from_hall(hall_state())
    assert labels.centre("vi") == "Trung tâm xã Tường Linh"
    assert labels.service("dat-dai", "vi") == "Đất đai"
    assert labels.counter(2, "vi") == "Quầy 2"
    site = BoardLabels(centre_vi="Trung tâm X", services={"dat-dai": ("Đất đai (site)", "Land")})
    assert labels_from_hall(hall_state(), site).service("dat-dai", "vi") == "Đất đai (site)"
