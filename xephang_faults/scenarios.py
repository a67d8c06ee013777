"""The fault scenarios, sized by arguments: short in tests/faults/, long in bench/faults.py.

Each returns a :class:`harness.Tally` (operations, faults injected, tickets lost, duplicates,
recovery times) and a dict of extra facts the tests assert on. Nothing here asserts: the
tests do, and the bench prints every line as it is.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

from xephang.bus import Bus
from xephang.contract import ALERT_IDS, NodeStatus, SimPress
from xephang_faults.harness import Centre, Loader, Observer, Tally, account, read_ledger
from xephang_faults.relay import Relay

ALL_NODES = ["hub", "dispenser-1", "counter-1", "display-hall", "announcer-hall"]
LOAD_COUNTERS = [2, 3, 4]  # counter-1 is a counterd process; the loader acts for the others
SERVICES = ["ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi"]


def wav_duplicates(c: Centre) -> tuple[int, int]:
    """(announcements, announcements of a ticket already announced) — no recalls are sent."""
    labels = [p.stem.split("-", 1)[1] for p in c.wavs()]
    return len(labels), len(labels) - len(set(labels))


def sessions(obs: Observer, nodes: list[str]) -> dict[str, int]:
    return {n: obs.status[n].session if n in obs.status else -1 for n in nodes}


def back_online(obs: Observer, before: dict[str, int]) -> bool:
    """Every node online again on a newer session than ``before``."""
    return all(n in obs.status and obs.status[n].online and obs.status[n].session > s for n, s in before.items())


_probes = iter(range(1, 1_000_000))


def probe_bus(c: Centre) -> Bus:
    """A newcomer with a session of its own (a reused id would first get its old queued messages)."""
    return c.bus("tech-fuzz") if c.secured else c.bus(f"tech-probe-{next(_probes)}")


def retained_hall_rev(c: Centre) -> int | None:
    """The hub's retained hall state as a newcomer sees it (a board that just booted)."""
    b = probe_bus(c)
    box: list[int] = []
    b.subscribe(b.topics.state_hall(), lambda m: box.append(json.loads(m.payload)["rev"]) if m.payload else None)
    end = time.monotonic() + 5
    while not box and time.monotonic() < end:
        b.process(timeout=0.05)
    b.stop(0.5)
    c.buses.remove(b)
    return box[-1] if box else None


def _wait_idle(obs: Observer, ld: Loader, timeout: float) -> bool:
    return obs.wait(ld.idle, timeout, ld.bus)


# ---------------------------------------------------------------------------------------------


def broker_restart(root: Path, *, persistence: bool, restarts: int, ops: int) -> tuple[Tally, dict[str, Any]]:
    """All daemons busy; the broker is killed (-9) and restarted ``restarts`` times."""
    t = Tally(f"broker kill+restart ({'persist' if persistence else 'no persist'})")
    facts: dict[str, Any] = {}
    with Centre(root, persistence=persistence) as c:
        for n in ALL_NODES:
            c.start(n)
        obs = Observer(c.bus("tech-obs"))
        ld = Loader(c.bus("tech-load"), LOAD_COUNTERS, SERVICES)
        assert obs.wait(lambda: all(obs.online(n) for n in ALL_NODES), 30), "centre did not start"
        presses = 0
        for _ in range(restarts):
            for i in range(ops):
                (ld.issue if i % 2 == 0 else ld.call)()
            obs.bus.publish(obs.bus.topics.sim_press("dispenser-1"), SimPress(button="ho-tich"))
            obs.bus.publish(obs.bus.topics.sim_press("counter-1"), SimPress(button="next"))
            presses += 1
            obs.wait(lambda: False, 0.2, ld.bus)  # in the middle of the busy period
            before = sessions(obs, [*ALL_NODES, "tech-obs"])
            c.broker.kill()
            t.faults += 1
            c.broker.start()
            up = time.monotonic()
            if obs.wait(lambda b=before: back_online(obs, b), 15, ld.bus):
                t.recoveries.append(time.monotonic() - up)
            else:
                t.recoveries.append(float("inf"))
                t.notes.append(f"not back: {[n for n in before if not obs.online(n)]}")
            obs.wait(lambda: False, 0.3, ld.bus)
        _wait_idle(obs, ld, 60)
        obs.wait(lambda: False, 1.0)  # the last events and state
        books = read_ledger(c.ledger_path)
        obs.repair(books.max_rev, books.first_rev)
        t.operations = ld.sent + 2 * presses
        account(books, obs, ld, t, other_issues=presses)
        n_wav, dup_wav = wav_duplicates(c)
        t.duplicates += dup_wav
        facts.update(books=books, wavs=n_wav, repaired=obs.repaired, gave_up=ld.gave_up,
                     hall_rev=retained_hall_rev(c), alive={n: c.procs[n].alive() for n in ALL_NODES},
                     redelivered=obs.redelivered)
        t.notes.append(f"events repaired by resync {obs.repaired}, QoS1 redeliveries {obs.redelivered}")
    return t, facts


def hub_kills(root: Path, *, kills: int, seed: int = 1) -> tuple[Tally, dict[str, Any]]:
    """``kill -9`` of the hub at random points of a busy run; the boxes retry with the same ids."""
    rnd = random.Random(seed)
    t = Tally("hub kill -9 at random points")
    facts: dict[str, Any] = {}
    with Centre(root) as c:
        c.start("hub")
        obs = Observer(c.bus("tech-obs"))
        ld = Loader(c.bus("tech-load"), LOAD_COUNTERS, SERVICES, timeout_s=0.5, attempts=60)
        assert obs.wait(lambda: obs.online("hub"), 20)
        for _ in range(kills):
            for _i in range(rnd.randint(2, 8)):
                (ld.issue if rnd.random() < 0.55 else ld.call)()
            obs.wait(lambda: False, rnd.uniform(0.0, 0.4), ld.bus)
            before = obs.status["hub"].session
            c.kill("hub", signal.SIGKILL)
            t.faults += 1
            c.start("hub")
            up = time.monotonic()
            if obs.wait(lambda b=before: obs.online("hub") and obs.status["hub"].session > b, 20, ld.bus):
                t.recoveries.append(time.monotonic() - up)
        _wait_idle(obs, ld, 90)
        obs.wait(lambda: False, 1.0)
        books = read_ledger(c.ledger_path)
        obs.repair(books.max_rev, books.first_rev)
        t.operations = ld.sent
        account(books, obs, ld, t)
        facts.update(books=books, repaired=obs.repaired, gave_up=ld.gave_up, redelivered=obs.redelivered)
        t.notes.append(f"events repaired by resync {obs.repaired}, QoS1 redeliveries {obs.redelivered}")
    return t, facts


