"""Benchmark: can it be read? The ticket and the hall board judged by OCR (tesseract, Vietnamese).

- **Ticket** (`ticketd.render`, the printed 1-bit raster at 203 dpi): the lines a citizen must
  read — time, people ahead, estimated wait — OCR'd from the whole ticket; for each, the best
  matching OCR line and its character accuracy (1 − edit distance / length).
- **Board** (`displayd.render`, SDL dummy driver): the call panel's number and its "đến Quầy N"
  line, seen from afar: each line is scaled down by 1/k (a viewer k times as far as one who
  sees the board at full resolution), then scaled back to a 40-px line for the OCR, which
  reads one line (``--psm 7``; the counter's digit alone, digits only). For each screen size it
  prints what was read at each k and the
  farthest k at which the number, and the counter line, were read exactly.

OCR is a strict, imperfect reader (it misreads where an eye guesses from context), so read the
figures as a comparison between lines of the same picture, not as a distance in metres.

    .venv/bin/python bench/legibility.py          (needs Debian's tesseract-ocr tesseract-ocr-vie)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCALES = (1, 2, 4, 5, 6, 8, 10, 12)
SIZES = ((1920, 1080), (1280, 720), (1024, 768))
LINE_PX = 40  # the height OCR reads a line at best


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", " ".join(s.split()))


def _ocr(png: Path, psm: str) -> str:
    out = subprocess.run(["tesseract", str(png), "-", "-l", "vie", "--psm", psm], capture_output=True, text=True,
                         check=False)
    return out.stdout


def _distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _accuracy(want: str, got: str) -> float:
    return max(0.0, 1 - _distance(want, got) / max(1, len(want)))


def ticket_lines(width: int, tmp: Path) -> list[tuple[str, str, float]]:
    """(wanted line, best OCR line, character accuracy) for the ticket's time, people-ahead and
    wait lines, OCR'd from the whole printed raster ``width`` dots wide."""
    from ticketd.config import TicketLayout
    from ticketd.render import TicketRenderer, TicketView
    from xephang.clock import VN_TZ
    from xephang.settings import load_site

    site = load_site(ROOT / "config" / "site.example.toml")
    r = TicketRenderer(site, TicketLayout(width_px=width))
    view = TicketView(number=1023, service_id="ho-tich", issued_at=datetime(2026, 11, 23, 8, 5, tzinfo=VN_TZ),
                      people_ahead=12, est_wait_min=27, est_wait_low_min=20, est_wait_high_min=35)
    png = tmp / f"ticket-{width}.png"
    r.render(view).convert("L").save(png)
    lines = [_nfc(x) for x in _ocr(png, "4").splitlines() if x.strip()]
    lines += [f"{a} {b}" for a, b in zip(lines, lines[1:], strict=False)]  # a line the ticket wrapped
    out = []
    for want in (r.issued_line(view), *r.queue_lines(view)):
        want = _nfc(want)
        best = max(lines, key=lambda g: _accuracy(want, g), default="")
        out.append((want, best, _accuracy(want, best)))
    return out


def board_call(size: tuple[int, int]) -> tuple[Any, Any]:
    """The board at ``size`` just after 4002 was called to counter 4: (surface, frame)."""
    import pygame

    pygame.init()
    from displayd.config import BoardConfig, BoardLabels
    from displayd.model import BoardEvent, BoardModel, CounterView, HallSnapshot
    from displayd.render import BoardRenderer
    from xephang.settings import load_site

    labels = BoardLabels.from_site(load_site(ROOT / "config" / "site.example.toml"))
    now = datetime(2026, 11, 23, 9, 0).timestamp()
    model = BoardModel(now=now)
    model.set_link(now=now, broker_connected=True, hub_online=True)
    model.load_snapshot(HallSnapshot(rev=10, counters=(CounterView(number=4, state="open"),)), now=now)
    model.apply(BoardEvent(kind="called", rev=11, number="4002", service="van-hoa-xa-hoi", counter=4), now=now)
    surface = pygame.Surface(size)
    frame = BoardRenderer(config=BoardConfig(), labels=labels).render(surface, model, now + 0.1)
    return surface, frame


def read_far(surface: Any, rect: Any, k: int, tmp: Path, *, digits: bool = False) -> str:
    """One line of the board as OCR reads it from k times as far (scaled down by 1/k, then back
    up to a 40-px line for the OCR); ``digits``: digits only."""
    import pygame

    crop = surface.subsurface(rect.inflate(rect.h // 3, rect.h // 6).clip(surface.get_rect())).copy()
    w, h = max(1, crop.get_width() // k), max(1, crop.get_height() // k)
    small = pygame.transform.smoothscale(crop, (w, h))  # what the far eye gets
    if h < LINE_PX:
        small = pygame.transform.smoothscale(small, (max(1, w * LINE_PX // h), LINE_PX))
    png = tmp / "line.png"
    pygame.image.save(small, str(png))
    extra = ["-c", "tessedit_char_whitelist=0123456789"] if digits else []
    out = subprocess.run(["tesseract", str(png), "-", "-l", "vie", "--psm", "7", *extra], capture_output=True,
                         text=True, check=False)
    return _nfc(out.stdout)


def ticket(tmp: Path) -> None:
    for width in (576, 384):
        print(f"ticket {width} px:")
        for want, best, acc in ticket_lines(width, tmp):
            print(f"  {acc:6.1%}  want {want!r}\n          read {best!r}")


def board(tmp: Path) -> None:
    for size in SIZES:
        surface, frame = board_call(size)
        number = frame.find("call.number")[0]
        words, digit = frame.find("call.counter")[0], frame.find("call.counter_number")[0]
        line = words.rect.union(digit.rect)
        want_line = _nfc(f"{words.text} {digit.text}")
        far = {"number": 0, "counter": 0, "line": 0}
        rows = []
        for k in SCALES:
            got_n, got_c = read_far(surface, number.rect, k, tmp), read_far(surface, line, k, tmp)
            got_d = read_far(surface, digit.rect, k, tmp, digits=True)
            ok = {"number": got_n == number.text, "counter": got_d == digit.text,
                  "line": got_c.lower() == want_line.lower()}
            for key, good in ok.items():
                if good:
                    far[key] = k
            rows.append(f"    1/{k:<2}  {'✓' if ok['number'] else '✗'} {got_n!r:<10} {'✓' if ok['counter'] else '✗'} "
                        f"{got_d!r:<6} {'✓' if ok['line'] else '✗'} {got_c!r}")
        print(f"board {size[0]}×{size[1]}: number {number.rect.h} px, counter digit {digit.rect.h} px; farthest read: "
              f"number 1/{far['number']}, counter digit 1/{far['counter']}, \"{want_line}\" 1/{far['line']}")
        print("\n".join(rows))


def main() -> int:
    if not shutil.which("tesseract"):
        print("tesseract is not installed: sudo apt-get install tesseract-ocr tesseract-ocr-vie")
        return 2
    with tempfile.TemporaryDirectory() as d:
        ticket(Path(d))
        board(Path(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
