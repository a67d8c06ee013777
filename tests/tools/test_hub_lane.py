"""One counter's password floods the hub with requests, for real: the citizen's ticket still comes.

A real mosquitto with the ACL and passwords `xephang broker-config` writes and the site broker's
queue (200,000 per client), a real `hubd` process with its second connection (`hub.lane_password_file`,
hubd/lane.py), and counter 1's password piping QoS 1 requests through `mosquitto_pub -l`. Before
the lane, a ticket pressed during such a flood took 17.6 s or was never answered
(bench/request_flood.py runs both and prints the figures). The control in the same run: counter 2's
call-next, which shares the hub's main connection with the flooder, is not answered in that time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.province.helpers import wait_for
from xephang.bus import Bus
from xephang.contract import CallNext, IssueTicket, Topics, new_request_id
from xephang.settings import BrokerSettings
from xephang_faults.flood import RequestFlood
from xephang_ops.brokerconf import site_accounts, write_broker_files
from xephang_ops.mosquitto import Mosquitto, find_mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
T = Topics("tuong-linh")


def test_a_ticket_is_answered_while_a_counters_password_floods_the_hub(tmp_path, site, site_file):
    if not find_mosquitto() or not RequestFlood.available():
        pytest.skip("mosquitto and mosquitto_pub are not installed")
    files = write_broker_files(tmp_path / "broker", site, site_accounts(site))
    assert "user hub-lane" in files.acl_file.read_text()
    flood: RequestFlood | None = None
    with Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file, persistence=False,
                   bind_client_ids=True, extra_conf="max_queued_messages 200000") as broker:
        env = {**os.environ, "XEPHANG_SITE": "tuong-linh", "XEPHANG_SITE_FILE": str(site_file), "XEPHANG_NODE": "hub",
               "XEPHANG_STATE_DIR": str(tmp_path / "hub"), "XEPHANG_BROKER__PORT": str(broker.port),
               "XEPHANG_BROKER__PASSWORD_FILE": str(files.passwords_dir / "hub.pw"),
               "XEPHANG_HUB__LANE_PASSWORD_FILE": str(files.passwords_dir / "hub-lane.pw")}
        log = tmp_path / "hub.log"
        hub = subprocess.Popen([sys.executable, "-m", "hubd.main"], env=env, cwd=REPO, stderr=log.open("w"))
        buses: list[Bus] = []
        try:
            for node in ("dispenser-1", "counter-2"):
                b = Bus(site="tuong-linh", node=node, state_dir=tmp_path / "clients",
                        broker=BrokerSettings(port=broker.port, password_file=files.passwords_dir / f"{node}.pw"))
                b.start()
                assert b.wait_connected(10)
                buses.append(b)
            disp, counter = buses
            wait_for(lambda: "lane: hub-lane reads" in log.read_text(), 20, "the hub's lane subscribed")

            def ticket(attempts: int = 5):
                return disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1",
                                                     service="ho-tich"), timeout_s=2.0, attempts=attempts)

            assert ticket() is not None
            flood = RequestFlood(broker.port, files.passwords["counter-1"]).start()
            # the broker's queue for the hub's main connection is full: what waits there waits ~12 s
            wait_for(lambda: "Outgoing messages are being dropped for client hub" in broker.log_path.read_text(),
                     60, "the hub's main queue full", every=0.2)
            call: list = []
            t = threading.Thread(target=lambda: call.append(counter.request_sync(
                CallNext(request_id=new_request_id(), source="counter-2", counter=2), timeout_s=3.0, attempts=1)))
            t.start()
            answers = [ticket() for _ in range(3)]
            t.join(10)
            assert all(a is not None and a.status == "ok" for a in answers), answers
            assert call == [None]  # the control: the main connection is that far behind
            assert hub.poll() is None, log.read_text()[-2000:]
        finally:
            if flood is not None:
                flood.stop()
            for b in buses:
                b.stop()
            hub.terminate()
            hub.wait(15)
    numbers = [a.data["ticket"]["number"] for a in answers]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


def test_a_lane_the_broker_refuses_gives_up_once_and_the_hub_goes_on_without_it(tmp_path, site, caplog):
    """A centre that sets `lane_password_file` before installing the new broker config: the lane's
    login is refused; it says so once and stops trying (no reconnect every two seconds), and the hub
    reads every request on its main connection as before (tests/hubd/test_lane.py)."""
    import logging

    from hubd.lane import Lane

    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    files = write_broker_files(tmp_path / "broker", site, site_accounts(site))
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    with Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file, persistence=False,
                   bind_client_ids=True) as broker, caplog.at_level(logging.ERROR, logger="hubd.lane"):
        lane = Lane(BrokerSettings(port=broker.port, reconnect_max_s=0.5), T, lambda m: None, password_file=wrong)
        lane.start()
        try:
            wait_for(lambda: "given up" in caplog.text, 10, "the lane gave up")
            assert not lane.subscribed.wait(2) and lane.stats.connects == 0 and not lane.publish(T.reply("web"), b"{}")
            assert lane.stats.refused == 1  # no more attempts in those 2 s (reconnect_max_s 0.5)
        finally:
            lane.stop()
