"""The speaker shell: pygame-ce's mixer (SDL) plays one composed buffer at a time.

Real mode keeps the device open.  If the mixer cannot open (no sound card, USB speaker
unplugged) the player reports ``audio-missing`` and retries every ``retry_s``; it never raises
into the daemon.  A device that goes away *while open* is noticed from SDL's
``SDL_AUDIODEVICEREMOVED`` event (:meth:`Player.device_lost`): SDL's mixer otherwise goes on
"playing" into nothing.  pygame only reads SDL events once a display is open, which the speaker
has none of, so :class:`SdlAudioEvents` reads just the audio device events straight from the
SDL library pygame loaded.  Sim mode uses SDL's ``disk`` driver with ``SDL_DISKAUDIODELAY=0`` (audio is
"played" as fast as the CPU goes) and also writes a WAV per announcement to ``sim_dir``.
With delay 0 an *idle* disk device writes ~23 MB/s of silence, so sim mode opens the device
for each announcement and closes it when the announcement has been played.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import tempfile
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402  (the prompt variable must be set before the import)

from xephang_voice import pcm  # noqa: E402
from xephang_voice.voicepack import Announcement  # noqa: E402

log = logging.getLogger(__name__)

PlayerState = Literal["closed", "ready", "playing", "audio-missing"]



@contextmanager
def _quiet_disk_notice(active: bool) -> Iterator[None]:
    """SDL's disk driver writes "CRITICAL: You are using the SDL disk i/o audio driver!" to the
    process's stderr on every open. In sim mode we chose that driver on purpose: the notice is
    taken off fd 2 while the mixer opens, and anything else SDL said then is logged as a warning."""
    if not active:
        yield
        return
    saved = os.dup(2)
    with tempfile.TemporaryFile() as cap:
        os.dup2(cap.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            cap.seek(0)
            said = cap.read().decode(errors="replace").splitlines()
    other = [ln for ln in said if ln.strip() and "disk i/o audio driver" not in ln and "Writing to file" not in ln]
    for ln in other:
        log.warning("SDL: %s", ln)

class AudioError(Exception):
    """Root of speaker errors."""


class AudioMissing(AudioError, RuntimeError):
    """No audio device could be opened."""


SDL_INIT_EVENTS = 0x4000
SDL_AUDIODEVICEADDED = 0x1100
SDL_AUDIODEVICEREMOVED = 0x1101
SDL_GETEVENT = 2
_SDL_LIB_RE = re.compile(r"/libSDL2-2[.-][^/]*$")  # libSDL2-2.0.so.0 (Debian) or pygame-ce's bundled libSDL2-2-<hash>…


class SdlAudioEvents:
    """SDL's audio device events (added/removed), without a display.

    Loads the SDL 2 library that pygame already mapped into the process (Linux:
    ``/proc/self/maps``), starts SDL's event queue (without SDL's signal handlers) and takes
    only ``SDL_AUDIODEVICE*`` events off it, leaving any other event where it is.  Where the
    library cannot be found, :attr:`available` is False and device loss is only seen at the next
    failed open or play (logged once).
    """

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self._tried = False
        self._buf = (ctypes.c_uint8 * 64)()  # sizeof(SDL_Event) is 56

    @property
    def available(self) -> bool:
        return self.start()

    def start(self) -> bool:
        """Start SDL's event queue (again, if something quit SDL); True when events can be read."""
        if not self._tried:
            self._tried = True
            self._lib = _load_sdl()
        if self._lib is None:
            return False
        if not self._lib.SDL_WasInit(SDL_INIT_EVENTS):
            # SDL would otherwise take SIGTERM for itself (as an SDL_QUIT nobody reads)
            with _sdl_env({"SDL_NO_SIGNAL_HANDLERS": "1"}):
                if self._lib.SDL_InitSubSystem(SDL_INIT_EVENTS) != 0:
                    log.warning("SDL_InitSubSystem(SDL_INIT_EVENTS) failed: a speaker unplugged while open is "
                                "only noticed when a play fails")
                    return False
        return True

    def take(self) -> list[tuple[int, bool]]:
        """Audio device events since the last call: ``(event type, is_capture)``, oldest first."""
        if self._lib is None:
            return []
        out: list[tuple[int, bool]] = []
        while self._lib.SDL_PeepEvents(self._buf, 1, SDL_GETEVENT, SDL_AUDIODEVICEADDED, SDL_AUDIODEVICEREMOVED) > 0:
            kind = int.from_bytes(bytes(self._buf[0:4]), "little")
            out.append((kind, bool(self._buf[12])))  # SDL_AudioDeviceEvent: type, timestamp, which, iscapture
        return out


