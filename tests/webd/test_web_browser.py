"""Stories in a real headless Chromium, against a real mosquitto, a real hub and webd.

The citizen scans the printed ticket, follows it live, is called; the phone loses Wi-Fi, the
hub restarts, and the page comes back to the truth; the head logs in and reads the same
figures as ``xephang report``; forged links and password guessing get nowhere.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from datetime import date, timedelta

import pytest
from webharness import HEAD_PASSWORD, HEAD_USER, SITE, http_get, text_of, wait_for

from ticketd.config import TicketLayout
from ticketd.escpos_decode import decode_job
from ticketd.main import TicketDaemon, TicketdSettings
from ticketd.printer import FakePrinter
from xephang.contract import Finish, SimPress, new_request_id
from xephang.settings import BrokerSettings
from xephang.ticketlink import ticket_path

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _wait_dom(drv, css: str, pred, timeout: float, what: str) -> str:
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        last = text_of(drv, css)
        if pred(last):
            return last
        time.sleep(0.01)
    raise AssertionError(f"{what}: {css} says {last!r} after {timeout} s")


def _live(drv) -> None:
    _wait_dom(drv, "#conn.ok", lambda s: bool(s), 10, "the live stream connected")


def _decode_qr(png_path) -> str:
    exe = shutil.which("zbarimg")
    if not exe:
        pytest.skip("zbarimg is not installed (zbar-tools; ./xephang.sh test installs it)")
    out = subprocess.run([exe, "--raw", "-q", str(png_path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_printed_qr_opens_the_live_page_and_a_call_shows_within_a_second(centre, browser, tmp_path):
    first = centre.issue("ho-tich")["ticket"]  # someone is already waiting
    printer = FakePrinter()
    layout = TicketLayout(qr_url=centre.base + "/q/{day}/{number}/{id}/{token}", wifi_name="TTPVHCC-Tuong-Linh")
    settings = TicketdSettings(site=SITE, node="dispenser-1", site_file=centre.site_file, state_dir=tmp_path / "tk",
                               sim=True, broker=BrokerSettings(port=centre.mosquitto.port), ticket=layout,
                               link_secret_file=tmp_path / "ticket-link.key")
    (tmp_path / "tk").mkdir()
    tk = TicketDaemon(settings, printer=printer)
    tk.start()
    try:
        end = time.monotonic() + 10
        while not tk.hub_online and time.monotonic() < end:
            tk.step(timeout=0.02)
        centre.tech.publish(centre.tech.topics.sim_press("dispenser-1"), SimPress(button="ho-tich"))
        while not printer.jobs and time.monotonic() < end + 10:
            tk.step(timeout=0.02)
        assert printer.jobs, "no ticket printed"
    finally:
        tk.teardown()
        tk.bus.stop()
    # the QR as the paper shows it: the ESC/POS raster decoded back to pixels, then read
    img = decode_job(printer.jobs[0]).image()
    assert img is not None
    png = tmp_path / "ticket.png"
    img.convert("L").resize((img.width * 2, img.height * 2)).save(png)
    url = _decode_qr(png)
    assert url.startswith(centre.base + "/q/"), url

    browser.get(url)
    assert text_of(browser, ".num") == "1002"
    assert text_of(browser, ".ahead") == "1"
    assert "Hộ tịch" in text_of(browser, ".svc")
    _live(browser)

    centre.call(1)  # counter 1 calls the first citizen: one less ahead, live
    _wait_dom(browser, ".ahead", lambda s: s == "0", 2, "people ahead went down")

    t0 = time.monotonic()
    reply = centre.call(2)  # counter 2 calls our ticket
    assert reply.data["ticket"]["display"] == "1002"
    _wait_dom(browser, ".banner.call", lambda s: "quầy 2" in s.lower(), 1.0, "the call on the phone")
    assert time.monotonic() - t0 < 1.0
    assert first["display"] == "1001"


def test_wifi_drop_and_hub_restart_come_back_to_the_truth(centre, browser, proxy):
    t = centre.issue("dat-dai")["ticket"]
    via_wifi = centre.ticket_url(t).replace(centre.base, f"http://127.0.0.1:{proxy.port}")
    browser.get(via_wifi)
    _live(browser)
    centre.call(3)  # counter 3 serves đất đai
    _wait_dom(browser, ".banner.call", lambda s: "quầy 3" in s.lower(), 2, "called")

    # Wi-Fi drops (every connection cut, new ones refused); meanwhile the officer finishes
    proxy.cut()
    # the page knows it is not hearing the server: the old "called" is greyed and labelled
    _wait_dom(browser, "#conn.off", lambda s: bool(s), 10, "the page saw the drop")
    assert browser.find_element("id", "live").get_attribute("class") == "stale"
    r = centre.ask(Finish(request_id=new_request_id(), source="tech", counter=3))
    assert r.status == "ok"
    time.sleep(0.5)  # the page must not learn it while cut off
    assert "quầy 3" in text_of(browser, ".banner.call").lower()
    proxy.restore()
    _wait_dom(browser, ".banner.ok", lambda s: "phục vụ xong" in s.lower(), 10, "served after Wi-Fi came back")
    assert not text_of(browser, ".banner.call")

    # the hub restarts: the page says it is updating (never a stale state), then shows the truth
    t2 = centre.issue("dat-dai")["ticket"]
    browser.get(centre.ticket_url(t2))
    _live(browser)
    _wait_dom(browser, ".ahead", lambda s: s == "0", 5, "waiting")
    centre.stop_hub()
    _wait_dom(browser, ".banner.wait", lambda s: "cập nhật" in s.lower(), 10, "updating while the hub is down")
    centre.start_hub()
    _wait_dom(browser, ".ahead", lambda s: s == "0", 15, "the truth after the hub restart")
    centre.call(3)
    _wait_dom(browser, ".banner.call", lambda s: "quầy 3" in s.lower(), 2, "a call after the restart")


def test_head_logs_in_sees_todays_figures_as_xephang_report_and_downloads_xlsx(centre, browser, tmp_path):
    for s in ("ho-tich", "ho-tich", "dat-dai"):
        centre.issue(s)
    centre.call(1)
    centre.ask(Finish(request_id=new_request_id(), source="tech", counter=1))
    centre.call(1)

    browser.get(centre.base + "/head")
    assert "/login" in browser.current_url  # no login → redirected
    from selenium.webdriver.common.by import By

    browser.find_element(By.NAME, "username").send_keys(HEAD_USER)
    browser.find_element(By.NAME, "password").send_keys(HEAD_PASSWORD)
    browser.find_element(By.ID, "submit").click()
    wait_for(lambda: browser.current_url.endswith("/head"), 10, "the dashboard after login")
    _wait_dom(browser, "#figures [data-key=issued]", lambda s: s == "3", 10, "today's figures")
    assert text_of(browser, "#figures-at").startswith("Số liệu lúc ")  # they lag the tables by up to 10 s

    # the same figures as `xephang report` prints, from the same code
    out = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "xephang_ops.cli", "report", "--ledger", str(centre.tmp / "hub" / "ledger.sqlite"),
                    "--site-file", str(centre.site_file), "--json", str(out), "-q"], check=True, timeout=60)
    from xephang_reports.render import COUNT_COLUMNS, TIME_COLUMNS, cell_text, shown_columns

    report = json.loads(out.read_text())
    totals = report["totals"]
    shown = shown_columns(report, (*COUNT_COLUMNS, *TIME_COLUMNS))
    for col in shown:
        if col.key in ("service_mean", "service_p50", "service_p90"):
            continue  # only one finished service, the same; the open one is cut at "now", which moves
        assert text_of(browser, f"#figures [data-key={col.key}]") == cell_text(totals, col, "vi"), col.key
    # nobody pressed "citizen arrived": its columns, "—" and "served" again, are not on the dashboard
    assert len(shown) == len(COUNT_COLUMNS) + len(TIME_COLUMNS) - 5
    assert [c.key for c in (*COUNT_COLUMNS, *TIME_COLUMNS) if c not in shown and
            browser.find_elements(By.CSS_SELECTOR, f"#figures [data-key={c.key}]")] == []

    browser.get(centre.base + "/head/reports?period=today&group_by=counter")
    link = wait_for(lambda: browser.find_elements(By.ID, "dl-xlsx"), 15, "the report page")[0].get_attribute("href")
    # every section `xephang report` prints, the counters' hours and the busiest hours too (the page
    # left them out while its notes defined them)
    from xephang_reports.render import load_table, table_sections

    subprocess.run([sys.executable, "-m", "xephang_ops.cli", "report", "--ledger", str(centre.tmp / "hub" / "ledger.sqlite"),
                    "--site-file", str(centre.site_file), "--group-by", "counter", "--json", str(out), "-q"],
                   check=True, timeout=60)
    rep = json.loads(out.read_text())
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "main h2, body h2")]
    assert [t for t, _ in table_sections(rep)] == headings[:3] and headings[3] == "Thời gian của các quầy (giờ)", headings
    heads, rows = load_table(rep)
    cells = browser.execute_script("return [...document.querySelectorAll('#counter-hours tr')]"
                                   ".map(r => [...r.children].map(c => c.textContent))")
    assert cells[0] == heads and [r[:3] for r in cells[1:]] == [r[:3] for r in rows]  # the hours move with "now"
    assert text_of(browser, "#busiest").startswith("Giờ đông nhất: ")
    cookie = browser.get_cookie("xephang_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    req = urllib.request.Request(link, headers={"Cookie": f"xephang_session={cookie['value']}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
        data = r.read()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "xl/workbook.xml" in names
    # without the session, the same link sends to the login page
    st, _, h = http_get(link)
    assert st == 303 and h["location"].startswith("/login")


def test_a_forged_or_altered_link_is_refused_and_yesterdays_ticket_has_expired(centre, browser):
    t = centre.issue()["ticket"]
    good = centre.ticket_url(t)
    token = good.rsplit("/", 1)[1]
    forged = [
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # one letter of the token
        good.replace(f"/{t['display']}/", "/1999/"),  # another number
        good.replace(f"/{t['id']}/", f"/{t['id'] + 1}/"),  # another ticket id
        centre.base + f"/q/{t['day']}/{t['display']}/{t['id']}/{'x' * len(token)}",
    ]
    for url in forged:
        browser.get(url)
        assert "không hợp lệ" in text_of(browser, ".banner"), url
        assert not text_of(browser, ".num")
        assert http_get(url)[0] == 404
        assert http_get(url + "/events")[0] == 403

    yesterday = (date.fromisoformat(t["day"]) - timedelta(days=1)).isoformat()
    old = centre.base + ticket_path(centre.secret, SITE, yesterday, 1, "1001")
    browser.get(old)
    assert "hết hạn" in text_of(browser, ".banner")


def test_no_login_is_redirected_and_ten_wrong_passwords_are_throttled(centre, browser):
    from selenium.webdriver.common.by import By

    for path in ("/head", "/head/reports", "/head/report.xlsx?period=today"):
        st, _, h = http_get(centre.base + path)
        assert st == 303 and h["location"].startswith("/login"), path
    assert http_get(centre.base + "/head/events")[0] == 401

    messages = []
    for i in range(10):
        browser.get(centre.base + "/login")
        browser.find_element(By.NAME, "username").send_keys(HEAD_USER)
        browser.find_element(By.NAME, "password").send_keys(f"sai-mat-khau-{i}")
        browser.find_element(By.ID, "submit").click()
        messages.append(_wait_dom(browser, "#error", bool, 10, "an answer"))
    assert "Sai" in messages[0]
    assert all("quá nhiều lần" in m for m in messages[5:]), messages
    # locked out: even the right password is refused now
    browser.get(centre.base + "/login")
    browser.find_element(By.NAME, "username").send_keys(HEAD_USER)
    browser.find_element(By.NAME, "password").send_keys(HEAD_PASSWORD)
    browser.find_element(By.ID, "submit").click()
    assert "quá nhiều lần" in _wait_dom(browser, "#error", bool, 10, "refused")
    assert "/head" not in browser.current_url.replace("next=%2Fhead", "")


def test_transfer_and_no_show_change_the_page_and_the_hall_follows(centre, browser):
    from xephang.contract import NoShow, Transfer

    t = centre.issue("ho-tich")["ticket"]
    browser.get(centre.ticket_url(t))
    _live(browser)
    centre.call(1)
    _wait_dom(browser, ".banner.call", lambda s: "quầy 1" in s.lower(), 2, "called")
    r = centre.ask(Transfer(request_id=new_request_id(), source="tech", counter=1, to_service="chung-thuc"))
    assert r.status == "ok"
    _wait_dom(browser, ".note", lambda s: "Tư pháp – Chứng thực" in s, 2, "transferred")
    assert text_of(browser, ".ahead") == "0" and not text_of(browser, ".banner.call")
    centre.call(2)  # counter 2 serves chứng thực
    _wait_dom(browser, ".banner.call", lambda s: "quầy 2" in s.lower(), 2, "called at the new service")
    assert centre.ask(NoShow(request_id=new_request_id(), source="tech", counter=2)).status == "ok"
    _wait_dom(browser, ".ticket", lambda s: "Số người chờ trước bạn" in s, 2, "back in the queue once")
    centre.call(2)
    _wait_dom(browser, ".banner.call", lambda s: "quầy 2" in s.lower(), 2, "called again")
    assert browser.find_element("id", "sound").is_displayed()  # a call may still come
    assert centre.ask(NoShow(request_id=new_request_id(), source="tech", counter=2)).status == "ok"
    _wait_dom(browser, ".banner.warn", lambda s: "vắng mặt" in s, 2, "no-show")
    # no call will come: no "sound an alert when called" (it stayed, a newcomer's walk), live or reloaded
    wait_for(lambda: not browser.find_element("id", "sound").is_displayed(), 5, "the sound button hidden")
    browser.get(centre.ticket_url(t))
    assert not browser.find_element("id", "sound").is_displayed()

    # the hall page on a phone follows the calls live
    browser.get(centre.base + "/hall")
    _live(browser)
    t2 = centre.issue("dat-dai")["ticket"]
    centre.call(3)
    _wait_dom(browser, "ul.calls", lambda s: t2["display"] in s, 2, "the call on the hall page")
