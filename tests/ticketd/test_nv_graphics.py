"""The blocks every ticket shares, kept in the printer's NV graphics memory: the paper stays the same,
the per-ticket job shrinks, and the NV memory is written only when a block changes."""

from __future__ import annotations

import json

import pytest
from PIL import ImageChops

from ticketd.config import PrinterConfig, TicketLayout
from ticketd.escpos_decode import decode_job
from ticketd.escpos_job import JobOptions, nv_define, nv_print
from ticketd.nv_graphics import NvGraphicsRecord
from ticketd.printer import NV_RECORD_FILE, FakePrinter, open_printer, printer_identity
from ticketd.render import TicketRenderer, TicketView

ENCODINGS = {
    "nv": JobOptions(nv_graphics=True),
    "nv-centred": JobOptions(nv_graphics=True, center_bands=True),
    "nv-short-rasters": JobOptions(nv_graphics=True, raster_max_lines=24, white_bands="raster"),
}


def same_pixels(a, b) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def views(issued_at) -> list[TicketView]:
    """A priority ticket, then ordinary ones of two services (the second of a service shares all its blocks)."""
    return [TicketView(number=3007, service_id="chung-thuc", issued_at=issued_at, priority=True,
                       priority_group="khuyet-tat", people_ahead=2, est_wait_min=9),
            TicketView(number=3008, service_id="chung-thuc", issued_at=issued_at, people_ahead=3, est_wait_min=12),
            TicketView(number=1001, service_id="ho-tich", issued_at=issued_at, people_ahead=0, est_wait_min=0),
            TicketView(number=1002, service_id="ho-tich", issued_at=issued_at, people_ahead=1, est_wait_min=4)]


def print_all(printer: FakePrinter, renderer: TicketRenderer, tickets: list[TicketView]) -> list:
    out = []
    for view in tickets:
        image, qr, blocks = renderer.render_for_print(view)
        printer.print_image(image, label=str(view.number), qr=qr, blocks=blocks)
        out.append(image)
    return out


