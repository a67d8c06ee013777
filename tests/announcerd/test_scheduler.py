"""The speaker says each call once, in order, never late, never over itself."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from announcerd.scheduler import CallEvent, QuietHours, Scheduler
from xephang.clock import VN_TZ

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=VN_TZ).timestamp()


def call(rev: int, number: int, counter: int = 1, *, at: float = T0, kind: str = "called", service: str = "ho-tich") -> CallEvent:
    return CallEvent(event_id=f"e{rev}", rev=rev, at=at, kind=kind, number=number, counter=counter, service=service)  # type: ignore[arg-type]


def drain(s: Scheduler, now: float) -> list[tuple[int, int]]:
    said = []
    while (job := s.next_job(now)) is not None:
        said.append((job.call.number, job.call.counter))
        s.finished()
    return said


def test_calls_are_said_in_order_one_at_a_time() -> None:
    s = Scheduler()
    assert s.offer(call(1, 1001, 1), T0) == "queued"
    assert s.offer(call(2, 2001, 3), T0) == "queued"
    job = s.next_job(T0)
    assert job is not None and job.call.number == 1001
    assert s.next_job(T0 + 1) is None  # still speaking: the second call waits
    s.finished()
    assert s.next_job(T0 + 5).call.number == 2001  # type: ignore[union-attr]


def test_mqtt_redelivery_is_said_once() -> None:
    s = Scheduler()
    assert s.offer(call(7, 1001), T0) == "queued"
    assert s.offer(call(7, 1001), T0) == "duplicate"
    assert drain(s, T0) == [(1001, 1)]
    assert s.offer(call(7, 1001), T0 + 3) == "duplicate"  # even after it was said
    assert drain(s, T0 + 3) == []


def test_a_stale_call_is_dropped_not_said_late() -> None:
    s = Scheduler(max_age_s=60)
    assert s.offer(call(1, 1001, at=T0 - 61), T0) == "stale"
    assert s.offer(call(2, 1002, at=T0 - 59), T0) == "queued"
    assert drain(s, T0 + 5) == []  # it went stale while waiting
    assert s.stats.stale == 2


def test_a_call_waiting_behind_a_long_one_goes_stale() -> None:
    s = Scheduler(max_age_s=30)
    s.offer(call(1, 1001), T0)
    s.offer(call(2, 1002), T0)
    s.next_job(T0)
    s.finished()
    assert s.next_job(T0 + 31) is None


def test_recall_of_a_waiting_call_does_not_add_a_second_entry() -> None:
    s = Scheduler()
    s.offer(call(1, 1001, 1), T0)
    s.offer(call(2, 2001, 3), T0)
    s.next_job(T0)  # 1001 is being said
    assert s.offer(call(3, 2001, 3, kind="recalled", at=T0 + 2), T0 + 2) == "merged"
    assert [c.number for c in s.waiting] == [2001]
    s.finished()
    assert drain(s, T0 + 3) == [(2001, 3)]


def test_merged_entry_speaks_the_newest_counter_and_keeps_its_place() -> None:
    s = Scheduler()
    s.offer(call(1, 1001, 1), T0)
    s.offer(call(2, 1002, 2), T0)
    s.offer(call(3, 1001, 4, at=T0 + 1), T0 + 1)  # transferred and re-called at counter 4
    assert drain(s, T0 + 2) == [(1001, 4), (1002, 2)]


def test_recall_while_the_same_call_is_playing_is_said_again_after() -> None:
    s = Scheduler()
    s.offer(call(1, 1001), T0)
    s.next_job(T0)
    assert s.offer(call(2, 1001, kind="recalled"), T0 + 1) == "queued"
    s.finished()
    assert drain(s, T0 + 2) == [(1001, 1)]


def test_volume_follows_quiet_hours() -> None:
    lunch = QuietHours(start=time(11, 30), end=time(13, 30), volume=0.3)
    night = QuietHours(start=time(22, 0), end=time(6, 0), volume=0.0)
    s = Scheduler(volume=0.9, quiet_hours=(lunch, night))
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
    s = Scheduler()
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
    s = Scheduler(max_age_s=30)
    s.offer(call(1, 1001, at=T0), T0)
    s.offer(call(2, 1002, at=T0 + 20), T0 + 20)
    assert s.drop_stale(T0 + 40) == 1
    assert [c.number for c in s.waiting] == [1002]
