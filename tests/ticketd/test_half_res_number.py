"""The big number at half resolution (``[printer] half_res_number``): drawn in 2 x 2-dot cells, sent as
quadruple rasters (``GS v 0`` m = 3), a quarter of its bytes; the paper is the rendered ticket, dot for dot,
and the number keeps its size and place."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops

from ticketd.config import PrinterConfig, TicketLayout
from ticketd.escpos_decode import decode_job, split_commands
from ticketd.escpos_job import JobOptions, TicketBlock, build_ticket_job
from ticketd.printer import FakePrinter
from ticketd.render import TicketRenderer, TicketView

ENCODINGS = {
    "half": JobOptions(half_res_number=True),
    "half-centred": JobOptions(half_res_number=True, center_bands=True),
    "half-short-rasters": JobOptions(half_res_number=True, raster_max_lines=24, white_bands="raster"),
    "half-every-capability": JobOptions(half_res_number=True, center_bands=True, native_qr=True, nv_graphics=True),
}


def same_pixels(a, b) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def ink_box(img: Image.Image) -> tuple[int, int, int, int] | None:
    return ImageChops.invert(img.convert("L")).getbbox()


def views(issued_at) -> list[TicketView]:
    return [TicketView(number=3007, service_id="chung-thuc", issued_at=issued_at, priority=True,
                       priority_group="khuyet-tat", people_ahead=2, est_wait_min=9),
            TicketView(number=1048, service_id="ho-tich", issued_at=issued_at, people_ahead=11, est_wait_min=70),
            TicketView(number=2999, service_id="dat-dai", issued_at=issued_at, people_ahead=0, est_wait_min=0)]


def quadruple_rasters(job: bytes) -> list[bytes]:
    return [c for c in split_commands(job)[0] if c[:3] == b"\x1dv0" and c[3] in (3, 51)]


@pytest.mark.parametrize("width", [576, 384])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_a_half_resolution_number_decodes_back_to_the_rendered_ticket_pixel_for_pixel(site, issued_at, width, encoding):
    options = ENCODINGS[encoding]
    renderer = TicketRenderer(site, TicketLayout(width_px=width), half_res_number=True)
    printer = FakePrinter(width_px=width, options=options)
    tickets = []
    for view in views(issued_at):
        image, qr, blocks = renderer.render_for_print(view)
        printer.print_image(image, label=str(view.number), qr=qr, blocks=blocks)
        tickets.append((image, qr, blocks))
    nv: dict = {}
    for job_bytes, (image, qr, blocks) in zip(printer.jobs, tickets, strict=True):
        job = decode_job(job_bytes, paper_px=width, nv=nv)
        assert job.inits == 1 and job.cuts == 1 and not job.nv_missing
        # the decoder draws a printer-drawn QR as the printer does: the whole ticket is compared
        assert same_pixels(job.image(), image)
        other = image.copy()  # and the comparison can fail: one dot of the number's cells changed is seen
        number = next(b for b in blocks if b.key == "number")
        x, y = width // 2, number.top + number.height // 2
        other.putpixel((x, y), 0 if other.getpixel((x, y)) else 255)
        assert not same_pixels(job.image(), other)
        # the number went as quadruple rasters, no taller on paper than the printer takes
        quads = quadruple_rasters(job_bytes)
        assert quads and all(2 * (c[6] | c[7] << 8) <= options.raster_max_lines for c in quads)
        assert max(r.height for r in job.rasters) <= options.raster_max_lines
        # and costs a good deal less than at full resolution (the same picture, sent as normal rasters)
        plain = build_ticket_job(image, qr=qr, options=JobOptions(
            center_bands=options.center_bands, native_qr=options.native_qr, white_bands=options.white_bands,
            raster_max_lines=options.raster_max_lines), blocks=blocks)
        assert not quadruple_rasters(plain)
        assert same_pixels(decode_job(plain, paper_px=width).image(), image)
        if not options.nv_graphics:
            assert len(job_bytes) < len(plain) - (3000 if width == 576 else 1500)


@pytest.mark.parametrize("width", [576, 384])
def test_the_number_keeps_its_size_and_place_only_its_edges_are_coarser(site, issued_at, width):
    layout = TicketLayout(width_px=width)
    normal, half = TicketRenderer(site, layout), TicketRenderer(site, layout, half_res_number=True)
    for view in views(issued_at):
        a, _, blocks_a = normal.render_for_print(view)
        b, _, blocks_b = half.render_for_print(view)
        assert a.size == b.size  # nothing else on the ticket moves
        assert [(k.key, k.top, k.height) for k in blocks_a] == [(k.key, k.top, k.height) for k in blocks_b]
        (na,) = (k for k in blocks_a if k.key == "number")
        (nb,) = (k for k in blocks_b if k.key == "number")
        assert nb.half_res and not na.half_res
        box_a = ink_box(a.crop((0, na.top, width, na.top + na.height)))
        box_b = ink_box(b.crop((0, nb.top, width, nb.top + nb.height)))
        assert box_a is not None and box_b is not None
        assert all(abs(p - q) <= 1 for p, q in zip(box_a, box_b, strict=True)), (box_a, box_b)
        # the rest of the ticket is the same, dot for dot
        for img in (a, b):
            img.paste(255, (0, na.top, width, na.top + na.height))
        assert same_pixels(a, b)
        # and the number itself is made of 2 x 2-dot cells counted from its block's top
        cells = half.render_for_print(view)[0].crop((0, nb.top, width, nb.top + nb.height))
        small = cells.resize((width // 2, (nb.height + 1) // 2), Image.Resampling.NEAREST)
        big = small.resize((width, 2 * small.height), Image.Resampling.NEAREST).crop((0, 0, width, nb.height))
        assert same_pixels(big, cells)


def test_a_printer_without_the_capability_gets_no_quadruple_raster_and_the_same_paper(site, issued_at):
    image, qr, blocks = TicketRenderer(site, half_res_number=True).render_for_print(views(issued_at)[0])
    printer = FakePrinter(options=JobOptions(center_bands=True))
    printer.print_image(image, qr=qr, blocks=blocks)
    assert not quadruple_rasters(printer.jobs[0])
    assert same_pixels(decode_job(printer.jobs[0], paper_px=576).image(), image)


def test_a_block_said_to_be_in_cells_that_is_not_goes_at_full_resolution(site, issued_at):
    image, qr, blocks = TicketRenderer(site).render_for_print(views(issued_at)[0])  # a number at full resolution
    claimed = tuple(TicketBlock(b.key, b.top, b.height, b.shared, half_res=b.key == "number") for b in blocks)
    job = build_ticket_job(image, qr=qr, options=JobOptions(half_res_number=True), blocks=claimed)
    assert not quadruple_rasters(job)
    assert same_pixels(decode_job(job, paper_px=576).image(), image)


def test_the_capability_is_a_printer_setting_off_by_default_and_reaches_the_job():
    assert PrinterConfig().half_res_number is False and JobOptions().half_res_number is False
    assert PrinterConfig(half_res_number=True).job_options().half_res_number is True


@settings(max_examples=120, deadline=None)
@given(half_bytes=st.integers(1, 6), lines=st.lists(st.one_of(st.just(-1), st.integers(0, 2**32)), min_size=1,
                                                    max_size=40),
       above=st.integers(0, 9), odd=st.booleans(), max_lines=st.integers(2, 40), center=st.booleans(),
       white_bands=st.sampled_from(["feed", "raster"]))
def test_any_picture_in_cells_prints_as_it_is_drawn(half_bytes, lines, above, odd, max_lines, center, white_bands):
    """Whatever the cells, gaps, block heights and centring: the decoded job is the picture, dot for dot."""
    width = half_bytes * 16
    cells = Image.new("1", (width // 2, len(lines)), 255)
    for y, seed in enumerate(lines):
        if seed >= 0:  # -1: a white cell line; else a line of random cells
            rnd = random.Random(seed)
            for x in range(cells.width):
                if rnd.random() < 0.3:
                    cells.putpixel((x, y), 0)
    block = cells.resize((width, 2 * len(lines)), Image.Resampling.NEAREST)
    if odd:  # a block of an odd height: its last line is cut (and must stay white)
        block = block.crop((0, 0, width, block.height - 1))
    img = Image.new("1", (width, above + block.height + 3), 255)
    img.paste(0, (0, 0, width // 3, min(above, 2)))  # some ink above the block, at full resolution
    img.paste(block, (0, above))
    options = JobOptions(half_res_number=True, raster_max_lines=max_lines, center_bands=center, white_bands=white_bands)
    job_bytes = build_ticket_job(img, options=options, blocks=(TicketBlock("number", above, block.height, False, True),))
    job = decode_job(job_bytes, paper_px=width)
    assert job.y == img.height
    if job.placed:
        assert same_pixels(job.image(), img)
    assert all(r.height <= max_lines for r in job.rasters)
    last_white = cells.crop((0, cells.height - 1, cells.width, cells.height)).getextrema() == (255, 255)
    if ink_box(cells) is not None and (not odd or last_white):  # whole cells: they went at half resolution
        assert quadruple_rasters(job_bytes)


@pytest.mark.parametrize("width", [576, 384])
def test_the_test_print_shows_whether_the_printer_enlarges_a_quadruple_raster(site, issued_at, width):
    """With half_res_number the test print sends one 8 mm box as a quadruple raster under the same box at
    full resolution: on paper they match only if the printer enlarges m = 3 as we assume."""
    from ticketd.render import CHECK_DOTS

    plain = TicketRenderer(site, TicketLayout(width_px=width)).render_test_for_print(issued_at)
    assert plain[1] == ()  # no capability, no check: the test print as before
    image, blocks = TicketRenderer(site, TicketLayout(width_px=width), half_res_number=True).render_test_for_print(issued_at)
    (check,) = blocks
    assert check.half_res and check.height == CHECK_DOTS
    bottom = check.top  # the full-resolution box ends where the white gap above the check begins
    while ink_box(image.crop((0, bottom - 1, width, bottom))) is None:
        bottom -= 1
    above = ink_box(image.crop((0, bottom - CHECK_DOTS, width, bottom)))
    half = ink_box(image.crop((0, check.top, width, check.top + CHECK_DOTS)))
    assert above is not None and half is not None
    assert (above[0], above[2], above[3] - above[1]) == (half[0], half[2], CHECK_DOTS) == (half[0], half[2], half[3])
    job_bytes = FakePrinter(width_px=width, options=JobOptions(half_res_number=True)).build(image, blocks=blocks)
    quads = quadruple_rasters(job_bytes)
    assert len(quads) == 1 and (quads[0][6] | quads[0][7] << 8) == CHECK_DOTS // 2  # 32 lines sent, 64 printed
    assert same_pixels(decode_job(job_bytes, paper_px=width).image(), image)
    # a printer that ignored m = 3 would print the lower box a quarter of its size: the check would show it
    shrunk = decode_job(job_bytes.replace(quads[0][:4], quads[0][:3] + b"\x00"), paper_px=width).image()
    assert not same_pixels(shrunk, image)
