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
from xephang.contract import CallNext, ConfigSet, ConfigState, Finish, IssueTicket, new_request_id
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
