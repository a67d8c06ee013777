"""What the hall sees: pictures of the board in each scenario, checked by region and glyph."""

from __future__ import annotations

from pathlib import Path

import pygame
import pytest

from displayd.config import BoardConfig, BoardLabels
from displayd.model import BoardEvent, BoardModel, Call, CounterView, HallSnapshot
from displayd.render import BoardRenderer, Frame, TextBox
from tests.displayd.conftest import NOW, hall_snapshot, live_board
from xephang.fonts import font_path

HC = BoardConfig().resolved_theme()  # the default high-contrast theme


def called(rev: int, number: str, counter: int, service: str = "ho-tich") -> BoardEvent:
    return BoardEvent(kind="called", rev=rev, number=number, service=service, counter=counter)


def draw(model: BoardModel, labels: BoardLabels, size=(1920, 1080), now=NOW, config: BoardConfig | None = None,
         png: Path | None = None) -> tuple[pygame.Surface, Frame, BoardRenderer]:
    r = BoardRenderer(config=config or BoardConfig(), labels=labels)
    surface = pygame.Surface(size)
    frame = r.render(surface, model, now)
    if png is not None:
        pygame.image.save(surface, str(png))
    return surface, frame, r


def one(frame: Frame, role: str, counter: int | None = None) -> TextBox:
    boxes = frame.find(role, counter)
    assert len(boxes) == 1, f"{role}: {[b.text for b in boxes]}"
    return boxes[0]


def counter_line(frame: Frame) -> str:
    """The call panel's counter line as read: the words and the counter's own number."""
    return " ".join(b.text for b in (*frame.find("call.counter"), *frame.find("call.counter_number")))


def glyph_match(surface: pygame.Surface, box: TextBox) -> float:
    """How well the pixels at ``box.rect`` match ``box.text`` rendered alone (IoU of the
    ink masks): proves the text is really there, readable, at that place."""
    font = pygame.font.Font(str(font_path(box.weight)), box.size)
    alone = font.render(box.text, True, (255, 255, 255))
    if box.ink:
        alone = alone.subsurface(alone.get_bounding_rect()).copy()
    want = pygame.mask.from_surface(alone, 128)
    crop = surface.subsurface(box.rect).copy()
    bg = surface.get_at((box.slot.x + 1, box.slot.y + 1))
    near_bg = pygame.mask.from_threshold(crop, bg, (60, 60, 60, 255))
    near_bg.invert()
    got = near_bg
    inter = want.overlap_area(got, (0, 0))
    union = want.count() + got.count() - inter
    return inter / union if union else 0.0


def count_colour(surface: pygame.Surface, rect: pygame.Rect, colour) -> int:
    crop = surface.subsurface(rect).copy()
    return pygame.mask.from_threshold(crop, colour, (8, 8, 8, 255)).count()


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)])
def test_the_called_number_and_its_counter_appear_large_in_the_call_panel(labels, png_dir, size):
    m = live_board()
    m.apply(called(11, "4002", 4, "van-hoa-xa-hoi"), now=NOW)
    surface, frame, _ = draw(m, labels, size, now=NOW + 0.1, png=png_dir / f"call_{size[0]}x{size[1]}.png")
    panel = frame.regions["call"]
    number, counter = one(frame, "call.number"), one(frame, "call.counter")
    assert number.text == "4002" and counter_line(frame) == "đến Quầy 4"
    assert panel.contains(number.rect) and panel.contains(counter.rect)
    assert counter.rect.top >= number.rect.bottom - 2  # "đến Quầy 4" under the number
    assert number.rect.h >= size[1] / 6  # readable from 10 m
    assert glyph_match(surface, number) > 0.9
    assert glyph_match(surface, counter) > 0.85
    tile = one(frame, "tile.number", counter=4)
    assert tile.text == "4002" and frame.regions["tiles"].contains(tile.rect)
    assert glyph_match(surface, one(frame, "tile.label", counter=4)) > 0.85


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (1024, 768)])
def test_the_counter_reads_from_as_far_as_the_number(labels, png_dir, size):
    """A viewer far away sees the board small: "đến Quầy 4" is half of the message, so the
    counter's number is nearly as tall as the ticket's and the words' capitals half of it."""
    m = live_board()
    m.apply(called(11, "4002", 4, "van-hoa-xa-hoi"), now=NOW)
    surface, frame, r = draw(m, labels, size, now=NOW + 0.1, png=png_dir / f"far_{size[0]}x{size[1]}.png")
    number, words, digit = one(frame, "call.number"), one(frame, "call.counter"), one(frame, "call.counter_number")
    assert digit.text == "4" and digit.rect.h >= 0.6 * number.rect.h
    caps = words.size * r.text.ink_ratio("bold")
    assert caps >= 0.3 * number.rect.h
    assert abs(digit.rect.bottom - (words.rect.top + r.text.font("bold", words.size).get_ascent())) <= 0.08 * digit.rect.h
    assert glyph_match(surface, digit) > 0.85 and glyph_match(surface, words) > 0.85
    # from 1/8 (a 55-inch TV at about 20 m) the counter's number is still a dozen pixels high
    assert digit.rect.h / 8 >= 12 * size[1] / 1080


