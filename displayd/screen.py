"""The screen shell: where frames go.

- ``HeadlessScreen`` (sim, tests, demo): a plain ``pygame.Surface``; every changed frame is
  written as a PNG to an output folder (``latest.png`` plus numbered frames), and on request.
- ``DisplayScreen`` (a real TV): opens the display full screen and checks which video
  driver SDL chose. Outside sim mode, SDL silently falling back to ``offscreen``/``dummy``
  (no ``/dev/dri``, no permission, no X) is a fatal ``DisplayUnavailable``: a black TV in
  the hall is worse than a restart that shows up in the journal.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import pygame

log = logging.getLogger(__name__)

# drivers that put pixels on a real screen; kmsdrm is the one for Raspberry Pi OS Lite
REAL_DRIVERS = frozenset({"kmsdrm", "x11", "wayland", "windows", "cocoa", "rpi"})
OFFSCREEN_DRIVERS = frozenset({"offscreen", "dummy", "evdev"})


class ScreenError(RuntimeError):
    """Root of displayd's screen errors."""


class DisplayUnavailable(ScreenError):
    """No real screen: SDL found no usable video driver, or fell back to an off-screen one."""


class Screen:
    """Where the renderer draws. ``surface`` is the canvas; ``present`` shows it."""

    surface: pygame.Surface

    @property
    def size(self) -> tuple[int, int]:
        return self.surface.get_size()

    def present(self, dirty: Sequence[pygame.Rect] | None = None, *, changed: bool = False, new_call: bool = False) -> None:
        """Show the canvas: ``dirty`` rectangles only, or everything when None.
        ``changed`` says the content changed (not only the ticker, blink or clock); ``new_call``
        that it shows a call (or recall) it did not show before."""

    def pump(self) -> list[str]:
        """Handle window-system events; returns requests such as "quit" or "snapshot"."""
        return []

    def save(self, path: str | Path) -> Path:
        """Write the current canvas as a PNG (technicians and tests ask for it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.png")  # pygame picks the format from the suffix
        pygame.image.save(self.surface, str(tmp))
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        """Release the display."""


class HeadlessScreen(Screen):
    """A Surface of any size, saved as PNG on every change when ``out_dir`` is set."""

    def __init__(
        self,
        *,
        size: tuple[int, int] = (1920, 1080),
        out_dir: str | Path | None = None,
        keep: int = 100,
        min_interval_s: float = 0.0,
        calls_only: bool = False,
    ) -> None:
        self.surface = pygame.Surface(size)
        self.out_dir = Path(out_dir) if out_dir else None
        self.keep = max(1, int(keep))
        # a fast demo clock can change the board many times a second and a 1080p PNG costs
        # ~0.2 s: optionally write at most one per interval (the last change is never lost)
        self.min_interval_s = max(0.0, float(min_interval_s))
        # a whole day's frames: a numbered frame per call (the board as each citizen saw it called),
        # latest.png on every change
        self.calls_only = calls_only
        self._pending_call = False
        self.frames_written = 0
        self.presents = 0
        self._last_write = float("-inf")
        self._pending = False
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    def present(self, dirty: Sequence[pygame.Rect] | None = None, *, changed: bool = False, new_call: bool = False) -> None:
        self.presents += 1
        if (changed or new_call) and self.out_dir is not None:
            self._pending = True
            self._pending_call = self._pending_call or new_call
            self._flush()

    def pump(self) -> list[str]:
        self._flush()
        return []

    def _flush(self) -> None:
        if self._pending and time.monotonic() - self._last_write >= self.min_interval_s:
            if self.calls_only and not self._pending_call:
                self.write_latest()
            else:
                self.write_frame()

    def write_latest(self) -> Path | None:
        """Write ``latest.png`` only (no numbered frame)."""
        if self.out_dir is None:
            return None
        self._pending = False
        self._last_write = time.monotonic()
        return self.save(self.out_dir / "latest.png")

    def write_frame(self) -> Path | None:
        """Write ``latest.png`` and a numbered copy (the oldest beyond ``keep`` are removed)."""
        if self.out_dir is None:
            return None
        self._pending = self._pending_call = False
        self._last_write = time.monotonic()
        self.frames_written += 1
        n = self.frames_written
        numbered = self.save(self.out_dir / f"frame-{n:06d}.png")
        # encode once (a 1080p PNG costs ~0.2 s here): latest.png is a hard link to it
        tmp = self.out_dir / "latest.tmp.png"
        try:
            tmp.unlink(missing_ok=True)
            os.link(numbered, tmp)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(numbered, tmp)
        os.replace(tmp, self.out_dir / "latest.png")
        old = self.out_dir / f"frame-{n - self.keep:06d}.png"
        if n > self.keep and old.exists():
            old.unlink()
        return numbered


def _driver_help(what: str) -> str:
    return (
        f"{what}: nothing would appear on the TV. "
        "On Raspberry Pi OS Lite use KMS/DRM: set SDL_VIDEODRIVER=kmsdrm, check that /dev/dri/card* exists "
        "(dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt), that the service user is in the 'video' and "
        "'render' groups, and that no desktop session holds the screen. For a board without a screen, run "
        "in sim mode (XEPHANG_SIM=true). See docs/displayd.md."
    )


class DisplayScreen(Screen):
    """The real display, full screen. Raises ``DisplayUnavailable`` when SDL has no real
    screen for us (unless ``allow_offscreen``, for sim runs that still want a window)."""

    def __init__(
        self,
        *,
        size: tuple[int, int] | None = None,
        fullscreen: bool = True,
        allow_offscreen: bool = False,
        allowed_drivers: frozenset[str] = REAL_DRIVERS,
    ) -> None:
        try:
            pygame.display.init()
        except pygame.error as exc:
            raise DisplayUnavailable(_driver_help(f"SDL could not open a video driver ({exc})")) from exc
        self.driver = pygame.display.get_driver()
        requested = os.environ.get("SDL_VIDEODRIVER", "")
        log.info("SDL video driver %r (SDL_VIDEODRIVER=%r)", self.driver, requested)
        if self.driver not in allowed_drivers and not (allow_offscreen and self.driver in OFFSCREEN_DRIVERS):
            pygame.display.quit()
            raise DisplayUnavailable(_driver_help(f"SDL chose the {self.driver!r} video driver"))
        if size is None:
            desktops = pygame.display.get_desktop_sizes()
            size = desktops[0] if desktops else (1920, 1080)
        flags = pygame.FULLSCREEN if fullscreen else 0
        try:
            self.window = pygame.display.set_mode(size, flags)
        except pygame.error as exc:
            pygame.display.quit()
            raise DisplayUnavailable(_driver_help(f"SDL could not open a {size[0]}×{size[1]} screen on {self.driver!r} ({exc})")) from exc
        self.surface = self.window
        pygame.mouse.set_visible(False)
        pygame.display.set_caption("xephang")
        self.presented_at = 0.0
        log.info("display %sx%s on %s%s", *self.surface.get_size(), self.driver, " (full screen)" if fullscreen else "")

    def present(self, dirty: Sequence[pygame.Rect] | None = None, *, changed: bool = False, new_call: bool = False) -> None:
        if dirty is None:
            pygame.display.flip()
        else:
            pygame.display.update(list(dirty))
        self.presented_at = time.perf_counter()

    def pump(self) -> list[str]:
        out: list[str] = []
        for ev in pygame.event.get():
            if ev.type == pygame.QUIT:
                out.append("quit")
            elif ev.type in (pygame.WINDOWSIZECHANGED, pygame.VIDEORESIZE, pygame.WINDOWEXPOSED):
                self.surface = pygame.display.get_surface()
                out.append("redraw")
            elif ev.type == pygame.KEYDOWN and ev.key == pygame.K_F12:
                out.append("snapshot")
        return out

    def close(self) -> None:
        pygame.display.quit()
