"""counterd on a fake bus with the real hub: what an officer and a citizen see and hear.

Hardware edges only are fakes: gpiozero mock pins (the sim board). Presses drive the mock
pins; lights and buzzer are read back from the pins' recorded states.
"""

from __future__ import annotations

import json

import pytest

from counterd.main import CounterDaemon, CounterdSettings
from tests.counterd.conftest import SITE, T, assert_played, wait_for
from xephang.contract import BadPayload, ConfigSet, SimPress, new_request_id
from xephang.settings import SettingsError
from xephang.testing import FakeBus


def test_next_calls_the_first_waiting_citizen_with_accepted_light_and_beep(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 2)
    box = h.box
    box.board.status.pin.clear_states()
    box.board.buzzer.pin.clear_states()
    h.press("next")
    h.until(lambda: len(h.events("called")) == 1)
    ev = h.events("called")[0]
    assert ev["ticket"]["display"] == "1001" and ev["counter"] == 1
    assert box.core.serving.display == "1001"
    assert_played(box.board.status, "accepted")
    assert_played(box.board.buzzer, "accepted", strict=(True,))
    assert box.board.status.wait_settled(2) and box.board.status.base == "ready"
    assert box.health_details()["last_ticket"] == "1001"


def test_two_presses_of_next_within_the_debounce_window_make_one_call(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 3)
    pin = h.box.board.keys["next"].pin
    for hold, gap in ((0.01, 0.15), (0.05, 1.0)):  # contact bounce, then a nervous second tap
        pin.drive_low()
        h.mono.advance(hold)
        pin.drive_high()
        h.mono.advance(gap)
    h.settle(30)
    assert len(h.requests("call-next")) == 1
    assert [e["ticket"]["display"] for e in h.events("called")] == ["1001"]


def test_next_while_serving_finishes_it_inferred_then_calls_the_next(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 2)
    h.press("next")
    h.press("next")
    h.until(lambda: len(h.events("called")) == 2)
    fin = h.events("finished")
    assert len(fin) == 1 and fin[0]["ticket"]["display"] == "1001" and fin[0]["inferred"] is True
    assert h.box.core.serving.display == "1002"
    assert not h.box.core.rating_open(h.mono.monotonic())  # no finish press: no rating window


def test_next_with_an_empty_queue_says_so_and_stays_ready(hall_factory):
    h = hall_factory()
    box = h.box
    box.board.buzzer.pin.clear_states()
    h.press("next")
    h.until(lambda: box.core.last_result == "queue-empty")
    assert box.core.status_light(h.mono.monotonic()) == "queue_empty"
    assert_played(box.board.status, "queue_empty")
    assert_played(box.board.buzzer, "queue_empty", strict=(True,))
    assert box.core.in_flight is None
    h.issue("chung-thuc")  # someone arrives for one of the counter's services
    h.until(lambda: box.core.status_light(h.mono.monotonic()) == "ready")
    h.press("next")
    h.until(lambda: len(h.events("called")) == 1)
    assert h.events("called")[0]["ticket"]["display"] == "3001"


def test_recall_repeats_the_call_and_suggests_no_show_after_two(hall_factory):
    h = hall_factory()
    h.issue("ho-tich")
    box = h.box
    h.press("next")
    h.press("recall")
    h.until(lambda: len(h.events("recalled")) == 1)
    assert box.core.status_light(h.mono.monotonic()) == "ready"
    box.board.buzzer.pin.clear_states()
    h.press("recall")
    h.until(lambda: len(h.events("recalled")) == 2)
    assert box.core.status_light(h.mono.monotonic()) == "suggest_no_show"
    assert_played(box.board.status, "suggest_no_show")
    assert_played(box.board.buzzer, "suggest_no_show", strict=(True,))
    # no-show is the recall key held
    h.press("recall", hold_s=1.2)
    h.until(lambda: len(h.events("no-show")) == 1)
    assert box.core.serving is None
    assert box.core.status_light(h.mono.monotonic()) == "ready"


