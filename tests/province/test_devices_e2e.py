"""A province technician sees a centre's devices live, and right after a link cut.

Real brokers: a centre's Mosquitto bridged (the ``xephang bridge-config`` fragment) to the
province Mosquitto, the ingester writing into PostgreSQL. A dispenser at the centre is a separate
process holding its MQTT connection with the contract's Will (offline, its session). While the
province link is down the dispenser process is killed (its Will fires at the centre), its
paper-out alert is cleared and a printer-offline alert raised. When the link returns the province
shows it offline since then, the old alert closed in the history and the new one open; restarting
the ingester (every retained message delivered again) adds no history.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

from province.db import connect
from province.devices import list_devices
from province.ingest import Ingester
from tests.province.helpers import publish, retained, wait_for
from xephang.contract import Alert, NodeHealth, NodeStatus, Topics
from xephang.settings import BrokerSettings
from xephang_ops.bridgeconf import bridge_conf_text
from xephang_ops.mosquitto import Mosquitto, find_mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SITE = "tuong-linh"
T = Topics(SITE)
NODE = "dispenser-1"

# a node's connection as the shared Bus makes it: retained Will "offline" with its session number
NODE_PROCESS = """
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, topic, will = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dispenser-1")
c.will_set(topic, will, qos=1, retain=True)
c.connect("127.0.0.1", port, keepalive=5)
c.loop_start()
print("connected", flush=True)
while True:
    time.sleep(1)
