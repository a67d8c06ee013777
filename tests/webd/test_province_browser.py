"""webd at the province, in a real headless Chromium, over the real province PostgreSQL.

Two centres' traffic (the hub's own engine) and their devices are stored by the ingester's store;
webd runs with ``[web] province_dsn``. The province's technician logs in and sees one centre
reachable with its dispenser online and out of paper, the other *unreachable since …* with its
device shown so, not as online; when that centre's link returns, the page shows it reachable with
the cut counted. The head reads this quarter's report by centre, from the rollups, and its every
figure reads as the full computation's. In English on the switch. An officer's account and a
visitor without a login see nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from webharness import http_get, login, text_of, wait_for

from tests.province.conftest import pg_dsn, pg_server  # noqa: F401  (the province tests' PostgreSQL)
from webd.auth import Accounts
from webd.config import WebConfig, WebSettings
from xephang.contract import Alert, NodeStatus, Topics
from xephang_ops.mosquitto import free_port

pytestmark = [pytest.mark.slow]

TECH, TECH_PW = "ky-thuat-tinh", "mat-khau-ky-thuat-2026"
OFFICER, OFFICER_PW = "lan", "can-bo-mat-khau-2026"
A, B = Topics("tuong-linh"), Topics("xuan-quang")
FIRST = date(2026, 11, 2)  # a Monday of 2026-Q4


@pytest.fixture
def province_web(pg_dsn, tmp_path: Path, site) -> Iterator[tuple[str, str, float]]:  # noqa: F811
    """webd at the province on a free port over a database holding two centres; (base URL, DSN, now)."""
    import uvicorn

    from province.db import connect, migrate, upsert_site
    from province.ingest import Store
    from province.synth import CentreSim, site_with_slug
    from webd.province import ProvinceWebApp

    with connect(pg_dsn) as conn:
        migrate(conn)
        store = Store(conn)
        for i, slug in enumerate(("tuong-linh", "xuan-quang")):
            s = site_with_slug(site, slug)
            upsert_site(conn, s)
            sim = CentreSim(s, tmp_path / f"{slug}.db", seed=i + 5)
            store.write(sim.days(FIRST, 3, tickets=40 + 10 * i))
            sim.close()
        store.write([(A.bridge_state(), b"1"), (B.bridge_state(), b"1"),
                     (A.status("dispenser-1"), NodeStatus(node="dispenser-1", online=True, session=1,
                                                          role="dispenser").to_json()),
                     (A.alert("dispenser-1", "paper-out"), Alert(node="dispenser-1", id="paper-out", severity="critical",
                                                                 message_vi="Hết giấy in\u202e",  # an override
                                                                 message_en="Out of paper").to_json()),
                     (B.status("counter-1"), NodeStatus(node="counter-1", online=True, session=1,
                                                        role="counter").to_json())])
        store.write([(B.bridge_state(), b"0")])  # xuan-quang's link is cut (its bridge's Will)
    accounts = tmp_path / "accounts.json"
    Accounts(accounts).set(TECH, "technician", TECH_PW)
    Accounts(accounts).set(OFFICER, "officer", OFFICER_PW)
    port = free_port()
    settings = WebSettings(site="tinh", node="web", state_dir=tmp_path,
                           web=WebConfig(listen="127.0.0.1", port=port, accounts_file=accounts, province_dsn=pg_dsn))
    app = ProvinceWebApp(settings, dsn=pg_dsn)
    server = uvicorn.Server(uvicorn.Config(app.asgi, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(base + "/healthz")[0] == 200, 15, "the province pages up")
        yield base, pg_dsn, time.time()
    finally:
        server.should_exit = True
        th.join(10)


def _row(drv, css: str) -> str:
    return text_of(drv, css)


def test_the_technician_sees_an_unreachable_centre_then_it_back_and_the_head_reads_the_quarter(province_web, browser):
    from selenium.webdriver.common.by import By

    from province.db import connect
    from province.ingest import Store
    from province.reports import build_province_report
    from xephang_reports.render import COUNT_COLUMNS, TIME_COLUMNS, cell_text, shown_columns

    base, dsn, _ = province_web
    # no login: nothing but the login form
    st, _, h = http_get(base + "/province")
    assert st == 303 and h["location"].startswith("/login")
    # an officer's account is refused
    cookie, _ = login(base, OFFICER, OFFICER_PW)
    st, body, _ = http_get(base + "/province", headers={"Cookie": cookie})
    assert st == 403 and "tuong-linh" not in body.decode()

    browser.get(base + "/province")
    browser.find_element(By.NAME, "username").send_keys(TECH)
    browser.find_element(By.NAME, "password").send_keys(TECH_PW)
    browser.find_element(By.ID, "submit").click()
    wait_for(lambda: browser.current_url.endswith("/province"), 10, "the province page after the login")

    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
    reach = _row(browser, 'tr[data-site="tuong-linh"][data-link] td.link')
    assert reach == "liên lạc được"
    cut = _row(browser, 'tr[data-site="xuan-quang"][data-link] td.link')
    assert cut.startswith("không liên lạc được từ ")
    disp = _row(browser, 'tr[data-node="dispenser-1"]')
    assert "trực tuyến" in disp and "paper-out: Hết giấy in?" in disp and "\u202e" not in disp  # shown as '?'
    counter = browser.find_element(By.CSS_SELECTOR, 'tr[data-site="xuan-quang"][data-node="counter-1"]')
    assert counter.get_attribute("data-state") == "unreachable"
    assert "không liên lạc được" in counter.text and "trực tuyến" not in counter.text
    assert _row(browser, 'tr[data-site="tuong-linh"][data-link] td.alerts') == "1"
    assert _row(browser, 'tr[data-site="xuan-quang"][data-link] td.cuts').startswith("1 lần")

    with connect(dsn) as conn:
        Store(conn).write([(B.bridge_state(), b"1")])  # the link returns
    browser.refresh()
    assert _row(browser, 'tr[data-site="xuan-quang"][data-link] td.link') == "liên lạc được"
    counter = browser.find_element(By.CSS_SELECTOR, 'tr[data-site="xuan-quang"][data-node="counter-1"]')
    assert counter.get_attribute("data-state") == "online" and "trực tuyến" in counter.text
    assert _row(browser, 'tr[data-site="xuan-quang"][data-link] td.cuts').startswith("1 lần")  # the cut stays counted

    # this quarter's report by centre, from the rollups, reads as the full computation
    browser.find_element(By.LINK_TEXT, "Báo cáo toàn tỉnh").click()
    wait_for(lambda: "/province/report" in browser.current_url, 10, "the report page")
    method = browser.find_element(By.ID, "method")
    assert method.get_attribute("data-method") == "rollups"
    with connect(dsn) as conn:
        full = build_province_report(conn, period="this-quarter", group_by="site", lang="vi", now=time.time(),
                                     method="full")
    assert [r["keys"]["site"] for r in full["rows"]] == ["tuong-linh", "xuan-quang"] and full["totals"]["issued"] > 0
    for table, cols in (("report-counts", shown_columns(full, COUNT_COLUMNS)),
                        ("report-times", shown_columns(full, TIME_COLUMNS))):
        for row in (*full["rows"], full["totals"]):
            sel = f'#{table} tr.total' if row is full["totals"] else f'#{table} tr[data-key="{row["label"]}"]'
            tr_el = browser.find_element(By.CSS_SELECTOR, sel)
            got = [td.text for td in tr_el.find_elements(By.CSS_SELECTOR, "td[data-key]")]
            assert got == [cell_text(row, c, "vi") for c in cols], (table, row["label"])

    # English on the switch
    browser.get(base + "/lang/en?next=/province")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert _row(browser, 'tr[data-site="xuan-quang"][data-link] td.link') == "reachable"
    assert "online" in _row(browser, 'tr[data-node="dispenser-1"]')
    with connect(dsn) as conn:
        Store(conn).write([(A.bridge_state(), b"0")])
    browser.refresh()
    assert _row(browser, 'tr[data-site="tuong-linh"][data-link] td.link').startswith("unreachable since ")
    assert "unreachable" in _row(browser, 'tr[data-node="dispenser-1"]')


def test_webd_runs_at_the_province_when_its_settings_name_the_database(tmp_path, monkeypatch, capsys):
    from webd.main import main

    conf = tmp_path / "webd.toml"
    conf.write_text(f'state_dir = "{tmp_path}"\n[web]\nport = 8080\n')
    monkeypatch.setenv("XEPHANG_WEB__PROVINCE_DSN", "postgresql://xephang@db.tinh/xephang")
    assert main(["--config", str(conf), "--check"]) == 0
    assert "province" in capsys.readouterr().out  # no site file, no broker needed


def test_a_lost_database_or_a_bad_period_is_said_not_raised(province_web, tmp_path):
    import uvicorn

    from webd.province import ProvinceWebApp

    base, dsn, _ = province_web
    cookie, _ = login(base, TECH, TECH_PW)
    st, body, _ = http_get(base + "/province?period=2026-13", headers={"Cookie": cookie})
    assert st == 400 and "banner warn" in body.decode() and "Không đọc được kỳ báo cáo “2026-13”" in body.decode()
    st, body, _ = http_get(base + "/province/report?period=Q5", headers={"Cookie": cookie})
    assert st == 400 and "Không đọc được kỳ báo cáo “Q5”" in body.decode() and "use today" not in body.decode()
    st, body, _ = http_get(base + "/province/report?period=2026-Q4&group_by=month", headers={"Cookie": cookie})
    assert st == 200 and 'data-method="rollups"' in body.decode()
    st, body, _ = http_get(base + "/province/report?period=2026-11-03..2026-11-04", headers={"Cookie": cookie})
    assert st == 200 and 'data-method="full"' in body.decode()  # not whole months: every ticket

    # the same pages over a database that is not there: 503 and a banner, the server stays up
    port = free_port()
    accounts = tmp_path / "accounts.json"
    gone = dsn.rsplit("/", 1)[0] + "/xephang_no_such_db"
    settings = WebSettings(site="tinh", node="web", state_dir=tmp_path,
                           web=WebConfig(listen="127.0.0.1", port=port, accounts_file=accounts, province_dsn=gone))
    server = uvicorn.Server(uvicorn.Config(ProvinceWebApp(settings, dsn=gone).asgi, host="127.0.0.1", port=port,
                                           log_level="critical", lifespan="on"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    other = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(other + "/healthz")[0] == 503, 15, "the health check saying the database is gone")
        cookie, _ = login(other, TECH, TECH_PW)
        st, body, _ = http_get(other + "/province", headers={"Cookie": cookie})
        assert st == 503 and 'id="db-error"' in body.decode()
        st, body, _ = http_get(other + "/province/report", headers={"Cookie": cookie})
        assert st == 503 and 'id="db-error"' in body.decode()
    finally:
        server.should_exit = True
        th.join(10)