def test_finish_opens_the_rating_window_and_the_rating_binds_to_that_ticket(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 2)
    box = h.box
    h.press("next")
    h.press("finish")
    h.until(lambda: len(h.events("finished")) == 1)
    assert h.events("finished")[0]["inferred"] is False
    assert box.core.rating_light(h.mono.monotonic()) == "rating_open"
    assert_played(box.board.rating, "rating_open", strict=(True,))
    h.press("next")  # the officer calls the next citizen while the last one rates
    box.board.rating.pin.clear_states()
    h.press("rate-5")
    h.until(lambda: len(h.events("rated")) == 1)
    a_id = h.events("finished")[0]["ticket"]["id"]
    assert h.requests("rate")[0]["ticket_id"] == a_id   # the request names A, not B being served
    rated = h.events("rated")[0]
    assert rated["ticket"]["display"] == "1001" and rated["ticket"]["id"] == a_id and rated["score"] == 5
    assert_played(box.board.rating, "rated", strict=(True,))
    assert_played(box.board.buzzer, "rated", strict=(True,))
    assert box.core.rating_light(h.mono.monotonic()) == "off"
    # a second rating: the window is closed, nothing is sent
    box.board.rating.pin.clear_states()
    h.press("rate-1")
    assert_played(box.board.rating, "rating_closed", strict=(True,))
    assert len(h.requests("rate")) == 1


def test_a_rating_after_next_twice_still_names_the_ticket_the_box_saw_finished(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 3)
    box = h.box
    h.press("next")
    h.press("finish")                     # A finished: the rating window opens for A
    h.until(lambda: box.core.rating_light(h.mono.monotonic()) == "rating_open")
    a = h.events("finished")[0]["ticket"]
    h.press("next")                       # B called
    h.press("next")                       # B finished (inferred), C called
    h.until(lambda: len(h.events("called")) == 3)
    b = h.events("finished")[1]["ticket"]
    assert b["display"] == "1002" and h.events("finished")[1]["inferred"] is True
    h.press("rate-2")                     # citizen A, still at the box, rates
    h.until(lambda: len(h.events("rated")) == 1)
    req = h.requests("rate")[0]
    assert req["ticket_id"] == a["id"] != b["id"] and req["score"] == 2
    rated = h.events("rated")[0]          # and the rating lands on A, not on B
    assert rated["ticket"]["id"] == a["id"] and rated["score"] == 2
    assert box.core.rating_light(h.mono.monotonic()) == "off"


def test_a_rating_outside_the_window_is_ignored_with_a_signal(hall_factory):
    h = hall_factory(rating_window_s=30)
    h.issue("ho-tich")
    box = h.box
    h.press("rate-3")  # nothing finished yet
    h.press("next")
    h.press("finish")
    h.until(lambda: box.core.rating_light(h.mono.monotonic()) == "rating_open")
    h.mono.advance(31)
    h.settle()
    assert box.core.rating_light(h.mono.monotonic()) == "off"
    box.board.rating.pin.clear_states()
    box.board.buzzer.pin.clear_states()
    h.press("rate-4")
    assert_played(box.board.rating, "rating_closed", strict=(True,))
    assert_played(box.board.buzzer, "rating_closed", strict=(True,))
    assert h.requests("rate") == []
    assert box.core.stats.rating_closed == 2


def test_a_box_on_a_three_point_site_has_three_rating_keys_and_never_sends_a_four(hall_factory,
                                                                                   three_point_site):
    h = hall_factory(site=three_point_site)
    box = h.box
    assert box.box.rating_scale == 3
    assert sorted(n for n in box.board.keys if n.startswith("rate-")) == ["rate-1", "rate-2", "rate-3"]
    h.issue("ho-tich")
    h.press("next")
    h.press("finish")
    h.until(lambda: box.core.rating_light(h.mono.monotonic()) == "rating_open")
    with pytest.raises(BadPayload, match="no key for 'rate-4'"):   # R/sim/counter-1/press rate-4
        box.on_sim_press(SimPress(button="rate-4"))
    h.settle()
    assert h.requests("rate") == [] and box.core.rating_open(h.mono.monotonic())
    h.press("rate-3")                     # the top of this site's scale
    h.until(lambda: len(h.events("rated")) == 1)
    assert h.events("rated")[0]["score"] == 3 and [r["score"] for r in h.requests("rate")] == [3]
    # a technician pushing a key map with a fifth rating key is refused, the box keeps its keys
    keys = [k.model_dump(mode="json") for k in box.box.keys] + [{"name": "rate-5", "pin": 25, "short": "rate-5"}]
    push = ConfigSet(request_id=new_request_id(), source="tech-1", config={"keys": keys})
    h.dispenser.publish(T.config_set("counter-1"), push)
    h.until(lambda: bool(h.broker.messages(T.config_ack("counter-1"))))
    ack = json.loads(h.broker.messages(T.config_ack("counter-1"))[-1][1])
    assert ack["status"] == "rejected" and "rate-5" in " ".join(ack["errors"])
    assert "rate-5" not in box.board.keys and box.node_config.rev == 0


