"""ticketd: the dispenser daemon — one press, one readable Vietnamese ticket.

The path of a press, all in the owner thread (gpiozero's threads only enqueue presses):

    key (debounced) → Dispenser core (queue, priority, rate) → printer check
    (paper out → refused; paper low → issue + alert) → ``issue-ticket`` via the bus request
    helper (one request_id per press, retried) → render → print → on a print failure
    ``void-ticket`` with the reason + retained alert + fault light.

While the hub is offline (its retained status, or our own broker link down) no number is
ever invented: the lights say "wait", and a press is answered when the hub returns within
``hardware.hub_wait_s`` or dropped with the error signal.

In sim mode the board is gpiozero mock pins (one button per service), the printer writes
``.bin`` + ``.png`` files, and ``R/sim/{node}/press`` presses a mock pin, so the whole real
path runs.
"""

from __future__ import annotations

import logging
import os
import string
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from ticketd.board import DispenserBoard, sim_hardware
from ticketd.config import (
    HardwareConfig,
    PrinterConfig,
    TicketLayout,
    hardware_clash_errors,
    hardware_site_errors,
    profile_width,
)
from ticketd.dispenser import Dispenser, Notice, Outcome, PressResult, TicketJob
from ticketd.printer import PaperOut, Printer, PrinterError, PrinterOffline, PrinterState, open_printer
from ticketd.render import TicketRenderer, TicketView
from ticketd.seen import SeenNumbers
from xephang.bus import Bus, Inbound
from xephang.checktext import both
from xephang.clock import VN_TZ, Clock
from xephang.contract import (
    BadPayload,
    HallState,
    IssueData,
    IssueTicket,
    Reply,
    SimPress,
    TicketInfo,
    VoidTicket,
    decode,
    new_request_id,
    reply_data,
)
from xephang.daemon import BusPressSink, Daemon
from xephang.hw import KeyPress, board_pin_factory
from xephang.presence import NodeWatch
from xephang.settings import DaemonSettings, SettingsError, load_site
from xephang.site import Site

log = logging.getLogger(__name__)

PRINTER_ALERTS = ("paper-out", "printer-offline", "printer-error", "paper-low")
ALERT_TEXT = {
    "paper-out": ("Máy in hết giấy: vui lòng thay cuộn giấy", "Printer out of paper: load a new roll"),
    "printer-offline": ("Máy in mất kết nối: kiểm tra nguồn và cáp", "Printer offline: check power and cable"),
    "printer-error": ("Máy in báo lỗi khi in vé", "Printer error while printing a ticket"),
    "paper-low": ("Giấy in sắp hết", "Printer paper low"),
    "font-glyphs": ("Phông chữ thiếu ký tự trên vé", "Ticket font is missing characters"),
}


class TicketdSettings(DaemonSettings):
    """ticketd's settings: the shared ones plus ``[ticket]``, ``[printer]``, ``[hardware]``."""

    ticket: TicketLayout = TicketLayout()
    printer: PrinterConfig = PrinterConfig()
    hardware: HardwareConfig = HardwareConfig()
    request_timeout_s: float = Field(default=1.5, gt=0, le=30, description="wait per issue-ticket attempt")
    request_attempts: int = Field(default=3, ge=1, le=10)
    link_secret_file: Path | None = Field(default=None, description="secret shared with webd that signs the live "
                                          "page's link in the QR (`xephang web secret`; docs/web.md)")
    printer_check_s: float = Field(default=30.0, gt=0, le=3600, description="status poll when the printer is fine")
    printer_fault_check_s: float = Field(default=2.0, gt=0, le=600, description="status poll while it is not")

    @classmethod
    def cross_check_errors(cls, data: Mapping[str, Any]) -> list[str]:
        """Pins used twice and buttons naming what the site lacks, listed beside field errors."""
        hw = data.get("hardware")
        if not isinstance(hw, Mapping):
            return []
        errors = hardware_clash_errors(hw)
        site_file = data.get("site_file") or os.environ.get("XEPHANG_SITE_FILE")
        if site_file:
            try:
                site = load_site(site_file)
            except SettingsError:
                return errors  # the site's own errors come when it is loaded
            errors += hardware_site_errors(hw, set(site.service_ids()), {g.id for g in site.priority.groups})
        return errors


