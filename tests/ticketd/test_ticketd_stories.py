"""ticketd end to end on a fake bus with the real hub: what a citizen and a technician see.

Hardware edges only are fakes: gpiozero mock pins (the sim board) and the FakePrinter.
Time: the hub runs on a ManualClock (inside opening hours); the keys and the dispenser
core on a second manual monotonic clock the tests move between presses.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from PIL import ImageChops

from hubd.main import HubDaemon, HubSettings
from tests.ticketd.tty_printer import TtyDevice, TtyPrinter
from ticketd.escpos_decode import decode_job
from ticketd.main import TicketDaemon, TicketdSettings
from ticketd.printer import EscposPrinter, FakePrinter
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import SimPress, Topics
from xephang.hw import BUZZER_PATTERNS, LED_PATTERNS, pin_history
from xephang.testing import FakeBroker, FakeBus

SITE = "tuong-linh"
T = Topics(SITE)
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp()


class Hall:
    def __init__(self, tmp_path, broker, site_file, printer: FakePrinter | None, *, hub_up: bool = True,
                 printer_config=None, **ticketd_opts):
        self.broker = broker
        self.clock = ManualClock(start=MONDAY_9AM)
        self.mono = ManualClock(start=1000.0)
        (tmp_path / "hub").mkdir(exist_ok=True)  # a second Hall on the same folders: the daemons restarted
        (tmp_path / "tk").mkdir(exist_ok=True)
        self.hub = HubDaemon(
            HubSettings(site=SITE, node="hub", site_file=site_file, state_dir=tmp_path / "hub"),
            bus=FakeBus(broker, site=SITE, node="hub", role="hub", state_dir=tmp_path / "hub"), clock=self.clock)
        self.printer = printer
        if printer_config is not None:  # [printer] of the settings: the daemon opens the printer itself
            ticketd_opts["printer"] = printer_config
        settings = TicketdSettings(site=SITE, node="dispenser-1", site_file=site_file, state_dir=tmp_path / "tk",
                                   sim=True, request_timeout_s=0.3, request_attempts=2, **ticketd_opts)
        self.tk = TicketDaemon(settings, bus=FakeBus(broker, site=SITE, node="dispenser-1", role="dispenser",
                                                     state_dir=tmp_path / "tk"),
                               clock=self.clock, printer=printer, monotonic=self.mono.monotonic)
        if printer is None:  # the daemon opened the printer of its [printer] settings
            self.printer = self.tk.printer
        self.hub_started = False
        if hub_up:
            self.start_hub()
        self.tk.start()
        if hub_up:
            self.pump_until(lambda: self.tk.hub_online)

    def start_hub(self):
        self.hub.start()
        self.hub_started = True

    def step(self):
        if self.hub_started:
            self.hub.step(timeout=0)
        self.tk.step(timeout=0)

    def pump_until(self, cond, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.step()
            if cond():
                return True
        raise AssertionError("condition not reached")

    def settle(self, rounds=20):
        for _ in range(rounds):
            self.step()

    def press(self, name, *, hold_s=0.12, gap_s=1.0):
        pin = self.tk.board.keys[name].pin
        pin.drive_low()
        self.mono.advance(hold_s)
        pin.drive_high()
        self.mono.advance(gap_s)

    def requests(self, action):
        return [json.loads(p) for _, p in self.broker.messages(T.req(action) + "/#")]

    def close(self):
        self.tk.teardown()
        self.tk.bus.stop()
        if self.hub_started:
            self.hub.teardown()
            self.hub.bus.stop()


@pytest.fixture
def printer():
    return FakePrinter(width_px=576)


@pytest.fixture
def hall(tmp_path, fake_broker, site_file, printer):
    h = Hall(tmp_path, fake_broker, site_file, printer)
    yield h
    h.close()


def test_one_press_prints_exactly_one_ticket_whose_image_is_the_rendered_one(hall, printer):
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 1)
    hall.settle()
    assert len(printer.jobs) == 1
    (view,) = hall.tk.printed_tickets
    assert (view.number, view.service_id, view.priority) == (1001, "ho-tich", False)
    assert view.people_ahead == 0
    printed = decode_job(printer.jobs[0], paper_px=printer.width_px).image()
    expected = hall.tk.renderer.render(view)
    assert ImageChops.difference(printed.convert("L"), expected.convert("L")).getbbox() is None
    assert len(hall.requests("issue-ticket")) == 1


def test_a_bouncing_button_and_a_drumming_child_get_one_ticket_per_real_press(hall, printer):
    pin = hall.tk.board.keys["dat-dai"].pin
    for _ in range(5):  # contact bounce: 2 ms edges
        pin.drive_low()
        hall.mono.advance(0.002)
        pin.drive_high()
        hall.mono.advance(0.002)
    hall.mono.advance(1.0)
    for _ in range(8):  # a child drumming every 100 ms
        hall.press("dat-dai", hold_s=0.05, gap_s=0.05)
    hall.mono.advance(2.0)
    hall.press("dat-dai")  # a second, deliberate press
    hall.pump_until(lambda: len(printer.jobs) == 3)
    hall.settle()
    assert [v.number for v in hall.tk.printed_tickets] == [2001, 2002, 2003]
    assert len({r["request_id"] for r in hall.requests("issue-ticket")}) == 3


def test_a_child_pressing_all_morning_cannot_take_a_services_numbers_and_wastes_no_paper(hall, fake_broker, printer):
    """Pressing slowly enough (6 s apart) passes every local bound of the dispenser: each press was a
    ticket, 300 presses 300 numbers and 300 ghosts for the officers. The hub now gives one dispenser
    ``issue_burst`` tickets of a service at once (then ``issue_per_hour``): past it the press gets the
    error signal, no number, no paper, a readable reason in the dispenser's health, and the
    technicians the hub's ``tickets-refused`` alert; a minute later the next citizen gets a ticket."""
    burst = hall.hub.settings.hub.issue_burst
    for _ in range(burst + 5):
        hall.press("ho-tich", gap_s=6.0)
        hall.settle(10)
    hall.pump_until(lambda: hall.tk.hub_refused == 5)
    assert len(printer.jobs) == burst  # no paper for a refused press
    assert sum(1 for t in hall.hub.engine.tickets.values() if t.service == "ho-tich") == burst
    assert hall.tk.last_error.startswith("rate-limited: Tạm ngừng cấp số") and "press again in about" in hall.tk.last_error
    assert hall.tk.health_details()["hub_refused"] == 5
    assert T.alert("hub", "tickets-refused") in fake_broker.retained  # the technicians are told
    hall.clock.advance(60)  # a minute later, a citizen
    hall.press("ho-tich", gap_s=6.0)
    hall.pump_until(lambda: len(printer.jobs) == burst + 1)


