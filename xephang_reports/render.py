"""Report outputs for people: a terminal table, CSV, an XLSX workbook and one printable HTML file.

Everything here reads the report dict of ``xephang_reports.build`` (local, or as it came over MQTT)
and writes in the report's language: Vietnamese headings with full diacritics by default,
English when the report was built with ``lang="en"``. Times are shown in minutes.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEXT: dict[str, tuple[str, str]] = {
    "title": ("BÁO CÁO HÀNG ĐỢI", "QUEUE REPORT"),
    "by": ("theo", "by"),
    "generated": ("Lập lúc", "Generated"),
    "counts": ("Phiếu", "Tickets"),
    "calls_table": ("Lượt gọi", "Calls"),
    "times": ("Thời gian (phút)", "Times (minutes)"),
    "load": ("Thời gian của các quầy (giờ)", "Counters' hours"),
    "busiest": ("Giờ đông nhất", "Busiest hours"),
    "per_day": ("/ngày", "/day"),
    "notes": ("Ghi chú", "Notes"),
    "charts": ("Biểu đồ", "Charts"),
    "total": ("Tổng cộng", "Total"),
    "minutes_note": ("Thời gian tính bằng phút; chờ = từ lúc lấy số đến lần gọi đầu; phục vụ = từ lúc gọi đến lúc xong.",
                     "Times in minutes; wait = issue to first call; service = call to finish."),
    "dash_note": ("— : không áp dụng hoặc không có dữ liệu.", "— : not applicable or no data."),
    "by_counter_note": ("Theo quầy/cán bộ: thời gian chờ tính cho quầy gọi lần đầu; phiếu được cấp cho lĩnh vực, không cho "
                        "quầy, nên bảng phiếu chỉ cân đối ở dòng tổng; bảng lượt gọi cân đối ở từng dòng.",
                        "By counter/officer: a wait counts for the counter that called first; tickets are issued to "
                        "services, not counters, so the tickets table balances in the total only; the calls table "
                        "balances on every row."),
    "by_hour_note": ("Theo giờ: lấy số, hủy, hết hạn tính theo giờ lấy số; lượt gọi và kết quả theo giờ gọi; bảng phiếu "
                     "chỉ cân đối ở dòng tổng, bảng lượt gọi cân đối ở từng dòng.",
                     "By hour: issued, voided and expired count by the hour of issue, calls and their outcomes by the "
                     "hour of the call; the tickets table balances in the total only, the calls table on every row."),
    "flow_note": ("Bảng phiếu: Lấy số + Chuyển đến = Đã phục vụ + Vắng mặt sau cùng + Hủy + Hết hạn + Chuyển đi + Còn mở. "
                  "Chuyển đến/Chuyển đi: phiếu lĩnh vực khác chuyển tới / phiếu chuyển sang lĩnh vực khác (giữ nguyên số "
                  "và giờ đến), nên một lĩnh vực có thể phục vụ nhiều hơn số phiếu nó cấp. Còn mở: phiếu đang chờ hoặc "
                  "đang được phục vụ.",
                  "Tickets table: Issued + Transferred in = Served + Final no-shows + Voided + Expired + Transferred "
                  "out + Still open. Transferred in/out: tickets another service sent here / this service sent on "
                  "(number and arrival kept), so a service may serve more tickets than it issued. Still open: "
                  "waiting or being served."),
    "no_show_note": ("Vắng mặt sau cùng: phiếu mà lần gọi cuối cùng kết thúc vì công dân vắng mặt. Lượt báo vắng: mỗi "
                     "lần cán bộ bấm Vắng mặt, kể cả lần phiếu được đưa về cuối hàng rồi phục vụ sau — vì vậy lượt báo "
                     "vắng lớn hơn hoặc bằng số vắng mặt sau cùng.",
                     "Final no-shows: tickets whose last call ended with the citizen absent. No-show presses: every "
                     "press of No-show, including those that sent the ticket back to the queue to be served later — "
                     "so presses are at least the final no-shows."),
    "calls_note": ("Bảng lượt gọi: Lượt gọi = Đã phục vụ + Lượt báo vắng + Chuyển đi + Đang phục vụ (mỗi lần gọi kết "
                   "thúc theo một trong các cách đó).",
                   "Calls table: Calls = Served + No-show presses + Transferred out + Being served (every call "
                   "ends in one of these)."),
    "load_note": ("Thời gian của quầy: Giờ mở cửa + Ngoài giờ = Phục vụ + Chờ khách + Tạm dừng + Đóng. Giờ mở cửa: giờ "
                  "làm việc của trung tâm ({open}–{close}) trong các ngày có phiếu (hôm nay: đến giờ lập báo cáo); "
                  "Ngoài giờ: lúc quầy làm việc trước giờ mở hoặc sau giờ đóng cửa; Phục vụ: từ lúc gọi đến lúc "
                  "xong; Tạm dừng: các lần bấm Tạm dừng; Chờ khách: phần còn lại từ lần gọi hoặc tạm dừng đầu tiên "
                  "đến lần kết thúc cuối cùng; Đóng: phần còn lại, lúc quầy chưa mở hoặc đã nghỉ.",
                  "Counters' hours: Opening hours + Outside hours = Serving + Idle + Paused + Closed. Opening "
                  "hours: the centre's hours ({open}–{close}) on the days with tickets (today: until the report "
                  "was made); Outside hours: the counter working before opening or after closing time; Serving: "
                  "call to finish; Paused: Pause presses; Idle: the rest from its first call or pause to its last "
                  "end; Closed: the remainder, before the counter opened or after it stopped."),
    "inferred_note": ("* {n} lượt phục vụ kết thúc suy ra (cán bộ bấm Gọi số tiếp theo hoặc Tạm dừng mà không bấm "
                      "Hoàn thành): thời gian phục vụ tính đến lần bấm đó.",
                      "* {n} services ended by inference (Call next or Pause pressed without Finish): their service "
                      "time runs to that press."),
    "reset_note": ("‡ {n} lượt phục vụ còn mở khi qua ngày: tính là đã phục vụ, không tính vào thời gian phục vụ.",
                   "‡ {n} services were still open at the daily reset: counted as served, left out of service times."),
    "jump_note": ("† {n} thời gian chờ/phục vụ thuộc phiếu có đồng hồ bị nhảy (mất điện, chưa có giờ mạng): có thể sai.",
                  "† {n} waits/service times belong to tickets marked with a clock jump (power cut, no network time): "
                  "they may be wrong."),
    "open_note": ("Còn {n} phiếu đang chờ hoặc đang phục vụ: số liệu hôm nay chưa khép lại.",
                  "Tickets still waiting or being served: {n}. Today's figures are not final."),
    "times_note": ("Trung vị, P90: thời gian mà một nửa, 90 % số lượt không vượt quá (nội suy tuyến tính giữa các hạng; "
                   "TB: trung bình). Đạt mục tiêu chờ: tỷ lệ phiếu đã được gọi có thời gian chờ không quá mục tiêu chờ "
                   "của lĩnh vực.",
                   "Median, P90: the time half, 90 % of them do not exceed (linear interpolation between ranks; avg: the "
                   "mean). Within target: the share of called tickets whose wait is at most the service's target wait."),
    "arrival_note": ("Đi đến quầy: từ lúc gọi đến lúc cán bộ bấm Công dân đã đến; Phục vụ từ lúc đến: từ lúc đến đến lúc "
                     "xong. Không ghi nhận đến: lượt đã phục vụ không có lúc đến hợp lệ (có trong thời gian phục vụ, "
                     "không có trong phục vụ từ lúc đến).",
                     "Walk: from the call to the officer's 'citizen arrived'; Service from arrival: from the arrival "
                     "to the end. No arrival recorded: served visits with no usable arrival (in the service time, not "
                     "in service from arrival)."),
    "no_arrival_note": ("Trong kỳ này không lượt gọi nào ghi nhận lúc công dân đến quầy (nút Công dân đã đến của trang "
                        "quầy, hoặc phím arrived của hộp gọi số), nên các cột Đi đến quầy, Phục vụ từ lúc đến và Không "
                        "ghi nhận đến được ẩn; tệp CSV và XLSX vẫn có các cột này.",
                        "No call in this period recorded the citizen's arrival at the counter (the counter page's "
                        "'Citizen arrived' button, or the call box's arrived key), so the Walk, Service from arrival "
                        "and No arrival recorded columns are left out; the CSV and XLSX files still have them."),
    "out_of_order_note": ("Gọi ngoài thứ tự: lượt cán bộ gọi một số chọn trong danh sách chờ, có lý do, thay cho thứ tự gọi.",
                          "Called out of order: a number the officer chose from the waiting list, with a reason, "
                          "instead of the call order."),
    "rating_note": ("Đánh giá: số lượt công dân bấm phím đánh giá sau khi được phục vụ; Hài lòng: tỷ lệ đánh giá {good}.",
                    "Ratings: the citizens' presses of a rating key after being served; Satisfied: the share rated "
                    "{good}."),
    "good_5": ("4 hoặc 5 trên thang 5", "4 or 5 of 5"),
    "good_3": ("3 trên thang 3", "3 of 3"),
    "compact_note": ("Báo cáo rút gọn để gửi qua mạng: không có số lượt theo từng mức đánh giá ở từng dòng.",
                     "Report shortened for the network: per-row rating counts left out."),
    "busy": ("Phục vụ", "Serving"),
    "hours_open": ("Giờ mở cửa", "Opening hours"),
    "outside": ("Ngoài giờ", "Outside hours"),
    "closed": ("Đóng", "Closed"),
    "paused": ("Tạm dừng", "Paused"),
    "idle": ("Chờ khách", "Idle"),
    "pauses": ("Lần tạm dừng", "Pauses"),
    "calls": ("Lượt gọi", "Calls"),
    "officer": ("Cán bộ", "Officer"),
    "counter": ("Quầy", "Counter"),
    "hour": ("Giờ", "Hour"),
    "issued_per_day": ("Lấy số TB/ngày", "Issued per day"),
    "score": ("Đánh giá {s}", "Rated {s}"),
    "sheet_report": ("Báo cáo", "Report"),
    "sheet_hours": ("Theo giờ", "By hour"),
    "sheet_counters": ("Quầy", "Counters"),
    "sheet_charts": ("Biểu đồ", "Charts"),
    "period": ("Kỳ báo cáo", "Period"),
    "flag_inferred": ("Kết thúc suy ra", "Inferred finishes"),
    "flag_reset": ("Đóng khi qua ngày", "Closed by daily reset"),
    "flag_wait_jump": ("Chờ: đồng hồ nhảy", "Waits with clock jump"),
    "flag_service_jump": ("Phục vụ: đồng hồ nhảy", "Services with clock jump"),
    "site": ("Đơn vị", "Centre"),
}

GROUP_HEADINGS = {"service": ("Lĩnh vực", "Service"), "counter": ("Quầy", "Counter"),
                  "officer": ("Cán bộ", "Officer"), "day": ("Ngày", "Day"), "hour": ("Giờ", "Hour")}


def tr(key: str, lang: str, **kw: Any) -> str:
    """The text ``key`` in ``lang`` (vi default)."""
    vi, en = TEXT[key]
    return (en if lang == "en" else vi).format(**kw)


def fmt_num(x: float | int | None, lang: str, digits: int = 1) -> str:
    """1.234,5 (vi) / 1,234.5 (en); '—' for no value."""
    if x is None:
        return "—"
    s = f"{x:,.{digits}f}"
    return s.replace(",", " ").replace(".", ",").replace(" ", ".") if lang == "vi" else s


def fmt_share(x: float | None, lang: str) -> str:
    return "—" if x is None else fmt_num(100 * x, lang) + "%"


def _minutes(stat: dict[str, Any], key: str) -> float | None:
    v = stat.get(key)
    return None if v is None else v / 60


@dataclass(frozen=True)
class Column:
    """One figure of a row: its headings, how to read it (value for files) and its table text."""

    key: str
    vi: str
    en: str
    value: Callable[[dict[str, Any]], Any]
    kind: str = "int"  # int | min | share
    mark: str = ""  # '' | 'wait' | 'service' | 'arrival': which flags put a marker on it

    def heading(self, lang: str) -> str:
        return self.en if lang == "en" else self.vi


# the tickets table balances: issued + transferred in = served + no-shows + voided + expired + out + open
FLOW_COLUMNS = (
    Column("issued", "Lấy số", "Issued", lambda r: r.get("issued")),
    Column("transferred_in", "Chuyển đến", "Transferred in", lambda r: r.get("transferred_in")),
    Column("served", "Đã phục vụ", "Served", lambda r: r.get("served")),
    Column("no_shows", "Vắng mặt sau cùng", "Final no-shows", lambda r: r.get("no_shows")),
    Column("voided", "Hủy", "Voided", lambda r: r.get("voided")),
    Column("expired", "Hết hạn", "Expired", lambda r: r.get("expired")),
    Column("transferred", "Chuyển đi", "Transferred out", lambda r: r.get("transferred")),
    Column("open", "Còn mở", "Still open", lambda r: r.get("open")),
)
# the calls table balances: calls = served + no-show presses + transferred out + being served
CALL_COLUMNS = (
    Column("calls", "Lượt gọi", "Calls", lambda r: r.get("calls")),
    Column("served", "Đã phục vụ", "Served", lambda r: r.get("served")),
    Column("no_show_calls", "Lượt báo vắng", "No-show presses", lambda r: r.get("no_show_calls")),
    Column("transferred", "Chuyển đi", "Transferred out", lambda r: r.get("transferred")),
    Column("serving", "Đang phục vụ", "Being served", lambda r: r.get("serving")),
    Column("out_of_order_calls", "Gọi ngoài thứ tự", "Called out of order", lambda r: r.get("out_of_order_calls")),
    Column("no_arrival", "Không ghi nhận đến", "No arrival recorded", lambda r: r.get("no_arrival")),
    Column("rated", "Đánh giá", "Ratings", lambda r: r.get("rated")),
    Column("satisfaction", "Hài lòng", "Satisfied", lambda r: r.get("satisfaction"), "share"),
)
COUNT_COLUMNS = FLOW_COLUMNS + tuple(c for c in CALL_COLUMNS if c.key not in {f.key for f in FLOW_COLUMNS})
TIME_COLUMNS = (
    Column("wait_mean", "Chờ TB", "Wait avg", lambda r: _minutes(r["wait"], "mean"), "min", "wait"),
    Column("wait_p50", "Chờ trung vị", "Wait median", lambda r: _minutes(r["wait"], "p50"), "min", "wait"),
    Column("wait_p90", "Chờ P90", "Wait P90", lambda r: _minutes(r["wait"], "p90"), "min", "wait"),
    Column("within_target", "Đạt mục tiêu chờ", "Within target", lambda r: r["within_target"]["share"], "share"),
    Column("service_mean", "Phục vụ TB", "Service avg", lambda r: _minutes(r["service_time"], "mean"), "min", "service"),
    Column("service_p50", "Phục vụ trung vị", "Service median", lambda r: _minutes(r["service_time"], "p50"), "min",
           "service"),
    Column("service_p90", "Phục vụ P90", "Service P90", lambda r: _minutes(r["service_time"], "p90"), "min", "service"),
    # "citizen arrived" (the console's button or the box's key): call → arrival, and arrival → end
    Column("walk_mean", "Đi đến quầy TB", "Walk avg", lambda r: _minutes(r.get("walk") or {}, "mean"), "min"),
    Column("walk_p90", "Đi đến quầy P90", "Walk P90", lambda r: _minutes(r.get("walk") or {}, "p90"), "min"),
    Column("arrived_service_mean", "Phục vụ từ lúc đến TB", "Service from arrival avg",
           lambda r: _minutes(r.get("service_from_arrival") or {}, "mean"), "min", "arrival"),
    Column("arrived_service_p50", "Phục vụ từ lúc đến trung vị", "Service from arrival median",
           lambda r: _minutes(r.get("service_from_arrival") or {}, "p50"), "min", "arrival"),
)
ALL_COLUMNS = COUNT_COLUMNS + TIME_COLUMNS
# the figures of the "citizen arrived" press: a centre whose boxes and pages never send it has none
ARRIVAL_KEYS = frozenset({"no_arrival", "walk_mean", "walk_p90", "arrived_service_mean", "arrived_service_p50"})


def records_arrivals(report: dict[str, Any]) -> bool:
    """Did any call of the period record the citizen's arrival? The arrival key is optional (not in
    the call box's default map): without a single press its columns are all "—" and "No arrival
    recorded" equals "Served", so the tables a person reads leave them out (the files keep them)."""
    t = report.get("totals") or {}
    return bool((t.get("walk") or {}).get("n") or (t.get("service_from_arrival") or {}).get("n"))


