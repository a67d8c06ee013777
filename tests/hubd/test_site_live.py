"""The hub's site, live (real mosquitto, the real hub, the technicians' own push tool): a roster
change mid-day keeps the queue and its order, the next call carries the new officer's name,
yesterday's report keeps yesterday's officer; a change that cannot apply to today's queue is
refused with every reason and changes nothing; a stale push is refused; the change is in the
ledger with who made it; a restart keeps the pushed site unless the site file was edited since."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from hubd import views
from hubd.testing import running_hub
from xephang.bus import Bus
from xephang.clock import ManualClock
from xephang.contract import CallNext, ConfigSet, ConfigState, Finish, IssueTicket, Pause, new_request_id
from xephang.settings import BrokerSettings, load_site
from xephang_ops.tools import BrokerTarget, ToolClient, fetch_config_state, push_config
from xephang_reports.build import build_report, parse_period

pytestmark = pytest.mark.broker
DAY = 86400.0


def _tool(port: int) -> ToolClient:
    return ToolClient(BrokerTarget(site="tuong-linh", port=port, username="tech")).connect()


def _client(port: int, tmp: Path, node: str = "tech") -> Bus:
    b = Bus(site="tuong-linh", node=node, broker=BrokerSettings(port=port), state_dir=tmp / "clients")
    b.start()
    assert b.wait_connected(5)
    return b


def _ask(bus: Bus, req: Any) -> dict[str, Any]:
    r = bus.request_sync(req)
    assert r is not None and r.status == "ok", r
    return r.data


def _counters_with(site_file: Path, **change: dict[str, Any]) -> list[dict[str, Any]]:
    """The site's whole [[counters]] list (technicians' pushes replace lists whole), with changes by number."""
    counters = load_site(site_file).model_dump(mode="json")["counters"]
    for c in counters:
        c.update(change.get(f"c{c['number']}", {}))
    return counters


def _state_at(port: int, rev: int, timeout: float = 5.0) -> ConfigState:
    """The hub's retained config state once it is at ``rev`` (a fresh subscription each look)."""
    end = time.monotonic() + timeout
    while True:
        with _tool(port) as t:
            st = fetch_config_state(t, "hub", timeout=1.0)
        if (st is not None and st.rev == rev) or time.monotonic() > end:
            assert st is not None and st.rev == rev, st
            return st


def _officers_by_counter(ledger: Path, site_file: Path, day: str, now: float) -> dict[int, str]:
    db = sqlite3.connect(ledger)
    try:
        rep = build_report(db, load_site(site_file), period=parse_period(day, date.fromisoformat(day)),
                           group_by="counter", now=now)
    finally:
        db.close()
    return {row["counter"]: row["officer"] for row in rep["counter_load"] if row["visits"]}


def test_a_roster_change_mid_day_keeps_the_queue_and_the_next_call_is_the_new_officers(tmp_path, mosquitto, site_file):
    clock = ManualClock()
    with running_hub(mosquitto.port, tmp_path / "hub", site_file, clock=clock) as hub:
        tech = _client(mosquitto.port, tmp_path)
        issue = lambda: _ask(tech, IssueTicket(request_id=new_request_id(), source="tech", service="dat-dai"))["ticket"]  # noqa: E731
        yesterday = [issue() for _ in range(2)]
        first = _ask(tech, CallNext(request_id=new_request_id(), source="tech", counter=3))
        assert first["ticket"]["id"] == yesterday[0]["id"]
        _ask(tech, Finish(request_id=new_request_id(), source="tech", counter=3))
        day1 = hub.engine.day
        clock.advance(DAY)  # the next morning: the day turns at the hub's next tick
        waiting = [issue() for _ in range(3)]
        assert hub.engine.day != day1
        with _tool(mosquitto.port) as t:
            res = push_config(t, "hub", {"counters": _counters_with(site_file, c3={"officer_id": "hoa"})},
                              by="Nguyễn Thị Trưởng")
            assert res.ack is not None and res.ack.status == "applied", res
        st = _state_at(mosquitto.port, 1)
        assert next(c for c in st.config["counters"] if c["number"] == 3)["officer_id"] == "hoa"
        # the queue went on, in its order: the next call at counter 3 is the first of today's, by hoa
        got = _ask(tech, CallNext(request_id=new_request_id(), source="tech", counter=3))
        assert got["ticket"]["id"] == waiting[0]["id"]
        assert [t.id for t in hub.engine.waiting(["dat-dai"])] == [w["id"] for w in waiting[1:]]
        _ask(tech, Finish(request_id=new_request_id(), source="tech", counter=3))
        assert views.counter_state(hub.engine, 3).officer == "Phạm Thị Hoa"
        # the ledger keeps the change and who made it; each day's report keeps its own officer
        hist = hub.ledger.site_changes()
        assert [(h["rev"], h["by"], h["source"]) for h in hist] == [(1, "Nguyễn Thị Trưởng", "tech")]
        assert "quầy 3: Lê Minh Tuấn → Phạm Thị Hoa" in hist[0]["changes"]
        ledger = hub.ledger.path
        day2 = hub.engine.day
        tech.stop()
    assert _officers_by_counter(ledger, site_file, day1, clock.now()) == {3: "Lê Minh Tuấn"}
    assert _officers_by_counter(ledger, site_file, day2, clock.now()) == {3: "Phạm Thị Hoa"}


