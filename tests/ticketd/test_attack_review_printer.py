"""The dispenser against ticket layouts it cannot print well: a technician's push (or a stolen
technician laptop) and a site whose QR template fills a very long line.

Before: the texts and ``qr_url`` were ``str.format`` templates taken as they came. ``{0}`` or an
unknown field was refused at apply yet half applied (the renderer was already swapped: every
ticket after it was voided, printer-error alert); ``{datetime:>100000000}`` was applied after
freezing the dispenser 26 s and voided every ticket; a 54,000-character footer froze it 109 s
and printed 5.7 m of paper per ticket; ESC/GS bytes were taken (drawn as boxes); a QR template
that overflowed a QR code voided every ticket."""

from __future__ import annotations

import json

import pytest
from PIL import ImageChops

from tests.ticketd.test_ticketd_stories import SITE, Hall, T
from ticketd.config import TicketLayout
from ticketd.escpos_decode import decode_job
from ticketd.printer import FakePrinter
from ticketd.render import TicketRenderer, TicketView
from xephang.contract import ConfigAck, ConfigSet, decode, new_request_id
from xephang.testing import FakeBus

LAYOUTS = {
    "positional field": {"texts": {"people_ahead": "Trước bạn: {0}"}},
    "unknown field": {"texts": {"wait_range": "Chờ {low}–{max} phút"}},
    "attribute": {"texts": {"people_ahead": "{n.__class__.__mro__}"}},
    "padding": {"texts": {"issued_at": "{datetime:>100000}"}},
    "qr padding": {"qr_url": "https://xephang.local/q/{number:>9999}"},
    "cut command": {"texts": {"footer": "Cảm ơn\x1dV\x00"}},
    "drawer kick": {"texts": {"title": "\x1bp\x00\x19\xfaSỐ"}},
    "code page": {"texts": {"footer": "\x1bt\x10Cảm ơn"}},
    "newline": {"wifi_name": "TTPVHCC\nfree"},
    "direction override": {"texts": {"title": "\u202eỐS"}},
    "a roll of paper": {"texts": {"footer": "Xin chào " * 6000}},
    # the live page's signed link with no link secret on this dispenser: every ticket after it had no QR
    "live page without its secret": {"qr_url": "http://xephang.local/t/{site}/{day}/{id}/{token}"},
}


@pytest.fixture
def hall(tmp_path, fake_broker, site_file):
    h = Hall(tmp_path, fake_broker, site_file, FakePrinter(width_px=576))
    yield h
    h.close()


def push(hall: Hall, config: dict) -> ConfigAck:
    tech = FakeBus(hall.broker, site=SITE, node="tech", role="tech")
    tech.start()
    tech.publish(T.config_set("dispenser-1"), ConfigSet(request_id=new_request_id(), source="tech-1", config=config))
    hall.pump_until(lambda: bool(hall.broker.messages(T.config_ack("dispenser-1"))), timeout=5)
    return decode(ConfigAck, hall.broker.messages(T.config_ack("dispenser-1"))[-1][1])


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_a_pushed_layout_that_cannot_print_well_is_refused_and_the_next_ticket_prints_as_before(hall, layout):
    before = hall.tk.renderer.layout
    ack = push(hall, layout)
    assert ack.status == "rejected" and ack.errors
    assert hall.tk.node_config.rev == 0
    assert hall.tk.renderer.layout == before  # nothing of it half applied
    hall.press("ho-tich")
    hall.pump_until(lambda: len(hall.printer.jobs) == 1)
    hall.settle()
    (view,) = hall.tk.printed_tickets
    printed = decode_job(hall.printer.jobs[0], paper_px=576).image()
    assert ImageChops.difference(printed.convert("L"), hall.tk.renderer.render(view).convert("L")).getbbox() is None
    assert hall.tk.core.stats.failed == 0 and not hall.broker.messages(T.req("void-ticket") + "/#")
    assert "printer-error" not in hall.tk.alerts


def test_a_pushed_layout_with_its_fields_as_documented_still_applies(hall):
    texts = {"people_ahead": "Có {n} người trước bạn", "wait_range": "Chờ {low}–{high} phút",
             "qr_caption": "Wi-Fi {wifi}", "footer": "Hotline {1900 1234}"}  # printed as it is
    ack = push(hall, {"texts": texts, "wifi_name": "TTPVHCC", "qr_url": "http://x.local/q/{site}/{number}"})
    assert ack.status == "applied", ack.errors
    hall.press("ho-tich")
    hall.pump_until(lambda: len(hall.printer.jobs) == 1)
    assert hall.tk.core.stats.failed == 0


def test_a_site_qr_template_too_long_for_a_qr_code_prints_the_ticket_without_it(site, issued_at):
    """The site file's guide_url is a template too (xephang/site.py does not look inside it)."""
    service = site.services[0]
    long_guide = service.model_copy(update={"guide_url": "https://dvc.gov.vn/{number:>4000}"})
    odd_site = site.model_copy(update={"services": [long_guide, *site.services[1:]]})
    renderer = TicketRenderer(odd_site, TicketLayout())
    view = TicketView(number=1001, service_id=service.id, issued_at=issued_at, people_ahead=2)
    image, qr, blocks = renderer.render_for_print(view)
    assert qr is None and "qr" not in [b.key for b in blocks]
    assert image.height > 300  # the ticket itself is whole
    assert json.dumps([b.key for b in blocks]).count("number") == 1


def test_a_text_the_font_cannot_draw_is_named_in_the_alert(hall):
    """The alert said only "the ticket font is missing characters": which ones, and in which text,
    was in ticketd's log alone (a newcomer's walk)."""
    ack = push(hall, {"texts": {"footer": "Hotline ☎ 1900 中"}})
    assert ack.status == "applied", ack.errors
    alert = hall.tk.alerts["font-glyphs"]
    assert alert.message_vi == "Phông chữ thiếu ký tự trên vé: «☎中» trong «Hotline ☎ 1900 中»", alert
    assert alert.message_en == "Ticket font is missing characters: «☎中» in «Hotline ☎ 1900 中»"
    assert push(hall, {"texts": {"footer": "Hotline 1900"}}).status == "applied"
    assert "font-glyphs" not in hall.tk.alerts
