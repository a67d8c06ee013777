"""The speaker says each call once, in order, never late, never over itself."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from announcerd.scheduler import CallEvent, HubClock, QuietHours, Scheduler
from xephang.clock import VN_TZ

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=VN_TZ).timestamp()


def call(rev: int, number: int, counter: int = 1, *, at: float = T0, kind: str = "called", service: str = "ho-tich") -> CallEvent:
    return CallEvent(event_id=f"e{rev}", rev=rev, at=at, kind=kind, number=number, counter=counter, service=service)  # type: ignore[arg-type]


def speaker(**policy: object) -> Scheduler:
    """A speaker that has heard the hub's health at T0 (its steady clock reads T0 too)."""
    s = Scheduler(**policy)  # type: ignore[arg-type]
    s.observe_hub(T0, T0)
    return s


def drain(s: Scheduler, now: float) -> list[tuple[int, int]]:
    said = []
    while (job := s.next_job(now)) is not None:
        said.append((job.call.number, job.call.counter))
        s.finished()
    return said


def test_calls_are_said_in_order_one_at_a_time() -> None:
    s = speaker()
    assert s.offer(call(1, 1001, 1), T0) == "queued"
    assert s.offer(call(2, 2001, 3), T0) == "queued"
    job = s.next_job(T0)
    assert job is not None and job.call.number == 1001
    assert s.next_job(T0 + 1) is None  # still speaking: the second call waits
    s.finished()
    assert s.next_job(T0 + 5).call.number == 2001  # type: ignore[union-attr]


def test_mqtt_redelivery_is_said_once() -> None:
    s = speaker()
    assert s.offer(call(7, 1001), T0) == "queued"
    assert s.offer(call(7, 1001), T0) == "duplicate"
    assert drain(s, T0) == [(1001, 1)]
    assert s.offer(call(7, 1001), T0 + 3) == "duplicate"  # even after it was said
    assert drain(s, T0 + 3) == []


def test_a_stale_call_is_dropped_not_said_late() -> None:
    s = speaker(max_age_s=60)
    assert s.offer(call(1, 1001, at=T0 - 61), T0) == "stale"
    assert s.offer(call(2, 1002, at=T0 - 59), T0) == "queued"
    assert drain(s, T0 + 5) == []  # it went stale while waiting
    assert s.stats.stale == 2


def test_a_call_waiting_behind_a_long_one_goes_stale() -> None:
    s = speaker(max_age_s=30)
    s.offer(call(1, 1001), T0)
    s.offer(call(2, 1002), T0)
    s.next_job(T0)
    s.finished()
    assert s.next_job(T0 + 31) is None


def test_recall_of_a_waiting_call_does_not_add_a_second_entry() -> None:
    s = speaker()
    s.offer(call(1, 1001, 1), T0)
    s.offer(call(2, 2001, 3), T0)
    s.next_job(T0)  # 1001 is being said
    assert s.offer(call(3, 2001, 3, kind="recalled", at=T0 + 2), T0 + 2) == "merged"
    assert [c.number for c in s.waiting] == [2001]
    s.finished()
    assert drain(s, T0 + 3) == [(2001, 3)]


def test_merged_entry_speaks_the_newest_counter_and_keeps_its_place() -> None:
    s = speaker()
    s.offer(call(1, 1001, 1), T0)
    s.offer(call(2, 1002, 2), T0)
    s.offer(call(3, 1001, 4, at=T0 + 1), T0 + 1)  # transferred and re-called at counter 4
    assert drain(s, T0 + 2) == [(1001, 4), (1002, 2)]


def test_recall_while_the_same_call_is_playing_is_said_again_after() -> None:
    s = speaker()
    s.offer(call(1, 1001), T0)
    s.next_job(T0)
    assert s.offer(call(2, 1001, kind="recalled"), T0 + 1) == "queued"
    s.finished()
    assert drain(s, T0 + 2) == [(1001, 1)]


def test_volume_follows_quiet_hours() -> None:
    lunch = QuietHours(start=time(11, 30), end=time(13, 30), volume=0.3)
    night = QuietHours(start=time(22, 0), end=time(6, 0), volume=0.0)
    s = speaker(volume=0.9, quiet_hours=(lunch, night))
    day = datetime(2026, 11, 23, tzinfo=VN_TZ)

    def at(h: int, m: int) -> float:
        return s.volume_at(day.replace(hour=h, minute=m).timestamp())

    assert at(8, 0) == 0.9
    assert at(11, 30) == 0.3 and at(13, 29) == 0.3
    assert at(13, 30) == 0.9
    assert at(23, 0) == 0.0 and at(5, 59) == 0.0
    s.offer(call(1, 1001, at=day.replace(hour=12).timestamp()), day.replace(hour=12).timestamp())
    assert s.next_job(day.replace(hour=12).timestamp()).volume == 0.3  # type: ignore[union-attr]


def test_device_lost_mid_announcement_puts_the_call_back_in_front() -> None:
    s = speaker()
    s.offer(call(1, 1001), T0)
    s.offer(call(2, 1002), T0)
    s.next_job(T0)
    s.requeue_playing()
    assert drain(s, T0 + 1) == [(1001, 1), (1002, 1)]