WILL_KINDS = ("plain", "takeover", "bridged")


def _late_will(obs: Observer, node: str, old: int) -> tuple[bool, bool]:
    """(an offline status of session ``old`` came AFTER the first birth of a newer session,
    the last status is a birth of a newer session)."""
    mine = [s for _, s in obs.status_log if s.node == node]
    born = next((i for i, s in enumerate(mine) if s.online and s.session > old), None)
    if born is None:
        return False, False
    late = any(not s.online and s.session == old for s in mine[born + 1:])
    return late, mine[-1].online and mine[-1].session > old


def node_will(root: Path, *, rounds: int) -> tuple[Tally, dict[str, Any]]:
    """A node killed: its Will marks it offline; restarted on the same id it ends online, also
    when the old connection is still open (kill -9 behind a stalled link, restarted at once).

    Three kinds of round, in turn:

    - ``plain``: kill -9, the broker sees the socket close, the Will says offline; restart.
    - ``takeover``: the old link stalls in the relay, the box is killed and restarted on the
      same client id before the broker could notice (keepalive); then the old link is cut.
      Mosquitto hands the id to the new connection and, the session being persistent, drops
      the old Will (MQTT 5 §3.1.4): no late Will may appear, and the node is online.
    - ``bridged``: the same, but the old connection went to a second mosquitto bridged to the
      hall's (a satellite broker): that broker knows nothing of the new connection, so when
      the old link is cut its Will fires for real and reaches the hall AFTER the new birth.
      The node must out-vote it (a fresh birth) and end online.
    """
    from xephang_ops.mosquitto import Mosquitto, free_port

    t = Tally("node kill -9 / stale Will")
    facts: dict[str, Any] = {"offline_seen": 0, "ended_online": 0, "takeover_clean": 0, "late_will_rounds": 0,
                             "kinds": []}
    with Centre(root) as c:
        c.start("hub")
        obs = Observer(c.bus("tech-obs"))
        node = "counter-1"
        bridge = f"connection hall\naddress 127.0.0.1:{c.broker.port}\ntopic xephang/v1/tuong-linh/# both 1\n" \
                 "cleansession true\nremote_clientid satellite-bridge\n"
        satellite = Mosquitto(c.root / "mq-satellite", port=free_port(), persistence=False, extra_conf=bridge).start()
        try:
            for r in range(rounds):
                kind = WILL_KINDS[r % len(WILL_KINDS)]
                facts["kinds"].append(kind)
                relay = Relay(satellite.port if kind == "bridged" else c.broker.port).start()
                try:
                    c.start(node, port=None if kind == "plain" else relay.port)
                    assert obs.wait(lambda: obs.online(node), 20), f"counter did not come up ({kind})"
                    old = obs.status[node].session
                    t.operations += 1
                    if kind == "plain":
                        c.kill(node, signal.SIGKILL)
                        t.faults += 1
                        if obs.wait(lambda o=old: not obs.online(node) and obs.status[node].session == o, 10):
                            facts["offline_seen"] += 1
                        c.start(node)
                        up = time.monotonic()
                        if obs.wait(lambda o=old: obs.online(node) and obs.status[node].session > o, 20):
                            t.recoveries.append(time.monotonic() - up)
                    else:
                        relay.pause()  # the link stalls: the broker still holds a live-looking socket
                        c.kill(node, signal.SIGKILL)
                        c.start(node)  # the box reboots at once, on the hall's broker
                        up = time.monotonic()
                        t.faults += 2
                        if obs.wait(lambda o=old: _late_will(obs, node, o)[1], 20):
                            t.recoveries.append(time.monotonic() - up)
                        relay.cut()  # now the old connection dies
                        if kind == "bridged":
                            late = obs.wait(lambda o=old: _late_will(obs, node, o)[0], 10)
                            back = obs.wait(lambda o=old: all(_late_will(obs, node, o)), 10)
                            facts["late_will_rounds"] += int(late and back)
                        else:
                            obs.wait(lambda: False, 1.5)  # a late Will would show up here
                            facts["takeover_clean"] += int(_late_will(obs, node, old) == (False, True))
                finally:
                    relay.close()
                final = retained_status(c, node)
                facts.setdefault("log", []).append((kind, [(round(ts, 2), s.online, s.session) for ts, s in obs.status_log
                                                           if s.node == node][-6:], final))
                if final is not None and final.online and final.session > old:
                    facts["ended_online"] += 1
                else:
                    t.lost += 1  # a live node shown offline
                c.kill(node, signal.SIGTERM)
        finally:
            satellite.kill()
    return t, facts


def retained_status(c: Centre, node: str) -> NodeStatus | None:
    b = probe_bus(c)
    box: list[NodeStatus] = []
    b.subscribe(b.topics.status(node), lambda m: box.append(NodeStatus.model_validate_json(m.payload)) if m.payload else None)
    end = time.monotonic() + 3
    while not box and time.monotonic() < end:
        b.process(timeout=0.05)
    b.stop(0.5)
    c.buses.remove(b)
    return box[-1] if box else None