def test_presses_while_a_ticket_prints_are_queued_not_lost_not_doubled(hall, printer):
    hall.press("ho-tich")
    hall.press("chung-thuc")  # before the loop even ran: the first is still in flight
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 3)
    hall.settle()
    assert [(v.service_id, v.number) for v in hall.tk.printed_tickets] == [
        ("ho-tich", 1001), ("chung-thuc", 3001), ("ho-tich", 1002)]
    assert hall.tk.printed_tickets[2].people_ahead == 1


def test_priority_key_then_service_prints_a_priority_ticket(hall, printer):
    hall.press("priority")
    hall.settle()
    assert hall.tk.board.leds["priority"].base == "armed"
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 1)
    (view,) = hall.tk.printed_tickets
    assert view.priority and view.priority_group == "cao-tuoi"
    assert hall.requests("issue-ticket")[0]["priority_group"] == "cao-tuoi"


def test_hub_offline_no_number_is_invented_and_the_press_is_answered_when_it_returns(hall, fake_broker, printer):
    fake_broker.kill("hub")
    hall.pump_until(lambda: not hall.tk.hub_online)
    hall.press("ho-tich")
    hall.settle()
    assert printer.jobs == [] and hall.requests("issue-ticket") == []
    assert hall.tk.board.leds["ho-tich"].base == "wait"
    fake_broker.go_up()  # the hub reconnects within the window
    hall.pump_until(lambda: len(printer.jobs) == 1)
    assert hall.tk.printed_tickets[0].number == 1001


@pytest.fixture
def hall_without_hub(tmp_path, fake_broker, site_file, printer):
    """The dispenser boots while the hub is not running (no retained status on the broker)."""
    h = Hall(tmp_path, fake_broker, site_file, printer, hub_up=False)
    yield h
    h.close()


