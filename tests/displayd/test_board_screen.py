"""The screen shell: PNGs in sim mode, and the video-driver check for a real TV."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pygame
import pytest

from displayd.screen import DisplayScreen, DisplayUnavailable, HeadlessScreen
from xephang.bus import Bus
from xephang.contract import Alert, decode
from xephang.settings import BrokerSettings


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


def test_a_whole_day_keeps_a_numbered_frame_per_call_and_latest_follows_every_change(tmp_path):
    s = HeadlessScreen(size=(320, 180), out_dir=tmp_path, keep=100_000, calls_only=True)
    for i in range(300):  # a day: 300 changes, every tenth a call
        s.surface.fill((i % 250, 0, 0))
        s.present(changed=True, new_call=i % 10 == 0)
    assert s.frames_written == 30
    assert len(list(tmp_path.glob("frame-*.png"))) == 30  # none pruned: the morning is still there
    assert pygame.image.load(str(tmp_path / "latest.png")).get_at((1, 1))[:3] == (299 % 250, 0, 0)


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


# --- the genuine path: displayd as started by systemd, outside sim mode, on a machine without a screen ---

no_screen_here = pytest.mark.skipif(Path("/dev/dri").exists() or bool(os.environ.get("DISPLAY")),
                                    reason="this machine has a screen or a DRM device")


def _run_displayd(tmp_path, site_file, port: int, **env_over: str):
    cfg = tmp_path / "displayd.toml"
    cfg.write_text(f'site = "tuong-linh"\nnode = "display-hall"\nsite_file = "{site_file}"\n'
                   f'state_dir = "{tmp_path / "state"}"\nsim = false\n\n[broker]\nport = {port}\n')
    env = {k: v for k, v in os.environ.items()
           if k not in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY") and not k.startswith("XEPHANG_")}
    env.update(env_over)
    return subprocess.run([sys.executable, "-m", "displayd.main", "--config", str(cfg)], env=env,
                          capture_output=True, text=True, timeout=60)


@no_screen_here
@pytest.mark.broker
def test_sdl_silently_falling_back_off_screen_stops_the_daemon_with_code_78_and_an_alert(tmp_path, site_file, mosquitto):
    """No SDL_VIDEODRIVER, no X, no /dev/dri: SDL itself picks 'offscreen' without an error."""
    proc = _run_displayd(tmp_path, site_file, mosquitto.port)
    assert proc.returncode == 78, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("displayd: SDL chose the 'offscreen' video driver: nothing would appear on the TV")
    assert "SDL_VIDEODRIVER=kmsdrm" in last and "/dev/dri" in last
    tech = Bus(site="tuong-linh", node="tech-laptop", role="tech", broker=BrokerSettings(port=mosquitto.port),
               state_dir=tmp_path / "tech")
    got: list[bytes] = []
    tech.subscribe(tech.topics.alert("display-hall", "display-missing"), lambda m: got.append(m.payload))
    tech.start()
    try:
        end = time.monotonic() + 10
        while not got and time.monotonic() < end:
            tech.process(timeout=0.1)
        assert got, "no retained display-missing alert"
        alert = decode(Alert, got[0])
        assert alert.severity == "critical" and "offscreen" in alert.message_en
    finally:
        tech.stop()


@no_screen_here
def test_a_requested_driver_that_cannot_open_stops_the_daemon_with_code_78(tmp_path, site_file):
    """The unit asks for kmsdrm, but this machine has no DRM device: SDL cannot init at all.
    (No broker here: the alert is a courtesy, the exit code and the message are what count.)"""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens: the alert cannot be sent, the exit must not wait long for it
    t0 = time.monotonic()
    proc = _run_displayd(tmp_path, site_file, port, SDL_VIDEODRIVER="kmsdrm")
    assert proc.returncode == 78, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("displayd: SDL could not open a video driver (kmsdrm not available)")
    assert "video' and 'render' groups" in last
    assert time.monotonic() - t0 < 30
