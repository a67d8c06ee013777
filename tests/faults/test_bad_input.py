"""Bad input on every topic the daemons read: nobody dies, the hub's books do not move, drops counted."""

from __future__ import annotations

import json
import signal

import pytest

from xephang_faults import scenarios as S
from xephang_faults.harness import Observer

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
    # fields that become topics, file names, SQL and log lines were fuzzed too, and request topics
    assert f["hostile_fields"] >= 100 and f["hostile_topics"] >= 15
    # junk left retained on every topic a daemon reads, every daemon restarted into it
    assert f["retained_junk"] >= 40
    assert f["restarted_online"] and all(f["restarted_alive"].values()), (f["restarted_alive"], f["dead_logs"])
    assert f["books_after_junk"] and f["hall_state_restored"] and f["serving_after_junk"]
    assert f["retained_dropped"]["hub"].get("retained-command", 0) >= 1, f["retained_dropped"]
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
    from xephang.contract import Reply, decode
    from xephang_faults.harness import Loader, read_ledger

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


# ---------------------------------------------------------------------------------------------
# The five ways one board's password stopped the hub (issue 13): each guarded by a story here


def _raw_requester(centre, node: str = "tech-fuzz"):
    """A Bus for ``node`` collecting every reply on its own reply topic, plus its raw paho client."""
    from xephang.contract import Reply, decode

    b = centre.bus(node)
    replies: list[Reply] = []
    b.subscribe(b.reply_topic, lambda m: replies.append(decode(Reply, m.payload)))
    return b, replies


def test_finding1_a_resync_far_behind_gets_pages_that_fit_and_the_hub_lives(centre):
    """A resync from rev 0 after 160 tickets (over 64 KiB of events) used to make a reply the bus
    refused to send, and the exception ended hubd, on every restart. Now: pages that fit, ``more``
    until the last, every rev exactly once, the hub alive."""
    from xephang.contract import MAX_PAYLOAD_BYTES, Resync, new_request_id
    from xephang_faults.harness import Loader, read_ledger

    centre.start("hub")
    obs = Observer(centre.bus("tech-obs"))
    assert obs.wait(lambda: obs.online("hub"), 20)
    ld = Loader(centre.bus("tech-load"), [1], ["ho-tich", "dat-dai"])
    for _ in range(160):
        ld.issue()
    assert obs.wait(lambda: ld.idle() and ld.issue_errors == 0, 60, ld.bus)
    b, _ = _raw_requester(centre)
    sizes: list[int] = []
    b.subscribe(b.reply_topic, lambda m: sizes.append(len(m.payload)))
    got: list[int] = []
    first = read_ledger(centre.ledger_path).first_rev  # a new ledger starts after the hub's clock
    assert first > 1
    since, pages, more = 0, 0, True
    while more and pages < 20:
        r = b.request_sync(Resync(request_id=new_request_id(), source=b.node, since_rev=since), timeout_s=3)
        assert r is not None and r.status == "ok", r
        revs = [e["rev"] for e in r.data["events"]]
        start = max(since + 1, first)
        assert revs == list(range(start, start + len(revs)))  # in order, no gap, from where we asked
        got += revs
        more = r.data["more"]
        since = revs[-1] if revs else since
        pages += 1
    assert got == list(range(first, first + 160)) and pages >= 2  # all 160, in more than one page
    assert max(sizes) <= MAX_PAYLOAD_BYTES
    assert centre.procs["hub"].alive() and obs.online("hub")


@pytest.mark.parametrize("wildcard", ["+", "#"])
def test_finding2_a_wildcard_reply_to_even_retained_does_not_kill_the_hub(centre, wildcard):
    """``reply_to`` ending in ``reply/+`` made paho raise inside the hub (exit 1); sent retained it
    killed every restart. Now the contract refuses it (the asker gets ``invalid`` on its own reply
    topic), a retained request is never executed, and the hub restarts into it."""
    centre.start("hub")
    obs = Observer(centre.bus("tech-obs"))
    assert obs.wait(lambda: obs.online("hub") and "hub" in obs.health, 20)
    b, replies = _raw_requester(centre)
    body = json.dumps({"schema": "xephang.req.resync.v1", "request_id": f"wild{ord(wildcard):04d}xx",
                       "source": "tech-fuzz", "reply_to": f"{b.topics.root}/reply/{wildcard}"}).encode()
    assert b._client is not None
    b._client.publish(b.topics.req("resync", "tech-fuzz"), body, qos=1, retain=True)
    assert obs.wait(lambda: bool(replies), 10, b)
    assert replies[0].status == "error" and replies[0].error is not None and replies[0].error.code == "invalid"
    assert "reply_to" in replies[0].error.message
    before = obs.status["hub"].session
    centre.kill("hub", signal.SIGTERM)
    centre.start("hub")  # the retained request comes back on the hub's subscribe
    assert obs.wait(lambda: obs.online("hub") and obs.status["hub"].session > before
                    and obs.health["hub"].dropped_by_code.get("retained-command", 0) >= 1, 20)
    beat = obs.health["hub"].at
    assert obs.wait(lambda: obs.health["hub"].at > beat, 5) and centre.procs["hub"].alive()
    b._client.publish(b.topics.req("resync", "tech-fuzz"), b"", qos=1, retain=True)


def test_finding3_a_nul_in_reply_to_does_not_silence_the_hub(centre):
    """A NUL in ``reply_to`` got the hub's connection dropped by the broker, and paho re-sent the
    stuck publish on every reconnect: alive but deaf. Now refused at the edge; the hub keeps its
    one connection and answers the next request."""
    from xephang.contract import Resync, new_request_id

    centre.start("hub")
    obs = Observer(centre.bus("tech-obs"))
    assert obs.wait(lambda: obs.online("hub"), 20)
    session = obs.status["hub"].session
    b, replies = _raw_requester(centre)
    for bad in ("\u0000", "a\u0000b", "\u0000/x"):
        body = json.dumps({"schema": "xephang.req.resync.v1", "request_id": "nulreply01",
                           "source": "tech-fuzz", "reply_to": f"{b.topics.root}/reply/{bad}"}).encode()
        b._client.publish(b.topics.req("resync", "tech-fuzz"), body, qos=1)
    assert obs.wait(lambda: len(replies) >= 3, 10, b)
    assert all(r.error is not None and r.error.code == "invalid" for r in replies[:3])
    r = b.request_sync(Resync(request_id=new_request_id(), source="tech-fuzz"), timeout_s=3)
    assert r is not None and r.status == "ok"  # still answering
    assert obs.status["hub"].session == session and obs.online("hub")  # never knocked off


def test_finding5_a_resync_under_another_name_is_refused_like_any_action(centre):
    """``resync`` skipped the sender check; now the topic's sender is checked before any action."""
    from xephang.contract import Resync, new_request_id

    centre.start("hub")
    obs = Observer(centre.bus("tech-obs"))
    assert obs.wait(lambda: obs.online("hub"), 20)
    b, replies = _raw_requester(centre, "tech-load")
    forged = Resync(request_id=new_request_id(), source="counter-2", since_rev=0)
    b.publish(b.topics.req("resync", "tech-load"), forged)  # tech-load's topic, counter-2's name
    assert obs.wait(lambda: bool(replies), 10, b)
    assert replies[0].status == "error" and replies[0].error is not None and replies[0].error.code == "forbidden"
    assert "hall" not in replies[0].data
