"""The province pages' filters against an attacker holding a technician's login: centre ids and
periods that try SQL, NUL bytes, sizes no browser sends. Each is a refusal in the page's words
(or simply no match), the database keeps every row, and the pages go on answering."""

from __future__ import annotations

import threading
import time
import urllib.parse

import pytest
from test_province_browser import TECH, TECH_PW, province_web  # noqa: F401  (webd at the province, two centres)
from webharness import http_get, login

from tests.province.conftest import pg_dsn, pg_server  # noqa: F401  (the province tests' PostgreSQL)

pytestmark = [pytest.mark.slow]


def _get(base: str, cookie: str, path: str, **query: str | list[str]) -> tuple[int, str]:
    st, body, _ = http_get(base + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else ""),
                           headers={"Cookie": cookie}, timeout=30)
    return st, body.decode()


def _counts(dsn: str) -> tuple[int, ...]:
    from province.db import connect

    with connect(dsn) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("sites", "devices", "tickets"))


SITES = ["tuong-linh' OR '1'='1", "tuong-linh'); DROP TABLE devices; --", "%", "tuong-linh\x00", "\\", "a" * 5000,
         "tuong-linh\u0000' OR 1=1 --", "Tường Linh"]


@pytest.mark.parametrize("sites", [[s] for s in SITES] + [["tuong-linh"] * 2000], ids=range(len(SITES) + 1))
def test_centre_filters_are_values_never_sql(province_web, sites):  # noqa: F811
    base, dsn, _ = province_web
    before = _counts(dsn)
    cookie, _ = login(base, TECH, TECH_PW)
    st, page = _get(base, cookie, "/province", site=sites)
    assert st in (200, 400), st
    if st == 200:
        assert "xuan-quang" not in page  # no filter turned into "every centre"
    else:
        assert "Mã trung tâm không hợp lệ" in page and "db-error" not in page
    assert _counts(dsn) == before
    assert _get(base, cookie, "/province")[0] == 200


PERIODS = ["2026-11'; DROP TABLE tickets; --", "0001-01-01..9999-12-31", "9999-12", "2026-11-01\x00", "x" * 5000,
           "2026-11-31", "last-month; SELECT 1", "2026-Q9", "٢٠٢٦-١١"]


@pytest.mark.parametrize("period", PERIODS, ids=range(len(PERIODS)))
def test_periods_are_read_by_the_report_code_never_sql(province_web, period):  # noqa: F811
    base, dsn, _ = province_web
    before = _counts(dsn)
    cookie, _ = login(base, TECH, TECH_PW)
    for path in ("/province", "/province/report"):
        t0 = time.monotonic()
        st, page = _get(base, cookie, path, period=period, group_by="site'; --")
        assert st in (200, 400), (path, st)
        assert time.monotonic() - t0 < 20
        if st == 400:
            assert 'id="report-error"' in page and "db-error" not in page
    assert _counts(dsn) == before