class TicketDaemon(Daemon[TicketdSettings, TicketLayout]):
    """ticketd — the ticket dispenser."""

    role = "dispenser"
    settings_cls = TicketdSettings
    node_config_model = TicketLayout

    def __init__(self, settings: TicketdSettings, *, bus: Bus | None = None, clock: Clock | None = None,
                 printer: Printer | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings, bus=bus, clock=clock)
        self.presses = BusPressSink(self.bus, self._on_press)  # the keys' presses, handled in the owner thread
        self._mono = monotonic
        self._validate()  # every local config error at once (exit 78), before any hardware is touched
        # the parts are built up front, so none of them is ever missing: site, keys and lights, the
        # decision core, the renderer and the printer (opened here; its state is checked in setup)
        s = settings
        self.site: Site = s.load_site()
        hw = sim_hardware(self.site, s.hardware) if s.sim else s.hardware
        if not hw.buttons:
            log.warning("no service buttons configured ([hardware] buttons): only sim presses can issue")
        factory = board_pin_factory(hw.pin_factory, sim=s.sim, checking=self.checking)
        self.board: DispenserBoard = DispenserBoard(hw, events=self.presses, pin_factory=factory, clock=self._mono)
        groups = [g.id for g in self.site.priority.groups]
        # a general priority key issues tickets of the site's first priority group
        prio = {k.name: (k.group or (groups[0] if groups else "")) for k in hw.priority_keys}
        self.core: Dispenser = self.board.dispenser(priority_keys={k: g for k, g in prio.items() if g},
                                                    new_request_id=new_request_id)
        layout = self.node_config.current if self.node_config else s.ticket
        if not isinstance(layout, TicketLayout):  # pragma: no cover - the node config's model is TicketLayout
            raise TypeError(f"ticket layout is a {type(layout).__name__}")
        self.printer: Printer = printer or open_printer(self._printer_config(), width_px=layout.width_px,
                                                        state_dir=s.state_dir)
        self.renderer: TicketRenderer = self._renderer(layout)
        self._checked: tuple[TicketLayout, TicketRenderer] | None = None  # a pushed layout and its renderer, drawn
        self._hub_watch = NodeWatch("hub")  # the hub's availability, proof against late Wills
        self._next_printer_check = 0.0
        self._issuing: TicketJob | None = None
        self.last_error = ""
        self.hub_refused = 0  # presses the hub refused as too many (``rate-limited``)
        self.printed_tickets: list[TicketView] = []
        # (pressed, reply received, printed) on the key clock, for health and the benchmark
        self.timings: deque[tuple[float, float, float]] = deque(maxlen=1000)
        self._reply_at = 0.0
        # issue requests we gave up on: the hub may have issued a number nobody holds
        self._orphans: deque[tuple[IssueTicket, float]] = deque(maxlen=100)
        self._orphan_busy = False
        self._next_orphan_sweep = 0.0
        # today's highest number of each service, printed here or seen on the hall (ticketd/seen.py)
        self.seen_numbers = SeenNumbers(s.state_dir, read_only=self.checking)

    def _validate(self) -> None:
        """Local config errors are permanent: report them all now (exit 78), not at the first press."""
        s = self.settings
        site = s.load_site()
        errors = hardware_site_errors(s.hardware.model_dump(), set(site.service_ids()),
                                      {g.id for g in site.priority.groups})
        try:
            width = profile_width(s.printer.profile_for(s.ticket.width_px))
            if width is not None and width < s.ticket.width_px:
                errors.append(f"printer.profile: {s.printer.profile!r} is {width} px wide, tickets are {s.ticket.width_px} px")
        except Exception as exc:  # python-escpos raises its own error types for unknown profiles
            errors.append(f"printer.profile: {s.printer.profile!r} is not a python-escpos profile ({exc})")
        if errors:
            raise SettingsError(errors, "ticketd settings", "cấu hình máy phát số")

    @classmethod
    def default_node(cls, settings: DaemonSettings) -> str:
        return "dispenser-1"

    @property
    def hub_online(self) -> bool:
        """The hub's availability, as the decision core holds it (one source of truth):
        offline until the hub's retained status says online."""
        return self.core.hub_online

    def _renderer(self, layout: TicketLayout) -> TicketRenderer:
        # a printer with half_res_number gets the big number in 2 x 2-dot cells (sent as quadruple rasters),
        # one with nv_digits where its glyphs are (printed from its NV memory)
        return TicketRenderer(self.site, layout, link_secret=self._link_secret(),
                              half_res_number=self.printer.options.half_res_number,
                              nv_digits=self.printer.options.nv_digits)

    def _link_secret(self) -> bytes | None:
        """The live-page link's secret (None: no signed links, a {token} QR is not printed)."""
        if self.settings.link_secret_file is None:
            return None
        from xephang.ticketlink import LinkSecretError, load_secret

        try:
            return load_secret(self.settings.link_secret_file)
        except LinkSecretError as exc:
            log.error("%s", exc)
            return None

    # ---- node config: technicians may push the ticket layout (texts, QR, width) -----------
    def initial_node_config(self) -> dict[str, Any]:
        return self.settings.ticket.model_dump(mode="json")

    def check_node_config(self, new: TicketLayout) -> list[str]:
        """A pushed layout draws one ticket before it applies: one that cannot be drawn is refused and
        the dispenser goes on with the old one (a text naming an unknown field was half applied:
        refused, yet every ticket after it was voided). The renderer made here is the one applied."""
        self._checked = None
        if "token" in {name for _, name, _, _ in string.Formatter().parse(new.qr_url)} and self._link_secret() is None:
            # applied, every ticket after it printed without a QR code, and only the log said so
            return [both("qr_url dùng {token} (trang theo dõi của phiếu) nhưng máy phát số không có link_secret_file "
                         "đọc được: mọi phiếu sẽ in không có mã QR; đặt link_secret_file (cùng khóa với webd) trước",
                         "qr_url uses {token} (the ticket's live page) but the dispenser has no readable "
                         "link_secret_file: every ticket would print without a QR code; set link_secret_file "
                         "(webd's key) first")]
        try:
            renderer = self._renderer(new)
            if self.site.services:
                groups = self.site.priority.groups
                renderer.render_for_print(TicketView(
                    number=1023, service_id=self.site.services[0].id, issued_at=self.clock.local(),
                    priority=bool(groups), priority_group=groups[0].id if groups else None, people_ahead=12,
                    est_wait_low_min=10, est_wait_high_min=25, ticket_id=1, day=self.clock.local().date().isoformat()))
        except Exception as exc:  # whatever the layout makes the renderer raise: the push's refusal
            log.warning("pushed ticket layout cannot be drawn: %s", exc)
            return [both("không vẽ được phiếu với bố cục này", "the ticket cannot be drawn with this layout")
                    + f": {type(exc).__name__}: {str(exc)[:200]}"]
        self._checked = (new, renderer)
        return []

    def apply_node_config(self, new: TicketLayout, old: TicketLayout | None) -> bool:
        checked, self._checked = self._checked, None
        self.renderer = checked[1] if checked is not None and checked[0] is new else self._renderer(new)
        self._check_glyphs()
        return new.width_px != self.printer.width_px  # another paper width needs another printer profile: restart

    # ---- lifecycle -------------------------------------------------------------------------
    def setup(self) -> None:
        self.bus.subscribe(self.bus.topics.status("hub"), self._on_hub_status)
        self.bus.subscribe(self.bus.topics.state_hall(), self._on_hall)
        self.bus.add_disconnect_hook(lambda: self._set_hub_online(False))
        self.bus.add_connect_hook(self._check_glyphs)
        self._check_printer()
        self._refresh_lights()

    def _printer_config(self) -> PrinterConfig:
        cfg = self.settings.printer
        if self.settings.sim and cfg.backend not in ("sim", "fake"):
            cfg = cfg.model_copy(update={"backend": "sim"})  # sim mode never touches a real printer
        if cfg.backend == "sim":
            out = self.settings.sim_out or (cfg.sim_dir if cfg.sim_dir.is_absolute() else
                                            self.settings.state_dir / cfg.sim_dir)
            cfg = cfg.model_copy(update={"sim_dir": out})
        return cfg

    def teardown(self) -> None:
        self.board.close()
        self.printer.close()

    # ---- the owner loop ----------------------------------------------------------------------
    def tick(self, now: float) -> None:
        mono = self._mono()
        for notice in self.core.poll(mono):
            self._on_notice(notice)
        if mono >= self._next_printer_check and self._issuing is None:
            self._check_printer()
        if self._orphans and self.hub_online and not self._orphan_busy and mono >= self._next_orphan_sweep:
            self._sweep_orphan()
        self._pump()
        self._refresh_lights()

    # ---- presses ------------------------------------------------------------------------------
    def _on_press(self, press: KeyPress) -> None:
        if press.name in self.core.buttons and not self.core.printer_state.can_issue:
            self._check_printer()  # someone may just have loaded paper
        result = self.core.press(press, self._mono())
        log.info("press %s (%s): %s", press.name, press.kind, result.outcome)
        self._signal_press(result)
        self._pump()
        self._refresh_lights()

    def _signal_press(self, r: PressResult) -> None:
        b = self.board
        match r.outcome:
            case Outcome.QUEUED:
                b.show(r.key, "accepted")
                b.beep("accepted")
            case Outcome.WAITING_HUB:
                b.show(r.key, "accepted")
                b.beep("wait")
            case Outcome.ARMED:
                b.show(r.key, "armed")
                b.beep("armed")
            case Outcome.REFUSED_PAPER:
                b.show(r.key, "error")
                b.beep("fault")
            case Outcome.REFUSED_BUSY | Outcome.REFUSED_RATE:
                b.show(r.key, "error")
            case _:
                pass

    def _on_notice(self, n: Notice) -> None:
        if n.kind == "dropped-hub-offline":
            log.warning("press %s dropped: the hub stayed offline", n.key)
            self.board.show(n.key, "error")
            self.board.beep("error")

    def on_sim_press(self, press: SimPress) -> None:
        name = press.button
        if name == "priority" and name not in self.board.keys and self.core.priority_keys:
            name = next(iter(self.core.priority_keys))
        if not self.board.simulate_press(name, press.hold_s):
            raise BadPayload("unknown-button", f"no key {press.button!r} on this dispenser")

    # ---- jobs ---------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Start jobs while the printer is free and nothing waits for the hub's reply."""
        while self._issuing is None:
            job = self.core.next_job(self._mono())
            if job is None:
                return
            if job.kind == "issue":
                self._start_issue(job)
            else:
                self._print_local(job)

    def _start_issue(self, job: TicketJob) -> None:
        state = self._check_printer()
        if not state.can_issue:
            self.core.job_failed(job, state.value)  # no number asked for: nothing to void
            self.board.show(job.button, "error")
            self.board.beep("fault")
            return
        fields = {"request_id": job.request_id, "source": self.node, "service": job.service,
                  "priority_group": job.priority_group if job.priority else None, "sent_at": self.clock.now()}
        seen = self.seen_numbers.seen(job.service)
        try:
            req = IssueTicket(**fields, seen_day=seen[0] if seen else None, seen_number=seen[1] if seen else None)
        except ValueError as exc:  # a record the contract refuses must never stop the tickets (a drill: it held
            log.warning("today's numbers not sent (%s)", str(exc).splitlines()[0])  # every press, unsaid)
            req = IssueTicket(**fields)
        self._issuing = job
        self.bus.request(req, on_reply=lambda reply: self._on_issued(job, req, reply),
                         timeout_s=self.settings.request_timeout_s, attempts=self.settings.request_attempts)

    def _on_issued(self, job: TicketJob, req: IssueTicket, reply: Reply | None) -> None:
        self._issuing = None
        self._reply_at = self._mono()
        try:
            if reply is None:
                self._orphans.append((req, self._mono()))
                self._job_error(job, "hub-timeout", "no reply from the hub")
                return
            if reply.status != "ok":
                code = reply.error.code if reply.error else "error"
                if code == "rate-limited":  # nothing issued, nothing to print: the hall is told why
                    self.hub_refused += 1
                    wait = round(reply.error.retry_after_s or 60) if reply.error else 60
                    self._job_error(job, code, f"Tạm ngừng cấp số: máy đã cấp quá nhiều số trong thời gian ngắn, "
                                               f"mời bấm lại sau khoảng {wait} giây / Too many tickets in a short "
                                               f"time: press again in about {wait} s")
                    return
                self._job_error(job, code, reply.error.message if reply.error else "")
                return
            try:
                d = reply_data(reply, IssueData)
            except BadPayload as exc:
                self._job_error(job, "bad-reply", str(exc)[:200])
                return
            ticket = d.ticket
            self.seen_numbers.note(ticket.day, {ticket.service: ticket.number})
            view = TicketView(
                number=ticket.number,
                service_id=ticket.service,
                issued_at=datetime.fromtimestamp(ticket.issued_at, VN_TZ),
                priority=ticket.priority_group is not None,
                priority_group=ticket.priority_group,
                people_ahead=d.people_ahead,
                est_wait_min=d.est_wait_min,
                est_wait_low_min=d.est_wait_low_min,
                est_wait_high_min=d.est_wait_high_min,
                est_wait_open=d.est_wait_open is True,
                ticket_id=ticket.id,
                day=ticket.day,
            )
            self._print_issued(job, ticket, view)
        finally:
            self._pump()
            self._refresh_lights()

    def _print_issued(self, job: TicketJob, ticket: TicketInfo, view: TicketView) -> None:
        try:
            image, qr, blocks = self.renderer.render_for_print(view)
            self.printer.print_image(image, label=ticket.display, qr=qr, blocks=blocks)
        except PrinterError as exc:
            self._print_failed(job, ticket, exc)
            return
        except Exception as exc:  # a render bug must still void the number, never leave a ghost
            log.exception("ticket %s could not be rendered", ticket.display)
            self._print_failed(job, ticket, PrinterError(f"render: {exc}"))
            return
        self.timings.append((job.pressed_at, self._reply_at, self._mono()))
        log.info("ticket %s printed (%s)", ticket.display, ticket.service)
        self.core.job_done(job, view)
        self.printed_tickets.append(view)
        del self.printed_tickets[:-20]
        self._printed_ok()

    def _print_failed(self, job: TicketJob, ticket: TicketInfo, exc: PrinterError) -> None:
        reason = exc.code
        self.last_error = f"{reason}: {exc}"
        log.error("ticket %s not printed (%s): voiding it", ticket.display, self.last_error)
        void = VoidTicket(request_id=new_request_id(), source=self.node, ticket_id=ticket.id, reason=reason)
        self.bus.request(void, on_reply=lambda r: self._on_voided(ticket, r),
                         timeout_s=self.settings.request_timeout_s, attempts=max(3, self.settings.request_attempts))
        vi, en = ALERT_TEXT.get(reason, ALERT_TEXT["printer-error"])
        self.raise_alert(reason if reason in ALERT_TEXT else "printer-error", vi, en, "critical")
        state = self.printer.status()
        if isinstance(exc, PaperOut) and state is not PrinterState.PAPER_OUT:
            state = PrinterState.PAPER_OUT  # the job proved it, whatever a silent printer says
        elif isinstance(exc, PrinterOffline) and state.can_issue:
            state = PrinterState.OFFLINE
        self._set_printer_state(state)
        self._schedule_printer_check()
        self.core.job_failed(job, reason)
        self.board.show(job.button, "error")
        self.board.beep("fault")

    def _on_voided(self, ticket: TicketInfo, reply: Reply | None) -> None:
        if reply is None or reply.status != "ok":
            log.error("void of ticket %s (id %s) not confirmed: %s", ticket.display, ticket.id,
                      reply.error if reply else "no reply")
        else:
            log.info("ticket %s voided", ticket.display)

    ORPHAN_MAX_AGE_S = 600.0  # under contract.DISPENSER_VOID_WINDOW_S: the hub still lets us void what we learn
    ORPHAN_RETRY_S = 5.0

    def _sweep_orphan(self) -> None:
        """Ask again, with the same request_id, for a number we gave up on, and void it.

        The hub answers a known request_id with its stored reply (no second ticket), so if
        it did issue a number for a press we could not answer, that ticket is voided here
        instead of being called in an empty hall.
        """
        req, since = self._orphans[0]
        if self._mono() - since > self.ORPHAN_MAX_AGE_S:
            self._orphans.popleft()
            log.error("gave up learning the fate of issue request %s", req.request_id)
            return
        self._orphan_busy = True
        self.bus.request(req, on_reply=lambda r: self._on_orphan_reply(req, r),
                         timeout_s=self.settings.request_timeout_s, attempts=1)

    def _on_orphan_reply(self, req: IssueTicket, reply: Reply | None) -> None:
        self._orphan_busy = False
        if reply is None:
            self._next_orphan_sweep = self._mono() + self.ORPHAN_RETRY_S
            return
        if self._orphans and self._orphans[0][0].request_id == req.request_id:
            self._orphans.popleft()
        if reply.status != "ok":
            return  # the hub issued nothing for it
        try:
            ticket = reply_data(reply, IssueData).ticket
        except BadPayload:
            return
        log.warning("ticket %s was issued for a press we could not answer: voiding it", ticket.display)
        void = VoidTicket(request_id=new_request_id(), source=self.node, ticket_id=ticket.id, reason="not-printed")
        self.bus.request(void, on_reply=lambda r: self._on_voided(ticket, r),
                         timeout_s=self.settings.request_timeout_s, attempts=max(3, self.settings.request_attempts))

    def _job_error(self, job: TicketJob, code: str, message: str) -> None:
        self.last_error = f"{code}: {message}" if message else code
        log.warning("issue for %s failed: %s", job.button, self.last_error)
        self.core.job_failed(job, code)
        self.board.show(job.button, "error")
        self.board.beep("error")

    def _print_local(self, job: TicketJob) -> None:
        """Reprint or test print: no number is involved, so nothing to ask or void."""
        try:
            qr, blocks = None, ()
            if job.kind == "reprint" and job.ticket is not None:
                image, qr, blocks = self.renderer.render_for_print(job.ticket)
            else:
                image, blocks = self.renderer.render_test_for_print(self.clock.local())
            self.printer.print_image(image, label=job.kind, qr=qr, blocks=blocks)
        except PrinterError as exc:
            self.last_error = f"{exc.code}: {exc}"
            self.core.job_failed(job, exc.code)
            self.board.beep("fault")
            self._check_printer()
            return
        self.core.job_done(job)
        self._printed_ok()

    def _printed_ok(self) -> None:
        for alert in ("paper-out", "printer-offline", "printer-error"):
            self.clear_alert(alert)
        after = self.printer.last_job_state  # what a printer that answers said after the job
        if after in (PrinterState.OK, PrinterState.PAPER_LOW):
            self._set_printer_state(after)
            if after is PrinterState.PAPER_LOW and self.settings.printer.paper_low_alert:
                self.raise_alert("paper-low", *ALERT_TEXT["paper-low"], severity="warning")
        elif not self.core.printer_state.can_issue:
            self._set_printer_state(PrinterState.UNKNOWN)

    # ---- printer and hub state ----------------------------------------------------------------
    def _schedule_printer_check(self) -> None:
        every = self.settings.printer_check_s if self.core.printer_state.can_issue else self.settings.printer_fault_check_s
        self._next_printer_check = self._mono() + every

    def _set_printer_state(self, state: PrinterState) -> None:
        changed = state is not self.core.printer_state
        self.core.set_printer_state(state)
        if changed:
            log.info("printer: %s", state.value)
            if self.bus.connected.is_set():
                self.publish_health()  # technicians see paper and printer changes at once

    def _check_printer(self) -> PrinterState:
        """Ask the printer; update the core and the alerts. Silence is UNKNOWN, never OK."""
        # a silent printer (UNKNOWN) cannot tell us it recovered from a fault: the next press tries
        state = self.printer.status()
        self._set_printer_state(state)
        if state is PrinterState.PAPER_OUT:
            self.raise_alert("paper-out", *ALERT_TEXT["paper-out"], severity="critical")
        elif state is PrinterState.OFFLINE:
            self.raise_alert("printer-offline", *ALERT_TEXT["printer-offline"], severity="critical")
        elif state is PrinterState.OK:
            for alert in PRINTER_ALERTS:
                self.clear_alert(alert)
        if state is PrinterState.PAPER_LOW and self.settings.printer.paper_low_alert:
            self.raise_alert("paper-low", *ALERT_TEXT["paper-low"], severity="warning")
            self.clear_alert("paper-out")
            self.clear_alert("printer-offline")
        self._schedule_printer_check()
        return state

    def _check_glyphs(self) -> None:
        missing = self.renderer.missing_glyphs()
        if missing:
            log.error("the ticket font cannot draw: %s", missing)
            # which characters and in which text: the technician fixes the text (or the font) from this
            chars = "".join(sorted({c for cs in missing.values() for c in cs}))[:20]
            text = next(iter(missing))[:60]
            vi, en = ALERT_TEXT["font-glyphs"]
            self.raise_alert("font-glyphs", f"{vi}: «{chars}» trong «{text}»", f"{en}: «{chars}» in «{text}»",
                             severity="warning")
        else:
            self.clear_alert("font-glyphs")

    def _on_hall(self, msg: Inbound) -> None:
        """The hall state: the numbers every dispenser of the hall printed today (``seen_numbers``)."""
        if not msg.payload:
            return
        hs = decode(HallState, msg.payload)
        if hs.day:
            self.seen_numbers.note(hs.day, {s.id: s.last_issued_number for s in hs.services
                                            if s.last_issued_number is not None})

    def _on_hub_status(self, msg: Inbound) -> None:
        online = self._hub_watch.update(msg.payload)
        if online is not None:
            self._set_hub_online(online)

    def _set_hub_online(self, online: bool) -> None:
        if online != self.core.hub_online:
            log.info("hub is %s", "online" if online else "OFFLINE: presses wait, no number is invented")
        self.core.set_hub_online(online)
        if online:
            self._pump()
        self._refresh_lights()

    # ---- lights and health --------------------------------------------------------------------
    def _refresh_lights(self) -> None:
        """Each LED's base pattern, as the core says (a flash in progress finishes first)."""
        patterns, status = self.core.lights(self.board.leds)
        for key, pattern in patterns.items():
            self.board.show(key, pattern)
        self.board.show_status(status)

    def health_details(self) -> dict[str, Any]:
        st = self.core.stats
        keys = {name: {"accepted": k.stats.accepted, "bounces": k.stats.bounces,
                       "double_presses": k.stats.double_presses, "rate_limited": k.stats.rate_limited}
                for name, k in self.board.keys.items()}
        return {
            "printer": {"kind": self.printer.kind, "state": self.core.printer_state.value,
                        "width_px": self.printer.width_px, "profile": self.printer.profile},
            "tickets_printed": self.printer.printed,
            "last_error": self.last_error or self.printer.last_error,
            "hub_online": self.hub_online,
            "pending": len(self.core.pending) + (1 if self.core.in_flight else 0),
            "unanswered_requests": len(self._orphans),
            "last_press_to_print_ms": round((self.timings[-1][2] - self.timings[-1][0]) * 1000, 1) if self.timings else None,
            "presses": st.presses, "refused": st.refused, "dropped": st.dropped, "failed": st.failed,
            "hub_refused": self.hub_refused,
            "keys": keys,
        }


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``ticketd --config FILE``."""
    return TicketDaemon.main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
