"""webd against a real mosquitto and a real hub (in threads), and a real headless Chromium.

``centre`` gives a running hub, a running webd (its HTTP server on a free port), a technician's
bus to drive the queue as the boxes would, the link secret and a head's account.
``browser`` is Debian's chromium through chromium-driver (Selenium), headless.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubd.testing import running_hub
from webd.auth import Accounts
from webd.config import WebConfig, WebSettings
from webd.main import WebDaemon
from xephang.bus import Bus
from xephang.contract import CallNext, IssueTicket, Reply, Request, new_request_id
from xephang.settings import BrokerSettings
from xephang.ticketlink import load_secret, ticket_path, write_secret
from xephang_ops.mosquitto import Mosquitto, free_port

SITE = "tuong-linh"
HEAD_USER, HEAD_PASSWORD = "truong-tt", "mat-khau-rat-dai-2026"
# officers of the example site: lan sits at counter 1, hung at 2, tuan at 3, hoa at 4 (config/site.example.toml)
OFFICER_PASSWORD = "can-bo-mat-khau-2026"


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout} s")


def http_get(url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: Any, **k: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc).encode(), {}


@dataclass
class WebCentre:
    mosquitto: Mosquitto
    hub: Any
    web: WebDaemon
    tech: Bus
    base: str
    secret: bytes
    tmp: Path
    site_file: Path
    _web_thread: threading.Thread
    _hub_cm: Any

    def ask(self, req: Request, timeout: float = 5.0) -> Reply:
        reply = self.tech.request_sync(req, timeout_s=timeout, attempts=1)
        assert reply is not None, f"no reply to {req.ACTION}"
        return reply

    def issue(self, service: str = "ho-tich") -> dict[str, Any]:
        r = self.ask(IssueTicket(request_id=new_request_id(), source="tech", service=service))
        assert r.status == "ok", r
        return r.data

    def call(self, counter: int) -> Reply:
        return self.ask(CallNext(request_id=new_request_id(), source="tech", counter=counter))

    def ticket_url(self, ticket: dict[str, Any]) -> str:
        return self.base + ticket_path(self.secret, SITE, ticket["day"], ticket["id"], ticket["display"])

    def synced(self) -> bool:
        return self.web.web.snapshot.synced

    def stop_hub(self) -> None:
        self._hub_cm.__exit__(None, None, None)

    def start_hub(self) -> None:
        self._hub_cm = running_hub(self.mosquitto.port, self.tmp / "hub", self.site_file)
        self.hub = self._hub_cm.__enter__()


@pytest.fixture
def secured(tmp_path: Path, site: Any) -> Iterator[tuple[Mosquitto, Any]]:
    """A broker with the site's accounts and ACL as `xephang broker-config` makes them, and its files."""
    from xephang_ops.brokerconf import site_accounts, write_broker_files
    from xephang_ops.mosquitto import find_mosquitto

    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    files = write_broker_files(tmp_path / "broker", site, site_accounts(site))
    broker = Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file,
                       persistence=False, bind_client_ids=True)
    broker.start()
    try:
        yield broker, files
    finally:
        broker.kill()


@pytest.fixture
def centre(mosquitto: Mosquitto, tmp_path: Path, site_file: Path) -> Iterator[WebCentre]:
    (tmp_path / "hub").mkdir()
    (tmp_path / "web").mkdir()
    key = tmp_path / "ticket-link.key"
    write_secret(key)
    accounts = tmp_path / "web" / "web-accounts.json"
    Accounts(accounts).set(HEAD_USER, "head", HEAD_PASSWORD)
    for officer in ("lan", "hung", "tuan", "hoa"):
        Accounts(accounts).set(officer, "officer", OFFICER_PASSWORD)
    port = free_port()
    watch_pw = tmp_path / "web" / "web-watch.pw"  # the broker here takes any password: webd's watcher as installed
    watch_pw.write_text("web-watch\n")
    hub_cm = running_hub(mosquitto.port, tmp_path / "hub", site_file)
    hub = hub_cm.__enter__()
    settings = WebSettings(site=SITE, node="web", site_file=site_file, state_dir=tmp_path / "web",
                           broker=BrokerSettings(port=mosquitto.port),
                           web=WebConfig(listen="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}",
                                         link_secret_file=key, accounts_file=accounts, wifi_name="TTPVHCC-Tuong-Linh",
                                         report_refresh_s=2, login_max_failures=5, watch_password_file=watch_pw))
    web = WebDaemon(settings)
    t = threading.Thread(target=web.run, name="webd", daemon=True)
    t.start()
    tech = Bus(site=SITE, node="tech", role="tech", broker=BrokerSettings(port=mosquitto.port))
    tech.start()
    c = WebCentre(mosquitto, hub, web, tech, f"http://127.0.0.1:{port}", load_secret(key), tmp_path, site_file, t, hub_cm)
    try:
        assert tech.wait_connected(10)
        wait_for(lambda: http_get(c.base + "/healthz")[0] == 200, 15, "webd synced with the hub")
        yield c
    finally:
        tech.stop()
        web.stop_event.set()
        t.join(10)
        with contextlib.suppress(Exception):
            c._hub_cm.__exit__(None, None, None)