def test_a_key_map_beyond_the_sites_scale_is_refused_when_the_config_is_loaded(tmp_path, fake_broker,
                                                                               three_point_site):
    def load(**counter):
        s = CounterdSettings(site=SITE, site_file=three_point_site, state_dir=tmp_path, sim=True,
                             counter={"number": 1, **counter})
        return CounterDaemon(s, bus=FakeBus(fake_broker, site=SITE, node="counter-1", role="counter",
                                            state_dir=tmp_path))

    keys = [{"name": "next", "pin": 5, "short": "next"},
            *({"name": f"r{i}", "pin": p, "short": f"rate-{i}"} for i, p in ((1, 12), (2, 16), (3, 20), (4, 21)))]
    with pytest.raises(SettingsError) as exc:
        load(keys=keys)
    assert "key 'r4' → rate-4" in str(exc.value) and "3-point" in str(exc.value)
    with pytest.raises(SettingsError, match="rates on 3 points"):
        load(rating_scale=5)
    assert load(keys=keys[:4]).box.rating_scale == 3   # three rating keys: fine


def test_pause_with_the_default_reason_then_resume_and_others_keep_calling(hall_factory):
    h = hall_factory(counters=(1, 2))
    h.issue("ho-tich", 2)
    b1 = h.boxes[1]
    h.press("next", counter=1)
    h.press("pause", counter=1)
    h.until(lambda: b1.core.paused)
    paused = [json.loads(p) for _, p in h.broker.messages(T.event("counter", "paused"))]
    assert paused[-1]["counter"] == 1 and paused[-1]["reason"] == "Nghỉ giải lao"
    assert b1.core.status_light(h.mono.monotonic()) == "paused"
    assert_played(b1.board.status, "paused")
    # its services stay callable by the other counter
    h.press("next", counter=2)
    h.until(lambda: any(e["counter"] == 2 for e in h.events("called")))
    h.press("pause", counter=1)  # the same key resumes
    h.until(lambda: not b1.core.paused)
    assert h.broker.messages(T.event("counter", "resumed"))
    assert b1.core.status_light(h.mono.monotonic()) in ("ready", "queue_empty")


def test_long_pause_chooses_a_reason_by_counting_blinks(hall_factory):
    h = hall_factory()
    box = h.box
    box.board.buzzer.pin.clear_states()
    h.press("pause", hold_s=1.2)          # open the reason menu: option 1
    assert box.core.status_light(h.mono.monotonic()) == "choose-1"
    h.press("pause")                      # step: option 2 ("Họp")
    h.press("pause")                      # step: option 3
    assert box.core.status_light(h.mono.monotonic()) == "choose-3"
    assert_played(box.board.status, "choose-3", cycles=1)
    assert_played(box.board.buzzer, "choose-3", strict=(True,))
    assert h.requests("pause") == []      # nothing sent before the confirmation
    h.press("pause", hold_s=1.2)          # confirm
    h.until(lambda: box.core.paused)
    assert h.requests("pause")[-1]["reason"] == "Hỗ trợ nghiệp vụ"


def test_a_menu_nobody_confirms_is_cancelled(hall_factory):
    h = hall_factory(select_timeout_s=5)
    box = h.box
    h.press("pause", hold_s=1.2)
    assert box.core.menu is not None
    box.board.buzzer.pin.clear_states()
    h.mono.advance(6)
    h.settle()
    assert box.core.menu is None
    assert_played(box.board.buzzer, "cancelled", strict=(True,))
    assert h.requests("pause") == []