def partition(root: Path, *, rounds: int) -> tuple[Tally, dict[str, Any]]:
    """One box's link stalls (pausable relay): a request retried with the same id has one
    effect; a reply arriving after the box gave up is dropped."""
    t = Tally("partition of one node (relay)")
    facts: dict[str, Any] = {"late_dropped": 0, "one_effect": 0, "press_tickets": 0}
    with Centre(root) as c:
        c.start("hub")
        obs = Observer(c.bus("tech-obs"))
        assert obs.wait(lambda: obs.online("hub"), 20)
        with Relay(c.broker.port) as relay:
            box = c.bus("tech-load", port=relay.port)
            ld = Loader(box, LOAD_COUNTERS, SERVICES, timeout_s=0.4, attempts=3)
            give_ups = 0
            for r in range(rounds):
                # the link stalls just as the box sends: the request and its retries wait in the
                # relay; the hub gets them all at once when it heals
                relay.pause()
                t.faults += 1
                ld.issue()
                give_up = r % 2 == 0
                give_ups += give_up
                stall = 0.4 * 3 + 0.4 if give_up else 0.6  # past every retry, or within them
                obs.wait(lambda: False, stall, box)
                relay.resume()
                up = time.monotonic()
                obs.wait(lambda n=r + 1: ld.idle() and obs.kinds()["issued"] >= n, 5, box)
                t.recoveries.append(time.monotonic() - up)
                obs.wait(lambda: False, 0.3, box)  # the replies to the retries, late
            facts["give_up_rounds"] = give_ups
            facts["late_dropped"] = box.stats.late_replies
            facts["retries"] = box.stats.retries
            # the real dispenser behind the stalled link: presses made during the stall
            c.start("dispenser-1", port=relay.port)
            assert obs.wait(lambda: obs.online("dispenser-1"), 20)
            before = obs.kinds()["issued"]
            relay.pause()
            t.faults += 1
            for svc in ("ho-tich", "dat-dai", "chung-thuc"):  # three buttons: one ticket each
                obs.bus.publish(obs.bus.topics.sim_press("dispenser-1"), SimPress(button=svc))
            obs.wait(lambda: False, 1.5)
            relay.resume()
            obs.wait(lambda: obs.kinds()["issued"] >= before + 3, 15)
            obs.wait(lambda: False, 1.0)  # a fourth ticket would show up here
            facts["press_tickets"] = obs.kinds()["issued"] - before
            books = read_ledger(c.ledger_path)
            obs.repair(books.max_rev, books.first_rev)
            t.operations = ld.sent + 3
            account(books, obs, ld, t, other_issues=3)
            facts["books"] = books
            facts["gave_up"] = ld.gave_up
    return t, facts


def duplicates_reordered(root: Path, *, calls: int, seed: int = 2) -> tuple[Tally, dict[str, Any]]:
    """The board and the speaker get every event twice and out of order (a broker that
    redelivers, two paths): one call shown and said once, the board on the newest rev."""
    rnd = random.Random(seed)
    t = Tally("duplicate + reordered events")
    facts: dict[str, Any] = {}
    with Centre(root) as c:
        c.start("hub")
        c.start("display-hall")
        c.start("announcer-hall")
        obs = Observer(c.bus("tech-obs"))
        ld = Loader(c.bus("tech-load"), LOAD_COUNTERS, SERVICES)
        assert obs.wait(lambda: all(obs.online(n) for n in ("hub", "display-hall", "announcer-hall")), 30)
        for _ in range(calls):
            ld.issue()
        _wait_idle(obs, ld, 30)
        for _ in range(calls):
            ld.call()
        _wait_idle(obs, ld, 30)
        obs.wait(lambda: False, 1.0)
        called = [e for e in obs.revs.values() if e["kind"] == "called"]
        # replay the hub's own events: each one twice more, shuffled (forged as the hub would
        # send them: on this anonymous broker anyone may; the ACL stops that on a site)
        replay = [e for e in obs.revs.values() for _ in range(2)]
        rnd.shuffle(replay)
        pub = c.bus("tech-fuzz")
        for e in replay:
            pub.publish(pub.topics.event("ticket", e["kind"]), json.dumps(e).encode())
            t.faults += 1
        top = max(obs.revs)
        obs.wait(lambda: obs.health.get("display-hall") is not None
                 and obs.health["display-hall"].details.get("rev") == top, 10)
        # the speaker needs time to say them all: wait until it has written one WAV per call
        obs.wait(lambda: len(c.wavs()) >= len(called), 10 + 4 * len(called))
        obs.wait(lambda: False, 2.0)
        n_wav, dup_wav = wav_duplicates(c)
        t.operations = ld.sent + len(replay)
        t.duplicates += dup_wav
        said = {p.stem.split("-", 1)[1] for p in c.wavs()}
        want = {f"{e['ticket']['display']}-quay-{e['counter']}" for e in called}
        t.lost += len(want - said)
        dh = obs.health.get("display-hall")
        facts.update(wavs=n_wav, said=said, want=want, display=dh.details if dh else None, top=top,
                     announcer=obs.health["announcer-hall"].details if "announcer-hall" in obs.health else None)
        if dh is None or dh.details.get("rev") != top:
            t.notes.append(f"board rev {dh.details.get('rev') if dh else None} != {top}")
            t.lost += 1
    return t, facts


# ---------------------------------------------------------------------------------------------
# Bad input


def hub_fingerprint(c: Centre) -> tuple[Any, ...]:
    b = read_ledger(c.ledger_path)
    return (b.tickets, tuple(sorted(b.by_state.items())), b.max_rev, b.outbox)


def retained_snapshot(c: Centre, quiet_s: float = 0.5) -> dict[str, Any]:
    """What a newcomer reads as retained: state (as published), config states and every node's
    (online, session)."""
    b = probe_bus(c)
    root = b.topics.root
    got: dict[str, Any] = {}
    last = [time.monotonic()]

    def keep(m: Any) -> None:
        if not m.retain:
            return
        last[0] = time.monotonic()
        if m.topic.endswith("/status"):
            st = NodeStatus.model_validate_json(m.payload) if m.payload else None
            got[m.topic] = (st.online, st.session) if st else None
        else:
            got[m.topic] = m.payload

    for flt in (f"{root}/state/#", f"{root}/config/+/state", f"{root}/node/+/status"):
        b.subscribe(flt, keep)
    end = time.monotonic() + 5
    while time.monotonic() < end and (not got or time.monotonic() - last[0] < quiet_s):
        b.process(timeout=0.05)
    b.stop(0.5)
    c.buses.remove(b)
    return {k: v for k, v in got.items() if "tech-" not in k}