def shown_columns(report: dict[str, Any], cols: tuple[Column, ...]) -> tuple[Column, ...]:
    """``cols`` as a table a person reads shows them: without the arrival columns when nothing was recorded."""
    return cols if records_arrivals(report) else tuple(c for c in cols if c.key not in ARRIVAL_KEYS)


def _marks(row: dict[str, Any], col: Column) -> str:
    f = row.get("flags") or {}
    m = ""
    if col.mark == "service":
        m += "*" if f.get("inferred", 0) - f.get("closed_by_reset", 0) > 0 else ""
        m += "‡" if f.get("closed_by_reset") else ""
        m += "†" if f.get("service_clock_jump") else ""
    elif col.mark == "arrival":  # timed from the arrival: only the inferred finishes of such visits (a
        # total was starred for two inferred finishes in a service whose visits recorded no arrival);
        # a clock jump marks it as it marks the service times (the ledger does not say which visits)
        m += "*" if f.get("inferred_arrived", f.get("inferred", 0)) > 0 else ""
        m += "†" if f.get("service_clock_jump") else ""
    elif col.mark == "wait":
        m += "†" if f.get("wait_clock_jump") else ""
    return m


def cell_text(row: dict[str, Any], col: Column, lang: str) -> str:
    """The figure as shown in the table and the HTML report, with its flag markers."""
    v = col.value(row)
    if col.kind == "int":
        s = "—" if v is None else fmt_num(v, lang, 0)
    elif col.kind == "share":
        s = fmt_share(v, lang)
    else:
        s = fmt_num(v, lang)
    return s + (_marks(row, col) if v is not None else "")


