"""Fixtures for the board: labels from the example site, a hall snapshot, PNG output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # tests never need a real screen

import pygame  # noqa: E402

from displayd.config import BoardLabels  # noqa: E402
from displayd.model import BoardModel, Call, CounterView, HallSnapshot  # noqa: E402
from xephang.site import Site  # noqa: E402

# Thursday 2026-11-19 08:05:00 +07 (a weekday morning)
NOW = 1_795_050_300.0


@pytest.fixture(scope="session", autouse=True)
def _fonts() -> None:
    pygame.font.init()


@pytest.fixture(scope="session")
def labels(site: Site) -> BoardLabels:
    return BoardLabels.from_site(site)


def hall_snapshot(rev: int = 10) -> HallSnapshot:
    """Counter 1 serves 1023, 2 is paused on 3005, 3 serves 2011, 4 is closed."""
    return HallSnapshot(
        rev=rev,
        counters=(
            CounterView(1, "open", "1023", "ho-tich"),
            CounterView(2, "paused", "3005", "chung-thuc"),
            CounterView(3, "open", "2011", "dat-dai"),
            CounterView(4, "closed"),
        ),
        waiting={"ho-tich": 5, "dat-dai": 2, "chung-thuc": 0, "van-hoa-xa-hoi": 7},
        last_calls=(Call("2011", 3, "dat-dai"), Call("1023", 1, "ho-tich"), Call("3005", 2, "chung-thuc")),
    )


def live_board(now: float = NOW, **kw) -> BoardModel:
    """A board connected to a live hub, loaded from the snapshot."""
    m = BoardModel(now=now, **kw)
    m.set_link(now=now, broker_connected=True, hub_online=True)
    m.load_snapshot(hall_snapshot(), now=now)
    return m


@pytest.fixture(scope="session")
def png_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scenario pictures, kept for a human to look at (path printed with -s)."""
    d = tmp_path_factory.mktemp("displayd-png")
    print(f"\nboard scenario PNGs in {d}")
    return d
