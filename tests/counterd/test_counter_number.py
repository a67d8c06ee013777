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


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """``CounterDaemon.main`` sets the root logger up on this test's captured stderr (a daemon's own
    logging): put it back, or every later log line goes to a closed file ("--- Logging error ---" on
    another test's stderr)."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _toml(tmp_path, site_file, number: int, node: str | None = None) -> str:
    cfg = tmp_path / "counterd.toml"
    cfg.write_text(f'site = "{SITE}"\n' + (f'node = "{node}"\n' if node else "") + f'sim = true\nsite_file = "{site_file}"\n'
                   f'state_dir = "{tmp_path / "state"}"\n[counter]\nnumber = {number}\n')
    return str(cfg)


@pytest.mark.parametrize(("node", "number"), [("counter-3", 7), ("quay-ba", 3), ("counter-03", 3)])
def test_check_finds_a_number_the_box_cannot_act_for(tmp_path, site_file, capsys, node, number):
    assert CounterDaemon.main(["--config", _toml(tmp_path, site_file, number, node), "--check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{node} may act only for the counter its node names" in err and f"counter-{number} act for" in err
    assert "Traceback" not in err


def test_check_passes_a_box_whose_number_is_its_node(tmp_path, site_file, capsys):
    assert CounterDaemon.main(["--config", _toml(tmp_path, site_file, 3), "--check"]) == 0
    assert "settings OK" in capsys.readouterr().out


def test_a_number_the_boxs_site_file_lacks_is_only_a_warning(tmp_path, site_file, capsys):
    """The box's copy of the site file may be older than the hub's (a counter added with a push): the hub
    decides, the box starts (its site file is optional)."""
    assert CounterDaemon.main(["--config", _toml(tmp_path, site_file, 9), "--check"]) == 0
    assert "counter 9 is not in this box's site file" in capsys.readouterr().err


def test_a_saved_push_of_another_number_is_named_and_the_box_still_starts(tmp_path, site_file, capsys):
    """A box that took a push of another number under the old rule (restart-required) keeps it in its
    state folder: --check names that file; a start stays up with a critical alert (it did not start at
    all, and no push could reach it)."""
    import json

    from counterd.config import BoxConfig
    from counterd.main import CONFIG_ALERT, CounterdSettings
    from xephang.testing import FakeBroker, FakeBus

    state = tmp_path / "state"
    state.mkdir()
    saved = state / "counter-3.config.json"
    saved.write_text(json.dumps({"rev": 2, "config": BoxConfig(number=7).model_dump(mode="json"), "origin": None}))
    assert CounterDaemon.main(["--config", _toml(tmp_path, site_file, 3), "--check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"from the pushed config rev 2 in {saved}" in err and "Traceback" not in err
    s = CounterdSettings(site=SITE, site_file=site_file, state_dir=state, sim=True, counter={"number": 3})
    box = CounterDaemon(s, bus=FakeBus(FakeBroker(), site=SITE, node="counter-3", role="counter", state_dir=state))
    try:
        assert box.node == "counter-3" and box.box.number == 7
        assert box.alerts[CONFIG_ALERT].severity == "critical"
    finally:
        box.board.close()


def test_a_push_of_another_number_is_refused_and_the_box_goes_on(hall_factory):
    h = hall_factory()
    box = h.box
    h.dispenser.publish(T.config_set("counter-1"), ConfigSet(request_id=new_request_id(), source="tech-1",
                                                             config={"number": 2}))
    h.until(lambda: bool(h.broker.messages(T.config_ack("counter-1"))))
    ack = decode(ConfigAck, h.broker.messages(T.config_ack("counter-1"))[-1][1])
    assert ack.status == "rejected" and "counter-1 may act only for the counter its node names" in ack.errors[0]
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
    pressed: list[str] = []
    box.board.simulate_press = lambda button, hold_s=0.0: pressed.append(button) or True  # type: ignore[method-assign]
    box.on_sim_press(SimPress(button="resume"))  # a paused counter: not refused, its key is pressed …
    assert pressed == ["resume"]
    key, _ = box.board.resolve("resume", 0.0)
    h.press(key)  # … the pause toggle, which resumes it (pressed here on the test's clock)
    h.until(lambda: not box.core.paused)