def test_transfer_then_a_service_key_sends_the_citizen_to_that_service(hall_factory):
    h = hall_factory()
    h.issue("ho-tich")
    box = h.box
    h.press("next")
    h.press("transfer")
    assert box.core.menu is not None and box.core.menu.options[0] == "dat-dai"
    h.press("van-hoa-xa-hoi")   # a service key (the sim board has one per service)
    h.until(lambda: len(h.events("transferred")) == 1)
    ev = h.events("transferred")[0]
    assert ev["ticket"]["service"] == "van-hoa-xa-hoi" and ev["from_service"] == "ho-tich"
    assert box.core.serving is None


def test_transfer_by_stepping_with_the_transfer_key(hall_factory):
    h = hall_factory()
    h.issue("ho-tich")
    h.press("next")
    h.press("transfer")
    h.press("transfer")                   # option 2: chung-thuc
    h.press("transfer", hold_s=1.2)       # confirm
    h.until(lambda: len(h.events("transferred")) == 1)
    assert h.events("transferred")[0]["ticket"]["service"] == "chung-thuc"


def test_a_press_while_in_flight_is_neither_lost_nor_doubled(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 3)
    box = h.box
    box.board.buzzer.pin.clear_states()
    # the hub does not run between these presses: the first Next is in flight
    h.press("next", settle=False)
    box.step(timeout=0)
    assert box.core.in_flight is not None
    h.press("next", settle=False)         # same action: ignored with "busy"
    box.step(timeout=0)
    assert box.core.stats.busy == 1
    assert_played(box.board.buzzer, "busy", strict=(True,))
    box.board.buzzer.pin.clear_states()
    h.press("recall", settle=False)       # another action: queued once
    box.step(timeout=0)
    assert box.core.queued is not None
    assert_played(box.board.buzzer, "queued", strict=(True,))
    h.settle(30)
    assert [e["ticket"]["display"] for e in h.events("called")] == ["1001"]
    # one Next press, one request id (the bus may have retried it while the lights played)
    assert len(h.events("recalled")) == 1 and len({r["request_id"] for r in h.requests("call-next")}) == 1


def test_hub_offline_the_box_says_so_and_replays_nothing(hall_factory):
    h = hall_factory()
    h.issue("ho-tich")
    box = h.box
    h.broker.kill("hub")                  # the hub's connection dies: its Will says offline
    h.until(lambda: not box.hub_online)
    assert_played(box.board.status, "hub_offline")
    box.board.buzzer.pin.clear_states()
    h.press("next", settle=False)
    box.step(timeout=0)
    assert_played(box.board.buzzer, "hub_offline", strict=(True,))
    assert h.requests("call-next") == []
    h.press("rate-5", settle=False)       # the citizen's keys say it too, on the rating LED
    box.step(timeout=0)
    assert_played(box.board.rating, "hub_offline", strict=(True,))
    h.hub.bus._fake_connect()             # the hub is back
    h.until(lambda: box.hub_online)
    h.settle(20)
    assert h.events("called") == []       # the old press is not replayed
    assert box.core.status_light(h.mono.monotonic()) == "ready"
    h.press("next")                       # and the box is usable at once
    h.until(lambda: len(h.events("called")) == 1)


def test_the_box_losing_its_own_broker_link_says_hub_offline_and_replays_nothing(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 2)
    box = h.box
    h.press("next")
    h.until(lambda: len(h.events("called")) == 1)
    h.press("pause", hold_s=1.2)          # the officer is choosing a pause reason …
    assert box.core.menu is not None
    box.board.status.pin.clear_states()
    box.board.buzzer.pin.clear_states()
    h.broker.kill("counter-1")            # … when the box's own link dies (the hub is fine)
    h.until(lambda: not box.hub_online)
    assert h.hub.bus.connected.is_set() and box.core.menu is None   # no half-done menu
    assert_played(box.board.buzzer, "hub_offline", strict=(True,))
    assert_played(box.board.status, "hub_offline", strict=(True,), cycles=2)
    box.board.buzzer.pin.clear_states()
    for key in ("next", "recall", "finish"):   # every press is answered and forgotten
        h.press(key, settle=False)
        box.step(timeout=0)
    assert box.core.stats.hub_offline == 3 and box.core.in_flight is None and box.core.queued is None
    assert_played(box.board.buzzer, "hub_offline", strict=(True,))
    box.bus._fake_connect()               # the link is back
    h.until(lambda: box.hub_online)
    h.settle(20)
    assert len(h.requests("call-next")) == 1 and h.requests("recall") == [] and h.requests("finish") == []
    assert len(h.events("called")) == 1   # nothing replayed
    assert box.core.status_light(h.mono.monotonic()) == "ready"
    h.press("next")                       # usable at once: 1001 is finished (inferred), 1002 called
    h.until(lambda: len(h.events("called")) == 2)
    assert h.events("called")[1]["ticket"]["display"] == "1002"


