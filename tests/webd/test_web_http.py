"""webd over plain HTTP: CSRF on every form, cookies, headers, page weight, the catalogue and
the posters, accounts and their hashes."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest
from webharness import HEAD_PASSWORD, HEAD_USER, http_get, wait_for

from webd.auth import AccountError, Accounts, Throttle, check_password, hash_password
from webd.catalogue import load_catalogue
from xephang.settings import SettingsError

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _post(url: str, data: dict[str, str], cookie: str = "") -> tuple[int, str, dict]:
    body = urllib.parse.urlencode(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Cookie": cookie,
                                                          "Content-Type": "application/x-www-form-urlencoded"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _login_form(base: str) -> tuple[str, str]:
    st, body, h = http_get(base + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', body.decode())[1]
    cookie = h["set-cookie"].split(";", 1)[0]
    return csrf, cookie


@pytest.mark.broker
def test_login_needs_the_forms_token_and_logout_needs_the_sessions(centre):
    base = centre.base
    # no CSRF cookie, or a token that does not match: refused before the password is even checked
    assert _post(base + "/login", {"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": "x"})[0] == 403
    csrf, cookie = _login_form(base)
    assert _post(base + "/login", {"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": csrf + "x"}, cookie)[0] == 403
    st, _, h = _post(base + "/login", {"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": csrf,
                                       "next": "//evil.example/"}, cookie)
    assert st == 303 and h["location"] == "/head"  # never sent off-site
    set_cookie = h["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace("Strict", "strict")
    session = set_cookie.split(";", 1)[0]
    st, body, _ = http_get(base + "/head", headers={"Cookie": session})
    assert st == 200 and "Bảng điều hành" in body.decode()
    token = re.search(r'name="csrf" value="([^"]+)"', body.decode())[1]
    assert _post(base + "/logout", {"csrf": "wrong"}, session)[0] == 403  # a forged logout form
    assert http_get(base + "/head", headers={"Cookie": session})[0] == 200
    assert _post(base + "/logout", {"csrf": token}, session)[0] == 303
    assert http_get(base + "/head", headers={"Cookie": session})[0] == 303  # the session is gone


@pytest.mark.broker
def test_headers_language_and_the_ticket_page_weight(centre):
    t = centre.issue()["ticket"]
    st, body, h = http_get(centre.ticket_url(t))
    assert st == 200
    assert "script-src 'self'" in h["content-security-policy"] and h["referrer-policy"] == "no-referrer"
    page = body.decode()
    assert "cdn" not in page.lower() and "https://" not in page  # nothing from the Internet
    assert "Số thứ tự của bạn" in page
    weight = len(body)
    for asset in ("/static/app.css?v=1", "/static/app.js?v=1", "/fonts/be-vietnam-pro-400.woff",
                  "/fonts/be-vietnam-pro-700.woff"):
        st, data, _ = http_get(centre.base + asset)
        assert st == 200, asset
        weight += len(data)
    assert weight <= 100 * 1024, weight  # the issue's target, font subset included
    st, body, _ = http_get(centre.ticket_url(t) + "?lang=en")
    assert "Your number" in body.decode()
    assert http_get(centre.base + "/lang/en?next=//evil.example")[2]["location"] == "/head"
    # a mistyped or cut link: the page's language and look, with the security headers (Starlette's
    # plain-text English "Not Found" before)
    for path, said in (("/nope", "Không tìm thấy trang."), ("/q/2026-12-07", "Không tìm thấy trang."),
                       ("/nope?lang=en", "Page not found."),
                       ("/guide/khong-co", 'Không có hướng dẫn cho lĩnh vực này.</div><p><a href="/guide">')):
        st, body, h = http_get(centre.base + path)
        assert st == 404 and said in body.decode() and h["content-type"].startswith("text/html"), path
        assert "script-src 'self'" in h["content-security-policy"], path


def test_accounts_hash_with_scrypt_and_refuse_weak_input(tmp_path):
    h = hash_password("một mật khẩu dài", n=2**10)
    assert h.startswith("scrypt$1024$") and check_password("một mật khẩu dài", h) and not check_password("x", h)
    acc = Accounts(tmp_path / "a.json")
    with pytest.raises(AccountError):
        acc.set("head", "head", "short")
    with pytest.raises(AccountError):
        acc.set("../etc", "head", "long enough password")
    with pytest.raises(AccountError):
        acc.set("head", "root", "long enough password")
    acc.set("head", "head", "long enough password")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o600
    assert acc.verify("head", "long enough password") and not acc.verify("head", "wrong password!")
    assert "long enough" not in (tmp_path / "a.json").read_text()


def test_throttle_locks_an_address_and_a_name_then_lets_go():
    now = [0.0]
    th = Throttle(max_failures=5, window_s=900, lockout_s=300, clock=lambda: now[0])
    for _ in range(4):
        th.failed("ip:1", "user:a")
    assert not th.locked("ip:1", "user:a")
    th.failed("ip:1", "user:a")
    assert th.locked("ip:2", "user:a") > 0  # another address, the same name: locked
    assert th.begin("ip:1", "user:a") > 0
    now[0] += 301
    assert not th.locked("ip:1", "user:a")
    # the lockout is over: one check is let in (the login path asks begin, not locked), not two
    assert th.begin("ip:1", "user:a") == 0.0 and th.begin("ip:1", "user:a") == 60.0
    th.failed("ip:1", "user:a")
    th.end("ip:1", "user:a")
    assert th.locked("ip:1", "user:a") > 0  # and a wrong one locks it again


def test_throttle_counts_good_logins_too_so_one_password_cannot_hog_the_checks():
    now = [0.0]
    th = Throttle(max_failures=5, window_s=900, lockout_s=300, max_successes=30, clock=lambda: now[0])
    for _ in range(4):
        th.failed("ip:1", "user:a")
    th.succeeded("ip:1", "user:a")  # the right password: the four failures are forgotten
    th.failed("ip:1", "user:a")
    assert not th.locked("ip:1", "user:a")
    for _ in range(29):
        th.succeeded("ip:9", "user:b")
        now[0] += 1
    assert not th.locked("ip:9", "user:b")
    th.succeeded("ip:9", "user:b")  # the 30th login in 15 minutes
    assert th.locked("ip:9") > 0 and th.locked("ip:8", "user:b") > 0 and not th.locked("ip:1", "user:a")
    now[0] += 901  # a quarter of an hour later everything is forgotten
    assert not th.locked("ip:9", "user:b")
    th.succeeded("ip:9", "user:b")
    assert not th.locked("ip:9", "user:b")


def test_throttle_counts_checks_in_flight_and_forgets_only_the_logged_in_names_failures():
    now = [0.0]
    th = Throttle(max_failures=5, window_s=900, lockout_s=300, clock=lambda: now[0])
    assert [th.begin("ip:1", "user:a") for _ in range(6)] == [0.0] * 5 + [60.0]  # five in flight at most
    for _ in range(5):
        th.end("ip:1", "user:a")
    assert th.begin("ip:1", "user:b") == 0.0 and not th._pending.get("user:a")
    th.end("ip:1", "user:b")
    th.failed("ip:1", "user:a", name="a")
    th.failed("ip:1", "user:a", name="a")
    th.failed("ip:1", "user:b", name="b")
    assert [th.begin("ip:1", "user:c") for _ in range(3)] == [0.0, 0.0, 60.0]  # 3 failures + 2 in flight
    th.end("ip:1", "user:c")
    th.end("ip:1", "user:c")
    th.succeeded("ip:1", "user:a", name="a")  # a's own typing errors are forgotten, b's stay
    assert [n for _, n in th._fails["ip:1"]] == ["b"] and "user:a" not in th._fails
    for _ in range(4):
        th.failed("ip:1", "user:z", name="z")
    assert th.locked("ip:1") > 0 and not th.locked("user:a")


def test_the_cli_creates_accounts_without_a_default_password(tmp_path):
    f = tmp_path / "acc.json"
    r = subprocess.run([sys.executable, "-m", "xephang_ops.cli", "web", "user", "add", "truong", "--role", "head",
                        "--accounts", str(f), "--password-stdin"], input="mat-khau-du-dai\n", capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert Accounts(f).verify("truong", "mat-khau-du-dai").role == "head"
    r = subprocess.run([sys.executable, "-m", "xephang_ops.cli", "web", "user", "list", "--accounts", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "truong\thead"


def test_an_officers_account_that_names_no_officer_of_the_site_is_said(tmp_path, site_file):
    """`web user add lann --role officer` (a typo of lan) said "added" and nothing else: the officer
    logged in to "you are seated at no counter today". The account is made, with a warning."""
    f = tmp_path / "acc.json"

    def add(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "xephang_ops.cli", "web", "user", "add", name, "--role", "officer",
                               "--accounts", str(f), "--password-stdin", "--site-file", str(site_file)],
                              input="mat-khau-du-dai\n", capture_output=True, text=True, timeout=60)

    r = add("lann")
    assert r.returncode == 0 and Accounts(f).get("lann") is not None
    assert "'lann' không có trong [[officers]]" in r.stderr and "lan, " in r.stderr
    r = add("lan")
    assert r.returncode == 0 and "cảnh báo" not in r.stderr


def test_the_example_catalogue_loads_and_a_bad_one_lists_every_error(site, tmp_path):
    cat = load_catalogue(REPO / "config" / "catalogue.example.toml", site)
    assert cat.for_service("ho-tich")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[procedures]]\nservice = "ho-tich"\n\n[[procedures]]\nservice = "khong-co"\nname_vi = "X"\n'
                   'portal_url = "javascript:alert(1)"\n\n[[procedures]]\nname_vi = "Y"\nfees = "0"\n\n'
                   '[[procedures]]\nservice = "ho-tich"\nname_vi = "Khai sinh \\u202Eđộc"\n')
    with pytest.raises(SettingsError) as exc:
        load_catalogue(bad, site)
    text = str(exc.value)
    for want in ("procedures.0.name_vi", "procedures.1.portal_url", "procedures.2.service", "fees",
                 "'khong-co' is not a service", "procedures.3.name_vi"):
        assert want in text, want


def test_posters_are_a4_with_a_readable_qr(site, tmp_path):
    import shutil

    from webd.catalogue import write_posters

    paths = write_posters(site, "http://xephang.local", tmp_path, wifi="TTPVHCC")
    assert len(paths) == len(site.services) + len(site.counters)
    from PIL import Image

    img = Image.open(paths[0])
    assert img.size == (2480, 3508)
    if shutil.which("zbarimg"):
        out = subprocess.run(["zbarimg", "--raw", "-q", str(paths[0])], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == f"http://xephang.local/guide/{site.services[0].id}"
        # a counter's poster opens the counter's own list: every service it calls (the first one's guide
        # alone before: counter 1's "Hộ tịch, Tư pháp – Chứng thực" poster opened Hộ tịch only)
        quay1 = next(p for p in paths if p.name == "poster-quay-1.png")
        out = subprocess.run(["zbarimg", "--raw", "-q", str(quay1)], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "http://xephang.local/guide?counter=1"


def test_a_counters_guide_page_lists_the_services_it_calls(site):
    from webd.catalogue import index_html

    page = index_html(None, site, "vi", counter=1)
    assert "Quầy 1 — Hướng dẫn thủ tục" in page and 'href="/guide/ho-tich"' in page
    assert 'href="/guide/chung-thuc"' in page and 'href="/guide/dat-dai"' not in page
    assert 'href="/guide/dat-dai"' in index_html(None, site, "vi", counter=99)  # no such counter: every service
    assert "Trung tâm không có quầy số 99: dưới đây là mọi lĩnh vực." in index_html(None, site, "vi", counter=99)
    assert "không có quầy" not in page


def test_a_ticket_page_links_only_to_a_guide_with_procedures_in_it(centre):
    """The phone of a service the catalogue has nothing for linked to an empty guide (a newcomer's walk)."""
    from webd.catalogue import load_catalogue

    cat = load_catalogue(REPO / "config" / "catalogue.example.toml", centre.web.web.site)
    centre.web.web.catalogue = cat
    full = centre.issue("ho-tich")["ticket"]
    empty_sid = next(s.id for s in centre.web.web.site.services if not cat.for_service(s.id))
    empty = centre.issue(empty_sid)["ticket"]
    wait_for(lambda: empty["id"] in centre.web.web.snapshot.tickets, 10, "webd saw both")
    assert 'href="/guide/ho-tich"' in http_get(centre.ticket_url(full))[1].decode()
    assert "/guide/" not in http_get(centre.ticket_url(empty))[1].decode()


def test_a_service_without_procedures_says_so_and_the_catalogue_check_warns(site, tmp_path):
    """The catalogue check said "OK" and the guide behind a service's poster said "the centre has no
    procedure catalogue" when the catalogue simply had nothing for that service (a newcomer's walk)."""
    from webd.catalogue import load_catalogue, service_html

    cat = load_catalogue(REPO / "config" / "catalogue.example.toml", site)
    empty = [s.id for s in site.services if not cat.for_service(s.id)]
    assert empty, "the example catalogue covers every service: pick another case"
    page = service_html(cat, site, empty[0], "vi")
    assert "Chưa có hướng dẫn thủ tục của lĩnh vực này" in page and "chưa có danh mục" not in page
    assert "Trung tâm chưa có danh mục thủ tục." in service_html(None, site, empty[0], "vi")
    r = subprocess.run([sys.executable, "-m", "xephang_ops.cli", "web", "catalogue",
                        str(REPO / "config" / "catalogue.example.toml"), "--site-file", str(REPO / "config" /
                                                                                           "site.example.toml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "OK:" in r.stdout
    assert f"({empty[0]}) chưa có thủ tục nào" in r.stdout and "its poster's QR opens an empty guide" in r.stdout
    r = subprocess.run([sys.executable, "-m", "xephang_ops.cli", "web", "catalogue",
                        str(REPO / "config" / "catalogue.example.toml"), "--site-file", str(tmp_path / "none.toml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr  # one line, as before


def test_the_dispenser_signs_the_live_link_and_prints_no_qr_without_the_secret(site):
    from datetime import datetime

    from ticketd.config import TicketLayout
    from ticketd.render import TicketRenderer, TicketView
    from xephang.clock import VN_TZ
    from xephang.ticketlink import check_token, make_secret

    secret = make_secret().encode()
    layout = TicketLayout(qr_url="http://xephang.local/q/{day}/{number}/{id}/{token}")
    view = TicketView(number=1023, service_id="ho-tich", issued_at=datetime(2026, 11, 23, 8, 5, tzinfo=VN_TZ),
                      ticket_id=57, day="2026-11-23")
    url = TicketRenderer(site, layout, link_secret=secret).qr_url(view)
    day, number, tid, token = url.split("/")[-4:]
    assert (day, number, tid) == ("2026-11-23", "1023", "57")
    assert check_token(secret, "tuong-linh", day, 57, number, token)
    assert not check_token(secret, "tuong-linh", day, 58, number, token)
    assert not check_token(make_secret().encode(), "tuong-linh", day, 57, number, token)
    assert TicketRenderer(site, layout).qr_url(view) == ""  # no secret: no QR rather than a dead link


@pytest.mark.broker
def test_the_dashboard_shows_a_device_alert_as_it_happens_and_clears_it(centre):
    from webharness import wait_for

    from xephang.contract import Alert

    csrf, cookie = _login_form(centre.base)
    st, _, h = _post(centre.base + "/login", {"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": csrf}, cookie)
    assert st == 303
    session = h["set-cookie"].split(";", 1)[0]
    topic = centre.tech.topics.alert("dispenser-1", "paper-out")
    centre.tech.publish(topic, Alert(node="dispenser-1", id="paper-out", severity="critical",
                                     message_vi="Hết giấy in", message_en="Paper out"), retain=True)

    def dashboard() -> str:
        return http_get(centre.base + "/head", headers={"Cookie": session})[1].decode()

    wait_for(lambda: "Hết giấy in" in dashboard(), 10, "the alert on the dashboard")
    centre.tech.clear(topic)
    wait_for(lambda: "Hết giấy in" not in dashboard(), 10, "the alert cleared")


@pytest.mark.broker
def test_the_live_stream_speaks_the_pages_language(centre):
    import http.client

    t = centre.issue()["ticket"]
    st, body, _ = http_get(centre.ticket_url(t) + "?lang=en")
    stream = re.search(r'data-stream="([^"]+)"', body.decode())[1].replace("&amp;", "&")
    assert stream.endswith("/events?lang=en")
    conn = http.client.HTTPConnection("127.0.0.1", int(centre.base.rsplit(":", 1)[1]), timeout=5)
    conn.request("GET", stream)
    resp = conn.getresponse()
    while not (line := resp.fp.readline()).startswith(b"data: {"):
        pass
    conn.close()
    assert "People ahead of you" in line.decode()


def _webd(env_extra: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("XEPHANG_")}
    env.update({"XEPHANG_SITE_FILE": str(REPO / "config" / "site.example.toml"), **env_extra})
    return subprocess.run([sys.executable, "-m", "webd.main", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_console_script_checks_its_settings_and_lists_every_error(tmp_path):
    ok = _webd({"XEPHANG_STATE_DIR": str(tmp_path)}, "--check")
    assert ok.returncode == 0 and "settings OK" in ok.stdout
    bad = tmp_path / "webd.toml"
    bad.write_text('[web]\nport = 0\npublc_url = "http://x"\nwifi_name = "' + "x" * 50 + '"\n')
    r = _webd({"XEPHANG_STATE_DIR": str(tmp_path)}, "--config", str(bad), "--check")
    assert r.returncode == 78
    for want in ("web.port", "web.publc_url: khóa không có trong cấu hình (có phải 'public_url'?) / unknown key (did you mean 'public_url'?)", "web.wifi_name"):
        assert want in r.stderr, want
    # a link secret that cannot be read: the start goes on without ticket pages (and logs it); a check that
    # then said "settings OK" was no check (a newcomer's walk)
    missing = tmp_path / "ticket-link.key"
    r = _webd({"XEPHANG_STATE_DIR": str(tmp_path), "XEPHANG_WEB__LINK_SECRET_FILE": str(missing)}, "--check")
    assert r.returncode == 78 and "settings OK" not in r.stdout, (r.stdout, r.stderr[-1000:])
    assert f"web.link_secret_file: ticket link secret {missing}: No such file or directory: trang của phiếu sẽ " \
           "không mở được / " in r.stderr, r.stderr[-1000:]


def test_webd_exits_non_zero_when_its_port_is_taken(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = _webd({"XEPHANG_STATE_DIR": str(tmp_path), "XEPHANG_WEB__LISTEN": "127.0.0.1",
                   "XEPHANG_WEB__PORT": str(port), "XEPHANG_BROKER__PORT": "1"}, timeout=60)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "exiting so systemd restarts webd" in r.stderr


@pytest.mark.broker
def test_a_webd_started_mid_day_reads_todays_tickets_back(centre):
    import threading

    from webharness import SITE, wait_for

    from webd.config import WebConfig, WebSettings
    from webd.main import WebDaemon
    from xephang.contract import Pause, new_request_id
    from xephang.settings import BrokerSettings

    tickets = [centre.issue("ho-tich")["ticket"] for _ in range(3)]
    assert centre.ask(Pause(request_id=new_request_id(), source="tech", counter=4, reason="họp")).status == "ok"
    centre.call(1)  # the first is called; the third has one person ahead
    late = WebDaemon(WebSettings(site=SITE, node="web-2", site_file=centre.site_file, state_dir=centre.tmp / "web2",
                                 broker=BrokerSettings(port=centre.mosquitto.port),
                                 web=WebConfig(catchup_events=1000)), serve=False)
    t = threading.Thread(target=late.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: late.web.snapshot.synced, 15, "the late webd synced")
        snap = late.web.snapshot
        views = [snap.ticket_view(x["id"], x["day"], x["display"]) for x in tickets]
        assert [(v.state, v.counter, v.people_ahead) for v in views] == [("called", 1, None), ("waiting", None, 0),
                                                                        ("waiting", None, 1)]
        assert late.model.events_applied >= 5 and late.model.duplicates == 0
    finally:
        late.stop_event.set()
        t.join(10)


def _late_webd(centre):
    """Four events after the tickets issued so far (more than it reads back), then a second webd
    started, reading back only its last 3 events: the earlier tickets are older than its read-back."""
    import threading

    from webharness import SITE

    from webd.config import WebConfig, WebSettings
    from webd.main import WebDaemon
    from xephang.contract import Pause, Resume, new_request_id
    from xephang.settings import BrokerSettings

    for _ in range(2):
        assert centre.ask(Pause(request_id=new_request_id(), source="tech", counter=4, reason="họp")).status == "ok"
        assert centre.ask(Resume(request_id=new_request_id(), source="tech", counter=4)).status == "ok"
    late = WebDaemon(WebSettings(site=SITE, node="web-2", site_file=centre.site_file, state_dir=centre.tmp / "web2",
                                 broker=BrokerSettings(port=centre.mosquitto.port),
                                 web=WebConfig(catchup_events=3)), serve=False)
    t = threading.Thread(target=late.run, daemon=True)
    t.start()
    return late, t


@pytest.mark.broker
def test_a_phone_of_a_ticket_older_than_the_read_back_shows_it_after_a_webd_restart(centre):
    """webd reads back its last ``catchup_events`` at its start. A ticket issued before them (a busy day,
    or a counter's password filling the day with pauses) was "no information about this number" on the
    citizen's phone for the rest of the day; the page's ``ticket-wait`` now brings it from the hub."""

    from webharness import wait_for


    tickets = [centre.issue("ho-tich")["ticket"] for _ in range(3)]
    centre.call(1)  # the first is called; the third has one person ahead
    late, t = _late_webd(centre)

    def seen(i: int):
        x = tickets[i]
        v = late.web.snapshot.ticket_view(x["id"], x["day"], x["display"])
        return v.state, v.counter, v.people_ahead

    try:
        wait_for(lambda: late.web.snapshot.synced, 15, "the late webd synced")
        assert seen(2) == ("unknown", None, None)  # what the page said before
        late.watch_from_web(tickets[2]["id"])  # what opening the page does
        wait_for(lambda: seen(2) == ("waiting", None, 1), 15, "the page shows the ticket from the hub's answer")
        centre.call(2)  # the second is called: the third is next
        wait_for(lambda: seen(2) == ("waiting", None, 0), 30, "the hub's new count while the page is open")
        centre.call(1)  # counter 1 ends the first (served, inferred) and calls the third: an event, as any other
        wait_for(lambda: seen(2) == ("called", 1, None), 15, "the call of the ticket")
    finally:
        late.stop_event.set()
        t.join(10)


def test_an_adopted_tickets_count_is_asked_again_at_once_after_its_own_requeue(centre, monkeypatch):
    """After its own event (here a no-show sent back to the queue) a ticket webd adopted shows no
    people ahead until the hub answers again; that answer was asked only when WAIT_MOVED_S had passed
    (the page said nothing for ten seconds). It is asked at the next turn now: with WAIT_MOVED_S
    made long, the old code never asked in this test."""

    from webharness import wait_for

    import webd.main
    from xephang.contract import NoShow, new_request_id

    monkeypatch.setattr(webd.main, "WAIT_MOVED_S", 600.0)  # the hall moving does not ask again here
    a = centre.issue("ho-tich")["ticket"]
    late, t = _late_webd(centre)

    def seen():
        v = late.web.snapshot.ticket_view(a["id"], a["day"], a["display"])
        return v.state, v.counter, v.people_ahead

    try:
        wait_for(lambda: late.web.snapshot.synced, 15, "the late webd synced")
        late.watch_from_web(a["id"])
        wait_for(lambda: seen() == ("waiting", None, 0), 15, "the ticket from the hub's answer")
        assert late.model.adopted.get(a["id"], (None,))[0] == 0
        for _ in range(2):
            centre.issue("ho-tich")
        centre.call(1)  # the adopted ticket is called …
        wait_for(lambda: seen()[:2] == ("called", 1), 15, "the call")
        reply = centre.ask(NoShow(request_id=new_request_id(), source="tech", counter=1))
        assert reply.status == "ok", reply
        # … absent, and sent back behind the two who came later
        wait_for(lambda: seen() == ("waiting", None, 2), 15, "the hub's count after the requeue")
    finally:
        late.stop_event.set()
        t.join(10)


@pytest.mark.broker
def test_a_period_the_report_cannot_read_is_said_in_the_heads_language(centre):
    """Not the report code's English grammar: what to write, in Vietnamese (English on request),
    with the form kept and nothing asked of the hub."""
    csrf, cookie = _login_form(centre.base)
    st, _, h = _post(centre.base + "/login", {"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": csrf}, cookie)
    session = h["set-cookie"].split(";", 1)[0]
    for bad in ("bad-period", "2026-13", "2026-02-30", "2026-11-30..2026-11-01", "<script>"):
        st, body, _ = http_get(centre.base + "/head/reports?" + urllib.parse.urlencode({"period": bad}),
                               headers={"Cookie": session})
        text = body.decode()
        assert st == 400 and "Không đọc được kỳ báo cáo" in text and "hôm nay" in text, bad
        assert "use today" not in text and "<script>" not in text and 'name="period"' in text
    st, body, _ = http_get(centre.base + "/head/reports?period=bad-period&lang=en", headers={"Cookie": session})
    assert st == 400 and "The period “bad-period” cannot be read" in body.decode()
    st, body, _ = http_get(centre.base + "/head/reports?period=2026-11", headers={"Cookie": session})
    assert st == 200 and "Không đọc được" not in body.decode()


def test_a_report_too_large_is_said_in_the_heads_language_and_packed_rows_are_read(site, tmp_path):
    """The hub's refusal of a too-large report reaches the head in her language (the Vietnamese page
    showed the hub's English: 'invalid: report of 79 rows is 57855 bytes…'); a packed report's rows
    are the report's own."""
    import asyncio

    from webd.app import WebApp
    from webd.config import WebConfig, WebSettings
    from webd.pages import report_problem
    from xephang.contract import Reply, ReplyError
    from xephang_reports.build import pack_rows

    replies: list[Reply | None] = []
    app = WebApp(WebSettings(site=site.site.slug, node="web", state_dir=tmp_path, web=WebConfig()), site,
                 ask=lambda kind, params, done: done(replies.pop(0)))
    too = Reply(request_id="r", action="report", status="error",
                error=ReplyError(code="too-large", message="report of 79 rows is 57855 bytes, too large"))
    for lang, words in (("vi", "quá lớn"), ("en", "too large")):
        replies.append(too)
        rep, err = asyncio.run(app.report("2026-Q4", "day", lang, max_age=0))
        assert rep is None and words in err and "57855" not in err and err == report_problem("too-large", "", lang)
    replies.append(None)
    assert asyncio.run(app.report("2026-Q3", "day", "vi", max_age=0))[1] == "Máy chủ hàng đợi chưa trả lời. Hãy thử lại sau ít phút."
    full = {"schema": "xephang.report.v1", "group_by": "day", "totals": {"issued": 3},
            "rows": [{"key": "2026-11-23", "issued": 2, "calls": 2, "open": 0, "wait": {"n": 2, "mean": 61.5},
                      "ratings": {"5": 1}},
                     {"key": "2026-11-24", "issued": 1, "calls": 0, "open": 1, "wait": {"n": 0, "mean": None},
                      "ratings": {}}]}
    replies.append(Reply(request_id="r", action="report", status="ok",
                         data={**{k: v for k, v in full.items() if k != "rows"}, "rows_packed": pack_rows(full["rows"])}))
    assert asyncio.run(app.report("2026-11", "day", "vi", max_age=0)) == (full, "")


def test_a_new_password_ends_the_accounts_open_sessions(centre):
    """`xephang web user passwd` after a password is stolen: the thief's open session ended with the
    change (it kept every page for up to 8 hours)."""
    from webharness import login

    from webd.auth import Accounts

    cookie, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)
    assert http_get(centre.base + "/head", headers={"Cookie": cookie})[0] == 200
    accounts = Accounts(centre.web.web.accounts.path)  # as the CLI writes the file, from outside
    try:
        accounts.set(HEAD_USER, "head", "mat-khau-moi-rat-dai-2026")
        st, _, h = http_get(centre.base + "/head", headers={"Cookie": cookie})
        assert st == 303 and h["location"].startswith("/login")
        cookie, _ = login(centre.base, HEAD_USER, "mat-khau-moi-rat-dai-2026")
        assert http_get(centre.base + "/head", headers={"Cookie": cookie})[0] == 200
    finally:
        accounts.set(HEAD_USER, "head", HEAD_PASSWORD)


@pytest.mark.parametrize(("user", "role", "stream"), [(HEAD_USER, "head", "/head/events"),
                                                     ("lan", "officer", "/counter/1/events")])
def test_a_new_password_ends_the_live_streams_the_old_session_holds_open(centre, user, role, stream):
    """The thief's open /head/events (or a console's stream) made no new request, so it went on
    sending after the password was changed (until the session's 24 h). It ends at the stream's next
    turn: the next change in the hall (here a ticket) is not sent to it."""
    import http.client

    from webharness import OFFICER_PASSWORD, login

    from webd.auth import Accounts

    old = HEAD_PASSWORD if role == "head" else OFFICER_PASSWORD
    cookie, _ = login(centre.base, user, old)
    conn = http.client.HTTPConnection("127.0.0.1", int(centre.base.rsplit(":", 1)[1]), timeout=20)
    conn.request("GET", stream, headers={"Cookie": cookie})
    resp = conn.getresponse()
    assert resp.status == 200
    while not resp.fp.readline().startswith(b"data: {"):
        pass  # the dashboard as it is now
    accounts = Accounts(centre.web.web.accounts.path)
    try:
        accounts.set(user, role, "mat-khau-moi-rat-dai-2026")
        centre.issue()  # the hall changes: a stream still alive would send the new figures
        after = []
        try:
            while line := resp.fp.readline():  # until the server ends the stream (or 20 s of silence)
                after.append(line)
        except TimeoutError:
            pytest.fail(f"the stream stayed open after the password changed: {after[:3]}")
        finally:
            conn.close()
        assert not [x for x in after if x.startswith(b"data: {")], after[:3]
    finally:
        accounts.set(user, role, old)
