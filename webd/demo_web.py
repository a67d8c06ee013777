"""webd in ``xephang demo``: its settings, citizens who follow their ticket pages, screenshots.

The demo starts webd like every other daemon (its own process, its own broker account); this
module gives it a port, the link secret it shares with the dispenser, a head's account and an
officer's account (the officer of the first seated counter) with random passwords (written to
``web/head-password.txt`` and ``web/officer-password.txt``), lets a few simulated citizens
open their ticket's live stream (as the phone's page does) and count what they were shown,
and at the end saves screenshots of a live ticket page, the hall page, the head's dashboard,
today's roster and the officer's console with headless Chromium when it is installed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from xephang.ticketlink import load_secret, ticket_path, write_secret
from xephang_ops.mosquitto import free_port

log = logging.getLogger(__name__)

FOLLOWERS = 5  # citizens who follow their ticket on a phone
HEAD_USER = "truong-trung-tam"
CATALOGUE = Path(__file__).resolve().parent.parent / "config" / "catalogue.example.toml"


class WebDemo:
    def __init__(self, out: Path, site_slug: str, *, officer: str | None = None) -> None:
        self.dir = out / "web"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.site = site_slug
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.key = self.dir / "ticket-link.key"
        write_secret(self.key)
        self.secret = load_secret(self.key)
        self.accounts = self.dir / "web-accounts.json"
        self.password = secrets.token_urlsafe(12)
        from webd.auth import Accounts

        Accounts(self.accounts).set(HEAD_USER, "head", self.password)
        (self.dir / "head-password.txt").write_text(f"{HEAD_USER}\n{self.password}\n")
        self.officer = officer  # an [[officers]] id the site seats at a counter: their console
        self.officer_password = secrets.token_urlsafe(12)
        if officer:
            Accounts(self.accounts).set(officer, "officer", self.officer_password)
            (self.dir / "officer-password.txt").write_text(f"{officer}\n{self.officer_password}\n")
        self.stop = threading.Event()
        self.followers: list[threading.Thread] = []
        self.seen: dict[str, dict[str, Any]] = {}  # ticket → what its page showed
        self.last_ticket: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # ---- settings for the daemons
    def web_env(self) -> dict[str, str]:
        env = {"XEPHANG_WEB__LISTEN": "127.0.0.1", "XEPHANG_WEB__PORT": str(self.port),
               "XEPHANG_WEB__PUBLIC_URL": self.base, "XEPHANG_WEB__LINK_SECRET_FILE": str(self.key),
               "XEPHANG_WEB__ACCOUNTS_FILE": str(self.accounts), "XEPHANG_WEB__WIFI_NAME": "TTPVHCC-demo"}
        if CATALOGUE.exists():
            env["XEPHANG_WEB__CATALOGUE_FILE"] = str(CATALOGUE)
        return env

    def dispenser_env(self) -> dict[str, str]:
        return {"XEPHANG_LINK_SECRET_FILE": str(self.key), "XEPHANG_TICKET__WIFI_NAME": "TTPVHCC-demo",
                "XEPHANG_TICKET__QR_URL": self.base + "/q/{day}/{number}/{id}/{token}"}

    def url(self, ticket: dict[str, Any]) -> str:
        return ticket_path(self.secret, self.site, ticket["day"], ticket["id"], ticket["display"])

    # ---- citizens following their tickets
    def on_event(self, ev: dict[str, Any]) -> None:
        if ev.get("kind") != "issued" or not isinstance(ev.get("ticket"), dict):
            return
        t = ev["ticket"]
        self.last_ticket = t
        if len(self.followers) >= FOLLOWERS:
            return
        th = threading.Thread(target=self._follow, args=(t,), name=f"citizen-{t.get('display')}", daemon=True)
        self.followers.append(th)
        th.start()

    def _follow(self, t: dict[str, Any]) -> None:
        """What a phone's page does: open the ticket's stream and take every fragment it sends."""
        rec = {"display": t["display"], "updates": 0, "states": [], "called_at_counter": None}
        with self._lock:
            self.seen[t["display"]] = rec
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", self.url(t) + "/events", headers={"Accept": "text/event-stream"})
                resp = conn.getresponse()
                while not self.stop.is_set():
                    line = resp.fp.readline()
                    if not line:
                        break
                    if line.startswith(b"data: {"):
                        d = json.loads(line[6:])
                        rec["updates"] += 1
                        if not rec["states"] or rec["states"][-1] != d["state"]:
                            rec["states"].append(d["state"])
                        if d["state"] == "called":
                            rec["called_at_counter"] = d.get("counter")
                        if d["state"] in ("done", "no-show", "voided", "expired"):
                            return
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.5)  # webd not up yet, or a reconnect: as EventSource does
            finally:
                conn.close()

    # ---- the end of the day
    def finish(self) -> dict[str, Any]:
        self.stop.set()
        for th in self.followers:
            th.join(3)
        shots = self.screenshots()
        with self._lock:
            seen = dict(self.seen)
        return {"url": self.base, "followers": seen, "screenshots": [str(p) for p in shots]}

    def screenshots(self) -> list[Path]:
        browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
        if not (browser and driver):
            log.warning("no chromium/chromedriver: no screenshots of the web pages")
            return []
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.options import Options
            from selenium.webdriver.chrome.service import Service
            from selenium.webdriver.common.by import By
        except ImportError:
            return []
        out: list[Path] = []
        opts = Options()
        opts.binary_location = browser
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,915"):
            opts.add_argument(a)
        drv = None
        try:
            drv = webdriver.Chrome(service=Service(driver), options=opts)
            drv.set_page_load_timeout(15)
            if self.last_ticket:
                drv.get(self.base + self.url(self.last_ticket))
                time.sleep(0.5)  # let the live stream swap in its first fragment and the font load
                out.append(self._shot(drv, "ticket-page.png"))
            drv.get(self.base + "/hall")
            time.sleep(0.5)
            out.append(self._shot(drv, "hall-page.png"))
            drv.set_window_size(1280, 1000)
            drv.get(self.base + "/login")
            drv.find_element(By.NAME, "username").send_keys(HEAD_USER)
            drv.find_element(By.NAME, "password").send_keys(self.password)
            drv.find_element(By.ID, "submit").click()
            end = time.monotonic() + 10
            while not drv.find_elements(By.ID, "figures") and time.monotonic() < end:
                time.sleep(0.1)
            out.append(self._shot(drv, "dashboard.png"))
            drv.get(self.base + "/head/roster")  # today's roster, as the hub's live site has it
            end = time.monotonic() + 10
            while not drv.find_elements(By.ID, "roster-save") and time.monotonic() < end:
                time.sleep(0.2)
                drv.refresh()
            out.append(self._shot(drv, "roster.png"))
            if self.officer:  # the officer's console on their counter's PC (a fresh session)
                drv.delete_all_cookies()
                drv.get(self.base + "/login")
                drv.find_element(By.NAME, "username").send_keys(self.officer)
                drv.find_element(By.NAME, "password").send_keys(self.officer_password)
                drv.find_element(By.ID, "submit").click()
                end = time.monotonic() + 10
                while not drv.find_elements(By.ID, "actions") and time.monotonic() < end:
                    time.sleep(0.1)
                out.append(self._shot(drv, "console.png"))
        except Exception as exc:  # screenshots are a bonus: never fail the demo for them
            log.warning("web screenshots failed: %s", exc)
        finally:
            if drv is not None:
                with contextlib.suppress(Exception):
                    drv.quit()
        return out

    def _shot(self, drv: Any, name: str) -> Path:
        p = self.dir / name
        drv.save_screenshot(str(p))
        return p
