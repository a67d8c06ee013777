"""One board's password floods the hub with requests, for real: the citizen's ticket still comes,
the hall board still hears of it, the other boards' requests are answered.

A real mosquitto with the ACL and passwords `xephang broker-config` writes and the site broker's
queue (200,000 per client), a real `hubd` process with its reading connections
(`hub.inbox_password_file`, `hub.lanes_dir`: hubd/lane.py), and counter 1's or dispenser 2's
password piping QoS 1 requests through `mosquitto_pub -l`. Before the lanes, a ticket pressed during
such a flood took 17.6 s or was never answered; with one lane it was answered in 46 ms but the hall
board heard of it 11-27 s later or not at all (the main connection read the flood, and what it
published was acknowledged behind it); counter 2's call-next, sharing the hub's queue with the
flooder, took 7-14 s or went unanswered until each board had its own lane. bench/request_flood.py
prints the figures. The control in the same run: a technician's resync, which only the inbox
reads, is not answered in that time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.province.helpers import wait_for
from xephang.bus import Bus
from xephang.contract import CallNext, IssueTicket, Resync, Topics, new_request_id
from xephang.settings import BrokerSettings
from xephang_faults.flood import RequestFlood
from xephang_ops.brokerconf import site_accounts, write_broker_files
from xephang_ops.mosquitto import Mosquitto, find_mosquitto
from xephang_ops.tools import BrokerTarget, ToolClient

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
T = Topics("tuong-linh")


def _hub(tmp_path: Path, site_file: Path, port: int, passwords: Path, **extra: str) -> subprocess.Popen:
    env = {**os.environ, "XEPHANG_SITE": "tuong-linh", "XEPHANG_SITE_FILE": str(site_file), "XEPHANG_NODE": "hub",
           "XEPHANG_STATE_DIR": str(tmp_path / "hub"), "XEPHANG_BROKER__PORT": str(port),
           "XEPHANG_BROKER__PASSWORD_FILE": str(passwords / "hub.pw"), **extra}
    return subprocess.Popen([sys.executable, "-m", "hubd.main"], env=env, cwd=REPO,
                            stderr=(tmp_path / "hub.log").open("w"))


def _bus(tmp_path: Path, node: str, port: int, passwords: Path) -> Bus:
    b = Bus(site="tuong-linh", node=node, state_dir=tmp_path / "clients",
            broker=BrokerSettings(port=port, password_file=passwords / f"{node}.pw"))
    b.start()
    assert b.wait_connected(10), node
    return b


def _wrong_password(tmp_path: Path, site):
    """The site's broker files, and a password file its broker refuses."""
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    return write_broker_files(tmp_path / "broker", site, site_accounts(site)), wrong


def _site_broker(tmp_path: Path, files) -> Mosquitto:
    return Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file, persistence=False,
                     bind_client_ids=True)


def _ticket(disp: Bus, attempts: int = 5):
    return disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich"),
                             timeout_s=2.0, attempts=attempts)


