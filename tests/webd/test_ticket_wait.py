"""The phone page behind a ticket's QR shows the hub's own range for that ticket — the one printed
on it, then the hub's fresh answer (``ticket-wait``) as the hall moves — never a figure webd makes
up that the paper and the board contradict (real mosquitto, hub and webd)."""

from __future__ import annotations

import html

import pytest
from webharness import http_get, wait_for

from xephang.contract import TicketWait, WaitOfTicket, new_request_id
from xephang.waittext import format_wait

pytestmark = pytest.mark.broker


def _range_text(w: dict) -> str:
    return format_wait(w["est_wait_low_min"], None if w["est_wait_open"] else w["est_wait_high_min"], "vi")


def _page_wait(centre, ticket: dict) -> str | None:
    st, body, _ = http_get(centre.ticket_url(ticket))
    assert st == 200
    text = body.decode()
    i = text.find('class="wait">')
    return html.unescape(text[i + len('class="wait">'):text.index("<", i + 13)]) if i >= 0 else None


def _hub_waits(centre, ids: list[int]) -> dict[int, WaitOfTicket]:
    r = centre.ask(TicketWait(request_id=new_request_id(), source="tech", ticket_ids=ids))
    assert r.status == "ok", r
    return {w["ticket_id"]: WaitOfTicket.model_validate(w) for w in r.data["waits"]}


def test_the_phone_shows_the_printed_range_then_the_hubs_fresh_one(centre):
    tickets = [centre.issue("ho-tich") for _ in range(4)]
    last = tickets[-1]
    printed = _range_text(last)
    wait_for(lambda: last["ticket"]["id"] in centre.web.web.snapshot.waits, 10, "webd saw the issue")
    # nothing moved since it was printed: the phone says what the paper says
    assert _page_wait(centre, last["ticket"]) == printed
    # the hall moves: two citizens are called; the page (watched) gets the hub's range for the ticket now
    asked = centre.web.wait_asks
    centre.call(1)
    centre.call(2)
    rev = centre.ask(TicketWait(request_id=new_request_id(), source="tech", ticket_ids=[last["ticket"]["id"]])).rev

    def fresh() -> bool:
        w = centre.web.web.snapshot.waits.get(last["ticket"]["id"])
        return w is not None and not w.printed and w.rev >= rev
    wait_for(fresh, 20, "the hub's fresh range reached webd")
    assert centre.web.wait_asks > asked
    hub = _hub_waits(centre, [last["ticket"]["id"]])[last["ticket"]["id"]]
    shown = centre.web.web.snapshot.waits[last["ticket"]["id"]]
    assert (shown.low_min, shown.high_min) == (hub.est_wait_low_min, None if hub.est_wait_open else hub.est_wait_high_min)
    assert _page_wait(centre, last["ticket"]) == format_wait(shown.low_min, shown.high_min, "vi")
    # a called ticket shows no wait at all
    first = tickets[0]["ticket"]
    wait_for(lambda: centre.web.web.snapshot.tickets[first["id"]].state == "called", 10, "the first is called")
    assert _page_wait(centre, first) is None


def test_ticket_wait_answers_every_id_with_its_state(centre):
    a = centre.issue("ho-tich")["ticket"]
    b = centre.issue("ho-tich")["ticket"]
    centre.call(1)
    got = _hub_waits(centre, [a["id"], b["id"], 999_999, b["id"]])
    assert set(got) == {a["id"], b["id"], 999_999}
    assert got[a["id"]].state == "called" and got[a["id"]].est_wait_low_min is None
    assert got[999_999].state == "unknown"
    w = got[b["id"]]
    assert w.state == "waiting" and w.people_ahead == 0 and w.est_wait_low_min is not None
    assert w.est_wait_open or (w.est_wait_high_min is not None and w.est_wait_high_min >= w.est_wait_low_min)


def test_ticket_wait_is_bounded_and_read_only(centre):
    import pydantic

    with pytest.raises(pydantic.ValidationError):
        TicketWait(request_id=new_request_id(), source="tech", ticket_ids=list(range(1, 12)))
    with pytest.raises(pydantic.ValidationError):
        TicketWait(request_id=new_request_id(), source="tech", ticket_ids=[])
    t = centre.issue("ho-tich")["ticket"]
    before = centre.hub.engine.rev
    for _ in range(3):
        _hub_waits(centre, [t["id"]])
    assert centre.hub.engine.rev == before  # nothing recorded, no event
