"""Bad input on every topic the daemons read: nobody dies, the hub's books do not move, drops counted."""

from __future__ import annotations

import json

import pytest
import scenarios as S
from harness import Observer

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_fuzzing_every_topic_no_daemon_dies_books_unchanged_drops_counted(tmp_path):
    t, f = S.fuzz(tmp_path, cases=300, seed=3)
    assert all(f["alive"].values()), f["alive"]
    assert f["before"] == f["after"] and f["hall_same"]
    assert f["dropped_counted"]
    assert f["serving_after"]
    assert (t.lost, t.duplicates) == (0, 0)


def test_a_request_id_with_invalid_utf8_does_not_kill_the_hub(centre):
    centre.start("hub")
    obs = Observer(centre.bus("tech-obs"))
    assert obs.wait(lambda: obs.online("hub"), 20)
    body = json.dumps({"schema": "xephang.req.recall.v1", "request_id": "fuXXXzz000001", "source": "tech-fuzz",
                       "counter": 1}).encode().replace(b"XXX", b"\xed\xa0\x80")  # an encoded lone surrogate
    raw = centre.bus("tech-fuzz")._client
    assert raw is not None
    raw.publish(obs.bus.topics.req("recall"), body, qos=1)
    died = obs.wait(lambda: not centre.procs["hub"].alive(), 3)
    assert not died, f"hub exited with {centre.procs['hub'].popen.returncode}"
    assert obs.online("hub")


def test_a_request_with_a_boolean_for_the_counter_is_refused_not_acted_on(centre):
    from harness import Loader, read_ledger

    from xephang.contract import Reply, decode

    centre.start("hub")
    obs = Observer(centre.bus("tech-obs"))
    assert obs.wait(lambda: obs.online("hub"), 20)
    ld = Loader(centre.bus("tech-load"), [1], ["ho-tich"])
    ld.issue()
    assert obs.wait(ld.idle, 10, ld.bus)
    fuzz = centre.bus("tech-fuzz")
    replies: list[Reply] = []
    fuzz.subscribe(fuzz.reply_topic, lambda m: replies.append(decode(Reply, m.payload)))
    body = {"schema": "xephang.req.call-next.v1", "request_id": "fuzzbool0001", "source": "tech-fuzz",
            "reply_to": fuzz.reply_topic, "counter": True}
    fuzz.publish(fuzz.topics.req("call-next"), json.dumps(body).encode())
    assert obs.wait(lambda: bool(replies), 10, fuzz)
    obs.wait(lambda: False, 0.5)
    assert read_ledger(centre.ledger_path).by_state.get("called", 0) == 0
    assert replies[0].status == "error" and replies[0].error is not None and replies[0].error.code == "invalid"