def test_an_unreachable_hub_shows_a_banner_and_the_numbers_stay_marked_stale(labels, png_dir):
    m = live_board()
    surface, frame, _ = draw(m, labels)
    assert not frame.find("banner")
    tile = one(frame, "tile.number", counter=1).rect
    assert count_colour(surface, tile, HC.accent) > 1000  # live numbers in the accent colour

    m.set_link(now=NOW, hub_online=False)
    surface, frame, _ = draw(m, labels, png=png_dir / "hub_offline.png")
    banner = one(frame, "banner")
    assert banner.text.startswith("MÁY CHỦ XẾP HÀNG KHÔNG PHẢN HỒI")
    assert surface.get_at(frame.regions["banner"].move(3, 3).topleft)[:3] == HC.banner_bg
    assert glyph_match(surface, banner) > 0.85
    assert one(frame, "tile.number", counter=1).text == "1023"  # the last known number stays
    tile = one(frame, "tile.number", counter=1).rect
    assert count_colour(surface, tile, HC.accent) == 0
    assert count_colour(surface, tile, HC.stale) > 1000

    m.set_link(now=NOW, broker_connected=False)
    _, frame, _ = draw(m, labels)
    assert one(frame, "banner").text.startswith("MẤT KẾT NỐI")


def test_a_rebooted_board_does_not_replay_the_last_call(labels, png_dir):
    live = live_board()
    live.apply(called(11, "4002", 4, "van-hoa-xa-hoi"), now=NOW)
    snap = hall_snapshot(rev=11)
    rebooted = BoardModel(now=NOW + 1)
    rebooted.set_link(now=NOW + 1, broker_connected=True, hub_online=True)
    rebooted.load_snapshot(HallSnapshot(rev=11, counters=(*snap.counters[:3], CounterView(4, "open", "4002", "van-hoa-xa-hoi")),
                                        waiting=snap.waiting, last_calls=(Call("4002", 4, "van-hoa-xa-hoi"), *snap.last_calls)), now=NOW + 1)
    s_live, f_live, _ = draw(live, labels, now=NOW + 0.1)
    corner = f_live.regions["call"].move(8, 8).topleft
    assert s_live.get_at(corner)[:3] == HC.highlight_bg  # the live call blinks
    for t in (NOW + 1.1, NOW + 1.6, NOW + 2.1):  # every blink phase
        s, f, _ = draw(rebooted, labels, now=t, png=png_dir / "rebooted.png")
        assert one(f, "call.number").text == "4002"
        assert s.get_at(corner)[:3] == HC.panel_bg


def test_the_newest_call_blinks_for_the_configured_time_then_stays_steady(labels):
    cfg = BoardConfig(highlight_s=6, blink_period_s=1.0)
    m = live_board(highlight_s=cfg.highlight_s)
    m.apply(called(11, "1024", 1), now=NOW)
    colours = []
    for t in (0.1, 0.6, 1.1, 1.6, 7.0):
        s, f, _ = draw(m, labels, now=NOW + t, config=cfg)
        colours.append(s.get_at(f.regions["call"].move(8, 8).topleft)[:3])
    assert colours == [HC.highlight_bg, HC.panel_bg, HC.highlight_bg, HC.panel_bg, HC.panel_bg]


