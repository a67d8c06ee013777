"""What a head's (or an officer's) typed period could do to the reports, found in review.

Before: the period's patterns used ``\\d``, which reads any script's digits ('２０２６-11',
'٢٠٢６'): the period was taken, and kept as typed in the report (``period.spec``) and in the name
of the file the head downloads from webd, whose header takes latin-1 only: a 500 instead of a
report. The hub, webd, the province and ``xephang report`` all read periods with ``parse_period``.
"""

from __future__ import annotations

from datetime import date

import pytest
from starlette.responses import Response

from xephang_reports import charts
from xephang_reports.build import BadPeriod, parse_period

TODAY = date(2026, 12, 7)


@pytest.mark.parametrize("spec", ["２０２６-11", "2026-١١", "٢٠٢٦", "2026-11-0３", "２０２６-Q4", "2026-10..２０２６-11"])
def test_a_period_in_other_digits_is_refused_like_any_bad_period(spec):
    with pytest.raises(BadPeriod):
        parse_period(spec, TODAY)


@pytest.mark.parametrize("spec", ["2026-11", " 2026-11-03 ", "2026-Q4", "2026", "2026-10..2026-11", "today",
                                  "this-quarter"])
def test_every_period_taken_can_name_the_downloaded_file(spec):
    """What webd builds the file name from (``period.spec``): a header of latin-1 text."""
    per = parse_period(spec, TODAY)
    name = "bao-cao-" + "".join(c if c.isalnum() or c == "-" else "-" for c in per.spec)[:40] + "-service.csv"
    Response(b"", headers={"content-disposition": f'attachment; filename="{name}"'})  # raises on non-latin-1


def test_the_wait_chart_draws_the_services_with_most_waits_however_many_there_are(monkeypatch):
    """A report naming thousands of services (a province's, fed by a centre's account) draws a bar
    for the busiest only: 20,000 bars took 128 s, for every chart of the report."""
    hist = [{"service": f"s{i}", "label": f"s{i}", "target_min": None, "counts": [1, 0, 0, 0, 0, 0, 0, 0]}
            for i in range(2000)]
    hist[1500]["counts"] = [50, 9, 0, 0, 0, 0, 0, 0]
    drawn: list[str] = []
    real = charts._fit
    monkeypatch.setattr(charts, "_fit", lambda d, text, *a, **kw: drawn.append(text) or real(d, text, *a, **kw))
    charts.chart_waits({"lang": "en", "wait_bins_min": [5, 10, 15, 20, 30, 45, 60], "wait_hist": hist})
    assert len(drawn) == 24 and "s1500" in drawn  # WAIT_CHART_MAX_SERVICES
