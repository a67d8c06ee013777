"""A citizen's ticket: readable, complete Vietnamese, the right facts, the printer's width."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PIL import Image, ImageOps

from ticketd.config import TEXTS_EN, TEXTS_VI, TicketLayout, TicketTexts
from ticketd.glyphs import font_charset, missing_glyphs
from ticketd.render import TicketRenderer, TicketView, render_ticket, wrap_text
from xephang.fonts import font_path
from xephang.site import Site

STACKED_WORDS = ["tối", "Quầy", "Đăng ký hộ tịch", "Chứng thực", "ưu tiên"]


def ink_rows(img: Image.Image) -> list[int]:
    """Rows that carry at least one black dot."""
    w, h = img.size
    px = img.load()
    return [y for y in range(h) if any(px[x, y] == 0 for x in range(w))]


@pytest.mark.parametrize("weight", ["regular", "semibold", "bold", "black"])
def test_font_has_every_stacked_vietnamese_letter(weight):
    for word in STACKED_WORDS:
        assert missing_glyphs(word, font_path(weight)) == [], word
    # and the check can fail: a Han character is not in Be Vietnam Pro
    assert missing_glyphs("Quầy 中", font_path(weight)) == ["中"]


def test_font_check_works_on_decomposed_input():
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Chứng thực")
    assert nfd != "Chứng thực"
    assert missing_glyphs(nfd, font_path("bold")) == []
    assert ord("ự") in font_charset(font_path("bold"))


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_configured_string_prints_whole(site, lang, issued_at):
    r = TicketRenderer(site, TicketLayout(lang=lang))
    view = TicketView(number=1023, service_id="ho-tich", issued_at=issued_at, priority=True,
                      priority_group="cao-tuoi", people_ahead=4, est_wait_min=12)
    assert r.missing_glyphs(view) == {}
    assert TEXTS_VI.title in r.printed_strings() or lang == "en"


def test_missing_glyph_report_names_the_string(site):
    r = TicketRenderer(site, TicketLayout(texts=TicketTexts(footer="Cảm ơn 谢谢")))
    assert r.missing_glyphs() == {"Cảm ơn 谢谢": ["谢"]}


@pytest.mark.parametrize("width", [576, 384])
def test_ticket_is_one_bit_at_the_printer_width_with_the_number_very_large(site, width, issued_at):
    img = render_ticket(TicketView(number=2005, service_id="dat-dai", issued_at=issued_at),
                        site=site, layout=TicketLayout(width_px=width))
    assert img.mode == "1" and img.width == width
    assert set(img.get_flattened_data()) <= {0, 255}
    # the number block: the tallest run of consecutive inked rows, at least a quarter of the width
    rows = ink_rows(img)
    runs, start = [], rows[0]
    for a, b in zip(rows, rows[1:], strict=False):
        if b != a + 1:
            runs.append(a - start + 1)
            start = b
    runs.append(rows[-1] - start + 1)
    assert max(runs) >= width * 0.2


def test_priority_ticket_carries_the_mark_and_is_longer(site, issued_at):
    r = TicketRenderer(site)
    plain = r.render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
    prio = r.render(TicketView(number=1002, service_id="ho-tich", issued_at=issued_at,
                               priority=True, priority_group="co-thai"))
    assert prio.height > plain.height + 40
    assert "Phụ nữ có thai" in r.printed_strings()


def test_time_is_printed_in_vietnam_time(site):
    r = TicketRenderer(site)
    utc = datetime(2026, 11, 23, 1, 5, tzinfo=UTC)  # 08:05 in Hà Nội
    assert r.issued_line(TicketView(number=1001, service_id="ho-tich", issued_at=utc)) == \
        "Giờ lấy số: Thứ Hai, 23/11/2026 08:05"


def test_people_ahead_and_wait_lines(site, issued_at):
    r = TicketRenderer(site)
    v = TicketView(number=1001, service_id="ho-tich", issued_at=issued_at, people_ahead=3, est_wait_min=7.2)
    assert r.queue_lines(v) == ["Số người đang chờ trước bạn: 3", "Thời gian chờ dự kiến: khoảng 8 phút"]
    v0 = TicketView(number=1001, service_id="ho-tich", issued_at=issued_at, people_ahead=0, est_wait_min=0)
    assert r.queue_lines(v0)[1] == TEXTS_VI.wait_none
    en = TicketRenderer(site, TicketLayout(lang="en"))
    assert en.queue_lines(v)[0] == TEXTS_EN.people_ahead.format(n=3)


@pytest.mark.parametrize(("low", "high", "open_", "vi", "en"), [
    (20, 35, False, "Thời gian chờ dự kiến: khoảng 20–35 phút", "Estimated wait: about 20–35 min"),
    (0, 10, False, "Thời gian chờ dự kiến: dưới 10 phút", "Estimated wait: under 10 min"),
    (60, None, True, "Thời gian chờ dự kiến: hơn 60 phút", "Estimated wait: more than 60 min"),
    (0, None, True, "Thời gian chờ dự kiến: chưa ước tính được", "Estimated wait: not known yet"),
])
def test_the_ticket_prints_the_hubs_range(site, issued_at, low, high, open_, vi, en):
    v = TicketView(number=1001, service_id="ho-tich", issued_at=issued_at, people_ahead=3, est_wait_min=27.0,
                   est_wait_low_min=low, est_wait_high_min=high, est_wait_open=open_)
    assert TicketRenderer(site).queue_lines(v)[1] == vi
    assert TicketRenderer(site, TicketLayout(lang="en")).queue_lines(v)[1] == en
    assert not TicketRenderer(site).missing_glyphs(v)


@pytest.mark.parametrize("width", [576, 384])
def test_the_lines_a_citizen_reads_are_at_least_10_pt(site, issued_at, width):
    """Time, people ahead, wait and footer: a capital's ink at least as tall as a 10-pt font's at 203 dpi."""
    from ticketd.render import READ_PX, _font

    r = TicketRenderer(site, TicketLayout(width_px=width))
    ten_pt = 10 / 72 * 203
    assert ten_pt <= READ_PX
    cap_10pt = _font("regular", round(ten_pt)).getbbox("H", anchor="ls")
    for text in ("Giờ lấy số: 08:05", "Số người đang chờ trước bạn: 3", r.texts.footer):
        block = r._text(text, "regular", READ_PX, readable=True)
        bbox = ImageOps.invert(block.convert("L")).getbbox()
        assert bbox is not None and bbox[3] - bbox[1] >= -cap_10pt[1], text
    # the ticket's own blocks use that size: the footer block is as tall as a READ_PX line or more
    assert r._footer.height >= -cap_10pt[1]


def test_qr_url_template_fills_site_service_and_number(site, issued_at):
    layout = TicketLayout(qr_url="http://hub.local/q/{site}/{service}/{number}")
    r = TicketRenderer(site, layout)
    v = TicketView(number=1023, service_id="ho-tich", issued_at=issued_at)
    assert r.qr_url(v) == "http://hub.local/q/tuong-linh/ho-tich/1023"
    # default: the service's procedure guide
    assert TicketRenderer(site).qr_url(v).endswith("linhvuc=ho-tich")
    # the QR is actually drawn: removing it makes the ticket shorter
    no_qr = TicketRenderer(site, TicketLayout(show_qr=False)).render(v)
    assert r.render(v).height > no_qr.height + 150


def test_a_long_service_name_wraps_and_never_overflows(site, issued_at):
    data = site.model_dump()
    data["services"][0]["name_vi"] = "Đăng ký hộ tịch, khai sinh, kết hôn, khai tử và Chứng thực bản sao " * 1
    data["services"][0]["name_vi"] = data["services"][0]["name_vi"].strip()[:80]
    long_site = Site.model_validate(data)
    for width in (576, 384):
        r = TicketRenderer(long_site, TicketLayout(width_px=width))
        img = r.render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
        assert img.width == width
        # margins stay white: nothing drawn into the outer 4 px columns
        px = img.load()
        assert all(px[x, y] == 255 for y in range(img.height) for x in (0, 1, 2, 3, width - 1, width - 2))


def test_wrap_splits_a_monster_word():
    from ticketd.render import _font

    font = _font("bold", 30)
    lines = wrap_text("Chứng" * 40, font, 200)
    assert len(lines) > 1 and all(font.getlength(line) <= 200 for line in lines)
    assert "".join(lines) == "Chứng" * 40


def test_renderer_caches_fixed_blocks(site, issued_at):
    r = TicketRenderer(site)
    r.render(TicketView(number=1001, service_id="ho-tich", issued_at=issued_at))
    blocks = dict(r._blocks)
    r.render(TicketView(number=1002, service_id="ho-tich", issued_at=issued_at))
    assert r._blocks == blocks  # the second ticket of a service draws nothing new but its own lines


def test_test_print_shows_every_vietnamese_mark(site, issued_at):
    img = TicketRenderer(site, TicketLayout(width_px=384)).render_test(issued_at)
    assert img.width == 384 and img.height > 200


def test_the_config_reference_in_the_docs_matches_the_models():
    from ticketd.docgen import DOC, config_reference, current_section

    assert current_section(DOC.read_text()) == config_reference(), \
        "docs/ticketd.md is stale: run .venv/bin/python -m ticketd.docgen --write"


def test_the_example_in_the_docs_is_valid_settings():
    import re
    import tomllib

    from ticketd.docgen import DOC
    from ticketd.main import TicketdSettings

    block = re.search(r"## Example\s+```toml\n(.*?)```", DOC.read_text(), re.S).group(1)
    s = TicketdSettings(**tomllib.loads(block))
    assert s.printer.backend == "usb" and len(s.hardware.buttons) == 4


def test_balanced_wrap_keeps_the_line_count_and_avoids_a_lone_word():
    from ticketd.render import _font

    font = _font("bold", 24)
    text = "Trung tâm Phục vụ hành chính công xã Tường Linh"
    greedy = wrap_text(text, font, 552)
    balanced = wrap_text(text, font, 552, balance=True)
    assert len(balanced) == len(greedy) == 2
    assert " ".join(balanced) == text
    assert min(font.getlength(x) for x in balanced) > 0.6 * max(font.getlength(x) for x in balanced)


LIVE = "http://xephang.local/q/{day}/{number}/{id}/{token}"


def test_the_qr_caption_says_what_the_qr_opens(site, issued_at):
    """The live page's QR was captioned "scan for the procedure guide" (the guide's words), and the
    hall's Wi-Fi name was never printed by default: the page is on the centre's LAN, which a phone on
    mobile data does not reach."""
    key = b"k" * 32
    v = TicketView(number=1009, service_id="ho-tich", issued_at=issued_at, ticket_id=1796689796, day="2026-12-08")
    guide = TicketRenderer(site)
    assert not guide.qr_is_live(v) and guide.qr_caption(False) == "Quét mã QR để xem hướng dẫn thủ tục"
    live = TicketRenderer(site, TicketLayout(qr_url=LIVE), link_secret=key)
    assert live.qr_is_live(v) and live.qr_caption(True) == "Quét mã QR để theo dõi lượt gọi và xem hướng dẫn thủ tục"
    wifi = TicketRenderer(site, TicketLayout(qr_url=LIVE, wifi_name="TTPVHCC-Tuong-Linh"), link_secret=key)
    assert wifi.qr_caption(True) == "Kết nối Wi-Fi «TTPVHCC-Tuong-Linh» rồi quét mã QR để theo dõi lượt gọi"
    en = TicketRenderer(site, TicketLayout(qr_url=LIVE, wifi_name="Hall", lang="en"), link_secret=key)
    assert en.qr_caption(True) == "Join the Wi-Fi «Hall», then scan the QR code to follow your turn"
    # a technician's own caption (docs/web.md's way before these) is kept
    own = TicketRenderer(site, TicketLayout(qr_url=LIVE, wifi_name="Hall", texts=TicketTexts(
        qr_caption="Wi-Fi «{wifi}», quét mã để theo dõi số")), link_secret=key)
    assert own.qr_caption(True) == "Wi-Fi «Hall», quét mã để theo dõi số"
    # what is printed: the Wi-Fi line costs a wrapped line more than the plain live caption
    assert wifi.render(v).height > live.render(v).height
    # the glyph check reads the hall's own Wi-Fi name (it read a sample one): a name the font lacks is named
    odd = TicketRenderer(site, TicketLayout(qr_url=LIVE, wifi_name="Quán ☕ 5G"), link_secret=key)
    assert [s for s, miss in odd.missing_glyphs(v).items() if miss == ["☕"] and "Quán ☕ 5G" in s]


@pytest.mark.skipif(not __import__("shutil").which("tesseract"), reason="tesseract-ocr is not installed")
def test_the_wifi_caption_is_read_off_the_printed_ticket(site, issued_at, tmp_path):
    import subprocess

    r = TicketRenderer(site, TicketLayout(qr_url=LIVE, wifi_name="TTPVHCC-Tuong-Linh"), link_secret=b"k" * 32)
    img = r.render(TicketView(number=1009, service_id="ho-tich", issued_at=issued_at, ticket_id=42, day="2026-12-08"))
    img.convert("L").save(tmp_path / "t.png")
    text = subprocess.run(["tesseract", str(tmp_path / "t.png"), "-", "--psm", "6"], capture_output=True,
                          text=True, timeout=60, check=False).stdout
    assert "TTPVHCC-Tuong-Linh" in text and "Wi-Fi" in text, text