def fuzz(root: Path, *, cases: int, seed: int = 3) -> tuple[Tally, dict[str, Any]]:
    """Every topic the daemons read, fuzzed with hypothesis-made mutations of valid payloads
    (``fuzzing.py``), published as one batch: nobody dies, nobody reconnects, the hub's books
    and every retained state stay as they were, the board's rev, the speaker's and the
    printer's output do not move, and every daemon counts its drops."""
    from xephang_faults import fuzzing

    t = Tally("fuzz: bad input on every topic")
    facts: dict[str, Any] = {}
    t0 = time.monotonic()
    tgs = fuzzing.targets("tuong-linh", ALL_NODES)
    payloads = fuzzing.generate(tgs, cases, seed) + fuzzing.hostile_request_topics("tuong-linh")
    facts["hostile_topics"] = len(fuzzing.hostile_request_topics("tuong-linh"))
    facts["hostile_fields"] = sum(any(h in p for h in (b"reply/+", b"reply/#", b"\\u0000", b"DROP TABLE", b"passwd",
                                                       b"CRITICAL forged")) for _, p in payloads)
    facts["generate_s"] = time.monotonic() - t0
    facts["distinct"] = len(set(payloads))
    facts["over_64k"] = sum(len(p) > 64 * 1024 for _, p in payloads)
    facts["requests"] = sum("/req/hub/" in tp for tp, _ in payloads)
    with Centre(root) as c:
        for n in ALL_NODES:
            c.start(n)
        obs = Observer(c.bus("tech-obs"))
        assert obs.wait(lambda: all(obs.online(n) and n in obs.health for n in ALL_NODES), 30)
        ld = Loader(c.bus("tech-load"), LOAD_COUNTERS, SERVICES)
        for _ in range(6):
            ld.issue()
        _wait_idle(obs, ld, 20)
        ld.call()
        _wait_idle(obs, ld, 20)
        obs.bus.publish(obs.bus.topics.sim_press("dispenser-1"), SimPress(button="ho-tich"))  # one real ticket
        obs.bus.publish(obs.bus.topics.sim_press("counter-1"), SimPress(button="next"))  # one real call
        obs.wait(lambda: len(c.wavs()) >= 2 and obs.kinds()["issued"] >= 7, 20)
        obs.wait(lambda: False, 1.5)

        def observable() -> dict[str, Any]:
            dh = obs.health.get("display-hall")
            return {"books": hub_fingerprint(c), "wavs": len(c.wavs()),
                    "printed": len(list(c.sim_out.glob("*.bin"))), "board_rev": dh.details.get("rev") if dh else None,
                    "events": len(obs.revs)}

        before, retained0 = observable(), retained_snapshot(c)
        sessions0 = sessions(obs, ALL_NODES)
        dropped0 = {n: obs.health[n].dropped_messages for n in ALL_NODES}
        pub = c.bus("tech-fuzz")
        raw = pub._client
        assert raw is not None
        t1 = time.monotonic()
        infos = []
        for i, (topic, payload) in enumerate(payloads):
            infos.append(raw.publish(topic, payload, qos=1))  # past the bus's own size guard, on purpose
            if i % 100 == 99:
                obs.pump(0)
        t.operations = t.faults = len(payloads)
        # the batch is out when the broker has acknowledged every message; then every daemon
        # must have counted drops (health comes every second)
        facts["all_acked"] = obs.wait(lambda: all(i.is_published() for i in infos), 60, pub)
        facts["publish_s"] = time.monotonic() - t1
        h0 = {n: obs.health[n].at for n in ALL_NODES}
        ok = obs.wait(lambda: all(obs.health[n].dropped_messages > dropped0[n] and obs.health[n].at > h0[n] + 1
                                  for n in ALL_NODES), 30)
        # and the counts settle: nothing more to drop
        prev: dict[str, int] = {}

        def settled() -> bool:
            cur = {n: obs.health[n].dropped_messages for n in ALL_NODES}
            same = cur == prev
            prev.clear()
            prev.update(cur)
            return same

        while not settled():
            hs = {n: obs.health[n].at for n in ALL_NODES}
            if not obs.wait(lambda h=hs: all(obs.health[n].at > h[n] for n in ALL_NODES), 10):
                break
        facts["drain_s"] = time.monotonic() - t1
        after, retained1 = observable(), retained_snapshot(c)
        alive = {n: c.procs[n].alive() for n in ALL_NODES}
        t.lost += sum(not a for a in alive.values())  # a dead daemon is the worst loss
        if before != after:
            t.notes.append(f"observable state moved: {before} -> {after}")
            t.duplicates += 1
        changed = sorted(k for k in set(retained0) | set(retained1) if retained0.get(k) != retained1.get(k))
        if changed:
            t.notes.append(f"retained changed: {changed}")
            t.duplicates += 1
        facts.update(alive=alive, before=before, after=after, dropped_counted=ok, retained_changed=changed,
                     sessions_same=sessions(obs, ALL_NODES) == sessions0,
                     dropped={n: obs.health[n].dropped_messages - dropped0[n] for n in ALL_NODES},
                     by_code={n: obs.health[n].details.get("dropped_by_code") for n in ("hub",)},
                     dead_logs={n: c.log_text(n)[-800:] for n, a in alive.items() if not a})
        t.notes.append(f"{facts['distinct']} distinct payloads, drops counted {facts['dropped']}")
        # still serving
        ld.issue()
        facts["serving_after"] = _wait_idle(obs, ld, 10) and ld.issue_errors == 0 and ld.gave_up == 0

        # phase 2: junk LEFT RETAINED on every topic a daemon reads (commands and state alike), then
        # every daemon restarted into it: all come back, nothing acts on the junk, drops counted
        junk = fuzzing.retained_junk(tgs, seed + 2)
        facts["retained_junk"] = len(junk)
        t.operations += len(junk)
        t.faults += len(junk)
        books0 = hub_fingerprint(c)
        infos = [raw.publish(topic, payload, qos=1, retain=True) for topic, payload in junk]
        obs.wait(lambda: all(i.is_published() for i in infos), 30, pub)
        before_restart = sessions(obs, ALL_NODES)
        for n in ALL_NODES:
            c.kill(n, signal.SIGTERM)
            c.start(n)
        facts["restarted_online"] = obs.wait(lambda: back_online(obs, before_restart) and all(
            n in obs.health and obs.health[n].dropped_messages > 0 for n in ALL_NODES), 60)
        hs = {n: obs.health[n].at for n in ALL_NODES}
        obs.wait(lambda: all(obs.health[n].at > hs[n] + 1 for n in ALL_NODES), 15)  # two health beats later
        facts["restarted_alive"] = {n: c.procs[n].alive() for n in ALL_NODES}
        t.lost += sum(not a for a in facts["restarted_alive"].values())
        facts["retained_dropped"] = {n: obs.health[n].dropped_by_code for n in ALL_NODES}
        facts["books_after_junk"] = hub_fingerprint(c) == books0
        facts["hall_state_restored"] = _hall_rev(obs) == books0[2]  # the hub's state over the junk
        ld.issue()
        facts["serving_after_junk"] = _wait_idle(obs, ld, 15) and ld.issue_errors == 0 and ld.gave_up == 0
        facts["dead_logs"].update({n: c.log_text(n)[-800:] for n, a in facts["restarted_alive"].items() if not a})
        for topic, _ in junk:  # leave the broker clean
            raw.publish(topic, b"", qos=1, retain=True)
    return t, facts


