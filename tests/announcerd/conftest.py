"""Fixtures for the announcer: a small synthetic voice pack (tones, no espeak needed)."""

from __future__ import annotations

import os
import threading
import zlib
from array import array
from pathlib import Path

import pytest

from xephang_voice import pcm
from xephang_voice.voice_build import Tuning, build_default_pack
from xephang_voice.voicepack import VoicePack, load_pack

RATE = 8000


def tone_synth(text: str, tuning: Tuning) -> tuple[array, int]:
    """Stands in for espeak-ng: each text gets its own pitch and length, with silence around it."""
    h = zlib.crc32(text.encode())
    freq = 200 + h % 900
    ms = 120 + (h >> 10) % 200
    body = pcm.tone([(freq, 1.0), (freq * 2, 0.3)], ms, RATE, decay_s=1.0, peak=0.3)
    return pcm.silence(40, RATE) + body + pcm.silence(60, RATE), RATE


class FifoSpeaker:
    """A speaker for SDL's ``disk`` driver that can be unplugged while the mixer holds it open.

    The "device" is a named pipe that a thread reads (and keeps, in ``captured``).  Unplugging
    closes the reading end: SDL's next write fails and SDL reports the device removed, just as
    it does when a USB speaker is pulled out.  Opening the pipe blocks until a reader is there,
    so the speaker must be plugged before the mixer opens it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.captured = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def plug(self) -> None:
        self._stop = stop = threading.Event()

        def read() -> None:
            with open(self.path, "rb", buffering=0) as f:
                while not stop.is_set():
                    chunk = f.read(65536)
                    if not chunk:  # the mixer closed it
                        return
                    self.captured += chunk

        self._thread = threading.Thread(target=read, name="fifo-speaker", daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            assert not self._thread.is_alive(), "the speaker's reader did not stop"
            self._thread = None


@pytest.fixture
def fifo_speaker(tmp_path: Path):
    speaker = FifoSpeaker(tmp_path / "usb-speaker")
    yield speaker
    speaker.unplug()


@pytest.fixture(scope="session")
def synthetic_pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_default_pack(tmp_path_factory.mktemp("pack") / "synthetic-vi", synth=tone_synth)


@pytest.fixture(scope="session")
def synthetic_pack(synthetic_pack_dir: Path) -> VoicePack:
    return load_pack(synthetic_pack_dir)


@pytest.fixture(scope="session")
def synth():
    """The stand-in for espeak-ng, for tests that build their own pack."""
    return tone_synth