def group_heading(report: dict[str, Any]) -> str:
    """The grouping column's heading: the report's own ``group_heading`` [vi, en] (a province
    report's site/service groupings), else the centre's groupings."""
    vi, en = report.get("group_heading") or GROUP_HEADINGS[report["group_by"]]
    return en if report.get("lang") == "en" else vi


def title_lines(report: dict[str, Any]) -> list[str]:
    """Centre name, report title with period and grouping, generation time."""
    lang = report.get("lang", "vi")
    p = report["period"]
    return [report["site"]["name"],
            f"{tr('title', lang)} — {p['label']} ({_dmy(p['from'])} – {_dmy(p['to'])}), "
            f"{tr('by', lang)} {group_heading(report).lower()}",
            f"{tr('generated', lang)} {report['generated_local']}"]


def _dmy(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def notes(report: dict[str, Any], *, every_column: bool = False) -> list[str]:
    """The footnotes this report needs (flags, open tickets, grouping caveats). ``every_column``: for
    a file that has every column (XLSX), where no column is left out."""
    lang = report.get("lang", "vi")
    t = report["totals"]
    f = t.get("flags") or {}
    good = tr("good_3" if report.get("rating_scale") == 3 else "good_5", lang)
    out = [tr("minutes_note", lang), tr("times_note", lang), tr("flow_note", lang), tr("no_show_note", lang),
           tr("calls_note", lang)]
    if every_column or records_arrivals(report):
        out.append(tr("arrival_note", lang))
    elif t.get("no_arrival") is not None:  # the figure exists (a province's and an old ledger's have none)
        out.append(tr("no_arrival_note", lang))
    out += [tr("out_of_order_note", lang), tr("rating_note", lang, good=good)]
    if report["group_by"] in ("counter", "officer"):
        out.append(tr("by_counter_note", lang))
    elif report["group_by"] == "hour":
        out.append(tr("by_hour_note", lang))
    hours = report.get("opening_hours") or ["07:30", "17:00"]
    if any("hours_s" in c for c in report.get("counter_load") or []):
        out.append(tr("load_note", lang, open=hours[0], close=hours[1]))
    inferred = f.get("inferred", 0) - f.get("closed_by_reset", 0)
    if inferred > 0:
        out.append(tr("inferred_note", lang, n=fmt_num(inferred, lang, 0)))
    if f.get("closed_by_reset"):
        out.append(tr("reset_note", lang, n=fmt_num(f["closed_by_reset"], lang, 0)))
    jumps = f.get("wait_clock_jump", 0) + f.get("service_clock_jump", 0)
    if jumps:
        out.append(tr("jump_note", lang, n=fmt_num(jumps, lang, 0)))
    if t.get("open"):
        out.append(tr("open_note", lang, n=fmt_num(t["open"], lang, 0)))
    if report.get("compact"):
        out.append(tr("compact_note", lang))
    out.append(tr("dash_note", lang))
    return out


def busiest_text(report: dict[str, Any]) -> str:
    lang = report.get("lang", "vi")
    parts = [f"{b['hour']:02d}:00–{(b['hour'] + 1) % 24:02d}:00 ({fmt_num(b['issued'], lang, 0)}; "
             f"{fmt_num(b['per_day'], lang)}{tr('per_day', lang)})" for b in report.get("busiest_hours") or []]
    return f"{tr('busiest', lang)}: " + ("; ".join(parts) if parts else "—")


def _hours(s: float, lang: str) -> str:
    return fmt_num(s / 3600, lang)


# ---------------------------------------------------------------------------------------------- terminal


def _table(headings: list[str], rows: list[list[str]], total: list[str] | None, label_w: int,
           left: int = 1) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows + ([total] if total else []))) for i, h in enumerate(headings)]
    widths[0] = min(widths[0], label_w)

    def line(cells: list[str]) -> str:
        first = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 1] + "…"
        rest = [c.ljust(w) if i < left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells[1:], widths[1:], strict=True), start=1)]
        return "  ".join([first.ljust(widths[0]), *rest]).rstrip()

    out = [line(headings), "─" * (sum(widths) + 2 * (len(widths) - 1))]
    out += [line(r) for r in rows]
    if total:
        out += ["─" * (sum(widths) + 2 * (len(widths) - 1)), line(total)]
    return out