def test_a_change_that_cannot_apply_to_todays_queue_is_refused_with_every_reason(tmp_path, mosquitto, site_file):
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        tech = _client(mosquitto.port, tmp_path)
        for svc in ("van-hoa-xa-hoi", "dat-dai", "dat-dai"):
            _ask(tech, IssueTicket(request_id=new_request_id(), source="tech", service=svc))
        before = (hub.engine.rev, [t.id for t in hub.engine.waiting()])
        site = load_site(site_file).model_dump(mode="json")
        with _tool(mosquitto.port) as t:
            # a whole site that does not validate: every error at once
            bad = {"counters": [{**c, "services": ["khong-co"]} if c["number"] == 1 else c for c in site["counters"]]
                   + [{"number": 2, "services": ["ho-tich"]}]}
            res = push_config(t, "hub", bad)
            assert res.ack is not None and res.ack.status == "rejected" and res.exit_code == 1
            text = "\n".join(res.ack.errors)
            assert "khong-co" in text and "2" in text and len(res.ack.errors) >= 2, res.ack.errors
            # valid, but not for today's queue: the only counter calling van-hoa-xa-hoi drops it while
            # someone waits; dat-dai's band no longer holds today's numbers; the time zone changes
            lo, hi = next(s for s in site["services"] if s["id"] == "dat-dai")["band"]
            services = [{**s, "band": [lo + 500, hi]} if s["id"] == "dat-dai" else s for s in site["services"]]
            res = push_config(t, "hub", {"counters": _counters_with(site_file, c4={"services": ["dat-dai"]}),
                                         "services": services, "site": {"timezone": "Asia/Bangkok"}})
            assert res.ack is not None and res.ack.status == "rejected", res
            text = "\n".join(res.ack.errors)
            assert "van-hoa-xa-hoi: 1 người đang chờ mà không quầy nào gọi" in text, text
            assert f"dải số [{lo + 500}, {hi}] không chứa các số đã phát hôm nay ({lo}–{lo + 1})" in text, text
            assert "site.timezone" in text, text
            # a push against an old rev is refused as stale
            res = push_config(t, "hub", {"rating_window_s": 60}, base_rev=7)
            assert res.ack is not None and res.ack.status == "stale" and res.ack.rev == 0
        assert _state_at(mosquitto.port, 0).rev == 0
        assert (hub.engine.rev, [t.id for t in hub.engine.waiting()]) == before
        assert hub.ledger.site_changes() == []
        tech.stop()


