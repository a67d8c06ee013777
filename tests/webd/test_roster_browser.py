"""The head changes today's roster in a real headless Chromium: counter 3's officer is ill, Hoa
covers. The page applies it through the hub (real hub, webd, mosquitto), the next call at counter
3 carries Hoa's name, and Hoa's console at the counter PC opens counter 3 while Tuấn's is refused."""

from __future__ import annotations

import pytest
from webharness import HEAD_PASSWORD, HEAD_USER, OFFICER_PASSWORD, text_of, wait_for

from xephang.contract import CallNext, new_request_id

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _login(browser, base: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(base + "/login")
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.ID, "submit").click()
    # the login is a POST that answers with a redirect and the cookie: wait for it, or the next
    # get() races it and opens the page as nobody (scrypt on a busy CI machine takes a while)
    wait_for(lambda: "/login" not in browser.current_url, 15, f"{user} logged in")


def test_the_head_seats_hoa_at_counter_3_from_the_browser(centre, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    waiting = [centre.issue("dat-dai")["ticket"] for _ in range(2)]
    _login(browser, centre.base, HEAD_USER, HEAD_PASSWORD)
    wait_for(lambda: "/head" in browser.current_url, 10, "the head's pages")
    browser.get(centre.base + "/head/roster")
    wait_for(lambda: browser.find_elements(By.NAME, "officer-3") or browser.refresh(), 15, "the hub's site")
    officer = Select(browser.find_element(By.NAME, "officer-3"))
    assert officer.first_selected_option.text == "Lê Minh Tuấn"
    officer.select_by_visible_text("Phạm Thị Hoa")
    browser.find_element(By.ID, "roster-save").click()
    wait_for(lambda: text_of(browser, "#roster-msg").startswith("Đã áp dụng (phiên bản"), 10, "applied")
    assert Select(browser.find_element(By.NAME, "officer-3")).first_selected_option.text == "Phạm Thị Hoa"
    # the queue went on: the next call at counter 3 is the first land ticket, in Hoa's name
    r = centre.ask(CallNext(request_id=new_request_id(), source="tech", counter=3))
    assert r.status == "ok" and r.data["ticket"]["id"] == waiting[0]["id"]
    wait_for(lambda: (c := centre.web.web.snapshot.counter(3)) and c.officer == "Phạm Thị Hoa", 10, "Hoa's name")
    # at the counter PC: Hoa's console has counter 3, Tuấn's is refused
    _login(browser, centre.base, "hoa", OFFICER_PASSWORD)
    browser.get(centre.base + "/counter/3")
    wait_for(lambda: text_of(browser, "#current-number") == waiting[0]["display"], 10, "Hoa's console on counter 3")
    _login(browser, centre.base, "tuan", OFFICER_PASSWORD)
    browser.get(centre.base + "/counter/3")
    assert "Bạn không được thao tác cho quầy này." in browser.page_source


def test_every_head_page_fits_a_phone_in_both_languages(centre, browser):
    """At 412 px the English head pages scrolled sideways (the menu's 'Log out (truong-tt)' cut off,
    487 px) and the roster in both languages (its service lists, 556 and 570 px); wide tables now
    scroll inside their own box and the menu wraps."""
    from selenium.webdriver.common.by import By

    centre.issue("ho-tich")
    _login(browser, centre.base, HEAD_USER, HEAD_PASSWORD)
    wait_for(lambda: "/head" in browser.current_url, 10, "the head's pages")
    for lang in ("vi", "en"):
        for path, ready in (("/head", "#figures"), ("/head/reports?period=today&group_by=counter", "#counter-hours"),
                            ("/head/roster", "select[name=officer-3]")):
            browser.get(f"{centre.base}{path}{'&' if '?' in path else '?'}lang={lang}")
            wait_for(lambda ready=ready: browser.find_elements(By.CSS_SELECTOR, ready) or browser.refresh(), 15,
                     f"{path} ({lang})")
            width, window = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert width <= window, (path, lang, width, window)
            button = browser.find_element(By.CSS_SELECTOR, "nav button[type=submit]")
            assert button.text.startswith("Log out" if lang == "en" else "Đăng xuất"), button.text
            assert button.rect["x"] + button.rect["width"] <= window, (path, lang, button.rect)


def test_the_officers_console_fits_a_phone_in_both_languages(centre, browser):
    """At a real 412 px (the test browser ran at 500, headless Chromium's narrowest window) the English
    console was 487 px wide: its waiting list's "Call this number" column. An officer may open it on
    a phone when the counter PC is down."""
    from selenium.webdriver.common.by import By

    for service in ("ho-tich", "ho-tich", "dat-dai"):
        centre.issue(service)
    _login(browser, centre.base, "lan", OFFICER_PASSWORD)
    for lang in ("vi", "en"):
        browser.get(f"{centre.base}/counter/1?lang={lang}")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "table.waiting form.act") or browser.refresh(), 15,
                 f"the console's waiting list ({lang})")
        width, window = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert window == 412 and width <= window, (lang, width, window)
        for b in browser.find_elements(By.CSS_SELECTOR, "table.waiting button"):
            assert b.rect["x"] + b.rect["width"] <= window, (lang, b.text, b.rect)
