"""The officer's console click against the box's key press: how long until the hall hears the call.

    .venv/bin/python bench/web_console.py [--rounds 100]

A real mosquitto, the real hub (in this process), webd as its own process, a counter box
(counterd, sim board with gpiozero mock pins, its real owner loop in a thread) and Debian's
headless Chromium with an officer logged in on counter 1's console. Each round, interleaved
so all three see the same machine load:

- ``console click → called``: the page's click (stamped in the page, ``performance``) → a
  plain MQTT subscriber (the hall board's role) has ``event/ticket/called``: the page's
  fetch, webd's session and CSRF checks, the request through the broker with the officer's
  name, the hub's check of the roster and its ledger commit, the event back;
- ``console POST → called``: the same form POSTed by a plain HTTP client (no browser);
- ``box key → called``: counter 2's Next key driven low on the mock pin → the event (the
  baseline: the call box of the same run).

Printed: p50 / p99 / max in ms, and each console figure's p50 as a ratio of the box's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from counterd.main import CounterDaemon, CounterdSettings  # noqa: E402
from hubd.testing import running_hub  # noqa: E402
from webd.auth import Accounts  # noqa: E402
from xephang.bus import Bus, Inbound  # noqa: E402
from xephang.contract import IssueTicket, new_request_id  # noqa: E402
from xephang.settings import BrokerSettings  # noqa: E402
from xephang_ops.mosquitto import Mosquitto, free_port, wait_port  # noqa: E402

SITE = "tuong-linh"
SITE_FILE = REPO / "config" / "site.example.toml"
PASSWORD = "bench-officer-password"


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def show(label: str, ms: list[float]) -> None:
    print(f"  {label:<24} p50 {statistics.median(ms):7.1f}   p99 {pct(ms, 0.99):7.1f}   max {max(ms):7.1f}   (n={len(ms)})")


def wait(cond, timeout: float, pump) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        pump()
    return bool(cond())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
        return None


def http(url: str, data: dict[str, str] | None = None, cookie: str = "", headers: dict[str, str] | None = None):  # noqa: ANN201
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Cookie": cookie, **(headers or {})})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=15) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        print("chromium and chromium-driver are needed (./xephang.sh setup installs them)", file=sys.stderr)
        return 1
    n, warm = args.rounds, 5
    tmp = Path(tempfile.mkdtemp(prefix="web-console-bench-"))
    broker = Mosquitto(tmp / "mq", persistence=False).start()
    bport = broker.port
    (tmp / "hub").mkdir()
    (tmp / "web").mkdir()
    hub_cm = running_hub(bport, tmp / "hub", SITE_FILE)
    hub_cm.__enter__()
    Accounts(tmp / "web" / "web-accounts.json").set("lan", "officer", PASSWORD)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "XEPHANG_SITE": SITE, "XEPHANG_SITE_FILE": str(SITE_FILE), "XEPHANG_NODE": "web",
           "XEPHANG_STATE_DIR": str(tmp / "web"), "XEPHANG_BROKER__PORT": str(bport),
           "XEPHANG_WEB__LISTEN": "127.0.0.1", "XEPHANG_WEB__PORT": str(port), "XEPHANG_LOG_LEVEL": "WARNING"}
    web = subprocess.Popen([sys.executable, "-m", "webd.main"], env=env, cwd=REPO)
    called: dict[int, list[float]] = {1: [], 2: []}
    watcher = Bus(site=SITE, node="tech", role="tech", broker=BrokerSettings(port=bport))  # issues tickets, hears calls

    def on_called(m: Inbound) -> None:
        at = time.time()
        c = json.loads(m.payload).get("counter")
        if c in called:
            called[c].append(at)
    watcher.subscribe(watcher.topics.event("ticket", "called"), on_called, retained=False)
    watcher.start()
    box = None
    drv = None
    try:
        assert watcher.wait_connected(10)
        if not wait_port(port, 20):
            raise SystemExit("webd did not start")
        assert wait(lambda: http(base + "/healthz")[0] == 200, 20, lambda: time.sleep(0.05)), "webd not synced"
        for _ in range(3 * (n + warm) + 10):
            r = watcher.request_sync(IssueTicket(request_id=new_request_id(), source="tech", service="ho-tich"),
                                     timeout_s=3)
            assert r is not None and r.status == "ok", r
        # the box of counter 2
        (tmp / "box").mkdir()
        box = CounterDaemon(CounterdSettings(site=SITE, site_file=SITE_FILE, state_dir=tmp / "box", sim=True,
                                             broker=BrokerSettings(port=bport), log_level="WARNING",
                                             counter={"number": 2, "double_press_s": 0.0, "max_presses": 10_000}))
        threading.Thread(target=box.run, name="counter-2", daemon=True).start()
        assert wait(lambda: box.board is not None and box.hub_online, 15, lambda: time.sleep(0.02)), "box not up"
        pin = box.board.keys["next"].pin
        # the officer's browser on counter 1
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By

        opts = Options()
        opts.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
            opts.add_argument(a)
        drv = webdriver.Chrome(service=Service(driver), options=opts)
        drv.get(base + "/login")
        drv.find_element(By.NAME, "username").send_keys("lan")
        drv.find_element(By.NAME, "password").send_keys(PASSWORD)
        drv.find_element(By.ID, "submit").click()
        assert wait(lambda: drv.current_url.endswith("/counter/1"), 10, lambda: time.sleep(0.05))
        # a second session for the plain POSTs
        st, page, h = http(base + "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        cookie = h["set-cookie"].split(";", 1)[0]
        st, _, h = http(base + "/login", {"username": "lan", "password": PASSWORD, "csrf": csrf}, cookie)
        session = h["set-cookie"].split(";", 1)[0]
        console_csrf = re.search(r'name="csrf" value="([^"]+)"', http(base + "/counter/1", cookie=session)[1])[1]

        click_ms: list[float] = []
        post_ms: list[float] = []
        key_ms: list[float] = []
        answer = "document.getElementById('act-msg').textContent"
        for i in range(n + warm):
            # 1. the browser click
            before = len(called[1])
            drv.execute_script(f"{answer.replace('.textContent', '')}.textContent = '';")
            wait(lambda: drv.execute_script("return !document.querySelector('#live[data-busy]') && "
                                            "!!document.querySelector('#btn-call-next')"), 5, lambda: time.sleep(0.005))
            t0 = drv.execute_script("var t = performance.timeOrigin + performance.now();"
                                    "document.getElementById('btn-call-next').click(); return t;") / 1000
            assert wait(lambda b=before: len(called[1]) > b, 10, lambda: watcher.process(timeout=0.001)), f"round {i}: no call"
            if i >= warm:
                click_ms.append((called[1][-1] - t0) * 1000)
            wait(lambda: drv.execute_script(f"return {answer}").startswith("Đã"), 10, lambda: time.sleep(0.005))
            # 2. the same form by plain HTTP
            before = len(called[1])
            t0 = time.time()
            st, body, _ = http(base + "/counter/1/act", {"csrf": console_csrf, "action": "call-next",
                                                         "rid": new_request_id()[:32]}, session,
                               {"x-requested-with": "xephang"})
            assert st == 200 and json.loads(body)["ok"], body
            assert wait(lambda b=before: len(called[1]) > b, 10, lambda: watcher.process(timeout=0.001))
            if i >= warm:
                post_ms.append((called[1][-1] - t0) * 1000)
            # 3. the box's key
            before = len(called[2])
            t0 = time.time()
            pin.drive_low()
            pin.drive_high()
            assert wait(lambda b=before: len(called[2]) > b, 10, lambda: watcher.process(timeout=0.001)), f"round {i}: box"
            if i >= warm:
                key_ms.append((called[2][-1] - t0) * 1000)
            time.sleep(0.035)  # past the key's debounce
        print(f"web console vs call box, {n} rounds each (after {warm} warm-up), {os.cpu_count()} cores:")
        show("console click → called", click_ms)
        show("console POST → called", post_ms)
        show("box key → called", key_ms)
        base_p50 = statistics.median(key_ms)
        print(f"  ratio p50: click/box {statistics.median(click_ms) / base_p50:.2f}, "
              f"POST/box {statistics.median(post_ms) / base_p50:.2f}")
        return 0
    finally:
        if drv is not None:
            drv.quit()
        if box is not None:
            box.stop_event.set()
        watcher.stop()
        web.terminate()
        web.wait(10)
        hub_cm.__exit__(None, None, None)
        broker.kill()


if __name__ == "__main__":
    raise SystemExit(main())