@pytest.mark.parametrize("flooder", ["counter-1", "dispenser-2"])
def test_tickets_calls_and_the_board_go_on_while_one_boards_password_floods_the_hub(tmp_path, site, site_file,
                                                                                     flooder):
    """Counter 1's pause requests, or dispenser 2's tickets (the board in the hall a citizen can reach),
    as fast as the broker takes them: dispenser 1's tickets are answered and shown, counter 2's
    call-next, the web daemon's, the speaker's and a technician's requests are answered; a request on
    the short form, which only the inbox reads, waits (the control)."""
    if not find_mosquitto() or not RequestFlood.available():
        pytest.skip("mosquitto and mosquitto_pub are not installed")
    files = write_broker_files(tmp_path / "broker", site, site_accounts(site, dispensers=2))
    pw = files.passwords_dir
    flood: RequestFlood | None = None
    with Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file, persistence=False,
                   bind_client_ids=True, extra_conf="max_queued_messages 200000") as broker:
        hub = _hub(tmp_path, site_file, broker.port, pw, XEPHANG_HUB__INBOX_PASSWORD_FILE=str(pw / "hub-inbox.pw"),
                   XEPHANG_HUB__LANES_DIR=str(pw))
        log = tmp_path / "hub.log"
        buses: list[Bus] = []
        heard: set[int] = set()  # the hall board: the tickets whose `issued` event reached it
        board = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="xephang-display-hall", protocol=mqtt.MQTTv5)
        board.username_pw_set("display-hall", files.passwords["display-hall"])
        board.on_message = lambda _c, _u, m: heard.add(json.loads(m.payload)["ticket"]["id"])
        try:
            board.connect("127.0.0.1", broker.port)
            board.loop_start()
            board.subscribe(T.event("ticket", "issued"), qos=1)
            disp, counter, speaker, web, tech = buses[:] = [
                _bus(tmp_path, n, broker.port, pw) for n in ("dispenser-1", "counter-2", "announcer-hall", "web", "tech")]
            wait_for(lambda: all(f"{r}: reads" in log.read_text()
                                 for r in ("hub-inbox", "hub-dispenser-1", "hub-counter-2", "hub-web", "hub-tech")),
                     20, "the hub's readers subscribed")
            first = _ticket(disp)
            wait_for(lambda: first.data["ticket"]["id"] in heard, 10, "the board heard of the first ticket")
            flood = RequestFlood(broker.port, files.passwords[flooder], node=flooder).start()
            # the broker's queue for the hub's inbox is full: what waits there waits ~12 s
            wait_for(lambda: "Outgoing messages are being dropped for client hub-inbox" in broker.log_path.read_text(),
                     60, "the hub's inbox queue full", every=0.2)
            # the control: what only the inbox reads (a request on the short form, no sender in its
            # topic) waits behind the flood
            control = ToolClient(BrokerTarget(site="tuong-linh", port=broker.tech_port or broker.port, username="tech",
                                              password=files.passwords["tech"])).connect()
            control.subscribe(T.reply("tech"))
            short = Resync(request_id="tech-short-form-0001", source="tech")
            assert control.publish(T.req("resync"), short.to_json()) < 128
            answers = [_ticket(disp) for _ in range(3)]
            # counter 2's key through its own lane: answered, and it calls the first ticket waiting
            call = counter.request_sync(CallNext(request_id=new_request_id(), source="counter-2", counter=2),
                                        timeout_s=2.0, attempts=3)
            assert call is not None and call.status == "ok", call
            for b, node in ((web, "web"), (speaker, "announcer-hall"), (tech, "tech")):  # a technician: hub-tech
                r = b.request_sync(Resync(request_id=new_request_id(), source=node), timeout_s=2.0, attempts=3)
                assert r is not None and r.status == "ok", (node, r)
            assert all(a is not None and a.status == "ok" for a in answers), answers
            # the hub's main connection reads no flood: its events reach the hall at once (before the
            # inbox, 11-27 s later or never)
            ids = {a.data["ticket"]["id"] for a in answers}
            wait_for(lambda: ids <= heard, 5, "the board heard of the tickets pressed during the flood")
            replies, end = [], time.monotonic() + 2.0  # (reply/tech has the named resync's answer too)
            while (m := control.get(end - time.monotonic())) is not None:
                replies.append(json.loads(m.payload)["request_id"])
            assert short.request_id not in replies, replies  # the control: the inbox is that far behind
            control.close()
            assert not re.search(r"dropped for client hub\b(?!-)", broker.log_path.read_text())  # main: never full
            assert hub.poll() is None, log.read_text()[-2000:]
        finally:
            if flood is not None:
                flood.stop()
            for b in buses:
                b.stop()
            board.loop_stop()
            hub.terminate()
            hub.wait(15)
    numbers = [a.data["ticket"]["number"] for a in answers]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


