"""A counter screen pushed for a counter the centre does not have is refused (a typo of 9 for 3 was
applied, "đã áp dụng", and the TV showed "Quầy 9 —" for good)."""

from __future__ import annotations

from tests.displayd import test_display_daemon as daemon_tests
from tests.displayd.test_attack_review_board import push
from tests.displayd.test_display_daemon import Hall, hall_state, pump

display = daemon_tests.display  # the board daemon on the fake bus, with the example site (counters 1-4)


def test_a_counter_screen_of_no_counter_is_refused_and_a_real_one_applies(display, fake_broker, tmp_path):
    hall = Hall(fake_broker, tmp_path)
    hall.state(hall_state(rev=10))
    d = display()
    assert pump(d, lambda: d.model.rev == 10)
    ack = push(hall, fake_broker, d, {"layout": "counter", "counter": 9})
    assert ack.status == "rejected" and "the centre has no counter 9 (it has 1, 2, 3, 4)" in ack.errors[0]
    assert d.node_config.rev == 0 and d.board_config.layout == "hall"
    ack = push(hall, fake_broker, d, {"layout": "counter", "counter": 3})
    assert ack.status == "applied" and d.board_config.counter == 3