def test_no_reply_gives_the_error_signal_and_keeps_nothing_half_done(hall_factory):
    h = hall_factory()
    box = h.box
    box.board.status.pin.clear_states()
    box.board.buzzer.pin.clear_states()
    # the hub is wedged (not stepped): its status still says online, nothing answers
    h.press("next", settle=False)
    box.step(timeout=0)
    assert box.core.status_light(h.mono.monotonic()) == "working"
    assert_played(box.board.status, "working", strict=(True, False))
    h.press("recall", settle=False)       # queued behind the unanswered Next
    box.step(timeout=0)
    assert box.core.queued is not None
    # the bus retries with the same request id, then gives up (0.3 s x 2 attempts, real time)
    assert wait_for(lambda: box.core.in_flight is None, 3, step=lambda: box.step(timeout=0.02))
    assert box.core.queued is None and box.core.last_result == "hub-timeout"
    assert_played(box.board.status, "error")
    assert_played(box.board.buzzer, "error", strict=(True,))
    ids = {r["request_id"] for r in h.requests("call-next")}
    assert len(h.requests("call-next")) == 2 and len(ids) == 1   # one press, one id, retried
    assert h.requests("recall") == []     # the queued press was dropped, never sent


def test_rating_keys_answer_busy_and_error_on_the_rating_led(hall_factory):
    h = hall_factory()
    h.issue("ho-tich")
    box = h.box
    h.press("next")
    h.press("finish")
    h.until(lambda: box.core.rating_light(h.mono.monotonic()) == "rating_open")
    # from here the hub is wedged (not stepped)
    h.press("next", settle=False)
    box.step(timeout=0)
    h.press("recall", settle=False)       # fills the one queue slot
    box.step(timeout=0)
    box.board.rating.pin.clear_states()
    h.press("rate-3", settle=False)       # nowhere to put it: busy, and the window stays open
    box.step(timeout=0)
    assert_played(box.board.rating, "busy", strict=(True,))
    assert box.core.rating_open(h.mono.monotonic())
    assert wait_for(lambda: box.core.in_flight is None, 3, step=lambda: box.step(timeout=0.02))
    box.board.rating.pin.clear_states()
    h.press("rate-3", settle=False)       # sent, but nobody answers
    box.step(timeout=0)
    assert box.core.in_flight is not None and box.core.in_flight.action == "rate"
    assert wait_for(lambda: box.core.in_flight is None, 3, step=lambda: box.step(timeout=0.02))
    assert_played(box.board.rating, "error", strict=(True,))
    assert box.core.rating_open(h.mono.monotonic())   # the citizen may try again


def test_sim_press_drives_the_mock_pins(hall_factory):
    h = hall_factory()
    h.issue("ho-tich")
    tech = h.dispenser
    tech.publish(T.sim_press("counter-1"), SimPress(button="next"))
    h.until(lambda: len(h.events("called")) == 1)
    assert h.box.board.keys["next"].stats.accepted == 1   # through the pin, not around it


