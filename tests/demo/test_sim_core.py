"""The simulated hall's pure core: citizens arrive with a morning peak, officers press keys in
answer to the hub's events (time passed in, no broker)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from xephang.clock import VN_TZ
from xephang_ops.sim import LONG_PRESS_S, CentreSim, Press, plan_arrivals

DAY = datetime(2026, 11, 23, 7, 30, tzinfo=VN_TZ).timestamp()  # a Monday
H = 3600.0


def at(hh: float) -> float:
    return DAY + (hh - 7.5) * H


def run_until(sim: CentreSim, t: float, step: float = 5.0, start: float = DAY) -> list[Press]:
    out: list[Press] = []
    now = start
    while now <= t:
        out += sim.due(now)
        now += step
    return out


def first_press(sim: CentreSim, start: float, end: float, step: float = 5.0) -> Press:
    now = start + step
    while now <= end:
        got = sim.due(now)
        if got:
            return got[0]
        now += step
    raise AssertionError("no press")


def ev(kind: str, tid: int, counter: int | None, **extra) -> dict:
    return {"kind": kind, "counter": counter, "ticket": {"id": tid, "display": str(3000 + tid), "service": "chung-thuc",
                                                        "counter": counter}, **extra}


def test_the_morning_peak_brings_more_citizens_than_lunch(site):
    arrivals = [a for seed in range(5) for a in plan_arrivals(site, at(7.5), at(17.0), random.Random(seed))]
    peak = sum(1 for a in arrivals if at(8.5) <= a.at < at(10.0)) / 1.5
    lunch = sum(1 for a in arrivals if at(11.5) <= a.at < at(13.5)) / 2.0
    assert peak > 3 * lunch
    assert not any(a.at >= at(16.75) for a in arrivals)  # nobody comes in the last quarter hour
    assert {a.service for a in arrivals} == {s.id for s in site.services}
    assert 0.05 < sum(a.priority for a in arrivals) / len(arrivals) < 0.2


def test_a_priority_citizen_presses_the_priority_key_then_the_service(site):
    sim = CentreSim(site, start=at(8.5), end=at(10.0), seed=4, counters={})
    presses = run_until(sim, at(10.0), start=at(8.5))
    dispenser = [p for p in presses if p.node == "dispenser-1"]
    prio = [i for i, p in enumerate(dispenser) if p.button == "priority"]
    assert prio, "some citizens are priority citizens"
    for i in prio:
        assert dispenser[i + 1].button in {s.id for s in site.services}
    assert sim.stats.arrivals_planned == sum(1 for p in dispenser if p.button != "priority")


def test_officers_call_serve_recall_no_show_rate_and_pause_only_through_keys(site):
    sim = CentreSim(site, start=DAY, end=at(12), seed=1, counters={2: "counter-2"}, arrivals_until=DAY)
    sim.on_waiting("chung-thuc", 3)
    presses = run_until(sim, DAY + 60)
    assert [p.button for p in presses if p.node == "counter-2"] == ["next"]  # someone waits: call
    t = presses[0].at + 1

    # 1st call: an ordinary citizen, finished after the walk and a service of at least a minute
    sim.on_event(ev("called", 1, 2), t)
    finish = first_press(sim, t, t + 3 * H)
    assert finish.button == "finish" and finish.at >= t + 30 + 60
    t = finish.at
    sim.on_event(ev("finished", 1, 2), t)
    rate = first_press(sim, t, t + 600)
    assert rate.button.startswith("rate-")  # most citizens rate (and this one does, with seed 1)
    sim.on_event(ev("rated", 1, 2, score=int(rate.button[-1])), rate.at)
    pause = first_press(sim, rate.at, t + 600)
    assert pause.button == "pause"  # this officer takes the break after the first citizen
    t = pause.at
    sim.on_event({"kind": "paused", "counter": 2}, t)
    resume = first_press(sim, t, t + 20 * 60)
    assert resume.button == "resume" and resume.at >= t + 10 * 60
    sim.on_event({"kind": "resumed", "counter": 2}, resume.at)

    # 2nd call: a slow citizen — one recall before the service
    nxt = first_press(sim, resume.at, resume.at + 600)
    assert nxt.button == "next"
    sim.on_event(ev("called", 2, 2), nxt.at)
    recall = first_press(sim, nxt.at, nxt.at + 200)
    assert recall.button == "recall"
    sim.on_event(ev("recalled", 2, 2), recall.at)
    # … and the second citizen an officer serves is always sent to another area: Transfer, then its key
    end = first_press(sim, recall.at, recall.at + 3 * H)
    assert end.button == "transfer" and end.at >= recall.at + 30 + 60
    sim.due(end.at)  # the service key follows at once (same press batch)
    assert sim.stats.presses["transfer-to"] == 1
    sim.on_event(ev("transferred", 2, None), end.at)
    t = end.at

    # 3rd call: the citizen has left — recall, then No-show as a long press; the event has no counter
    nxt = first_press(sim, t, t + 900)
    assert nxt.button == "next"
    sim.on_event(ev("called", 3, 2), nxt.at)
    recall = first_press(sim, nxt.at, nxt.at + 100)
    assert recall.button == "recall"
    sim.on_event(ev("recalled", 3, 2), recall.at)
    gone = first_press(sim, recall.at, recall.at + 300)
    assert (gone.button, gone.hold_s) == ("no-show", LONG_PRESS_S)
    sim.on_event(ev("no-show", 3, None, reason="requeued"), gone.at)
    assert sim.officers[2].state == "idle" and sim.stats.gave_up == 0 and sim.stats.retries == 0
    assert sim.stats.presses["next"] == 3  # one Next per citizen: the officer never pressed blindly


def test_a_press_that_brings_no_event_is_pressed_again_then_given_up(site):
    sim = CentreSim(site, start=DAY, end=at(12), seed=1, counters={1: "counter-1"}, arrivals_until=DAY,
                    real_s=lambda s: s * 100)
    sim.on_event(ev("called", 7, 1), DAY)
    presses = run_until(sim, DAY + 3 * H)
    # the hub never answers: the officer presses Finish again twice (2.6 real s apart at ×100), then gives up
    finishes = [p.at for p in presses if p.button == "finish"]
    assert len(finishes) == 3 and all(b - a >= 260 for a, b in zip(finishes, finishes[1:], strict=False))
    assert sim.stats.retried["finished"] == 2 and sim.stats.gave_up == 1


def test_a_press_the_broker_does_not_acknowledge_in_time_does_not_end_the_demo():
    """A red team's flood on the same machine left one press unacknowledged for the tool's 5 s and
    the whole demo stopped. Now it is counted and the day goes on; a broker that answers none of
    UNACKNOWLEDGED_IN_A_ROW presses one after another ends it with a clear error."""
    from xephang.contract import Topics
    from xephang_ops.demo import UNACKNOWLEDGED_IN_A_ROW, DemoError, KeyPresser
    from xephang_ops.tools import ToolError

    class Client:
        topics = Topics("tuong-linh")

        def __init__(self, answers: list[bool]) -> None:
            self.answers, self.sent = answers, 0

        def publish(self, topic: str, payload: bytes) -> int:
            self.sent += 1
            if not self.answers.pop(0):
                raise ToolError(f"no answer from the broker to publish to {topic} within 5 s")
            return 0

    client = Client([True, False, True, False, False, True])
    keys = KeyPresser(client)  # type: ignore[arg-type]
    for i in range(6):  # six counters, one press each: no gap to wait for
        keys.add(Press(at=0.0, node=f"counter-{i + 1}", button="next"))
    keys.flush()
    assert client.sent == 6 and keys.sent == 6 and keys.unacknowledged == 3 and keys.backlog() == 0
    gone = KeyPresser(Client([False] * UNACKNOWLEDGED_IN_A_ROW))  # type: ignore[arg-type]
    for i in range(UNACKNOWLEDGED_IN_A_ROW):
        gone.add(Press(at=0.0, node=f"counter-{i + 1}", button="next"))
    with pytest.raises(DemoError, match="answered none"):
        gone.flush()


def test_the_demos_own_accounting_gives_the_reports_wait_figures(site, tmp_path):
    """The demo's summary and the report read the same ledger: the same mean and P90 wait (the demo
    took a floor rank for P90: 45.4 where the report said 45.5)."""
    from hubd.ledger import Ledger
    from xephang_ops.demo import ledger_accounting
    from xephang_ops.simday import run_day
    from xephang_reports.build import report_from_ledger

    day = datetime(2026, 11, 23, 7, 30, tzinfo=VN_TZ).timestamp()
    led = Ledger(tmp_path / "ledger.sqlite")
    try:
        sim = CentreSim(site, start=day, end=day + 9.5 * 3600, seed=1, arrivals_until=day + 9.25 * 3600)
        run_day(site, sim, start=day, end=day + 9.5 * 3600, ledger=led)
    finally:
        led.close()
    acc = ledger_accounting(tmp_path / "ledger.sqlite")
    wait = report_from_ledger(tmp_path / "ledger.sqlite", site, period="2026-11-23", group_by="service", lang="vi",
                              now=day + 10 * 3600)["totals"]["wait"]
    assert acc["mean_wait_min"] == round(wait["mean"] / 60, 1) and acc["p90_wait_min"] == round(wait["p90"] / 60, 1)