def table_sections(report: dict[str, Any]) -> list[tuple[str, tuple[Column, ...]]]:
    """The report's tables: tickets (balances), calls (balances), times (each as a person reads it:
    ``shown_columns``)."""
    lang = report.get("lang", "vi")
    return [(tr("counts", lang), FLOW_COLUMNS), (tr("calls_table", lang), shown_columns(report, CALL_COLUMNS)),
            (tr("times", lang), shown_columns(report, TIME_COLUMNS))]


def load_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The counters' hours: headings and rows (opening + outside = serving + idle + paused + closed)."""
    lang = report.get("lang", "vi")
    load = report.get("counter_load") or []
    full = all("hours_s" in c for c in load)
    heads = [tr("counter", lang), tr("officer", lang), tr("calls", lang)]
    heads += [tr("hours_open", lang), tr("outside", lang)] if full else []
    heads += [tr("busy", lang), tr("idle", lang), tr("paused", lang)]
    heads += [tr("closed", lang)] if full else []
    heads.append(tr("pauses", lang))
    rows = []
    for c in load:
        r = [c["label"], c.get("officer") or "—", fmt_num(c["visits"], lang, 0)]
        r += [_hours(c["hours_s"], lang), _hours(c["outside_s"], lang)] if full else []
        r += [_hours(c["busy_s"], lang), _hours(c["idle_s"], lang), _hours(c["paused_s"], lang)]
        r += [_hours(c["closed_s"], lang)] if full else []
        r.append(fmt_num(c["pauses"], lang, 0))
        rows.append(r)
    return heads, rows


