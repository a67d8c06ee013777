"""A box's counter number is its identity: the hub and the broker let counter-N act for counter N only.

Before: ``counterd --check`` passed ``node = "counter-3"`` with ``number = 7`` (and a number the site has
no counter for); it was found at the officer's first press ("forbidden", a critical alert). A push of
another number was applied and asked for a restart, after which the box's password was not its node's."""

from __future__ import annotations

import pytest

from counterd.main import CounterDaemon
from tests.counterd.conftest import SITE, T
from xephang.contract import ConfigAck, ConfigSet, decode, new_request_id
from xephang.exits import DAEMON_CONFIG as EXIT_CONFIG


@pytest.mark.parametrize(("node", "number", "said"), [
    ("counter-3", 7, "counter-3 may act for counter 3 only"),
    ("quay-ba", 3, "a call box's node must be counter-N"),
    ("counter-9", 9, "the site file has no counter 9"),
])
def test_check_finds_a_number_the_box_cannot_act_for(tmp_path, site_file, capsys, node, number, said):
    cfg = tmp_path / "counterd.toml"
    cfg.write_text(f'site = "{SITE}"\nnode = "{node}"\nsim = true\nsite_file = "{site_file}"\n'
                   f'state_dir = "{tmp_path / "state"}"\n[counter]\nnumber = {number}\n')
    assert CounterDaemon.main(["--config", str(cfg), "--check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_check_passes_a_box_whose_number_is_its_node(tmp_path, site_file, capsys):
    cfg = tmp_path / "counterd.toml"
    cfg.write_text(f'site = "{SITE}"\nsim = true\nsite_file = "{site_file}"\nstate_dir = "{tmp_path / "state"}"\n'
                   "[counter]\nnumber = 3\n")
    assert CounterDaemon.main(["--config", str(cfg), "--check"]) == 0
    assert "settings OK" in capsys.readouterr().out


def test_a_push_of_another_number_is_refused_and_the_box_goes_on(hall_factory):
    h = hall_factory()
    box = h.box
    h.dispenser.publish(T.config_set("counter-1"), ConfigSet(request_id=new_request_id(), source="tech-1",
                                                             config={"number": 2}))
    h.until(lambda: bool(h.broker.messages(T.config_ack("counter-1"))))
    ack = decode(ConfigAck, h.broker.messages(T.config_ack("counter-1"))[-1][1])
    assert ack.status == "rejected" and "counter-1 may act for counter 1 only" in ack.errors[0]
    assert box.node_config.rev == 0 and box.box.number == 1
    h.issue("ho-tich", 1)
    h.press("next")
    h.until(lambda: len(h.events("called")) == 1)


def test_a_simulated_resume_of_an_open_counter_is_refused_not_a_pause(hall_factory):
    """``xephang press counter-1 resume`` pressed the pause toggle on an open counter: it paused it
    (and ended the citizen being served as inferred), and the tool said "pressed resume"."""
    from xephang.contract import BadPayload, SimPress

    h = hall_factory()
    box = h.box
    with pytest.raises(BadPayload, match="counter 1 is not paused"):
        box.on_sim_press(SimPress(button="resume"))
    h.settle()
    assert not box.core.paused and h.requests("pause") == []
    h.press("pause")
    h.until(lambda: box.core.paused)
    box.on_sim_press(SimPress(button="resume"))  # a paused counter: the toggle it presses resumes it