def test_the_web_account_may_change_only_the_roster(tmp_path, mosquitto, site_file):
    with running_hub(mosquitto.port, tmp_path / "hub", site_file) as hub:
        web = _client(mosquitto.port, tmp_path, "web")
        acks: list[Any] = []
        web.subscribe(web.topics.config_ack("hub"), lambda m: acks.append(m.payload), retained=False)

        def push(config: dict[str, Any], source: str = "web") -> dict[str, Any]:
            n = len(acks)
            web.publish(web.topics.config_set("hub", "web"),
                        ConfigSet(request_id=new_request_id(), source=source, by="truong", base_rev=None, config=config))
            end = time.monotonic() + 5
            while len(acks) == n and time.monotonic() < end:
                web.process(timeout=0.05)
            assert len(acks) > n, "no ack"
            return json.loads(acks[-1])

        assert push({"services": []})["status"] == "rejected"
        assert push({"counters": [{"number": 1, "label_vi": "Quầy VIP"}]})["status"] == "rejected"
        assert push({"counters": [{"number": 9, "officer_id": "lan"}]})["status"] == "rejected"
        assert push({"counters": [{"number": 1, "officer_id": "hoa"}]}, source="tech")["status"] == "rejected"
        assert hub.node_config.rev == 0 and hub.site.counter(1).officer_id == "lan"
        ok = push({"counters": [{"number": 1, "officer_id": "hoa", "officer": "", "services": ["chung-thuc"]}]})
        assert ok["status"] == "applied" and hub.site.counter(1).officer_id == "hoa"
        assert hub.site.counter(1).services == ("chung-thuc",) and hub.site.counter(2).officer_id == "hung"
        assert hub.ledger.site_changes()[-1]["source"] == "web"
        # the same roster again: nothing changes, no new rev, no history row
        again = push({"counters": [{"number": 1, "officer_id": "hoa", "officer": "", "services": ["chung-thuc"]}]})
        assert (again["status"], again["changed"], again["rev"]) == ("applied", False, 1)
        assert len(hub.ledger.site_changes()) == 1
        # a flood of real changes with the web's password: 20 pushes at once, then paced (the five above that
        # reached the hub's merge count; the one sent as another source was refused before it)
        answers = [push({"counters": [{"number": 1, "officer_id": ("lan", "hoa")[i % 2]}]}) for i in range(20)]
        assert [a["status"] for a in answers] == ["applied"] * 15 + ["rejected"] * 5, answers
        assert answers[-1]["errors"][0].startswith("quá nhiều lần đổi phân công liền nhau: thử lại sau ")
        assert hub.node_config.rev == 16 and len(hub.ledger.site_changes()) == 16
        web.stop()


def test_a_restart_keeps_the_pushed_site_unless_the_file_was_edited_since(tmp_path, mosquitto, site_file):
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine), _tool(mosquitto.port) as t:
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, by="kt")
        assert res.ack is not None and res.ack.status == "applied"
    with running_hub(mosquitto.port, state, mine) as hub:
        assert hub.site.counter(2).officer_id == "tuan" and hub.node_config.rev == 1
    mine.write_text(mine.read_text().replace('officer_id = "lan"', 'officer_id = "hung"'))
    with running_hub(mosquitto.port, state, mine) as hub:
        # the technician edited the file and restarted: the file is the site now, at the next rev
        assert hub.site.counter(1).officer_id == "hung" and hub.site.counter(2).officer_id == "hung"
        assert hub.node_config.rev == 2
        assert [c["rev"] for c in hub.ledger.site_changes()] == [1, 2]
        assert hub.ledger.site_changes()[-1]["by"] == "site file"
        assert hub.ledger.site_changes()[-1]["changes"] == ["quầy 1: Nguyễn Thị Lan → Trần Văn Hùng",
                                                          "quầy 2: Lê Minh Tuấn → Trần Văn Hùng"]
    with running_hub(mosquitto.port, state, mine) as hub:  # started again on the same file: nothing new
        assert hub.node_config.rev == 2 and [c["rev"] for c in hub.ledger.site_changes()] == [1, 2]