"""


def test_a_dispenser_that_dies_during_a_link_cut_shows_offline_at_the_province(tmp_path, pg_dsn):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    with ExitStack() as stack:
        province = Mosquitto(tmp_path / "province").start()
        stack.callback(province.kill)
        centre = Mosquitto(tmp_path / "centre", extra_conf=bridge_conf_text(
            site=SITE, address=f"127.0.0.1:{province.port}", restart_s=(1, 1))).start()
        stack.callback(centre.kill)

        def start_ingester() -> tuple[Ingester, threading.Event, threading.Thread]:
            ing = Ingester(dsn=pg_dsn, broker=BrokerSettings(port=province.port), batch_wait_s=0.02)
            stop = threading.Event()
            th = threading.Thread(target=ing.run, args=(stop,), daemon=True)
            th.start()
            assert ing.connected.wait(10)
            return ing, stop, th

        ing, stop, th = start_ingester()
        stack.callback(stop.set)

        offline = NodeStatus(node=NODE, online=False, session=7, role="dispenser").to_json().decode()
        node = subprocess.Popen([sys.executable, "-c", NODE_PROCESS, str(centre.port), T.status(NODE), offline],
                                stdout=subprocess.PIPE, text=True)
        stack.callback(node.kill)
        assert node.stdout is not None and node.stdout.readline().strip() == "connected"
        publish(centre.port, [
            (T.status(NODE), NodeStatus(node=NODE, online=True, session=7, role="dispenser", version="1.4").to_json()),
            (T.health(NODE), NodeHealth(node=NODE, role="dispenser", uptime_s=60,
                                        details={"printer": "ok", "paper": "low"}).to_json()),
            (T.alert(NODE, "paper-out"), Alert(node=NODE, id="paper-out", severity="critical",
                                               message_vi="Hết giấy").to_json()),
        ])

        def devices(**kw):
            with connect(pg_dsn) as conn:
                now = datetime.now(UTC)
                return list_devices(conn, start=now - timedelta(days=1), end=now + timedelta(seconds=1), **kw)

        def dispenser(**kw):
            found = [d for d in devices(**kw) if d["node"] == NODE]
            return found[0] if found else None

        d = wait_for(lambda: (x := dispenser()) and x["alerts"] and x["health"] and x, 20, "the dispenser at the province")
        assert d["online"] and d["version"] == "1.4" and d["health"]["details"]["paper"] == "low"
        assert [a["alert"] for a in d["alerts"]] == ["paper-out"]

        province.stop()  # the province link is down
        node.send_signal(signal.SIGKILL)  # the dispenser dies: its Will fires at the centre only
        node.wait(10)
        assert json.loads(wait_for(lambda: (p := retained(centre.port, T.status(NODE))) and
                                   not json.loads(p)["online"] and p, 20, "the Will at the centre"))["session"] == 7
        publish(centre.port, [  # a technician clears paper-out; the printer goes offline
            (T.alert(NODE, "paper-out"), b""),
            (T.alert(NODE, "printer-offline"), Alert(node=NODE, id="printer-offline").to_json()),
        ])
        assert dispenser()["online"]  # the province still has the last state it saw
        cut_end = datetime.now(UTC)
        province.start()  # the link returns

        d = wait_for(lambda: (x := dispenser()) and not x["online"] and
                     [a["alert"] for a in x["alerts"]] == ["printer-offline"] and x, 30, "the state after the cut")
        assert d["since"] >= cut_end - timedelta(seconds=1)  # dated when the province learned it
        assert json.loads(retained(province.port, T.status(NODE)))["online"] is False  # the province broker too
        assert dispenser(alert="printer-offline") and dispenser(only_offline=True)
        assert not dispenser(alert="paper-out")
        assert not [x for x in devices(sites=["xuan-quang"])]

        with connect(pg_dsn) as conn:
            log_before = conn.execute("SELECT online FROM device_status_log ORDER BY at").fetchall()
            alerts_before = conn.execute("SELECT alert, cleared_at IS NOT NULL FROM device_alert_log "
                                         "ORDER BY id").fetchall()
        assert log_before == [(True,), (False,)]
        assert alerts_before == [("paper-out", True), ("printer-offline", False)]

        stop.set()  # the ingester restarts: every retained message comes again, nothing new in the history
        th.join(10)
        ing, stop, th = start_ingester()
        stack.callback(stop.set)
        wait_for(lambda: ing.stats.received >= 3, 20, "the retained messages again")
        wait_for(lambda: ing.stats.batches >= 1 and not ing._inbox.qsize(), 10, "them stored")
        with connect(pg_dsn) as conn:
            assert conn.execute("SELECT online FROM device_status_log ORDER BY at").fetchall() == log_before
            assert conn.execute("SELECT alert, cleared_at IS NOT NULL FROM device_alert_log "
                                "ORDER BY id").fetchall() == alerts_before
        assert dispenser()["downtime_s"] > 0


def test_the_nodes_health_across_a_link_cut_leaves_the_bridges_queue_to_the_events(tmp_path):
    """Every node publishes its health every 30 s, retained, and the bridge carried it at QoS 1: across
    a cut it waited in the bridge's queue beside the events (ten nodes: 200,000 messages in a week,
    ``max_queued_bytes`` in about a day), and the events that came after were dropped. Health goes
    at QoS 0 now (the province gets each node's latest again when the link returns). Here the
    queue holds 100: 300 health messages during the cut, then 20 events, and all 20 reach the
    province, with the node's latest health."""
    import queue as queue_mod
    import time

    from paho.mqtt import client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    with ExitStack() as stack:
        province = Mosquitto(tmp_path / "province").start()  # persistence: the observer's session survives
        stack.callback(province.kill)
        centre = Mosquitto(tmp_path / "centre", extra_conf=bridge_conf_text(
            site=SITE, address=f"127.0.0.1:{province.port}", restart_s=(1, 1), queue_messages=100)).start()
        stack.callback(centre.kill)
        events: queue_mod.Queue[str] = queue_mod.Queue()
        obs = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ingest-observer", protocol=mqtt.MQTTv5)
        obs.on_message = lambda _c, _u, m: events.put(m.topic)
        obs.on_connect = lambda cl, *_: cl.subscribe(f"{T.root}/event/#", qos=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        obs.reconnect_delay_set(0.2, 1)
        obs.connect("127.0.0.1", province.port, clean_start=False, properties=props)
        obs.loop_start()
        stack.callback(obs.loop_stop)
        wait_for(lambda: retained(province.port, T.bridge_state()) == b"1", 20, "the bridge up")
        province.stop()  # the link is down
        publish(centre.port, [(T.health(NODE), NodeHealth(node=NODE, role="dispenser", uptime_s=30 * i).to_json())
                              for i in range(1, 301)])
        publish(centre.port, [(f"{T.root}/event/ticket/issued", b'{"n": %d}' % i) for i in range(20)], retain=False)
        province.start()  # the link returns
        got: list[str] = []
        end = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < end:
            try:
                got.append(events.get(timeout=max(0.0, end - time.monotonic())))
            except queue_mod.Empty:
                break
        assert len(got) == 20, f"{len(got)} of 20 events reached the province"
        last = wait_for(lambda: retained(province.port, T.health(NODE)), 20, "the node's health at the province")
        assert json.loads(last)["uptime_s"] == 30 * 300  # its latest