def _hall_rev(obs: Observer) -> int | None:
    """The rev of the retained hall state as a newcomer reads it (the hub's, not junk)."""
    from xephang.contract import BadPayload, HallState, decode

    obs.wait(lambda: False, 0.5)
    raw = obs.retained.get(f"{obs.bus.topics.root}/state/hall")
    try:
        return decode(HallState, raw).rev if raw else None
    except BadPayload:
        return None



# ---------------------------------------------------------------------------------------------
# Security


def security(root: Path) -> tuple[Tally, dict[str, Any]]:
    """With the generated broker config: strangers refused; every role refused every topic it must
    not write (PUBACK 135); a counter cannot act for another at the hub; nothing changed."""
    from xephang.contract import COUNTER_ACTIONS, DISPENSER_ACTIONS, CallNext, new_request_id
    from xephang_ops.tools import BrokerTarget, ToolClient, ToolError

    t = Tally("security: ACL + hub checks")
    facts: dict[str, Any] = {"refused": 0, "leaks": [], "strangers_refused": 0}
    R = "xephang/v1/tuong-linh"
    with Centre(root, secured=True) as c:
        c.start("hub")
        obs = Observer(c.bus("tech-obs"))
        assert obs.wait(lambda: obs.online("hub"), 20)
        ld = Loader(c.bus("tech-load"), LOAD_COUNTERS, SERVICES)
        for _ in range(3):
            ld.issue()
        _wait_idle(obs, ld, 20)
        obs.wait(lambda: False, 1.0)
        before = hub_fingerprint(c)
        port = c.broker.port
        for user, pw in ((None, None), ("counter-1", "wrong-password"), ("nobody", "x"), ("hub", "")):
            t.operations += 1
            t.faults += 1
            try:
                tc = ToolClient(BrokerTarget(port=port, username=user or "", password=pw)).connect(3)
            except ToolError:
                facts["strangers_refused"] += 1
            else:
                tc.close()
                facts["leaks"].append(f"{user!r} connected")
        actions = ["issue-ticket", "void-ticket", *COUNTER_ACTIONS, "resync", "report"]
        nodes = ["hub", "dispenser-1", "counter-1", "counter-2", "display-hall", "announcer-hall", "tech"]
        universe = [f"{R}/state/hall", f"{R}/state/counter/1", f"{R}/state/service/ho-tich", f"{R}/state/summary",
                    *(f"{R}/event/ticket/{k}" for k in ("issued", "called", "voided")), f"{R}/event/counter/paused",
                    *(f"{R}/req/hub/{a}" for a in actions), *(f"{R}/req/hub/{a}/{n}" for a in actions for n in nodes),
                    *(f"{R}/reply/{n}" for n in nodes), *(f"{R}/node/{n}/status" for n in nodes),
                    *(f"{R}/node/{n}/alert/paper-out" for n in nodes), *(f"{R}/node/{n}/health" for n in nodes),
                    *(f"{R}/config/{n}/{x}" for n in nodes for x in ("set", "ack", "state")),
                    *(f"{R}/sim/{n}/press" for n in nodes), "xephang/v1/other-site/req/hub/call-next", "$SYS/x", "#x"]

        def may_write(user: str, topic: str) -> bool:
            role = "hub" if user == "hub" else user.split("-", 1)[0]
            rest = topic[len(R) + 1:] if topic.startswith(R + "/") else None
            if rest is None:
                return False
            own = (f"node/{user}/status", f"node/{user}/health", f"config/{user}/ack", f"config/{user}/state",
                   f"req/hub/resync/{user}")
            if rest in own or rest in {f"node/{user}/alert/{a}" for a in ALERT_IDS.get(role, ())}:
                return True
            if role == "hub":
                return rest.startswith(("state/", "event/", "reply/"))
            if role == "dispenser":
                return rest in {f"req/hub/{a}/{user}" for a in DISPENSER_ACTIONS}
            if role == "counter":
                return rest in {f"req/hub/{a}/{user}" for a in COUNTER_ACTIONS}
            if role == "tech":
                return rest.startswith(("req/hub/", "sim/")) or (rest.startswith("config/") and rest.endswith("/set"))
            return False

        retained0 = retained_snapshot(c)
        facts["refused_by"] = {}
        facts["refused_topics"] = set()
        for user in ("hub", "tech", "dispenser-1", "counter-1", "display-hall", "announcer-hall"):
            # on the technicians' listener (free client ids): on the boards' one the probe's id would
            # become the username, and the hub's own password would replace the running hub
            with ToolClient(BrokerTarget(port=c.broker.tech_port, username=user, password=c.passwords[user]),
                            client_id=f"{user}-probe") as tc:
                for topic in universe:
                    if may_write(user, topic):
                        continue
                    if topic.startswith(("$", "#")):
                        continue  # not a valid publish topic for paho at all
                    t.operations += 1
                    t.faults += 1
                    code = tc.publish(topic, b'{"forged": true}', retain=topic.split("/")[3] in ("state", "node", "config"))
                    if code == 135:
                        facts["refused"] += 1
                        facts["refused_by"][user] = facts["refused_by"].get(user, 0) + 1
                        facts["refused_topics"].add((user, topic[len(R) + 1:] if topic.startswith(R) else topic))
                    else:
                        facts["leaks"].append(f"{user} -> {topic}: {code}")
        # every role's password tries the running hub's client id, bare and prefixed, on both
        # listeners: refused, or given an id of its own; the hub is never knocked off
        hub_session = sessions(obs, ["hub"])
        facts["takeover"] = {}
        for user in ("tech", "dispenser-1", "counter-1", "display-hall", "announcer-hall"):
            for cid in ("hub", "xephang-hub"):
                for lport in (port, c.broker.tech_port):
                    t.operations += 1
                    t.faults += 1
                    tc = ToolClient(BrokerTarget(port=lport, username=user, password=c.passwords[user]))
                    tc.client_id = cid
                    tc._client._client_id = cid.encode()
                    try:
                        tc.connect(3)
                    except ToolError:
                        facts["takeover"][(user, cid, lport == port)] = "refused"
                    else:
                        facts["takeover"][(user, cid, lport == port)] = "own id"
                        tc.close()
        obs.wait(lambda: False, 1.0)  # a Will or a new birth of the hub would have landed by now
        facts["hub_knocked_off"] = sessions(obs, ["hub"]) != hub_session or not obs.online("hub")
        t.lost += facts["hub_knocked_off"]
        retained1 = retained_snapshot(c)  # (before counter-3 below comes online: that is a change)
        facts["retained_changed"] = sorted(k for k in set(retained0) | set(retained1) if retained0.get(k) != retained1.get(k))
        # a counter acting for another one, at the hub
        c3 = c.bus("counter-3")
        r = c3.request_sync(CallNext(request_id=new_request_id(), source="counter-3", counter=1))
        t.operations += 1
        t.faults += 1
        facts["cross_counter"] = r.error.code if r is not None and r.error else (r.status if r else None)
        obs.wait(lambda: False, 1.0)
        after = hub_fingerprint(c)
        facts.update(before=before, after=after)
        facts["alive"] = c.procs["hub"].alive()
        t.lost += len(facts["leaks"]) + len(facts["retained_changed"]) + (not facts["alive"])
        if before != after:
            t.duplicates += 1
            t.notes.append(f"hub books moved: {before} -> {after}")
    return t, facts