def test_booted_before_the_hub_a_press_waits_and_is_answered_once_when_the_hub_comes_up(
        hall_without_hub, fake_broker, printer):
    hall = hall_without_hub
    hall.settle()
    assert hall.tk.hub_online is False  # nobody has vouched for the hub yet
    assert hall.tk.board.leds["ho-tich"].base == "hub_offline"
    hall.press("ho-tich")
    hall.settle()
    # the press waits: no request to a hub nobody has heard from, so no timeout and no error
    assert hall.requests("issue-ticket") == [] and printer.jobs == []
    assert hall.tk.board.leds["ho-tich"].base == "wait"
    assert hall.tk.core.stats.failed == 0
    hall.mono.advance(hall.tk.settings.hardware.hub_wait_s / 2)
    hall.start_hub()  # the hub comes up within the window
    hall.pump_until(lambda: len(printer.jobs) == 1)
    hall.settle()
    assert len(printer.jobs) == 1 and len(hall.requests("issue-ticket")) == 1
    assert [v.number for v in hall.tk.printed_tickets] == [1001]
    assert hall.tk.core.stats.failed == 0 and hall.tk.last_error == ""


def test_booted_before_the_hub_and_it_never_comes_the_press_is_dropped_with_the_error_signal(
        hall_without_hub, fake_broker, printer):
    hall = hall_without_hub
    hall.press("ho-tich")
    hall.settle()
    buzzer = hall.tk.board.buzzer
    assert buzzer.wait_settled(5)  # the two "wait" beeps of the press
    buzzer.pin.clear_states()
    hall.mono.advance(hall.tk.settings.hardware.hub_wait_s + 1)
    hall.settle()
    assert hall.tk.core.stats.dropped == 1 and hall.tk.core.stats.failed == 0
    assert buzzer.wait_settled(5)
    assert pin_history(buzzer.pin) == [False, True, False]  # one long "error" beep
    assert hall.tk.board.leds["ho-tich"].base == "hub_offline"
    # no number was invented, none was asked for, and the hub coming up later issues nothing
    assert printer.jobs == [] and hall.requests("issue-ticket") == []
    hall.start_hub()
    hall.pump_until(lambda: hall.tk.hub_online)
    hall.settle()
    assert printer.jobs == [] and hall.requests("issue-ticket") == []
    assert fake_broker.messages(T.event("ticket", "issued")) == []


def test_hub_offline_too_long_drops_the_press_with_a_clear_signal(hall, fake_broker, printer):
    fake_broker.kill("hub")
    hall.pump_until(lambda: not hall.tk.hub_online)
    hall.press("ho-tich")
    hall.settle()
    hall.mono.advance(hall.tk.settings.hardware.hub_wait_s + 1)
    buzzer = hall.tk.board.buzzer
    assert buzzer.wait_settled(5)  # the "wait" beeps of the press are over
    buzzer.pin.clear_states()
    hall.settle()
    assert hall.tk.core.stats.dropped == 1
    assert buzzer.wait_settled(5)
    assert pin_history(buzzer.pin) == [False, True, False]  # one long "error" beep
    assert BUZZER_PATTERNS["error"].steps[0][1] >= 0.5
    fake_broker.go_up()
    hall.pump_until(lambda: hall.tk.hub_online)
    hall.settle()
    assert printer.jobs == [] and hall.requests("issue-ticket") == []


def test_paper_out_before_the_press_issues_nothing_and_alerts_then_recovers(hall, fake_broker, printer):
    printer.paper = "out"
    hall.press("ho-tich")
    hall.settle()
    assert hall.requests("issue-ticket") == []
    assert T.alert("dispenser-1", "paper-out") in fake_broker.retained
    assert hall.tk.board.leds["ho-tich"].base == "fault"
    printer.paper = "ok"  # a technician loads a roll; the next press works
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 1)
    hall.settle()
    assert T.alert("dispenser-1", "paper-out") not in fake_broker.retained
    assert hall.tk.printed_tickets[0].number == 1001


