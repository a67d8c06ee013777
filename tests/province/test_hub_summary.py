"""The hub's daily summary and hourly summary events: the centre report's figures, for the province.

A working day runs through the hub's real engine and ledger; then the hub, started on that
ledger, publishes its retained daily summary. Its figures must be those of ``xephang report``
for the same day, not a second definition of "served" or "no-show".
"""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from hubd.main import HubDaemon, HubSettings
from province.synth import CentreSim
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import DailySummary, HourlySummary
from xephang.testing import FakeBus
from xephang_reports.build import report_from_ledger

DAY = date(2026, 11, 3)
SUMMARY = "xephang/v1/tuong-linh/state/summary"
HOURLY = "xephang/v1/tuong-linh/event/summary/hourly"


@pytest.fixture
def hub_after_a_day(tmp_path, site, site_file, fake_broker):
    """A hub on the ledger of a busy day (180 citizens), its bus on a fake broker; and the day's end."""
    sim = CentreSim(site, tmp_path / "state" / "ledger.sqlite", seed=4)
    sim.day(DAY, tickets=180)
    end = sim.now
    sim.close()
    clock = ManualClock(end + 60)
    settings = HubSettings(site="tuong-linh", node="hub", site_file=site_file, state_dir=tmp_path / "state")
    hub = HubDaemon(settings, bus=FakeBus(fake_broker, site="tuong-linh", node="hub", role="hub",
                                          state_dir=tmp_path / "state"), clock=clock)
    hub.bus.start()
    assert hub.bus.wait_connected(5)
    yield hub, clock
    hub.bus.stop()
    hub.ledger.close()


def test_daily_summary_has_the_reports_figures_for_the_same_day(hub_after_a_day, fake_broker, site):
    hub, clock = hub_after_a_day
    now = clock.now()
    hub.publish_summary(now)
    body = json.loads(fake_broker.retained[SUMMARY])
    own = report_from_ledger(hub.ledger.path, site, period=DAY.isoformat(), group_by="service", now=now)["totals"]
    assert body["schema"] == "xephang.state.summary.v1" and body["day"] == DAY.isoformat() and body["at"] == now
    assert own["served"] > 50 and own["no_shows"] > 0 and own["transferred"] > 0
    for k in ("issued", "served", "no_shows", "voided", "expired", "transferred", "calls"):
        assert body[k] == own[k], k
    assert body["wait"] == own["wait"]  # n, mean, median, P90 in seconds
    assert body["service_time"] == own["service_time"]
    assert body["within_target"] == own["within_target"]
    assert body["ratings"] == own["ratings"] and sum(body["ratings"].values()) == body["rated"] > 0
    assert body["satisfaction"] == own["satisfaction"]
    assert body["mean_wait_min"] == round(own["wait"]["mean"] / 60, 2)
    # the payload is what the contract documents: every field the hub sends is a field of the model
    model = DailySummary.model_validate(body)
    assert set(body) <= set(model.model_dump(by_alias=True))


def test_an_hourly_summary_event_goes_out_once_per_hour(hub_after_a_day, fake_broker, site):
    hub, clock = hub_after_a_day
    hour_now = datetime.fromtimestamp(clock.now(), VN_TZ).hour
    by_hour = report_from_ledger(hub.ledger.path, site, period=DAY.isoformat(), group_by="hour", now=clock.now())
    last_hour = {r["key"]: r for r in by_hour["rows"]}[hour_now - 1]
    assert last_hour["issued"] > 0
    hub.publish_summary(clock.now())  # first summary since start: the hour that just ended goes out
    hub.publish_summary(clock.now() + 60)  # same hour: nothing more
    sent = [json.loads(p) for _, p in fake_broker.messages(HOURLY)]
    assert [m["hour"] for m in sent] == [hour_now - 1]
    first = sent[0]
    assert first["schema"] == "xephang.event.summary.hourly.v1"
    assert set(first) <= set(HourlySummary.model_validate(first).model_dump(by_alias=True))
    assert first["event_id"] == f"summary-{DAY.isoformat()}-{hour_now - 1:02d}"
    assert first["this_hour"] == {k: last_hour[k] for k in ("issued", "served", "no_shows", "voided")}
    clock.set(clock.now() + 3600)
    hub.publish_summary(clock.now())
    sent = [json.loads(p) for _, p in fake_broker.messages(HOURLY)]
    assert [m["hour"] for m in sent] == [hour_now - 1, hour_now]
    # the day so far, as the daily summary says it; and that hour's own share
    daily = json.loads(fake_broker.retained[SUMMARY])
    assert {k: sent[-1][k] for k in ("issued", "served", "wait")} == {k: daily[k] for k in ("issued", "served", "wait")}


def test_summaries_land_in_the_province_database(hub_after_a_day, fake_broker, pg):
    from province.ingest import Store

    hub, clock = hub_after_a_day
    hub.publish_summary(clock.now())
    clock.set(clock.now() + 3600)
    hub.publish_summary(clock.now())
    msgs = [(SUMMARY, fake_broker.retained[SUMMARY])] + fake_broker.messages(HOURLY)
    res = Store(pg).write(msgs + msgs)  # and again: redelivery stores nothing twice
    assert res.rejected == 0
    with pg.cursor() as cur:
        cur.execute("SELECT day, payload->>'served' FROM daily_summaries")
        [(day, served)] = cur.fetchall()
        cur.execute("SELECT hour FROM hourly_summaries ORDER BY hour")
        hours = [r[0] for r in cur.fetchall()]
    assert day == DAY and int(served) == json.loads(fake_broker.retained[SUMMARY])["served"]
    assert len(hours) == 2 and hours[1] == hours[0] + 1
