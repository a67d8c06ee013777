"""The ingester dies in the middle of a backlog: whatever it had not committed comes again.

The crash is raised at the database edge (the second batch's write fails with an unexpected
error and the ingester thread dies with it); the broker, the session and PostgreSQL are real.
"""

from __future__ import annotations

import threading
import time
from datetime import date

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from province import ingest as ingest_mod
from province.db import connect
from province.ingest import Ingester
from province.synth import CentreSim
from xephang.settings import BrokerSettings
from xephang_ops.mosquitto import Mosquitto, find_mosquitto

pytestmark = pytest.mark.broker


def stored(dsn: str) -> int:
    with connect(dsn) as c:
        return int(c.execute("SELECT count(*) FROM events").fetchone()[0])


def test_a_crash_before_commit_loses_nothing(tmp_path, pg_dsn, site, monkeypatch):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    sim = CentreSim(site, tmp_path / "ledger.sqlite", seed=3)
    events = sim.day(date(2026, 11, 3), tickets=120)
    sim.close()
    with Mosquitto(tmp_path / "province", extra_conf="max_queued_messages 100000") as prov:
        first = Ingester(dsn=pg_dsn, broker=BrokerSettings(port=prov.port), batch_max=100, batch_wait_s=0.05)
        real_write = ingest_mod.Store.write
        calls = {"n": 0}

        class Crash(BaseException):
            """The process ending mid-batch (a kill, a power cut): no handler of the ingester's sees it.
            (An ``Exception`` there is a message our code failed on: halved out, not a crash.)"""

        def crashing_write(self, messages):
            calls["n"] += 1
            if calls["n"] == 3:
                raise Crash("ingester crashed")  # after two commits, before the third
            return real_write(self, messages)

        monkeypatch.setattr(ingest_mod.Store, "write", crashing_write)
        stop = threading.Event()
        died = threading.Event()

        def run() -> None:
            try:
                first.run(stop)
            except Crash:
                died.set()

        th = threading.Thread(target=run, daemon=True)
        th.start()
        assert first.connected.wait(10)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-sim", protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", prov.port)
        pub.loop_start()
        for i in [pub.publish(t, p, qos=1) for t, p in events]:
            i.wait_for_publish(10)
        assert died.wait(20), "the ingester should have crashed on its third batch"
        th.join(5)
        partial = stored(pg_dsn)
        assert 0 < partial < len(events)  # two batches were in, the rest was never acknowledged

        monkeypatch.setattr(ingest_mod.Store, "write", real_write)
        again = Ingester(dsn=pg_dsn, broker=BrokerSettings(port=prov.port))  # same client id: same session
        stop2 = threading.Event()
        th2 = threading.Thread(target=again.run, args=(stop2,), daemon=True)
        th2.start()
        end = time.monotonic() + 20
        while stored(pg_dsn) < len(events) and time.monotonic() < end:
            time.sleep(0.05)
        stop2.set()
        th2.join(10)
        pub.loop_stop()
        pub.disconnect()
    with connect(pg_dsn) as c:
        ids = [r[0] for r in c.execute("SELECT event_id FROM events").fetchall()]
    assert len(ids) == len(set(ids)) == len(events)