def render_table(report: dict[str, Any], *, label_width: int | None = None) -> str:
    """The report as plain text for a terminal: tickets, calls, times, counters' hours, busiest
    hours, notes. Row labels are shown whole (up to 48 characters; longer ones end in "…")."""
    lang = report.get("lang", "vi")
    rows, tot = report["rows"], report["totals"]
    gh = group_heading(report)
    if label_width is None:
        label_width = min(48, max([len(gh), len(tot["label"]), *(len(str(r["label"])) for r in rows)]))
    out = title_lines(report)
    for title, cols in table_sections(report):
        out += ["", title]
        out += _table([gh] + [c.heading(lang) for c in cols],
                      [[r["label"]] + [cell_text(r, c, lang) for c in cols] for r in rows],
                      [tot["label"]] + [cell_text(tot, c, lang) for c in cols], label_width)
    if report.get("counter_load"):
        heads, body = load_table(report)
        out += ["", tr("load", lang)]
        out += _table(heads, body, None, label_width, left=2)
    out += ["", busiest_text(report), "", tr("notes", lang) + ":"]
    out += [f"  {n}" for n in notes(report)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------- CSV


def csv_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Header + one line per row + the total: plain numbers (minutes, shares 0–1), '.' decimals."""
    lang = report.get("lang", "vi")
    scale = int(report.get("rating_scale") or 5)
    score_keys = [str(s) for s in range(1, scale + 1)]
    head = [group_heading(report)] + [c.heading(lang) + (" (phút)" if c.kind == "min" and lang == "vi" else
                                                          " (min)" if c.kind == "min" else "") for c in ALL_COLUMNS]
    head += [tr("score", lang, s=s) for s in score_keys]
    head += [tr(k, lang) for k in ("flag_inferred", "flag_reset", "flag_wait_jump", "flag_service_jump")]
    out: list[list[Any]] = [head]
    for r in report["rows"] + [report["totals"]]:
        vals: list[Any] = [r["label"]]
        for c in ALL_COLUMNS:
            vals.append(cell_value(c, r))
        ratings = r.get("ratings") or {}
        vals += [ratings.get(s, "") for s in score_keys]
        f = r.get("flags") or {}
        vals += [f.get("inferred", 0), f.get("closed_by_reset", 0), f.get("wait_clock_jump", 0),
                 f.get("service_clock_jump", 0)]
        out.append(vals)
    return out


def cell_value(c: Any, row: dict[str, Any]) -> Any:
    """A figure as a spreadsheet cell: minutes to 2 decimals, shares to 4, blank when missing."""
    v = c.value(row)
    return "" if v is None else round(v, 2) if c.kind == "min" else round(v, 4) if c.kind == "share" else v


# a text cell starting with one of these is a formula to Excel and LibreOffice ("CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> Any:
    """A cell as a spreadsheet must read it: numbers as they are; a text that would start a formula
    gets a leading apostrophe (OWASP's advice), so a name such as ``=HYPERLINK(…)`` in a site file
    or a province's feed shows as text when the head opens the file instead of running."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def write_rows_csv(rows: list[list[Any]], path: Path | str) -> Path:
    """UTF-8 with a BOM so Excel shows the Vietnamese letters; comma-separated; no text cell read
    as a formula (:func:`csv_text`)."""
    path = Path(path)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([csv_text(v) for v in row] for row in rows)
    return path


def write_csv(report: dict[str, Any], path: Path | str) -> Path:
    return write_rows_csv(csv_rows(report), path)


# ---------------------------------------------------------------------------------------------- XLSX


def write_xlsx(report: dict[str, Any], path: Path | str, *, charts: dict[str, bytes] | None = None) -> Path:
    """A workbook for Excel/LibreOffice: the report table, arrivals by hour, counter load, charts."""
    import xlsxwriter

    from xephang_reports.charts import chart_pngs

    lang = report.get("lang", "vi")
    path = Path(path)
    # every text is written as text: a name starting with '=' is not a formula, nor a 'http…' one a link
    wb = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False})
    try:
        title = wb.add_format({"bold": True, "font_size": 14})
        bold = wb.add_format({"bold": True})
        head = wb.add_format({"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#E9ECEF", "border": 1})
        num = wb.add_format({"num_format": "#,##0", "border": 1})
        mins = wb.add_format({"num_format": "0.0", "border": 1})
        pct = wb.add_format({"num_format": "0.0%", "border": 1})
        text = wb.add_format({"border": 1})
        tot_text = wb.add_format({"bold": True, "border": 1, "top": 2})
        tot = {k: wb.add_format({**p, "bold": True, "top": 2}) for k, p in
               (("int", {"num_format": "#,##0", "border": 1}), ("min", {"num_format": "0.0", "border": 1}),
                ("share", {"num_format": "0.0%", "border": 1}))}
        fmt = {"int": num, "min": mins, "share": pct}

        ws = wb.add_worksheet(tr("sheet_report", lang))
        for i, line in enumerate(title_lines(report)):
            ws.write(i, 0, line, title if i < 2 else None)
        r0 = 4
        scale = int(report.get("rating_scale") or 5)
        heads = [group_heading(report)] + [c.heading(lang) + (" (phút)" if c.kind == "min" and lang == "vi" else
                                                               " (min)" if c.kind == "min" else "") for c in ALL_COLUMNS]
        heads += [tr("score", lang, s=s) for s in range(1, scale + 1)]
        ws.write_row(r0, 0, heads, head)
        ws.set_row(r0, 36)
        ws.set_column(0, 0, 34)
        ws.set_column(1, len(heads), 12)
        body = report["rows"] + [report["totals"]]
        for i, r in enumerate(body):
            is_total = i == len(body) - 1
            y = r0 + 1 + i
            ws.write(y, 0, r["label"], tot_text if is_total else text)
            for j, c in enumerate(ALL_COLUMNS):
                v = c.value(r)
                style = tot[c.kind] if is_total else fmt[c.kind]
                if v is None:
                    ws.write_blank(y, j + 1, None, style)
                else:
                    ws.write_number(y, j + 1, v, style)
            ratings = r.get("ratings") or {}
            for s in range(1, scale + 1):
                v = ratings.get(str(s))
                style = tot["int"] if is_total else num
                if v is None:
                    ws.write_blank(y, len(ALL_COLUMNS) + s, None, style)
                else:
                    ws.write_number(y, len(ALL_COLUMNS) + s, v, style)
        ws.freeze_panes(r0 + 1, 1)
        y = r0 + len(body) + 2
        ws.write(y, 0, busiest_text(report))
        ws.write(y + 1, 0, tr("notes", lang), bold)
        for k, n in enumerate(notes(report, every_column=True)):
            ws.write(y + 2 + k, 0, n)

        wh = wb.add_worksheet(tr("sheet_hours", lang))
        days = max(1, int(report.get("open_days") or 0))
        wh.write_row(0, 0, [tr("hour", lang), COUNT_COLUMNS[0].heading(lang),
                            tr("issued_per_day", lang)], head)
        wh.set_column(0, 2, 16)
        for h, n in enumerate(report.get("arrivals_by_hour") or []):
            wh.write(h + 1, 0, f"{h:02d}:00–{(h + 1) % 24:02d}:00", text)
            wh.write_number(h + 1, 1, n, num)
            wh.write_number(h + 1, 2, n / days, mins)

        wc = wb.add_worksheet(tr("sheet_counters", lang))
        load = report.get("counter_load") or []
        keys = ["hours_s", "outside_s", "busy_s", "idle_s", "paused_s", "closed_s"] if all("hours_s" in c for c in load) \
            else ["busy_s", "idle_s", "paused_s"]
        names = {"hours_s": "hours_open", "outside_s": "outside", "busy_s": "busy", "idle_s": "idle",
                 "paused_s": "paused", "closed_s": "closed"}
        wc.write_row(0, 0, [tr("counter", lang), tr("officer", lang), tr("calls", lang)]
                     + [tr(names[k], lang) + " (h)" for k in keys] + [tr("pauses", lang)], head)
        wc.set_column(0, 1, 24)
        wc.set_column(2, 3 + len(keys), 13)
        for i, c in enumerate(load):
            wc.write(i + 1, 0, c["label"], text)
            wc.write(i + 1, 1, c.get("officer") or "", text)
            wc.write_number(i + 1, 2, c["visits"], num)
            for j, k in enumerate(keys):
                wc.write_number(i + 1, 3 + j, c[k] / 3600, mins)
            wc.write_number(i + 1, 3 + len(keys), c["pauses"], num)

        wg = wb.add_worksheet(tr("sheet_charts", lang))
        y = 0
        for data in (charts if charts is not None else chart_pngs(report)).values():
            wg.insert_image(y, 0, "chart.png", {"image_data": io.BytesIO(data), "x_scale": 0.5, "y_scale": 0.5})
            y += 19
    finally:
        wb.close()
    return path


