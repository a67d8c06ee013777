"""Tone contours bent onto a synthetic syllable: the pitch goes where the Vietnamese tone goes."""

from __future__ import annotations

import math
from array import array

import pytest

from xephang_voice.tone import impose_tone, pitch_track, tone_of

RATE = 22050


def pulse_vowel(f0: float = 120.0, seconds: float = 0.4) -> array:
    """A vowel-like pulse train (one decaying resonance per glottal pulse), like espeak's formant output."""
    out = [0.0] * int(RATE * seconds)
    period = RATE / f0
    t = 0.0
    while t < len(out):
        start = int(t)
        for k in range(min(int(period * 2), len(out) - start)):
            out[start + k] += 9000 * math.exp(-k / 40) * math.sin(2 * math.pi * 700 * k / RATE)
        t += period
    return array("h", (max(-32767, min(32767, int(v))) for v in out))


def f0s(samples: array) -> list[float]:
    return [RATE / p for p in pitch_track([float(v) for v in samples], RATE) if p]


@pytest.mark.parametrize(("word", "tone"), [("mười", "huyen"), ("mươi", "ngang"), ("chín", "sac"), ("mốt", "sac_stop"),
                                            ("một", "nang"), ("bảy", "hoi"), ("hai", "ngang"), ("trăm", "ngang")])
def test_each_number_word_has_its_tone(word: str, tone: str) -> None:
    assert tone_of(word) == tone


def test_the_source_is_level_and_a_huyen_falls_and_a_sac_rises() -> None:
    vowel = pulse_vowel()
    level = f0s(vowel)
    assert max(level) - min(level) < 6  # the "espeak" vowel is flat at 120 Hz
    falling = f0s(impose_tone(vowel, RATE, "huyen"))
    rising = f0s(impose_tone(vowel, RATE, "sac"))
    assert falling[-2] < falling[1] * 0.8  # about −5 semitones from start to end
    assert rising[-2] > rising[1] * 1.25  # about +6 semitones


def test_stretch_lengthens_and_silence_is_left_alone() -> None:
    vowel = pulse_vowel()
    assert len(impose_tone(vowel, RATE, "ngang", stretch=1.3)) > 1.2 * len(vowel)
    silent = array("h", bytes(2 * 4000))
    assert impose_tone(silent, RATE, "huyen") == silent
