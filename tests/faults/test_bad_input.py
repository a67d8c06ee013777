"""Bad input on every topic the daemons read: nobody dies, the hub's books do not move, drops counted."""

from __future__ import annotations

import json

import pytest
import scenarios as S
from harness import Observer

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_fuzzing_every_topic_no_daemon_dies_books_unchanged_drops_counted(tmp_path):
    """2,000 hypothesis-made bad payloads on every topic a daemon reads, in one batch."""
    t, f = S.fuzz(tmp_path, cases=2000, seed=3)
    assert f["distinct"] >= 1500 and f["over_64k"] > 0
    assert all(f["alive"].values()), (f["alive"], f["dead_logs"])
    assert f["sessions_same"]  # nobody died and came back, nobody was knocked off the broker
    assert f["before"] == f["after"], t.notes  # ledger, board rev, WAVs, printed tickets, events
    assert f["retained_changed"] == []  # state, config states, statuses as a newcomer reads them
    assert f["all_acked"] and f["dropped_counted"], f["dropped"]
    assert f["dropped"]["hub"] >= f["requests"]  # every bad request counted (or answered and counted)
    assert f["serving_after"]
    assert (t.lost, t.duplicates) == (0, 0)


def test_a_deeply_nested_request_does_not_kill_the_hub(centre):
    """BUG (open, found by the hypothesis fuzz): 50 KB of ``[`` on a request topic stops hubd.

    ``xephang.contract.decode`` catches ``json.JSONDecodeError`` only; ``json.loads`` raises
    ``RecursionError`` on deep nesting, which escapes ``HubDaemon.handle_batch`` (it catches
    ``BadPayload``) and ends the daemon: one packet from any client on the Wi-Fi stops the hall.
    Fix: in ``decode`` catch ``RecursionError`` with the JSON error (``BadPayload("bad-json")``),
    and in ``hubd.main._peek`` catch it with ``ValueError``."""
    centre.start("hub")
    obs = Observer(centre.bus("tech-obs"))
    assert obs.wait(lambda: obs.online("hub") and "hub" in obs.health, 20)
    dropped = obs.health["hub"].dropped_messages
    raw = centre.bus("tech-fuzz")._client
    assert raw is not None
    raw.publish(obs.bus.topics.req("recall"), b"[" * 50_000, qos=1)
    counted = obs.wait(lambda: obs.health["hub"].dropped_messages > dropped or not centre.procs["hub"].alive(), 10)
    assert centre.procs["hub"].alive(), f"hub exited with {centre.procs['hub'].popen.returncode}"
    assert counted and obs.online("hub")


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
