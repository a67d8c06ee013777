"""What reaches the paper: one job per ticket, the exact image, and every way a printer fails."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from PIL import ImageChops

from ticketd.config import PrinterConfig, TicketLayout
from ticketd.escpos_decode import DecodeError, decode_job
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


@pytest.mark.parametrize("width", [576, 384])
def test_printed_bytes_decode_back_to_the_rendered_ticket_pixel_for_pixel(site, issued_at, width):
    ticket = TicketRenderer(site, TicketLayout(width_px=width)).render(
        TicketView(number=3007, service_id="chung-thuc", issued_at=issued_at, priority=True,
                   priority_group="khuyet-tat", people_ahead=2, est_wait_min=9))
    printer = FakePrinter(width_px=width)
    printer.print_image(ticket, label="3007")
    assert len(printer.jobs) == 1 and printer.printed == 1
    job = decode_job(printer.jobs[0])
    assert job.inits == 1 and job.cuts == 1
    assert same_pixels(job.image(), ticket)
    # and the comparison can fail: one dot changed is seen
    other = ticket.copy()
    other.putpixel((width // 2, 5), 0 if other.getpixel((width // 2, 5)) else 255)
    assert not same_pixels(job.image(), other)


def test_a_tall_ticket_is_split_in_fragments_and_still_decodes_whole(site, issued_at):
    from PIL import Image

    tall = Image.new("1", (576, 2100), 255)
    for y in range(0, 2100, 7):
        tall.putpixel((y % 576, y), 0)
    printer = FakePrinter()
    printer.print_image(tall)
    job = decode_job(printer.jobs[0])
    assert len(job.rasters) == 3
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
    assert same_pixels(decode_job(data).image(), ticket)


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
        p.print_image(ticket)
        p.close()
        assert srv.done.wait(5)
        assert same_pixels(decode_job(bytes(srv.received)).image(), ticket)
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
