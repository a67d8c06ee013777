"""counterd against a real mosquitto and the real hub: the whole path, for real.

Each box runs its own owner loop in a thread (as under systemd); tests press keys either by
driving the mock pins or by publishing ``R/sim/{node}/press``, and watch the hub's events
on the broker like the hall display would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from counterd.main import CounterDaemon, CounterdSettings
from tests.counterd.conftest import SITE, T, assert_played, assert_steady, tech_bus, wait_for
from xephang.contract import ConfigSet, IssueTicket, SimPress, new_request_id
from xephang.settings import BrokerSettings

hubd_testing = pytest.importorskip("hubd.testing")
pytestmark = pytest.mark.broker

FAST = {"hold_s": 0.3, "double_press_s": 0.2}


@contextmanager
def running_box(port: int, state_dir: Path, site_file: Path, number: int = 1, **box) -> Iterator[CounterDaemon]:
    """A sim counter box on 127.0.0.1:``port``, its loop in a thread; stopped on exit."""
    state_dir.mkdir(parents=True, exist_ok=True)
    s = CounterdSettings(site=SITE, site_file=site_file, state_dir=state_dir, sim=True,
                         broker=BrokerSettings(port=port), request_timeout_s=0.5, request_attempts=2,
                         counter={"number": number, **FAST, **box})
    d = CounterDaemon(s)
    t = threading.Thread(target=d.run, name=f"counter-{number}", daemon=True)
    t.start()
    try:
        assert wait_for(lambda: d.board is not None, 10), "the box did not set up"
        yield d
    finally:
        d.stop_event.set()
        t.join(10)


class Watcher:
    """A technician's laptop on the broker: issues tickets as dispenser-1, records events."""

    def __init__(self, port: int) -> None:
        self.events: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.tech = tech_bus(port)
        self.tech.subscribe(T.all_events(), self._on_event)
        self.tech.start()
        self.dispenser = tech_bus(port, "dispenser-1")
        self.dispenser.start()
        assert self.tech.wait_connected(10) and self.dispenser.wait_connected(10)

    def _on_event(self, msg) -> None:
        event = json.loads(msg.payload)
        with self.lock:
            # a consumer as the contract defines one: a rev already seen is a redelivery (QoS 1
            # across a broker restart), not a second event
            if any(e.get("rev") == event.get("rev") for _, e in self.events):
                return
            self.events.append((msg.topic.rsplit("/", 1)[-1], event))

    def pump(self) -> None:
        self.tech.process(timeout=0.01)
        self.dispenser.process(timeout=0)

    def kinds(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for k, e in self.events if k == kind]

    def until(self, cond, timeout: float = 8.0) -> None:
        assert wait_for(cond, timeout, step=self.pump), "condition not reached"

    def issue(self, service: str, n: int = 1) -> None:
        for _ in range(n):
            r = self.dispenser.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1",
                                                        service=service), timeout_s=2)
            assert r is not None and r.status == "ok"

    def press(self, node: str, button: str, hold_s: float = 0.0) -> None:
        self.tech.publish(T.sim_press(node), SimPress(button=button, hold_s=hold_s))

    def close(self) -> None:
        self.tech.stop()
        self.dispenser.stop()


@pytest.fixture
def watcher(mosquitto):
    w = Watcher(mosquitto.port)
    yield w
    w.close()


def test_a_morning_at_counter_one_over_the_real_broker(mosquitto, watcher, tmp_path, site_file):
    w = watcher
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file), \
            running_box(mosquitto.port, tmp_path / "c1", site_file) as box:
        w.until(lambda: box.hub_online)
        w.issue("ho-tich", 3)
        w.press("counter-1", "next")
        w.until(lambda: len(w.kinds("called")) == 1)
        assert w.kinds("called")[0]["ticket"]["display"] == "1001"
        w.press("counter-1", "recall")
        w.until(lambda: len(w.kinds("recalled")) == 1)
        w.press("counter-1", "finish")
        w.until(lambda: len(w.kinds("finished")) == 1)
        w.until(lambda: box.core.rating_light(box._mono()) == "rating_open")
        assert_played(box.board.rating, "rating_open", strict=(True,))
        w.press("counter-1", "rate-4")
        w.until(lambda: len(w.kinds("rated")) == 1)
        assert w.kinds("rated")[0]["score"] == 4 and w.kinds("rated")[0]["ticket"]["display"] == "1001"
        w.press("counter-1", "next")
        w.until(lambda: len(w.kinds("called")) == 2)
        w.press("counter-1", "no-show")   # the recall key held (hold_s is added by the sim board)
        w.until(lambda: len(w.kinds("no-show")) == 1)
        assert w.kinds("no-show")[0]["ticket"]["display"] == "1002"
        w.press("counter-1", "next")
        w.until(lambda: len(w.kinds("called")) == 3)
        w.press("counter-1", "transfer")
        w.until(lambda: box.core.menu is not None)
        w.press("counter-1", "dat-dai")
        w.until(lambda: len(w.kinds("transferred")) == 1)
        assert w.kinds("transferred")[0]["ticket"]["service"] == "dat-dai"
        w.until(lambda: box.core.in_flight is None)
        box.board.status.pin.clear_states()      # only what the LED does from the pause on counts
        w.press("counter-1", "pause")
        w.until(lambda: box.core.paused)
        assert_played(box.board.status, "paused", cycles=2)
        w.press("counter-1", "resume")
        w.until(lambda: not box.core.paused and box.core.in_flight is None)
        health = box.health_details()
        assert health["hub_online"] is True and health["last_action"] in ("pause", "resume")
        assert health["last_ticket"] == "1003"


