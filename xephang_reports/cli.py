"""``xephang report``: the centre's head's figures, from the ledger or from the hub over MQTT.

On the hub (or with a copy of its ledger) the report is computed from the SQLite file, read-only;
on a technician's laptop ``--mqtt`` asks the hub (``report`` request) and renders its answer.
Either way the same report dict is printed as a table and written as CSV, XLSX, PNG charts,
HTML or JSON on request. ``python -m xephang_reports.cli report …`` runs it without the main CLI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from xephang import exits
from xephang.terminal import port_number, shown, tech_port_default

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/xephang/hubd")  # the hub unit's StateDirectory
EXIT_ERROR, EXIT_NO_HUB = exits.REFUSED, exits.NO_ANSWER


class ReportCliError(Exception):
    """A problem the user can fix; printed without a traceback. ``code``: the exit (xephang.exits)."""

    def __init__(self, message: str, code: int = exits.REFUSED) -> None:
        super().__init__(message)
        self.code = code


def _ledger_path(args: argparse.Namespace) -> Path:
    if args.ledger:
        return Path(args.ledger)
    base = Path(args.state_dir or os.environ.get("XEPHANG_STATE_DIR") or DEFAULT_STATE_DIR)
    return base / "ledger.sqlite"


def _load_site(args: argparse.Namespace) -> Any:
    from xephang.settings import SettingsError, load_site

    path = args.site_file or os.environ.get("XEPHANG_SITE_FILE")
    if not path:
        raise ReportCliError("cần --site-file (hoặc XEPHANG_SITE_FILE) / --site-file is required")
    try:
        return load_site(path)
    except SettingsError as exc:
        raise ReportCliError(str(exc)) from exc


def _now(args: argparse.Namespace) -> float:
    if not args.now:
        return time.time()
    from xephang.clock import VN_TZ

    try:
        dt = datetime.fromisoformat(args.now)
    except ValueError:
        raise ReportCliError(f"--now {args.now!r}: use YYYY-MM-DD HH:MM (Vietnam time)") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=VN_TZ)).timestamp()


def local_report(args: argparse.Namespace) -> dict[str, Any]:
    """Build the report from the ledger file (read-only)."""
    from xephang_reports.build import LedgerMissing, report_from_ledger

    site = _load_site(args)
    try:
        return report_from_ledger(_ledger_path(args), site, period=args.period, group_by=args.group_by,
                                  lang=args.lang, now=_now(args))
    except LedgerMissing as exc:
        raise ReportCliError(f"{exc} (--ledger PATH or --state-dir DIR)") from exc


def mqtt_report(args: argparse.Namespace) -> dict[str, Any] | None:
    """Ask the hub for the report over MQTT; None when the hub does not answer."""
    from xephang.bus import Bus, BusFatal
    from xephang.contract import Reply, ReportRequest, new_request_id, packed_refused
    from xephang.settings import BrokerSettings

    site_slug = args.site or os.environ.get("XEPHANG_SITE")
    if not site_slug and (args.site_file or os.environ.get("XEPHANG_SITE_FILE")):
        site_slug = _load_site(args).site.slug
    site_slug = site_slug or "tuong-linh"  # the same default as every other tool (docs/tools.md)
    # the hub lets a technician's account ask as itself: tech-lan asks as tech-lan (its default --node was
    # tech, which the broker's ACL refused to tech-lan, and the answer blamed the account)
    args.node = args.node or args.username or "tech"
    broker = BrokerSettings(host=args.host, port=args.port, username=args.username,
                            password_file=Path(args.password_file) if args.password_file else None,
                            tls=args.tls, ca_file=Path(args.ca_file) if args.ca_file else None)
    bus = Bus(site=site_slug, node=args.node, role="tech", broker=broker)
    bus.start()
    try:
        if not bus.wait_connected(args.timeout):
            raise ReportCliError(f"không kết nối được broker {args.host}:{args.port} / cannot reach the broker",
                                 exits.NO_BROKER)
        req = ReportRequest(request_id=new_request_id(), source=args.node, period=args.period,
                            group_by=args.group_by, lang=args.lang, packed=True)  # unpack_report below
        # a board's password may log in, but the ACL lets only technicians ask the hub: the broker
        # refuses the publish (PUBACK 135), and waiting out the attempts would only say "no answer"
        refused: list[int] = []
        bus.add_refused_hook(refused.append)

        def ask(req: ReportRequest) -> Reply | None:
            box: list[Reply | None] = []
            bus.request(req, on_reply=box.append, timeout_s=args.timeout, attempts=2)
            end = time.monotonic() + args.timeout * 2 + 1
            while not box and not refused and time.monotonic() < end:
                bus.process(timeout=0.05)
            if refused and not box:
                raise ReportCliError(f"broker từ chối yêu cầu / the broker refused the request (ACL): is "
                                     f"{args.username or args.node!r} a technician account (tech, tech-…)?",
                                     exits.NOT_ALLOWED)
            return box[0] if box else None

        reply = ask(req)
        if packed_refused(reply):  # a hub from before packed reports: as it was asked then
            reply = ask(req.model_copy(update={"request_id": new_request_id(), "packed": False}))
    except BusFatal as exc:  # refused by the broker: say so in one line, no traceback
        raise ReportCliError(f"broker từ chối / broker refused: {exc}", exits.NO_BROKER) from None
    finally:
        bus.stop()
    if reply is None:
        return None
    if reply.status != "ok":
        err = reply.error
        raise ReportCliError(f"hub: {err.code if err else 'error'}: {err.message if err else ''}".strip())
    from xephang_reports.build import unpack_report

    try:
        return unpack_report(reply.data or {})
    except ValueError as exc:
        raise ReportCliError(f"hub: {exc}") from None


def write_outputs(report: dict[str, Any], args: argparse.Namespace) -> list[Path]:
    """Write every file asked for; the charts are drawn once and shared."""
    from xephang_reports import charts as report_charts
    from xephang_reports import render as report_render

    written: list[Path] = []
    charts = report_charts.chart_pngs(report) if (args.xlsx or args.html or args.charts) else None
    if args.csv:
        written.append(report_render.write_csv(report, args.csv))
    if args.xlsx:
        written.append(report_render.write_xlsx(report, args.xlsx, charts=charts))
    if args.html:
        written.append(report_render.write_html(report, args.html, charts=charts))
    if args.charts:
        folder = Path(args.charts)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (charts or {}).items():
            p = folder / f"{name}.png"
            p.write_bytes(data)
            written.append(p)
    if args.json:
        p = Path(args.json)
        p.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        written.append(p)
    return written


def report_cmd(args: argparse.Namespace) -> int:
    """Run ``xephang report``; returns the exit code."""
    from xephang_reports.build import BadPeriod, ReportError, bad_period_words
    from xephang_reports.render import render_table

    try:
        from xephang.clock import VN_TZ
        from xephang_reports.build import parse_period

        parse_period(args.period, datetime.fromtimestamp(_now(args), VN_TZ).date())  # said before the hub is asked
        report = mqtt_report(args) if args.mqtt else local_report(args)
        if report is None:
            print("hub không trả lời / the hub did not answer", file=sys.stderr)
            return EXIT_NO_HUB
        if not args.quiet:
            sys.stdout.write(shown(render_table(report), lines=True))  # --mqtt: the hub's words
        for p in write_outputs(report, args):
            print(f"Đã ghi / written: {p}", file=sys.stderr)
    except BadPeriod as exc:  # what to write, in the report's language (Python's date check in English after)
        print(f"xephang report: {bad_period_words(args.period, args.lang)} ({exc})", file=sys.stderr)
        return EXIT_ERROR
    except (ReportCliError, ReportError, OSError) as exc:
        print(f"xephang report: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, ReportCliError) else EXIT_ERROR
    except sqlite3.Error as exc:  # not a ledger, or a damaged one
        print(f"xephang report: không đọc được sổ / cannot read the ledger: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``report`` to a CLI's subparsers (sets ``func``)."""
    p = subparsers.add_parser(
        "report", help="báo cáo hàng đợi / queue report (waits, service, no-shows, satisfaction)",
        description="Báo cáo cho lãnh đạo trung tâm: theo ngày, tháng, quý; theo lĩnh vực, quầy, cán bộ, ngày, giờ.")
    p.add_argument("--period", default="today",
                   help="today, yesterday, 2026-11-23, 2026-11, 2026-Q4, 2026, last-month, last-quarter, "
                        "2026-11-01..2026-11-30 (default: today)")
    p.add_argument("--group-by", default="service", help="service | counter | officer | day | hour (default service)")
    p.add_argument("--lang", choices=["vi", "en"], default="vi", help="headings and labels (default vi)")
    src = p.add_argument_group("ledger (on the hub)")
    src.add_argument("--ledger", help="the hub's SQLite ledger (default: STATE_DIR/ledger.sqlite)")
    src.add_argument("--state-dir", help="default: $XEPHANG_STATE_DIR or /var/lib/xephang/hubd")
    src.add_argument("--site-file", help="site TOML (default: $XEPHANG_SITE_FILE)")
    src.add_argument("--now", metavar="'YYYY-MM-DD HH:MM'",
                     help="the report as made at this moment, Vietnam time (default: the clock): a running "
                          "day's counted hours end there; the demo prints the one its report used")
    out = p.add_argument_group("outputs")
    out.add_argument("--csv", help="write a CSV file (UTF-8, opens in Excel)")
    out.add_argument("--xlsx", help="write an XLSX workbook")
    out.add_argument("--html", help="write one printable HTML file with the charts inside")
    out.add_argument("--charts", help="write the charts as PNG into this folder")
    out.add_argument("--json", help="write the report data as JSON")
    out.add_argument("-q", "--quiet", action="store_true", help="no table on the terminal")
    m = p.add_argument_group("over MQTT (from a technician's laptop)")
    m.add_argument("--mqtt", action="store_true", help="ask the hub instead of reading a ledger")
    m.add_argument("--host", default=os.environ.get("XEPHANG_BROKER__HOST", "127.0.0.1"))
    m.add_argument("--port", type=port_number, default=tech_port_default(),
                   help="the technicians' listener (default $XEPHANG_TECH_PORT, $XEPHANG_BROKER__PORT or 1884)")
    m.add_argument("--site", help="site slug (topic root); default $XEPHANG_SITE, the site file's, or tuong-linh")
    m.add_argument("--node", default=None, help="our node id (the request's source): default the username, else tech")
    m.add_argument("-u", "--username", default=None, help="the technician's account (default tech)")
    m.add_argument("--password-file", default=None)
    m.add_argument("--tls", action="store_true")
    m.add_argument("--ca-file", default=None)
    m.add_argument("--timeout", type=float, default=5.0, help="seconds per attempt (default 5)")
    p.set_defaults(func=report_cmd)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: ``python -m xephang_reports.cli report --period 2026-Q4``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="xephang_reports.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