def test_a_burst_of_ten_calls_ends_in_the_right_picture(labels, png_dir):
    m = live_board(last_calls=4)
    r = BoardRenderer(config=BoardConfig(last_calls=4), labels=labels)
    surface = pygame.Surface((1920, 1080))
    for i in range(10):  # 10 calls within a second, a frame after each
        m.apply(called(11 + i, f"{1024 + i}", 1 + i % 4), now=NOW + i * 0.1)
        frame = r.render(surface, m, NOW + i * 0.1 + 0.05)
    pygame.image.save(surface, str(png_dir / "burst.png"))
    assert one(frame, "call.number").text == "1033"
    assert counter_line(frame) == "đến Quầy 2"
    assert frame.text("recent.number") == ["1032", "1031", "1030"]
    assert frame.text("recent.counter") == ["Quầy 1", "Quầy 4", "Quầy 3"]
    tiles = {b.counter: b.text for b in frame.find("tile.number")}
    assert tiles == {1: "1032", 2: "1033", 3: "1030", 4: "1031"}
    assert glyph_match(surface, one(frame, "call.number")) > 0.9


def test_paused_and_closed_counters_are_marked(labels):
    m = live_board()
    surface, frame, _ = draw(m, labels)
    states = {b.counter: b.text for b in frame.find("tile.state")}
    assert states == {2: "Tạm dừng", 4: "Đã đóng"}
    assert glyph_match(surface, one(frame, "tile.state", counter=2)) > 0.8
    assert count_colour(surface, one(frame, "tile.number", counter=2).rect, HC.paused) > 500


def long_labels() -> BoardLabels:
    long = "Đăng ký khai sinh, kết hôn, khai tử và các thủ tục hộ tịch có yếu tố nước ngoài"
    return BoardLabels(
        centre_vi="Trung tâm Phục vụ hành chính công xã Tường Linh, huyện Bảo Yên, tỉnh Lào Cai (cơ sở 2)",
        services={f"s{i}": (long[: 40 + i * 5], "Service") for i in range(6)},
        counters={n: (f"Quầy {n}", f"Counter {n}") for n in range(1, 9)},
    )


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (1024, 768), (1080, 1920)])
def test_long_service_names_are_whole_on_the_tiles(labels, png_dir, size):
    """"Văn hoá – Xã hội, Bảo hiểm xã hội" is never "Bảo hiể…": the site's short name, or two lines."""
    m = live_board()
    m.apply(called(11, "4002", 4, "van-hoa-xa-hoi"), now=NOW)
    surface, frame, _ = draw(m, labels, size, now=NOW + 0.1, png=png_dir / f"tile_names_{size[0]}x{size[1]}.png")
    shown = frame.find("tile.service", counter=4)
    assert shown and not any(b.ellipsized for b in shown)
    assert " ".join(b.text for b in shown) in ("Văn hoá – Xã hội, Bảo hiểm xã hội", "VH–XH, BHXH")
    # without a short name in the site file: the full name on two lines
    bare = BoardLabels(centre_vi=labels.centre_vi, services=labels.services, counters=labels.counters)
    surface, frame, _ = draw(m, bare, size, now=NOW + 0.1)
    shown = frame.find("tile.service", counter=4)
    assert " ".join(b.text for b in shown) == "Văn hoá – Xã hội, Bảo hiểm xã hội"
    assert not any(b.ellipsized for b in shown) and all(b.fits for b in shown)


def long_board() -> BoardModel:
    m = BoardModel(now=NOW)
    m.set_link(now=NOW, broker_connected=True, hub_online=True)
    m.load_snapshot(HallSnapshot(
        rev=1,
        counters=tuple(CounterView(n, "paused" if n == 5 else "open", f"{n}0{n}7", f"s{n % 6}") for n in range(1, 9)),
        waiting={f"s{i}": 10 + i for i in range(6)},
        last_calls=tuple(Call(f"{n}0{n}7", n, f"s{n % 6}") for n in range(1, 6)),
    ), now=NOW)
    m.set_ticker("Xin quý công dân vui lòng chuẩn bị đầy đủ giấy tờ trước khi đến quầy. " * 3)
    return m


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (1024, 768), (1080, 1920), (800, 480)])
@pytest.mark.parametrize("case", ["example", "long"])
def test_every_text_fits_its_slot_at_every_screen_size(labels, png_dir, size, case):
    if case == "long":
        m, lab = long_board(), long_labels()
    else:
        m, lab = live_board(), labels
        m.apply(called(11, "4002", 4, "van-hoa-xa-hoi"), now=NOW)
    surface, frame, _ = draw(m, lab, size, now=NOW + 0.1, png=png_dir / f"fit_{case}_{size[0]}x{size[1]}.png")
    screen = surface.get_rect()
    assert frame.boxes
    for b in frame.boxes:
        assert screen.contains(b.slot), (b.role, b.slot)
        assert b.fits, (b.role, b.text, b.rect, b.slot)
    if case == "long":
        # names too long even for two lines are cut, visibly
        assert all(b.text.endswith("…") for b in frame.boxes if b.ellipsized)
        assert len(frame.find("tile.number")) == 8
    if size in ((1920, 1080), (1280, 720)):
        assert one(frame, "call.number").rect.h >= size[1] / 6