def test_paper_runs_out_during_the_job_the_number_is_voided_and_alerted(hall, fake_broker, printer):
    printer.fail_next_job("paper-out", fraction=0.4)
    hall.press("ho-tich")
    hall.pump_until(lambda: len(hall.requests("void-ticket")) == 1)
    hall.pump_until(lambda: fake_broker.messages(T.event("ticket", "voided")))
    void = hall.requests("void-ticket")[0]
    assert void["reason"] == "paper-out"
    assert T.alert("dispenser-1", "paper-out") in fake_broker.retained
    assert hall.tk.board.leds["ho-tich"].base == "fault"
    assert printer.jobs == [] and len(printer.output) > 0  # half a ticket came out
    # health is republished by itself when the printer state changes
    health = json.loads(fake_broker.retained[T.health("dispenser-1")])
    assert health["details"]["printer"]["state"] == "paper-out"
    assert health["details"]["last_error"].startswith("paper-out")
    printer.paper = "ok"
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 1)
    hall.settle()
    assert hall.tk.printed_tickets[-1].number == 1002
    assert T.alert("dispenser-1", "paper-out") not in fake_broker.retained


def test_a_real_serial_printer_whose_roll_ends_mid_ticket_voids_it_and_alerts(tmp_path, fake_broker, site_file):
    # a serial printer that answers real status bytes: near end before, paper end after the job
    tty = TtyPrinter(paper_lines=300, near_end_lines=2000)
    printer = EscposPrinter(TtyDevice(tty.path, timeout=0.3), width_px=576)
    hall = Hall(tmp_path, fake_broker, site_file, printer)
    try:
        hall.press("ho-tich")
        hall.pump_until(lambda: len(hall.requests("void-ticket")) == 1)
        hall.pump_until(lambda: fake_broker.messages(T.event("ticket", "voided")))
        assert len(hall.requests("issue-ticket")) == 1  # paper low before the job: it was issued
        assert hall.requests("void-ticket")[0]["reason"] == "paper-out"
        assert T.alert("dispenser-1", "paper-out") in fake_broker.retained
        assert hall.tk.board.leds["ho-tich"].base == "fault"
        assert hall.tk.printed_tickets == [] and printer.printed == 0
        assert tty.paper.image().height == 300  # part of the ticket came out
        hall.press("ho-tich")  # no paper: refused, no number asked for
        hall.settle()
        assert len(hall.requests("issue-ticket")) == 1
        tty.load_roll(None)  # a technician loads a roll
        hall.press("ho-tich")
        hall.pump_until(lambda: printer.printed == 1)
        hall.settle()
        assert hall.tk.printed_tickets[-1].number == 1002
        assert T.alert("dispenser-1", "paper-out") not in fake_broker.retained
        assert hall.tk.core.printer_state.value == "ok"  # the printer said so after the job
    finally:
        hall.close()
        tty.close()


def test_printer_offline_mid_job_voids_and_alerts(hall, fake_broker, printer):
    printer.fail_next_job("offline")
    hall.press("dat-dai")
    hall.pump_until(lambda: len(hall.requests("void-ticket")) == 1)
    assert hall.requests("void-ticket")[0]["reason"] == "printer-offline"
    assert T.alert("dispenser-1", "printer-offline") in fake_broker.retained


def test_paper_low_still_issues_and_raises_a_warning(hall, fake_broker, printer):
    printer.paper = "low"
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 1)
    alert = json.loads(fake_broker.retained[T.alert("dispenser-1", "paper-low")])
    assert alert["severity"] == "warning"


def test_sim_press_topic_drives_the_mock_pin(hall, fake_broker, printer):
    tech = FakeBus(fake_broker, site=SITE, node="tech-laptop", role="tech")
    tech.start()
    tech.publish(T.sim_press("dispenser-1"), SimPress(button="van-hoa-xa-hoi"))
    hall.pump_until(lambda: len(printer.jobs) == 1)
    assert hall.tk.printed_tickets[0].number == 4001
    assert hall.tk.board.keys["van-hoa-xa-hoi"].stats.accepted == 1
    tech.publish(T.sim_press("dispenser-1"), b'{"schema": "xephang.sim-press.v1", "button": "nope"}')
    hall.settle()
    assert hall.tk.bus.stats.dropped >= 1  # a bad button is logged and counted, never a crash


