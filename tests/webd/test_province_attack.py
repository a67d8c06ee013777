"""The province pages' filters against an attacker holding a technician's login: centre ids and
periods that try SQL, NUL bytes, sizes no browser sends. Each is a refusal in the page's words
(or simply no match), the database keeps every row, and the pages go on answering."""

from __future__ import annotations

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
