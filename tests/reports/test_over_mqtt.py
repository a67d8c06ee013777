"""A technician's laptop asks the running hub for a report over MQTT (real mosquitto, real hub)."""

from __future__ import annotations

import json
import shutil

import pytest

from hubd.testing import running_hub
from tests.reports.conftest import NOW
from xephang.bus import Bus
from xephang.clock import ManualClock
from xephang.contract import ReportRequest, new_request_id
from xephang.settings import BrokerSettings
from xephang_ops import cli
from xephang_reports.build import report_from_ledger

pytestmark = pytest.mark.broker


@pytest.fixture
def hub_with_story(mosquitto, story_ledger, site_file, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(story_ledger, state / "ledger.sqlite")
    with running_hub(mosquitto.port, state, site_file, clock=ManualClock(NOW)) as hub:
        yield hub


def ask(port: int, tmp_path, **fields) -> object:
    bus = Bus(site="tuong-linh", node="tech-laptop", broker=BrokerSettings(port=port), state_dir=tmp_path / "c")
    bus.start()
    try:
        assert bus.wait_connected(5)
        return bus.request_sync(ReportRequest(request_id=new_request_id(), source="tech-laptop", **fields),
                                timeout_s=5, attempts=1)
    finally:
        bus.stop()


def test_hub_answers_with_the_same_report_as_the_ledger(hub_with_story, mosquitto, story_ledger, site, tmp_path):
    reply = ask(mosquitto.port, tmp_path, period="2026-11-23", group_by="counter", lang="vi")
    assert reply is not None and reply.status == "ok"
    local = report_from_ledger(story_ledger, site, period="2026-11-23", group_by="counter", lang="vi", now=NOW)
    assert reply.data == json.loads(json.dumps(local))


def test_hub_refuses_a_bad_period_with_a_reason(hub_with_story, mosquitto, tmp_path):
    reply = ask(mosquitto.port, tmp_path, period="2026-Q7", group_by="service")
    assert reply is not None and reply.status == "error"
    assert reply.error.code == "invalid" and "2026-Q7" in reply.error.message


def test_cli_over_mqtt_prints_and_writes_the_hubs_report(hub_with_story, mosquitto, tmp_path, capsys):
    # no --site: the same default as every other tool; nothing but the report on stdout
    rc = cli.main(["report", "--mqtt", "--host", "127.0.0.1", "--port", str(mosquitto.port),
                   "--period", "2026-11-23..2026-11-24", "--group-by", "day", "--lang", "en",
                   "--html", str(tmp_path / "r.html"), "--timeout", "5"])
    cap = capsys.readouterr()
    out = cap.out
    assert rc == 0
    assert "INFO" not in out and "INFO" not in cap.err
    assert "QUEUE REPORT — 23/11/2026 – 24/11/2026" in out and "Tue 24/11/2026" in out
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("data:image/png;base64,") == 3


def test_cli_over_mqtt_without_a_hub_says_so(mosquitto, tmp_path, capsys):
    rc = cli.main(["report", "--mqtt", "--port", str(mosquitto.port), "--site", "tuong-linh", "--timeout", "0.5"])
    assert rc == 3 and "did not answer" in capsys.readouterr().err


def test_a_quarter_by_day_comes_packed_to_who_reads_it_and_too_large_to_who_does_not(mosquitto, site, site_file,
                                                                                     tmp_path):
    """A quarter by day was refused (60 KB of rows); packed it comes whole. An asker that does not say
    it reads packed rows (an older webd or laptop) is refused as before, with the code ``too-large``
    (it was ``invalid``, the code of a bad period: a page could not tell the two apart)."""
    from datetime import date, datetime

    from tests.benchmod import load_bench
    from xephang.clock import VN_TZ
    from xephang_reports.build import unpack_report

    state = tmp_path / "state"
    state.mkdir()
    load_bench("report_quarter").generate_history(state / "ledger.sqlite", site, first=date(2026, 10, 1), days=92,
                                                  tickets_per_day=130, seed=3)
    now = datetime(2027, 1, 5, 10, tzinfo=VN_TZ).timestamp()
    local = report_from_ledger(state / "ledger.sqlite", site, period="2026-Q4", group_by="day", lang="vi", now=now)
    with running_hub(mosquitto.port, state, site_file, clock=ManualClock(now)):
        old = ask(mosquitto.port, tmp_path, period="2026-Q4", group_by="day")
        assert old.status == "error" and old.error.code == "too-large" and "shorter period" in old.error.message
        new = ask(mosquitto.port, tmp_path, period="2026-Q4", group_by="day", packed=True)
        assert new.status == "ok" and "rows_packed" in new.data and unpack_report(new.data) == json.loads(json.dumps(local))
        rc = cli.main(["report", "--mqtt", "--host", "127.0.0.1", "--port", str(mosquitto.port), "--period", "2026-Q4",
                       "--group-by", "day", "--csv", str(tmp_path / "q4.csv"), "--timeout", "5"])
    assert rc == 0
    lines = (tmp_path / "q4.csv").read_text(encoding="utf-8-sig").splitlines()
    assert sum(1 for x in lines if x.startswith(("T2 ", "T3 ", "T4 ", "T5 ", "T6 ", "T7 "))) == len(local["rows"])


@pytest.fixture
def older_hub(hub_with_story, monkeypatch):
    """The hub as it read a report request before packed reports: requests are strict, and `packed`
    was no field of it, so decode refused it as every unknown field ("invalid")."""
    import hubd.main
    from xephang.contract import BadPayload

    real = hubd.main.decode

    def decode_before_20261207(model, payload):
        if model is ReportRequest and "packed" in json.loads(payload):
            raise BadPayload("invalid", "packed: Extra inputs are not permitted")
        return real(model, payload)

    monkeypatch.setattr(hubd.main, "decode", decode_before_20261207)
    return hub_with_story


def test_a_laptop_upgraded_before_the_hub_still_gets_its_report(older_hub, mosquitto, tmp_path, capsys):
    """Every report asked by the new CLI of a hub that predates `packed` was refused as invalid (the
    field unknown): it asks again without it. A request without `packed` never carries the field."""
    assert b"packed" not in ReportRequest(request_id=new_request_id(), source="tech").to_json()
    refused = ask(mosquitto.port, tmp_path, period="2026-11-23", packed=True)
    assert refused.status == "error" and refused.error.code == "invalid" and "packed" in refused.error.message
    rc = cli.main(["report", "--mqtt", "--port", str(mosquitto.port), "--period", "2026-11-23", "--lang", "en",
                   "--timeout", "5"])
    assert rc == 0 and "QUEUE REPORT — 23/11/2026" in capsys.readouterr().out


def test_webd_asks_an_older_hub_again_without_packed(older_hub, mosquitto, site_file, tmp_path):
    import threading

    from webd.config import WebConfig, WebSettings
    from webd.main import WebDaemon
    from xephang.ticketlink import write_secret
    from xephang_ops.mosquitto import free_port

    (tmp_path / "web").mkdir()
    write_secret(tmp_path / "link.key")
    web = WebDaemon(WebSettings(site="tuong-linh", node="web", site_file=site_file, state_dir=tmp_path / "web",
                                broker=BrokerSettings(port=mosquitto.port),
                                web=WebConfig(listen="127.0.0.1", port=free_port(), link_secret_file=tmp_path / "link.key",
                                              accounts_file=tmp_path / "web" / "accounts.json")), serve=False)
    t = threading.Thread(target=web.run, daemon=True)
    t.start()
    try:
        assert web.bus.wait_connected(10)
        got: list[object] = []
        answered = threading.Event()
        web.ask_from_web("report", {"period": "2026-11-23", "group_by": "service", "lang": "vi"},
                         lambda r: (got.append(r), answered.set()))
        assert answered.wait(20)
        assert got[0] is not None and got[0].status == "ok", got
    finally:
        web.stop_event.set()
        t.join(10)
