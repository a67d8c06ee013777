"""The fault suite, short forms (the long ones: ``python bench/faults.py``). Real daemon
processes over a real mosquitto; every story ends with nothing lost and nothing doubled."""

from __future__ import annotations

import pytest

from xephang_faults import scenarios as S

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def clean(t) -> None:
    assert (t.lost, t.duplicates) == (0, 0), t.notes


@pytest.mark.parametrize("persistence", [True, False], ids=["persistent-broker", "amnesic-broker"])
def test_broker_killed_in_a_busy_hour_every_node_back_within_5s_nothing_lost(tmp_path, persistence):
    t, f = S.broker_restart(tmp_path, persistence=persistence, restarts=2, ops=10)
    assert t.faults == 2 and max(t.recoveries) < 5.0, t.notes
    clean(t)
    assert all(f["alive"].values())
    assert f["hall_rev"] == f["books"].max_rev  # the hub rebuilt the retained state
    assert f["books"].outbox == 0 and f["gave_up"] == 0


def test_hub_killed_at_random_points_numbers_never_reused_every_event_once(tmp_path):
    t, f = S.hub_kills(tmp_path, kills=8)
    clean(t)
    b = f["books"]
    assert b.numbers_reused == 0 and b.revs_missing == [] and b.outbox == 0
    assert set(b.by_state) <= {"waiting", "called", "done", "voided"}
    assert f["gave_up"] == 0 and f["repaired"] == 0  # the outbox, not the resync, delivered every event


def test_a_killed_node_is_marked_offline_and_a_late_will_cannot_override_its_restart(tmp_path):
    t, f = S.node_will(tmp_path, rounds=3)
    clean(t)
    assert f["kinds"] == ["plain", "takeover", "bridged"]
    assert f["offline_seen"] == 1  # the Will of a dead box
    assert f["takeover_clean"] == 1  # restarted behind a stalled link: the broker drops the old Will
    assert f["late_will_rounds"] == 1, f["log"]  # a real late Will after the new birth, out-voted
    assert f["ended_online"] == 3, f["log"]


def test_a_partitioned_box_retries_with_the_same_id_one_effect_late_replies_dropped(tmp_path):
    t, f = S.partition(tmp_path, rounds=2)
    clean(t)
    assert f["gave_up"] == f["give_up_rounds"] == 1  # the box stopped waiting …
    assert f["late_dropped"] >= 3  # … and the hub's answers to it and to every retry were dropped
    assert f["press_tickets"] == 3  # three presses during the stall: three tickets, no more
    assert f["books"].issued_events == 2 + 3  # one ticket per request however often it was sent


def test_duplicated_and_reordered_events_one_call_said_once_board_on_the_newest_rev(tmp_path):
    t, f = S.duplicates_reordered(tmp_path, calls=4)
    clean(t)
    assert f["said"] == f["want"] and f["wavs"] == len(f["want"])
    assert f["display"]["rev"] == f["top"] and f["display"]["events"]["duplicate"] >= 1


def test_security_strangers_and_every_forbidden_topic_refused_nothing_changed(tmp_path):
    t, f = S.security(tmp_path)
    assert f["leaks"] == [] and f["strangers_refused"] == 4
    assert f["refused"] > 200
    assert f["cross_counter"] == "forbidden"
    assert f["before"] == f["after"] and f["retained_changed"] == [] and f["alive"]
    # client-id takeover of the running hub by every role's password, on both listeners
    assert not f["hub_knocked_off"]
    assert {v for (_, cid, _), v in f["takeover"].items() if cid == "hub"} == {"refused"}
    assert {v for (_, cid, _), v in f["takeover"].items() if cid == "xephang-hub"} == {"own id"}
    assert len(f["takeover"]) == 20
    refused = f["refused_topics"]
    # the hub answers and publishes, but pushes no config, presses no key, speaks for no node
    assert {("hub", "config/counter-1/set"), ("hub", "config/hub/set"), ("hub", "sim/dispenser-1/press"),
            ("hub", "node/counter-1/status"), ("hub", "node/tech/status")} <= refused
    # a technician acts and configures, but writes no event or state and impersonates no node
    assert {("tech", "event/ticket/called"), ("tech", "event/counter/paused"), ("tech", "state/hall"),
            ("tech", "state/counter/1"), ("tech", "node/counter-1/status"), ("tech", "node/hub/status"),
            ("tech", "node/hub/health"), ("tech", "reply/counter-1")} <= refused
    assert f["refused_by"]["hub"] >= 40 and f["refused_by"]["tech"] >= 40, f["refused_by"]
    clean(t)
