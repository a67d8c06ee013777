"""Officer presses Next → ``event/ticket/called`` on the broker, with a real mosquitto and hub.

    .venv/bin/python bench/counter_press.py [--count 300]

A mosquitto on loopback, hubd as its own process (ledger on disk, ``synchronous=FULL``),
counterd in a thread of this process running its real owner loop on the sim board
(gpiozero mock pins). The bench thread drives the Next key's mock pin low (gpiozero runs the
key's debounce and enqueues, as on a Pi), releases it, and waits until a plain subscriber
(the hall display's role) receives ``event/ticket/called``. Every Next after the first
also finishes the ticket in service (inferred), as a box without a finish key does.

Printed, p50 / p99 in ms:
- ``press → called event``: drive_low() → the subscriber has the event (key, box core,
  call-next through the broker, the hub's ledger commit, the event back through the broker);
- ``press → request sent``: inside counterd, drive_low() → the request handed to the bus
  (debounce, queue, owner loop wake-up, box core, request model);
- ``press → box got reply``: inside counterd, drive_low() → the reply handled;
- ``baseline request``: a bare ``call-next`` request → reply from a plain bus client on
  another counter, interleaved with the presses (hub + broker alone, same load);
- ``baseline broker``: publish → receive between two plain bus clients, same run (the
  broker hop alone);
- memory: RSS of a separate ``counterd`` process (sim mode) after 50 presses, and of hubd.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from counterd.main import CounterDaemon, CounterdSettings  # noqa: E402
from xephang.bus import Bus, Inbound  # noqa: E402
from xephang.contract import CallNext, IssueTicket, NodeStatus, SimPress, Topics, decode, new_request_id  # noqa: E402
from xephang.settings import BrokerSettings  # noqa: E402
from xephang_ops.mosquitto import Mosquitto, find_mosquitto  # noqa: E402

SITE = "tuong-linh"
ROOT = Path(__file__).resolve().parent.parent
SITE_FILE = ROOT / "config" / "site.example.toml"
VENV_BIN = Path(sys.executable).parent
T = Topics(SITE)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def show(label: str, ms: list[float]) -> None:
    print(f"  {label:<26} p50 {statistics.median(ms):7.2f}   p99 {pct(ms, 99):7.2f}   "
          f"max {max(ms):7.2f}   (n={len(ms)})")


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB from /proc."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0])
    return vals["VmRSS"], vals["VmHWM"]


def wait(cond, timeout: float, pump) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        pump()
    return cond()


def env_for(port: int, state: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "XEPHANG_SITE": SITE, "XEPHANG_SITE_FILE": str(SITE_FILE),
            "XEPHANG_STATE_DIR": str(state), "XEPHANG_BROKER__HOST": "127.0.0.1",
            "XEPHANG_BROKER__PORT": str(port), "XEPHANG_LOG_LEVEL": "WARNING", **extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--no-lights", action="store_true", help="a box without LEDs and buzzer (what the lights cost)")
    args = ap.parse_args()
    n = args.count
    if not find_mosquitto():
        print("mosquitto not installed", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="counter-bench-"))
    broker = Mosquitto(tmp / "mq").start()
    port = broker.port
    procs: list[subprocess.Popen[bytes]] = []
    try:
        (tmp / "hub").mkdir()
        hub = subprocess.Popen([str(VENV_BIN / "hubd")], env=env_for(port, tmp / "hub", XEPHANG_NODE="hub",
                                                                      XEPHANG_HUB__ISSUE_BURST="10000"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(hub)

        # the hall display's role: a plain subscriber of the call events
        called_at: list[float] = []
        watcher = Bus(site=SITE, node="display-bench", role="display", broker=BrokerSettings(port=port))
        other_called: list[float] = []

        def on_called(m: Inbound) -> None:
            at = time.perf_counter()
            # the boxes under test are counters 1 and 2; counter 3 is the bare-request baseline
            (other_called if json.loads(m.payload).get("counter") == 3 else called_at).append(at)
        watcher.subscribe(T.event("ticket", "called"), on_called)
        hub_up = threading.Event()

        def on_hub(m: Inbound) -> None:
            if m.payload and decode(NodeStatus, m.payload).online:
                hub_up.set()
        watcher.subscribe(T.status("hub"), on_hub)
        echo_at: list[float] = []
        watcher.subscribe(f"{T.root}/bench/echo", lambda m: echo_at.append(time.perf_counter()))
        watcher.start()
        dispenser = Bus(site=SITE, node="dispenser-1", role="dispenser", broker=BrokerSettings(port=port))
        dispenser.start()
        other = Bus(site=SITE, node="counter-3", role="counter", broker=BrokerSettings(port=port))
        other.start()
        assert watcher.wait_connected(10) and dispenser.wait_connected(10) and other.wait_connected(10)
        assert wait(hub_up.is_set, 15, lambda: watcher.process(0.02)), "hub did not come up"

        # tickets: counter 1 calls ho-tich then chung-thuc; counter 3 calls dat-dai (baseline)
        def issue(service: str, k: int) -> None:
            for _ in range(k):
                r = dispenser.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1",
                                                       service=service), timeout_s=3)
                assert r is not None and r.status == "ok", r
        issue("ho-tich", n + 20)
        issue("dat-dai", n + 5)

        # counterd in this process, its real loop in a thread
        (tmp / "c1").mkdir()
        settings = CounterdSettings(site=SITE, site_file=SITE_FILE, state_dir=tmp / "c1", sim=True,
                                    broker=BrokerSettings(port=port), log_level="WARNING",
                                    counter={"number": 1, "double_press_s": 0.0, "max_presses": 10_000,
                                             **({"status_led_pin": None, "rating_led_pin": None, "buzzer_pin": None}
                                                if args.no_lights else {})})
        box = CounterDaemon(settings)
        replied: list[float] = []
        orig = box._on_reply

        def timed_reply(s, reply):  # noqa: ANN001, ANN202 - wrap to stamp the reply moment
            replied.append(time.perf_counter())
            orig(s, reply)
        box._on_reply = timed_reply  # type: ignore[method-assign]
        sent_at: list[float] = []
        orig_send = box._send

        def timed_send(s):  # noqa: ANN001, ANN202 - stamp the moment the request leaves the box
            sent_at.append(time.perf_counter())
            orig_send(s)
        box._send = timed_send  # type: ignore[method-assign]
        t = threading.Thread(target=box.run, name="counter-1", daemon=True)
        t.start()
        assert wait(lambda: box.board is not None and box.hub_online, 15, lambda: watcher.process(0.02))
        pin = box.board.keys["next"].pin

        press_ms: list[float] = []
        reply_ms: list[float] = []
        send_ms: list[float] = []
        base_req: list[float] = []
        warm = 10
        for i in range(n + warm):
            before = len(called_at)
            t0 = time.perf_counter()
            pin.drive_low()
            pin.drive_high()
            ok = wait(lambda b=before: len(called_at) > b, 5, lambda: watcher.process(0.05))
            assert ok, f"press {i}: no called event"
            # one request and one reply per press: wait for this press's reply before reading its stamp
            wait(lambda k=i: len(replied) > k, 2, lambda: time.sleep(0.0005))
            if i >= warm:
                press_ms.append((called_at[-1] - t0) * 1000)
                reply_ms.append((replied[i] - t0) * 1000)
                send_ms.append((sent_at[i] - t0) * 1000)
            # the bare request, interleaved so both see the same machine load
            t0 = time.perf_counter()
            r = other.request_sync(CallNext(request_id=new_request_id(), source="counter-3", counter=3), timeout_s=3)
            assert r is not None and r.status == "ok"
            if i >= warm:
                base_req.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.035)  # past the key's 30 ms debounce

        base_pub: list[float] = []
        for i in range(n + warm):
            before = len(echo_at)
            t0 = time.perf_counter()
            other.publish(f"{T.root}/bench/echo", b"x")
            assert wait(lambda b=before: len(echo_at) > b, 5, lambda: watcher.process(0.05))
            if i >= warm:
                base_pub.append((echo_at[-1] - t0) * 1000)

        print(f"counterd press → event, {n} presses, real mosquitto + hubd process (loopback)"
          f"{', box without lights' if args.no_lights else ''}")
        show("press → called event", press_ms)
        show("press → request sent", send_ms)
        show("press → box got reply", reply_ms)
        show("baseline request", base_req)
        show("baseline broker", base_pub)
        print(f"  ratio press/baseline request p50 {statistics.median(press_ms) / statistics.median(base_req):.2f}, "
              f"broker hop p50 {statistics.median(base_pub):.2f} ms")
        print(f"  box: sent {box.core.stats.sent}, busy {box.core.stats.busy}, "
              f"double {sum(k.stats.double_presses for k in box.board.keys.values())}, retries {box.bus.stats.retries}")
        box.stop_event.set()
        t.join(10)

        # memory: a counterd process of its own (sim mode), after 50 presses through R/sim
        (tmp / "c2").mkdir()
        issue("chung-thuc", 60)
        cd = subprocess.Popen([str(VENV_BIN / "counterd")],
                              env=env_for(port, tmp / "c2", XEPHANG_SIM="true", XEPHANG_COUNTER__NUMBER="2",
                                          XEPHANG_COUNTER__DOUBLE_PRESS_S="0", XEPHANG_COUNTER__MAX_PRESSES="10000"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(cd)
        up = threading.Event()
        watcher.subscribe(T.status("counter-2"),
                          lambda m: up.set() if m.payload and decode(NodeStatus, m.payload).online else None)
        assert wait(up.is_set, 20, lambda: watcher.process(0.05)), "counterd did not come up"
        before = len(called_at)
        for _ in range(50):
            b = len(called_at)
            other.publish(T.sim_press("counter-2"), SimPress(button="next"))
            wait(lambda b=b: len(called_at) > b, 3, lambda: watcher.process(0.02))
            time.sleep(0.04)
        got = len(called_at) - before
        rss, hwm = rss_kb(cd.pid)
        hrss, hhwm = rss_kb(hub.pid)
        print(f"  counterd process: RSS {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB) after {got} sim presses")
        print(f"  hubd process:     RSS {hrss / 1024:.1f} MiB (peak {hhwm / 1024:.1f} MiB)")
        for b in (watcher, dispenser, other):
            b.stop()
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