# ---------------------------------------------------------------------------------------------
# Hardware faults through the fakes, at the process level


def hardware(root: Path) -> tuple[Tally, dict[str, Any]]:
    """Paper out mid-ticket, printer gone, button stuck pressed, audio device gone, display driver
    missing: the number of a ticket that was not printed is voided, never left as a ghost; the
    right alert is retained; the daemon with a missing device stays up (or, for a board with no
    screen, says so and exits non-zero)."""
    t = Tally("hardware faults (fakes)")
    facts: dict[str, Any] = {}
    R = "xephang/v1/tuong-linh"
    with Centre(root) as c:
        ctl = c.root / "printer.ctl"
        ctl.write_text("")
        c.start("hub")
        c.start("dispenser-1", FAULTS_PRINTER_CTL=str(ctl), XEPHANG_PRINTER_FAULT_CHECK_S="0.3")
        obs = Observer(c.bus("tech-obs"))
        assert obs.wait(lambda: obs.online("hub") and obs.online("dispenser-1"), 30)

        def press(button: str, hold_s: float = 0.0) -> None:
            obs.bus.publish(obs.bus.topics.sim_press("dispenser-1"), SimPress(button=button, hold_s=hold_s))
            t.operations += 1

        def printed() -> int:
            return len(list(c.sim_out.glob("*.bin")))

        def alert(name: str) -> bool:
            return bool(obs.retained.get(f"{R}/node/dispenser-1/alert/{name}"))

        def kinds() -> Any:
            return obs.kinds()

        press("ho-tich")
        obs.wait(lambda: printed() == 1, 10)
        # the roll ends in the middle of the next ticket: its number is voided, paper-out raised
        ctl.write_text("paper-out-mid")
        t.faults += 1
        press("ho-tich")
        facts["voided_mid"] = obs.wait(lambda: kinds()["voided"] == 1 and alert("paper-out"), 10)
        press("dat-dai")  # while the paper is out: refused at the box, no number issued
        obs.wait(lambda: False, 1.0)
        facts["issued_while_out"] = kinds()["issued"] - 2
        ctl.write_text("")  # a new roll
        facts["paper_back"] = obs.wait(lambda: not alert("paper-out"), 10)
        press("dat-dai")
        obs.wait(lambda: printed() == 2, 10)
        # the printer cable pulled
        ctl.write_text("offline")
        t.faults += 1
        obs.wait(lambda: False, 0.8)
        press("chung-thuc")
        facts["offline_alert"] = obs.wait(lambda: alert("printer-offline"), 10)
        obs.wait(lambda: False, 0.5)
        facts["issued_while_offline"] = kinds()["issued"] - 3
        ctl.write_text("")
        facts["printer_back"] = obs.wait(lambda: not alert("printer-offline"), 10)
        # a child leans on a button for five seconds: one ticket
        t.faults += 1
        before = kinds()["issued"]
        press("van-hoa-xa-hoi", hold_s=5.0)
        obs.wait(lambda: False, 6.5)
        facts["stuck_tickets"] = kinds()["issued"] - before
        books = read_ledger(c.ledger_path)
        facts["books"] = books
        facts["printed"] = printed()
        # every number is on paper or voided: no ghost waits for a call nobody can answer
        ghosts = books.by_state.get("waiting", 0) - facts["printed"]
        t.lost += max(0, ghosts)
        t.duplicates += max(0, facts["printed"] - books.by_state.get("waiting", 0))
        t.duplicates += max(0, facts["stuck_tickets"] - 1)
        # a board without a display driver: says so (retained alert) and exits non-zero for systemd
        c.start("display-hall", XEPHANG_SIM="false", SDL_VIDEODRIVER="no-such-video-driver")
        t.faults += 1
        facts["display_alert"] = obs.wait(
            lambda: bool(obs.retained.get(f"{R}/node/display-hall/alert/display-missing")), 20)
        obs.wait(lambda: not c.procs["display-hall"].alive(), 10)
        facts["display_exit"] = c.procs["display-hall"].popen.poll()
        facts["hub_alive"] = c.procs["hub"].alive() and c.procs["dispenser-1"].alive()
    return t, facts