def test_an_edited_site_file_that_would_strand_todays_tickets_is_not_taken_at_a_restart(tmp_path, mosquitto,
                                                                                         site_file):
    """The file wins at a start only when it can apply to today's queue, checked as a push is: it
    started with no check, and the citizens waiting for a service the file no longer had stayed
    waiting with no counter to call them, and every later push was refused because of them."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine) as hub, _tool(mosquitto.port) as t:
        tech = _client(mosquitto.port, tmp_path)
        waiting = _ask(tech, IssueTicket(request_id=new_request_id(), source="tech", service="van-hoa-xa-hoi"))
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, by="kt")
        assert res.ack is not None and res.ack.status == "applied" and res.ack.rev == 1
        tech.stop()
    # the technician drops van-hoa-xa-hoi from counter 4 in the file, the only counter calling it
    mine.write_text(mine.read_text().replace('services = ["van-hoa-xa-hoi", "dat-dai"]', 'services = ["dat-dai"]'))
    with running_hub(mosquitto.port, state, mine) as hub:
        assert hub.node_config.rev == 1 and hub.site.counter(2).officer_id == "tuan"  # the pushed site runs on
        assert hub.site.counter(4).services == ("van-hoa-xa-hoi", "dat-dai")
        assert hub.site_file_refused == ["lĩnh vực van-hoa-xa-hoi: 1 người đang chờ mà không quầy nào gọi / "
                                         "1 waiting for van-hoa-xa-hoi and no counter would call them"]
        assert hub.alerts["site-file"].severity == "critical"
        assert [c["rev"] for c in hub.ledger.site_changes()] == [1]
        tech = _client(mosquitto.port, tmp_path)
        called = _ask(tech, CallNext(request_id=new_request_id(), source="tech", counter=4))
        assert called["ticket"]["id"] == waiting["ticket"]["id"]  # the citizen is called
        _ask(tech, Finish(request_id=new_request_id(), source="tech", counter=4))
        tech.stop()
    with running_hub(mosquitto.port, state, mine) as hub:  # nobody waits for it now: the file wins
        assert hub.node_config.rev == 2 and hub.site.counter(4).services == ("dat-dai",)
        assert hub.site_file_refused == [] and "site-file" not in hub.alerts
        assert [c["rev"] for c in hub.ledger.site_changes()] == [1, 2]


def test_a_lost_saved_site_goes_on_after_the_ledgers_history_never_over_it(tmp_path, mosquitto, site_file):
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine), _tool(mosquitto.port) as t:
        for rev, officer in ((1, "tuan"), (2, "hoa")):
            res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": officer})}, by="kt")
            assert res.ack is not None and res.ack.rev == rev
    (state / "hub.config.json").write_text("{ not json")  # a damaged card, or a file removed by hand
    with running_hub(mosquitto.port, state, mine) as hub, _tool(mosquitto.port) as t:
        # the site file was not edited: the site the queue ran with (the ledger's) runs on, at its rev, and
        # hub.config.json is written again — not the file's site at rev 0, undoing the head's two changes
        assert hub.node_config.rev == 2 and hub.site.counter(2).officer_id == "hoa"
        assert json.loads((state / "hub.config.json").read_text())["rev"] == 2
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, base_rev=1)
        assert res.ack is not None and res.ack.status == "stale"  # an old rev does not match again
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, base_rev=2)
        assert res.ack is not None and res.ack.status == "applied" and res.ack.rev == 3
        changes = hub.ledger.site_changes()
        assert [c["rev"] for c in changes] == [1, 2, 3]
        assert [c["at"] for c in changes] == sorted(c["at"] for c in changes)
    (state / "hub.config.json").unlink()  # gone, and the file edited meanwhile: the file wins, at the next rev
    mine.write_text(mine.read_text().replace('officer_id = "lan"', 'officer_id = "hung"'))
    with running_hub(mosquitto.port, state, mine) as hub:
        assert hub.node_config.rev == 4 and hub.site.counter(1).officer_id == "hung"
        assert hub.ledger.site_changes()[-1]["by"] == "site file"


def test_the_edited_site_file_of_a_hub_that_never_had_a_push_is_checked_too(tmp_path, mosquitto, site_file):
    """The check rested on the last push's saved site: a hub that never had one (most centres) took
    any edited file, and a citizen waiting for a service it dropped waited with no counter to call."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine) as hub:
        tech = _client(mosquitto.port, tmp_path)
        _ask(tech, IssueTicket(request_id=new_request_id(), source="tech", service="van-hoa-xa-hoi"))
        tech.stop()
        assert hub.node_config.rev == 0
    mine.write_text(mine.read_text().replace('services = ["van-hoa-xa-hoi", "dat-dai"]', 'services = ["dat-dai"]'))
    with running_hub(mosquitto.port, state, mine) as hub:
        assert hub.site.counter(4).services == ("van-hoa-xa-hoi", "dat-dai") and hub.node_config.rev == 0
        assert hub.site_file_refused and "site-file" in hub.alerts


