"""The big number printed from its glyphs kept in the printer's NV graphics memory (``[printer]
nv_digits``), placed side by side in page mode: the paper is the rendered ticket, dot for dot, the
number costs ~100 bytes instead of ~8.9 KB, and the glyphs are written within the daily NV writes."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops
from pydantic import ValidationError

from tests.ticketd.test_nv_graphics import same_pixels
from ticketd.config import PrinterConfig, TicketLayout
from ticketd.escpos_decode import decode_job, split_commands
from ticketd.escpos_job import JobOptions, PageBand, PlacedGlyph, nv_define, page_of_glyphs
from ticketd.nv_graphics import NvGraphicsRecord
from ticketd.printer import NV_RECORD_FILE, FakePrinter, open_printer
from ticketd.render import TicketRenderer, TicketView

ENCODINGS = {
    "digits": JobOptions(nv_graphics=True, nv_digits=True),
    "digits-every-capability": JobOptions(nv_graphics=True, nv_digits=True, native_qr=True, center_bands=True),
    "digits-short-rasters": JobOptions(nv_graphics=True, nv_digits=True, raster_max_lines=24, white_bands="raster"),
}
PAGE_MODE = b"\x1bL"


def views(issued_at) -> list[TicketView]:
    """Numbers of both font sizes (2999 is too wide for the largest), a priority ticket, a repeat of digits."""
    return [TicketView(number=3007, service_id="chung-thuc", issued_at=issued_at, priority=True,
                       priority_group="khuyet-tat", people_ahead=2, est_wait_min=9),
            TicketView(number=1048, service_id="ho-tich", issued_at=issued_at, people_ahead=11, est_wait_min=70),
            TicketView(number=2999, service_id="dat-dai", issued_at=issued_at, people_ahead=0, est_wait_min=0),
            TicketView(number=1001, service_id="ho-tich", issued_at=issued_at, people_ahead=1, est_wait_min=4)]


def print_all(printer: FakePrinter, renderer: TicketRenderer, tickets: list[TicketView]) -> list:
    out = []
    for view in tickets:
        image, qr, blocks = renderer.render_for_print(view)
        printer.print_image(image, label=str(view.number), qr=qr, blocks=blocks)
        out.append((image, qr))
    return out


def without_qr(img: Image.Image, qr) -> Image.Image:  # noqa: ANN001
    out = img.copy()
    if qr is not None:
        out.paste(255, (qr.left, qr.top, qr.left + qr.size, qr.top + qr.size))
    return out


@pytest.mark.parametrize("width", [576, 384])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_numbers_printed_from_stored_glyphs_are_the_rendered_tickets_pixel_for_pixel(site, issued_at, width, encoding):
    options = ENCODINGS[encoding]
    renderer = TicketRenderer(site, TicketLayout(width_px=width), nv_digits=True)
    printer = FakePrinter(width_px=width, options=options, nv_record=NvGraphicsRecord(max_writes_per_day=100))
    tickets = print_all(printer, renderer, views(issued_at) * 2)
    nv: dict = {}
    for job_bytes, (image, qr) in zip(printer.jobs, tickets, strict=True):
        job = decode_job(job_bytes, paper_px=width, nv=nv)
        assert job.pages == 1 and not job.nv_missing  # the number, from its glyphs, in one page
        (area,) = [c for c in split_commands(job_bytes)[0] if c[:2] == b"\x1bW"]
        (page,) = [img for _, _, img in job.placed if img.size == (width, area[8] | area[9] << 8)]
        ink = ImageChops.invert(page.convert("L"))
        # the area runs from the number's first inked line to its last: no white for a printer to trim
        assert ink.crop((0, 0, width, 1)).getbbox() and ink.crop((0, page.height - 1, width, page.height)).getbbox()
        if job.qr_codes:
            (code,) = job.qr_codes
            assert code.data == qr.url
        assert same_pixels(without_qr(job.image(), qr if job.qr_codes else None),
                           without_qr(image, qr if job.qr_codes else None))
        # a dot off anywhere would be seen
        other = image.copy()
        other.putpixel((width // 2, 20), 0 if other.getpixel((width // 2, 20)) else 255)
        assert not same_pixels(job.image(), other)
    # the glyphs are written once each: the second round of tickets writes nothing
    second_round = [decode_job(j, paper_px=width, nv=dict(nv)) for j in printer.jobs[4:]]
    assert [len(j.nv_defines) for j in second_round] == [0, 0, 0, 0]


@pytest.mark.parametrize("width", [576, 384])
def test_the_number_costs_a_hundred_bytes_instead_of_thousands(site, issued_at, width):
    view = views(issued_at)[1]
    blocks_only = FakePrinter(width_px=width, options=JobOptions(nv_graphics=True),
                              nv_record=NvGraphicsRecord(max_writes_per_day=100))
    digits = FakePrinter(width_px=width, options=JobOptions(nv_graphics=True, nv_digits=True),
                         nv_record=NvGraphicsRecord(max_writes_per_day=100))
    for printer, renderer in ((blocks_only, TicketRenderer(site, TicketLayout(width_px=width))),
                              (digits, TicketRenderer(site, TicketLayout(width_px=width), nv_digits=True))):
        print_all(printer, renderer, [view, view])  # the first stores, the second is the everyday ticket
    page = [c for c in split_commands(digits.jobs[1])[0]]
    start = page.index(next(c for c in page if c[:2] == PAGE_MODE))
    end = page.index(b"\x0c")
    assert sum(len(c) for c in page[start - 1:end + 1]) < 120  # GS P, ESC L, ESC W, 4 x (ESC $, GS $, fn 69), FF
    assert len(blocks_only.jobs[1]) - len(digits.jobs[1]) > (8000 if width == 576 else 3000)


def test_glyphs_count_in_the_daily_writes_and_the_number_goes_as_raster_until_all_are_stored(site, issued_at):
    day = ["2026-11-23"]
    record = NvGraphicsRecord(today=lambda: day[0], max_writes_per_day=6)
    renderer = TicketRenderer(site, TicketLayout(), nv_digits=True)
    printer = FakePrinter(options=JobOptions(nv_graphics=True, nv_digits=True), nv_record=record)
    ticket = views(issued_at)[3]  # 1001: two glyphs, "1" and "0"
    tickets = print_all(printer, renderer, [ticket, ticket])
    # the 5 shared blocks first, then "1"; "0" waits for tomorrow, and the number goes as raster
    assert printer.nv_writes == 6 and PAGE_MODE not in printer.jobs[0] + printer.jobs[1]
    day[0] = "2026-11-24"
    tickets += print_all(printer, renderer, [ticket, ticket])
    assert printer.nv_writes == 7 and PAGE_MODE in printer.jobs[2] and PAGE_MODE in printer.jobs[3]
    assert all(same_pixels(a, b) for a, (b, _) in zip(printer.images(), tickets, strict=True))


def test_a_restarted_ticketd_writes_no_glyph_again(site, issued_at, tmp_path):
    cfg = PrinterConfig(backend="fake", nv_graphics=True, nv_digits=True)
    renderer = TicketRenderer(site, TicketLayout(), nv_digits=True)
    first = open_printer(cfg, width_px=576, state_dir=tmp_path)
    print_all(first, renderer, [views(issued_at)[3]])
    assert first.nv_writes == 7 and "glyph:200:1" in (tmp_path / NV_RECORD_FILE).read_text()
    again = open_printer(cfg, width_px=576, state_dir=tmp_path)
    again.nv = dict(first.nv)
    tickets = print_all(again, renderer, [views(issued_at)[3]])
    assert again.nv_writes == 0 and PAGE_MODE in again.jobs[0]
    assert same_pixels(again.images()[0], tickets[0][0])


@pytest.mark.parametrize("width", [576, 384])
def test_every_four_digit_number_is_its_glyphs_side_by_side(site, width):
    """The renderer draws the number as one string; Be Vietnam Pro has no kerning between digits and
    whole-dot advances here, so the string is exactly its glyphs drawn alone (checked, not assumed)."""
    renderer = TicketRenderer(site, TicketLayout(width_px=width), nv_digits=True)
    sizes = set()
    for n in range(0, 10000, 101):
        number = f"{n:04d}"
        spots = renderer._number_glyphs(number, renderer._number_block(number))
        assert len(spots) == 4, number
        sizes.add(spots[0].key.split(":")[1])
    assert len(sizes) == 2  # wide numbers (0, 8, 9 …) are drawn a size smaller: a second set of glyphs


def test_a_number_that_is_not_its_glyphs_is_not_said_to_be(site):
    renderer = TicketRenderer(site, TicketLayout(), nv_digits=True)
    block = renderer._number_block("1001")
    block.putpixel((5, 5), 0)  # one dot the glyphs do not have
    assert renderer._number_glyphs("1001", block) == ()


def test_a_prefix_letter_is_a_glyph_too(site, issued_at):
    lettered = site.model_copy(update={"services": [s.model_copy(update={"prefix": "A"}) if s.id == "ho-tich" else s
                                                    for s in site.services]})
    renderer = TicketRenderer(lettered, TicketLayout(), nv_digits=True)
    printer = FakePrinter(options=JobOptions(nv_graphics=True, nv_digits=True),
                          nv_record=NvGraphicsRecord(max_writes_per_day=100))
    tickets = print_all(printer, renderer, [views(issued_at)[1]])
    assert PAGE_MODE in printer.jobs[0]
    assert any(k.startswith("glyph:") and k.endswith(":A") for k in printer.nv_record.graphics)
    assert same_pixels(printer.images()[0], tickets[0][0])


def test_half_resolution_or_no_nv_graphics_are_refused_with_nv_digits():
    with pytest.raises(ValidationError, match="needs nv_graphics"):
        PrinterConfig(nv_digits=True)
    with pytest.raises(ValidationError, match="choose one"):
        PrinterConfig(nv_graphics=True, nv_digits=True, half_res_number=True)
    assert PrinterConfig(nv_graphics=True, nv_digits=True).job_options().nv_digits


@pytest.mark.parametrize("width", [576, 384])
def test_the_test_print_shows_a_number_as_raster_and_from_its_glyphs(site, issued_at, width):
    renderer = TicketRenderer(site, TicketLayout(width_px=width), nv_digits=True)
    image, blocks = renderer.render_test_for_print(issued_at)
    (check,) = [b for b in blocks if b.key == "nv-digits-check"]
    # the two copies of the number are the same dots, one right under the other
    copy = image.crop((0, check.top, width, check.top + check.height))
    above = image.crop((0, check.top - check.height - renderer._s(6), width, check.top - renderer._s(6)))
    assert same_pixels(copy, above)
    printer = FakePrinter(width_px=width, options=JobOptions(nv_graphics=True, nv_digits=True))
    printer.print_image(image, label="test", blocks=blocks)
    job = decode_job(printer.jobs[0], paper_px=width, nv={})
    assert job.pages == 1 and same_pixels(job.image(), image)


def test_page_mode_commands_have_the_documented_bytes():
    band = PageBand(top=0, height=150, glyphs=(PlacedGlyph(key_code=b"Y!", x=62, bottom=149),
                                               PlacedGlyph(key_code=b"Y\"", x=151, bottom=150)))
    assert page_of_glyphs(band, 576) == (
        b"\x1dP\xcb\xcb"  # GS P 203 203: a horizontal and a vertical unit of one dot
        + b"\x1bL"  # ESC L: page mode
        + b"\x1bW\x00\x00\x00\x00\x40\x02\x96\x00"  # ESC W: x0 = y0 = 0, 576 x 150 dots
        + b"\x1b$\x3e\x00" + b"\x1d$\x95\x00" + b"\x1d(L\x06\x00\x30\x45Y!\x01\x01"  # x 62, bottom at 149, fn 69
        + b"\x1b$\x97\x00" + b"\x1d$\x96\x00" + b"\x1d(L\x06\x00\x30\x45Y\"\x01\x01"
        + b"\x0c")  # FF: print the page, back to standard mode
    # a glyph 67 dots wide is defined 67 wide (its last byte's spare bits are not part of it)
    assert nv_define(b"Y!", 9, bytes(9 * 2), width_dots=67)[11:13] == (67).to_bytes(2, "little")


def test_the_decoder_puts_a_page_graphic_with_its_bottom_on_the_print_position_and_feeds_the_area():
    """How page mode is assumed to print (docs/printers.md): a stored graphic's bottom-left corner on
    the print position, what falls outside the area is not printed, FF moves the paper by the area's
    height, ESC S drops the page."""
    bar = nv_define(b"Y!", 1, b"\xff" * 4, width_dots=8)  # 8 x 4 dots, all black
    glyph = b"\x1d(L\x06\x00\x30\x45Y!\x01\x01"
    area = b"\x1dP\xcb\xcb\x1bL\x1bW\x00\x00\x00\x00\x10\x00\x0a\x00"  # 16 x 10 dots
    job = decode_job(bar + area + b"\x1b$\x04\x00\x1d$\x06\x00" + glyph + b"\x1d$\x02\x00" + glyph + b"\x0c"
                     + b"\x1bL\x1bW\x00\x00\x00\x00\x10\x00\x0a\x00\x1d$\x0a\x00" + glyph + b"\x1bS",
                     paper_px=16)
    img = job.image()
    assert job.pages == 1 and img.size == (16, 10)  # the second page was dropped
    rows = ["".join("#" if img.getpixel((x, y)) == 0 else "." for x in range(16)) for y in range(10)]
    assert rows == ["............####",  # the second glyph: the position moved past the first, bottom at line 2,
                    "............####",  # cut at the area's top and right edge
                    "....########....",  # the first: x 4, bottom at line 6
                    "....########....",
                    "....########....",
                    "....########....",
                    "................", "................", "................", "................"]
