"""What the voice page's tests say into the microphone: the generated espeak-ng pack's clips
(built once per run, never committed), padded with the pauses a person leaves, plus bad takes
(silence, clipping), and the hall's announcer running in its own thread."""

from __future__ import annotations

import io
import shutil
import threading
import wave
from array import array
from pathlib import Path

import pytest

from announcerd.main import Announcer, AnnouncerConfig, AnnouncerSettings
from xephang.settings import BrokerSettings
from xephang_voice import pcm
from xephang_voice.voicepack import VoicePack, load_pack


def espeak_pack(root: Path) -> VoicePack:
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (the test's voice is generated from it)")
    from xephang_voice.voice_build import build_default_pack

    return load_pack(build_default_pack(root / "espeak-vi-north", language="vi", dialect="north"))


def take(pack: VoicePack, clip: str, *, before_ms: float = 400, after_ms: float = 600, gain: float = 1.0,
         rate: int | None = None) -> array:
    """A person saying one clip: a pause, the words, a pause (``gain`` > 1 drives it into clipping)."""
    r = pack.sample_rate
    s = pack.samples(clip)
    if gain != 1.0:
        s = array("h", (max(-32768, min(32767, int(x * gain))) for x in s))
    out = pcm.silence(before_ms, r) + s + pcm.silence(after_ms, r)
    return pcm.resample(out, r, rate) if rate else out


def wav_bytes(samples: array, rate: int, *, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        data = pcm.to_bytes(samples)
        if channels == 2:
            st = array("h")
            for x in samples:
                st += array("h", (x, x))
            data = pcm.to_bytes(st)
        w.writeframes(data)
    return buf.getvalue()


class RunningSpeaker:
    """The hall's announcer (sim audio: every announcement is a WAV file) in its own owner thread."""

    def __init__(self, tmp: Path, site_file: Path, port: int, default_pack: Path, *, web_origin: str) -> None:
        """``web_origin``: webd's public_url, the only origin the web account may name a pack at."""
        self.wav_dir = tmp / "sim" / "announcer-hall"
        self.d = Announcer(AnnouncerSettings(site="tuong-linh", node="announcer-hall", state_dir=tmp / "announcer",
                                             sim=True, sim_out=tmp / "sim", site_file=site_file,
                                             broker=BrokerSettings(port=port),
                                             announcer=AnnouncerConfig(voice_pack=default_pack, repeats=1,
                                                                       web_origin=web_origin)))
        self.t = threading.Thread(target=self.d.run, name="announcerd", daemon=True)
        self.t.start()

    def wavs(self) -> list[Path]:
        return sorted(self.wav_dir.glob("*.wav"))

    def stop(self) -> None:
        self.d.stop_event.set()
        self.t.join(10)