def audio_gone(root: Path) -> tuple[Tally, dict[str, Any]]:
    """The hall speaker's sound card is gone at boot: a retained ``audio-missing`` alert, the
    daemon stays up and keeps listening (it plays again when the device returns)."""
    t = Tally("audio device gone")
    facts: dict[str, Any] = {}
    R = "xephang/v1/tuong-linh"
    with Centre(root) as c:
        c.start("hub")
        obs = Observer(c.bus("tech-obs"))
        assert obs.wait(lambda: obs.online("hub"), 20)
        c.start("announcer-hall", XEPHANG_SIM="false", SDL_AUDIODRIVER="no-such-audio-driver")
        t.faults += 1
        t.operations += 1
        proc = c.procs["announcer-hall"]
        obs.wait(lambda: bool(obs.retained.get(f"{R}/node/announcer-hall/alert/audio-missing")) or not proc.alive(), 20)
        facts["audio_alert"] = bool(obs.retained.get(f"{R}/node/announcer-hall/alert/audio-missing"))
        facts["announcer_alive"] = obs.wait(lambda: obs.online("announcer-hall") or not proc.alive(), 5) and proc.alive()
        facts["exit"] = c.procs["announcer-hall"].popen.poll()
        if not facts["announcer_alive"]:
            t.lost += 1  # no speaker process: every call from now on is unheard
            t.notes.append(f"announcerd exited {facts['exit']} when the audio device is missing at boot")
    return t, facts


