"""Read from afar and by old eyes, judged by OCR (tesseract, Vietnamese; `bench/legibility.py`
prints the whole table): the ticket's time, people-ahead and wait lines are read from the printed
raster, and on the hall board the counter's number reads from as far as the ticket's number does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.legibility import SIZES, board_call, read_far, ticket_lines

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("tesseract")
                       or not Path("/usr/share/tesseract-ocr/5/tessdata/vie.traineddata").exists(),
                       reason="tesseract-ocr and tesseract-ocr-vie are not installed (./xephang.sh test installs them)"),
]


@pytest.mark.parametrize("width", [576, 384])
def test_the_lines_a_citizen_must_read_on_the_ticket_are_read(tmp_path, width):
    for want, got, acc in ticket_lines(width, tmp_path):
        assert acc >= 0.95, f"{want!r} read as {got!r} ({acc:.0%})"


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_counter_reads_from_as_far_as_the_number(tmp_path, size):
    surface, frame = board_call(size)
    number, digit = frame.find("call.number")[0], frame.find("call.counter_number")[0]
    for k in (4, 8, 12):  # a 55-inch TV seen from about 10, 20 and 30 m
        if read_far(surface, number.rect, k, tmp_path) == number.text:
            assert read_far(surface, digit.rect, k, tmp_path, digits=True) == digit.text, \
                f"at 1/{k} the number {number.text} is read, the counter {digit.text} is not"
