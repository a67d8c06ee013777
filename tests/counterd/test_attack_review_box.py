"""The counter box against requests it cannot send: a technician's push (or a stolen technician
laptop) with a pause reason or transfer target the contract refuses, and a service id in the
hub's state that is no slug.

Before: the push was applied; the first Pause (or Transfer) built a request the contract refused,
the ValidationError escaped the press handler, and the request stayed "in flight" for ever: every
later press of the officer was "busy" or queued behind it (Next included) until a restart."""

from __future__ import annotations

import json

import pytest

from tests.counterd.conftest import T, assert_played
from xephang.contract import ConfigAck, ConfigSet, ServiceState, decode, new_request_id

PUSHES = {
    "a reason longer than the hub takes": {"pause_reasons": ["Nghỉ " * 20]},
    "a reason on two lines": {"pause_reasons": ["Họp\nchi bộ"]},
    "a reason turned around": {"pause_reasons": ["\u202eHọp"]},
    "a transfer target that is no service id": {"transfer_to": ["Đất đai"]},
}


@pytest.mark.parametrize("config", PUSHES.values(), ids=PUSHES.keys())
def test_a_pushed_reason_or_target_the_hub_would_refuse_is_refused_and_the_box_pauses_as_before(hall_factory, config):
    h = hall_factory()
    box = h.box
    h.dispenser.publish(T.config_set("counter-1"), ConfigSet(request_id=new_request_id(), source="tech-1",
                                                             config=config))
    h.until(lambda: bool(h.broker.messages(T.config_ack("counter-1"))))
    ack = decode(ConfigAck, h.broker.messages(T.config_ack("counter-1"))[-1][1])
    assert ack.status == "rejected" and ack.errors and box.node_config.rev == 0
    h.press("pause")
    h.until(lambda: box.core.paused)
    assert json.loads(h.broker.messages(T.event("counter", "paused"))[-1][1])["reason"] == "Nghỉ giải lao"
    assert box.core.in_flight is None


def test_a_service_id_from_the_hub_that_is_no_slug_flashes_an_error_and_leaves_the_box_free(hall_factory):
    h = hall_factory()
    h.issue("ho-tich", 2)
    box = h.box
    odd = ServiceState(id="Dịch vụ mới", name_vi="Dịch vụ mới", waiting=1, rev=1)
    h.dispenser.publish(T.state_service("dich-vu-moi"), odd, retain=True)  # as a confused hub would
    h.until(lambda: "Dịch vụ mới" in box.core.site_services)
    h.press("next")
    h.until(lambda: len(h.events("called")) == 1)
    h.press("transfer")  # option 1: dat-dai, then chung-thuc, van-hoa-xa-hoi, the odd one
    for _ in range(3):
        h.press("transfer")
    assert box.core.status_light(h.mono.monotonic()) == "choose-4"
    box.board.status.pin.clear_states()
    h.press("transfer", hold_s=1.2)  # confirm
    h.settle(20)
    assert box.core.in_flight is None and box.core.last_result == "unsendable"
    assert_played(box.board.status, "error")
    assert not h.requests("transfer")  # nothing left the box
    h.press("next")  # the officer goes on
    h.until(lambda: len(h.events("called")) == 2)