def test_a_technician_pushes_a_new_key_map(hall_factory):
    h = hall_factory()
    h.issue("ho-tich")
    box = h.box
    keys = [k.model_dump(mode="json") for k in box.box.keys]
    keys[0] = {"name": "goi", "pin": 5, "short": "next"}   # rename the Next key
    push = ConfigSet(request_id=new_request_id(), source="tech-1",
                     config={"keys": keys, "pause_reasons": ["Họp giao ban"]})
    h.dispenser.publish(T.config_set("counter-1"), push)
    h.until(lambda: "goi" in box.board.keys)
    assert box.node_config.rev == 1 and box.core.config.pause_reasons == ("Họp giao ban",)
    # the new state is published before the ack: whoever acts on the ack already holds the state
    h.until(lambda: bool(h.broker.messages(T.config_ack("counter-1"))))
    order = [t for t, _ in h.broker.messages("#") if t == T.config_state("counter-1")
             or t == T.config_ack("counter-1")]
    assert order[-2:] == [T.config_state("counter-1"), T.config_ack("counter-1")]
    h.press("goi")
    h.until(lambda: len(h.events("called")) == 1)
    h.press("pause")
    h.until(lambda: box.core.paused)
    assert h.requests("pause")[-1]["reason"] == "Họp giao ban"


def test_a_key_map_the_board_cannot_claim_is_refused_and_the_old_keys_still_work(hall_factory):
    """A pin gpiozero refuses (GPIO99) is found only when the board claims it: the old board was
    already closed, so the box stayed deaf — no key, no light — while the answer said nothing had
    changed. Now the old key map is claimed again and the box answers the next press."""
    h = hall_factory()
    h.issue("ho-tich")
    box = h.box
    before = sorted(box.board.keys)
    keys = [k.model_dump(mode="json") for k in box.box.keys]
    keys[0] = {**keys[0], "name": "goi", "pin": "GPIO99"}
    push = ConfigSet(request_id=new_request_id(), source="tech-1", config={"keys": keys})
    h.dispenser.publish(T.config_set("counter-1"), push)
    h.until(lambda: bool(h.broker.messages(T.config_ack("counter-1"))))
    ack = json.loads(h.broker.messages(T.config_ack("counter-1"))[-1][1])
    assert ack["status"] == "rejected" and ack["errors"][0].startswith("áp dụng không được / apply failed: "), ack
    assert "GPIO99" in ack["errors"][0]
    assert sorted(box.board.keys) == before and all(k.name != "goi" for k in box.core.config.keys)
    assert box.node_config.rev == 0
    h.press("next")
    h.until(lambda: len(h.events("called")) == 1)
    assert box.board.keys["next"].stats.accepted == 1  # through the old pin


def test_a_pushed_service_the_site_does_not_have_is_refused(hall_factory):
    """transfer_to = ["khong-co"] was applied: the transfer key stepped to a service the hub then
    refused at every press."""
    h = hall_factory()
    box = h.box
    keys = [k.model_dump(mode="json") for k in box.box.keys] + [{"name": "t9", "pin": 24, "short": "transfer:khong-co"}]
    push = ConfigSet(request_id=new_request_id(), source="tech-1",
                     config={"transfer_to": ["dat-dai", "khong-co"], "services": ["ho-tich", "khong-co"],
                             "keys": keys})
    h.dispenser.publish(T.config_set("counter-1"), push)
    h.until(lambda: bool(h.broker.messages(T.config_ack("counter-1"))))
    ack = json.loads(h.broker.messages(T.config_ack("counter-1"))[-1][1])
    assert ack["status"] == "rejected" and len(ack["errors"]) == 3, ack
    assert [e.split(":", 1)[0] for e in ack["errors"]] == ["services", "transfer_to", "keys.t9"]
    assert "trung tâm không có lĩnh vực 'khong-co'" in ack["errors"][0]
    assert box.node_config.rev == 0 and "t9" not in box.board.keys
    # … beside a field error too: every mistake at once (the services were said only once it was fixed)
    push = ConfigSet(request_id=new_request_id(), source="tech-1",
                     config={"rating_scale": 4, "services": ["dat-da"], "transfer_to": ["ho-tic"]})
    h.dispenser.publish(T.config_set("counter-1"), push)
    h.until(lambda: len(h.broker.messages(T.config_ack("counter-1"))) == 2)
    ack = json.loads(h.broker.messages(T.config_ack("counter-1"))[-1][1])
    assert [e.split(":", 1)[0].split(" = ")[0] for e in ack["errors"]] == ["rating_scale", "services", "transfer_to"], ack