class HeldReports:
    """``build_province_report`` held at its start until the test lets it go: a report exactly as
    slow as the test wants, counted while it holds (the real one runs once let go)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import province.reports as reports

        self.real = reports.build_province_report
        self.go = threading.Event()
        self.held = 0
        self.cond = threading.Condition()
        monkeypatch.setattr(reports, "build_province_report", self.build)

    def build(self, *a, **kw):
        with self.cond:
            self.held += 1
            self.cond.notify_all()
        try:
            assert self.go.wait(60), "the test never let the report go"
            return self.real(*a, **kw)
        finally:
            with self.cond:
                self.held -= 1
                self.cond.notify_all()

    def wait_held(self, n: int, timeout: float = 10) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.held == n, timeout), f"{self.held} reports held, not {n}"


def test_slow_reports_run_one_per_account_and_two_at_once_the_rest_are_told_to_come_back(
        province_web, tmp_path, monkeypatch):  # noqa: F811
    """A report over odd dates is computed from every ticket: a year took about 80 s of the
    database. Nothing stopped one technician's login from starting ten of them at once (each a
    worker thread and a connection). Now each account has one report at a time (429) and the
    server two (``province_reports_at_once``; 503), each refusal a readable page with Retry-After;
    the reports running finish, and the other pages answer meanwhile."""
    from webd.auth import Accounts

    base, _, _ = province_web
    for user in ("truong-tinh", "ky-thuat-2"):
        Accounts(tmp_path / "accounts.json").set(user, "head" if user == "truong-tinh" else "technician", TECH_PW)
    held = HeldReports(monkeypatch)
    odd = {"period": "2026-11-03..2026-11-20", "group_by": "site"}  # not whole months: every ticket is read
    answers: dict[str, tuple[int, str]] = {}

    def ask_in_background(name: str, cookie: str) -> threading.Thread:
        th = threading.Thread(target=lambda: answers.__setitem__(name, _get(base, cookie, "/province/report", **odd)))
        th.start()
        return th

    tech, _ = login(base, TECH, TECH_PW)
    background = [ask_in_background("tech", tech)]
    try:
        held.wait_held(1)
        # the same account, even from another login: one report at a time
        tech2, _ = login(base, TECH, TECH_PW)
        for cookie, words in ((tech2, "Báo cáo trước của bạn vẫn đang được lập"),
                              (tech + "; lang=en", "Your previous report is still being made")):
            st, page, h = http_get(base + "/province/report?" + urllib.parse.urlencode(odd),
                                   headers={"Cookie": cookie}, timeout=10)
            assert (st, h.get("retry-after")) == (429, "30") and words in page.decode(), st
        # another account gets the second place; a third finds the server at its limit
        head, _ = login(base, "truong-tinh", TECH_PW)
        background.append(ask_in_background("head", head))
        held.wait_held(2)
        other, _ = login(base, "ky-thuat-2", TECH_PW)
        st, page, h = http_get(base + "/province/report", headers={"Cookie": other}, timeout=10)
        assert (st, h.get("retry-after")) == (503, "30") and "Máy chủ đang lập 2 báo cáo khác" in page.decode(), st
        assert 'id="report-busy"' in page.decode() and 'name="period"' in page.decode()  # the form stays
        # the rest of the pages answer meanwhile
        assert _get(base, other, "/province")[0] == 200 and http_get(base + "/healthz", timeout=10)[0] == 200
        assert held.held == 2
    finally:
        held.go.set()
        for th in background:
            th.join(60)
    for name in ("tech", "head"):
        st, page = answers[name]
        assert st == 200 and 'id="report-counts"' in page, (name, st)
    # both places are free again
    for cookie in (tech, other):
        st, page = _get(base, cookie, "/province/report", **odd)
        assert st == 200 and 'data-method="full"' in page, st


def test_a_report_holds_its_place_while_the_database_works_not_while_the_client_waits():
    """A client that leaves frees nothing while its report's thread still reads the database; a
    request given up before its thread even began gives the place back, and that thread then does
    nothing. Each place is given back once."""
    from webd.province import ReportGate

    gate = ReportGate(2)
    mine = gate.enter("ky-thuat")
    assert gate.enter("ky-thuat") == "yours" and gate.running == {"ky-thuat"}
    assert mine.start()  # the worker thread began …
    mine.abandon()  # … and the client left: the database still works, the place stays taken
    assert gate.enter("ky-thuat") == "yours"
    mine.finish()
    mine.finish()
    assert gate.running == set()
    late = gate.enter("ky-thuat")
    assert not isinstance(late, str) and gate.enter("truong") != "busy" and gate.enter("khac") == "busy"
    late.abandon()  # given up before its thread began
    assert not late.start() and "ky-thuat" not in gate.running  # the thread does nothing
    late.finish()
    assert gate.running == {"truong"}