def test_technician_long_press_reprints_the_last_ticket(hall, printer):
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 1)
    key = hall.tk.board.keys["tech"]
    key.pin.drive_low()
    hall.mono.advance(hall.tk.settings.hardware.tech_hold_s + 0.5)
    key.pin.drive_high()
    hall.pump_until(lambda: len(printer.jobs) == 2)
    assert printer.labels[-1] == "reprint"
    assert len(hall.requests("issue-ticket")) == 1  # a reprint asks the hub for nothing


def test_health_reports_printer_state_and_tickets_printed(hall, fake_broker, printer):
    hall.press("ho-tich")
    hall.pump_until(lambda: len(printer.jobs) == 1)
    hall.tk.publish_health()
    health = json.loads(fake_broker.retained[T.health("dispenser-1")])
    d = health["details"]
    assert d["tickets_printed"] == 1 and d["printer"]["state"] == "ok" and d["hub_online"] is True
    assert d["keys"]["ho-tich"]["accepted"] == 1


def test_lights_say_ready_when_all_is_well(hall):
    hall.settle()
    led = hall.tk.board.leds["ho-tich"]
    assert led.base == "ready" and "ready" in LED_PATTERNS


def test_a_number_issued_after_we_gave_up_is_voided_not_left_as_a_ghost(hall, printer):
    hall.press("ho-tich")
    # the hub is stalled: ticketd's request times out (0.3 s × 2 attempts) with no reply
    end = time.monotonic() + 5
    while hall.tk.core.stats.failed == 0 and time.monotonic() < end:
        hall.tk.step(timeout=0.05)
    assert hall.tk.core.stats.failed == 1 and printer.jobs == []
    assert hall.tk.health_details()["unanswered_requests"] == 1
    # the hub wakes up and issues from the queued request; the late reply is dropped
    hall.pump_until(lambda: len(hall.requests("void-ticket")) == 1)
    void = hall.requests("void-ticket")[0]
    assert void["reason"] == "not-printed"
    hall.pump_until(lambda: hall.broker.messages(T.event("ticket", "voided")))
    issued = hall.broker.messages(T.event("ticket", "issued"))
    assert len(issued) == 1  # asking again with the same request_id issued nothing new
    assert printer.jobs == []


def test_a_printer_that_draws_qr_codes_gets_the_ticket_url_not_its_picture_on_tickets_and_reprints(
        tmp_path, fake_broker, site_file):
    from ticketd.escpos_job import JobOptions

    printer = FakePrinter(width_px=576, options=JobOptions(native_qr=True))
    hall = Hall(tmp_path, fake_broker, site_file, printer)
    try:
        hall.press("ho-tich")
        hall.pump_until(lambda: len(printer.jobs) == 1)
        key = hall.tk.board.keys["tech"]
        key.pin.drive_low()
        hall.mono.advance(hall.tk.settings.hardware.tech_hold_s + 0.5)
        key.pin.drive_high()
        hall.pump_until(lambda: len(printer.jobs) == 2)
        (view,) = hall.tk.printed_tickets
        image, qr = hall.tk.renderer.render_with_qr(view)
        assert qr is not None
        for job_bytes in printer.jobs:
            job = decode_job(job_bytes, paper_px=576)
            assert [c.data for c in job.qr_codes] == [qr.url]
        # the ticket's own job draws exactly the rendered ticket (the decoder draws the QR as a printer does)
        assert ImageChops.difference(decode_job(printer.jobs[0], paper_px=576).image().convert("L"),
                                     image.convert("L")).getbbox() is None
    finally:
        hall.close()


