"""Fixtures for the announcer: a small synthetic voice pack (tones, no espeak needed)."""

from __future__ import annotations

import zlib
from array import array
from pathlib import Path

import pytest

from announcerd import pcm
from announcerd.voice_build import Tuning, build_default_pack
from announcerd.voicepack import VoicePack, load_pack

RATE = 8000


def tone_synth(text: str, tuning: Tuning) -> tuple[array, int]:
    """Stands in for espeak-ng: each text gets its own pitch and length, with silence around it."""
    h = zlib.crc32(text.encode())
    freq = 200 + h % 900
    ms = 120 + (h >> 10) % 200
    body = pcm.tone([(freq, 1.0), (freq * 2, 0.3)], ms, RATE, decay_s=1.0, peak=0.3)
    return pcm.silence(40, RATE) + body + pcm.silence(60, RATE), RATE


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