def test_the_counter_screen_shows_one_counter_huge(labels, png_dir):
    m = live_board()
    surface, frame, _ = draw(m, labels, (1280, 720), config=BoardConfig(layout="counter", counter=3),
                             png=png_dir / "counter3.png")
    number = one(frame, "counter.number")
    assert number.text == "2011" and number.rect.h >= 720 * 0.35
    assert one(frame, "counter.label").text == "Quầy 3"
    assert glyph_match(surface, number) > 0.9
    _, frame, _ = draw(m, labels, (1280, 720), config=BoardConfig(layout="counter", counter=2))
    assert one(frame, "counter.foot").text == "Tạm dừng"


def test_header_shows_the_centre_and_the_vietnamese_date_and_time(labels):
    surface, frame, _ = draw(live_board(), labels)
    assert one(frame, "header.clock").text == "Thứ Năm, 19/11/2026 08:05"
    assert one(frame, "header.name").text == "Trung tâm Phục vụ hành chính công xã Tường Linh"
    assert glyph_match(surface, one(frame, "header.clock")) > 0.85
    _, frame, _ = draw(live_board(), labels, config=BoardConfig(lang="en"))
    assert one(frame, "header.clock").text == "Thursday, 19/11/2026 08:05"


def test_redraws_only_when_something_changes(labels):
    m = live_board()
    r = BoardRenderer(config=BoardConfig(blink_period_s=1.0, highlight_s=5), labels=labels)
    surface = pygame.Surface((1280, 720))
    r.render(surface, m, NOW + 1)
    assert r.next_redraw_at(m, NOW + 1) == NOW + 60  # idle: only the clock's next minute
    assert not r.needs_full_redraw(surface, m, NOW + 30)
    assert r.needs_full_redraw(surface, m, NOW + 60)
    m.apply(called(11, "1024", 1), now=NOW + 2)
    assert r.needs_full_redraw(surface, m, NOW + 2)
    r.render(surface, m, NOW + 2)
    assert r.next_redraw_at(m, NOW + 2) == NOW + 2.5  # the next blink flip
    assert r.next_redraw_at(m, NOW + 6.8) == NOW + 7  # then the highlight's end
    m.set_ticker("Chào mừng quý công dân")
    frame = r.render(surface, m, NOW + 7.5)
    assert frame.full
    assert r.next_redraw_at(m, NOW + 7.5) == pytest.approx(NOW + 7.5 + 1 / 30)
    frame = r.render(surface, m, NOW + 7.6)  # only the ticker moved
    assert not frame.full and frame.dirty == [frame.regions["ticker"]]


def test_a_pushed_theme_changes_the_picture(labels):
    m = live_board()
    surface, frame, r = draw(m, labels)
    gap = (2, frame.regions["header"].bottom + 3)  # the margin between header and panels
    assert surface.get_at(gap)[:3] == HC.bg
    r.configure(config=BoardConfig(theme="light", colours={"accent": "#aa0000"}))
    frame = r.render(surface, m, NOW)
    assert frame.full
    assert surface.get_at(gap)[:3] == (255, 255, 255)
    assert count_colour(surface, one(frame, "tile.number", counter=1).rect, (170, 0, 0)) > 500


def test_bad_board_options_are_refused_all_at_once():
    with pytest.raises(ValueError) as err:
        BoardConfig.model_validate({"layout": "counter", "theme": "pink", "colours": {"acent": "#fff000"}, "speed": 1})
    text = str(err.value)
    assert "theme" in text and "colours" in text and "speed" in text


def test_before_the_first_snapshot_the_board_says_it_is_connecting(labels, png_dir):
    m = BoardModel(now=NOW)
    surface, frame, _ = draw(m, labels, (1280, 720), png=png_dir / "connecting.png")
    assert one(frame, "banner").text == "Đang kết nối với máy chủ…"
    assert one(frame, "call.empty").text == "Chưa có số được gọi"
    assert glyph_match(surface, one(frame, "banner")) > 0.85