def test_a_printer_that_keeps_the_shared_blocks_is_written_once_not_on_every_ticket_nor_after_a_restart(
        tmp_path, fake_broker, site_file):
    from ticketd.config import PrinterConfig
    from ticketd.printer import NV_RECORD_FILE

    hall = Hall(tmp_path, fake_broker, site_file, None, printer_config=PrinterConfig(backend="fake", nv_graphics=True))
    try:
        printer = hall.printer
        assert isinstance(printer, FakePrinter)
        hall.press("ho-tich")
        hall.press("ho-tich")
        hall.pump_until(lambda: len(printer.jobs) == 2)
        first, second = (decode_job(j, paper_px=576, nv={}) for j in printer.jobs)
        assert len(first.nv_defines) == 5 and second.nv_defines == []  # header, service, rule, QR caption, footer
        plain_image, plain_qr = hall.tk.renderer.render_with_qr(hall.tk.printed_tickets[1])
        assert len(printer.jobs[1]) < 0.8 * len(FakePrinter(width_px=576).build(plain_image, qr=plain_qr))
        for job_view, image in zip(hall.tk.printed_tickets, printer.images(), strict=True):
            assert ImageChops.difference(image.convert("L"), hall.tk.renderer.render(job_view).convert("L")).getbbox() is None
        nv = dict(printer.nv)
    finally:
        hall.close()
    assert (tmp_path / "tk" / NV_RECORD_FILE).exists()
    # ticketd restarts (same printer, its NV memory kept): the next ticket writes nothing
    again = Hall(tmp_path, fake_broker, site_file, None,
                printer_config=PrinterConfig(backend="fake", nv_graphics=True))
    try:
        again.printer.nv = nv
        again.press("ho-tich")
        again.pump_until(lambda: len(again.printer.jobs) == 1)
        assert again.printer.nv_writes == 0 and not decode_job(again.printer.jobs[0], paper_px=576, nv=dict(nv)).nv_missing
    finally:
        again.close()


def test_a_printer_that_takes_quadruple_rasters_gets_the_number_at_half_resolution_and_prints_the_rendered_ticket(
        tmp_path, fake_broker, site_file):
    from ticketd.config import PrinterConfig
    from ticketd.escpos_decode import split_commands

    hall = Hall(tmp_path, fake_broker, site_file, None,
                printer_config=PrinterConfig(backend="fake", half_res_number=True, center_bands=True))
    try:
        printer = hall.printer
        hall.press("ho-tich")
        hall.pump_until(lambda: len(printer.jobs) == 1)
        (view,) = hall.tk.printed_tickets
        assert hall.tk.renderer.half_res_number  # the renderer draws what the printer can take
        printed = decode_job(printer.jobs[0], paper_px=576).image()
        assert ImageChops.difference(printed.convert("L"), hall.tk.renderer.render(view).convert("L")).getbbox() is None
        assert any(c[:4] == b"\x1dv0\x03" for c in split_commands(printer.jobs[0])[0])
    finally:
        hall.close()


def test_a_printer_that_places_stored_glyphs_prints_the_number_from_them_and_the_rendered_ticket(
        tmp_path, fake_broker, site_file):
    from ticketd.config import PrinterConfig

    hall = Hall(tmp_path, fake_broker, site_file, None,
                printer_config=PrinterConfig(backend="fake", nv_graphics=True, nv_digits=True))
    try:
        printer = hall.printer
        hall.press("ho-tich")
        hall.press("ho-tich")
        hall.pump_until(lambda: len(printer.jobs) == 2)
        assert hall.tk.renderer.nv_digits  # the renderer says where the glyphs are, for the printer that takes them
        assert all(b"\x1bL" in job for job in printer.jobs)  # the number in page mode, from its glyphs
        for job_view, image in zip(hall.tk.printed_tickets, printer.images(), strict=True):
            assert ImageChops.difference(image.convert("L"), hall.tk.renderer.render(job_view).convert("L")).getbbox() is None
    finally:
        hall.close()


# ---- a hub on a new or restored ledger does not print a number a citizen already holds -----------

def _new_card(tmp_path) -> None:
    """The hub's card replaced: its ledger gone (the broker, on the same card, starts empty too)."""
    for p in (tmp_path / "hub").glob("ledger.sqlite*"):
        p.unlink()