def test_an_edited_site_file_is_taken_at_a_restart_on_the_next_day(tmp_path, mosquitto, site_file):
    """Yesterday's citizens are not today's queue: their tickets expire at the day's turn. The file
    edited in the evening and the hub restarted in the morning was refused because of them."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    clock = ManualClock(time.time())
    with running_hub(mosquitto.port, state, mine, clock=clock), _tool(mosquitto.port) as t:
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, by="kt")
        assert res.ack is not None and res.ack.rev == 1
        tech = _client(mosquitto.port, tmp_path)
        _ask(tech, IssueTicket(request_id=new_request_id(), source="tech", service="van-hoa-xa-hoi"))
        tech.stop()
    mine.write_text(mine.read_text().replace('services = ["van-hoa-xa-hoi", "dat-dai"]', 'services = ["dat-dai"]'))
    clock.advance(DAY)
    with running_hub(mosquitto.port, state, mine, clock=clock) as hub:
        assert hub.site.counter(4).services == ("dat-dai",) and hub.site_file_refused == []
        assert "site-file" not in hub.alerts


def test_a_saved_site_one_push_behind_the_ledger_never_reuses_the_ledgers_rev(tmp_path, mosquitto, site_file):
    """A crash between the ledger's record of a push and hub.config.json (or a restored copy of the
    json): the file, edited meanwhile, ran as "rev 2" while the ledger's rev 2 was another push."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine), _tool(mosquitto.port) as t:
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, by="kt")
        assert res.ack is not None and res.ack.rev == 1
        saved_at_1 = (state / "hub.config.json").read_text()
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "hoa"})}, by="kt")
        assert res.ack is not None and res.ack.rev == 2
    (state / "hub.config.json").write_text(saved_at_1)
    mine.write_text(mine.read_text().replace('officer_id = "lan"', 'officer_id = "hung"'))
    with running_hub(mosquitto.port, state, mine) as hub, _tool(mosquitto.port) as t:
        assert hub.node_config.rev == 3 and hub.site.counter(1).officer_id == "hung"
        changes = hub.ledger.site_changes()
        assert [c["rev"] for c in changes] == [1, 2, 3] and changes[2]["by"] == "site file"
        res = push_config(t, "hub", {"rating_window_s": 60}, base_rev=2)
        assert res.ack is not None and res.ack.status == "stale"
    with running_hub(mosquitto.port, state, mine) as hub:  # the file was taken and saved: not again
        assert hub.node_config.rev == 3 and [c["rev"] for c in hub.ledger.site_changes()] == [1, 2, 3]


def test_a_counter_the_morning_file_removed_has_its_call_and_pause_ended_at_the_days_turn(tmp_path, mosquitto,
                                                                                       site_file):
    """Counter 3 left a citizen called and counter 4 a pause open in the evening; the file taken the
    next morning had neither counter. The day's turn ended only the counters of the new site: the
    ticket stayed "called" for ever, and every later site change was refused ("quầy 3 đang phục vụ
    số 2001") for a counter nobody could reach (a review)."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    clock = ManualClock(time.time())
    with running_hub(mosquitto.port, state, mine, clock=clock):
        tech = _client(mosquitto.port, tmp_path)
        ticket = _ask(tech, IssueTicket(request_id=new_request_id(), source="tech", service="dat-dai"))["ticket"]
        _ask(tech, CallNext(request_id=new_request_id(), source="tech", counter=3))
        _ask(tech, Pause(request_id=new_request_id(), source="tech", counter=4, reason="Họp"))
        tech.stop()
    text = mine.read_text()
    mine.write_text(text[:text.index("[[counters]]\nnumber = 3")])  # counters 3 and 4 gone (the file's last two)
    clock.advance(DAY)
    with running_hub(mosquitto.port, state, mine, clock=clock) as hub, _tool(mosquitto.port) as t:
        assert [c.number for c in hub.site.counters] == [1, 2]
        db = sqlite3.connect(state / "ledger.sqlite")
        try:
            def ticket_state() -> str:
                return db.execute("SELECT state FROM tickets WHERE id = ?", (ticket["id"],)).fetchone()[0]

            end_at = time.monotonic() + 10  # the day turns at the hub's first tick
            while ticket_state() == "called" and time.monotonic() < end_at:
                hub.stop_event.wait(0.05)
            assert ticket_state() == "done"
            assert db.execute("SELECT count(*) FROM visits WHERE ended_at IS NULL").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM pauses WHERE ended_at IS NULL").fetchone() == (0,)
        finally:
            db.close()
        # the removed counters keep no retained state (the hall's phones and boards read it)
        from xephang.contract import CounterState
        from xephang_ops.tools import fetch_retained

        for n in (3, 4):
            assert fetch_retained(t, t.topics.state_counter(n), CounterState, 1.0) is None, n
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, by="kt")
        assert res.ack is not None and res.ack.status == "applied", res


def test_an_edited_file_on_a_hub_without_pushes_is_a_new_rev_an_older_form_cannot_undo(tmp_path, mosquitto, site_file):
    """The file taken on a hub that never had a push stayed rev 0: the head's roster form, loaded at
    rev 0 before the restart, was applied over it and undid the edit (a review)."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine) as hub:
        assert hub.node_config.rev == 0
    mine.write_text(mine.read_text().replace('services = ["van-hoa-xa-hoi", "dat-dai"]', 'services = ["dat-dai", "van-hoa-xa-hoi"]'))
    with running_hub(mosquitto.port, state, mine) as hub, _tool(mosquitto.port) as t:
        assert hub.node_config.rev == 1 and hub.ledger.site_changes()[-1]["by"] == "site file"
        res = push_config(t, "hub", {"counters": _counters_with(site_file, c2={"officer_id": "tuan"})}, base_rev=0)
        assert res.ack is not None and res.ack.status == "stale", res
        assert hub.site.counter(4).services == ("dat-dai", "van-hoa-xa-hoi")