def test_double_press_on_the_pin_makes_one_call(mosquitto, watcher, tmp_path, site_file):
    w = watcher
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file), \
            running_box(mosquitto.port, tmp_path / "c1", site_file) as box:
        w.until(lambda: box.hub_online)
        w.issue("ho-tich", 3)
        pin = box.board.keys["next"].pin
        for _ in range(3):  # a bounce train well inside the debounce/double-press window
            pin.drive_low()
            pin.drive_high()
        w.until(lambda: len(w.kinds("called")) == 1)
        w.until(lambda: box.core.in_flight is None)
        wait_for(lambda: False, 0.3, step=w.pump)  # anything more would have come by now
        assert len(w.kinds("called")) == 1


def test_two_boxes_press_next_at_once_and_call_different_citizens(mosquitto, watcher, tmp_path, site_file):
    w = watcher
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file), \
            running_box(mosquitto.port, tmp_path / "c1", site_file, 1) as b1, \
            running_box(mosquitto.port, tmp_path / "c2", site_file, 2) as b2:
        w.until(lambda: b1.hub_online and b2.hub_online)
        w.issue("ho-tich", 2)
        p1, p2 = b1.board.keys["next"].pin, b2.board.keys["next"].pin
        p1.drive_low()
        p2.drive_low()
        p1.drive_high()
        p2.drive_high()
        w.until(lambda: len(w.kinds("called")) == 2)
        called = {e["counter"]: e["ticket"]["display"] for e in w.kinds("called")}
        assert sorted(called.values()) == ["1001", "1002"] and set(called) == {1, 2}
        w.until(lambda: b1.core.serving is not None and b2.core.serving is not None)
        assert b1.core.serving.display == called[1] and b2.core.serving.display == called[2]


def test_hub_down_and_back_no_replay(mosquitto, watcher, tmp_path, site_file):
    w = watcher
    with running_box(mosquitto.port, tmp_path / "c1", site_file) as box:
        with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file):
            w.until(lambda: box.hub_online)
            w.issue("ho-tich", 2)
        w.until(lambda: not box.hub_online)       # the hub said goodbye (retained offline)
        assert_played(box.board.status, "hub_offline")
        box.board.buzzer.pin.clear_states()
        w.press("counter-1", "next")
        w.until(lambda: box.core.stats.hub_offline == 1)
        assert_played(box.board.buzzer, "hub_offline", strict=(True,))
        assert box.core.in_flight is None and box.core.queued is None
        with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file):
            w.until(lambda: box.hub_online)
            wait_for(lambda: False, 0.5, step=w.pump)
            assert w.kinds("called") == []           # the press made while offline is gone
            w.press("counter-1", "next")             # usable at once
            w.until(lambda: len(w.kinds("called")) == 1)
            assert w.kinds("called")[0]["ticket"]["display"] == "1001"


def test_every_status_pattern_from_the_pins(mosquitto, watcher, tmp_path, site_file):
    """ready, accepted, error, queue_empty, suggest_no_show, choose-N on the status LED."""
    w = watcher
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file), \
            running_box(mosquitto.port, tmp_path / "c1", site_file, recalls_before_no_show=1) as box:
        st = box.board.status
        w.until(lambda: box.hub_online)
        assert_steady(st, "ready")               # on, and nothing else, for longer than any blink
        st.pin.clear_states()
        w.press("counter-1", "next")             # nobody waiting
        w.until(lambda: box.core.last_result == "queue-empty")
        assert_played(st, "queue_empty")
        st.pin.clear_states()
        w.press("counter-1", "recall")           # nobody served: the hub refuses
        w.until(lambda: box.core.last_result == "not-serving")
        assert_played(st, "error")
        w.issue("ho-tich")
        st.pin.clear_states()
        w.press("counter-1", "next")
        w.until(lambda: len(w.kinds("called")) == 1)
        assert_played(st, "accepted")
        assert_steady(st, "ready")               # serving, nothing to suggest: back to steady
        st.pin.clear_states()
        w.press("counter-1", "recall")
        w.until(lambda: box.core.status_light(box._mono()) == "suggest_no_show")
        assert_played(st, "suggest_no_show")
        st.pin.clear_states()
        w.press("counter-1", "pause", hold_s=0.5)  # long: the reason menu
        w.until(lambda: box.core.menu is not None)
        assert_played(st, "choose-1")