def post_form(url: str, data: dict[str, str], cookie: str = "", headers: dict[str, str] | None = None,
              timeout: float = 15) -> tuple[int, str, dict[str, str]]:
    """A form POST as a browser sends it, without following redirects."""
    body = urllib.parse.urlencode(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Cookie": cookie, **(headers or {}),
                                                          "Content-Type": "application/x-www-form-urlencoded"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: Any, **k: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def login(base: str, user: str, password: str) -> tuple[str, str]:
    """Log in through the form; returns (session cookie, where the login sent us)."""
    st, body, h = http_get(base + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', body.decode())[1]  # type: ignore[index]
    cookie = h["set-cookie"].split(";", 1)[0]
    st, _, h2 = post_form(base + "/login", {"username": user, "password": password, "csrf": csrf}, cookie)
    assert st == 303, f"login of {user} failed ({st})"
    return h2["set-cookie"].split(";", 1)[0], h2["location"]


def _chromium() -> tuple[str, str] | None:
    b = shutil.which("chromium") or shutil.which("chromium-browser")
    d = shutil.which("chromedriver")
    return (b, d) if b and d else None


@pytest.fixture
def browser() -> Iterator[Any]:
    found = _chromium()
    if not found:
        pytest.skip("chromium and chromium-driver are not installed (./xephang.sh test installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = found[0]
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,915",
              "--disable-extensions", "--no-first-run", "--mute-audio"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(found[1]), options=opts)
    drv.set_page_load_timeout(20)
    phone_width(drv)
    try:
        yield drv
    finally:
        drv.quit()


PHONE = (412, 915)  # a common Android phone's viewport, CSS px


def phone_width(drv: Any) -> None:
    """Make the page 412 px wide. Headless Chromium will not make a window narrower than 500 px
    whatever ``--window-size`` says (a phone-width test then ran at 500 and let a 487 px page pass):
    the DevTools override sets the viewport itself, for every page this tab loads."""
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                        {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": False})
    assert drv.execute_script("return window.innerWidth") == PHONE[0]


def text_of(drv: Any, css: str) -> str:
    """The text of the first element matching ``css`` ("" when there is none). A live page swaps its
    fragment when the stream's first picture arrives: an element found just before that swap is stale
    when read, so it is looked up again (a flake seen under load: an empty banner)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(50):
        try:
            return drv.find_element(By.CSS_SELECTOR, css).text
        except StaleElementReferenceException:
            continue
        except NoSuchElementException:
            return ""
    return ""


class CuttableProxy:
    """A TCP proxy in front of webd that can cut every connection and refuse new ones: the
    phone's Wi-Fi dropping (``cut()``) and coming back (``restore()``)."""

    def __init__(self, target_port: int) -> None:
        import socket

        self.target_port = target_port
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.up = True
        self.socks: list[Any] = []
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def _accept(self) -> None:
        import socket

        while not self._stop:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                c.close()
                continue
            with self._lock:
                self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: Any, b: Any) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        import socket

        self.up = False
        with self._lock:
            socks, self.socks = self.socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._stop = True
        self.cut()
        self.srv.close()


@pytest.fixture
def proxy(centre: WebCentre) -> Iterator[CuttableProxy]:
    p = CuttableProxy(int(centre.base.rsplit(":", 1)[1]))
    try:
        yield p
    finally:
        p.close()
