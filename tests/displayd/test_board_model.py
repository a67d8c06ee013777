"""The board model as the hall sees it: calls, duplicates, gaps, reboots, lost links."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from displayd.model import BoardEvent, BoardModel, Call, CounterView, HallSnapshot, Outcome
from tests.displayd.conftest import NOW, hall_snapshot, live_board


def called(rev: int, number: str, counter: int, service: str = "ho-tich") -> BoardEvent:
    return BoardEvent(kind="called", rev=rev, number=number, service=service, counter=counter)


def test_a_call_shows_at_its_counter_and_is_highlighted_for_a_while():
    m = live_board(highlight_s=10)
    assert m.apply(called(11, "1024", 1), now=NOW + 1) is Outcome.APPLIED
    assert m.counter(1).ticket == "1024"
    assert m.newest.number == "1024" and m.newest.counter == 1
    assert m.highlight(NOW + 5).call.number == "1024"
    assert m.next_change_at(NOW + 5) == NOW + 11
    assert m.highlight(NOW + 11) is None
    assert m.waiting["ho-tich"] == 4  # one fewer waiting


def test_the_same_event_delivered_twice_is_ignored():
    m = live_board()
    m.apply(called(11, "1024", 1), now=NOW)
    version = m.version
    assert m.apply(called(11, "1024", 1), now=NOW + 0.1) is Outcome.DUPLICATE
    assert m.apply(called(9, "1099", 1), now=NOW + 0.2) is Outcome.DUPLICATE  # older than the snapshot
    assert m.version == version and m.waiting["ho-tich"] == 4


def test_a_board_that_reboots_shows_the_last_calls_without_replaying_them():
    m = BoardModel(now=NOW)
    m.set_link(now=NOW, broker_connected=True, hub_online=True)
    m.load_snapshot(hall_snapshot(), now=NOW)
    assert [c.number for c in m.last_calls] == ["2011", "1023", "3005"]
    assert m.highlight(NOW) is None
    assert m.next_change_at(NOW) is None


def test_a_retained_snapshot_arriving_again_does_not_restart_or_add_a_highlight():
    m = live_board(highlight_s=10)
    m.apply(called(11, "1024", 1), now=NOW)
    snap = hall_snapshot(rev=11)
    again = HallSnapshot(rev=11, counters=snap.counters, waiting=snap.waiting, last_calls=(m.newest, *snap.last_calls))
    m.load_snapshot(again, now=NOW + 3)
    h = m.highlight(NOW + 3)
    assert h is not None and h.since == NOW  # the running highlight kept, not restarted
    # a resync brings a call this board missed: shown in the list, never highlighted
    newer = HallSnapshot(rev=12, counters=snap.counters, last_calls=(Call("3010", 2, "chung-thuc"), *again.last_calls))
    m.load_snapshot(newer, now=NOW + 4)
    assert m.newest.number == "3010"
    assert m.highlight(NOW + 4) is None  # a call learnt from a snapshot is never "new"


def test_an_older_snapshot_is_ignored():
    m = live_board()
    m.apply(called(11, "1024", 1), now=NOW)
    assert m.load_snapshot(hall_snapshot(rev=10), now=NOW) is Outcome.STALE_SNAPSHOT
    assert m.counter(1).ticket == "1024"


def test_a_missing_rev_is_waited_for_briefly_then_reported_for_resync():
    m = live_board(reorder_s=0.5)
    assert m.apply(called(12, "1025", 1), now=NOW) is Outcome.HELD
    assert m.newest.number == "2011"  # not shown yet: 11 may still come
    assert not m.resync_due(NOW + 0.1)
    assert m.tick(NOW + 0.6)
    assert m.newest.number == "1025"  # shown after the window
    assert m.gap == (11, 11)
    assert m.resync_due(NOW + 0.6)
    m.resync_requested(NOW + 0.6)
    assert not m.resync_due(NOW + 1.0)  # not hammering the hub
    assert m.resync_due(NOW + 0.6 + m.resync_retry_s)
    m.load_snapshot(hall_snapshot(rev=12), now=NOW + 2)
    assert m.gap is None and not m.resync_due(NOW + 100)


def test_a_late_rev_inside_the_window_is_put_back_in_order():
    m = live_board()
    m.apply(called(12, "1025", 1), now=NOW)
    assert m.apply(called(11, "1024", 2), now=NOW + 0.1) is Outcome.APPLIED
    assert [c.number for c in m.last_calls[:2]] == ["1025", "1024"]
    assert m.rev == 12 and m.gap is None


def test_events_before_the_first_snapshot_wait_for_it():
    m = BoardModel(now=NOW)
    m.set_link(now=NOW, broker_connected=True)
    assert m.apply(called(10, "1000", 1), now=NOW) is Outcome.PENDING  # already in the snapshot
    assert m.apply(called(11, "1024", 1), now=NOW) is Outcome.PENDING
    assert not m.synced
    m.load_snapshot(hall_snapshot(rev=10), now=NOW + 0.2)
    assert m.rev == 11 and m.newest.number == "1024"
    assert m.highlight(NOW + 0.2) is not None  # it was a live call


def test_no_snapshot_at_all_makes_the_board_ask_for_one():
    m = BoardModel(now=NOW, sync_timeout_s=5)
    assert not m.resync_due(NOW + 10)  # not connected: nobody to ask
    m.set_link(now=NOW + 10, broker_connected=True)
    assert m.resync_due(NOW + 10)


def test_losing_the_hub_keeps_the_numbers_but_marks_them_stale():
    m = live_board()
    assert not m.stale
    m.set_link(now=NOW, hub_online=False)
    assert m.stale and m.offline_reason == "hub"
    assert m.counter(1).ticket == "1023"
    m.set_link(now=NOW, broker_connected=False)
    assert m.offline_reason == "broker"
    m.set_link(now=NOW, broker_connected=True, hub_online=True)
    assert not m.stale


def test_finish_no_show_pause_close_and_transfer():
    m = live_board()
    m.apply(BoardEvent(kind="finished", rev=11, number="1023", service="ho-tich", counter=1), now=NOW)
    assert m.counter(1).ticket is None
    m.apply(BoardEvent(kind="paused", rev=12, counter=3), now=NOW)
    assert m.counter(3).state == "paused" and m.counter(3).ticket == "2011"
    m.apply(BoardEvent(kind="transferred", rev=13, number="2011", service="dat-dai", counter=3, to_service="ho-tich"), now=NOW)
    assert m.counter(3).ticket is None and m.waiting["ho-tich"] == 6
    m.apply(BoardEvent(kind="issued", rev=14, number="2003", service="dat-dai"), now=NOW)
    assert m.waiting["dat-dai"] == 3
    m.apply(BoardEvent(kind="closed", rev=15, counter=2), now=NOW)
    assert m.counter(2).state == "closed" and m.counter(2).ticket is None
    m.apply(called(16, "4001", 4, "van-hoa-xa-hoi"), now=NOW)
    assert m.counter(4).state == "open" and m.waiting["van-hoa-xa-hoi"] == 6


def test_a_state_update_and_the_event_behind_it_count_once():
    m = live_board()
    # the hub's retained service state for rev 11 overtakes the event of rev 11
    assert m.set_waiting("ho-tich", 6, rev=11)
    m.apply(BoardEvent(kind="issued", rev=11, number="1030", service="ho-tich"), now=NOW)
    assert m.waiting["ho-tich"] == 6
    assert not m.set_waiting("ho-tich", 5, rev=10)  # older than what we show
    assert m.set_counter(CounterView(1, "open", "1030", "ho-tich"), rev=12)
    m.apply(called(12, "1030", 1), now=NOW)
    assert m.counter(1).ticket == "1030" and m.newest.number == "1030"


def test_a_burst_of_ten_calls_ends_in_the_right_picture():
    m = live_board(last_calls=4)
    for i in range(10):
        m.apply(called(11 + i, f"{1024 + i}", 1 + i % 4), now=NOW + i * 0.1)
    assert m.newest.number == "1033" and m.newest.counter == 2
    assert [c.number for c in m.last_calls] == ["1033", "1032", "1031", "1030"]
    assert {c.number: c.ticket for c in m.counters} == {1: "1032", 2: "1033", 3: "1030", 4: "1031"}


def test_a_recall_moves_the_call_to_the_top_and_highlights_it_again():
    m = live_board(highlight_s=10)
    m.apply(called(11, "1024", 1), now=NOW)
    m.apply(called(12, "2012", 3, "dat-dai"), now=NOW + 1)
    m.apply(BoardEvent(kind="recalled", rev=13, number="1024", service="ho-tich", counter=1), now=NOW + 20)
    assert [c.number for c in m.last_calls[:2]] == ["1024", "2012"]
    assert m.highlight(NOW + 21).call.recall


def test_a_transferred_ticket_called_at_another_counter_shows_once_at_its_new_counter():
    # 2011 served at counter 3, sent to civil status, called again at counter 1: the list must
    # agree with the big panel, never "2011 → Quầy 3" under "2011 đến Quầy 1"
    m = live_board(last_calls=5)
    m.apply(called(11, "2011", 3, "dat-dai"), now=NOW)
    m.apply(called(12, "1024", 2), now=NOW + 1)
    m.apply(BoardEvent(kind="transferred", rev=13, number="2011", service="dat-dai", counter=3, to_service="ho-tich"), now=NOW + 2)
    m.apply(called(14, "2011", 1), now=NOW + 3)
    calls = [(c.number, c.counter) for c in m.last_calls]
    assert calls[:2] == [("2011", 1), ("1024", 2)] and ("2011", 3) not in calls
    # a snapshot listing both calls (the hub's list keeps every call) shows the newest only
    m.load_snapshot(HallSnapshot(rev=14, last_calls=(Call("2011", 1), Call("1024", 2), Call("2011", 3))), now=NOW + 4)
    assert [(c.number, c.counter) for c in m.last_calls] == [("2011", 1), ("1024", 2)]


def test_the_waiting_bar_keeps_the_hubs_wait_for_each_service():
    m = live_board()
    assert m.set_waiting("ho-tich", 5, rev=20, wait_range=(20, 35))
    assert m.wait_ranges["ho-tich"] == (20, 35)
    version = m.version
    assert m.set_waiting("ho-tich", 5, rev=21, wait_range=(60, None))  # "more than an hour"
    assert m.wait_ranges["ho-tich"] == (60, None) and m.version > version
    m.load_snapshot(HallSnapshot(rev=30, waiting={"ho-tich": 2}, wait_ranges={"ho-tich": (0, 10)}), now=NOW + 1)
    assert m.wait_ranges == {"ho-tich": (0, 10)}


def _final(m: BoardModel) -> tuple:
    return (m.rev, [(c.number, c.counter) for c in m.last_calls], {c.number: (c.state, c.ticket) for c in m.counters}, m.waiting)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 15), dupes=st.integers(0, 5))
def test_any_order_and_duplication_within_the_window_converges(seed: int, n: int, dupes: int):
    rng = random.Random(seed)
    kinds = ["called", "issued", "finished", "paused", "resumed", "recalled"]
    events = []
    for i in range(n):
        k = rng.choice(kinds)
        c = rng.randint(1, 4)
        events.append(BoardEvent(kind=k, rev=11 + i, number=f"{1100 + i}", service="ho-tich", counter=c))
    in_order = live_board()
    for ev in events:
        in_order.apply(ev, now=NOW)
    shuffled = events + [rng.choice(events) for _ in range(dupes)]
    rng.shuffle(shuffled)
    m = live_board()
    for ev in shuffled:
        m.apply(ev, now=NOW)  # all within one reorder window
    m.tick(NOW + 0.1)
    assert _final(m) == _final(in_order)
    assert m.gap is None


def test_the_same_snapshot_again_is_not_a_change():
    m = live_board()
    version = m.version
    m.load_snapshot(hall_snapshot(rev=10), now=NOW + 1)  # the hub republishes on reconnect
    assert m.version == version
    m.load_snapshot(hall_snapshot(rev=11), now=NOW + 2)  # a newer rev with the same picture
    assert m.version == version and m.rev == 11


def test_a_hub_that_never_said_it_is_online_counts_as_offline_after_a_moment():
    m = BoardModel(now=NOW)
    m.set_link(now=NOW, broker_connected=True)
    m.load_snapshot(hall_snapshot(), now=NOW)  # retained state of a hub that is gone
    assert not m.stale
    assert m.next_change_at(NOW) == NOW + m.hub_grace_s
    assert m.tick(NOW + m.hub_grace_s)
    assert m.stale and m.offline_reason == "hub"
    m.set_link(now=NOW + 5, hub_online=True)
    assert not m.stale


def test_recalls_listed_by_the_hub_show_once():
    m = BoardModel(now=NOW, last_calls=4)
    m.load_snapshot(HallSnapshot(rev=5, last_calls=(
        Call("3053", 2, recall=True), Call("3053", 2, recall=True), Call("3053", 2), Call("1038", 1), Call("1037", 1),
    )), now=NOW)
    assert [(c.number, c.counter) for c in m.last_calls] == [("3053", 2), ("1038", 1), ("1037", 1)]


def test_calls_the_broker_queued_while_the_board_was_away_are_shown_but_not_highlighted():
    # a rebooted board: the broker first delivers what it queued for the board's session
    m = BoardModel(now=NOW, highlight_s=10)
    m.set_link(now=NOW, broker_connected=True, hub_online=True)
    assert m.catching_up(NOW)
    m.load_snapshot(hall_snapshot(rev=10), now=NOW, current=False)  # an old hall state, queued
    m.apply(called(11, "1024", 1), now=NOW + 0.01)
    m.apply(called(12, "3006", 2, "chung-thuc"), now=NOW + 0.02)
    assert m.newest.number == "3006" and m.counter(1).ticket == "1024"
    assert m.highlight(NOW + 0.03) is None  # queued calls are not news
    m.load_snapshot(hall_snapshot(rev=12), now=NOW + 0.05, current=True)  # the broker's current (retained) state
    assert not m.catching_up(NOW + 0.05)
    m.apply(called(13, "2012", 3, "dat-dai"), now=NOW + 1)  # made now: news
    assert m.highlight(NOW + 1.5).call.number == "2012"


def test_catching_up_ends_by_itself_when_no_current_state_comes():
    m = BoardModel(now=NOW, highlight_s=10, sync_timeout_s=5)
    m.set_link(now=NOW, broker_connected=True, hub_online=True)
    m.load_snapshot(hall_snapshot(rev=10), now=NOW, current=False)
    m.apply(called(11, "1024", 1), now=NOW + 1)
    assert m.highlight(NOW + 1) is None
    m.tick(NOW + 5)
    assert not m.catching_up(NOW + 5)
    m.apply(called(12, "1025", 1), now=NOW + 6)
    assert m.highlight(NOW + 6).call.number == "1025"


def test_a_retained_state_handed_over_before_the_connect_is_reported_starts_no_catch_up():
    m = BoardModel(now=NOW)
    m.load_snapshot(hall_snapshot(rev=10), now=NOW, current=True)
    m.set_link(now=NOW, broker_connected=True, hub_online=True)
    assert not m.catching_up(NOW)
    m.set_link(now=NOW + 60, broker_connected=False)  # the link drops: the next connect catches up again
    m.set_link(now=NOW + 90, broker_connected=True)
    assert m.catching_up(NOW + 90)
