"""webd's broker account (`xephang broker-config`): it reads state, events and the devices'
status and alerts, asks the hub for reports and resyncs as itself, and can write nothing else."""

from __future__ import annotations

import pytest

from hubd.main import may_act
from xephang.contract import CONSOLE_ACTIONS, CallNext, ReportRequest, Resync, TicketWait
from xephang_ops.brokerconf import BrokerFiles, acl_text, site_accounts
from xephang_ops.mosquitto import Mosquitto
from xephang_ops.tools import REFUSED, BrokerTarget, ToolClient

pytestmark = pytest.mark.broker
R = "xephang/v1/tuong-linh"
NOT_AUTHORIZED = 135

# what an attacker holding webd's password must not be able to write
FORBIDDEN = [
    f"{R}/state/hall", f"{R}/state/counter/1", f"{R}/event/ticket/called", f"{R}/reply/counter-1",
    f"{R}/req/hub/rate/web", f"{R}/req/hub/issue-ticket/web", f"{R}/req/hub/void-ticket/web",
    f"{R}/req/hub/report", f"{R}/req/hub/report/tech", f"{R}/req/hub/call-next/counter-1",
    f"{R}/config/counter-1/set", f"{R}/config/hub/set", f"{R}/config/hub/set/tech", f"{R}/config/counter-1/set/web",
    f"{R}/config/hub/state", f"{R}/config/hub/ack", f"{R}/sim/dispenser-1/press", f"{R}/node/hub/status",
    f"{R}/node/dispenser-1/alert/paper-out", "xephang/v1/other-commune/req/hub/report/web",
    f"{R}/req/hub/ticket-wait", f"{R}/req/hub/ticket-wait/tech",
    f"{R}/config/announcer-hall/set", f"{R}/config/announcer-hall/set/tech", f"{R}/config/display-hall/set/web",
    f"{R}/config/announcer-hall/state", f"{R}/config/announcer-hall/ack",
]
ALLOWED = [f"{R}/req/hub/report/web", f"{R}/req/hub/resync/web", f"{R}/node/web/status", f"{R}/node/web/health",
           f"{R}/req/hub/call-next/web", f"{R}/req/hub/arrived/web",  # the console's, checked by the hub
           f"{R}/req/hub/ticket-wait/web",  # the phone page's range, read-only
           f"{R}/config/hub/set/web",  # the head's roster: the hub takes only counters' officer and services
           f"{R}/config/announcer-hall/set/web"]  # the head's recorded voice: only the pack's URL and checksum


def _client(broker: Mosquitto, files: BrokerFiles, user: str) -> ToolClient:
    return ToolClient(BrokerTarget(site="tuong-linh", port=broker.tech_port or broker.port, username=user,
                                   password=files.passwords[user])).connect()


def test_broker_config_makes_a_web_account_with_read_and_report_rights(site):
    accounts = site_accounts(site)
    assert ("web", "web") in [(a.username, a.role) for a in accounts]
    acl = acl_text("tuong-linh", accounts)
    block = acl.split("user web\n", 1)[1].split("\n\n", 1)[0]
    assert f"topic write {R}/req/hub/report/web" in block
    # reports as itself, and the officers' console actions as itself (the hub checks each names an
    # officer the site seats at that counter), and the head's roster as a config push to the hub on
    # its own topic: nothing else
    assert {line for line in block.splitlines() if line.startswith("topic write")} == {
        f"topic write {R}/req/hub/report/web", *(f"topic write {R}/req/hub/{a}/web" for a in CONSOLE_ACTIONS),
        f"topic write {R}/req/hub/ticket-wait/web", f"topic write {R}/config/hub/set/web",
        f"topic write {R}/config/announcer-hall/set/web"}


@pytest.mark.parametrize("topic", FORBIDDEN, ids=[t.replace(R + "/", "") for t in FORBIDDEN])
def test_webd_password_cannot_write_anything_else(secured, topic):
    broker, files = secured
    with _client(broker, files, "web") as c:
        assert c.publish(topic, b"{}") == NOT_AUTHORIZED


@pytest.mark.parametrize("topic", ALLOWED, ids=[t.replace(R + "/", "") for t in ALLOWED])
def test_webd_may_ask_for_reports_and_resync_as_itself(secured, topic):
    broker, files = secured
    with _client(broker, files, "web") as c:
        assert c.publish(topic, b"{}") < REFUSED


def test_webd_reads_state_events_and_device_alerts(secured):
    broker, files = secured
    with _client(broker, files, "hub") as hub, _client(broker, files, "dispenser-1") as disp, \
            _client(broker, files, "web") as web:
        web.subscribe(f"{R}/state/#", f"{R}/event/#", f"{R}/node/+/alert/+")
        assert hub.publish(f"{R}/event/ticket/called", b"e") < REFUSED
        assert disp.publish(f"{R}/node/dispenser-1/alert/paper-out", b"a") < REFUSED
        got = set()
        while (m := web.get(3.0)) is not None and len(got) < 2:
            got.add(m.topic)
        assert got == {f"{R}/event/ticket/called", f"{R}/node/dispenser-1/alert/paper-out"}


def test_the_hub_answers_reports_to_web_but_no_queue_action():
    """Defence in depth: the hub's may_act reads the same table as the ACL."""
    assert may_act("web", ReportRequest(request_id="r-12345678", source="web"), ["tech"])
    assert may_act("web", Resync(request_id="r-12345678", source="web"), ["tech"])
    assert not may_act("web", CallNext(request_id="r-12345678", source="web", counter=1), ["tech"])
    assert not may_act("counter-1", ReportRequest(request_id="r-12345678", source="counter-1"), ["tech"])
    # the phone page's range: webd only (each answer costs the hub a played-forward day per ticket)
    assert may_act("web", TicketWait(request_id="r-12345678", source="web", ticket_ids=[1]), ["tech"])
    for board in ("counter-1", "dispenser-1", "display-hall", "announcer-hall"):
        assert not may_act(board, TicketWait(request_id="r-12345678", source=board, ticket_ids=[1]), ["tech"])


def test_the_announcer_hears_the_web_voice_push_and_no_one_elses_named_push(secured):
    broker, files = secured
    with _client(broker, files, "web") as web, _client(broker, files, "announcer-hall") as ann:
        ann.subscribe(f"{R}/config/announcer-hall/set/web")
        web.subscribe(f"{R}/config/announcer-hall/ack", f"{R}/config/announcer-hall/state")
        assert web.publish(f"{R}/config/announcer-hall/set/web", b"w") < REFUSED
        m = ann.get(3.0)
        assert m is not None and m.topic == f"{R}/config/announcer-hall/set/web" and m.payload == b"w"
        assert ann.publish(f"{R}/config/announcer-hall/ack", b"a") < REFUSED
        m = web.get(3.0)
        assert m is not None and m.topic == f"{R}/config/announcer-hall/ack"