# ---------------------------------------------------------------------------------------------- HTML

_CSS = """
@page { size: A4 landscape; margin: 12mm; }
body { font-family: 'Be Vietnam Pro', 'Segoe UI', Arial, sans-serif; color: #212529; margin: 0 auto;
       max-width: 1100px; padding: 16px; font-size: 12.5px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 6px; }
.site { font-size: 14px; font-weight: 600; } .meta { color: #6c757d; margin-bottom: 8px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 10px; }
th, td { border: 1px solid #ced4da; padding: 3px 6px; }
th { background: #e9ecef; font-weight: 700; text-align: center; vertical-align: bottom; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 700; border-top: 2px solid #212529; }
.charts img { width: 100%; max-width: 900px; display: block; margin: 6px auto 14px; page-break-inside: avoid; }
.notes { color: #495057; font-size: 11.5px; } .notes li { margin: 2px 0; }
.sign { display: flex; justify-content: space-between; margin-top: 28px; page-break-inside: avoid; }
.sign div { width: 40%; text-align: center; } .sign .space { height: 70px; }
@media print { .charts { page-break-before: always; } }
"""

_SIGN = {"vi": ("Người lập biểu", "Giám đốc Trung tâm", "(Ký, ghi rõ họ tên)"),
         "en": ("Prepared by", "Head of the centre", "(signature, full name)")}