def test_the_readers_come_back_after_a_broker_restart(tmp_path, site, site_file):
    """The broker restarts (an update, a power cut on its Pi): the inbox and the lane reconnect on
    their own and subscribe again, and tickets and a counter's call are answered and shown as before."""
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    files = write_broker_files(tmp_path / "broker", site, site_accounts(site))
    pw = files.passwords_dir
    with Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file,
                   bind_client_ids=True) as broker:
        hub = _hub(tmp_path, site_file, broker.port, pw, XEPHANG_HUB__INBOX_PASSWORD_FILE=str(pw / "hub-inbox.pw"),
                   XEPHANG_HUB__LANES_DIR=str(pw), XEPHANG_BROKER__RECONNECT_MAX_S="1")
        log = tmp_path / "hub.log"
        buses: list[Bus] = []
        try:
            disp, counter = buses[:] = [_bus(tmp_path, n, broker.port, pw) for n in ("dispenser-1", "counter-2")]
            for round_ in (1, 2):
                wait_for(lambda n=round_: all(log.read_text().count(f"{r}: reads") >= n
                                              for r in ("hub-inbox", "hub-dispenser-1", "hub-counter-2")),
                         30, f"the readers subscribed ({round_})")
                a = _ticket(disp, attempts=10)
                assert a is not None and a.status == "ok", a
                c = counter.request_sync(CallNext(request_id=new_request_id(), source="counter-2", counter=2),
                                         timeout_s=2.0, attempts=10)
                assert c is not None and c.status == "ok", c
                if round_ == 1:
                    broker.restart()
            assert "hub-inbox: given up" not in log.read_text() and hub.poll() is None
        finally:
            for b in buses:
                b.stop()
            hub.terminate()
            hub.wait(15)


def test_an_inbox_the_broker_refuses_gives_up_once_and_the_main_connection_reads(tmp_path, site, site_file):
    """A centre that sets `inbox_password_file` before installing the new broker config: the inbox's
    login is refused; it says so once and the hub reads the requests on its main connection."""
    files, wrong = _wrong_password(tmp_path, site)
    with _site_broker(tmp_path, files) as broker:
        hub = _hub(tmp_path, site_file, broker.port, files.passwords_dir, XEPHANG_HUB__INBOX_PASSWORD_FILE=str(wrong))
        log = tmp_path / "hub.log"
        disp = _bus(tmp_path, "dispenser-1", broker.port, files.passwords_dir)
        try:
            wait_for(lambda: "the main connection reads the requests" in log.read_text(), 20, "the fallback")
            a = _ticket(disp)
            assert a is not None and a.status == "ok"
            assert log.read_text().count("hub-inbox: given up") == 1
        finally:
            disp.stop()
            hub.terminate()
            hub.wait(15)


def test_a_lane_the_broker_refuses_gives_up_once_and_the_hub_goes_on_without_it(tmp_path, site, caplog):
    """A centre that sets `lane_password_file` before installing the new broker config: the lane's
    login is refused; it says so once and stops trying (no reconnect every two seconds), and the hub
    reads every request through its inbox (or main connection) as before."""
    import logging

    from hubd.lane import Lane

    files, wrong = _wrong_password(tmp_path, site)
    with _site_broker(tmp_path, files) as broker, caplog.at_level(logging.ERROR, logger="xephang.reader"):
        lane = Lane(BrokerSettings(port=broker.port, reconnect_max_s=0.5), T, lambda m: None, password_file=wrong)
        lane.start()
        try:
            wait_for(lambda: "given up" in caplog.text, 10, "the lane gave up")
            assert not lane.subscribed.wait(2) and lane.stats.connects == 0 and lane.gave_up
            assert lane.stats.refused == 1  # no more attempts in those 2 s (reconnect_max_s 0.5)
        finally:
            lane.stop()
