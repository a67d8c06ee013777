"""The box's pure core: key map validation and the state machine, with time passed in."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from counterd.config import BoxConfig, KeySpec, check_action
from counterd.keymap import CounterBox, Flash, Send
from counterd.lights import BOX_BUZZER_PATTERNS, RATING_PATTERNS, STATUS_PATTERNS
from xephang.contract import CounterState, Reply

SERVICES = ("ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi")


def ticket(display="1001", service="ho-tich", recalls=0, tid=1):
    return {"id": tid, "day": "2026-01-05", "number": int(display), "display": display, "service": service,
            "issued_at": 1.0, "state": "called", "counter": 1, "recalls": recalls}


def ok(sent: Send, rev=None, **data) -> Reply:
    return Reply(request_id=sent.request_id, status="ok", data=data, rev=rev)


def err(sent: Send, code: str) -> Reply:
    return Reply(request_id=sent.request_id, status="error", error={"code": code, "message": ""})


def make(**cfg) -> CounterBox:
    ids = (f"req-{i:04d}" for i in itertools.count(1))
    box = CounterBox(BoxConfig(**cfg), new_request_id=lambda: next(ids), site_services=SERVICES)
    box.set_hub_online(True, 0.0)
    return box


def sends(effects):
    return [e for e in effects if isinstance(e, Send)]


def flashes(effects):
    return [e.name for e in effects if isinstance(e, Flash)]


def serve(box: CounterBox, now: float, display="1001", service="ho-tich") -> None:
    (s,) = sends(box.press("next", "short", now))
    box.on_reply(s.request_id, ok(s, ticket=ticket(display, service), queue_empty=False), now + 0.01)


# ---- key map ---------------------------------------------------------------------------------

def test_actions_are_checked():
    for a in ("next", "rate-5", "transfer:dat-dai", "pause-menu", "none"):
        assert check_action(a) == a
    for bad in ("rate-6", "transfer:", "call", "Transfer:dat-dai"):
        with pytest.raises(ValueError):
            check_action(bad)


def test_a_key_map_with_a_pin_used_twice_is_refused_with_every_error():
    keys = [{"name": "next", "pin": 5, "short": "next"}, {"name": "next", "pin": 17, "short": "recall"}]
    with pytest.raises(ValidationError) as exc:
        BoxConfig(keys=keys)
    text = str(exc.value)
    assert "duplicate key names" in text and "pin is used twice" in text


def test_only_keys_that_tell_short_from_long_wait_for_the_release():
    assert not KeySpec(name="next", pin=5, short="next").needs_hold
    assert KeySpec(name="recall", pin=6, short="recall", long="no-show").needs_hold
    assert KeySpec(name="t", pin=7, short="transfer").needs_hold


# ---- presses ---------------------------------------------------------------------------------

def test_next_sends_one_call_with_a_fresh_request_id_per_press():
    box = make()
    (a,) = sends(box.press("next", "short", 1.0))
    box.on_reply(a.request_id, ok(a, ticket=None, queue_empty=True), 1.1)
    (b,) = sends(box.press("next", "short", 3.0))
    assert a.action == b.action == "call-next" and a.request_id != b.request_id


def test_the_core_has_no_second_double_press_guard():
    # the key drops a double tap (tests/hw/test_keys.py, and on a real pin in
    # test_counterd_broker.py); a press that reaches the core is real: Next again while the first
    # is in flight is "busy", and Next again after its reply is a second call, however soon
    box = make(double_press_s=0.4)
    (a,) = sends(box.press("next", "short", 1.0))
    assert flashes(box.press("next", "short", 1.1)) == ["busy"]
    box.on_reply(a.request_id, ok(a, ticket=None, queue_empty=True), 1.15)
    (b,) = sends(box.press("next", "short", 1.2))
    assert b.request_id != a.request_id


def test_in_flight_same_action_is_busy_other_action_is_queued_once():
    box = make()
    serve(box, 1.0)
    (n,) = sends(box.press("next", "short", 2.0))
    assert flashes(box.press("next", "short", 3.0)) == ["busy"]
    assert flashes(box.press("finish", "short", 3.1)) == ["queued"]
    assert flashes(box.press("recall", "short", 3.2)) == ["busy"]  # the slot is full
    out = box.on_reply(n.request_id, ok(n, ticket=ticket("1002", tid=2)), 3.5)
    assert [s.action for s in sends(out)] == ["finish"] and "accepted" in flashes(out)
    assert box.status_light(3.5) == "working"


def test_hub_offline_answers_every_press_and_keeps_nothing():
    box = make()
    serve(box, 1.0)
    (n,) = sends(box.press("next", "short", 2.0))
    box.press("recall", "short", 2.1)
    assert box.queued is not None
    out = box.set_hub_online(False, 2.2)
    assert flashes(out) == ["hub_offline"] and box.queued is None
    assert box.status_light(2.2) == "hub_offline"
    assert flashes(box.press("finish", "short", 3.0)) == ["hub_offline"]
    assert box.stats.hub_offline == 1
    # the request in flight still gets its honest answer (here: none)
    assert flashes(box.on_reply(n.request_id, None, 5.0)) == ["error"]
    assert box.set_hub_online(True, 6.0) == [] and box.in_flight is None and box.queued is None
    assert box.status_light(6.0) == "ready"


def test_empty_queue_shows_until_someone_waits():
    box = make()
    (s,) = sends(box.press("next", "short", 1.0))
    assert flashes(box.on_reply(s.request_id, ok(s, ticket=None, queue_empty=True), 1.1)) == ["queue_empty"]
    assert box.status_light(1.2) == "queue_empty" and box.in_flight is None
    box.services = ("ho-tich",)
    box.on_service_waiting("dat-dai", 3)   # not ours
    assert box.status_light(1.3) == "queue_empty"
    box.on_service_waiting("ho-tich", 1)
    assert box.status_light(1.4) == "ready"


def test_recalls_suggest_no_show_after_the_configured_count():
    box = make(recalls_before_no_show=2)
    serve(box, 1.0)
    for i, now in enumerate((2.0, 3.0), start=1):
        (r,) = sends(box.press("recall", "short", now))
        out = box.on_reply(r.request_id, ok(r, ticket=ticket(recalls=i), recalls=i), now + 0.1)
    assert "suggest_no_show" in flashes(out)
    assert box.status_light(3.2) == "suggest_no_show"
    (ns,) = sends(box.press("recall", "long", 4.0))
    assert ns.action == "no-show"
    box.on_reply(ns.request_id, ok(ns, ticket=ticket(), requeued=True), 4.1)
    assert box.status_light(4.2) == "ready"


def test_the_hubs_recall_limit_suggests_no_show_whatever_the_setting():
    """The hub refuses a call's 11th recall (recall-limit): the box says "mark them absent", not a bare
    error, and a setting above the limit still lights within one call."""
    from xephang.contract import MAX_RECALLS_PER_VISIT

    box = make(recalls_before_no_show=0)  # never suggested by the box itself
    serve(box, 1.0)
    (r,) = sends(box.press("recall", "short", 2.0))
    assert flashes(box.on_reply(r.request_id, err(r, "recall-limit"), 2.1)) == ["suggest_no_show"]
    late = make(recalls_before_no_show=20)
    serve(late, 1.0)
    (r,) = sends(late.press("recall", "short", 2.0))
    n = MAX_RECALLS_PER_VISIT
    late.on_reply(r.request_id, ok(r, ticket=ticket(recalls=n), recalls=n), 2.1)
    assert late.status_light(2.2) == "suggest_no_show"


def test_rating_window_after_finish_only():
    box = make(rating_window_s=60)
    assert flashes(box.press("rate-5", "short", 0.5)) == ["rating_closed"]
    serve(box, 1.0)
    (f,) = sends(box.press("finish", "short", 2.0))
    box.on_reply(f.request_id, ok(f, ticket=ticket(), rating_window_s=120), 2.1)
    assert box.rating_light(2.2) == "rating_open"
    assert box.rating_light(62.2) == "off"            # min(hub 120, local 60)
    (r,) = sends(box.press("rate-4", "short", 10.0))
    assert r.fields == {"score": 4, "ticket_id": 1}   # the ticket that Finish ended
    assert flashes(box.press("rate-2", "short", 11.0)) == ["rating_closed"]  # one rating per service
    assert flashes(box.on_reply(r.request_id, ok(r, score=4), 10.1)) == ["rated"]


def test_a_rating_names_the_ticket_the_box_saw_finished_whatever_next_does():
    box = make()
    serve(box, 1.0, "1001")
    (f,) = sends(box.press("finish", "short", 2.0))
    box.on_reply(f.request_id, ok(f, ticket=ticket("1001", tid=41), rating_window_s=120), 2.1)
    serve(box, 3.0, "1002")            # the officer calls B while citizen A is still rating
    (n,) = sends(box.press("next", "short", 4.0))   # and Next again: the hub finishes B (inferred)
    box.on_reply(n.request_id, ok(n, ticket=ticket("1003", tid=43)), 4.1)
    assert box.rating_light(5.0) == "rating_open" and box.rating.ticket_id == 41
    (r,) = sends(box.press("rate-2", "short", 5.0))  # citizen A presses a rating key
    assert r.action == "rate" and r.fields == {"score": 2, "ticket_id": 41}
    assert flashes(box.on_reply(r.request_id, ok(r, score=2), 5.1)) == ["rated"]
    assert box.rating is None
    # an explicit Finish of C opens a new window, bound to C
    (f2,) = sends(box.press("finish", "short", 6.0))
    box.on_reply(f2.request_id, ok(f2, ticket=ticket("1003", tid=43), rating_window_s=120), 6.1)
    (r2,) = sends(box.press("rate-5", "short", 7.0))
    assert r2.fields == {"score": 5, "ticket_id": 43}


def test_a_rating_queued_behind_a_request_keeps_its_ticket():
    box = make()
    serve(box, 1.0)
    (f,) = sends(box.press("finish", "short", 2.0))
    box.on_reply(f.request_id, ok(f, ticket=ticket(tid=41), rating_window_s=120), 2.1)
    (n,) = sends(box.press("next", "short", 3.0))
    assert flashes(box.press("rate-4", "short", 3.1)) == ["queued"]
    (r,) = sends(box.on_reply(n.request_id, ok(n, ticket=ticket("1002", tid=42)), 3.2))
    assert r.fields == {"score": 4, "ticket_id": 41}


def test_the_hub_refusing_the_rating_for_its_ticket_closes_the_window():
    box = make()
    serve(box, 1.0)
    (f,) = sends(box.press("finish", "short", 2.0))
    box.on_reply(f.request_id, ok(f, ticket=ticket(tid=41), rating_window_s=120), 2.1)
    (r,) = sends(box.press("rate-3", "short", 3.0))
    assert flashes(box.on_reply(r.request_id, err(r, "rating-wrong-ticket"), 3.1)) == ["rating_closed"]
    assert box.rating_light(3.2) == "off"


def test_the_rating_keys_follow_the_site_scale():
    three = BoxConfig(rating_scale=3)
    assert [k.name for k in three.keys if k.short.startswith("rate-")] == ["rate-1", "rate-2", "rate-3"]
    assert len([k for k in BoxConfig().keys if k.short.startswith("rate-")]) == 5
    with pytest.raises(ValidationError) as exc:   # a key map of its own with a fourth rating key
        BoxConfig(rating_scale=3, keys=[{"name": "next", "pin": 5, "short": "next"},
                                        {"name": "r4", "pin": 21, "short": "rate-4"},
                                        {"name": "r", "pin": 20, "short": "rate-3", "long": "rate-5"}])
    text = str(exc.value)
    assert "key 'r4' → rate-4" in text and "key 'r' → rate-5" in text and "3-point rating scale" in text
    with pytest.raises(ValidationError):
        BoxConfig(rating_scale=4)
    # a five-key config on a box whose site file rates on 3: keys above it are refused locally
    ids = (f"req-{i}" for i in itertools.count())
    box = CounterBox(BoxConfig(), new_request_id=lambda: next(ids), site_services=SERVICES, site_rating_scale=3)
    box.set_hub_online(True, 0.0)
    serve(box, 1.0)
    (f,) = sends(box.press("finish", "short", 2.0))
    box.on_reply(f.request_id, ok(f, ticket=ticket(), rating_window_s=120), 2.1)
    assert box.press("rate-4", "short", 3.0) == [Flash("error", on="rating")]
    assert box.last_result == "beyond-rating-scale" and box.rating_open(3.0)
    (r,) = sends(box.press("rate-3", "short", 4.0))
    assert r.fields["score"] == 3


def test_a_lost_rating_reply_lets_the_citizen_press_again():
    box = make()
    serve(box, 1.0)
    (f,) = sends(box.press("finish", "short", 2.0))
    box.on_reply(f.request_id, ok(f, ticket=ticket(), rating_window_s=120), 2.1)
    (r,) = sends(box.press("rate-3", "short", 3.0))
    box.on_reply(r.request_id, None, 9.0)
    assert sends(box.press("rate-3", "short", 10.0))


def test_pause_toggles_and_the_menu_picks_a_reason():
    box = make(pause_reasons=("Nghỉ trưa", "Họp"), select_timeout_s=5)
    (p,) = sends(box.press("pause", "short", 1.0))
    assert p.action == "pause" and p.fields == {"reason": "Nghỉ trưa"}
    box.on_reply(p.request_id, ok(p, counter=1, state="paused"), 1.1)
    assert box.status_light(1.2) == "paused"
    (r,) = sends(box.press("pause", "short", 2.0))
    assert r.action == "resume"
    box.on_reply(r.request_id, ok(r, counter=1, state="open"), 2.1)
    assert flashes(box.press("pause", "long", 3.0)) == ["choose-1"]
    assert flashes(box.press("pause", "short", 4.0)) == ["choose-2"]
    assert box.status_light(4.0) == "choose-2"
    (p2,) = sends(box.press("pause", "long", 5.0))
    assert p2.fields == {"reason": "Họp"}


def test_a_menu_times_out_or_is_cancelled_by_another_key():
    box = make(select_timeout_s=5)
    box.press("pause", "long", 1.0)
    assert flashes(box.tick(5.9)) == []
    assert flashes(box.tick(6.0)) == ["cancelled"] and box.menu is None
    box.press("pause", "long", 7.0)
    (n,) = sends(box.press("next", "short", 7.5))   # the officer changed their mind
    assert n.action == "call-next" and box.menu is None


def test_transfer_needs_a_ticket_and_two_deliberate_presses():
    box = make()
    assert flashes(box.press("transfer", "short", 1.0)) == ["error"]  # nobody served
    serve(box, 2.0)
    box.config = box.config.model_copy(update={"keys": (*box.config.keys,
                                                         KeySpec(name="dat-dai", pin=2, short="transfer:dat-dai"))})
    assert flashes(box.press("dat-dai", "short", 3.0)) == ["cancelled"]  # a service key alone does nothing
    assert flashes(box.press("transfer", "short", 4.0)) == ["choose-1"]
    assert box.menu.options == ("dat-dai", "chung-thuc", "van-hoa-xa-hoi")  # not its own service
    (t,) = sends(box.press("dat-dai", "short", 5.0))
    assert t.action == "transfer" and t.fields == {"to_service": "dat-dai"}


def test_counter_state_from_the_hub_is_followed_unless_older():
    box = make(recalls_before_no_show=1)
    st = CounterState(number=1, state="paused", pause_reason="Họp", rev=5)
    box.on_counter_state(st)
    assert box.paused and box.status_light(0) == "paused"
    out = box.on_counter_state(CounterState(number=1, state="open", serving=ticket(recalls=1), rev=7))
    assert "suggest_no_show" in flashes(out) and not box.paused
    box.on_counter_state(CounterState(number=1, state="paused", rev=6))  # stale
    assert not box.paused
    box.on_counter_state(CounterState(number=2, state="paused", rev=9))  # another counter
    assert not box.paused


def test_a_refusal_flashes_error_and_counts_the_code():
    box = make()
    (r,) = sends(box.press("recall", "short", 1.0))
    assert flashes(box.on_reply(r.request_id, err(r, "not-serving"), 1.1)) == ["error"]
    assert box.stats.by_code == {"not-serving": 1} and box.last_result == "not-serving"


def test_every_flash_and_light_name_has_a_pattern():
    box_names = {"accepted", "queued", "busy", "cancelled", "queue_empty", "hub_offline", "error",
                 "suggest_no_show", "rated", "rating_closed", *(f"choose-{n}" for n in range(1, 10))}
    for name in box_names:
        assert name in BOX_BUZZER_PATTERNS or name in STATUS_PATTERNS or name in RATING_PATTERNS, name
    for base in ("ready", "working", "paused", "suggest_no_show", "queue_empty", "hub_offline", "choose-3"):
        assert STATUS_PATTERNS[base].forever
    assert RATING_PATTERNS["rating_open"].forever


def test_an_arrived_key_tells_the_hub_the_citizen_reached_the_counter():
    keys = [{"name": "next", "pin": 5, "short": "next"}, {"name": "arrived", "pin": 24, "short": "arrived"}]
    box = make(keys=keys)
    serve(box, 1.0)
    (s,) = sends(box.press("arrived", "short", 20.0))
    assert (s.action, s.fields) == ("arrived", {})
    assert flashes(box.on_reply(s.request_id, ok(s, ticket=ticket(), arrived_at=20.0, walk_s=19.0, already=False),
                                20.1)) == ["accepted"]
    assert box.serving is not None and box.serving.display == "1001"  # still serving: arrival is not the end
