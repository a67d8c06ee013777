"""Mono 16-bit PCM helpers in plain Python (stdlib ``wave`` + ``array``; no numpy on the Pi).

Samples are ``array('h')`` in native order; WAV files are little-endian, so we swap on a
big-endian host.  Loudness is a gated RMS in dBFS over 20 ms frames: frames quieter than
both −60 dBFS and 30 dB under the loudest frame are ignored, so a word's loudness does not
depend on how much pause surrounds it (a poor man's LUFS gate, enough to match clips).
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

FULL_SCALE = 32768.0
SILENCE_DBFS = -120.0


class PcmFormatError(ValueError):
    """A WAV file is not mono 16-bit PCM (or not a WAV at all)."""


@dataclass(frozen=True)
class WavInfo:
    """What a WAV file's header says."""

    sample_rate: int
    channels: int
    sample_width: int
    frames: int


def _to_le(samples: array) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def from_bytes(data: bytes) -> array:
    """Little-endian s16 bytes → ``array('h')``."""
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def to_bytes(samples: array) -> bytes:
    """``array('h')`` → little-endian s16 bytes (the mixer's and the WAV's format)."""
    return _to_le(samples)


def wav_info(path: Path) -> WavInfo:
    """Header of a WAV file; raises :class:`PcmFormatError` if it cannot be parsed."""
    try:
        with wave.open(str(path), "rb") as w:
            return WavInfo(w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise PcmFormatError(f"{path.name}: not a PCM WAV file ({exc})") from exc


def read_wav(path: Path) -> tuple[array, int]:
    """Samples and sample rate of a mono 16-bit WAV file."""
    info = wav_info(path)
    if info.channels != 1 or info.sample_width != 2:
        raise PcmFormatError(f"{path.name}: {info.channels} channel(s), {8 * info.sample_width}-bit; need mono 16-bit")
    with wave.open(str(path), "rb") as w:
        return from_bytes(w.readframes(info.frames)), info.sample_rate


def write_wav(path: Path, samples: array | bytes, sample_rate: int) -> None:
    """Write mono 16-bit PCM to ``path`` (atomically: a half-written clip is never read)."""
    data = samples if isinstance(samples, bytes | bytearray) else to_bytes(samples)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(data)
    tmp.replace(path)


def db(x: float) -> float:
    """Amplitude ratio → decibels (silence floors at −120)."""
    return 20 * math.log10(x) if x > 1e-6 else SILENCE_DBFS


def peak_dbfs(samples: array) -> float:
    """Highest absolute sample in dBFS."""
    if not samples:
        return SILENCE_DBFS
    return db(max(max(samples), -min(samples)) / FULL_SCALE)


def _frame_energies(samples: array, frame: int) -> list[float]:
    out = []
    for i in range(0, len(samples), frame):
        chunk = samples[i : i + frame]
        out.append(sum(s * s for s in chunk) / len(chunk))
    return out


def loudness_dbfs(samples: array, sample_rate: int) -> float:
    """Gated RMS loudness in dBFS (see the module docstring)."""
    if not samples:
        return SILENCE_DBFS
    energies = _frame_energies(samples, max(1, sample_rate // 50))
    loudest = max(energies)
    if loudest <= 0:
        return SILENCE_DBFS
    gate = max(10 ** (-60 / 10) * FULL_SCALE**2, loudest * 10 ** (-30 / 10))
    kept = [e for e in energies if e >= gate]
    if not kept:  # every frame under −60 dBFS (a muted microphone, sox's dither): silence, not a division by 0
        return SILENCE_DBFS
    return db(math.sqrt(sum(kept) / len(kept)) / FULL_SCALE)


def _sound_threshold(samples: array, below_peak_db: float, floor_dbfs: float) -> float:
    """The level under which a sample is silence: ``below_peak_db`` under the peak, and never
    under ``floor_dbfs`` (a quiet recording's hiss is still silence)."""
    peak = max(max(samples), -min(samples))
    return max(peak * 10 ** (-below_peak_db / 20), FULL_SCALE * 10 ** (floor_dbfs / 20))


def trim_silence(samples: array, sample_rate: int, *, below_peak_db: float = 40.0, floor_dbfs: float = -55.0,
                 pad_ms: float = 10.0) -> array:
    """Cut leading and trailing silence, keeping ``pad_ms`` around the sound.

    Silence is any 5 ms window quieter than ``below_peak_db`` under the peak (and under
    ``floor_dbfs``, so a quiet recording's hiss is still silence).  All-silent input → empty.
    """
    if not samples:
        return array("h")
    win = max(1, sample_rate // 200)
    threshold = _sound_threshold(samples, below_peak_db, floor_dbfs)
    loud = [i for i in range(0, len(samples), win) if max(abs(s) for s in samples[i : i + win]) >= threshold]
    if not loud:
        return array("h")
    pad = int(sample_rate * pad_ms / 1000)
    start = max(0, loud[0] - pad)
    end = min(len(samples), loud[-1] + win + pad)
    return samples[start:end]


def edge_silence(samples: array, *, below_peak_db: float = 40.0, floor_dbfs: float = -55.0) -> tuple[int, int]:
    """Samples of silence before the first and after the last sound, by :func:`trim_silence`'s
    measure (a clip it trimmed has at most its ``pad_ms`` plus one 5 ms window at each end).
    All-silent input → (len, len)."""
    if not samples:
        return 0, 0
    threshold = _sound_threshold(samples, below_peak_db, floor_dbfs)
    n = len(samples)
    # from each end inward: the cost is the silence, not the clip (the announcer checks every clip at load)
    lead = next((i for i in range(n) if abs(samples[i]) >= threshold), n)
    if lead == n:
        return n, n
    trail = next(k for k in range(n) if abs(samples[n - 1 - k]) >= threshold)
    return lead, trail


def apply_gain(samples: array, gain_db: float, *, ceiling_dbfs: float = -1.0) -> array:
    """Scale by ``gain_db`` with a soft limiter above ``ceiling_dbfs`` − 3 dB (no hard clipping)."""
    g = 10 ** (gain_db / 20)
    ceiling = FULL_SCALE * 10 ** (ceiling_dbfs / 20)
    knee = ceiling * 10 ** (-3 / 20)
    span = ceiling - knee
    out = array("h", bytes(2 * len(samples)))
    for i, s in enumerate(samples):
        x = s * g
        ax = abs(x)
        if ax > knee:
            # tanh knee: loud peaks are squeezed toward the ceiling instead of clipping
            ax = knee + span * math.tanh((ax - knee) / span)
            x = ax if x > 0 else -ax
        out[i] = int(round(x))
    return out


def normalise(samples: array, sample_rate: int, *, target_dbfs: float, ceiling_dbfs: float = -1.0) -> array:
    """Bring a clip to ``target_dbfs`` gated loudness, peaks limited under ``ceiling_dbfs``."""
    level = loudness_dbfs(samples, sample_rate)
    if level <= SILENCE_DBFS:
        return array("h", samples)
    out = apply_gain(samples, target_dbfs - level, ceiling_dbfs=ceiling_dbfs)
    # the limiter costs a little loudness on peaky clips: one correction pass
    drift = target_dbfs - loudness_dbfs(out, sample_rate)
    if abs(drift) > 0.2:
        out = apply_gain(samples, target_dbfs - level + drift, ceiling_dbfs=ceiling_dbfs)
    return out


def resample(samples: array, from_rate: int, to_rate: int) -> array:
    """Linear-interpolation resampling (good enough for speech clips at 16–48 kHz)."""
    if from_rate == to_rate or not samples:
        return array("h", samples)
    n_out = int(len(samples) * to_rate / from_rate)
    step = from_rate / to_rate
    last = len(samples) - 1
    out = array("h", bytes(2 * n_out))
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        frac = pos - j
        a = samples[j]
        b = samples[j + 1] if j < last else a
        out[i] = int(round(a + (b - a) * frac))
    return out


def silence(ms: float, sample_rate: int) -> array:
    """``ms`` milliseconds of digital silence."""
    return array("h", bytes(2 * int(sample_rate * ms / 1000)))


def tone(freqs_amps: list[tuple[float, float]], ms: float, sample_rate: int, *, decay_s: float = 0.35,
         attack_ms: float = 5.0, peak: float = 0.5) -> array:
    """A decaying bell-like tone: partials (Hz, relative amplitude), exponential decay."""
    n = int(sample_rate * ms / 1000)
    total = sum(a for _, a in freqs_amps) or 1.0
    attack = max(1, int(sample_rate * attack_ms / 1000))
    fade = max(1, int(sample_rate * 0.01))
    out = array("h", bytes(2 * n))
    for i in range(n):
        t = i / sample_rate
        env = math.exp(-t / decay_s) * min(1.0, i / attack) * min(1.0, (n - i) / fade)
        v = sum(a * math.sin(2 * math.pi * f * t) for f, a in freqs_amps) / total
        out[i] = int(round(FULL_SCALE * peak * env * v))
    return out
