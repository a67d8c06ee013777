"""The broker's memory while one board's password floods the hub's inbox with the hub stopped.

    .venv/bin/python bench/broker_queue.py [--flood-s 15] [--size 60000]

`hub-inbox` (hubd/lane.py) is a persistent session: while the hub is stopped (an update, a restart
loop) the broker keeps what is published for it, up to `max_queued_messages` (200,000 in the site's
config, room for a province bridge's week of events). Found from outside (red team, 2026-12-07):
counter 1's password piping 60 KB junk requests on its own `req/hub/resync/counter-1` took the
broker from 8 MB to 5.1 GB in 12 s of the hub being down; on a Pi mosquitto is killed and every board
with it. `xephang broker-config` now also writes `max_queued_bytes` (MAX_QUEUED_BYTES per client).

Each run: a fresh broker with the site's ACL and passwords, the config's queue lines with and
without the byte cap (the baseline, measured in the same run), the inbox's session left subscribed
and disconnected, `--flood-s` seconds of `mosquitto_pub -l` as counter 1, then the inbox back: the
broker's peak and final memory (VmRSS), and how many requests the inbox is handed when it returns.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xephang.settings import load_site  # noqa: E402
from xephang_faults.flood import LineFlood  # noqa: E402
from xephang_ops.brokerconf import MAX_QUEUED_BYTES, site_accounts, write_broker_files  # noqa: E402
from xephang_ops.mosquitto import Mosquitto  # noqa: E402

SITE_FILE = Path(__file__).resolve().parents[1] / "config" / "site.example.toml"
ROOT = "xephang/v1/tuong-linh"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def inbox(port: int, password: str) -> tuple[mqtt.Client, list[int]]:
    got = [0]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="xephang-hub-inbox", protocol=mqtt.MQTTv5)
    c.username_pw_set("hub-inbox", password)
    c.on_message = lambda _c, _u, _m: got.__setitem__(0, got[0] + 1)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    ready = threading.Event()
    c.on_subscribe = lambda *_a: ready.set()
    c.on_connect = lambda cl, *_a: cl.subscribe(f"{ROOT}/req/hub/#", qos=1)
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    if not ready.wait(10):
        raise SystemExit("the inbox did not subscribe")
    return c, got


def run(cap: int, flood_s: float, size: int, work: Path) -> dict[str, float]:
    site = load_site(SITE_FILE)
    files = write_broker_files(work / "broker", site, site_accounts(site))
    conf = f"max_queued_messages 200000\nmax_queued_bytes {cap}"
    with Mosquitto(work / "mq", password_file=files.password_file, acl_file=files.acl_file, persistence=False,
                   bind_client_ids=True, extra_conf=conf) as broker:
        assert broker.proc is not None
        pid = broker.proc.pid
        c, _ = inbox(broker.port, files.passwords["hub-inbox"])
        c.disconnect()  # the hub stops: its session stays, the broker queues for it
        c.loop_stop()
        before = rss_mb(pid)
        line = json.dumps({"schema": "xephang.req.resync.v1", "request_id": "x", "source": "counter-1",
                           "junk": "x" * size})
        flood = LineFlood(broker.port, "counter-1", f"{ROOT}/req/hub/resync/counter-1", [line] * 50,
                          password=files.passwords["counter-1"]).start()
        peak, end = before, time.monotonic() + flood_s
        while time.monotonic() < end:
            peak = max(peak, rss_mb(pid))
            time.sleep(0.25)  # a sampling period, not a wait for something to happen
        flood.stop()
        after_flood = rss_mb(pid)
        c, got = inbox(broker.port, files.passwords["hub-inbox"])  # the hub is back
        last, still = -1, time.monotonic()
        while time.monotonic() - still < 3:  # until 3 s pass with nothing more handed over
            if got[0] != last:
                last, still = got[0], time.monotonic()
            peak = max(peak, rss_mb(pid))
            time.sleep(0.25)
        c.disconnect()
        c.loop_stop()
        return {"before": before, "peak": peak, "after_flood": after_flood, "handed": got[0],
                "kicked": flood.kicked}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flood-s", type=float, default=15.0)
    ap.add_argument("--size", type=int, default=60_000, help="junk bytes per request (the broker takes up to ~64 KiB)")
    a = ap.parse_args()
    print(f"counter 1's password, {a.size // 1000} KB requests for {a.flood_s:g} s, the hub stopped "
          "(its inbox's persistent session queued at the broker):")
    print(f"{'max_queued_bytes':>18} | {'broker before':>13} | {'peak':>9} | {'after flood':>11} | "
          f"{'requests handed to the inbox when back':>38}")
    for cap in (0, MAX_QUEUED_BYTES):
        with tempfile.TemporaryDirectory(prefix="xephang-bq-") as d:
            r = run(cap, a.flood_s, a.size, Path(d))
        label = "0 (no cap, before)" if cap == 0 else f"{cap // (1024 * 1024)} MiB"
        print(f"{label:>18} | {r['before']:10.0f} MB | {r['peak']:6.0f} MB | {r['after_flood']:8.0f} MB | "
              f"{r['handed']:38d}")


if __name__ == "__main__":
    main()
