"""A citizen's ticket, the hall board's news of it, an officer's key and the web daemon, while one board's password floods the hub.

    .venv/bin/python bench/request_flood.py [--flood-s 20] [--presses-every 0.5]

The centre's broker as `xephang broker-config` writes it (its ACL, passwords, `max_queued_messages
200000`), a real `hubd` process, and one board's password piping QoS 1 requests through
`mosquitto_pub -l` (as fast as the broker takes them, reconnecting if it is thrown out): counter 1's
pause, or dispenser 2's tickets. Meanwhile dispenser 1 presses a ticket every `--presses-every`
seconds (each request retried every 2 s, 15 tries, as a dispenser does), the hall board (the
`display-hall` account) waits for each ticket's `issued` event, and every fourth press counter 2
presses call-next and the web daemon asks a resync. Each run on a fresh broker and ledger, the hub
reading with:

1. **one connection** (the baseline: the hub as before hubd/lane.py);
2. **the lane alone** (`hub.lane_password_file`: a second connection that reads the dispensers' and
   the web daemon's requests; the main connection still reads every request and sends every reply,
   which the hub warns of at start);
3. **inbox and lane** (`hub.inbox_password_file` too: every request is read by a connection that
   publishes nothing, and the main connection reads no request);
4. **inbox and a lane per board** (`hub.inbox_password_file` and `hub.lanes_dir`: each dispenser's,
   counter's and the web daemon's requests read a second time by `hub-<board>`, no `hub-lane`).

Counter 1 floods in all four; dispenser 2 in the last two.

Printed per run: the press latency before the flood and during it (median, p90, max, presses
unanswered), the first press after it, how long after each press the board heard of the ticket,
counter 2's call-next during it, a message between two other clients through the same broker (is
the broker itself slow?), the hub's and the broker's memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paho.mqtt import client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from xephang.bus import Bus  # noqa: E402
from xephang.contract import CallNext, IssueTicket, Resync, Topics, new_request_id  # noqa: E402
from xephang.settings import BrokerSettings, load_site  # noqa: E402
from xephang_faults.flood import RequestFlood  # noqa: E402
from xephang_ops.brokerconf import mosquitto_conf_text, site_accounts, write_broker_files  # noqa: E402
from xephang_ops.mosquitto import find_mosquitto, free_port  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SITE_FILE = REPO / "config" / "site.example.toml"
T = Topics("tuong-linh")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    return 0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def ms(xs: list[float | None]) -> str:
    ok = [x for x in xs if x is not None]
    lost = len(xs) - len(ok)
    if not ok:
        return f"none answered of {len(xs)}"
    return (f"median {statistics.median(ok) * 1000:7.0f} ms, p90 {pct(ok, 0.9) * 1000:7.0f} ms, "
            f"max {max(ok) * 1000:7.0f} ms, {lost} of {len(xs)} unanswered")


def run(mode: str, flooder: str, flood_s: float, every: float, work: Path) -> None:
    site = load_site(SITE_FILE)
    files = write_broker_files(work / "broker", site, site_accounts(site, dispensers=2))
    port, tport = free_port(), free_port()
    conf = mosquitto_conf_text(password_file=files.password_file, acl_file=files.acl_file, listen="127.0.0.1",
                               port=port, tech_port=tport)
    conf = ("user root\n" if os.geteuid() == 0 else "") + conf + f"persistence false\nlog_dest file {work}/mosquitto.log\n"
    (work / "mosquitto.conf").write_text(conf)
    broker = subprocess.Popen([find_mosquitto() or "mosquitto", "-c", str(work / "mosquitto.conf")],
                              stderr=subprocess.DEVNULL)
    env = {**os.environ, "XEPHANG_SITE": "tuong-linh", "XEPHANG_SITE_FILE": str(SITE_FILE), "XEPHANG_NODE": "hub",
           "XEPHANG_STATE_DIR": str(work / "hub"), "XEPHANG_BROKER__PORT": str(port),
           "XEPHANG_BROKER__PASSWORD_FILE": str(files.passwords_dir / "hub.pw")}
    if mode in ("lane", "inbox"):
        env["XEPHANG_HUB__LANE_PASSWORD_FILE"] = str(files.passwords_dir / "hub-lane.pw")
    if mode in ("inbox", "all"):
        env["XEPHANG_HUB__INBOX_PASSWORD_FILE"] = str(files.passwords_dir / "hub-inbox.pw")
    if mode == "all":
        env["XEPHANG_HUB__LANES_DIR"] = str(files.passwords_dir)
    hub = subprocess.Popen([sys.executable, "-m", "hubd.main"], env=env, cwd=REPO,
                           stderr=(work / "hub.log").open("w"))
    clients: list[Bus] = []

    def client(node: str) -> Bus:
        b = Bus(site="tuong-linh", node=node, state_dir=work / "clients",
                broker=BrokerSettings(port=port, password_file=files.passwords_dir / f"{node}.pw"))
        b.start()
        assert b.wait_connected(10), node
        clients.append(b)
        return b

    disp, counter, web = client("dispenser-1"), client("counter-2"), client("web")
    got = threading.Event()
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="xephang-tech-probe", protocol=mqtt.MQTTv5)
    probe.username_pw_set("tech", files.passwords["tech"])
    probe.on_message = lambda *_: got.set()
    probe.connect("127.0.0.1", tport)
    probe.loop_start()
    probe.subscribe(T.alert("dispenser-1", "paper-low"), qos=1)
    # the hall board: when does it hear of a ticket (the hub's event goes out on its main connection)?
    heard: dict[int, float] = {}
    board = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="xephang-display-hall", protocol=mqtt.MQTTv5)
    board.username_pw_set("display-hall", files.passwords["display-hall"])

    def on_event(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(Exception):
            heard[int(json.loads(msg.payload)["ticket"]["id"])] = time.monotonic()

    board.on_message = on_event
    board.connect("127.0.0.1", port)
    board.loop_start()
    board.subscribe(T.event("ticket", "issued"), qos=1)
    board_lag: list[float | None] = []

    def press() -> float | None:
        t = time.monotonic()
        r = disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="ho-tich"),
                              timeout_s=2.0, attempts=15)
        answered = time.monotonic() - t
        if r is not None and r.data:
            tid = int(r.data["ticket"]["id"])
            end = time.monotonic() + 30
            while tid not in heard and time.monotonic() < end:
                time.sleep(0.005)
            board_lag.append(heard[tid] - t if tid in heard else None)
        return answered if r is not None else None

    def call() -> float | None:
        t = time.monotonic()
        r = counter.request_sync(CallNext(request_id=new_request_id(), source="counter-2", counter=2),
                                 timeout_s=2.0, attempts=15)
        return time.monotonic() - t if r is not None else None

    def web_asks() -> float | None:
        t = time.monotonic()
        r = web.request_sync(Resync(request_id=new_request_id(), source="web"), timeout_s=2.0, attempts=15)
        return time.monotonic() - t if r is not None else None

    def through_broker() -> float | None:
        got.clear()
        t = time.monotonic()
        disp.publish(T.alert("dispenser-1", "paper-low"), b"", retain=True)
        return time.monotonic() - t if got.wait(30) else None

    try:
        press()  # the first, while the hub may still be subscribing: not counted
        before = [press() for _ in range(10)]
        board_before, board_lag[:] = list(board_lag), []
        flood = RequestFlood(port, files.passwords[flooder], node=flooder, lines=50_000).start()
        during: list[float | None] = []
        calls: list[float | None] = []
        webs: list[float | None] = []
        broker_rt: list[float | None] = []
        peak_broker = peak_hub = 0
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < flood_s:
            during.append(press())
            if n % 4 == 0:
                calls.append(call())
                webs.append(web_asks())
                broker_rt.append(through_broker())
            n += 1
            peak_broker, peak_hub = max(peak_broker, rss_kb(broker.pid)), max(peak_hub, rss_kb(hub.pid))
            time.sleep(every)
        flood.stop()
        after = press()
        title = {"one": "one connection (baseline)", "lane": "the lane alone (hub-lane)",
                 "inbox": "inbox and lane (hub-inbox, hub-lane)",
                 "all": "inbox and a lane per board (hub-inbox, hub-<board>)"}[mode]
        print(f"\n== {title}: {flooder}'s password flooding for {flood_s:.0f} s "
              f"(thrown out by the broker {flood.kicked} times)")
        print(f"  ticket press, no flood:      {ms(before)}")
        print(f"  ticket press, during flood:  {ms(during)}")
        print(f"  first ticket press after:    {'unanswered' if after is None else f'{after * 1000:.0f} ms'}")
        print(f"  the board hears of a ticket, no flood: {ms(board_before)}")
        print(f"  the board hears of a ticket, during:   {ms(board_lag)}")
        print(f"  counter 2 call-next, during: {ms(calls)}")
        print(f"  the web daemon's resync, during: {ms(webs)}")
        print(f"  another client's message through the broker, during: {ms(broker_rt)}")
        print(f"  peak memory: hub {peak_hub / 1024:.0f} MB, broker {peak_broker / 1024:.0f} MB")
    finally:
        for b in clients:
            b.stop()
        probe.loop_stop()
        board.loop_stop()
        hub.terminate()
        hub.wait(15)
        broker.terminate()
        broker.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flood-s", type=float, default=20.0)
    ap.add_argument("--presses-every", type=float, default=0.5)
    args = ap.parse_args()
    if not find_mosquitto() or not RequestFlood.available():
        print("needs mosquitto and mosquitto_pub (Debian: mosquitto, mosquitto-clients)")
        return 2
    with tempfile.TemporaryDirectory(prefix="xephang-flood-") as tmp:
        for mode, flooder in (("one", "counter-1"), ("lane", "counter-1"), ("inbox", "counter-1"),
                              ("all", "counter-1"), ("inbox", "dispenser-2"), ("all", "dispenser-2")):
            work = Path(tmp) / f"{mode}-{flooder}"
            work.mkdir()
            run(mode, flooder, args.flood_s, args.presses_every, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