def _holds(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    import os

    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def audio_gone_mid_run(root: Path, *, rounds: int = 2) -> tuple[Tally, dict[str, Any]]:
    """The hall speaker loses its device while running (``rounds`` times) and gets it back: the
    call made meanwhile is held, not dropped; ``audio-missing`` is raised and cleared; every
    call is said once. The sim player opens SDL's ``disk`` device for each announcement, so the
    device is pulled at process level by putting a folder where its capture file goes."""
    import shutil

    t = Tally("audio device gone mid-run")
    facts: dict[str, Any] = {"rounds": []}
    R = "xephang/v1/tuong-linh"
    alert = f"{R}/node/announcer-hall/alert/audio-missing"
    with Centre(root) as c:
        c.start("hub")
        c.start("announcer-hall")
        obs = Observer(c.bus("tech-obs"))
        ld = Loader(c.bus("tech-load"), LOAD_COUNTERS, SERVICES)
        assert obs.wait(lambda: obs.online("hub") and obs.online("announcer-hall"), 30)
        capture = c.sim_out / "announcer-hall" / "capture.raw"
        for _ in SERVICES * rounds * 2:  # a ticket waiting for every counter, every round
            ld.issue()
        _wait_idle(obs, ld, 30)

        def call_one() -> bool:
            """Next on the load's counters in turn until one calls a ticket."""
            before = len(ld.called)
            for _ in LOAD_COUNTERS:
                ld.call()
                _wait_idle(obs, ld, 20)
                if len(ld.called) > before:
                    return True
            return False

        for _ in range(rounds):
            call_one()  # said while the device is there
            said = obs.wait(lambda: len(c.wavs()) >= len(ld.called), 20)
            # pull the device between announcements: the sim speaker holds it only while speaking
            obs.wait(lambda: not _holds(c.procs["announcer-hall"].pid, capture), 60)
            capture.unlink(missing_ok=True)
            capture.mkdir(parents=True)  # the device is gone: SDL cannot open its output any more
            t.faults += 1
            call_one()  # made while the speaker has no device
            raised = obs.wait(lambda: bool(obs.retained.get(alert)), 20)
            held = len(c.wavs()) == len(ld.called) - 1  # not said into nothing, not dropped yet
            t0 = time.monotonic()
            shutil.rmtree(capture)  # the device is back
            back = obs.wait(lambda: len(c.wavs()) >= len(ld.called), 30)
            cleared = obs.wait(lambda: not obs.retained.get(alert), 10)
            facts["rounds"].append({"said_before": said, "alert": raised, "held": held, "said_after": back,
                                    "cleared": cleared})
            if back:
                t.recoveries.append(time.monotonic() - t0)
        obs.wait(lambda: False, 1.0)
        n_wav, dup_wav = wav_duplicates(c)
        t.operations = len(ld.called)
        t.lost += max(0, len(ld.called) - n_wav)
        t.duplicates += dup_wav
        facts["alive"] = c.procs["announcer-hall"].alive()
        facts["wavs"] = n_wav
        if not facts["alive"]:
            t.notes.append("announcerd died when its device went away")
    return t, facts


# ---------------------------------------------------------------------------------------------
# Soak: the load through the real boxes


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def fds(pid: int) -> int:
    import os

    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def soak_boxes(root: Path, *, hours: float, speed: float, per_day: int, counters: int,
               start_hour: float = 7.0, press_gap_s: float = 0.55) -> tuple[Tally, dict[str, Any]]:
    """Simulated days at high clock speed, the load made by the REAL boxes: the dispenser's
    service keys and every counter's ``next`` key pressed through ``R/sim/{node}/press``
    (a visitor takes a ticket, an officer calls the next). Every daemon is a process; RSS and
    open descriptors sampled from /proc. Starts on a Monday at ``start_hour`` local time; the
    hall is open Mon–Sat 07:30–17:00, ``per_day`` tickets spread over the open hours; each
    counter presses ``next`` at most every ``press_gap_s`` real seconds (its double-press
    guard is 0.4 s) while the hall is open."""
    from datetime import datetime, timedelta
    from datetime import time as dtime

    from xephang.clock import VN_TZ, ScaledClock

    t = Tally(f"soak {hours / 24:g} d x{speed:g} via boxes, {counters} counters")
    today = datetime.now(VN_TZ).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    origin = datetime.combine(monday, dtime(0, 0), VN_TZ).timestamp() + start_hour * 3600
    facts: dict[str, Any] = {}
    c = Centre(root, counters=counters, speed=speed, origin=origin, health_s=2.0)
    c.real_origin = time.time()
    clock = ScaledClock(origin, c.real_origin, speed)
    boxes = [f"counter-{i}" for i in range(1, counters + 1)]
    nodes = ["hub", "dispenser-1", *boxes, "display-hall", "announcer-hall"]
    with c:
        for node in nodes:
            c.start(node)
        obs = Observer(c.bus("tech-obs"))
        assert obs.wait(lambda: all(obs.online(x) for x in nodes), 60), \
            f"not up: {[(x, c.procs[x].alive(), c.log_text(x)[-300:]) for x in nodes if not obs.online(x)]}"
        services = sorted({s for cnt in c.site.counters for s in cnt.services})
        # the clock started with the processes: catch up to now before loading
        end = origin + hours * 3600
        open_s = (17 - 7.5) * 3600
        samples: dict[str, list[tuple[float, int, int]]] = {x: [] for x in nodes}
        day_presses: dict[str, int] = {}
        presses = calls = 0
        next_call = dict.fromkeys(boxes, 0.0)
        next_press = 0.0
        next_sample = 0.0
        pub = obs.bus
        while clock.now() < end:
            now = clock.now()
            local = datetime.fromtimestamp(now, VN_TZ)
            day = local.date().isoformat()
            opened = datetime.combine(local.date(), dtime(7, 30), VN_TZ).timestamp()
            if local.weekday() < 6 and 0 <= now - opened <= open_s:
                due = int(per_day * (now - opened) / open_s)
                mono = time.monotonic()
                # one visitor at a time: a burst on one key within its debounce is ONE press
                if day_presses.get(day, 0) < due and mono >= next_press:
                    svc = services[presses % len(services)]
                    pub.publish(pub.topics.sim_press("dispenser-1"), SimPress(button=svc))
                    presses += 1
                    day_presses[day] = day_presses.get(day, 0) + 1
                    next_press = mono + 0.1
                for b in boxes:
                    if mono >= next_call[b] and now >= opened + 600:  # officers start 10 min after
                        pub.publish(pub.topics.sim_press(b), SimPress(button="next"))
                        next_call[b] = mono + press_gap_s
                        calls += 1
            obs.wait(lambda: False, 0.02)
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + 1.0
                for x in nodes:
                    samples[x].append((now, rss_kb(c.procs[x].pid), fds(c.procs[x].pid)))
        obs.wait(lambda: obs.kinds()["issued"] >= presses, 30)
        # quiet: every box has nothing pending, the outbox is empty
        obs.wait(lambda: all(obs.health.get(x) is not None and obs.health[x].details.get("pending", 0) == 0
                             for x in ("dispenser-1",)), 20)
        obs.wait(lambda: False, 2.5)
        books = read_ledger(c.ledger_path)
        obs.repair(books.max_rev, books.first_rev)
        t.operations = presses + calls
        account(books, obs, None, t)
        dead = [x for x in nodes if not c.procs[x].alive()]
        t.lost += len(dead)
        disp = obs.health["dispenser-1"].details
        facts.update(books=books, presses=presses, calls=calls, day_presses=day_presses, dead=dead,
                     dispenser={k: disp.get(k) for k in ("presses", "refused", "dropped", "failed", "tickets_printed")},
                     printed=len(list(c.sim_out.glob("*.bin"))), repaired=obs.repaired, kinds=dict(obs.kinds()),
                     wavs=len(c.wavs()))
        # every press is one ticket; every ticket is on paper; none left in between
        t.lost += max(0, presses - books.issued_events)
        t.duplicates += max(0, books.issued_events - presses)
        mem: dict[str, dict[str, float]] = {}
        for x in nodes:
            sm = [s for s in samples[x] if s[1] > 0]
            # warm = after the first simulated hours of load (imports, caches, fonts warmed up)
            warm = [s for s in sm if s[0] >= origin + min(hours / 3, 24) * 3600] or sm[len(sm) // 2:]
            # descriptors: the most seen in the warm run before the last three samples (the speaker
            # holds its device open in opening hours only, a board has a frame file open for a
            # moment) against the fewest of those last three: a leak raises the floor past every peak
            before_end = warm[:-3] or warm
            mem[x] = {"rss_warm_mb": warm[0][1] / 1024, "rss_end_mb": sm[-1][1] / 1024,
                      "fds_warm": max(s[2] for s in before_end), "fds_end": min(s[2] for s in sm[-3:]),
                      "fds_max": max(s[2] for s in warm),
                      "samples": len(sm)}
        facts["mem"] = mem
        if dead:
            t.notes.append(f"died: {dead}")
    return t, facts


def soak_lines(f: dict[str, Any]) -> list[str]:
    b = f["books"]
    lines = [f"{f['presses']} dispenser presses, {f['calls']} 'next' presses "
             f"({', '.join(f'{k[5:]}: {v}' for k, v in sorted(f['day_presses'].items()))})",
             f"ledger: {b.tickets} tickets {dict(b.by_state)}, revs {b.first_rev}..{b.max_rev} missing {len(b.revs_missing)}, "
             f"outbox {b.outbox}, numbers reused {b.numbers_reused}, printed {f['printed']}, dispenser {f['dispenser']}",
             f"{'daemon':<16} {'RSS warm MB':>11} {'RSS end MB':>10} {'growth':>7} {'fds warm':>8} {'fds end':>7}"]
    for x, m in f["mem"].items():
        g = 100 * (m["rss_end_mb"] - m["rss_warm_mb"]) / m["rss_warm_mb"]
        lines.append(f"{x:<16} {m['rss_warm_mb']:>11.1f} {m['rss_end_mb']:>10.1f} {g:>6.1f}% {m['fds_warm']:>8} {m['fds_end']:>7}")
    return lines