def test_a_counter_screen_blinks_only_for_its_own_calls(labels):
    m = live_board(highlight_s=10)
    r3 = BoardRenderer(config=BoardConfig(layout="counter", counter=3), labels=labels)
    m.apply(called(11, "1024", 1), now=NOW)  # counter 1 calls
    assert r3.blink_on(m, NOW + 0.1) is None
    assert r3.next_redraw_at(m, NOW + 0.1) == NOW + 10  # no blink flips: only the model's own change
    m.apply(called(12, "2012", 3, "dat-dai"), now=NOW + 1)
    assert r3.blink_on(m, NOW + 1.1) is True
    surface = pygame.Surface((800, 480))
    r3.render(surface, m, NOW + 1.1)
    assert surface.get_at((5, 5))[:3] == HC.highlight_bg


def four_busy_counters() -> BoardModel:
    m = BoardModel(now=NOW)
    m.set_link(now=NOW, broker_connected=True, hub_online=True)
    m.load_snapshot(HallSnapshot(
        rev=1,
        counters=(CounterView(1, "open", "1023", "ho-tich"), CounterView(2, "open", "2008", "dat-dai"),
                  CounterView(3, "open", "3005", "chung-thuc"), CounterView(4, "open", "4002", "van-hoa-xa-hoi")),
        waiting={"ho-tich": 5, "dat-dai": 2, "chung-thuc": 0, "van-hoa-xa-hoi": 7},
        last_calls=(Call("4002", 4, "van-hoa-xa-hoi"), Call("3005", 3, "chung-thuc")),
    ), now=NOW)
    return m


def ink_height_px(text: str, weight: str, size: int) -> tuple[int, int]:
    """Width and height of the ink of ``text`` at font ``size``."""
    img = pygame.font.Font(str(font_path(weight)), size).render(text, True, (255, 255, 255))
    r = img.get_bounding_rect()
    return r.w, r.h


def test_four_counter_tiles_at_1080p_numbers_are_an_eighth_of_the_screen_limited_by_width(labels, png_dir):
    """What is true (docs/displayd.md, Readability): four 4-digit tiles beside a call panel
    whose number is ≥ 1/6 cannot also reach 1/6 at 16:9; they fill their tiles' width."""
    w, h = 1920, 1080
    surface, frame, _ = draw(four_busy_counters(), labels, (w, h), now=NOW + 30, png=png_dir / "tiles_4_1080p.png")
    assert one(frame, "call.number").rect.h >= h / 6
    tiles = {b.counter: b for b in frame.find("tile.number")}
    assert sorted(tiles) == [1, 2, 3, 4]
    for b in tiles.values():
        assert b.fits and frame.regions["tiles"].contains(b.rect)
        assert b.rect.h >= 0.12 * h  # about 1/8 of the screen: ~134 px of ink at 1080p
        assert b.slot.h >= h / 6  # the tile has the height for 1/6 …
        assert glyph_match(surface, b) > 0.9
    assert len({b.size for b in tiles.values()}) == 1  # one size for all tiles
    widest = max(tiles.values(), key=lambda b: b.rect.w)
    assert widest.rect.w >= 0.9 * widest.slot.w  # … but the widest number already fills its width
    # at the size that would give 1/6 of the screen, the number is wider than its tile
    size = next(s for s in range(60, 400) if ink_height_px("2008", "black", s)[1] >= h / 6)
    assert ink_height_px("2008", "black", size)[0] > tiles[2].slot.w


def test_the_waiting_bar_shows_every_service_by_name_with_its_count(labels, png_dir):
    m = four_busy_counters()
    surface, frame, _ = draw(m, labels, (1920, 1080), now=NOW + 30, png=png_dir / "waiting_bar_1080p.png")
    bar = frame.regions["waiting"]
    names, counts = frame.find("waiting.service"), frame.find("waiting.count")
    want = {labels.service(sid, "vi"): str(n) for sid, n in m.waiting.items()}
    assert sorted(b.text for b in names) == sorted(want)  # every service, whole (no "…")
    assert {"Hộ tịch", "Đất đai", "Tư pháp – Chứng thực", "Văn hoá – Xã hội, Bảo hiểm xã hội"} == set(want)
    assert len(counts) == len(names) == 4
    for name in names:
        # its count is the box right after it on the same row
        count = min((c for c in counts if c.rect.left >= name.rect.right - 2
                     and abs(c.rect.centery - name.rect.centery) < name.rect.h),
                    key=lambda c: c.rect.left - name.rect.right)
        assert count.text == want[name.text], (name.text, count.text)
        assert bar.contains(name.rect) and bar.contains(count.rect)
        assert name.fits and count.fits
        assert glyph_match(surface, name) > 0.85 and glyph_match(surface, count) > 0.85