def test_a_ledger_of_an_older_version_still_checks_the_edited_file(tmp_path, mosquitto, site_file):
    """A ledger written before running_site was kept: the edited file was taken unchecked (a review).
    What ran is then the last push (or the ledger's last recorded site)."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine) as hub, _tool(mosquitto.port) as t:
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, by="kt")
        assert res.ack is not None and res.ack.rev == 1
        tech = _client(mosquitto.port, tmp_path)
        _ask(tech, IssueTicket(request_id=new_request_id(), source="tech", service="van-hoa-xa-hoi"))
        tech.stop()
    db = sqlite3.connect(state / "ledger.sqlite")
    db.execute("DELETE FROM meta WHERE key = 'running_site'")
    db.commit()
    db.close()
    mine.write_text(mine.read_text().replace('services = ["van-hoa-xa-hoi", "dat-dai"]', 'services = ["dat-dai"]'))
    with running_hub(mosquitto.port, state, mine) as hub:
        assert hub.site_file_refused and hub.site.counter(4).services == ("van-hoa-xa-hoi", "dat-dai")


def test_a_restored_older_saved_site_with_the_file_unedited_runs_what_ran(tmp_path, mosquitto, site_file):
    """hub.config.json put back at rev 1 after rev 2 was applied (a crash between the two writes, a
    restored copy), the site file untouched: what the ledger ran (rev 2) runs on, and the next push is
    saved on the same file — the untouched file never wins over the pushes (a review: it did the next day)."""
    mine = tmp_path / "site.toml"
    shutil.copy(site_file, mine)
    state = tmp_path / "hub"
    with running_hub(mosquitto.port, state, mine), _tool(mosquitto.port) as t:
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "tuan"})}, by="kt")
        saved_at_1 = (state / "hub.config.json").read_text()
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "hoa"})}, by="kt")
        assert res.ack is not None and res.ack.rev == 2
    (state / "hub.config.json").write_text(saved_at_1)
    with running_hub(mosquitto.port, state, mine) as hub, _tool(mosquitto.port) as t:
        assert hub.node_config.rev == 2 and hub.site.counter(2).officer_id == "hoa" and not hub.site_file_refused
        res = push_config(t, "hub", {"counters": _counters_with(mine, c2={"officer_id": "hung"})}, base_rev=2)
        assert res.ack is not None and res.ack.rev == 3
    with running_hub(mosquitto.port, state, mine) as hub:
        assert hub.node_config.rev == 3 and hub.site.counter(2).officer_id == "hung"
        assert [c["rev"] for c in hub.ledger.site_changes()] == [1, 2, 3]
