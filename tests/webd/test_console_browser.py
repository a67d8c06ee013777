"""The officer's console in a real headless Chromium, with the whole hall on a real mosquitto:
the hub, webd, the hall board (displayd, PNG frames), the speaker (announcerd, WAV files, a
synthetic voice pack) and the call box of the same counter (counterd, simulated keys).

An officer logs in at counter 1's PC and clicks: the board shows the number, the speaker says
it, the box shows the same ticket; "citizen arrived" and Finish appear on the console's
timeline; a number is called out of order with a reason typed in; counter 3's officer gets a
refusal for counter 2's page.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from webharness import OFFICER_PASSWORD, SITE, text_of, wait_for

from announcerd.main import Announcer, AnnouncerConfig, AnnouncerSettings
from displayd.main import DisplayDaemon, DisplaySettings, ScreenSettings
from tests.announcerd.conftest import tone_synth
from tests.counterd.test_counterd_broker import running_box
from xephang.settings import BrokerSettings
from xephang_voice.voice_build import build_default_pack

pytestmark = [pytest.mark.broker, pytest.mark.slow]


class Hall:
    """The board and the speaker, each pumped by the test while it waits (their owner loops)."""

    def __init__(self, tmp: Path, site_file: Path, port: int) -> None:
        broker = BrokerSettings(port=port)
        self.board = DisplayDaemon(DisplaySettings(site=SITE, node="display-hall", site_file=site_file,
                                                   state_dir=tmp / "display", sim=True, sim_out=tmp / "frames",
                                                   screen=ScreenSettings(size=(1280, 720)), broker=broker))
        pack = build_default_pack(tmp / "pack", synth=tone_synth)
        self.wav_dir = tmp / "sim" / "announcer-hall"
        self.speaker = Announcer(AnnouncerSettings(site=SITE, node="announcer-hall", state_dir=tmp / "announcer",
                                                   sim=True, sim_out=tmp / "sim", site_file=site_file, broker=broker,
                                                   announcer=AnnouncerConfig(voice_pack=pack)))
        self.board.start()
        self.speaker.start()

    def pump(self) -> None:
        self.board.step(timeout=0.01)
        self.speaker.step(timeout=0.01)

    def until(self, cond, timeout: float = 15.0, what: str = "the hall") -> None:
        def step() -> bool:
            self.pump()
            return bool(cond())
        wait_for(step, timeout, what)

    def wavs(self) -> list[str]:
        return sorted(p.name for p in self.wav_dir.glob("*.wav"))

    def close(self) -> None:
        for d in (self.board, self.speaker):
            d.teardown()
            d.bus.stop()


def _login(browser, base: str, user: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(base + "/login")
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(OFFICER_PASSWORD)
    browser.find_element(By.ID, "submit").click()


def _click(browser, css: str) -> None:
    from selenium.webdriver.common.by import By

    wait_for(lambda: (b := browser.find_elements(By.CSS_SELECTOR, css)) and b[0].is_enabled(), 10, f"{css} enabled")
    browser.find_element(By.CSS_SELECTOR, css).click()


def test_an_officer_calls_from_the_browser_and_the_board_speaker_and_box_agree(centre, browser, tmp_path):
    from selenium.webdriver.common.by import By

    hall = Hall(tmp_path, centre.site_file, centre.mosquitto.port)
    try:
        hall.until(lambda: hall.board.model.synced and hall.board.model.hub_online, what="the board synced")
        with running_box(centre.mosquitto.port, tmp_path / "box", centre.site_file, number=1) as box:
            wait_for(lambda: box.core is not None and box.core.hub_online, 10, "the box sees the hub")
            a = centre.issue("ho-tich")["ticket"]
            b = centre.issue("chung-thuc")["ticket"]
            _login(browser, centre.base, "lan")
            wait_for(lambda: browser.current_url.endswith("/counter/1"), 10, "the officer's PC opens counter 1")
            wait_for(lambda: text_of(browser, "#conn.ok"), 10, "the console is live")
            wait_for(lambda: f'data-ticket="{b["id"]}"' in browser.page_source, 10, "both numbers on the waiting list")
            t0 = time.monotonic()
            _click(browser, "#btn-call-next")
            wait_for(lambda: text_of(browser, "#act-msg") == f"Đã gọi số {a['display']}.", 10, "the answer")
            hall.until(lambda: hall.board.last_frame is not None
                       and hall.board.last_frame.text("call.number") == [a["display"]], what="the board shows it")
            shown = time.monotonic() - t0
            hall.until(lambda: any(f"-{a['display']}-quay-1" in w for w in hall.wavs()), what="the speaker says it")
            wait_for(lambda: box.core.serving is not None and box.core.serving.display == a["display"], 10,
                     "the box on counter 1 shows the same ticket")
            wait_for(lambda: text_of(browser, "#current-number") == a["display"], 10, "the console shows it")
            assert shown < 10
            # the citizen reaches the counter, is served; the timeline says so
            _click(browser, "#btn-arrived")
            wait_for(lambda: "Đến quầy" in text_of(browser, "#timeline"), 10, "arrival on the timeline")
            _click(browser, "#btn-finish")
            wait_for(lambda: text_of(browser, "#current-number") == "—", 10, "the counter free again")
            wait_for(lambda: box.core.serving is None, 10, "the box free again")
            # call the land ticket out of order, with a reason typed in
            row = f'tr[data-ticket="{b["id"]}"]'
            wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, row), 10, "B listed")
            # without a reason the browser stops the click, in the page's words (its own were in the
            # browser's language: "Please fill out this field.")
            before = text_of(browser, "#act-msg")
            browser.find_element(By.CSS_SELECTOR, f"{row} button").click()
            field = browser.find_element(By.CSS_SELECTOR, f"{row} input[name=reason]")
            assert field.get_property("validationMessage") == \
                "Hãy ghi lý do gọi số này trước thứ tự (ví dụ: Người cao tuổi)."
            assert text_of(browser, "#act-msg") == before  # nothing was sent
            browser.find_element(By.CSS_SELECTOR, f"{row} input[name=reason]").send_keys("Người cao tuổi")
            browser.find_element(By.CSS_SELECTOR, f"{row} button").click()
            wait_for(lambda: text_of(browser, "#act-msg") == f"Đã gọi số {b['display']}.", 10, "called out of order")
            wait_for(lambda: "Gọi ngoài thứ tự: Người cao tuổi" in text_of(browser, "#timeline"), 10, "the reason shown")
            wait_for(lambda: box.core.serving is not None and box.core.serving.display == b["display"], 10,
                     "the box agrees")
    finally:
        hall.close()


def test_counter_3s_officer_is_refused_counter_2s_page(centre, browser):
    _login(browser, centre.base, "tuan")
    wait_for(lambda: browser.current_url.endswith("/counter/3"), 10, "counter 3 for tuan")
    browser.get(centre.base + "/counter/2")
    assert "Bạn không được thao tác cho quầy này." in browser.page_source
    assert "btn-call-next" not in browser.page_source


def test_a_double_click_in_the_browser_calls_once(centre, browser):
    from selenium.webdriver.common.by import By

    got: list[str] = []
    centre.tech.subscribe(centre.tech.topics.event("ticket", "called"), lambda m: got.append(m.payload.decode()))
    first = centre.issue("ho-tich")["ticket"]
    centre.issue("ho-tich")
    _login(browser, centre.base, "lan")
    wait_for(lambda: text_of(browser, "#conn.ok"), 10, "the console is live")
    btn = browser.find_element(By.CSS_SELECTOR, "#btn-call-next")
    browser.execute_script("arguments[0].click(); arguments[0].click();", btn)  # two clicks, no pause between
    wait_for(lambda: text_of(browser, "#act-msg").startswith("Đã gọi số"), 10, "the answer")
    end = time.monotonic() + 2
    while time.monotonic() < end:
        centre.tech.process(timeout=0.05)
    assert len(got) == 1 and first["display"] in got[0]



def test_the_console_with_a_waiting_list_fits_a_phone_sized_window(centre, browser):
    """The waiting list's "call this number" field was 12em wide whatever the window: at a phone's
    width the page scrolled sideways (542 px in a 500 px window). It now shrinks with its cell."""
    centre.issue("ho-tich")
    _login(browser, centre.base, "lan")
    wait_for(lambda: text_of(browser, "#conn.ok"), 10, "the console is live")
    wait_for(lambda: browser.execute_script("return document.querySelectorAll('table.waiting tbody tr').length") > 0,
             10, "the waiting list")
    width, window = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= window, (width, window)
