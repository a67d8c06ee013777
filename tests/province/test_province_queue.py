"""The province broker keeps the ingester's backlog: events that arrive while the ingester is away
(a restart, a database outage) all wait for it. `province-broker-config` wrote no queue size, so
Mosquitto kept 1,000 messages for the ingester's session and dropped the rest after the centres'
bridges had been told they arrived: a centre catching up after a cut lost a third of its events.
Real mosquitto, the real ingester, real PostgreSQL; the control runs the same without the lines."""

from __future__ import annotations

import threading
import time
from datetime import date

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from province.db import connect
from province.ingest import Ingester
from province.synth import CentreSim
from xephang.settings import BrokerSettings
from xephang_ops.bridgeconf import province_broker_conf_text, province_queue_lines
from xephang_ops.mosquitto import Mosquitto, find_mosquitto

pytestmark = pytest.mark.broker


def stored(dsn: str) -> int:
    with connect(dsn) as c:
        return int(c.execute("SELECT count(*) FROM events").fetchone()[0])


def test_the_generated_province_broker_config_sizes_the_ingesters_queue(tmp_path):
    text = province_broker_conf_text(password_file=tmp_path / "pw", acl_file=tmp_path / "acl")
    for line in province_queue_lines():
        assert line in text.splitlines()
    assert "max_queued_messages 2000000" in text and "persistence true" in text


@pytest.mark.parametrize("generated", [True, False], ids=["generated-lines", "control-mosquitto-default"])
def test_a_backlog_past_mosquittos_default_queue_reaches_the_database_whole(tmp_path, pg_dsn, site, generated):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    sim = CentreSim(site, tmp_path / "ledger.sqlite", seed=5)
    events = sim.day(date(2026, 11, 3), tickets=500)
    sim.close()
    assert len(events) > 1600
    # "max_queued_messages 1000" is Mosquitto's own default, as a Debian install has it; conf.d comes after
    extra = "\n".join(["max_queued_messages 1000", *(province_queue_lines() if generated else [])])
    with Mosquitto(tmp_path / "province", extra_conf=extra) as prov:
        broker = BrokerSettings(port=prov.port)
        first = Ingester(dsn=pg_dsn, broker=broker)
        stop = threading.Event()
        th = threading.Thread(target=first.run, args=(stop,), daemon=True)
        th.start()
        assert first.connected.wait(10)  # its persistent session and subscription exist
        stop.set()
        th.join(10)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-sim", protocol=mqtt.MQTTv5)
        pub.max_queued_messages_set(0)
        pub.connect("127.0.0.1", prov.port)
        pub.loop_start()
        for info in [pub.publish(t, p, qos=1) for t, p in events]:  # the ingester is away meanwhile
            info.wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        again = Ingester(dsn=pg_dsn, broker=broker)
        stop2 = threading.Event()
        th2 = threading.Thread(target=again.run, args=(stop2,), daemon=True)
        th2.start()
        end = time.monotonic() + 30
        last, quiet_since = -1, time.monotonic()
        while stored(pg_dsn) < len(events) and time.monotonic() < end:
            n = stored(pg_dsn)
            if n != last:
                last, quiet_since = n, time.monotonic()
            elif n > 0 and time.monotonic() - quiet_since > 3:
                break  # nothing more is coming
            time.sleep(0.1)
        stop2.set()
        th2.join(10)
    got = stored(pg_dsn)
    print(f"{'generated' if generated else 'control'}: {got} of {len(events)} events stored")
    if generated:
        assert got == len(events)
    else:
        assert got < len(events)  # the default dropped some: what the generated lines prevent