def _load_sdl() -> ctypes.CDLL | None:
    """The SDL 2 library pygame mapped into this process, with the three functions typed."""
    path = None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            path = next((p for p in (line.rsplit(None, 1)[-1] for line in f) if _SDL_LIB_RE.search(p)), None)
        if path is None:
            raise OSError("no SDL 2 library in /proc/self/maps")
        lib = ctypes.CDLL(path)
        lib.SDL_WasInit.argtypes = [ctypes.c_uint32]
        lib.SDL_WasInit.restype = ctypes.c_uint32
        lib.SDL_InitSubSystem.argtypes = [ctypes.c_uint32]
        lib.SDL_InitSubSystem.restype = ctypes.c_int
        lib.SDL_PeepEvents.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32]
        lib.SDL_PeepEvents.restype = ctypes.c_int
    except (OSError, AttributeError) as exc:
        log.warning("cannot read SDL audio device events (%s): a speaker unplugged while open is only noticed "
                    "when a play fails", exc)
        return None
    return lib


#: One per process: SDL has one event queue.
AUDIO_EVENTS = SdlAudioEvents()


@dataclass(frozen=True)
class Started:
    """An announcement handed to the device: when, and the sim WAV if any."""

    monotonic: float
    wav: Path | None


@contextmanager
def _sdl_env(values: dict[str, str]) -> Iterator[None]:
    """SDL reads its variables when the subsystem starts; set them only for that moment."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Player:
    """Plays :class:`Announcement` buffers through pygame-ce's mixer, one at a time.

    ``driver`` is an SDL audio driver name (``alsa``, ``pulseaudio``, ``pipewire``, ``disk``,
    ``dummy``; None = SDL's choice); ``device`` an SDL device name.  ``sim_dir`` turns on sim
    mode (``disk`` driver, capture in ``disk_file``, one WAV per announcement).
    """

    def __init__(self, *, sample_rate: int, driver: str | None = None, device: str | None = None,
                 sim_dir: Path | str | None = None, disk_file: Path | str | None = None,
                 buffer_samples: int = 1024, retry_s: float = 10.0) -> None:
        self.sample_rate = sample_rate
        self.sim_dir = Path(sim_dir) if sim_dir else None
        self.driver = "disk" if self.sim_dir else driver
        self.device = device
        self.disk_file = Path(disk_file) if disk_file else (self.sim_dir / "capture.raw" if self.sim_dir else None)
        self.buffer_samples = buffer_samples
        self.retry_s = retry_s
        self.state: PlayerState = "closed"
        self.last_error = ""
        self._next_try = 0.0
        self._channel: pygame.mixer.Channel | None = None
        self._sound: pygame.mixer.Sound | None = None
        self._count = 0

    @property
    def sim(self) -> bool:
        return self.sim_dir is not None

    # -- device ----------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.driver:
            env["SDL_AUDIODRIVER"] = self.driver
        if self.driver == "disk":
            env["SDL_DISKAUDIODELAY"] = "0"
            if self.disk_file:
                env["SDL_DISKAUDIOFILE"] = str(self.disk_file)
        return env

    def open(self) -> bool:
        """Open the mixer; on failure the state becomes ``audio-missing`` (never raises)."""
        if pygame.mixer.get_init():
            pygame.mixer.quit()
        if self.sim_dir:
            self.sim_dir.mkdir(parents=True, exist_ok=True)
        AUDIO_EVENTS.start()
        try:
            with _sdl_env(self._env()), _quiet_disk_notice(self.driver == "disk"):
                # allowedchanges=0: SDL converts for the device; our buffers stay s16 mono at the pack rate
                pygame.mixer.init(frequency=self.sample_rate, size=-16, channels=1, buffer=self.buffer_samples,
                                  devicename=self.device, allowedchanges=0)
        except (pygame.error, ValueError, OSError) as exc:  # ValueError: a NUL in the driver or device name
            if self.state != "audio-missing" or str(exc) != self.last_error:
                log.error("audio device missing (driver %s): %s; retrying every %.0f s",
                          self.driver or "auto", exc, self.retry_s)
            self.state, self.last_error = "audio-missing", str(exc)
            return False
        AUDIO_EVENTS.take()  # the device list SDL announced on opening; a loss counts from here on
        if self.state == "audio-missing":
            log.warning("audio device is back (driver %s)", self.driver or "auto")
        self.state, self.last_error = "ready", ""
        log.info("mixer open: %s, driver %s", pygame.mixer.get_init(), self.driver or "auto")
        return True

    def ensure_open(self, now: float) -> bool:
        """True when the device is usable; retries a missing device every ``retry_s``."""
        if self.state in ("ready", "playing"):
            return True
        if self.sim:
            return True  # sim opens the disk device per announcement
        if now < self._next_try:
            return False
        self._next_try = now + self.retry_s
        return self.open()

    def device_lost(self, now: float) -> bool:
        """True (once) when SDL reports the open device gone: unplugged USB speaker, dead sound server.

        The mixer is closed, the state becomes ``audio-missing`` and the device is tried again
        after ``retry_s``.  An announcement cut off this way is not reported by :meth:`poll`.
        """
        removed = any(kind == SDL_AUDIODEVICEREMOVED and not capture for kind, capture in AUDIO_EVENTS.take())
        if not removed or self.state not in ("ready", "playing"):
            return False
        log.error("audio device removed while open (driver %s): retrying every %.0f s", self.driver or "auto",
                  self.retry_s)
        self.close()
        self.state, self.last_error = "audio-missing", "audio device removed (unplugged?)"
        self._next_try = now + self.retry_s
        return True

    def close(self) -> None:
        """Stop and release the device."""
        if pygame.mixer.get_init():
            pygame.mixer.quit()
        self._channel = self._sound = None
        if self.state != "audio-missing":
            self.state = "closed"

    # -- playing ---------------------------------------------------------------------------
    def start(self, announcement: Announcement, *, volume: float = 1.0, label: str = "") -> Started:
        """Hand the whole announcement to the device; raises :class:`AudioMissing` if it cannot."""
        if announcement.sample_rate != self.sample_rate:
            raise ValueError(f"announcement is {announcement.sample_rate} Hz, mixer {self.sample_rate} Hz")
        if self.busy():
            raise AudioError("an announcement is already playing")
        if (self.sim or self.state != "ready") and not self.open():
            raise AudioMissing(self.last_error)
        wav = self._write_sim_wav(self.sim_dir, announcement, volume, label) if self.sim_dir else None
        try:
            self._sound = pygame.mixer.Sound(buffer=announcement.pcm)
            self._sound.set_volume(max(0.0, min(1.0, volume)))
            self._channel = self._sound.play()
        except pygame.error as exc:
            self.state, self.last_error = "audio-missing", str(exc)
            self.close()
            raise AudioMissing(str(exc)) from exc
        started = time.monotonic()
        if self._channel is None:
            raise AudioError("mixer gave no free channel")
        self.state = "playing"
        return Started(started, wav)

    def busy(self) -> bool:
        """True while an announcement is still playing."""
        return self._channel is not None and self.state == "playing" and bool(self._channel.get_busy())

    def poll(self) -> bool:
        """Call from the loop; True once when the current announcement has finished."""
        if self.state != "playing" or self.busy():
            return False
        self._channel = self._sound = None
        self.state = "ready"
        if self.sim:
            self.close()  # an idle disk device at delay 0 would fill the disk with silence
        return True

    def _write_sim_wav(self, sim_dir: Path, announcement: Announcement, volume: float, label: str) -> Path:
        sim_dir.mkdir(parents=True, exist_ok=True)
        self._count += 1
        safe = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "announcement"
        path = sim_dir / f"{self._count:05d}-{safe}.wav"
        samples = pcm.from_bytes(announcement.pcm)
        if volume < 1.0:
            samples = array("h", (int(s * volume) for s in samples))
        pcm.write_wav(path, samples, announcement.sample_rate)
        return path
