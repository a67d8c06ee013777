"""The screen shell: PNGs in sim mode, and the video-driver check for a real TV."""

from __future__ import annotations

import time

import pygame
import pytest

from displayd.screen import DisplayScreen, DisplayUnavailable, HeadlessScreen


def test_headless_screen_writes_a_png_per_change_and_keeps_the_last_few(tmp_path):
    s = HeadlessScreen(size=(640, 360), out_dir=tmp_path, keep=3)
    for i in range(5):
        s.surface.fill((i * 40, 0, 0))
        s.present(changed=True)
    s.present(changed=False)  # only the ticker moved: no file
    assert s.frames_written == 5 and s.presents == 6
    assert sorted(p.name for p in tmp_path.glob("frame-*.png")) == ["frame-000003.png", "frame-000004.png", "frame-000005.png"]
    latest = pygame.image.load(str(tmp_path / "latest.png"))
    assert latest.get_size() == (640, 360) and latest.get_at((10, 10))[:3] == (160, 0, 0)
    assert not list(tmp_path.glob("*.tmp.png"))


def test_a_real_board_refuses_an_offscreen_driver(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    with pytest.raises(DisplayUnavailable) as err:
        DisplayScreen(size=(640, 360), fullscreen=False)
    assert "'offscreen' video driver" in str(err.value) and "/dev/dri" in str(err.value)
    assert isinstance(err.value, RuntimeError)


def test_sim_may_open_an_offscreen_window_when_asked(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    s = DisplayScreen(size=(640, 360), fullscreen=False, allow_offscreen=True)
    try:
        assert s.driver == "dummy" and s.size == (640, 360)
        s.surface.fill((0, 0, 0))
        s.present([pygame.Rect(0, 0, 10, 10)])
        assert "quit" not in s.pump()
    finally:
        s.close()


def test_a_fast_demo_can_limit_pngs_without_losing_the_last_change(tmp_path):
    s = HeadlessScreen(size=(320, 180), out_dir=tmp_path, min_interval_s=0.3)
    s.surface.fill((10, 0, 0))
    s.present(changed=True)  # written at once
    for i in range(5):  # five quick changes: held back
        s.surface.fill((20 + i, 0, 0))
        s.present(changed=True)
    assert s.frames_written == 1
    deadline = time.monotonic() + 3
    while s.frames_written < 2 and time.monotonic() < deadline:
        s.pump()  # the owner loop pumps the screen every turn
        time.sleep(0.01)
    assert s.frames_written == 2
    assert pygame.image.load(str(tmp_path / "latest.png")).get_at((1, 1))[:3] == (24, 0, 0)