def test_the_box_losing_its_broker_link_says_so_and_replays_nothing(mosquitto, watcher, tmp_path, site_file):
    w = watcher
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file), \
            running_box(mosquitto.port, tmp_path / "c1", site_file) as box:
        w.until(lambda: box.hub_online)
        w.issue("ho-tich", 2)
        w.press("counter-1", "next")
        w.until(lambda: len(w.kinds("called")) == 1 and box.core.in_flight is None)
        sent = len(box.sent)
        box.board.buzzer.pin.clear_states()
        mosquitto.stop()                          # the broker goes away: the box's own link is down
        assert wait_for(lambda: not box.hub_online and not box.bus.connected.is_set(), 10)
        assert_played(box.board.status, "hub_offline", strict=(True,), cycles=2)
        for key in ("recall", "finish", "next"):  # pressed on the pins: answered, forgotten
            box.board.simulate_press(key, 0.1)
        assert wait_for(lambda: box.core.stats.hub_offline == 3, 5)
        assert_played(box.board.buzzer, "hub_offline", strict=(True,))
        assert box.core.in_flight is None and box.core.queued is None and len(box.sent) == sent
        mosquitto.start()                         # the link comes back
        w.until(lambda: box.hub_online and w.tech.connected.is_set(), timeout=20)
        wait_for(lambda: False, 0.5, step=w.pump)  # a replay would have reached the hub by now
        assert len(box.sent) == sent and len(w.kinds("called")) == 1 and w.kinds("recalled") == []
        w.press("counter-1", "next")              # usable at once: 1001 finished (inferred), 1002 called
        w.until(lambda: len(w.kinds("called")) == 2)
        assert w.kinds("called")[1]["ticket"]["display"] == "1002"


def test_a_technician_pushes_a_key_map_over_the_broker(mosquitto, watcher, tmp_path, site_file):
    w = watcher
    acks: list[dict] = []
    w.tech.subscribe(T.config_ack("counter-1"), lambda m: acks.append(json.loads(m.payload)))
    with hubd_testing.running_hub(mosquitto.port, tmp_path / "hub", site_file), \
            running_box(mosquitto.port, tmp_path / "c1", site_file) as box:
        w.until(lambda: box.hub_online)
        w.issue("ho-tich", 2)
        keys = [k.model_dump(mode="json") for k in box.box.keys]
        keys[0] = {"name": "goi", "pin": 5, "short": "next"}   # the Next key renamed
        push = ConfigSet(request_id=new_request_id(), source="tech-1",
                         config={"keys": keys, "pause_reasons": ["Họp giao ban"]})
        w.tech.publish(T.config_set("counter-1"), push)
        w.until(lambda: any(a["request_id"] == push.request_id for a in acks))
        ack = next(a for a in acks if a["request_id"] == push.request_id)
        assert ack["status"] == "applied" and ack["rev"] == 1
        w.until(lambda: "goi" in box.board.keys and "next" not in box.board.keys)
        pin = box.board.keys["goi"].pin           # the new key map is live on the pins
        pin.drive_low()
        pin.drive_high()
        w.until(lambda: len(w.kinds("called")) == 1)
        w.until(lambda: box.core.in_flight is None)
        w.press("counter-1", "pause")
        w.until(lambda: box.core.paused)
        assert box.core.pause_reason == "Họp giao ban"
        # a push the box cannot take (a sixth rating key on a 5-point site's action set) is refused
        bad = ConfigSet(request_id=new_request_id(), source="tech-1", config={"keys": [
            *keys, {"name": "extra", "pin": 4, "short": "rate-6"}]})
        w.tech.publish(T.config_set("counter-1"), bad)
        w.until(lambda: any(a["request_id"] == bad.request_id for a in acks))
        assert next(a for a in acks if a["request_id"] == bad.request_id)["status"] == "rejected"
        assert box.node_config.rev == 1 and "extra" not in box.board.keys
