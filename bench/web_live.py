"""How fast a call reaches a citizen's phone, and what 300 phones cost webd.

    .venv/bin/python bench/web_live.py [--rounds 30] [--clients 300]

A real mosquitto, the real hub (in this process) and webd as its own process (so its RSS is
its own), on this machine:

1. call → phone: a ticket's live page in headless Chromium (Debian's chromium + driver);
   a counter presses Next; the time until the page's DOM shows "quầy N" (a MutationObserver
   stamps it), next to the raw broker two-hop of the same call (request → hub → the
   ``called`` event at a plain MQTT subscriber). p50/p99 over ``--rounds`` calls.
2. fan-out: ``--clients`` live-page connections (Server-Sent Events, one ticket each) on the
   one webd process; each Next changes "people ahead" on every page: the time until each
   page's stream carries it, p50/p99 over all pages and rounds; webd's RSS before and after.
3. page weight: the ticket page with its CSS, JS and the two font subsets.

Targets (issue 15): p99 ≤ 1 s, RSS ≤ 80 MB, page ≤ 100 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hubd.testing import running_hub  # noqa: E402
from webd.auth import Accounts  # noqa: E402
from xephang.bus import Bus, Inbound  # noqa: E402
from xephang.contract import CallNext, IssueTicket, new_request_id  # noqa: E402
from xephang.settings import BrokerSettings  # noqa: E402
from xephang.ticketlink import load_secret, ticket_path, write_secret  # noqa: E402
from xephang_ops.mosquitto import Mosquitto, free_port, wait_port  # noqa: E402

SITE = "tuong-linh"
SITE_FILE = REPO / "config" / "site.example.toml"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = Mosquitto(tmp / "mq", persistence=False)
        self.key = tmp / "ticket-link.key"
        write_secret(self.key)
        self.secret = load_secret(self.key)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.called_at: dict[str, float] = {}

    def __enter__(self) -> Bench:
        self.broker.start()
        (self.tmp / "hub").mkdir()
        (self.tmp / "web").mkdir()
        self._hub = running_hub(self.broker.port, self.tmp / "hub", SITE_FILE)
        self._hub.__enter__()
        Accounts(self.tmp / "web" / "web-accounts.json")
        env = {**os.environ, "XEPHANG_SITE": SITE, "XEPHANG_SITE_FILE": str(SITE_FILE), "XEPHANG_NODE": "web",
               "XEPHANG_STATE_DIR": str(self.tmp / "web"), "XEPHANG_BROKER__PORT": str(self.broker.port),
               "XEPHANG_WEB__LISTEN": "127.0.0.1", "XEPHANG_WEB__PORT": str(self.port),
               "XEPHANG_WEB__LINK_SECRET_FILE": str(self.key), "XEPHANG_WEB__MAX_STREAMS": "2000",
               "XEPHANG_LOG_LEVEL": "WARNING"}
        self.web = subprocess.Popen([sys.executable, "-m", "webd.main"], env=env, cwd=REPO)
        if not wait_port(self.port, 20):
            raise SystemExit("webd did not start")
        self.tech = Bus(site=SITE, node="tech", role="tech", broker=BrokerSettings(port=self.broker.port))
        self.tech.subscribe(self.tech.topics.event("ticket", "called"), self._on_called, retained=False)
        self.tech.start()
        assert self.tech.wait_connected(10)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                get(self.base + "/healthz")
                break
            except Exception:
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.tech.stop()
        self.web.terminate()
        self.web.wait(10)
        self._hub.__exit__(None, None, None)
        self.broker.kill()

    def _on_called(self, msg: Inbound) -> None:
        self.called_at[json.loads(msg.payload)["ticket"]["display"]] = time.time()

    def ask(self, req):  # noqa: ANN001, ANN201
        r = self.tech.request_sync(req, timeout_s=5, attempts=1)
        assert r is not None and r.status == "ok", r
        return r

    def issue(self, service: str = "ho-tich") -> dict:
        return self.ask(IssueTicket(request_id=new_request_id(), source="tech", service=service)).data["ticket"]

    def url(self, t: dict) -> str:
        return self.base + ticket_path(self.secret, SITE, t["day"], t["id"], t["display"])


OBSERVE = """
window.__called = 0;
new MutationObserver(function () {
  if (!window.__called && document.querySelector('#live .banner.call'))
    window.__called = performance.timeOrigin + performance.now();
}).observe(document.getElementById('live'), {childList: true, subtree: true});
"""


def browser_rounds(b: Bench, rounds: int) -> tuple[list[float], list[float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,915"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=opts)
    dom, raw = [], []
    try:
        for _ in range(rounds):
            t = b.issue("chung-thuc")
            drv.get(b.url(t))
            end = time.monotonic() + 10
            while "ok" not in (drv.find_element("id", "conn").get_attribute("class") or "") and time.monotonic() < end:
                time.sleep(0.01)
            drv.execute_script(OBSERVE)
            t0 = time.time()
            b.tech.request(CallNext(request_id=new_request_id(), source="tech", counter=2), on_reply=lambda r: None)
            end = time.monotonic() + 5
            shown = 0.0
            while time.monotonic() < end:
                b.tech.process(timeout=0.005)
                shown = drv.execute_script("return window.__called") or 0.0
                if shown and t["display"] in b.called_at:
                    break
            if not shown:
                raise SystemExit(f"the call of {t['display']} never showed on the page")
            dom.append(shown / 1000 - t0)
            raw.append(b.called_at[t["display"]] - t0)
    finally:
        drv.quit()
    return dom, raw


async def fanout(b: Bench, clients: int, rounds: int) -> tuple[list[float], float, float]:
    tickets = [b.issue("ho-tich") for _ in range(clients)]
    rss0 = rss_mb(b.web.pid)
    got: list[list[float]] = [[] for _ in range(clients)]
    ready = 0

    async def client(i: int, t: dict) -> None:
        nonlocal ready
        path = ticket_path(b.secret, SITE, t["day"], t["id"], t["display"]) + "/events"
        reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        first = True
        try:
            while line := await reader.readline():
                if line.startswith(b"data: {"):
                    if first:
                        first = False
                        ready += 1
                    else:
                        got[i].append(time.time())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    tasks = [asyncio.create_task(client(i, t)) for i, t in enumerate(tickets)]
    end = time.monotonic() + 60
    while ready < clients and time.monotonic() < end:
        await asyncio.sleep(0.05)
    if ready < clients:
        raise SystemExit(f"only {ready} of {clients} streams opened")
    rss_open = rss_mb(b.web.pid)
    lat: list[float] = []
    for r in range(rounds):
        before = [len(g) for g in got]
        t0 = time.time()
        b.tech.request(CallNext(request_id=new_request_id(), source="tech", counter=1), on_reply=lambda r: None)
        end = time.monotonic() + 10
        # the first round calls ticket 0: every other page's "people ahead" changes
        expect = [i for i in range(clients) if i > r]
        while time.monotonic() < end and any(len(got[i]) <= before[i] for i in expect):
            b.tech.process(timeout=0)
            await asyncio.sleep(0.01)
        lat += [got[i][before[i]] - t0 for i in expect if len(got[i]) > before[i]]
        await asyncio.sleep(0.3)  # let the retained-state updates of this call settle before the next
    rss_after = rss_mb(b.web.pid)
    for tk in tasks:
        tk.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return lat, rss0, max(rss_open, rss_after)


def page_weight(b: Bench) -> dict[str, int]:
    t = b.issue("dat-dai")
    parts = {"html": len(get(b.url(t)))}
    for name, path in (("css", "/static/app.css?v=1"), ("js", "/static/app.js?v=1"),
                       ("font 400", "/fonts/be-vietnam-pro-400.woff"), ("font 700", "/fonts/be-vietnam-pro-700.woff")):
        parts[name] = len(get(b.base + path))
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30, help="calls measured in the browser")
    ap.add_argument("--clients", type=int, default=300, help="live-page connections for the fan-out")
    ap.add_argument("--fanout-rounds", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="web-live-") as d, Bench(Path(d)) as b:
        print(f"webd pid {b.web.pid}, RSS at start {rss_mb(b.web.pid):.1f} MB")
        if not args.no_browser:
            dom, raw = browser_rounds(b, args.rounds)
            print(f"\ncall → phone DOM ({len(dom)} calls, headless Chromium, same machine):")
            print(f"  page shows 'quầy N'   p50 {1000 * statistics.median(dom):6.1f} ms   p99 {1000 * pct(dom, .99):6.1f} ms"
                  f"   max {1000 * max(dom):6.1f} ms")
            print(f"  raw broker two-hop    p50 {1000 * statistics.median(raw):6.1f} ms   p99 {1000 * pct(raw, .99):6.1f} ms"
                  f"   (request → hub → 'called' event at a plain subscriber)")
        lat, rss0, rss1 = asyncio.run(fanout(b, args.clients, args.fanout_rounds))
        print(f"\nfan-out: {args.clients} live pages (SSE) on one webd process, {args.fanout_rounds} calls, "
              f"{len(lat)} page updates:")
        print(f"  call → stream carries it   p50 {1000 * statistics.median(lat):6.1f} ms   p99 {1000 * pct(lat, .99):6.1f} ms"
              f"   max {1000 * max(lat):6.1f} ms")
        print(f"  webd RSS: {rss0:.1f} MB before the pages opened, {rss1:.1f} MB with {args.clients} open")
        w = page_weight(b)
        total = sum(w.values())
        print(f"\nticket page weight: {total / 1024:.1f} KB (" + ", ".join(f"{k} {v / 1024:.1f} KB" for k, v in w.items())
              + "); repeat visits fetch only the HTML (assets are cached)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