def test_event_payloads_are_parsed_leniently_but_not_blindly() -> None:
    payload = {"schema": "x", "event_id": "abc", "rev": 12, "at": "2026-11-23T08:00:00+07:00",
               "ticket": {"number": "A023", "service": "ho-tich", "counter": 3, "extra": 1}}
    c = CallEvent.from_payload(payload, kind="recalled")
    assert (c.number, c.prefix, c.counter, c.rev, c.kind, c.at) == (23, "A", 3, 12, "recalled", T0)
    with pytest.raises(ValueError):
        CallEvent.from_payload({"event_id": "x", "rev": 1, "at": 0, "ticket": {"number": "1"}}, kind="called")
    with pytest.raises(ValueError):
        CallEvent.from_payload({"rev": 1}, kind="called")


def test_calls_waiting_for_a_missing_speaker_are_dropped_when_too_old() -> None:
    s = speaker(max_age_s=30)
    s.offer(call(1, 1001, at=T0), T0)
    s.offer(call(2, 1002, at=T0 + 20), T0 + 20)
    assert s.drop_stale(T0 + 40) == 1
    assert [c.number for c in s.waiting] == [1002]


@pytest.mark.parametrize("skew_s", [600.0, -600.0], ids=["hall-10-min-ahead", "hall-10-min-behind"])
def test_a_hall_clock_minutes_off_still_speaks_fresh_calls_and_drops_old_ones(skew_s: float) -> None:
    # the hall Pi's steady clock reads hub time + skew (never set, or NTP unreachable)
    def hall(hub_time: float) -> float:
        return hub_time + skew_s

    s = Scheduler(max_age_s=60)
    s.observe_hub(T0, hall(T0 + 0.01))  # the hub's retained health on connect
    assert s.offer(call(1, 1001, at=T0 + 5), hall(T0 + 5.02)) == "queued"
    assert drain(s, hall(T0 + 5.1)) == [(1001, 1)]
    # a QoS 1 redelivery of a call the hub made five minutes ago: still not said
    assert s.offer(call(2, 1002, at=T0 - 300), hall(T0 + 10)) == "stale"
    # and a fresh call that waits too long in the speaker queue still goes stale, by the steady clock
    assert s.offer(call(3, 1003, at=T0 + 20), hall(T0 + 20.01)) == "queued"
    assert drain(s, hall(T0 + 81)) == []
    assert (s.stats.played, s.stats.stale) == (1, 2)
    # quiet hours follow the hub's clock, not the hall's wrong one
    lunch = QuietHours(start=time(11, 30), end=time(13, 30), volume=0.2)
    s = s.with_policy(quiet_hours=(lunch,))
    noon = datetime(2026, 11, 23, 12, 0, tzinfo=VN_TZ).timestamp()
    assert s.volume_at(hall(noon)) == 0.2
    assert s.volume_at(hall(datetime(2026, 11, 23, 11, 25, tzinfo=VN_TZ).timestamp())) == 1.0


def test_before_the_hub_clock_is_known_calls_wait_for_it() -> None:
    s = Scheduler(max_age_s=60)
    # after a reboot the broker hands over a call queued in the session, before anything else
    assert s.offer(call(1, 1001, at=T0 - 300), T0) == "queued"  # cannot be judged yet
    assert s.next_job(T0) is None
    s.observe_hub(T0 + 0.01, T0 + 0.02)  # the hub's health: now it is known to be old
    assert drain(s, T0 + 0.03) == [] and s.stats.stale == 1


def test_without_the_hubs_health_a_call_is_said_after_a_short_hold() -> None:
    s = Scheduler(max_age_s=60)
    s.offer(call(1, 1001, at=T0), T0)
    assert s.next_job(T0 + 1) is None
    assert drain(s, T0 + s.hub.settle_s) == [(1001, 1)]


def test_hub_clock_learns_from_the_fastest_message_and_keeps_it_across_an_outage() -> None:
    hub = HubClock(window_s=600)
    hub.observe(T0, T0 + 1000.5, reference=True)  # 1000 s clock difference, 0.5 s delivery
    hub.observe(T0 + 10, T0 + 1010.02)  # a quick one: 0.02 s
    hub.observe(T0 - 200, T0 + 1011)  # a redelivered old call cannot pull the estimate
    assert hub.offset == pytest.approx(1000.02)
    assert hub.age(T0 - 200, T0 + 1011) == pytest.approx(210.98)
    # an hour offline, then a burst of redelivered old calls: the last estimate still judges them
    for i in range(5):
        hub.observe(T0 + 3000, T0 + 1000 + 3600 + 300 + i)
    assert hub.offset == pytest.approx(1000.02)
    # the hub's clock is set back 100 s: followed once newer samples cover the window
    for k in range(0, 700, 30):
        hub.observe(T0 + 3700 + k - 100, T0 + 1000 + 3700 + k + 0.05, reference=True)
    assert hub.offset == pytest.approx(1100.05)