def _font_faces() -> str:
    """Be Vietnam Pro embedded (regular, bold): the page prints the same on any computer."""
    from xephang.fonts import font_path

    faces = []
    for weight in (400, 700):
        data = base64.b64encode(font_path(weight).read_bytes()).decode()
        faces.append(f"@font-face {{ font-family: 'Be Vietnam Pro'; font-weight: {weight}; "
                     f"src: url(data:font/ttf;base64,{data}) format('truetype'); }}")
    return "\n".join(faces)


def _html_table(headings: list[str], rows: list[list[str]], total: list[str] | None = None, left: int = 1) -> str:
    e = html.escape

    def cells(r: list[str]) -> str:
        return "".join(f"<td>{e(c)}</td>" if i < left else f'<td class="n">{e(c)}</td>' for i, c in enumerate(r))

    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h in headings), "</tr></thead><tbody>"]
    out += [f"<tr>{cells(r)}</tr>" for r in rows]
    if total:
        out.append(f'<tr class="total">{cells(total)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report: dict[str, Any], *, charts: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML page (charts embedded as base64 PNG) that prints on A4."""
    from xephang_reports.charts import chart_pngs

    lang = report.get("lang", "vi")
    e = html.escape
    site, heading, generated = title_lines(report)
    rows, tot = report["rows"], report["totals"]
    gh = group_heading(report)
    parts = [f'<!DOCTYPE html><html lang="{e(lang)}"><head><meta charset="utf-8">',
             f"<title>{e(heading)}</title><style>{_font_faces()}\n{_CSS}</style></head><body>",
             f'<div class="site">{e(site)}</div><h1>{e(heading)}</h1><div class="meta">{e(generated)}</div>']
    for title, cols in table_sections(report):
        parts.append(f"<h2>{e(title)}</h2>")
        parts.append(_html_table([gh] + [c.heading(lang) for c in cols],
                                 [[r["label"]] + [cell_text(r, c, lang) for c in cols] for r in rows],
                                 [tot["label"]] + [cell_text(tot, c, lang) for c in cols]))
    if report.get("counter_load"):
        parts.append(f"<h2>{e(tr('load', lang))}</h2>")
        heads, body = load_table(report)
        parts.append(_html_table(heads, body, left=2))
    parts.append(f"<p>{e(busiest_text(report))}</p>")
    parts.append(f'<div class="notes"><b>{e(tr("notes", lang))}:</b><ul>'
                 + "".join(f"<li>{e(n)}</li>" for n in notes(report)) + "</ul></div>")
    left, right, hint = _SIGN.get(lang, _SIGN["vi"])
    parts.append(f'<div class="sign"><div><b>{e(left)}</b><br><i>{e(hint)}</i><div class="space"></div></div>'
                 f'<div><b>{e(right)}</b><br><i>{e(hint)}</i><div class="space"></div></div></div>')
    pngs = charts if charts is not None else chart_pngs(report)
    parts.append(f'<div class="charts"><h2>{e(tr("charts", lang))}</h2>')
    for name, data in pngs.items():
        parts.append(f'<img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">')
    parts.append("</div></body></html>")
    return "".join(parts)


def write_html(report: dict[str, Any], path: Path | str, *, charts: dict[str, bytes] | None = None) -> Path:
    path = Path(path)
    path.write_text(render_html(report, charts=charts), encoding="utf-8")
    return path