def test_after_the_hubs_card_is_replaced_the_numbers_go_on_after_those_printed_today(tmp_path, fake_broker,
                                                                                       site_file, printer):
    """A new ledger started each service at the first of its band: the morning's 1001 was printed a
    second time, and both citizens walked up when the speaker called it. The dispenser keeps today's
    highest number of each service on its card and sends it with every issue request; the hub goes
    on after it. The dispensers restart too (the power cut that killed the hub's card)."""
    hall = Hall(tmp_path, fake_broker, site_file, printer)
    for _ in range(3):
        hall.press("ho-tich")
    hall.press("dat-dai")
    hall.pump_until(lambda: len(hall.tk.printed_tickets) == 4)
    assert [v.number for v in hall.tk.printed_tickets] == [1001, 1002, 1003, 2001]
    hall.close()
    _new_card(tmp_path)
    again = Hall(tmp_path, FakeBroker(), site_file, FakePrinter(width_px=576))
    try:
        assert again.hub.engine.sequences == {}  # the new ledger knows no number of today
        again.press("ho-tich")
        again.press("dat-dai")
        again.press("chung-thuc")
        again.pump_until(lambda: len(again.tk.printed_tickets) == 3)
        assert [v.number for v in again.tk.printed_tickets] == [1004, 2002, 3001]
        (req, *_) = again.requests("issue-ticket")
        assert (req["seen_day"], req["seen_number"]) == (again.hub.engine.day, 1003)
    finally:
        again.close()


def test_numbers_another_dispenser_printed_are_known_from_the_hall_state(tmp_path, fake_broker, site_file, printer):
    """Two dispensers: this one learns what the other printed from the hall state's
    ``last_issued_number``, so a new ledger does not give those numbers again either."""
    from tests.hubd.test_attack_review_hub import _send
    from xephang.contract import IssueTicket, new_request_id

    hall = Hall(tmp_path, fake_broker, site_file, printer)
    for _ in range(5):  # dispenser-2, on the same broker
        _send(fake_broker, IssueTicket(request_id=new_request_id(), source="dispenser-2", service="ho-tich"))
    hall.pump_until(lambda: hall.hub.engine.sequences.get((hall.hub.engine.day, "ho-tich")) == 1005)
    hall.pump_until(lambda: hall.tk.seen_numbers.seen("ho-tich") == (hall.hub.engine.day, 1005))
    assert hall.tk.printed_tickets == []
    hall.close()
    _new_card(tmp_path)
    again = Hall(tmp_path, FakeBroker(), site_file, FakePrinter(width_px=576))
    try:
        again.press("ho-tich")
        again.pump_until(lambda: len(again.tk.printed_tickets) == 1)
        assert again.tk.printed_tickets[0].number == 1006
    finally:
        again.close()


def test_a_record_of_another_day_or_one_that_cannot_be_read_changes_no_number(tmp_path, fake_broker, site_file,
                                                                              printer):
    from ticketd.seen import FILE

    (tmp_path / "tk").mkdir()
    (tmp_path / "tk" / FILE).write_text('{"day": "2026-01-02", "days": {"2026-01-02": {"ho-tich": 1400}}}')
    hall = Hall(tmp_path, fake_broker, site_file, printer)
    try:
        hall.press("ho-tich")
        hall.pump_until(lambda: len(hall.tk.printed_tickets) == 1)
        assert hall.tk.printed_tickets[0].number == 1001  # Friday's numbers are not Monday's
        assert json.loads((tmp_path / "tk" / FILE).read_text()) == {  # Friday's kept apart
            "day": hall.hub.engine.day, "days": {"2026-01-02": {"ho-tich": 1400}, hall.hub.engine.day: {"ho-tich": 1001}}}
    finally:
        hall.close()
    (tmp_path / "tk" / FILE).write_text("{not json")
    _new_card(tmp_path)
    again = Hall(tmp_path, FakeBroker(), site_file, FakePrinter(width_px=576))
    try:
        again.press("ho-tich")
        again.pump_until(lambda: len(again.tk.printed_tickets) == 1)
        assert again.tk.printed_tickets[0].number == 1001  # nothing known: as before
    finally:
        again.close()


def test_a_record_the_contract_refuses_never_stops_the_tickets(hall, printer, caplog):
    """A day ending in a newline passed the record's own check and not the contract's: building the
    request raised on the owner thread, the press was taken and never ended, and the dispenser
    printed nothing until restarted, with no alert (a drill). The request now goes without it."""
    hall.tk.seen_numbers.seen = lambda service: (hall.hub.engine.day + "\n", 1003)
    hall.press("ho-tich")
    hall.press("dat-dai")
    hall.pump_until(lambda: len(printer.jobs) == 2)
    assert [v.number for v in hall.tk.printed_tickets] == [1001, 2001]
    assert "today's numbers not sent" in caplog.text