@pytest.mark.parametrize("width", [576, 384])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_tickets_printed_from_stored_blocks_are_the_rendered_tickets_pixel_for_pixel(site, issued_at, width, encoding):
    renderer = TicketRenderer(site, TicketLayout(width_px=width))
    printer = FakePrinter(width_px=width, options=ENCODINGS[encoding])
    tickets = print_all(printer, renderer, views(issued_at))
    # the fake printer keeps what the jobs stored and prints the references from it
    nv: dict = {}
    decoded = [decode_job(job, paper_px=width, nv=nv) for job in printer.jobs]
    for job, ticket in zip(decoded, tickets, strict=True):
        assert not job.nv_missing and job.inits == 1 and job.cuts == 1
        assert same_pixels(job.image(), ticket)
        other = ticket.copy()  # and the comparison can fail: one dot of the header changed is seen
        other.putpixel((width // 2, 20), 0 if other.getpixel((width // 2, 20)) else 255)
        assert not same_pixels(job.image(), other)
    # the first ticket stored header, priority box, service, rule, QR caption, footer; the second
    # ticket of the same service stores nothing, the first of another service only its name
    assert [len(j.nv_defines) for j in decoded] == [6, 0, 1, 0]
    assert printer.nv_writes == 7 and set(printer.nv) == set(nv)
    assert len(printer.jobs[1]) < 0.8 * len(FakePrinter(width_px=width, options=JobOptions(
        center_bands=ENCODINGS[encoding].center_bands)).build(tickets[1]))
    assert [same_pixels(a, b) for a, b in zip(printer.images(), tickets, strict=True)] == [True] * 4


@pytest.mark.parametrize("width", [576, 384])
def test_with_a_printer_drawn_qr_the_rest_of_the_ticket_is_pixel_for_pixel(site, issued_at, width):
    renderer = TicketRenderer(site, TicketLayout(width_px=width))
    printer = FakePrinter(width_px=width, options=JobOptions(nv_graphics=True, native_qr=True, center_bands=True))
    tickets = print_all(printer, renderer, views(issued_at))
    nv: dict = {}
    for job_bytes, ticket, view in zip(printer.jobs, tickets, views(issued_at), strict=True):
        job = decode_job(job_bytes, paper_px=width, nv=nv)
        _, qr, _ = renderer.render_for_print(view)
        (code,) = job.qr_codes
        assert code.data == qr.url and not job.nv_missing
        printed = job.image()
        blank = (qr.left, qr.top, qr.left + qr.size, qr.top + qr.size)
        want = ticket.copy()
        for img in (printed, want):
            img.paste(255, blank)
        assert same_pixels(printed, want)


def test_an_unchanged_header_is_not_stored_again_after_a_restart_a_changed_one_is(site, issued_at, tmp_path):
    cfg = PrinterConfig(backend="fake", nv_graphics=True)
    renderer = TicketRenderer(site, TicketLayout())
    first = open_printer(cfg, width_px=576, state_dir=tmp_path)
    print_all(first, renderer, views(issued_at)[:2])
    assert first.nv_writes == 6 and (tmp_path / NV_RECORD_FILE).exists()

    # ticketd restarts, same printer (its NV memory kept): nothing is written, every block is referred to
    again = open_printer(cfg, width_px=576, state_dir=tmp_path)
    again.nv = dict(first.nv)
    print_all(again, renderer, views(issued_at)[:2])
    assert again.nv_writes == 0
    assert all(same_pixels(a, b) for a, b in zip(again.images(), [renderer.render(v) for v in views(issued_at)[:2]],
                                                 strict=True))
    header_kc = NvGraphicsRecord(tmp_path / NV_RECORD_FILE, printer=printer_identity(cfg, 576)).key_code("header")

    # the centre's name changes: only the header is written again, under the same key code
    renamed = site.model_copy(update={"site": site.site.model_copy(update={"name_vi": "Trung tâm xã Tường Linh mới"})})
    new_renderer = TicketRenderer(renamed, TicketLayout())
    after = open_printer(cfg, width_px=576, state_dir=tmp_path)
    after.nv = dict(first.nv)
    printed = print_all(after, new_renderer, views(issued_at)[:2])
    job = decode_job(after.jobs[0], paper_px=576, nv=dict(first.nv))
    assert job.nv_defines == [header_kc] and after.nv_writes == 1
    assert same_pixels(job.image(), printed[0])
    assert NvGraphicsRecord(tmp_path / NV_RECORD_FILE, printer=printer_identity(cfg, 576)).key_code("header") == header_kc


def test_no_more_than_the_daily_writes_then_raster_and_the_rest_is_stored_the_next_day(site, issued_at):
    day = ["2026-11-23"]
    record = NvGraphicsRecord(today=lambda: day[0], max_writes_per_day=3)
    renderer = TicketRenderer(site, TicketLayout())
    printer = FakePrinter(options=JobOptions(nv_graphics=True), nv_record=record)
    tickets = print_all(printer, renderer, views(issued_at))
    assert printer.nv_writes == 3  # the other blocks go as raster: the paper is the same
    assert all(same_pixels(a, b) for a, b in zip(printer.images(), tickets, strict=True))
    day[0] = "2026-11-24"
    print_all(printer, renderer, views(issued_at))
    assert printer.nv_writes == 6
    print_all(printer, renderer, views(issued_at))
    assert printer.nv_writes == 6  # still the 24th: the last block waits
    day[0] = "2026-11-25"
    print_all(printer, renderer, views(issued_at))
    assert printer.nv_writes == 7  # every block stored: no more writes
    print_all(printer, renderer, views(issued_at))
    assert printer.nv_writes == 7
    assert all(same_pixels(a, b) for a, b in zip(printer.images()[-4:], tickets, strict=True))


def test_a_replaced_printer_lacks_the_blocks_until_the_record_is_forgotten(site, issued_at):
    """NV graphics survive the printer's power cycle (download graphics would not, and some
    references say ``ESC @``, which starts every job, clears those); a *new* printer has none."""
    record = NvGraphicsRecord()
    renderer = TicketRenderer(site, TicketLayout())
    print_all(FakePrinter(options=JobOptions(nv_graphics=True), nv_record=record), renderer, views(issued_at)[:1])
    new = FakePrinter(options=JobOptions(nv_graphics=True), nv_record=record)
    print_all(new, renderer, views(issued_at)[:1])
    assert decode_job(new.jobs[0], paper_px=576, nv={}).nv_missing  # the header would be missing on paper
    record.forget()  # what deleting the record after installing another printer does (docs/printers.md)
    print_all(new, renderer, views(issued_at)[:1])
    job = decode_job(new.jobs[1], paper_px=576, nv={})
    assert not job.nv_missing and len(job.nv_defines) == 6
    assert same_pixels(job.image(), renderer.render(views(issued_at)[0]))


def test_nv_graphics_commands_have_the_documented_bytes():
    # GS ( L pL pH m=48 fn=67 a=48 kc1 kc2 b=1 xL xH yL yH c=49 d1..dk (Epson ESC/POS, fn 67)
    assert nv_define(b"X!", 2, b"\x80\x01\xff\x00") == (b"\x1d(L\x0f\x00" + b"\x30\x43\x30X!\x01\x10\x00\x02\x00\x31"
                                                       + b"\x80\x01\xff\x00")
    # GS ( L pL pH m=48 fn=69 kc1 kc2 x=1 y=1
    assert nv_print(b"X!") == b"\x1d(L\x06\x00\x30\x45X!\x01\x01"
    # over 65,535 bytes: GS 8 L with a 4-byte length; the decoder reads both back
    big = nv_define(b"X#", 72, bytes([0xAA]) * 72 * 1000)
    assert big.startswith(b"\x1d8L") and int.from_bytes(big[3:7], "little") == len(big) - 7
    nv: dict = {}
    decode_job(big + nv_print(b"X#"), paper_px=576, nv=nv)
    assert nv[b"X#"].size == (576, 1000)
    with pytest.raises(ValueError):
        nv_define(b"X\x00", 1, b"\x00")


def test_a_record_about_another_printer_is_forgotten(site, issued_at, tmp_path):
    renderer = TicketRenderer(site, TicketLayout())
    here = PrinterConfig(backend="sim", sim_dir=tmp_path / "a", nv_graphics=True)
    first = open_printer(here, width_px=576, state_dir=tmp_path)
    print_all(first, renderer, views(issued_at)[:1])
    assert first.nv_writes == 6
    # the config names another printer: its NV memory holds none of our blocks
    other = open_printer(here.model_copy(update={"sim_dir": tmp_path / "b"}), width_px=576, state_dir=tmp_path)
    print_all(other, renderer, views(issued_at)[:1])
    assert other.nv_writes == 6 and not decode_job(other.jobs[0], paper_px=576, nv={}).nv_missing


@pytest.mark.parametrize("record", ["[]", "{not json", '{"version": 1, "graphics": {"header": "x"}}',
                                    '{"version": 1, "graphics": {"header": {"kc": 7, "sha256": "a"}}}', "null"])
def test_a_damaged_record_means_every_block_is_stored_again_and_tickets_still_print(site, issued_at, tmp_path, record):
    renderer = TicketRenderer(site, TicketLayout())
    cfg = PrinterConfig(backend="sim", sim_dir=tmp_path / "a", nv_graphics=True)
    first = open_printer(cfg, width_px=576, state_dir=tmp_path)
    print_all(first, renderer, views(issued_at)[:1])
    record_file = tmp_path / NV_RECORD_FILE
    text = record.replace('"version": 1', f'"version": {json.loads(record_file.read_text())["version"]}')
    record_file.write_text(text)
    again = open_printer(cfg, width_px=576, state_dir=tmp_path)
    print_all(again, renderer, views(issued_at)[:1])
    assert again.nv_writes == 6 and not decode_job(again.jobs[0], paper_px=576, nv={}).nv_missing
