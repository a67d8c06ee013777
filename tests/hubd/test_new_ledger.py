"""A hub that starts on a new ledger (its card replaced, the ledger lost) goes on from numbers no
earlier ledger of the site gave out.

A ledger used to start its revisions and ticket ids at 1. The hall board ignores every revision
it has already passed, so after a card swap it ignored the new hub (its hall states and its calls)
until someone restarted it; the province keys tickets by id and visits by the call's revision, so
the new tickets were folded into old ones and the new calls dropped as "another call's already".
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from displayd.main import DisplayDaemon, DisplaySettings, ScreenSettings
from hubd.ledger import NUMBERING_FLOOR, Ledger, numbering_base
from hubd.main import HubDaemon, HubSettings
from tests.hubd.test_attack_review_hub import _send
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import CallNext, IssueTicket, Topics, new_request_id
from xephang.testing import FakeBroker, FakeBus

SITE = "tuong-linh"
T = Topics(SITE)
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp()


def _hub(state: Path, site_file: Path, broker: FakeBroker, clock: ManualClock) -> HubDaemon:
    settings = HubSettings(site=SITE, node="hub", site_file=site_file, state_dir=state)
    h = HubDaemon(settings, bus=FakeBus(broker, site=SITE, node="hub", role="hub", state_dir=state), clock=clock)
    h.start()
    assert h.bus.wait_connected(5)
    h.step(0)
    return h


def _stop(h: HubDaemon) -> None:
    h.bus.stop()
    h.ledger.close()


def _board(tmp: Path, site_file: Path, broker: FakeBroker, clock: ManualClock) -> DisplayDaemon:
    settings = DisplaySettings(site=SITE, node="display-hall", site_file=site_file, state_dir=tmp / "board",
                               sim=True, sim_out=tmp / "out", screen=ScreenSettings(size=(1280, 720)))
    d = DisplayDaemon(settings, bus=FakeBus(broker, site=SITE, node="display-hall", role="display",
                                            state_dir=settings.state_dir), clock=clock)
    d.start()
    return d


def _turn(hub: HubDaemon, board: DisplayDaemon, cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        hub.step(0)
        board.step(timeout=0.01)
        if cond():
            return True
    return False


def _panel(board: DisplayDaemon) -> tuple[list[str], list[str]]:
    f = board.last_frame
    return (f.text("call.number"), f.text("call.counter_number")) if f else ([], [])


def test_the_board_follows_a_hub_on_a_new_ledger_and_no_number_is_given_twice(tmp_path, site_file):
    broker, clock = FakeBroker(), ManualClock(MONDAY_9AM)
    old = _hub(tmp_path / "old", site_file, broker, clock)
    board = _board(tmp_path, site_file, broker, clock)
    for _ in range(3):
        _send(broker, IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich"))
    _send(broker, CallNext(request_id=new_request_id(), source="counter-1", counter=1))
    assert _turn(old, board, lambda: _panel(board) == (["1001"], ["1"]))
    old_rev, old_id = old.engine.rev, old.engine.next_ticket_id - 1
    _stop(old)

    clock.advance(3600)  # the technician swaps the card; the new hub starts on an empty ledger
    new = _hub(tmp_path / "new", site_file, broker, clock)
    try:
        _send(broker, IssueTicket(request_id=new_request_id(), source="dispenser-1", service="dat-dai"))
        _send(broker, CallNext(request_id=new_request_id(), source="counter-3", counter=3))
        assert _turn(new, board, lambda: _panel(board) == (["2001"], ["3"])), _panel(board)
        assert board.model.rev == new.engine.rev  # the board is on the new ledger's revisions, no gap left
        assert board.model.gap is None
        first = new.ledger.db.execute("SELECT MIN(rev) FROM events").fetchone()[0]
        ids = [r[0] for r in new.ledger.db.execute("SELECT id FROM tickets")]
        assert first > old_rev and min(ids) > old_id
        assert first == int(MONDAY_9AM + 3600) + 1 and new.ledger.get_meta("numbering_base") == first - 1
        # the hall state names the ledger: webd ends the old one's tickets by it (webd/live.py)
        from xephang.contract import HallState, decode

        (hall,) = [p for t, p in broker.messages(T.state_hall())][-1:]
        assert decode(HallState, hall).ledger == first - 1
    finally:
        _stop(new)
        board.teardown()
        board.bus.stop()


def test_an_empty_ledger_keeps_its_base_across_restarts_and_a_clock_at_1970_still_starts_high(tmp_path, site):
    """Only a ledger with nothing in it yet starts after the clock, and its base is kept: a hub
    restarted before its first ticket does not move it. A ledger with tickets goes on from where
    it is (``test_hub_broker``'s restarts)."""
    from hubd.engine import QueueEngine

    path = tmp_path / "ledger.sqlite"
    led, eng = Ledger(path), QueueEngine(site)
    led.load(eng, now=MONDAY_9AM)
    assert eng.rev == int(MONDAY_9AM) and eng.next_ticket_id == int(MONDAY_9AM) + 1
    led.close()
    led, eng = Ledger(path), QueueEngine(site)
    led.load(eng, now=MONDAY_9AM + 86400)  # restarted a day later, still empty
    assert eng.rev == int(MONDAY_9AM) and eng.next_ticket_id == int(MONDAY_9AM) + 1
    assert eng.ledger_started == int(MONDAY_9AM)  # the day it began: a dispenser's numbers count that day only
    led.close()
    assert numbering_base(0) == NUMBERING_FLOOR  # a Pi's clock at 1970: far above any ledger that began at 1


def test_a_resync_from_below_a_new_ledgers_first_revision_says_there_is_nothing_more(hub, fake_broker):
    """webd reads back the last 100 revisions at its start (``catchup_events``): on a new ledger
    that is below its base. The hub found no event after it and still said ``more`` (the asked rev
    was below its own), so webd asked again and again until rate-limited and never said synced."""
    from xephang.contract import Reply, Resync, decode

    base = hub.engine.rev
    assert base == int(MONDAY_9AM)  # the fixture's hub: a new ledger
    for since in (0, base - 100, base):
        req = Resync(request_id=new_request_id(), source="web", since_rev=since)
        _send(fake_broker, req)
        hub.step(0)
        replies = [decode(Reply, p) for _, p in fake_broker.messages(T.reply("web"))]
        r = next(r for r in replies if r.request_id == req.request_id)
        assert r.status == "ok" and not r.data.get("events") and not r.data.get("more"), (since, r)
