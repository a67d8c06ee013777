"""The ledger keeps exactly what the engine committed, and rebuilds it after a restart."""

from __future__ import annotations

from datetime import datetime

from hubd.engine import QueueEngine
from hubd.ledger import Ledger
from xephang.clock import VN_TZ
from xephang_reports.build import open_readonly

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=VN_TZ).timestamp()


def commit(led: Ledger, eng: QueueEngine, out) -> None:
    with led.transaction():
        led.write(eng, out)
    if out.day_rolled:
        eng.prune()


def test_day_roll_is_written_before_memory_forgets(tmp_path, site):
    led, eng = Ledger(tmp_path / "l.sqlite"), QueueEngine(site)
    commit(led, eng, eng.issue("ho-tich", None, T0))
    left = eng.issue("ho-tich", None, T0 + 1)
    commit(led, eng, left)
    commit(led, eng, eng.call_next(1, T0 + 2))
    commit(led, eng, eng.pause(3, "họp", T0 + 3))
    commit(led, eng, eng.issue("ho-tich", None, T0 + 86400))  # next day: the roll rides along
    db = open_readonly(tmp_path / "l.sqlite")
    states = dict(db.execute("SELECT number || '@' || day, state FROM tickets").fetchall())
    assert states == {"1001@2026-11-23": "done", "1002@2026-11-23": "expired", "1001@2026-11-24": "waiting"}
    assert db.execute("SELECT COUNT(*) FROM pauses WHERE ended_at IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT state FROM counters WHERE number=1").fetchone()[0] == "closed"
    assert db.execute("SELECT outcome, inferred FROM visits").fetchall() == [("served", 1)]
    assert left.data["ticket"]["id"] not in eng.tickets  # pruned from memory only after the write


def test_reload_rebuilds_the_same_queue(tmp_path, site):
    led, eng = Ledger(tmp_path / "l.sqlite"), QueueEngine(site)
    for i in range(5):
        commit(led, eng, eng.issue("dat-dai", "cao-tuoi" if i == 3 else None, T0 + i))
    commit(led, eng, eng.call_next(3, T0 + 10))
    commit(led, eng, eng.pause(4, "nghỉ trưa", T0 + 11))
    led.close()
    led2, eng2 = Ledger(tmp_path / "l.sqlite"), QueueEngine(site)
    led2.load(eng2)
    assert eng2.rev == eng.rev and eng2.day == eng.day
    assert [t.id for t in eng2.waiting()] == [t.id for t in eng.waiting()]
    assert eng2.counters[3].serving == eng.counters[3].serving
    assert eng2.counters[4].state == "paused"
    # both call the same next ticket, and numbering continues without reuse
    assert eng2.pick_next(3, T0 + 20).id == eng.pick_next(3, T0 + 20).id  # type: ignore[union-attr]
    assert eng2.issue("dat-dai", None, T0 + 30).data["ticket"]["number"] == 2006


def test_the_rating_window_survives_a_restart_and_an_inferred_finish_does_not_move_it(tmp_path, site):
    led, eng = Ledger(tmp_path / "l.sqlite"), QueueEngine(site)
    a = eng.issue("dat-dai", None, T0)
    commit(led, eng, a)
    commit(led, eng, eng.issue("dat-dai", None, T0 + 1))
    commit(led, eng, eng.call_next(3, T0 + 10))
    commit(led, eng, eng.finish(3, T0 + 60))  # A finished with the key: the box asks A
    commit(led, eng, eng.call_next(3, T0 + 61))
    commit(led, eng, eng.call_next(3, T0 + 90))  # B's finish inferred
    led.close()
    led2, eng2 = Ledger(tmp_path / "l.sqlite"), QueueEngine(site)
    led2.load(eng2)
    a_id = a.data["ticket"]["id"]
    assert eng2.counters[3].last_finished_ticket == a_id
    assert eng2.rate(3, 5, T0 + 100, ticket_id=a_id).data["ticket"]["id"] == a_id
