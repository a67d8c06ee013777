"""What reaches the paper: one job per ticket, the exact image, and every way a printer fails."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageChops

from tests.ticketd.tty_printer import TtyDevice, TtyPrinter
from ticketd.config import PrinterConfig, TicketLayout
from ticketd.escpos_decode import DecodeError, decode_job
from ticketd.escpos_job import JobOptions
from ticketd.printer import (
    EscposPrinter,
    FakePrinter,
    PaperOut,
    PrinterError,
    PrinterOffline,
    PrinterState,
    PrintFailed,
    SimPrinter,
    open_printer,
    paper_state_from_byte,
)
from ticketd.render import TicketRenderer, TicketView


def same_pixels(a, b) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def a_ticket(site, issued_at, width, **layout):
    """A priority ticket with every line (queue figures, QR code) at ``width`` dots."""
    return TicketRenderer(site, TicketLayout(width_px=width, **layout)).render_with_qr(
        TicketView(number=3007, service_id="chung-thuc", issued_at=issued_at, priority=True,
                   priority_group="khuyet-tat", people_ahead=2, est_wait_min=9))


def old_job_bytes(image) -> int:
    """What the job was before issue 20: one raster of every line, white or not."""
    return 2 + 8 + image.width // 8 * image.height + 3 + 3


ENCODINGS = {
    "feed": JobOptions(),
    "white-raster": JobOptions(white_bands="raster"),
    "centred": JobOptions(center_bands=True),
    "short-rasters": JobOptions(raster_max_lines=24),
}


@pytest.mark.parametrize("width", [576, 384])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_printed_bytes_decode_back_to_the_rendered_ticket_pixel_for_pixel(site, issued_at, width, encoding):
    ticket, qr = a_ticket(site, issued_at, width)
    printer = FakePrinter(width_px=width, options=ENCODINGS[encoding])
    n = printer.print_image(ticket, label="3007", qr=qr)
    assert len(printer.jobs) == 1 and printer.printed == 1 and n == len(printer.jobs[0])
    job = decode_job(printer.jobs[0], paper_px=width)
    assert job.inits == 1 and job.cuts == 1 and not job.qr_codes  # the QR went as raster: not asked for natively
    assert same_pixels(job.image(), ticket)
    # and the comparison can fail: one dot changed is seen
    other = ticket.copy()
    other.putpixel((width // 2, 5), 0 if other.getpixel((width // 2, 5)) else 255)
    assert not same_pixels(job.image(), other)
    # fewer bytes on the wire, and no raster taller than the printer takes
    # (0.75: the 10-pt lines a citizen reads, issue 19, put more ink on the ticket than when 0.7 held)
    assert n < 0.75 * old_job_bytes(ticket)
    assert max(r.height for r in job.rasters) <= ENCODINGS[encoding].raster_max_lines


@pytest.mark.parametrize("width", [576, 384])
def test_white_bands_travel_as_paper_feed_not_as_white_raster_lines(site, issued_at, width):
    ticket, qr = a_ticket(site, issued_at, width)
    job = decode_job(FakePrinter(width_px=width).build(ticket, qr=qr), paper_px=width)
    white_lines = sum(1 for y in range(ticket.height)
                      if ticket.crop((0, y, width, y + 1)).getextrema() == (255, 255))
    assert job.feed_dots >= white_lines * 0.9  # nearly every white line is a feed
    assert job.unit_y == 203  # GS P 0 203: the feed unit is one dot
    assert sum(r.height for r in job.rasters) + job.feed_dots == ticket.height
    # the "raster" fallback moves the same paper without ESC J
    fallback = decode_job(FakePrinter(width_px=width, options=JobOptions(white_bands="raster")).build(ticket),
                          paper_px=width)
    assert fallback.feed_dots == 0 and fallback.y == ticket.height


@pytest.mark.parametrize("width", [576, 384])
def test_a_printer_drawn_qr_carries_the_same_url_and_the_rest_is_pixel_for_pixel(site, issued_at, width):
    ticket, qr = a_ticket(site, issued_at, width)
    assert qr is not None and qr.url.startswith("http")
    printer = FakePrinter(width_px=width, options=JobOptions(native_qr=True))
    printer.print_image(ticket, qr=qr)
    job = decode_job(printer.jobs[0], paper_px=width)
    (code,) = job.qr_codes
    assert code.data == qr.url  # the printer is asked to encode exactly the ticket's URL
    assert (code.module_px, code.ecc, code.y) == (qr.module_px, "M", qr.top)
    printed = job.image()
    # everything but the symbol's square is the rendered ticket, dot for dot
    blank = (qr.left, qr.top, qr.left + qr.size, qr.top + qr.size)
    for img in (printed, ticket):
        img.paste(255, blank)
    assert same_pixels(printed, ticket)
    # and the QR's data is a few dozen bytes instead of its raster
    raster_qr = FakePrinter(width_px=width).build(*a_ticket(site, issued_at, width)[:1])
    assert len(printer.jobs[0]) < len(raster_qr) - qr.size * qr.size // 8 // 2


def test_a_printer_drawn_qr_matches_the_rendered_one_when_the_printer_picks_the_same_symbol(site, issued_at):
    ticket, qr = a_ticket(site, issued_at, 576)
    job = decode_job(FakePrinter(options=JobOptions(native_qr=True)).build(ticket, qr=qr), paper_px=576)
    # the decoder draws the symbol as a printer does (smallest version, same mask rules as our renderer):
    # the whole ticket then matches, so size and position of the printer's QR are the rendered ones
    assert same_pixels(job.image(), ticket)


def test_a_tall_ticket_is_split_in_blocks_the_printer_takes_and_still_decodes_whole(site, issued_at):
    from PIL import Image

    tall = Image.new("1", (576, 2100), 255)
    for y in range(0, 2100, 7):
        tall.putpixel((y % 576, y), 0)
    tall.paste(0, (0, 1000, 576, 1700))  # a solid block taller than any raster may be
    printer = FakePrinter(options=JobOptions(raster_max_lines=255))
    printer.print_image(tall)
    job = decode_job(printer.jobs[0], paper_px=576)
    assert max(r.height for r in job.rasters) == 255
    assert same_pixels(job.image(), tall)


def test_decoder_refuses_garbage():
    with pytest.raises(DecodeError):
        decode_job(b"\x1b@\x1dv0\x00\x48\x00\x10")  # truncated raster header
    with pytest.raises(DecodeError):
        decode_job(b"\x1bZ")


def test_status_byte_silence_is_unknown_not_ok():
    assert paper_state_from_byte(b"") is PrinterState.UNKNOWN
    assert paper_state_from_byte(b"\x12") is PrinterState.OK
    assert paper_state_from_byte(b"\x1e") is PrinterState.PAPER_LOW
    assert paper_state_from_byte(b"\x72") is PrinterState.PAPER_OUT
    assert paper_state_from_byte(b"\xff") is PrinterState.UNKNOWN


def test_exceptions_have_builtin_parents():
    assert issubclass(PaperOut, RuntimeError) and issubclass(PaperOut, PrinterError)
    assert issubclass(PrinterOffline, ConnectionError)
    assert issubclass(PrintFailed, OSError)
    assert (PaperOut.code, PrinterOffline.code) == ("paper-out", "printer-offline")


def test_fake_paper_out_mid_job_keeps_partial_bytes_then_refuses_until_reloaded(site, issued_at):
    ticket = TicketRenderer(site).render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
    p = FakePrinter()
    p.paper = "low"
    assert p.status() is PrinterState.PAPER_LOW and p.status().can_issue
    p.fail_next_job("paper-out", fraction=0.3)
    with pytest.raises(PaperOut):
        p.print_image(ticket)
    assert p.jobs == [] and 0 < len(p.output) < 20000
    assert p.status() is PrinterState.PAPER_OUT and not p.status().can_issue
    assert p.last_error.startswith("paper-out")
    with pytest.raises(PaperOut):
        p.print_image(ticket)
    p.paper = "ok"
    p.print_image(ticket)
    assert len(p.jobs) == 1


def test_fake_offline_and_silent_printers(site, issued_at):
    ticket = TicketRenderer(site).render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
    p = FakePrinter()
    p.offline = True
    assert p.status() is PrinterState.OFFLINE
    with pytest.raises(PrinterOffline):
        p.print_image(ticket)
    p.offline = False
    p.fail_next_job("error")
    with pytest.raises(PrintFailed):
        p.print_image(ticket)
    silent = FakePrinter(answers_status=False)
    assert silent.status() is PrinterState.UNKNOWN and silent.status().can_issue


def test_sim_printer_writes_bytes_and_a_png_preview(site, issued_at, tmp_path):
    ticket = TicketRenderer(site, TicketLayout(width_px=384)).render(
        TicketView(number=2001, service_id="dat-dai", issued_at=issued_at))
    p = open_printer(PrinterConfig(backend="sim", sim_dir=tmp_path), width_px=384)
    assert isinstance(p, SimPrinter)
    p.print_image(ticket, label="2001")
    p.print_image(ticket, label="2001 reprint")
    bins = sorted(tmp_path.glob("*.bin"))
    assert [b.name for b in bins] == ["0001-2001.bin", "0002-2001-reprint.bin"]
    from PIL import Image

    assert same_pixels(Image.open(bins[0].with_suffix(".png")), ticket)
    # a restarted sim continues the numbering
    p2 = SimPrinter(tmp_path, width_px=384)
    p2.print_image(ticket, label="x")
    assert (tmp_path / "0003-x.bin").exists()
    # a sim dispenser prints all day: only the last job stays in memory, the rest is in the folder
    assert (p.job_count, len(p.jobs), p.labels, len(p.output)) == (2, 1, ["2001 reprint"], len(p.jobs[0]))
    assert p.wait_jobs(2, timeout=0) and p.last_file == bins[1]


def test_file_backend_writes_one_job_and_cannot_answer_status(site, issued_at, tmp_path):
    dev = tmp_path / "lp0"
    dev.touch()
    p = open_printer(PrinterConfig(backend="file", device=str(dev)), width_px=576)
    assert p.status() is PrinterState.UNKNOWN
    ticket = TicketRenderer(site).render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
    n = p.print_image(ticket)
    p.close()
    data = dev.read_bytes()
    assert len(data) == n
    assert same_pixels(decode_job(data, paper_px=576).image(), ticket)


class FakeNetworkPrinter:
    """A TCP printer on loopback: records bytes, answers DLE EOT 4 with a set byte (or stays silent)."""

    def __init__(self, answer: bytes | None):
        self.answer = answer
        self.received = bytearray()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                self.received += data
                if data.endswith(b"\x10\x04\x04") and self.answer is not None:
                    conn.sendall(self.answer)
        self.done.set()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize(("answer", "state"), [(b"\x12", PrinterState.OK), (b"\x72", PrinterState.PAPER_OUT),
                                               (None, PrinterState.UNKNOWN)])
def test_network_printer_status_and_job(site, issued_at, answer, state):
    srv = FakeNetworkPrinter(answer)
    try:
        p = EscposPrinter.from_config(PrinterConfig(backend="network", host="127.0.0.1", port=srv.port,
                                                    timeout_s=0.3), width_px=576)
        assert p.status() is state
        if state is PrinterState.UNKNOWN:  # silence is remembered: the next press does not wait again
            t0 = time.monotonic()
            assert p.status() is PrinterState.UNKNOWN
            assert time.monotonic() - t0 < 0.1
        ticket = TicketRenderer(site).render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
        if state is PrinterState.PAPER_OUT:  # it says paper end after the job too: not printed
            with pytest.raises(PaperOut):
                p.print_image(ticket)
        else:
            p.print_image(ticket)
        p.close()
        assert srv.done.wait(5)
        assert same_pixels(decode_job(bytes(srv.received), paper_px=576).image(), ticket)
    finally:
        srv.close()


def test_network_printer_unreachable_is_offline(site, issued_at):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    p = EscposPrinter.from_config(PrinterConfig(backend="network", host="127.0.0.1", port=port, timeout_s=0.3),
                                  width_px=576)
    assert p.status() is PrinterState.OFFLINE
    ticket = TicketRenderer(site).render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
    with pytest.raises(PrinterOffline):
        p.print_image(ticket)
    assert p.last_error.startswith("printer-offline")


# --- a serial printer that answers real status bytes (pty): the paper checked after the job ---

GS_R_1, DLE_EOT_4 = b"\x1dr\x01", b"\x10\x04\x04"


@pytest.fixture
def ticket(site, issued_at):
    return TicketRenderer(site).render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))


def serial_printer(tty: TtyPrinter) -> EscposPrinter:
    return EscposPrinter(TtyDevice(tty.path, timeout=0.3), width_px=576)


@pytest.fixture
def tty_factory():
    made: list[TtyPrinter] = []

    def make(**kw) -> TtyPrinter:
        made.append(TtyPrinter(**kw))
        return made[-1]

    yield make
    for t in made:
        t.close()


def test_a_roll_that_runs_out_mid_ticket_on_a_serial_printer_fails_the_job(ticket, tty_factory):
    tty = tty_factory(paper_lines=ticket.height // 2, near_end_lines=ticket.height)
    p = serial_printer(tty)
    assert p.status() is PrinterState.PAPER_LOW  # near end: the ticket is issued
    with pytest.raises(PaperOut):  # the write itself went through: only the status tells
        p.print_image(ticket)
    assert p.last_job_state is PrinterState.PAPER_OUT and p.printed == 0
    assert p.last_error.startswith("paper-out")
    assert tty.paper.image().height == ticket.height // 2  # half a ticket came out
    # the stopped printer did not answer GS r; the real-time DLE EOT 4 told the paper end
    assert tty.queries == [DLE_EOT_4, GS_R_1, DLE_EOT_4]
    assert p.status() is PrinterState.PAPER_OUT and not p.status().can_issue
    tty.load_roll(None)  # a technician loads a new roll
    assert p.status() is PrinterState.OK
    p.print_image(ticket)
    assert p.last_job_state is PrinterState.OK and p.printed == 1
    assert tty.queries[-1] == GS_R_1  # answered once the ticket was printed: no real-time query needed
    assert same_pixels(tty.paper.image().crop((0, ticket.height // 2, 576, tty.paper.image().height)), ticket)


def test_a_ticket_that_fits_but_leaves_the_roll_near_its_end_is_printed_and_says_low(ticket, tty_factory):
    tty = tty_factory(paper_lines=ticket.height + 50, near_end_lines=200)
    p = serial_printer(tty)
    assert p.status() is PrinterState.OK
    p.print_image(ticket)
    assert p.printed == 1 and p.last_job_state is PrinterState.PAPER_LOW
    assert same_pixels(tty.paper.image(), ticket)
    with pytest.raises(PaperOut):  # the next one runs out: near end, then out
        p.print_image(ticket)
    assert p.printed == 1 and p.last_job_state is PrinterState.PAPER_OUT


def test_a_printer_that_never_answers_is_unknown_after_the_job_not_ok_and_not_failed(ticket, tty_factory):
    tty = tty_factory(answers_sensor_query=False, answers_realtime=False)
    p = serial_printer(tty)
    p.print_image(ticket)
    assert p.printed == 1 and p.last_job_state is PrinterState.UNKNOWN
    assert tty.queries == [GS_R_1, DLE_EOT_4]
    # silence is remembered: the next job and press do not wait for timeouts again
    t0 = time.monotonic()
    p.print_image(ticket)
    assert p.status() is PrinterState.UNKNOWN
    assert time.monotonic() - t0 < 0.25
    assert p.printed == 2 and tty.queries == [GS_R_1, DLE_EOT_4]


def test_a_printer_that_answers_only_real_time_queries_is_asked_dle_eot_after_jobs(ticket, tty_factory):
    tty = tty_factory(answers_sensor_query=False, paper_lines=10_000)
    p = serial_printer(tty)
    p.print_image(ticket)
    assert p.last_job_state is PrinterState.OK
    assert tty.queries == [GS_R_1, DLE_EOT_4]
    p.print_image(ticket)
    assert tty.queries == [GS_R_1, DLE_EOT_4, DLE_EOT_4]  # GS r is not tried again
    tty.load_roll(ticket.height // 3)
    with pytest.raises(PaperOut):
        p.print_image(ticket)


def test_status_bytes_of_both_queries_are_told_apart():
    from ticketd.printer import paper_state_from_sensor_byte

    assert paper_state_from_sensor_byte(b"\x00") is PrinterState.OK
    assert paper_state_from_sensor_byte(b"\x03") is PrinterState.PAPER_LOW
    assert paper_state_from_sensor_byte(b"\x0f") is PrinterState.PAPER_OUT
    assert paper_state_from_sensor_byte(b"") is PrinterState.UNKNOWN
    assert paper_state_from_sensor_byte(b"\x12") is PrinterState.UNKNOWN  # a DLE EOT answer is not one
    assert paper_state_from_byte(b"\x0c\x12") is PrinterState.OK  # a late GS r byte first: skipped


# --- a serial printer's speed and flow control: settings checked at start ---


def test_serial_speed_and_flow_control_are_checked_at_start_with_every_error_listed(tmp_path, site_file):
    from ticketd.main import TicketdSettings
    from xephang.settings import SettingsError, load_settings

    cfg = tmp_path / "ticketd.toml"
    cfg.write_text(f'site_file = "{site_file}"\n[printer]\nbackend = "serial"\nserial_baud = 11520\n'
                   'serial_flow = "hardware"\nraster_max_lines = 0\n')
    with pytest.raises(SettingsError) as err:
        load_settings(TicketdSettings, cfg)
    text = str(err.value)
    for want in ("printer.serial_baud", "did you mean 115200", "printer.serial_flow", "'dtr-dsr'",
                 "printer.raster_max_lines"):
        assert want in text, (want, text)
    cfg.write_text(f'site_file = "{site_file}"\n[printer]\nbackend = "serial"\nserial_baud = 9600\n'
                   'serial_flow = "rts-cts"\n')
    s = load_settings(TicketdSettings, cfg)
    assert (s.printer.serial_baud, s.printer.serial_flow) == (9600, "rts-cts")


@pytest.mark.parametrize(("flow", "want"), [("dtr-dsr", (True, False, False)), ("rts-cts", (False, True, False)),
                                            ("xon-xoff", (False, False, True)), ("none", (False, False, False))])
def test_the_serial_port_is_opened_with_the_configured_speed_and_flow_control(tty_factory, flow, want):
    tty = tty_factory()  # a pseudo-terminal stands in for /dev/ttyUSB0
    p = EscposPrinter.from_config(PrinterConfig(backend="serial", serial_device=tty.path, serial_baud=19200,
                                                serial_flow=flow, timeout_s=0.3), width_px=576)
    try:
        p.device.open()
        port = p.device.device
        assert port.baudrate == 19200
        assert (port.dsrdtr, port.rtscts, port.xonxoff) == want
    finally:
        p.close()


@pytest.mark.parametrize("width", [576, 384])
def test_the_test_print_lets_a_technician_check_the_feed_unit_and_the_centring(site, issued_at, width):
    from ticketd.render import CHECK_DOTS

    test_print = TicketRenderer(site, TicketLayout(width_px=width)).render_test(issued_at)
    for options in (JobOptions(), JobOptions(center_bands=True)):
        job_bytes = FakePrinter(width_px=width, options=options).build(test_print)
        job = decode_job(job_bytes, paper_px=width)
        assert same_pixels(job.image(), test_print)
        # the gap between the two lines is one feed of 8 mm, the box above it a raster as tall
        assert b"\x1bJ" + bytes([CHECK_DOTS]) in job_bytes
        assert any(r.height == CHECK_DOTS for r in job.rasters)
    # the centre mark is a narrow band: centred by the printer only with center_bands
    narrow = decode_job(FakePrinter(width_px=width, options=JobOptions(center_bands=True)).build(test_print))
    assert min(r.width for r in narrow.rasters) <= 16


@settings(max_examples=150, deadline=None)
@given(width_bytes=st.integers(1, 12), rows=st.lists(st.one_of(st.just(-1), st.integers(0, 2**32)), max_size=60),
       white_bands=st.sampled_from(["feed", "raster"]), max_lines=st.integers(1, 40), center=st.booleans())
def test_any_picture_prints_as_it_is_drawn(width_bytes, rows, white_bands, max_lines, center):
    """Whatever the bands, gaps and block heights: the decoded job is the picture, dot for dot."""
    import random

    from PIL import Image

    width = width_bytes * 8
    img = Image.new("1", (width, max(1, len(rows))), 255)
    for y, seed in enumerate(rows):
        if seed >= 0:  # -1: a white line; else a line of random ink
            rnd = random.Random(seed)
            for x in range(width):
                if rnd.random() < 0.3:
                    img.putpixel((x, y), 0)
    options = JobOptions(white_bands=white_bands, raster_max_lines=max_lines, center_bands=center)
    job = decode_job(FakePrinter(width_px=width, profile="TM-T20II", options=options).build(img), paper_px=width)
    assert job.y == img.height
    if job.placed:
        assert same_pixels(job.image(), img)
    assert all(r.height <= max_lines and r.width >= 8 for r in job.rasters)


def test_a_serial_printer_at_its_speed_prints_the_new_job_and_answers_without_waiting_out_the_timeout(
        site, issued_at, tty_factory):
    """The real serial backend (python-escpos' Serial under ticketd's settings) on a pty printer."""
    tty = tty_factory(paper_lines=10_000, near_end_lines=100)
    cfg = PrinterConfig(backend="serial", serial_device=tty.path, serial_baud=115200, serial_flow="none",
                        timeout_s=3.0, native_qr=True)
    p = open_printer(cfg, width_px=576)
    try:
        t0 = time.monotonic()
        assert p.status() is PrinterState.OK
        ticket, qr = a_ticket(site, issued_at, 576)
        p.print_image(ticket, qr=qr)
        assert p.last_job_state is PrinterState.OK
        assert time.monotonic() - t0 < 2.0  # two status answers, each taken as it came (not after 3 s)
    finally:
        p.close()
    (code,) = tty.paper.qr_codes
    assert code.data == qr.url
    assert same_pixels(tty.paper.image(), ticket)


@pytest.mark.parametrize("center", [False, True])
def test_a_band_with_a_narrow_top_goes_as_two_rasters_when_that_is_fewer_bytes(center):
    from PIL import Image

    from ticketd.escpos_job import RASTER_HEADER_BYTES

    img = Image.new("1", (576, 60), 255)
    img.paste(0, (280, 0, 296, 12))  # an accent: 12 lines, 2 bytes of ink in the middle
    img.paste(0, (40, 12, 536, 60))  # the letters: 48 lines, 62 bytes wide
    job_bytes = FakePrinter(options=JobOptions(center_bands=center)).build(img)
    job = decode_job(job_bytes, paper_px=576)
    assert same_pixels(job.image(), img)
    assert len(job.rasters) == 2  # one raster the width of the letters would send 12 lines of white
    wide = 62 if center else 67  # bytes a line of the letters takes: cut both sides by 5 bytes, or the right only
    narrow_top = job.rasters[0].width // 8
    assert narrow_top < wide and sum(r.width // 8 * r.height for r in job.rasters) + 2 * RASTER_HEADER_BYTES \
        < wide * 60 + RASTER_HEADER_BYTES


@pytest.mark.parametrize(("m", "scale"), [(0, (1, 1)), (1, (2, 1)), (2, (1, 2)), (3, (2, 2)),
                                          (48, (1, 1)), (49, (2, 1)), (50, (1, 2)), (51, (2, 2))])
def test_the_decoder_enlarges_double_width_double_height_and_quadruple_rasters_as_the_printer_does(m, scale):
    # one data byte a line, two lines: 1000 0001 / 0100 0000 (bit 1 = a dot burnt)
    job = decode_job(b"\x1b@\x1dv0" + bytes([m, 1, 0, 2, 0]) + b"\x81\x40", paper_px=16)
    (img,) = job.rasters
    sx, sy = scale
    assert img.size == (8 * sx, 2 * sy) and job.y == 2 * sy
    black = {(x, y) for y in range(img.height) for x in range(img.width) if img.getpixel((x, y)) == 0}
    want = {(x, y) for bx, by in ((0, 0), (7, 0), (1, 1)) for x in range(bx * sx, bx * sx + sx)
            for y in range(by * sy, by * sy + sy)}
    assert black == want
    with pytest.raises(DecodeError):  # not a mode of GS v 0
        decode_job(b"\x1dv0\x04\x01\x00\x01\x00\xff")
